# syntax=docker/dockerfile:1
#
# The kube-ocr operator (crate kube-ocr-operator, bin ocr-operator): one static binary on
# distroless/static, non-root (65532), no shell, no package manager.
#
#   docker build -f deploy/docker/operator.Dockerfile -t ghcr.io/kube-ocr/operator:0.1.0 .
#
# Static: built for x86_64-unknown-linux-musl. kube uses rustls with ring (no OpenSSL);
# ring's C and assembly parts build with musl-gcc (musl-tools); protoc compiles the gRPC
# client of kube-ocr-proto. The image tags are pinned without a digest: pin digests in
# your registry mirror if you need byte-for-byte rebuilds.

ARG RUST_IMAGE=rust:1.95.0-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot
# Where the runtime stage takes the binary from: "build" compiles it (what users build);
# "prebuilt" copies ./ocr-operator from the build context, a folder holding only that binary
# (how the e2e tests and `make demo` build this image from `cargo build` output; see
# deploy/README.md).
ARG ARTIFACTS=build

FROM ${RUST_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Debian package versions are not pinned: the bookworm suite fixes them (.hadolint.yaml).
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl \
        -p kube-ocr-operator --bin ocr-operator \
 && install -D -m 0755 target/x86_64-unknown-linux-musl/release/ocr-operator /out/ocr-operator
# Fail the build if the binary is not static (a NEEDED entry or an ELF interpreter).
RUN if readelf -d /out/ocr-operator | grep NEEDED >/dev/null || readelf -l /out/ocr-operator | grep INTERP >/dev/null; then \
        echo "ocr-operator is not statically linked" >&2; exit 1; \
    fi \
 && /out/ocr-operator --help >/dev/null

FROM scratch AS prebuilt
COPY ocr-operator /out/ocr-operator

# hadolint ignore=DL3006
FROM ${ARTIFACTS} AS artifacts

FROM ${RUNTIME_IMAGE} AS runtime
LABEL org.opencontainers.image.title="kube-ocr operator" \
      org.opencontainers.image.description="Reconciles OcrService resources into OCR inference pods and runs canary rollouts" \
      org.opencontainers.image.source="https://github.com/kube-ocr/kube-ocr" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=artifacts /out/ocr-operator /ocr-operator
# Numeric, so that Kubernetes' runAsNonRoot can verify it (distroless "nonroot" is 65532).
USER 65532:65532
# Health (/healthz, /readyz) and metrics (/metrics): --http-addr, default 0.0.0.0:8080.
EXPOSE 8080
ENTRYPOINT ["/ocr-operator"]
