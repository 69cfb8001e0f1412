#!/usr/bin/env bash
# Builds weed-s3tests: SeaweedFS's `weed` (one binary with the master, volume, filer and
# S3 gateway, `weed mini` runs them all in one process) from the Go module pinned in
# tools/seaweedfs/ (go.mod + go.sum; no SeaweedFS code is copied). It is the S3-compatible
# server that test-servers/src/s3.rs starts for the tests of the document jobs.
#
# Usage: tools/build-seaweedfs.sh <out-bin-dir>
#   e.g. tools/build-seaweedfs.sh ~/.cache/kube-ocr/seaweedfs-v0.0.0-20261109003541-7506e5f91cd6/bin
#
# It is built with `-tags s3tests`, as upstream's own s3-tests CI builds it: that tag makes
# one lifecycle day 10 s instead of 24 h (weed/util/constants_lifecycle_interval_10sec.go),
# so a test can watch an `Expiration.Days = 1` rule delete an object. Hence the name: this
# binary is for tests only, never for a deployment.
#
# Idempotent like tools/build-k8s-binaries.sh: <out>/weed-s3tests has a stamp
# <out>/.weed-s3tests.stamp naming the version, a hash of go.mod/go.sum, the build tags and
# the build format; a binary whose stamp matches is skipped. The build goes to a temporary
# directory under <out> and is then moved into place, runs niced (SEAWEEDFS_BUILD_NICE,
# default 19) under a lock on <out>, with the normal Go module and build caches. A cold
# build takes 4 to 5.5 minutes on 2 cores, plus about half a minute of module downloads
# (3.3 GB of them; the build cache grows by 1.8 GB), and leaves a stripped binary of about
# 165 MB.
set -euo pipefail

# The pin. SeaweedFS tags no Go module versions, so this is the pseudo-version of a
# commit; tools/seaweedfs/go.mod is the source of truth and must agree.
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6
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
mod_dir=$repo/tools/seaweedfs
nice_cmd=(nice -n "${SEAWEEDFS_BUILD_NICE:-19}")
go_build_env build-seaweedfs "$mod_dir" github.com/seaweedfs/seaweedfs "$SEAWEEDFS_VERSION"
prepare_output_dir build-seaweedfs "$out" "seaweedfs-$SEAWEEDFS_VERSION" .build.lock
out=$OUTPUT_DIR
mod_hash=$(module_hash "$mod_dir")
commit=${SEAWEEDFS_VERSION##*-}

name=weed-s3tests
tags=s3tests
stamp="$name $SEAWEEDFS_VERSION module=$mod_hash tags=$tags format=$STAMP_FORMAT"
if [ -x "$out/$name" ] && stamp_is_current "$out/.$name.stamp" "$stamp"; then
  echo "build-seaweedfs: $name $SEAWEEDFS_VERSION up to date"
  exit 0
fi

tmp=$(mktemp -d "$out/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "build-seaweedfs: building $name $SEAWEEDFS_VERSION (a cold build takes about 5 minutes) ..."
start=$(date +%s)
(cd "$mod_dir" && "${nice_cmd[@]}" "$GO" build -trimpath -tags "$tags" \
  -ldflags "-s -w -X github.com/seaweedfs/seaweedfs/weed/util/version.COMMIT=$commit" \
  -o "$tmp/$name" github.com/seaweedfs/seaweedfs/weed)
# `weed version` also prints an advertisement, to stderr.
"$tmp/$name" version >/dev/null 2>&1
install_built_binary "$out" "$name" "$tmp" "$stamp"
echo "build-seaweedfs: built $name in $(($(date +%s) - start))s: $("$out/$name" version 2>/dev/null | head -1)"
