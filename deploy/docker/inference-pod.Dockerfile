# syntax=docker/dockerfile:1
#
# The inference pod (crate kube-ocr-inference, bin ocr-inference-pod) with libtorch, its
# CUDA 13 libraries and the PP-OCRv4 bundle at /models/ppocr-v4. One image for GPU and CPU
# nodes: without a driver the server runs on the CPU and says so in /healthz.
#
#   docker build -f deploy/docker/inference-pod.Dockerfile -t ghcr.io/kube-ocr/inference-pod:0.1.0 .
#
# Stages:
#   torch   the pinned torch 2.11.0 (cu130) wheel of tools/requirements.txt in a venv: tch
#           links its libtorch (LIBTORCH_USE_PYTORCH=1), as `make setup` does;
#   bundle  tools/export/export_ppocr.py exports PP-OCRv4 to TorchScript with that torch and
#           verifies it against onnxruntime on the golden set (fails the build otherwise;
#           about 10 minutes on 2 cores);
#   build   cargo builds ocr-inference-pod; inference-pod/build.rs bakes an rpath to the
#           venv's torch/lib;
#   runtime-libs  torch/lib plus the wheel's nvidia/* libraries copied onto the runtime base
#           at the SAME absolute paths, so the baked rpath resolves (and libtorch's own
#           $ORIGIN rpaths to ../../nvidia/* too). No LD_LIBRARY_PATH needed.
#   runtime the binaries and the bundle on top of runtime-libs.
#
# Runtime base: nvidia/cuda *base* (CUDA 13.0, Ubuntu 24.04), not cudnn-runtime: cuDNN,
# cuBLAS and the CUDA runtime come from the torch wheel, found through libtorch's rpaths, so
# the larger image would only add a second, unused copy. The base image still carries what
# the NVIDIA container toolkit needs (NVIDIA_VISIBLE_DEVICES, NVIDIA_DRIVER_CAPABILITIES,
# NVIDIA_REQUIRE_CUDA: driver >= 580), and the driver (libcuda, libnvidia-ml for NVML) is
# mounted by the toolkit at run time. glibc 2.39 there is newer than bookworm's 2.36 the
# binary is built against. Tags are pinned without a digest.

ARG RUST_IMAGE=rust:1.95.0-bookworm
ARG RUNTIME_IMAGE=nvidia/cuda:13.0.0-base-ubuntu24.04
# Where the runtime stage takes its files from: "build" and "bundle" make them (what users
# build); "prebuilt" copies them from the build context, a folder holding only libs/ (the
# venv's torch/lib and nvidia/ at their absolute paths), bin/ (both binaries) and models/
# (the bundle): how the e2e tests build this image from `make setup` and `cargo build`
# output (see deploy/README.md).
ARG ARTIFACTS=build
ARG BUNDLE_ARTIFACTS=bundle
# What the runtime stage starts from: "runtime-libs" (the runtime base with libtorch and
# the CUDA libraries) built here, or an image built earlier from that same stage
# (`--target runtime-libs`). The libraries are 3.8 GB and change only with the torch pin:
# a build from such an image neither reads nor hashes them again (the e2e tests' rebuild
# after `cargo build` does this; see deploy/README.md).
ARG LIBS_IMAGE=runtime-libs

FROM ${RUST_IMAGE} AS torch
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# protoc for kube-ocr-proto; python3-venv for the torch venv; libgl1/libglib2.0-0 for
# opencv-python in the export. Debian package versions: fixed by the suite (.hadolint.yaml).
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler python3 python3-venv libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*
ENV VIRTUAL_ENV=/opt/kube-ocr/venv
ENV PATH=${VIRTUAL_ENV}/bin:${PATH} \
    LIBTORCH_USE_PYTORCH=1
COPY tools/requirements.txt /tmp/requirements.txt
RUN python3 -m venv "${VIRTUAL_ENV}" \
 && pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt

FROM torch AS bundle
WORKDIR /src
COPY tools/requirements.txt tools/requirements.txt
COPY tools/export tools/export
COPY golden/tools golden/tools
COPY golden/data golden/data
RUN python tools/export/export_ppocr.py --golden golden/data --out /out/models \
 && test -f /out/models/ppocr-v4/bundle.yaml

FROM torch AS build
# (inherited from torch; repeated for hadolint, which reads stages one by one)
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kube-ocr-inference --bin ocr-inference-pod -p kube-ocr-pdf-render --bin ocr-pdf-render \
 && install -D -m 0755 target/release/ocr-inference-pod /out/bin/ocr-inference-pod \
 && install -D -m 0755 target/release/ocr-pdf-render /out/bin/ocr-pdf-render
# Stage libtorch and the CUDA libraries under /out/libs at their absolute venv paths
# (cp --parents), without headers and static archives (two finds: -delete implies -depth,
# under which find refuses -prune). Fail if the binary's rpath does not
# point there or a library does not resolve.
RUN site=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
 && readelf -d /out/bin/ocr-inference-pod | grep "R.*PATH.*${site}/torch/lib" >/dev/null \
 && mkdir -p /out/libs \
 && cp -a --parents "${site}/torch/lib" "${site}/nvidia" /out/libs/ \
 && find /out/libs -name include -type d -prune -exec rm -rf {} + \
 && find /out/libs -name '*.a' -delete \
 && if ldd /out/bin/ocr-inference-pod | grep 'not found'; then exit 1; fi

FROM scratch AS prebuilt
COPY libs/ /out/libs/
COPY bin/ /out/bin/
COPY models/ /out/models/

# hadolint ignore=DL3006
FROM ${ARTIFACTS} AS artifacts

# hadolint ignore=DL3006
FROM ${BUNDLE_ARTIFACTS} AS bundle-artifacts

# The largest layer, and the one that changes least, first and in a stage of its own.
FROM ${RUNTIME_IMAGE} AS runtime-libs
COPY --from=artifacts /out/libs/ /

# hadolint ignore=DL3006
FROM ${LIBS_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
LABEL org.opencontainers.image.title="kube-ocr inference pod" \
      org.opencontainers.image.description="gRPC OCR server on libtorch (CUDA 13 or CPU) with the PP-OCRv4 bundle" \
      org.opencontainers.image.source="https://github.com/kube-ocr/kube-ocr" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=artifacts /out/bin/ocr-inference-pod /usr/local/bin/ocr-inference-pod
# The PDF renderer the server runs per PDF request, beside it (--pdf-renderer's default).
COPY --from=artifacts /out/bin/ocr-pdf-render /usr/local/bin/ocr-pdf-render
COPY --from=bundle-artifacts /out/models/ppocr-v4 /models/ppocr-v4
# Every library resolves in this image too, and the binary starts (no GPU needed for --help).
RUN if ldd /usr/local/bin/ocr-inference-pod | grep 'not found'; then exit 1; fi \
 && /usr/local/bin/ocr-inference-pod --help >/dev/null \
 && /usr/local/bin/ocr-pdf-render --help >/dev/null \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin nonroot
# The operator runs pods with a read-only root filesystem and an emptyDir at /tmp: caches
# (CUDA's JIT cache among them) go there.
ENV HOME=/tmp \
    CUDA_CACHE_PATH=/tmp/.nv/ComputeCache \
    OCR_BUNDLE=file:///models/ppocr-v4
USER 65532:65532
# gRPC (kube_ocr.v1.Ocr, grpc.health.v1, reflection), the HTTP API (POST /v1/ocr) and the
# side port (/healthz, /readyz, /metrics).
EXPOSE 50051 8000 8080
# No HEALTHCHECK: Kubernetes probes the pod (gRPC health and /healthz).
# The bundle default is OCR_BUNDLE above rather than an argument here: the operator passes
# its own arguments (--bundle=..., --device=..., batching) and they replace CMD, while a
# second --bundle in ENTRYPOINT would be refused by the argument parser.
ENTRYPOINT ["/usr/local/bin/ocr-inference-pod"]
