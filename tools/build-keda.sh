#!/usr/bin/env bash
# Builds KEDA's operator (`keda`, cmd/operator) and its external metrics API server
# (`keda-adapter`, cmd/adapter) from the Go module pinned in tools/keda/ (go.mod + go.sum;
# no KEDA code is copied), and caches KEDA's CRDs (ScaledObject, ScaledJob,
# TriggerAuthentication, ClusterTriggerAuthentication, and eventing.keda.sh's
# CloudEventSource and ClusterCloudEventSource, whose controllers the operator also runs
# and without which it exits) out of the same module zip, which ships them under
# config/crd/bases/. The e2e tests of autoscaling run both binaries
# against the local control plane (e2e/src/keda.rs; e2e/src/toolchain.rs knows the paths).
#
# Usage: tools/build-keda.sh <out-bin-dir>
#   e.g. tools/build-keda.sh ~/.cache/kube-ocr/keda-v2.21.0/bin
#   leaves <out-bin-dir>/keda, <out-bin-dir>/keda-adapter and the CRDs next to the bin
#   directory: <out-bin-dir>/../crds/keda.sh_scaledobjects.yaml, ...
#
# Idempotent like tools/build-k8s-binaries.sh: each binary has a stamp <out>/.<name>.stamp
# naming the version, a hash of go.mod/go.sum and the build format, and the CRDs one in
# <out>/../crds/.keda-crds.stamp; whatever is current is skipped. Builds go to a temporary
# directory under <out> and are then moved into place, run niced (KEDA_BUILD_NICE, default
# 19) under a lock on <out>, with the normal Go module and build caches. Both binaries
# come from one `go build` (they share almost every package). A cold build (empty module
# and build caches: 314 module downloads, 1.7 GB, and 3.3 GB of build cache) takes 13 CPU
# minutes: 12.5 minutes on 2 cores shared with other builds, about 7 on idle ones. It
# leaves two stripped binaries of about 170 MB (keda) and 120 MB (keda-adapter).
set -euo pipefail

# The pin. v2.21.1 needs a newer Go than the toolchain used here; tools/keda/go.mod is the
# source of truth and must agree.
KEDA_VERSION=v2.21.0
KEDA_MODULE=github.com/kedacore/keda/v2
# Bump to force a rebuild when this script changes how it builds, or copies the CRDs.
STAMP_FORMAT=1
CRD_STAMP_FORMAT=2

if [ $# -ne 1 ]; then
  echo "usage: $0 <out-bin-dir>" >&2
  exit 2
fi
out=$1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tools/lib/cached-tool.sh
. "$repo/tools/lib/cached-tool.sh"
mod_dir=$repo/tools/keda
nice_cmd=(nice -n "${KEDA_BUILD_NICE:-19}")
go_build_env build-keda "$mod_dir" "$KEDA_MODULE" "$KEDA_VERSION"
prepare_output_dir build-keda "$out" "keda-$KEDA_VERSION" .build.lock
out=$OUTPUT_DIR
crd_out=$(dirname "$out")/crds
mod_hash=$(module_hash "$mod_dir")

# The CRDs: copied out of the module zip (`go mod download` checks it against go.sum).
# All of config/crd/bases/; these must be among them.
crd_stamp="keda-crds $KEDA_VERSION module=$mod_hash format=$CRD_STAMP_FORMAT"
crd_files=(keda.sh_scaledobjects.yaml keda.sh_scaledjobs.yaml keda.sh_triggerauthentications.yaml
  keda.sh_clustertriggerauthentications.yaml eventing.keda.sh_cloudeventsources.yaml
  eventing.keda.sh_clustercloudeventsources.yaml)
if [ -d "$crd_out" ] && stamp_is_current "$crd_out/.keda-crds.stamp" "$crd_stamp"; then
  echo "build-keda: KEDA $KEDA_VERSION CRDs up to date"
else
  json=$(cd "$mod_dir" && "$GO" mod download -json "$KEDA_MODULE")
  dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")
  tmp_crds=$(mktemp -d "$out/.tmp-crds.XXXXXX")
  trap 'rm -rf "$tmp_crds"' EXIT
  for file in "${crd_files[@]}"; do
    if [ ! -f "$dir/config/crd/bases/$file" ]; then
      echo "build-keda: no $file in the module at ${dir:-?}: $json" >&2
      exit 1
    fi
  done
  cp "$dir"/config/crd/bases/*.yaml "$tmp_crds/"
  # The module cache is read-only; the copies need not be.
  chmod -R u+w "$tmp_crds"
  echo "$crd_stamp" >"$tmp_crds/.keda-crds.stamp"
  rm -rf "$crd_out"
  mv "$tmp_crds" "$crd_out"
  chmod 755 "$crd_out"
  echo "build-keda: KEDA $KEDA_VERSION CRDs in $crd_out ($(ls "$crd_out" | wc -l) files)"
fi

# The binaries: name and package.
names=(keda keda-adapter)
packages=("$KEDA_MODULE/cmd/operator" "$KEDA_MODULE/cmd/adapter")
stamp_of() { echo "$1 $KEDA_VERSION module=$mod_hash format=$STAMP_FORMAT"; }
stale=0
for name in "${names[@]}"; do
  if ! { [ -x "$out/$name" ] && stamp_is_current "$out/.$name.stamp" "$(stamp_of "$name")"; }; then
    stale=1
  fi
done
if [ "$stale" = 0 ]; then
  echo "build-keda: keda and keda-adapter $KEDA_VERSION up to date"
  exit 0
fi

tmp=$(mktemp -d "$out/.tmp.XXXXXX")
trap 'rm -rf "$tmp" "${tmp_crds:-}"' EXIT

echo "build-keda: building keda and keda-adapter $KEDA_VERSION (a cold build takes 7 to 13 minutes) ..."
start=$(date +%s)
# KEDA's version variables, which both print at start-up; the module proxy names no commit,
# so GitCommit gets the module version too.
ldflags="-s -w -X $KEDA_MODULE/version.Version=${KEDA_VERSION#v} -X $KEDA_MODULE/version.GitCommit=$KEDA_VERSION"
# `go build -o DIR/` with several main packages writes each as DIR/<last path element>.
(cd "$mod_dir" && "${nice_cmd[@]}" "$GO" build -trimpath -ldflags "$ldflags" -o "$tmp/" "${packages[@]}")
mv "$tmp/operator" "$tmp/keda"
mv "$tmp/adapter" "$tmp/keda-adapter"
# Neither has a version flag; --help parses the flags and exits without touching a cluster.
for name in "${names[@]}"; do
  "$tmp/$name" --help >/dev/null 2>&1 || [ $? -le 2 ]
done
for name in "${names[@]}"; do
  install_built_binary "$out" "$name" "$tmp" "$(stamp_of "$name")"
done
echo "build-keda: built keda and keda-adapter $KEDA_VERSION in $(($(date +%s) - start))s ($(du -sh "$out/keda" | cut -f1), $(du -sh "$out/keda-adapter" | cut -f1))"
