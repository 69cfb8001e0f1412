#!/usr/bin/env bash
# Builds the binaries of the e2e control plane from the Go modules pinned under
# e2e/k8s-tools/ (go.mod + go.sum; no Kubernetes code is copied):
#
#   kube-apiserver kube-controller-manager kube-scheduler kubectl   e2e/k8s-tools/kubernetes
#   etcd                                                            e2e/k8s-tools/etcd
#   helm                                                            e2e/k8s-tools/helm
#
# Usage: tools/build-k8s-binaries.sh <out-bin-dir> [binary...]
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
# Bump to force a rebuild when this script changes how it builds.
STAMP_FORMAT=1

ALL_BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl helm)

if [ $# -lt 1 ]; then
  echo "usage: $0 <out-bin-dir> [${ALL_BINARIES[*]}]" >&2
  exit 2
fi
out=$1
shift
binaries=("$@")
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

# Prints: module-dir package version ldflags
spec() {
  case $1 in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl)
      echo kubernetes "k8s.io/kubernetes/cmd/$1" "$KUBERNETES_VERSION" "$(k8s_ldflags)" ;;
    etcd)
      echo etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "-s -w" ;;
    helm)
      echo helm helm.sh/helm/v4/cmd/helm "$HELM_VERSION" \
        "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" ;;
    *)
      echo "build-k8s-binaries: unknown binary '$1' (known: ${ALL_BINARIES[*]})" >&2
      return 1 ;;
  esac
}

version_of() {
  case $1 in
    kubectl) "$2" version --client 2>&1 | head -1 ;;
    helm) "$2" version --short 2>&1 | head -1 ;;
    etcd) "$2" --version 2>&1 | head -1 ;;
    *) "$2" --version 2>&1 | head -1 ;;
  esac
}

total_start=$(date +%s)
built=0
for name in "${binaries[@]}"; do
  read -r dir pkg version ldflags < <(spec "$name") || exit 1
  mod_hash=$(cat "$tools_dir/$dir/go.mod" "$tools_dir/$dir/go.sum" | sha256sum | cut -c1-16)
  stamp="$name $version module=$dir@$mod_hash format=$STAMP_FORMAT"
  if [ -x "$out/$name" ] && [ "$(cat "$out/.$name.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "build-k8s-binaries: $name $version up to date"
    continue
  fi
  echo "build-k8s-binaries: building $name $version ($pkg) ..."
  start=$(date +%s)
  (cd "$tools_dir/$dir" && "${nice_cmd[@]}" "$GO" build -trimpath -ldflags "$ldflags" -o "$tmp/$name" "$pkg")
  rm -f "$out/.$name.stamp"
  mv -f "$tmp/$name" "$out/$name"
  echo "$stamp" >"$tmp/.$name.stamp"
  mv -f "$tmp/.$name.stamp" "$out/.$name.stamp"
  built=$((built + 1))
  echo "build-k8s-binaries: built $name in $(($(date +%s) - start))s: $(version_of "$name" "$out/$name")"
done
if [ $built -gt 0 ]; then
  echo "build-k8s-binaries: built $built binaries into $out in $(($(date +%s) - total_start))s"
fi
