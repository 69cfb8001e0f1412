#!/usr/bin/env bash
# `make docker-lint`: hadolint on deploy/docker/*.Dockerfile (settings in .hadolint.yaml),
# then the project's own rules, which a generic linter does not know:
#   - the final stage runs as the numeric non-root user 65532 (runAsNonRoot can verify it);
#   - the operator image is distroless/static and holds a musl (static) build;
#   - the inference pod has no HEALTHCHECK, exposes 50051, 8000 and 8080, bakes the bundle at
#     /models/ppocr-v4 and defaults OCR_BUNDLE to it.
# No Docker engine runs here, so the images themselves are not built: see deploy/README.md.
# Usage: deploy/docker/lint.sh <hadolint>
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 <hadolint>" >&2
  exit 2
fi
hadolint=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

"$hadolint" --config .hadolint.yaml operator.Dockerfile inference-pod.Dockerfile

failures=0
fail() { echo "docker-lint: $1" >&2; failures=$((failures + 1)); }
# The instructions of the last stage (from its FROM on).
final_stage() { awk '/^FROM /{buf=""} {buf=buf $0 "\n"} END{printf "%s", buf}' "$1"; }
has() { grep -Eq "$2" <<<"$1"; }

for f in operator.Dockerfile inference-pod.Dockerfile; do
  stage=$(final_stage "$f")
  last_user=$(grep -E '^USER ' <<<"$stage" | tail -1)
  [ "$last_user" = "USER 65532:65532" ] || fail "$f: the final stage's last USER is '$last_user', not 'USER 65532:65532'"
  grep -Eq '^HEALTHCHECK' "$f" && fail "$f: has a HEALTHCHECK (Kubernetes probes the pods)"
  has "$stage" '^ENTRYPOINT \["/' || fail "$f: no exec-form ENTRYPOINT with an absolute path"
done

op=$(final_stage operator.Dockerfile)
grep -Eq '^ARG RUNTIME_IMAGE=gcr.io/distroless/static' operator.Dockerfile || fail "operator.Dockerfile: runtime is not distroless/static"
grep -Eq -- '--target x86_64-unknown-linux-musl' operator.Dockerfile || fail "operator.Dockerfile: not a musl (static) build"
has "$op" '^COPY --from=artifacts /out/ocr-operator ' || fail "operator.Dockerfile: the final stage does not copy ocr-operator"
grep -Eq '^ARG ARTIFACTS=build$' operator.Dockerfile || fail "operator.Dockerfile: users' default is not the build stage"

inf=$(final_stage inference-pod.Dockerfile)
has "$inf" '^EXPOSE 50051 8000 8080$' || fail "inference-pod.Dockerfile: does not EXPOSE 50051 8000 8080"
has "$inf" '^COPY --from=bundle-artifacts /out/models/ppocr-v4 /models/ppocr-v4$' || fail "inference-pod.Dockerfile: no bundle at /models/ppocr-v4"
has "$inf" 'OCR_BUNDLE=file:///models/ppocr-v4' || fail "inference-pod.Dockerfile: OCR_BUNDLE does not default to the baked bundle"
grep -Eq '^COPY --from=artifacts /out/libs/ /$' inference-pod.Dockerfile || fail "inference-pod.Dockerfile: libtorch is not copied to its build-time path"
grep -Eq '^ARG LIBS_IMAGE=runtime-libs$' inference-pod.Dockerfile && grep -Eq '^FROM \$\{LIBS_IMAGE\} AS runtime$' inference-pod.Dockerfile \
  || fail "inference-pod.Dockerfile: the runtime stage does not start from the runtime-libs stage by default"
grep -Eq '^ARG ARTIFACTS=build$' inference-pod.Dockerfile && grep -Eq '^ARG BUNDLE_ARTIFACTS=bundle$' inference-pod.Dockerfile \
  || fail "inference-pod.Dockerfile: users' defaults are not the build and bundle stages"
grep -Eq '^ARG RUNTIME_IMAGE=nvidia/cuda:13\.' inference-pod.Dockerfile || fail "inference-pod.Dockerfile: runtime is not a CUDA 13 image"

if [ $failures -gt 0 ]; then
  echo "docker-lint: $failures problems" >&2
  exit 1
fi
echo "docker-lint: operator.Dockerfile and inference-pod.Dockerfile OK"
