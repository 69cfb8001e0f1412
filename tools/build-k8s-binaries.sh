#!/usr/bin/env bash
# Builds the binaries of the e2e cluster from the Go modules pinned under
# e2e/k8s-tools/ (go.mod + go.sum; no upstream code is copied):
#
#   the control plane
#   kube-apiserver kube-controller-manager kube-scheduler kubectl   e2e/k8s-tools/kubernetes
#   etcd                                                            e2e/k8s-tools/etcd
#   helm                                                            e2e/k8s-tools/helm
#   the nodes
#   kubelet kube-proxy                                              e2e/k8s-tools/kubernetes
#   pause (C, static: build/pause/linux/pause.c of that module)     e2e/k8s-tools/kubernetes
#   containerd containerd-shim-runc-v2 ctr                          e2e/k8s-tools/containerd
#   cni/bridge cni/host-local cni/loopback cni/portmap              e2e/k8s-tools/cni-plugins
#   coredns (the cluster's DNS add-on)                              e2e/k8s-tools/coredns
#
# Usage: tools/build-k8s-binaries.sh <out-bin-dir> [binary... | control-plane | node]
#
# Idempotent: each <out>/<name> has a stamp <out>/.<name>.stamp naming the
# pinned version and a hash of its module's go.mod/go.sum; a binary whose stamp
# matches is skipped. Builds go to a temporary directory under <out> and are then
# moved into place, so an interrupted run never leaves a half-written binary.
# Builds run one at a time, niced (K8S_BUILD_NICE, default 19), with the normal Go
# module and build caches.
set -euo pipefail

# The pins. The go.mod files are the source of truth; these are the version
# stamps compiled into the binaries and must agree with them (checked below).
KUBERNETES_VERSION=v1.36.3
ETCD_VERSION=v3.6.8
HELM_VERSION=v4.2.4
CONTAINERD_VERSION=v2.2.10
CNI_PLUGINS_VERSION=v1.9.1
COREDNS_VERSION=v1.14.2
# Bump to force a rebuild when this script changes how it builds.
STAMP_FORMAT=1

CONTROL_PLANE_BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl helm)
NODE_BINARIES=(kubelet kube-proxy pause containerd containerd-shim-runc-v2 ctr
  cni/bridge cni/host-local cni/loopback cni/portmap coredns)
ALL_BINARIES=("${CONTROL_PLANE_BINARIES[@]}" "${NODE_BINARIES[@]}")

if [ $# -lt 1 ]; then
  echo "usage: $0 <out-bin-dir> [${ALL_BINARIES[*]} | control-plane | node]" >&2
  exit 2
fi
out=$1
shift
binaries=()
for arg in "$@"; do
  case $arg in
    control-plane) binaries+=("${CONTROL_PLANE_BINARIES[@]}") ;;
    node) binaries+=("${NODE_BINARIES[@]}") ;;
    *) binaries+=("$arg") ;;
  esac
done
[ ${#binaries[@]} -gt 0 ] || binaries=("${ALL_BINARIES[@]}")

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools_dir=$repo/e2e/k8s-tools
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
nice_cmd=(nice -n "${K8S_BUILD_NICE:-19}")

export CGO_ENABLED=0
export GOWORK=off
# Keep whatever GOFLAGS the machine sets (e.g. -buildvcs=false) and never let a
# build rewrite the committed go.mod/go.sum.
export GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false"

mkdir -p "$out"
out=$(cd "$out" && pwd)

# One run at a time per output directory (make -j, two terminals).
if command -v flock >/dev/null; then
  exec 9>"$out/.build.lock"
  flock 9
fi

tmp=$(mktemp -d "$out/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Fails loudly if a module's go.mod does not pin what this script stamps.
check_pin() { # module-dir module-path version
  if ! grep -Eq "^[[:space:]]*(require[[:space:]]+)?$2 $3( |$)" "$tools_dir/$1/go.mod"; then
    echo "build-k8s-binaries: $tools_dir/$1/go.mod does not pin $2 $3" >&2
    exit 1
  fi
}
check_pin kubernetes k8s.io/kubernetes "$KUBERNETES_VERSION"
check_pin etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
check_pin helm helm.sh/helm/v4 "$HELM_VERSION"
check_pin containerd github.com/containerd/containerd/v2 "$CONTAINERD_VERSION"
check_pin cni-plugins github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION"
check_pin coredns github.com/coredns/coredns "$COREDNS_VERSION"

build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
k8s_minor=${KUBERNETES_VERSION#v*.}
k8s_minor=${k8s_minor%%.*}
k8s_major=${KUBERNETES_VERSION#v}
k8s_major=${k8s_major%%.*}

k8s_ldflags() {
  local flags="-s -w" key val
  for kv in "gitVersion=$KUBERNETES_VERSION" "gitMajor=$k8s_major" "gitMinor=$k8s_minor" \
            "gitTreeState=clean" "buildDate=$build_date"; do
    key=${kv%%=*} val=${kv#*=}
    flags+=" -X k8s.io/component-base/version.$key=$val -X k8s.io/client-go/pkg/version.$key=$val"
  done
  echo "$flags"
}

cni_ldflags() {
  echo "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$CNI_PLUGINS_VERSION"
}

# Prints: module-dir package version tags ldflags ("-" for none). The package "pause.c"
# is the pause container's C program, not a Go package.
spec() {
  case $1 in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl|kubelet|kube-proxy)
      echo kubernetes "k8s.io/kubernetes/cmd/$1" "$KUBERNETES_VERSION" - "$(k8s_ldflags)" ;;
    etcd)
      echo etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" - "-s -w" ;;
    helm)
      echo helm helm.sh/helm/v4/cmd/helm "$HELM_VERSION" - \
        "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" ;;
    containerd|containerd-shim-runc-v2|ctr)
      # Without the btrfs, devmapper and zfs snapshotters: they need cgo, and the nodes
      # use overlayfs.
      echo containerd "github.com/containerd/containerd/v2/cmd/$1" "$CONTAINERD_VERSION" \
        no_btrfs,no_devmapper,no_zfs \
        "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" ;;
    cni/bridge|cni/loopback)
      echo cni-plugins "github.com/containernetworking/plugins/plugins/main/${1#cni/}" "$CNI_PLUGINS_VERSION" - "$(cni_ldflags)" ;;
    cni/host-local)
      echo cni-plugins "github.com/containernetworking/plugins/plugins/ipam/${1#cni/}" "$CNI_PLUGINS_VERSION" - "$(cni_ldflags)" ;;
    cni/portmap)
      echo cni-plugins "github.com/containernetworking/plugins/plugins/meta/${1#cni/}" "$CNI_PLUGINS_VERSION" - "$(cni_ldflags)" ;;
    coredns)
      echo coredns github.com/coredns/coredns "$COREDNS_VERSION" - "-s -w" ;;
    pause)
      echo kubernetes pause.c "$KUBERNETES_VERSION" - - ;;
    *)
      echo "build-k8s-binaries: unknown binary '$1' (known: ${ALL_BINARIES[*]})" >&2
      return 1 ;;
  esac
}

# The pause container's program: build/pause/linux/pause.c of the pinned kubernetes
# module, compiled static because its image holds nothing else.
build_pause() { # output
  local src
  src=$(cd "$tools_dir/kubernetes" && "$GO" list -m -f '{{.Dir}}' k8s.io/kubernetes)
  if [ -z "$src" ] || [ ! -d "$src" ]; then
    (cd "$tools_dir/kubernetes" && "$GO" mod download k8s.io/kubernetes)
    src=$(cd "$tools_dir/kubernetes" && "$GO" list -m -f '{{.Dir}}' k8s.io/kubernetes)
  fi
  [ -f "$src/build/pause/linux/pause.c" ] || {
    echo "build-k8s-binaries: no build/pause/linux/pause.c in '$src'" >&2
    return 1
  }
  "${nice_cmd[@]}" "${CC:-cc}" -Os -Wall -Werror -static -DVERSION="$KUBERNETES_VERSION" \
    -o "$1" "$src/build/pause/linux/pause.c"
}

version_of() {
  case $1 in
    kubectl) "$2" version --client 2>&1 | head -1 ;;
    helm) "$2" version --short 2>&1 | head -1 ;;
    etcd) "$2" --version 2>&1 | head -1 ;;
    pause|containerd-shim-runc-v2) "$2" -v 2>&1 | head -1 ;;
    coredns) "$2" -version 2>&1 | head -1 ;;
    cni/*) CNI_COMMAND=VERSION "$2" </dev/null 2>&1 | head -1 ;;
    *) "$2" --version 2>&1 | head -1 ;;
  esac
}

total_start=$(date +%s)
built=0
for name in "${binaries[@]}"; do
  read -r dir pkg version tags ldflags < <(spec "$name") || exit 1
  mod_hash=$(cat "$tools_dir/$dir/go.mod" "$tools_dir/$dir/go.sum" | sha256sum | cut -c1-16)
  stamp="$name $version module=$dir@$mod_hash format=$STAMP_FORMAT"
  # cni/bridge is $out/cni/bridge, stamped by $out/cni/.bridge.stamp.
  target=$out/$name
  stamp_file=$(dirname "$target")/.$(basename "$name").stamp
  if [ -x "$target" ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp" ]; then
    echo "build-k8s-binaries: $name $version up to date"
    continue
  fi
  echo "build-k8s-binaries: building $name $version ($pkg) ..."
  start=$(date +%s)
  built_file=$tmp/$(basename "$name")
  if [ "$pkg" = pause.c ]; then
    build_pause "$built_file"
  else
    tag_args=()
    [ "$tags" = - ] || tag_args=(-tags "$tags")
    (cd "$tools_dir/$dir" && "${nice_cmd[@]}" "$GO" build -trimpath "${tag_args[@]}" \
      -ldflags "$ldflags" -o "$built_file" "$pkg")
  fi
  mkdir -p "$(dirname "$target")"
  rm -f "$stamp_file"
  mv -f "$built_file" "$target"
  echo "$stamp" >"$tmp/stamp"
  mv -f "$tmp/stamp" "$stamp_file"
  built=$((built + 1))
  echo "build-k8s-binaries: built $name in $(($(date +%s) - start))s: $(version_of "$name" "$target")"
done
if [ $built -gt 0 ]; then
  echo "build-k8s-binaries: built $built binaries into $out in $(($(date +%s) - total_start))s"
fi
