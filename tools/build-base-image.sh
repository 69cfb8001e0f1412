#!/usr/bin/env bash
# Builds the base image the test and demo images run on, offline: a minimal Debian rootfs
# from Debian's archive (debootstrap, the only network it needs), imported by buildah and
# written as an OCI archive. It stands in for the registry images the Dockerfiles name by
# default (distroless, nvidia/cuda), which cannot be pulled here; deploy/README.md says how
# the test build differs from a user's.
#
# Usage: tools/build-base-image.sh <out-dir>
#   writes <out-dir>/debian-<suite>.oci.tar, image reference $BASE_IMAGE_REFERENCE below.
#
# Idempotent: the archive has a stamp naming the suite, the package list and this script's
# STAMP_FORMAT; a matching stamp skips the build. Takes about 30 s (debootstrap) cold.
set -euo pipefail

SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the images' programs load besides glibc: CA certificates for https:// model bundles.
PACKAGES=ca-certificates
BASE_IMAGE_REFERENCE=localhost/kube-ocr-base:$SUITE
STAMP_FORMAT=1

if [ $# -ne 1 ]; then
  echo "usage: $0 <out-dir>" >&2
  exit 2
fi
mkdir -p "$1"
out=$(cd "$1" && pwd)
archive=$out/debian-$SUITE.oci.tar
stamp="$BASE_IMAGE_REFERENCE suite=$SUITE packages=$PACKAGES format=$STAMP_FORMAT"
if [ -f "$archive" ] && [ "$(cat "$out/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "build-base-image: $BASE_IMAGE_REFERENCE up to date"
  exit 0
fi
for program in debootstrap buildah; do
  command -v "$program" >/dev/null || { echo "build-base-image: $program missing; run \`make setup\`" >&2; exit 1; }
done

exec 9>"$out/.build.lock"
flock 9
tmp=$(mktemp -d "$out/.tmp.XXXXXX")
buildah=(buildah --root "$tmp/storage" --runroot "$tmp/run" --storage-driver vfs)
cleanup() {
  "${buildah[@]}" rm --all >/dev/null 2>&1 || :
  rm -rf "$tmp"
}
trap cleanup EXIT

start=$(date +%s)
echo "build-base-image: debootstrap $SUITE (minbase, $PACKAGES) ..."
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp/rootfs" "$MIRROR" >"$tmp/debootstrap.log" 2>&1 || {
  tail -20 "$tmp/debootstrap.log" >&2
  echo "build-base-image: debootstrap failed; log above" >&2
  exit 1
}
# Nothing an image needs at run time: package caches and lists, documentation.
rm -rf "$tmp/rootfs"/var/cache/apt/* "$tmp/rootfs"/var/lib/apt/lists/* "$tmp/rootfs"/usr/share/doc/* \
  "$tmp/rootfs"/usr/share/man/* "$tmp/rootfs"/usr/share/locale/*
tar -C "$tmp/rootfs" --numeric-owner -cf "$tmp/rootfs.tar" .

container=$("${buildah[@]}" from scratch)
"${buildah[@]}" add "$container" "$tmp/rootfs.tar" / >/dev/null
"${buildah[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --cmd /bin/bash "$container"
"${buildah[@]}" commit --quiet --rm "$container" "$BASE_IMAGE_REFERENCE" >/dev/null
rm -f "$archive" "$out/.stamp"
"${buildah[@]}" push --quiet "$BASE_IMAGE_REFERENCE" "oci-archive:$tmp/image.tar:$BASE_IMAGE_REFERENCE"
mv "$tmp/image.tar" "$archive"
echo "$stamp" >"$out/.stamp"
echo "build-base-image: $BASE_IMAGE_REFERENCE in $archive ($(du -h "$archive" | cut -f1)) in $(($(date +%s) - start))s"
