#!/usr/bin/env bash
# Builds kubeconform (validates Kubernetes manifests against JSON schemas; `make
# chart-test` runs it on the rendered Helm chart, the kustomize base and the samples)
# from the Go module pinned in tools/kubeconform/ (go.mod + go.sum; no kubeconform code is
# copied). The schemas come from the pinned Kubernetes module instead of the internet:
# see tools/chart/openapi2jsonschema.py.
#
# Usage: tools/build-kubeconform.sh <out-bin-dir>
#   e.g. tools/build-kubeconform.sh ~/.cache/kube-ocr/kubeconform-v0.8.0/bin
#
# Idempotent like tools/build-k8s-binaries.sh: <out>/kubeconform has a stamp
# <out>/.kubeconform.stamp naming the version, a hash of go.mod/go.sum and the build
# format; a binary whose stamp matches is skipped. The build goes to a temporary
# directory under <out> and is then moved into place, runs niced
# (KUBECONFORM_BUILD_NICE, default 19) under a lock on <out>, with the normal Go module
# and build caches. A cold build takes about half a minute on 2 cores.
set -euo pipefail

# The pin; tools/kubeconform/go.mod is the source of truth and must agree.
KUBECONFORM_VERSION=v0.8.0
# Bump to force a rebuild when this script changes how it builds.
STAMP_FORMAT=1

if [ $# -ne 1 ]; then
  echo "usage: $0 <out-bin-dir>" >&2
  exit 2
fi
out=$1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tools/lib/cached-tool.sh
. "$repo/tools/lib/cached-tool.sh"
mod_dir=$repo/tools/kubeconform
nice_cmd=(nice -n "${KUBECONFORM_BUILD_NICE:-19}")
go_build_env build-kubeconform "$mod_dir" github.com/yannh/kubeconform "$KUBECONFORM_VERSION"
prepare_output_dir build-kubeconform "$out" "kubeconform-$KUBECONFORM_VERSION" .build.lock
out=$OUTPUT_DIR
mod_hash=$(module_hash "$mod_dir")
stamp="kubeconform $KUBECONFORM_VERSION module=$mod_hash format=$STAMP_FORMAT"
if [ -x "$out/kubeconform" ] && stamp_is_current "$out/.kubeconform.stamp" "$stamp"; then
  echo "build-kubeconform: kubeconform $KUBECONFORM_VERSION up to date"
  exit 0
fi

tmp=$(mktemp -d "$out/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "build-kubeconform: building kubeconform $KUBECONFORM_VERSION ..."
start=$(date +%s)
(cd "$mod_dir" && "${nice_cmd[@]}" "$GO" build -trimpath -ldflags "-s -w -X main.version=$KUBECONFORM_VERSION" \
  -o "$tmp/kubeconform" github.com/yannh/kubeconform/cmd/kubeconform)
"$tmp/kubeconform" -v >/dev/null
install_built_binary "$out" kubeconform "$tmp" "$stamp"
echo "build-kubeconform: built kubeconform in $(($(date +%s) - start))s: $("$out/kubeconform" -v 2>&1 | head -1)"
