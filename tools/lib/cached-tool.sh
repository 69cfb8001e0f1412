# Sourced by the tools/ scripts that build or fetch a pinned tool into the cache
# (build-keda.sh, build-kubeconform.sh, build-promtool.sh, build-seaweedfs.sh,
# fetch-gateway-api-crds.sh): the output directory, one run at a time per directory, the
# hash of the module that pins it, the Go build environment, and the stamp that says a
# cached binary is current.

# prepare_output_dir LABEL DIR EXPECTED_NAME LOCK_FILE
# Creates DIR and sets OUTPUT_DIR to its absolute path. Says so when DIR does not name the
# version (the Makefile keys cache directories by version, so that is likely a mistake).
# Holds an exclusive lock on DIR/LOCK_FILE until the script exits (make -j, two terminals).
prepare_output_dir() {
  local label=$1 dir=$2 expected=$3 lock=$4
  case $dir in
    *"$expected"*) ;;
    *) echo "$label: note: $dir does not name $expected" >&2 ;;
  esac
  mkdir -p "$dir"
  OUTPUT_DIR=$(cd "$dir" && pwd)
  if command -v flock >/dev/null; then
    exec 9>"$OUTPUT_DIR/$lock"
    flock 9
  fi
}

# module_hash DIR: a short hash of DIR/go.mod and DIR/go.sum, for the stamps.
module_hash() {
  cat "$1/go.mod" "$1/go.sum" | sha256sum | cut -c1-16
}

# go_build_env LABEL MOD_DIR MODULE VERSION
# Checks that MOD_DIR/go.mod pins MODULE at VERSION (the script's pin and the module must
# agree), then sets GO and the environment every pinned build here uses: module mode
# only, static, and never rewriting the committed go.mod/go.sum (whatever GOFLAGS the
# machine sets is kept).
go_build_env() {
  local label=$1 mod_dir=$2 module=$3 version=$4
  if ! grep -Eq "^[[:space:]]*(require[[:space:]]+)?$module $version( |$)" "$mod_dir/go.mod"; then
    echo "$label: $mod_dir/go.mod does not pin $module $version" >&2
    exit 1
  fi
  GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
  export CGO_ENABLED=0
  export GOWORK=off
  export GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false"
}

# stamp_is_current FILE STAMP: whether FILE exists and holds exactly STAMP.
stamp_is_current() {
  [ "$(cat "$1" 2>/dev/null)" = "$2" ]
}

# install_built_binary OUT NAME TMP STAMP
# Moves TMP/NAME to OUT/NAME and then records STAMP in OUT/.NAME.stamp. The old stamp
# goes first and the new one last, so an install cut short is rebuilt next time.
install_built_binary() {
  local out=$1 name=$2 tmp=$3 stamp=$4
  rm -f "$out/.$name.stamp"
  mv -f "$tmp/$name" "$out/$name"
  echo "$stamp" >"$tmp/.$name.stamp"
  mv -f "$tmp/.$name.stamp" "$out/.$name.stamp"
}
