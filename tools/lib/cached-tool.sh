# Sourced by the tools/ scripts that build or fetch a pinned tool into the cache
# (build-kubeconform.sh, build-promtool.sh, fetch-gateway-api-crds.sh): the output
# directory, one run at a time per directory, and the hash of the module that pins it.

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
