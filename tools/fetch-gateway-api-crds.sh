#!/usr/bin/env bash
# Caches the Gateway API's standard-channel CRDs (GRPCRoute, HTTPRoute, ...) from the Go
# module pinned in tools/gateway-api/ (go.mod + go.sum; the module zip ships them under
# config/crd/standard/). The e2e scenarios of the gatewayAPI traffic provider install
# GRPCRoute and HTTPRoute from there into the local control plane
# (e2e/tests/operator/support/gateway_api.rs; e2e/src/toolchain.rs knows the path). No
# Gateway API code is copied, and nothing is downloaded but the module itself.
#
# Usage: tools/fetch-gateway-api-crds.sh <out-dir>
#   e.g. tools/fetch-gateway-api-crds.sh ~/.cache/kube-ocr/gateway-api-v1.6.3
#   leaves <out-dir>/standard/gateway.networking.k8s.io_grpcroutes.yaml, ...
#
# Idempotent like tools/build-kubeconform.sh: <out>/.gateway-api.stamp names the version
# and a hash of go.mod/go.sum; a matching stamp skips the work. `go mod download` checks
# the module against go.sum. The copy goes to a temporary directory under <out> and is
# then moved into place, under a lock on <out>.
set -euo pipefail

# Bump to force a refresh when this script changes what it leaves.
STAMP_FORMAT=1

if [ $# -ne 1 ]; then
  echo "usage: $0 <out-dir>" >&2
  exit 2
fi
out=$1

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=tools/lib/cached-tool.sh
. "$repo/tools/lib/cached-tool.sh"
mod_dir=$repo/tools/gateway-api
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
export GOWORK=off
# Keep whatever GOFLAGS the machine sets and never rewrite the committed go.mod/go.sum.
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

# The pin: tools/gateway-api/go.mod is the one place it is written.
version=$(awk '$1 == "require" && $2 == "sigs.k8s.io/gateway-api" { print $3; exit }
               $1 == "sigs.k8s.io/gateway-api" { print $2; exit }' "$mod_dir/go.mod")
if [ -z "$version" ]; then
  echo "fetch-gateway-api-crds: $mod_dir/go.mod does not pin sigs.k8s.io/gateway-api" >&2
  exit 1
fi
prepare_output_dir fetch-gateway-api-crds "$out" "gateway-api-$version" .fetch.lock
out=$OUTPUT_DIR
mod_hash=$(module_hash "$mod_dir")
stamp="gateway-api $version module=$mod_hash format=$STAMP_FORMAT"
if [ -d "$out/standard" ] && stamp_is_current "$out/.gateway-api.stamp" "$stamp"; then
  echo "fetch-gateway-api-crds: Gateway API $version CRDs up to date"
  exit 0
fi

json=$(cd "$mod_dir" && "$GO" mod download -json "sigs.k8s.io/gateway-api")
dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$json")
for plural in grpcroutes httproutes; do
  if [ ! -f "$dir/config/crd/standard/gateway.networking.k8s.io_$plural.yaml" ]; then
    echo "fetch-gateway-api-crds: no $plural CRD in the module at ${dir:-?}: $json" >&2
    exit 1
  fi
done

tmp=$(mktemp -d "$out/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/standard"
cp "$dir"/config/crd/standard/*.yaml "$tmp/standard/"
# The module cache is read-only; the copies need not be.
chmod -R u+w "$tmp/standard"
rm -f "$out/.gateway-api.stamp"
rm -rf "$out/standard"
mv "$tmp/standard" "$out/standard"
echo "$stamp" >"$tmp/.gateway-api.stamp"
mv -f "$tmp/.gateway-api.stamp" "$out/.gateway-api.stamp"
echo "fetch-gateway-api-crds: Gateway API $version CRDs in $out/standard ($(ls "$out/standard" | wc -l) files)"
