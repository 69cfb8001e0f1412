#!/usr/bin/env bash
# Builds promtool (the Prometheus rule checker and unit-test runner that
# `make monitoring-test` uses) from the Go module pinned in tools/promtool/
# (go.mod + go.sum; no Prometheus code is copied).
#
# Usage: tools/build-promtool.sh <out-bin-dir>
#   e.g. tools/build-promtool.sh ~/.cache/kube-ocr/promtool-v3.16.0/bin
#
# Idempotent like tools/build-k8s-binaries.sh: <out>/promtool has a stamp
# <out>/.promtool.stamp naming the version, a hash of go.mod/go.sum and the build
# format; a binary whose stamp matches is skipped. The build goes to a temporary
# directory under <out> and is then moved into place, runs niced
# (PROMTOOL_BUILD_NICE, default 19) under a lock on <out>, with the normal Go
# module and build caches. The `remove_all_sd` build tag leaves out the cloud
# service-discovery plugins that rule checking never uses (kubernetes and file
# SD stay, promtool imports them directly). A cold build takes about 4.5 minutes
# on 2 cores, plus about 20 s of module downloads.
set -euo pipefail

# The pin. Prometheus 3.x publishes its Go module as v0.3XX.Y for release
# v3.XX.Y; tools/promtool/go.mod is the source of truth and must agree.
PROMETHEUS_MODULE_VERSION=v0.316.0
PROMTOOL_VERSION=3.16.0
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
mod_dir=$repo/tools/promtool
nice_cmd=(nice -n "${PROMTOOL_BUILD_NICE:-19}")
go_build_env build-promtool "$mod_dir" github.com/prometheus/prometheus "$PROMETHEUS_MODULE_VERSION"
minor=${PROMETHEUS_MODULE_VERSION#v0.3}
minor=${minor%%.*}
patch=${PROMETHEUS_MODULE_VERSION##*.}
if [ "3.$((10#$minor)).$patch" != "$PROMTOOL_VERSION" ]; then
  echo "build-promtool: module $PROMETHEUS_MODULE_VERSION is not Prometheus $PROMTOOL_VERSION" >&2
  exit 1
fi
prepare_output_dir build-promtool "$out" "promtool-v$PROMTOOL_VERSION" .build.lock
out=$OUTPUT_DIR
mod_hash=$(module_hash "$mod_dir")
stamp="promtool $PROMTOOL_VERSION module=$PROMETHEUS_MODULE_VERSION@$mod_hash format=$STAMP_FORMAT"
if [ -x "$out/promtool" ] && stamp_is_current "$out/.promtool.stamp" "$stamp"; then
  echo "build-promtool: promtool $PROMTOOL_VERSION up to date"
  exit 0
fi

tmp=$(mktemp -d "$out/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "build-promtool: building promtool $PROMTOOL_VERSION (a cold build takes about 5 minutes) ..."
start=$(date +%s)
ldflags="-s -w -X github.com/prometheus/common/version.Version=$PROMTOOL_VERSION -X github.com/prometheus/common/version.Branch=HEAD -X github.com/prometheus/common/version.Revision=$PROMETHEUS_MODULE_VERSION"
(cd "$mod_dir" && "${nice_cmd[@]}" "$GO" build -trimpath -tags remove_all_sd -ldflags "$ldflags" \
  -o "$tmp/promtool" github.com/prometheus/prometheus/cmd/promtool)
"$tmp/promtool" --version >/dev/null
install_built_binary "$out" promtool "$tmp" "$stamp"
echo "build-promtool: built promtool in $(($(date +%s) - start))s: $("$out/promtool" --version 2>&1 | head -1)"
