#!/usr/bin/env bash
# The GPU check of issue #16 in one call: on a machine with an NVIDIA GPU, a Python whose
# `torch` is PyTorch 2.11 (the cu130 wheel) and no Rust, it runs the release
# `ocr-inference-pod` built in this repo against that PyTorch's libtorch and reports, on
# one device:
#   - golden accuracy at fp32 and at half precision (ocr-golden eval over the whole set),
#     and the pod's own start-up precision gate (fp32 vs half on its self-test samples);
#   - lines/s (LINE) and pages/s (DOCUMENT) at concurrency 1 and 32, batching on
#     (--max-batch-size GPU_CHECK_MAX_BATCH) and off (1), at both precisions (load_client);
#   - GPU memory from NVML (nvidia-smi per process and per GPU, and the pod's own
#     ocr_gpu_memory_used_bytes gauge);
#   - the same TorchScript modules' raw forward in PyTorch on that device, fp32 and half,
#     timed with cuda synchronize: the upper limit the server can approach.
# It writes <out>/report.md (and the raw JSON beside it) and prints the report. Every step
# runs under `timeout` against one deadline (GPU_CHECK_TOTAL_SECS, default 450 s): steps
# that no longer fit are skipped and listed, so the whole call stays under 8 minutes.
#
# Usage: gpu-check.sh [flags]     (every flag also reads the environment variable named)
#   --pod BIN           GPU_CHECK_POD           release ocr-inference-pod   [bin/ocr-inference-pod]
#   --load-client BIN   GPU_CHECK_LOAD_CLIENT   release example load_client [bin/load_client]
#   --golden-cli BIN    GPU_CHECK_GOLDEN_CLI    release ocr-golden          [bin/ocr-golden]
#   --bundle DIR        GPU_CHECK_BUNDLE        model bundle                [bundle/ppocr-v4]
#   --golden DIR        GPU_CHECK_GOLDEN        golden set                  [golden]
#   --out DIR           GPU_CHECK_OUT           report folder               [./gpu-check-out]
#   --device DEV        GPU_CHECK_DEVICE        cuda:0, or cpu for a dry run [cuda:0]
#   --half P            GPU_CHECK_HALF          fp16 or bf16                [fp16 on cuda, bf16 on cpu]
#   --max-batch N       GPU_CHECK_MAX_BATCH     "batching on" batch size    [32]
#   --duration S        GPU_CHECK_DURATION      counted seconds per load run [8; 2 on cpu]
#   --warm-up S         GPU_CHECK_WARM_UP       uncounted seconds before it  [2; 1 on cpu]
#   --total-secs S      GPU_CHECK_TOTAL_SECS    deadline of the whole check  [450]
#   PYTHON                                      a python that imports torch [python3]
#   GPU_CHECK_GRPC_PORT / GPU_CHECK_HTTP_PORT   the pod's ports             [50151 / 8181]
# Defaults in [] are relative to this script's folder: the layout `make gpu-check-bundle`
# writes to target/gpu-check/ (carry that folder to the GPU machine and run
# `bash gpu-check.sh`). `--device cpu` is the dry run for a machine without a GPU: the
# same steps with short load runs and bf16.
#
# libtorch: the binaries were linked against this repo's venv torch, whose folder is baked
# in as DT_RUNPATH (the linker's default new dtags; inference-pod/build.rs passes
# -rpath). LD_LIBRARY_PATH is searched before DT_RUNPATH (it would not be before an old
# DT_RPATH), so exporting the GPU machine's `torch/lib` makes the binaries use its
# libtorch; the check prints which libraries ldd resolves and stops if any is missing.
set -uo pipefail

started=$(date +%s)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

POD=${GPU_CHECK_POD:-$here/bin/ocr-inference-pod}
LOAD_CLIENT=${GPU_CHECK_LOAD_CLIENT:-$here/bin/load_client}
GOLDEN_CLI=${GPU_CHECK_GOLDEN_CLI:-$here/bin/ocr-golden}
BUNDLE=${GPU_CHECK_BUNDLE:-$here/bundle/ppocr-v4}
GOLDEN=${GPU_CHECK_GOLDEN:-$here/golden}
OUT=${GPU_CHECK_OUT:-$PWD/gpu-check-out}
DEVICE=${GPU_CHECK_DEVICE:-cuda:0}
HALF=${GPU_CHECK_HALF:-}
MAX_BATCH=${GPU_CHECK_MAX_BATCH:-32}
DURATION=${GPU_CHECK_DURATION:-}
WARM_UP=${GPU_CHECK_WARM_UP:-}
TOTAL_SECS=${GPU_CHECK_TOTAL_SECS:-450}
PYTHON=${PYTHON:-python3}
GRPC_PORT=${GPU_CHECK_GRPC_PORT:-50151}
HTTP_PORT=${GPU_CHECK_HTTP_PORT:-8181}
HTTP_API_PORT=${GPU_CHECK_HTTP_API_PORT:-8101}

usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case $1 in
    --pod) POD=$2; shift 2 ;;
    --load-client) LOAD_CLIENT=$2; shift 2 ;;
    --golden-cli) GOLDEN_CLI=$2; shift 2 ;;
    --bundle) BUNDLE=$2; shift 2 ;;
    --golden) GOLDEN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --half) HALF=$2; shift 2 ;;
    --max-batch) MAX_BATCH=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --warm-up) WARM_UP=$2; shift 2 ;;
    --total-secs) TOTAL_SECS=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (--help lists them)" >&2; exit 2 ;;
  esac
done

if [ "$DEVICE" = cpu ]; then
  HALF=${HALF:-bf16}; DURATION=${DURATION:-2}; WARM_UP=${WARM_UP:-1}
else
  HALF=${HALF:-fp16}; DURATION=${DURATION:-8}; WARM_UP=${WARM_UP:-2}
fi

fail() { echo "gpu-check: $*" >&2; exit 1; }
for bin in "$POD" "$LOAD_CLIENT" "$GOLDEN_CLI"; do [ -x "$bin" ] || fail "$bin is not an executable (see --help)"; done
[ -f "$BUNDLE/bundle.yaml" ] || fail "$BUNDLE has no bundle.yaml"
[ -f "$GOLDEN/truth.jsonl" ] || fail "$GOLDEN has no truth.jsonl"
case $HALF in fp16|bf16) ;; *) fail "--half must be fp16 or bf16, not $HALF" ;; esac

mkdir -p "$OUT/raw" || fail "cannot create $OUT"
rm -f "$OUT"/raw/* "$OUT/report.md"
STEPS=$OUT/raw/steps.tsv
: >"$STEPS"

# Seconds left before the deadline, and whether a step of `need` seconds still fits.
left() { echo $(( TOTAL_SECS - ($(date +%s) - started) )); }
fits() { [ "$(left)" -ge "$1" ]; }
# step NAME CAP CMD...: runs CMD under `timeout` (CAP, or what is left if less) and
# records name, exit code and seconds; a step that does not fit is recorded as skipped.
step() {
  local name=$1 cap=$2; shift 2
  local budget; budget=$(left)
  [ "$budget" -lt "$cap" ] && cap=$budget
  if [ "$cap" -lt 5 ]; then
    printf '%s\tskipped (time cap)\t0\n' "$name" >>"$STEPS"
    return 124
  fi
  local t0; t0=$(date +%s)
  timeout --kill-after=5 "$cap" "$@"
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" >>"$STEPS"
  return $rc
}

echo "gpu-check: device $DEVICE, half precision $HALF, out $OUT, deadline ${TOTAL_SECS}s" >&2

# --- libtorch from the machine's PyTorch -------------------------------------------------
TORCH_LIB=$("$PYTHON" -c 'import torch, os; print(os.path.dirname(torch.__file__) + "/lib")') \
  || fail "$PYTHON cannot import torch"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
{
  echo "torch_lib=$TORCH_LIB"
  "$PYTHON" -c 'import torch; print("torch=" + torch.__version__); print("torch_cuda=" + str(torch.version.cuda)); print("cuda_available=" + str(torch.cuda.is_available()))'
  echo "dynamic_section=$(readelf -d "$POD" 2>/dev/null | grep -Eo '\((RPATH|RUNPATH)\).*' | tr -s ' ' | paste -sd ';')"
  echo "nvidia_smi=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
} >"$OUT/raw/environment.txt"
ldd "$POD" >"$OUT/raw/ldd.txt" 2>&1
if grep -q 'not found' "$OUT/raw/ldd.txt"; then
  cat "$OUT/raw/ldd.txt" >&2
  fail "the pod binary misses libraries with LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
fi
if ! grep -E 'libtorch_cpu\.so' "$OUT/raw/ldd.txt" | grep -qF "$TORCH_LIB"; then
  echo "gpu-check: warning: libtorch_cpu.so does not resolve from $TORCH_LIB (see raw/ldd.txt)" >&2
fi

# --- raw PyTorch forward: the upper limit --------------------------------------------------
# (A file, not a shell function: `timeout` runs programs.)
cat >"$OUT/raw/raw_forward.py" <<'PY'
import json, os, re, struct, sys, time
import torch

bundle, golden, device, half = sys.argv[1:5]
manifest = open(os.path.join(bundle, "bundle.yaml")).read()

def module_file(stage, default):
    # bundle.yaml is flow YAML; no PyYAML on the GPU machine is assumed.
    m = re.search(stage + r":\s*\{[^}]*?file:\s*([^,}\s]+)", manifest)
    return os.path.join(bundle, m.group(1) if m else default)

def number(key, default):
    m = re.search(key + r":\s*([0-9]+)", manifest)
    return int(m.group(1)) if m else default

# The detector input of the first golden page, as the pod computes it (limitType min).
limit, multiple = number("limitSideLen", 736), number("multipleOf", 32)
truth = [json.loads(l) for l in open(os.path.join(golden, "truth.jsonl")) if l.strip()]
page = next(t for t in truth if t["task"] == "DOCUMENT")
with open(os.path.join(golden, page["file"]), "rb") as f:
    w, h = struct.unpack(">II", f.read(24)[16:24])
ratio = limit / min(w, h) if min(w, h) < limit else 1.0
side = lambda s: max(multiple, int(round(int(s * ratio) / multiple)) * multiple)
det_shape = (1, 3, side(h), side(w))
rec_shape = (32, 3, 48, 320)

dev = torch.device(device)
cuda = dev.type == "cuda"
iters, warm = (20, 5) if cuda else (3, 2)
sync = torch.cuda.synchronize if cuda else (lambda: None)
results = {"device": device, "det_shape": list(det_shape), "rec_shape": list(rec_shape),
           "gpu": torch.cuda.get_device_name(dev) if cuda else "cpu", "runs": []}
for precision, dtype in (("fp32", torch.float32), (half, {"fp16": torch.float16, "bf16": torch.bfloat16}[half])):
    for stage, default, shape in (("detector", "det.pt", det_shape), ("recognizer", "rec.pt", rec_shape)):
        run = {"precision": precision, "stage": stage, "shape": list(shape)}
        try:
            module = torch.jit.load(module_file(stage, default), map_location=dev).eval().to(dtype)
            x = torch.rand(shape, device=dev, dtype=dtype)
            if cuda:
                torch.cuda.reset_peak_memory_stats(dev)
            with torch.inference_mode():
                for _ in range(warm):
                    module(x)
                sync()
                t0 = time.perf_counter()
                for _ in range(iters):
                    module(x)
                sync()
            run["ms"] = (time.perf_counter() - t0) / iters * 1000
            run["items_per_s"] = shape[0] / (run["ms"] / 1000)
            if cuda:
                run["peak_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
            del module, x
            if cuda:
                torch.cuda.empty_cache()
        except Exception as e:  # a precision the device lacks is a result, not a crash
            run["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
        results["runs"].append(run)
print(json.dumps(results))
PY
step raw-forward 120 "$PYTHON" "$OUT/raw/raw_forward.py" "$BUNDLE" "$GOLDEN" "$DEVICE" "$HALF" \
  >"$OUT/raw/raw_forward.json" 2>"$OUT/raw/raw_forward.log"

# --- the pod under load ---------------------------------------------------------------------
http_get() {  # http_get PATH -> body on stdout; exit 1 when the pod does not answer 2xx
  "$PYTHON" - "http://127.0.0.1:$HTTP_PORT$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    sys.stdout.write(e.read().decode()); sys.exit(1)
except Exception as e:
    sys.stdout.write(str(e)); sys.exit(2)
PY
}

POD_PID=
stop_pod() {
  [ -n "$POD_PID" ] || return 0
  kill -TERM "$POD_PID" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$POD_PID" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$POD_PID" 2>/dev/null
  wait "$POD_PID" 2>/dev/null
  POD_PID=
}
trap stop_pod EXIT

# start_pod TAG PRECISION MAX_BATCH [extra pod flags...]: starts the pod, waits until it
# serves or refuses; writes raw/<tag>.readyz and returns 0 only when it serves.
start_pod() {
  local tag=$1 precision=$2 batch=$3; shift 3
  "$POD" --bundle "$BUNDLE" --device "$DEVICE" --precision "$precision" --max-batch-size "$batch" \
    --listen-host 127.0.0.1 --grpc-port "$GRPC_PORT" --http-port "$HTTP_PORT" --http-api-port "$HTTP_API_PORT" --cache-bytes 0 \
    --drain-delay-secs 0 --shutdown-grace-secs 5 --log-format json "$@" >"$OUT/raw/$tag.log" 2>&1 &
  POD_PID=$!
  local wait_secs=180 body
  [ "$(left)" -lt "$wait_secs" ] && wait_secs=$(left)
  for _ in $(seq $(( wait_secs * 2 ))); do
    if ! kill -0 "$POD_PID" 2>/dev/null; then
      echo "exited: $(tail -n 3 "$OUT/raw/$tag.log")" >"$OUT/raw/$tag.readyz"; POD_PID=; return 1
    fi
    if body=$(http_get /readyz); then echo "$body" >"$OUT/raw/$tag.readyz"; return 0; fi
    case $body in not\ serving*) echo "$body" >"$OUT/raw/$tag.readyz"; return 1 ;; esac
    sleep 0.5
  done
  echo "not serving after ${wait_secs}s: $body" >"$OUT/raw/$tag.readyz"
  return 1
}

# measure TAG: golden eval (batching-on pods), load runs, memory; the pod is running.
measure() {
  local tag=$1 eval_run=$2
  http_get /metrics >"$OUT/raw/$tag.metrics.start" || true
  if [ "$eval_run" = yes ]; then
    step "$tag golden eval" 120 "$GOLDEN_CLI" eval --endpoint "http://127.0.0.1:$GRPC_PORT" --set "$GOLDEN" \
      --concurrency 8 --bypass-cache --json >"$OUT/raw/$tag.golden.json" 2>"$OUT/raw/$tag.golden.log"
  fi
  local need=$(( WARM_UP + DURATION + 5 ))
  for task in line document; do
    for concurrency in 1 32; do
      fits "$need" || { printf '%s\tskipped (time cap)\t0\n' "$tag $task c$concurrency" >>"$STEPS"; continue; }
      step "$tag $task c$concurrency" $(( need + 30 )) "$LOAD_CLIENT" --endpoint "http://127.0.0.1:$GRPC_PORT" \
        --golden "$GOLDEN" --task "$task" --concurrency "$concurrency" --duration-secs "$DURATION" \
        --warm-up-secs "$WARM_UP" >"$OUT/raw/$tag.$task.c$concurrency.json" 2>"$OUT/raw/$tag.$task.c$concurrency.log"
    done
  done
  # NVML, after the load: the caching allocator keeps what the largest batches needed.
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null \
    | awk -F', *' -v pid="$POD_PID" '$1 == pid { print $2 }' >"$OUT/raw/$tag.process_mib"
  nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader,nounits 2>/dev/null | head -1 \
    >"$OUT/raw/$tag.gpu_mib"
  http_get /metrics >"$OUT/raw/$tag.metrics" || true
}

for precision in fp32 "$HALF"; do
  for batch in "$MAX_BATCH" 1; do
    tag="$precision-b$batch"
    fits 30 || { printf '%s\tskipped (time cap)\t0\n' "$tag pod" >>"$STEPS"; continue; }
    eval_run=no; [ "$batch" = "$MAX_BATCH" ] && eval_run=yes
    t0=$(date +%s)
    if ! start_pod "$tag" "$precision" "$batch"; then
      printf '%s\trefused: %s\t%s\n' "$tag start" "$(head -c 400 "$OUT/raw/$tag.readyz" | tr '\t\n' '  ')" \
        "$(( $(date +%s) - t0 ))" >>"$STEPS"
      stop_pod
      # The start-up gate refused half precision: measure it anyway, gates off (the drop
      # and the floor), so the report shows how far it is from fp32.
      [ "$precision" = fp32 ] && continue
      tag="$tag-ungated"
      t0=$(date +%s)
      start_pod "$tag" "$precision" "$batch" --max-precision-accuracy-drop 1 --self-test-min-accuracy 0 \
        || { stop_pod; continue; }
    fi
    printf '%s\tserving (load and self-test)\t%s\n' "$tag start" "$(( $(date +%s) - t0 ))" >>"$STEPS"
    measure "$tag" "$eval_run"
    t0=$(date +%s)
    stop_pod
    printf '%s\tstopped\t%s\n' "$tag stop" "$(( $(date +%s) - t0 ))" >>"$STEPS"
  done
done

# --- the report -----------------------------------------------------------------------------
"$PYTHON" - "$OUT" "$DEVICE" "$HALF" "$MAX_BATCH" "$DURATION" "$WARM_UP" "$(( $(date +%s) - started ))" <<'PY' >"$OUT/report.md"
import glob, json, os, re, sys

out, device, half, max_batch, duration, warm_up, elapsed = sys.argv[1:8]
raw = os.path.join(out, "raw")

def read(name, default=""):
    try:
        return open(os.path.join(raw, name)).read().strip()
    except OSError:
        return default

def load_json(name):
    try:
        return json.loads(read(name))
    except ValueError:
        return None

def fmt(value, digits=1):
    return "n/a" if value is None else f"{value:.{digits}f}"

env = dict(line.split("=", 1) for line in read("environment.txt").splitlines() if "=" in line)
card = env.get("nvidia_smi") or "no NVIDIA GPU (nvidia-smi absent)"
print(f"# GPU check: {card.split(',')[0] if device != 'cpu' else 'CPU dry run'}\n")
print(f"- device `{device}`; GPU (nvidia-smi): {card}")
print(f"- PyTorch {env.get('torch')} (CUDA {env.get('torch_cuda')}, available: {env.get('cuda_available')}); "
      f"libtorch from `{env.get('torch_lib')}`")
print(f"- pod binary dynamic section: {env.get('dynamic_section') or 'no RPATH/RUNPATH'}")
print(f"- half precision checked: `{half}`; batching on = `--max-batch-size {max_batch}`, off = 1; "
      f"load runs: {duration} s counted after {warm_up} s warm-up, closed loop, result cache off")
print(f"- whole check: {elapsed} s\n")

pods = sorted({os.path.basename(p).split(".")[0] for p in glob.glob(os.path.join(raw, "*.readyz"))},
              key=lambda t: (not t.startswith("fp32"), t))

def self_test(tag):
    metrics = read(f"{tag}.metrics") or read(f"{tag}.metrics.start")
    values = {m.group(1): float(m.group(2)) for m in
              re.finditer(r'^ocr_selftest_accuracy\{[^}]*precision="([a-z0-9]+)"[^}]*\} ([0-9.eE+-]+)', metrics, re.M)}
    return " / ".join(f"{p} {v:.4f}" for p, v in sorted(values.items())) or "n/a"

print("## Golden accuracy\n")
print("`ocr-golden eval` over the whole golden set (1 − CER), against the pod at that precision; "
      "the pod's start-up self-test accuracies (its precision gate) beside it.\n")
print("| pod | overall | LINE | DOCUMENT | request errors | self-test | start-up |")
print("|---|---|---|---|---|---|---|")
for tag in pods:
    report = load_json(f"{tag}.golden.json")
    if report is None and not tag.endswith("-ungated") and "-b1" in tag:
        continue
    overall = report and report["overall"]["accuracy"]
    by_task = (report or {}).get("by_task", {})
    line = by_task.get("LINE", {}).get("accuracy")
    doc = by_task.get("DOCUMENT", {}).get("accuracy")
    errors = (report or {}).get("request_errors") or {}
    print(f"| {tag} | {fmt(overall, 4)} | {fmt(line, 4)} | {fmt(doc, 4)} | {sum(errors.values()) if report else 'n/a'} "
          f"| {self_test(tag)} | {read(f'{tag}.readyz')[:200]} |")

print("\n## Throughput\n")
print("`load_client`: lines/s are LINE requests (one line image each) per second, pages/s DOCUMENT "
      "requests per second; p50/p99 are client round trips. Refused: RESOURCE_EXHAUSTED answers (the pod's "
      "deadline-aware admission), after each of which the caller waits the pod's retry hint.\n")
print("| pod | task | concurrency | per second | text lines/s | p50 ms | p99 ms | refused | errors |")
print("|---|---|---|---|---|---|---|---|---|")
for tag in pods:
    for task in ("line", "document"):
        for c in (1, 32):
            r = load_json(f"{tag}.{task}.c{c}.json")
            if r is None:
                continue
            unit = "lines/s" if task == "line" else "pages/s"
            err = f"{r['errors']}" + (f" ({r['first_error'][:80]})" if r.get("first_error") else "")
            print(f"| {tag} | {task.upper()} | {c} | {fmt(r['images_per_s'], 2)} {unit} | {fmt(r['text_lines_per_s'], 1)} "
                  f"| {fmt(r['p50_ms'])} | {fmt(r['p99_ms'])} | {r.get('refused', 'n/a')} | {err} |")

print("\n## GPU memory\n")
print("After each pod's load runs (libtorch's caching allocator keeps its peak). NVML via nvidia-smi: "
      "the pod process, and the whole GPU; the pod's own `ocr_gpu_memory_used_bytes` gauge.\n")
print("| pod | process MiB | GPU used / total MiB | pod gauge MiB |")
print("|---|---|---|---|")
for tag in pods:
    gauge = re.search(r"^ocr_gpu_memory_used_bytes\{[^}]*\} ([0-9.eE+-]+)", read(f"{tag}.metrics"), re.M)
    gpu = read(f"{tag}.gpu_mib").replace(", ", " / ") or "n/a"
    print(f"| {tag} | {read(f'{tag}.process_mib') or 'n/a'} | {gpu} | "
          f"{fmt(float(gauge.group(1)) / 2**20, 0) if gauge else 'n/a'} |")

print("\n## Raw forward in PyTorch (the limit)\n")
forward = load_json("raw_forward.json")
if forward:
    print(f"`torch.jit.load` of the bundle's modules on `{forward['device']}` ({forward['gpu']}), random input, "
          f"mean of timed iterations after warm-up, synchronised. Detector at the first golden page's input "
          f"{'×'.join(map(str, forward['det_shape']))}, recogniser at {'×'.join(map(str, forward['rec_shape']))}.\n")
    print("| precision | stage | ms per forward | items/s | peak MiB |")
    print("|---|---|---|---|---|")
    for r in forward["runs"]:
        if "error" in r:
            print(f"| {r['precision']} | {r['stage']} | failed: {r['error']} | | |")
        else:
            print(f"| {r['precision']} | {r['stage']} | {fmt(r['ms'], 2)} | {fmt(r['items_per_s'], 1)} | {fmt(r.get('peak_mib'), 0)} |")
else:
    print("not measured: " + (read("raw_forward.log")[-400:] or "skipped"))

print("\n## Steps\n")
print("| step | result | seconds |")
print("|---|---|---|")
for line in read("steps.tsv").splitlines():
    name, result, secs = (line.split("\t") + ["", ""])[:3]
    result = {"0": "ok", "124": "timed out", "137": "killed (timeout)"}.get(result, result)
    print(f"| {name} | {result} | {secs} |")
PY
cat "$OUT/report.md"
