#!/usr/bin/env python3
"""Export PP-OCRv4 (detector, direction classifier, CTC recogniser) to TorchScript bundles.

Usage:
    python tools/export/export_ppocr.py --golden golden/data --out <DIR>

Source: the ONNX files shipped in the rapidocr-onnxruntime wheel (models/*.onnx) and the
pre/post-processing parameters of its config.yaml and code. Each ONNX graph is
    1. cleaned: paddle2onnx Constant nodes -> graph initializers,
    2. made shape-generic: every Reshape whose target shape is computed at run time
       (Shape/Slice/Concat chains) is evaluated with onnxruntime at two input sizes and
       replaced by a constant using ONNX's 0 (= copy that input dim) where the dim follows
       the input and -1 where it varies otherwise; dead shape arithmetic is pruned,
    3. shape-inferred (onnx.shape_inference; onnx2torch needs the ranks, e.g. for the
       recogniser's BatchNorm after the attention blocks),
    4. converted with onnx2torch (eval mode), traced with torch.jit.trace under no_grad on
       CPU, float32, saved with torch.jit.save and re-loaded with torch.jit.load for every
       check below (and, when a C++ compiler is present, loaded and run by a tiny libtorch
       program with no Python at all).

Three bundles are written (det.pt and cls.pt are byte-identical in all three):
    ppocr-v4           standard
    ppocr-v4-degraded  recogniser weights perturbed (deterministic gaussian noise scaled to
                       each weight tensor's std; the scale is found by a deterministic
                       search) so golden accuracy drops by >= 10 points
    ppocr-v4-slow      recogniser forward repeated N times inside the module, each repeat
                       data-dependent on the previous one (x = x + 0 * prev.mean()), same outputs

Checks (any failure -> exit status 1, nothing is moved into <DIR>):
    * module level, on the exact tensors rapidocr feeds its onnxruntime sessions over the
      golden set (sessions wrapped, the TorchScript module run on the same input):
      max |diff| <= 1e-4 (calls above that are arbitrated against a float64 evaluation of the
      same graph, see TOL/F32_NOISE/ARB_CAP/DET_TOL), identical argmax (cls), identical
      CTC-decoded text (rec), identical pipeline predictions;
    * sweeps: recogniser at batch 1..8 x widths 96..1200, detector at several H, W
      (multiples of 32) and batches, classifier at batch 1..8;
    * charset: numClasses == output dim == len(charset.txt) + charsetOffset, identical to
      rapidocr's CTCLabelDecode character list;
    * pipeline: rapidocr with its sessions swapped for the TorchScript modules over the
      golden set (golden-predictions.jsonl) vs the pure onnxruntime run
      (reference-predictions.jsonl); standard accuracy >= selfTest.minAccuracy;
    * degraded drop >= 10 accuracy points (and accuracy not trivial);
    * slow: identical outputs and latency ratio >= 3.0 (median of >= 5 runs).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.metadata as md
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

T0 = time.perf_counter()

# ----------------------------------------------------------------------------- constants
# Tolerances (see compare_outputs). 1e-4 vs onnxruntime is the target; on real golden inputs the
# float32 rounding of BOTH implementations reaches ~5e-4 (rec) / ~9e-4 (det) against an exact float64
# evaluation of the same graph, so a call above 1e-4 is arbitrated against float64 instead.
TOL = 1e-4                      # target max|torch - onnxruntime|; sweep exactness bound vs float64 (det)
F32_NOISE = 1e-3                # cls/rec arbitrated calls: max|torch - float64| bound
ARB_CAP = 2e-3                  # cls/rec: hard cap on max|torch - onnxruntime|
DET_TOL = 2e-3                  # det: hard cap on max|torch - onnxruntime| (no float64 pass on golden: too slow)
REC_PROBE_SIZES = [(1, 3, 48, 320), (3, 3, 48, 640)]
DET_PROBE_SIZES = [(1, 3, 64, 96), (3, 3, 128, 64)]
CLS_PROBE_SIZES = [(1, 3, 48, 192), (3, 3, 48, 192)]
REC_SWEEP_BATCHES = list(range(1, 9))
REC_SWEEP_WIDTHS = [96, 320, 640, 1200]
REC_EXTRA_WIDTHS = [100, 250, 487, 777, 1001]   # odd widths, batch 3
DET_SWEEP_SIZES = [(1, 32, 32), (1, 736, 736), (2, 320, 640), (1, 64, 1024), (3, 160, 96), (1, 1280, 736)]
CLS_SWEEP_BATCHES = list(range(1, 9))
DEGRADE_SEED = 20260315
DEGRADE_LADDER = [0.02, 0.03, 0.05, 0.07, 0.1, 0.14, 0.2, 0.28, 0.4, 0.56, 0.8]
DEGRADE_MIN_DROP = 0.10         # hard requirement
DEGRADE_TARGET_DROP = 0.15      # search window [0.15, 0.35] (margin over the hard requirement)
DEGRADE_MAX_DROP = 0.35
DEGRADE_MIN_ACC = 0.20          # "non-trivial"
SLOW_REPEATS = 4
SLOW_MIN_RATIO = 3.0
LATENCY_RUNS = 7
LATENCY_INPUTS = [(1, 3, 48, 320), (6, 3, 48, 640)]
BUNDLE_VERSION = "4.0.0"
MIN_ACCURACY = 0.90


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


class ExportError(Exception):
    pass


class Checks:
    """Collects check results; a failed check makes the export fail."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def require(self, cond: bool, msg: str) -> bool:
        if not cond:
            self.failures.append(msg)
            log(f"CHECK FAILED: {msg}")
        return bool(cond)

    def gate(self, stage: str) -> None:
        if self.failures:
            raise ExportError(f"{len(self.failures)} check(s) failed before/at {stage}:\n  - "
                              + "\n  - ".join(self.failures))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fmax(a) -> float:
    return float(a) if a is not None else 0.0


# ----------------------------------------------------------------------------- ONNX prep
def constants_to_initializers(model):
    """paddle2onnx stores weights as Constant nodes; onnx2torch wants initializers."""
    g = model.graph
    keep, moved = [], 0
    for n in g.node:
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value":
            t = copy.deepcopy(n.attribute[0].t)
            t.name = n.output[0]
            g.initializer.append(t)
            moved += 1
        else:
            keep.append(n)
    del g.node[:]
    g.node.extend(keep)
    return moved


def prune_dead(model) -> int:
    g = model.graph
    removed = 0
    while True:
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            g.node.remove(n)
        removed += len(dead)
    used = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    return removed


def make_reshapes_static(model, probe_sizes, input_name: str):
    """Replace run-time computed Reshape targets by constants with 0 / -1 (see module doc)."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {i.name for i in g.initializer}
    dyn = [n for n in g.node if n.op_type == "Reshape" and n.input[1] not in inits]
    report = []
    if not dyn:
        return report
    probe = copy.deepcopy(model)
    names: list[str] = []
    for n in dyn:
        for nm in (n.input[0], n.input[1]):
            if nm not in names:
                names.append(nm)
    for nm in names:
        probe.graph.output.append(helper.make_empty_tensor_value_info(nm))
    so = ort.SessionOptions()
    so.log_severity_level = 4
    sess = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    outs = []
    for shp in probe_sizes:
        r = sess.run(names, {input_name: rng.uniform(-1, 1, shp).astype(np.float32)})
        outs.append(dict(zip(names, r)))
    for n in dyn:
        target = []
        rank = len(outs[0][n.input[1]])
        for i in range(rank):
            vals = [int(o[n.input[1]][i]) for o in outs]
            if len(set(vals)) == 1:
                target.append(vals[0])            # same at both sizes: a true constant (ONNX 0 stays 0)
            elif all(i < o[n.input[0]].ndim and o[n.input[0]].shape[i] == v for o, v in zip(outs, vals)):
                target.append(0)                  # follows input dim i (batch, sequence): copy it
            else:
                target.append(-1)                 # varies otherwise: infer
        if target.count(-1) > 1:
            raise ExportError(f"Reshape {n.name}: cannot express target {target} with a single -1")
        cname = f"{n.name}__static_shape"
        g.initializer.append(numpy_helper.from_array(np.array(target, dtype=np.int64), cname))
        report.append({"node": n.name,
                       "evaluated": [[int(v) for v in o[n.input[1]]] for o in outs],
                       "replacedBy": target})
        n.input[1] = cname
    prune_dead(model)
    onnx.checker.check_model(model)
    return report


def inspect_resizes(model) -> list:
    """Return how every Resize gets its output size; fail if sizes come from the graph."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    out = []
    for n in model.graph.node:
        if n.op_type != "Resize":
            continue
        scales = n.input[2] if len(n.input) > 2 else ""
        sizes = n.input[3] if len(n.input) > 3 else ""
        if sizes and (sizes not in inits or numpy_helper.to_array(inits[sizes]).size):
            raise ExportError(f"Resize {n.name} takes explicit sizes ({sizes}); would be baked by trace")
        if not scales or scales not in inits:
            raise ExportError(f"Resize {n.name}: scales are not a constant ({scales})")
        out.append({"node": n.name, "scales": numpy_helper.to_array(inits[scales]).tolist()})
    return out


def prepare_onnx(path: Path, probe_sizes):
    import onnx

    model = onnx.load(str(path))
    input_name = model.graph.input[0].name
    info = {"source": path.name, "inputName": input_name,
            "opset": [int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")][0]}
    info["constantsMovedToInitializers"] = constants_to_initializers(model)
    info["reshapesMadeStatic"] = make_reshapes_static(model, probe_sizes, input_name)
    info["resizes"] = inspect_resizes(model)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    inits = {i.name for i in model.graph.initializer}
    left = [n.op_type for n in model.graph.node if n.op_type in ("Shape", "Size", "ConstantOfShape", "Expand")]
    bad = [n.name for n in model.graph.node if n.op_type == "Reshape" and n.input[1] not in inits]
    if bad:
        raise ExportError(f"{path.name}: Reshape(s) with non-constant shape remain: {bad}")
    info["remainingShapeOps"] = left
    return model, info


def patch_onnx2torch() -> None:
    """onnx2torch's Reshape evaluates `shape == 0` on a tensor; make the 0 semantic explicit.

    All Reshape targets are constants after make_reshapes_static; an entry 0 becomes
    input.size(i), which torch.jit.trace records as aten::size (dynamic), never a python int.
    """
    import torch
    import onnx2torch.node_converters.reshape as R

    def _do_reshape(input_tensor, shape):
        vals = [int(v) for v in shape.tolist()]
        target = [input_tensor.size(i) if v == 0 else v for i, v in enumerate(vals)]
        return torch.reshape(input_tensor, target)

    R.OnnxReshape._do_reshape = staticmethod(_do_reshape)


def to_torch(model):
    from onnx2torch import convert

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert(model).eval()


def trace_save(module, example, path: Path):
    import torch

    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")   # TracerWarnings about constant shapes are expected
        traced = torch.jit.trace(module, example, check_trace=False)
    torch.jit.save(traced, str(path))
    loaded = torch.jit.load(str(path), map_location="cpu").eval()
    graph = loaded.inlined_graph
    kinds = [n.kind() for n in graph.nodes()]
    return loaded, {"atenSizeOps": kinds.count("aten::size"), "reshapeOps": kinds.count("aten::reshape"),
                    "upsampleOps": sum(1 for k in kinds if "upsample" in k)}


def make_repeated(inner, repeats: int):
    import torch

    class _Repeated(torch.nn.Module):
        def __init__(self, inner, repeats):
            super().__init__()
            self.inner = inner
            self.repeats = repeats

        def forward(self, x):
            out = self.inner(x)
            for _ in range(self.repeats - 1):
                # data dependency on the previous result: no CSE/DCE pass may merge or drop it;
                # adds exactly +0.0 so the output is unchanged.
                x = x + 0.0 * out.mean()
                out = self.inner(x)
            return out

    return _Repeated(inner, repeats).eval()


def perturb_weights(model, scale: float, seed: int):
    """Copy of `model` with Conv/MatMul/Gemm weights += N(0, (scale*std(w))^2), deterministic."""
    from onnx import numpy_helper

    m = copy.deepcopy(model)
    inits = {i.name: i for i in m.graph.initializer}
    targets = set()
    for n in m.graph.node:
        if n.op_type in ("Conv", "ConvTranspose", "Gemm") and len(n.input) > 1:
            targets.add(n.input[1])
        elif n.op_type == "MatMul":
            for nm in n.input:
                if nm in inits:
                    targets.add(nm)
    n_params = 0
    for k, name in enumerate(sorted(targets)):
        t = inits[name]
        w = numpy_helper.to_array(t)
        if w.dtype != np.float32 or w.ndim < 2:
            continue
        rng = np.random.default_rng([seed, k])
        noisy = w + rng.standard_normal(w.shape).astype(np.float32) * np.float32(scale * float(w.std()))
        t.CopyFrom(numpy_helper.from_array(noisy.astype(np.float32), name))
        n_params += w.size
    return m, len(targets), n_params


# ----------------------------------------------------------------------------- golden/metrics
# Shared with golden/tools/reference_eval.py so both gates score alike.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "golden" / "tools"))
from golden_metrics import accuracy  # noqa: E402


def predict_item(engine, golden: Path, item: dict) -> dict:
    result, _ = engine(str(golden / item["file"]))
    texts = [t for (_, t, _) in (result or [])]
    if item["task"] == "LINE":
        return {"id": item["id"], "text": " ".join(texts)}
    return {"id": item["id"], "lines": texts}


def write_jsonl(path: Path, preds: dict) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for k in sorted(preds):
            f.write(json.dumps(preds[k], ensure_ascii=False) + "\n")


def load_truth(golden: Path) -> list:
    p = golden / "truth.jsonl"
    if not p.is_file():
        raise ExportError(f"golden truth not found: {p}")
    with open(p, encoding="utf-8") as f:
        truth = [json.loads(line) for line in f if line.strip()]
    truth.sort(key=lambda r: r["id"])
    missing = [r["file"] for r in truth if not (golden / r["file"]).is_file()]
    if missing:
        raise ExportError(f"{len(missing)} golden image(s) missing, e.g. {missing[:3]}")
    if not truth:
        raise ExportError(f"{p} is empty")
    return truth


# ----------------------------------------------------------------------------- sessions
class TorchSession:
    """Drop-in for rapidocr's OrtInferSession (__call__(ndarray) -> [ndarray])."""

    def __init__(self, module, cache: int = 0):
        self.module = module
        self.cache_size = cache
        self.cache: OrderedDict = OrderedDict()
        self.calls = 0
        self.seconds = 0.0

    def run_np(self, x: np.ndarray) -> np.ndarray:
        import torch

        x = np.ascontiguousarray(x, dtype=np.float32)
        key = None
        if self.cache_size:
            key = (x.shape, hashlib.sha1(x.tobytes()).hexdigest())
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
        t = time.perf_counter()
        with torch.no_grad():
            y = self.module(torch.from_numpy(x)).numpy()
        self.seconds += time.perf_counter() - t
        self.calls += 1
        if key is not None:
            self.cache[key] = y
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        return y

    def __call__(self, x):
        return [self.run_np(x)]


class ModuleStats:
    def __init__(self, name: str, f64=None):
        self.name = name
        self.f64 = f64             # float64 eager copy of the model: the arbiter (see tolerance notes)
        self.calls = 0
        self.rows = 0
        self.max_abs_diff = 0.0
        self.shapes: set = set()
        self.mismatch = 0          # cls: argmax rows; rec: decoded texts
        self.argmax_total = 0
        self.argmax_equal = 0
        self.mask_pixels = 0       # det: pixels compared for the binarisation
        self.mask_mismatch = 0
        self.over_tol = 0          # calls with max|torch - onnxruntime| > TOL
        self.arbitrated = 0
        self.arb_torch = 0.0       # max|torch - float64| over arbitrated calls
        self.arb_ort = 0.0         # max|onnxruntime - float64| over arbitrated calls
        self.failed: list = []

    def as_dict(self) -> dict:
        d = {"calls": self.calls, "rows": self.rows, "maxAbsDiff": self.max_abs_diff,
             "tolerance": ({"vsOnnxruntime": DET_TOL, "sweepVsFloat64": TOL} if self.name == "det" else
                           {"vsOnnxruntime": TOL, "arbitratedVsFloat64": F32_NOISE, "arbitratedCapVsOnnxruntime": ARB_CAP}),
             "callsOverTol1e-4": self.over_tol, "failedCalls": len(self.failed),
             "distinctInputShapes": len(self.shapes)}
        if self.arbitrated:
            d["float64Arbiter"] = {"calls": self.arbitrated, "maxAbsDiffTorchVsFloat64": self.arb_torch,
                                   "maxAbsDiffOnnxruntimeVsFloat64": self.arb_ort}
        if self.name == "det":
            d.update({"binarisedPixels": self.mask_pixels, "binarisedMismatch": self.mask_mismatch})
        if self.name == "cls":
            d.update({"argmaxMismatchRows": self.mismatch})
        if self.name == "rec":
            d.update({"decodedTextMismatch": self.mismatch,
                      "argmaxAgreement": self.argmax_equal / max(1, self.argmax_total)})
        return d


def float64_reference(module, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(x)).double()).numpy()


def compare_outputs(kind: str, ref: np.ndarray, got: np.ndarray, st: ModuleStats, x: np.ndarray,
                    rec_decode=None, det_thresh=0.3, force_arbiter: bool = False) -> None:
    """Tolerances:
    cls/rec: max|torch - onnxruntime| <= TOL; a call above that is arbitrated with a float64
             evaluation of the same graph and passes when max|torch - float64| <= F32_NOISE and
             max|torch - onnxruntime| <= ARB_CAP (onnxruntime itself is up to ~4.5e-4 away from
             float64 on golden crops). Argmax (cls) and decoded text (rec) must be identical always.
    det:     max|torch - onnxruntime| <= DET_TOL; exactness vs float64 (<= TOL) on the sweep sizes
             (force_arbiter), where onnxruntime is ~2.2e-4 away from float64."""
    st.calls += 1
    st.rows += int(ref.shape[0])
    st.shapes.add(tuple(x.shape))
    if ref.shape != got.shape:
        st.max_abs_diff = float("inf")
        st.mismatch += int(ref.shape[0])
        st.failed.append(f"shape {got.shape} != {ref.shape} for input {x.shape}")
        return
    d = float(np.abs(ref.astype(np.float64) - got).max())
    st.max_abs_diff = max(st.max_abs_diff, d)
    if d > TOL:
        st.over_tol += 1
    if (d > TOL and kind != "det" and st.f64 is not None) or (force_arbiter and st.f64 is not None):
        r64 = float64_reference(st.f64, x)
        et, eo = float(np.abs(got - r64).max()), float(np.abs(ref - r64).max())
        st.arbitrated += 1
        st.arb_torch, st.arb_ort = max(st.arb_torch, et), max(st.arb_ort, eo)
        bound = TOL if kind == "det" else F32_NOISE
        if et > bound:
            st.failed.append(f"input {x.shape}: max|torch - float64| {et:.3g} > {bound}")
    if kind == "det":
        if d > DET_TOL:
            st.failed.append(f"input {x.shape}: max|torch - onnxruntime| {d:.3g} > {DET_TOL}")
    elif d > TOL and (st.f64 is None or d > ARB_CAP):
        st.failed.append(f"input {x.shape}: max|torch - onnxruntime| {d:.3g} > "
                         f"{TOL if st.f64 is None else ARB_CAP}")
    if kind == "det":
        a, b = ref > det_thresh, got > det_thresh
        st.mask_pixels += a.size
        st.mask_mismatch += int((a != b).sum())
    elif kind == "cls":
        st.mismatch += int((ref.argmax(1) != got.argmax(1)).sum())
    elif kind == "rec":
        ia, ib = ref.argmax(2), got.argmax(2)
        st.argmax_total += ia.size
        st.argmax_equal += int((ia == ib).sum())
        ta = [t for t, _ in rec_decode(ref)]
        tb = [t for t, _ in rec_decode(got)]
        st.mismatch += sum(1 for a_, b_ in zip(ta, tb) if a_ != b_)


class ShadowSession:
    """Wraps one of rapidocr's onnxruntime sessions: returns the onnxruntime result and runs
    the TorchScript module on the exact same input to compare."""

    def __init__(self, ort_sess, torch_sess: TorchSession, kind: str, stats: ModuleStats, rec_decode=None,
                 det_thresh=0.3):
        self.ort = ort_sess
        self.torch = torch_sess
        self.kind = kind
        self.stats = stats
        self.rec_decode = rec_decode
        self.det_thresh = det_thresh

    def __call__(self, x):
        outs = self.ort(x)
        got = self.torch.run_np(x)
        compare_outputs(self.kind, outs[0], got, self.stats, x, self.rec_decode, self.det_thresh)
        return outs

    def __getattr__(self, item):
        return getattr(self.ort, item)


class CachedStage:
    """Memoises a deterministic rapidocr stage (TextDetector / TextClassifier) by input hash.

    Used only for the variant bundles, whose det.pt/cls.pt are byte-identical to the standard
    bundle's (checked by sha256), so that their golden runs only pay for the recogniser."""

    def __init__(self, stage, store: dict):
        self.stage = stage
        self.store = store

    @staticmethod
    def _key(arg) -> str:
        h = hashlib.sha1()
        for a in (arg if isinstance(arg, list) else [arg]):
            a = np.ascontiguousarray(a)
            h.update(str(a.shape).encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def __call__(self, arg, *a, **kw):
        key = self._key(arg)
        if key not in self.store:
            self.store[key] = self.stage(arg, *a, **kw)
        return copy.deepcopy(self.store[key])

    def __getattr__(self, item):
        return getattr(self.stage, item)


# ----------------------------------------------------------------------------- main steps
def rapidocr_info():
    import rapidocr_onnxruntime
    import yaml

    pkg = Path(rapidocr_onnxruntime.__file__).resolve().parent
    with open(pkg / "config.yaml", encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    return pkg, cfg, md.version("rapidocr-onnxruntime")


def read_pipeline_params(engine) -> dict:
    """Read every pre/post-processing parameter from the live rapidocr objects and verify the
    hard-coded normalisations of its code numerically."""
    import cv2
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

    det, cls, rec = engine.text_det, engine.text_cls, engine.text_rec
    pp = det.postprocess_op
    pre = DetPreProcess(det.limit_side_len, det.limit_type, det.mean, det.std)
    p = {
        "det": {"limitSideLen": int(det.limit_side_len), "limitType": str(det.limit_type),
                "mean": [float(v) for v in det.mean], "std": [float(v) for v in det.std],
                "scale": float(pre.scale), "multipleOf": 32, "thresh": float(pp.thresh),
                "boxThresh": float(pp.box_thresh), "unclipRatio": float(pp.unclip_ratio),
                "maxCandidates": int(pp.max_candidates), "minSize": int(pp.min_size),
                "useDilation": pp.dilation_kernel is not None, "scoreMode": str(pp.score_mode)},
        "cls": {"inputShape": [int(v) for v in cls.cls_image_shape], "threshold": float(cls.cls_thresh),
                "labels": [str(v) for v in cls.postprocess_op.label_list], "batchSize": int(cls.cls_batch_num)},
        "rec": {"shape": [int(v) for v in rec.rec_image_shape], "batchSize": int(rec.rec_batch_num),
                "character": list(rec.postprocess_op.character)},
        "global": {"textScore": float(engine.text_score), "maxSideLen": int(engine.max_side_len),
                   "minSideLen": int(engine.min_side_len), "minHeight": int(engine.min_height),
                   "widthHeightRatio": engine.width_height_ratio},   # int 8 in config.yaml; keep its type
    }
    # multiple-of-32 rounding in DetPreProcess.resize: verify on an odd size
    test = np.zeros((737, 1000, 3), np.uint8)
    r = pre.resize(test)
    if r.shape[0] % 32 or r.shape[1] % 32:
        raise ExportError(f"rapidocr det resize not a multiple of 32: {r.shape}")
    # classifier / recogniser normalisation: (x/255 - 0.5)/0.5, zero padding to the right
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (40, 100, 3), dtype=np.uint8)
    for name, got, (c, h, w) in [("cls", cls.resize_norm_img(img), cls.cls_image_shape),
                                 ("rec", rec.resize_norm_img(img, 320 / 48), rec.rec_image_shape)]:
        w = got.shape[2]
        rw = min(w, int(math.ceil(h * img.shape[1] / img.shape[0])))
        exp = np.zeros((c, h, w), np.float32)
        exp[:, :, :rw] = (cv2.resize(img, (rw, h)).astype(np.float32).transpose(2, 0, 1) / 255 - 0.5) / 0.5
        if np.abs(exp - got).max() > 1e-6:
            raise ExportError(f"rapidocr {name} normalisation is not (x/255-0.5)/0.5; update the bundle")
    p["cls"]["mean"] = p["cls"]["std"] = p["rec"]["mean"] = p["rec"]["std"] = [0.5, 0.5, 0.5]
    p["cls"]["scale"] = p["rec"]["scale"] = 1.0 / 255.0
    # colour order: rapidocr loads files with PIL (RGB) and converts to BGR before the models
    from PIL import Image
    probe = Image.new("RGB", (4, 4), (255, 0, 0))
    arr = engine.load_img(probe)
    p["colorOrder"] = "bgr" if arr[0, 0].tolist() == [0, 0, 255] else ("rgb" if arr[0, 0].tolist() == [255, 0, 0] else "?")
    if p["colorOrder"] != "bgr":
        raise ExportError(f"unexpected rapidocr colour handling: pure red loads as {arr[0, 0].tolist()}")
    return p


def realistic_images(golden: Path, truth: list, task: str, n: int):
    from rapidocr_onnxruntime.utils import LoadImage

    li = LoadImage()
    items = [r for r in truth if r["task"] == task] or truth
    return [li(str(golden / items[i % len(items)]["file"])) for i in range(n)]


def rec_batch(rec_stage, imgs, width: int) -> np.ndarray:
    return np.stack([rec_stage.resize_norm_img(im, width / 48.0) for im in imgs]).astype(np.float32)


def det_batch(imgs, h: int, w: int, mean, std, scale) -> np.ndarray:
    import cv2

    out = []
    for im in imgs:
        x = cv2.resize(im, (w, h)).astype(np.float32) * scale
        x = (x - np.array(mean, np.float32)) / np.array(std, np.float32)
        out.append(x.transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


def ort_options(threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL   # as rapidocr
    if threads:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    return so


def sweeps(ort_paths: dict, mods: dict, f64: dict, engine, params, golden, truth, checks: Checks,
           threads: int) -> dict:
    import onnxruntime as ort

    so = ort_options(threads)
    sess = {k: ort.InferenceSession(str(v), so, providers=["CPUExecutionProvider"]) for k, v in ort_paths.items()}
    decode = engine.text_rec.postprocess_op
    res = {}

    # recogniser: batch 1..8 x widths, realistic crops (golden LINE images)
    line_imgs = realistic_images(golden, truth, "LINE", 8)
    st = ModuleStats("rec", f64["rec"])
    widths_T = {}
    combos = [(b, w) for b in REC_SWEEP_BATCHES for w in REC_SWEEP_WIDTHS] + [(3, w) for w in REC_EXTRA_WIDTHS]
    for b, w in combos:
        x = rec_batch(engine.text_rec, line_imgs[:b], w)
        ref = sess["rec"].run(None, {"x": x})[0]
        got = TorchSession(mods["rec"]).run_np(x)
        compare_outputs("rec", ref, got, st, x, decode)
        widths_T[int(x.shape[3])] = int(got.shape[1])
    stats = {"rec": st}
    res["rec"] = {**st.as_dict(), "batches": REC_SWEEP_BATCHES, "widths": sorted(widths_T),
                  "combos": len(combos), "seqLenByWidth": {str(k): v for k, v in sorted(widths_T.items())}}
    log(f"  rec sweep: {len(combos)} shapes, max|diff|={st.max_abs_diff:.3g}, "
        f"argmax agreement={st.argmax_equal / max(1, st.argmax_total):.6f}, text mismatches={st.mismatch}")

    # detector: several sizes (multiples of 32) and batches, realistic document images
    doc_imgs = realistic_images(golden, truth, "DOCUMENT", 3)
    st = ModuleStats("det", f64["det"])
    d = params["det"]
    for b, h, w in DET_SWEEP_SIZES:
        x = det_batch(doc_imgs[:b], h, w, d["mean"], d["std"], d["scale"])
        ref = sess["det"].run(None, {"x": x})[0]
        got = TorchSession(mods["det"]).run_np(x)
        compare_outputs("det", ref, got, st, x, det_thresh=d["thresh"], force_arbiter=True)
    stats["det"] = st
    res["det"] = {**st.as_dict(), "sizes": [list(s) for s in DET_SWEEP_SIZES]}
    log(f"  det sweep: {len(DET_SWEEP_SIZES)} shapes, max|diff|={st.max_abs_diff:.3g}, "
        f"binarised mismatch={st.mask_mismatch}/{st.mask_pixels}; vs float64: torch {st.arb_torch:.3g}, "
        f"onnxruntime {st.arb_ort:.3g}")

    # classifier: batch 1..8, real crops both ways up
    st = ModuleStats("cls", f64["cls"])
    import cv2
    for b in CLS_SWEEP_BATCHES:
        imgs = [line_imgs[i] if i % 2 == 0 else cv2.rotate(line_imgs[i], cv2.ROTATE_180) for i in range(b)]
        x = np.stack([engine.text_cls.resize_norm_img(im) for im in imgs]).astype(np.float32)
        ref = sess["cls"].run(None, {"x": x})[0]
        got = TorchSession(mods["cls"]).run_np(x)
        compare_outputs("cls", ref, got, st, x)
    stats["cls"] = st
    res["cls"] = {**st.as_dict(), "batches": CLS_SWEEP_BATCHES}
    log(f"  cls sweep: batches 1..8, max|diff|={st.max_abs_diff:.3g}, argmax mismatches={st.mismatch}")

    for k, st_ in stats.items():
        checks.require(not st_.failed, f"{k} sweep: {len(st_.failed)} tolerance failure(s): {st_.failed[:3]}")
    checks.require(res["cls"]["argmaxMismatchRows"] == 0, "cls sweep: argmax differs")
    checks.require(res["rec"]["decodedTextMismatch"] == 0, "rec sweep: decoded text differs")
    return res


LIBTORCH_CHECK_CPP = r"""
#include <torch/script.h>
#include <fstream>
#include <iostream>
#include <vector>
// usage: ts_check model.pt in.bin out.bin d0 d1 ... (float32, C order); prints output shape
int main(int argc, char** argv) {
  if (argc < 5) { std::cerr << "usage: ts_check model.pt in.bin out.bin dims...\n"; return 2; }
  try {
    torch::jit::script::Module m = torch::jit::load(argv[1]);
    m.eval();
    std::vector<int64_t> dims;
    for (int i = 4; i < argc; ++i) dims.push_back(std::stoll(argv[i]));
    int64_t n = 1; for (auto d : dims) n *= d;
    std::vector<float> buf(n);
    std::ifstream in(argv[2], std::ios::binary);
    in.read(reinterpret_cast<char*>(buf.data()), n * sizeof(float));
    if (!in) { std::cerr << "short input\n"; return 3; }
    torch::NoGradGuard ng;
    auto x = torch::from_blob(buf.data(), dims, torch::kFloat32).clone();
    auto y = m.forward({x}).toTensor().contiguous();
    std::ofstream out(argv[3], std::ios::binary);
    out.write(reinterpret_cast<const char*>(y.data_ptr<float>()), y.numel() * sizeof(float));
    std::cout << "shape";
    for (auto s : y.sizes()) std::cout << " " << s;
    std::cout << std::endl;
  } catch (const std::exception& e) { std::cerr << "ERROR " << e.what() << "\n"; return 1; }
  return 0;
}
"""


def libtorch_check(work: Path, files: dict, mods: dict, checks: Checks) -> dict:
    # files: module name -> input shapes to run; mods: module name -> (saved .pt path, loaded module)
    """Compile a 30-line libtorch program (no Python) and run every .pt through torch::jit::load."""
    import torch
    import torch.utils.cpp_extension as ce

    cxx = shutil.which("g++") or shutil.which("c++")
    if not cxx:
        log("  WARNING: no C++ compiler; libtorch (no-Python) load check skipped")
        return {"status": "skipped (no C++ compiler)"}
    d = work / "_libtorch_check"
    d.mkdir(exist_ok=True)
    (d / "ts_check.cpp").write_text(LIBTORCH_CHECK_CPP)
    lib = ce.library_paths()[0]
    cmd = [cxx, "-O1", "-std=c++17", f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"]
    cmd += [f"-I{p}" for p in ce.include_paths()]
    cmd += [str(d / "ts_check.cpp"), "-o", str(d / "ts_check"), f"-L{lib}", f"-Wl,-rpath,{lib}",
            "-Wl,--no-as-needed", "-ltorch_cpu", "-lc10", "-Wl,--as-needed"]
    log("  compiling the libtorch checker (about 30 s)")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        checks.require(False, f"libtorch checker does not compile: {r.stderr[-800:]}")
        return {"status": "compile failed"}
    rng = np.random.default_rng(7)
    out = {"status": "ok", "runs": []}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    for name, shape in files.items():
        for shp in shape:
            x = rng.uniform(-1, 1, shp).astype(np.float32)
            x.tofile(d / "in.bin")
            pt = mods[name][0]
            r = subprocess.run([str(d / "ts_check"), str(pt), str(d / "in.bin"), str(d / "out.bin")]
                               + [str(v) for v in shp], capture_output=True, text=True, env=env)
            if r.returncode != 0:
                checks.require(False, f"libtorch could not run {pt.name} on {shp}: {r.stderr.strip()[-500:]}")
                out["status"] = "failed"
                continue
            ref = TorchSession(mods[name][1]).run_np(x)
            got = np.fromfile(d / "out.bin", dtype=np.float32)
            diff = float(np.abs(got - ref.reshape(-1)).max()) if got.size == ref.size else float("inf")
            out["runs"].append({"file": f"{name}", "input": list(shp), "output": list(ref.shape),
                                "maxAbsDiffVsPython": diff})
            checks.require(diff <= TOL, f"libtorch output of {name} differs from Python by {diff}")
    shutil.rmtree(d, ignore_errors=True)
    log(f"  libtorch (C++, no Python) loaded and ran {len(out['runs'])} module/input pairs: {out['status']}")
    return out


def measure_latency(std_mod, slow_mod) -> dict:
    import torch

    rng = np.random.default_rng(3)
    res = {"threads": torch.get_num_threads(), "runs": LATENCY_RUNS, "inputs": []}
    for shp in LATENCY_INPUTS:
        x = torch.from_numpy(rng.uniform(-1, 1, shp).astype(np.float32))
        ts, tl = [], []
        with torch.no_grad():
            for _ in range(3):                 # warm-up (profiling executor)
                std_mod(x)
                slow_mod(x)
            for _ in range(LATENCY_RUNS):      # side by side
                t = time.perf_counter()
                std_mod(x)
                ts.append(time.perf_counter() - t)
                t = time.perf_counter()
                slow_mod(x)
                tl.append(time.perf_counter() - t)
        ms, ml = statistics.median(ts), statistics.median(tl)
        res["inputs"].append({"shape": list(shp), "standardMedianMs": round(ms * 1e3, 2),
                              "slowMedianMs": round(ml * 1e3, 2), "ratio": round(ml / ms, 3)})
    res["minRatio"] = min(i["ratio"] for i in res["inputs"])
    return res


def bundle_yaml(name: str, variant: str, p: dict, versions: dict, rec_info: dict, extra_comment: str) -> str:
    d, c, r, g = p["det"], p["cls"], p["rec"], p["global"]

    def lst(v):
        return "[" + ", ".join(json.dumps(x, ensure_ascii=False) for x in v) + "]"

    def num(v):
        return repr(float(v)) if isinstance(v, float) else str(v)

    return f"""# Generated by tools/export/export_ppocr.py -- do not edit by hand.
# Values read from rapidocr-onnxruntime {versions['rapidocr']} (config.yaml and its pre/post-processing
# code); they agree with the issue's numbers. Notes for a re-implementation:
# - detector input: image (colorOrder) scaled so that its MIN side becomes limitSideLen when it is
#   smaller (limitType min; never downscaled here), each side then rounded with Python round()
#   (half-to-even) to a multiple of 32; x = (pixel*scale - mean)/std, NCHW float32.
#   Output det.pt: N x 1 x H x W float32 probability map (sigmoid already applied), same H, W.
# - classifier: crop resized to height 48 keeping aspect (width = min(192, ceil(48*w/h))), zero padded
#   on the right AFTER normalisation; output cls.pt: N x 2 softmax probabilities in labels order;
#   rotate the crop by 180 when labels[argmax] == "180" and its probability > threshold.
# - recognizer: all crops of a batch resized to height 48 and padded (zeros, after normalisation) to
#   width int(48 * max(defaultWidth/48, max w/h in the batch)) (crops sorted by w/h first, as
#   rapidocr does, for both cls and rec batches); any N and any width are accepted.
#   Output rec.pt: N x T x numClasses float32 softmax probabilities,
#   T = {rec_info['seqLen']} (= W/8 for multiples of 8).
# - CTC: class 0 = blank (blankIndex); class i (i >= charsetOffset) = charset.txt line
#   i - charsetOffset counted from 0 (= line i counted from 1), so numClasses = lines + 1. The last
#   line is the ASCII space rapidocr appends (use_space_char; class spaceIndex). Split charset.txt
#   on '\\n' only and do not trim lines (one symbol is U+3000, one is ' ').
#   Greedy decode: argmax per step, merge repeats, drop blank; score = mean of the kept max
#   probabilities.
# - pipelineOptions: rapidocr's Global settings (drop results with score < textScore; images
#   letterboxed when h <= minHeight or w/h > widthHeightRatio; maxSideLen/minSideLen pre-resize).
{extra_comment}apiVersion: kube-ocr.dev/bundle/v1
name: {name}
version: "{BUNDLE_VERSION}"
variant: {variant}
format: torchscript
exportedWith: {{torch: "{versions['torch']}", onnx2torch: "{versions['onnx2torch']}", source: "rapidocr-onnxruntime {versions['rapidocr']}"}}
pipeline: [detect, classify, recognize]
colorOrder: {p['colorOrder']}
detector: {{file: det.pt, limitSideLen: {d['limitSideLen']}, limitType: {d['limitType']}, mean: {lst(d['mean'])}, std: {lst(d['std'])}, scale: {num(d['scale'])}, multipleOf: {d['multipleOf']}, thresh: {num(d['thresh'])}, boxThresh: {num(d['boxThresh'])}, unclipRatio: {num(d['unclipRatio'])}, maxCandidates: {d['maxCandidates']}, minSize: {d['minSize']}, useDilation: {str(d['useDilation']).lower()}, scoreMode: {d['scoreMode']}}}
classifier: {{file: cls.pt, inputShape: {lst(c['inputShape'])}, mean: {lst(c['mean'])}, std: {lst(c['std'])}, scale: {num(c['scale'])}, threshold: {num(c['threshold'])}, labels: {lst(c['labels'])}, batchSize: {c['batchSize']}}}
recognizer: {{file: rec.pt, inputHeight: {r['shape'][1]}, defaultWidth: {r['shape'][2]}, mean: {lst(r['mean'])}, std: {lst(r['std'])}, scale: {num(r['scale'])}, charset: charset.txt, charsetOffset: 1, blankIndex: 0, spaceIndex: {rec_info['spaceIndex']}, numClasses: {rec_info['numClasses']}, batchSize: {r['batchSize']}}}
pipelineOptions: {{textScore: {num(g['textScore'])}, maxSideLen: {g['maxSideLen']}, minSideLen: {g['minSideLen']}, minHeight: {g['minHeight']}, widthHeightRatio: {num(g['widthHeightRatio'])}}}
selfTest: {{minAccuracy: {MIN_ACCURACY:.2f}}}
"""


def run_pipeline(engine, golden: Path, truth: list, label: str) -> dict:
    preds = {}
    t = time.perf_counter()
    for k, item in enumerate(truth, 1):
        preds[item["id"]] = predict_item(engine, golden, item)
        if k % 20 == 0 or k == len(truth):
            log(f"  {label}: {k}/{len(truth)} images ({time.perf_counter() - t:.0f}s)")
    return preds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--golden", required=True, type=Path, help="golden data folder (truth.jsonl + images)")
    ap.add_argument("--out", required=True, type=Path, help="output folder for the bundle folders")
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads for torch and onnxruntime (default 1: the machine is shared and "
                         "torch's OpenMP pool degrades badly under contention)")
    ap.add_argument("--skip-libtorch-check", action="store_true", help="do not compile/run the C++ load check")
    ap.add_argument("--allow-low-accuracy", action="store_true",
                    help="do not fail when the standard bundle's golden accuracy < selfTest.minAccuracy")
    ap.add_argument("--keep-failed", action="store_true", help="keep the temp folder when a check fails")
    args = ap.parse_args()

    import torch
    import onnx  # noqa: F401  (fail early if missing)
    # onnx2torch's Slice indexes with a list (eager runs of the converted module during the search)
    warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing")
    if args.threads:
        torch.set_num_threads(args.threads)
        torch.set_num_interop_threads(1)
    torch.manual_seed(0)

    checks = Checks()
    golden = args.golden.resolve()
    out_dir = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-ppocr-", dir=out_dir))
    ok = False
    try:
        ok = export(args, golden, out_dir, work, checks)
    except ExportError as e:
        log(f"EXPORT FAILED: {e}")
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        log("EXPORT FAILED: unexpected error (see traceback above)")
    finally:
        if not ok and args.keep_failed:
            log(f"partial output kept in {work}")
        elif not ok:
            shutil.rmtree(work, ignore_errors=True)
    if ok:
        log(f"done in {time.perf_counter() - T0:.0f}s")
        return 0
    return 1


def export(args, golden: Path, out_dir: Path, work: Path, checks: Checks) -> bool:
    import torch

    versions = {"torch": torch.__version__.split("+")[0], "torchFull": torch.__version__,
                "onnx": md.version("onnx"), "onnx2torch": md.version("onnx2torch"),
                "onnxruntime": md.version("onnxruntime")}
    pkg, cfg, versions["rapidocr"] = rapidocr_info()
    log(f"torch {versions['torchFull']}, onnx {versions['onnx']}, onnx2torch {versions['onnx2torch']}, "
        f"onnxruntime {versions['onnxruntime']}, rapidocr-onnxruntime {versions['rapidocr']}; "
        f"torch threads {torch.get_num_threads()}; work dir {work}")
    ort_paths = {"det": pkg / cfg["Det"]["model_path"], "cls": pkg / cfg["Cls"]["model_path"],
                 "rec": pkg / cfg["Rec"]["model_path"]}
    for k, p in ort_paths.items():
        if not p.is_file():
            raise ExportError(f"ONNX model missing: {p}")
    truth = load_truth(golden)
    log(f"golden set: {len(truth)} items ({sum(r['task'] == 'LINE' for r in truth)} LINE, "
        f"{sum(r['task'] == 'DOCUMENT' for r in truth)} DOCUMENT) from {golden}")

    from rapidocr_onnxruntime import RapidOCR
    threads = args.threads

    def new_engine():
        if threads:
            return RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1)
        return RapidOCR()

    ref_engine = new_engine()
    params = read_pipeline_params(ref_engine)

    # ---- 1. convert + trace
    patch_onnx2torch()
    prepared, infos, mods, trace_info = {}, {}, {}, {}
    std_dir = work / "ppocr-v4"
    std_dir.mkdir()
    probes = {"det": DET_PROBE_SIZES, "cls": CLS_PROBE_SIZES, "rec": REC_PROBE_SIZES}
    examples = {"det": (2, 3, 256, 320), "cls": (2, 3, 48, 192), "rec": (2, 3, 48, 320)}
    import onnxruntime as ort
    so = ort_options(threads)
    f64 = {}
    for k in ("det", "cls", "rec"):
        t = time.perf_counter()
        model, info = prepare_onnx(ort_paths[k], probes[k])
        # the rewritten graph must still match the original one (onnxruntime vs onnxruntime) at a third size
        third = {"det": (2, 3, 96, 160), "cls": (5, 3, 48, 192), "rec": (2, 3, 48, 480)}[k]
        xx = np.random.default_rng(5).uniform(-1, 1, third).astype(np.float32)
        a = ort.InferenceSession(str(ort_paths[k]), so, providers=["CPUExecutionProvider"]).run(None, {"x": xx})[0]
        b = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": xx})[0]
        info["rewrittenGraphMaxAbsDiff"] = float(np.abs(a - b).max())
        checks.require(info["rewrittenGraphMaxAbsDiff"] <= 1e-5, f"{k}: rewritten ONNX graph differs from original")
        prepared[k] = model
        f64[k] = to_torch(model).double()      # float64 arbiter (see compare_outputs)
        tm = to_torch(model)
        ex = torch.from_numpy(np.random.default_rng(11).uniform(-1, 1, examples[k]).astype(np.float32))
        mods[k], trace_info[k] = trace_save(tm, ex, std_dir / f"{k}.pt")
        info["trace"] = {"exampleInput": list(examples[k]), **trace_info[k]}
        infos[k] = info
        log(f"{k}: {info['constantsMovedToInitializers']} Constant->initializer, "
            f"{len(info['reshapesMadeStatic'])} Reshape(s) made static, {len(info['resizes'])} Resize(s) "
            f"with constant scales, traced ({trace_info[k]['atenSizeOps']} aten::size in graph) "
            f"in {time.perf_counter() - t:.0f}s")
        for r in info["reshapesMadeStatic"]:
            log(f"    {r['node']}: {r['evaluated'][0]} / {r['evaluated'][1]} -> {r['replacedBy']}")
    checks.gate("conversion")

    # ---- 2. charset
    character = params["rec"]["character"]           # rapidocr: ['blank'] + metadata lines + [' ']
    import onnx
    meta = {p.key: p.value for p in onnx.load(str(ort_paths["rec"]), load_external_data=False).metadata_props}
    lines = meta["character"].splitlines()
    checks.require(lines == meta["character"].split("\n"), "charset: splitlines() != split('\\n') (odd line breaks)")
    # charset.txt lists every non-blank output class in order, line i = class i + charsetOffset:
    # the metadata symbols, then the space class rapidocr appends (use_space_char). A decoder
    # then needs no knowledge of rapidocr's conventions (inference-pod/src/bundle.rs).
    symbols = list(lines)
    charset = symbols + [" "]
    num_classes = int(TorchSession(mods["rec"]).run_np(np.zeros((1, 3, 48, 320), np.float32)).shape[2])
    rec_info = {"numClasses": num_classes, "spaceIndex": len(charset), "charsetLines": len(charset),
                "metadataSymbols": len(lines), "seqLen": "floor(W/8) for the tested widths"}
    checks.require(num_classes == 1 + len(charset),
                   f"numClasses {num_classes} != charsetOffset 1 + charset.txt lines {len(charset)}")
    checks.require(character == ["blank"] + charset, "charset differs from rapidocr's CTCLabelDecode list")
    checks.require(" " not in symbols and "" not in symbols, "metadata charset contains ' ' or an empty symbol")
    checks.require(len(set(charset)) == len(charset), "charset has duplicate symbols")
    checks.require(all(len(c) == 1 for c in charset), "charset has multi-codepoint symbols")
    with open(std_dir / "charset.txt", "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(c + "\n" for c in charset))
    back = (std_dir / "charset.txt").read_text(encoding="utf-8").split("\n")[:-1]
    checks.require(back == charset, "charset.txt does not round-trip")
    log(f"charset: {len(lines)} symbols from ONNX metadata + the space class -> {len(charset)} lines; "
        f"numClasses {num_classes}, blank 0, space {rec_info['spaceIndex']}")
    checks.gate("charset")

    # ---- 3. sweeps
    log("sweeps against onnxruntime (original ONNX files)")
    sweep = sweeps(ort_paths, mods, f64, ref_engine, params, golden, truth, checks, threads)
    seq = sweep["rec"]["seqLenByWidth"]
    # two stride-2 stages (ceil) then a 2-wide average pool (floor); = W/8 for multiples of 8
    if all(v == (-(-(-(-int(w) // 2)) // 2)) // 2 for w, v in seq.items()):
        rec_info["seqLen"] = "floor(ceil(ceil(W/2)/2)/2)"
    else:
        checks.require(False, f"recogniser sequence length does not follow floor(ceil(ceil(W/2)/2)/2): {seq}")
    checks.gate("sweeps")

    # ---- 4. golden: pure onnxruntime reference (with shadow comparisons) + standard TorchScript pipeline
    log("golden run: rapidocr/onnxruntime with shadow TorchScript comparisons, then rapidocr/TorchScript")
    # float64 arbitration for cls/rec only (a float64 detector pass on a 736 x 4000 input takes ~30 s)
    stats = {k: ModuleStats(k, None if k == "det" else f64[k]) for k in ("det", "cls", "rec")}
    std_sessions = {k: TorchSession(torch.jit.load(str(std_dir / f"{k}.pt")).eval(), cache=8)
                    for k in ("det", "cls", "rec")}
    decode = ref_engine.text_rec.postprocess_op
    ref_engine.text_det.infer = ShadowSession(ref_engine.text_det.infer, std_sessions["det"], "det", stats["det"],
                                              det_thresh=params["det"]["thresh"])
    ref_engine.text_cls.infer = ShadowSession(ref_engine.text_cls.infer, std_sessions["cls"], "cls", stats["cls"])
    ref_engine.text_rec.session = ShadowSession(ref_engine.text_rec.session, std_sessions["rec"], "rec",
                                                stats["rec"], rec_decode=decode)
    std_engine = new_engine()
    std_engine.text_det.infer = std_sessions["det"]
    std_engine.text_cls.infer = std_sessions["cls"]
    std_engine.text_rec.session = std_sessions["rec"]
    # the standard run records its detector/classifier stage results; the variant bundles (whose
    # det.pt/cls.pt are byte-identical, checked below) replay them and only run their recogniser
    det_store, cls_store = {}, {}
    std_engine.text_det = CachedStage(std_engine.text_det, det_store)
    std_engine.text_cls = CachedStage(std_engine.text_cls, cls_store)
    ref_preds, std_preds = {}, {}
    t = time.perf_counter()
    for k, item in enumerate(truth, 1):
        ref_preds[item["id"]] = predict_item(ref_engine, golden, item)
        std_preds[item["id"]] = predict_item(std_engine, golden, item)   # same inputs -> reuses shadow results
        if k % 20 == 0 or k == len(truth):
            log(f"  {k}/{len(truth)} images ({time.perf_counter() - t:.0f}s)")
    golden_modules = {k: v.as_dict() for k, v in stats.items()}
    for k in ("det", "cls", "rec"):
        log(f"  {k}: {golden_modules[k]}")
        checks.require(stats[k].calls > 0, f"golden: {k} session never called")
        checks.require(not stats[k].failed, f"golden {k}: {len(stats[k].failed)} tolerance failure(s): "
                                            f"{stats[k].failed[:3]}")
    checks.require(stats["cls"].mismatch == 0, f"golden cls: {stats['cls'].mismatch} argmax mismatches")
    checks.require(stats["rec"].mismatch == 0, f"golden rec: {stats['rec'].mismatch} decoded texts differ")
    acc_ref = accuracy(truth, ref_preds)
    acc_std = accuracy(truth, std_preds)
    differing = sorted(i for i in ref_preds if ref_preds[i] != std_preds[i])
    log(f"  accuracy onnxruntime={acc_ref['accuracy']:.4f} torchscript={acc_std['accuracy']:.4f}; "
        f"items differing: {len(differing)} {differing[:5]}")
    checks.require(not differing, f"TorchScript pipeline predictions differ from onnxruntime on {differing[:5]}")
    if acc_std["accuracy"] < MIN_ACCURACY:
        msg = f"standard accuracy {acc_std['accuracy']:.4f} < selfTest.minAccuracy {MIN_ACCURACY}"
        if args.allow_low_accuracy:
            log(f"  WARNING: {msg} (allowed by --allow-low-accuracy)")
        else:
            checks.require(False, msg + " (rerun with --allow-low-accuracy to export anyway)")
    write_jsonl(std_dir / "reference-predictions.jsonl", ref_preds)
    write_jsonl(std_dir / "golden-predictions.jsonl", std_preds)
    checks.gate("golden comparison")

    # ---- 5. libtorch (no Python) load check
    libtorch = {"status": "skipped (--skip-libtorch-check)"}
    if not args.skip_libtorch_check:
        libtorch = libtorch_check(work, {"det": [(1, 3, 96, 128), (2, 3, 64, 64)], "cls": [(3, 3, 48, 192)],
                                         "rec": [(1, 3, 48, 320), (3, 3, 48, 250)]},
                                  {k: (std_dir / f"{k}.pt", mods[k]) for k in ("det", "cls", "rec")}, checks)
        checks.gate("libtorch load check")

    # variant engine: det/cls stage results replayed from the standard run
    veng = new_engine()
    veng.text_det.infer = std_sessions["det"]
    veng.text_cls.infer = std_sessions["cls"]
    veng.text_det = CachedStage(veng.text_det, det_store)
    veng.text_cls = CachedStage(veng.text_cls, cls_store)

    def variant_engine(rec_module):
        veng.text_rec.session = TorchSession(rec_module)
        return veng

    # ---- 6. degraded: deterministic search for the noise scale
    log("degraded: searching the recogniser noise scale (det/cls cached)")
    search = []

    def trial(scale):
        m, n_t, n_p = perturb_weights(prepared["rec"], scale, DEGRADE_SEED)
        eng = variant_engine(to_torch(m))
        preds = {it["id"]: predict_item(eng, golden, it) for it in truth}
        a = accuracy(truth, preds)["accuracy"]
        drop = acc_std["accuracy"] - a
        search.append({"scale": scale, "accuracy": a, "drop": round(drop, 6)})
        log(f"  scale {scale:.4g}: accuracy {a:.4f} (drop {drop * 100:.1f} points; {n_t} tensors, {n_p} weights)")
        return m, a, drop

    # Deterministic search: walk the ladder until the drop reaches the target window
    # [DEGRADE_TARGET_DROP, DEGRADE_MAX_DROP]; if the step overshoots it (or kills accuracy), bisect
    # between the last two ladder scales; fall back to the tried scale that meets the hard
    # requirements with the drop closest to the window's middle.
    tried = {}
    chosen = None
    prev = 0.0

    def in_window(a, drop):
        return DEGRADE_TARGET_DROP <= drop <= DEGRADE_MAX_DROP and a >= DEGRADE_MIN_ACC

    for s in DEGRADE_LADDER:
        m, a, drop = trial(s)
        tried[s] = (m, a, drop)
        if in_window(a, drop):
            chosen = (s, m)
        elif drop > DEGRADE_MAX_DROP or (drop >= DEGRADE_TARGET_DROP and a < DEGRADE_MIN_ACC):
            lo, hi = prev, s
            for _ in range(4):
                mid = round((lo + hi) / 2, 5)
                m, a, drop = trial(mid)
                tried[mid] = (m, a, drop)
                if in_window(a, drop):
                    chosen = (mid, m)
                    break
                lo, hi = (mid, hi) if drop < DEGRADE_TARGET_DROP else (lo, mid)
        if chosen is not None or drop >= DEGRADE_TARGET_DROP:
            break
        prev = s
    if chosen is None:
        ok_ = [(abs(d - (DEGRADE_TARGET_DROP + DEGRADE_MAX_DROP) / 2), sc) for sc, (_, a, d) in tried.items()
               if d >= DEGRADE_MIN_DROP and a >= DEGRADE_MIN_ACC]
        if ok_:
            sc = min(ok_)[1]
            chosen = (sc, tried[sc][0])
    tried = None
    if chosen is None:
        raise ExportError(f"degraded: no noise scale gives a drop >= {DEGRADE_MIN_DROP * 100:.0f} points with "
                          f"accuracy >= {DEGRADE_MIN_ACC}: {search}")
    deg_scale, deg_model = chosen
    deg_dir = work / "ppocr-v4-degraded"
    deg_dir.mkdir()
    deg_mod, deg_trace = trace_save(to_torch(deg_model), torch.from_numpy(
        np.random.default_rng(11).uniform(-1, 1, examples["rec"]).astype(np.float32)), deg_dir / "rec.pt")
    deg_preds = run_pipeline(variant_engine(torch.jit.load(str(deg_dir / "rec.pt")).eval()), golden, truth,
                             "degraded golden run")
    acc_deg = accuracy(truth, deg_preds)
    deg_drop = acc_std["accuracy"] - acc_deg["accuracy"]
    log(f"  degraded: scale {deg_scale}, accuracy {acc_deg['accuracy']:.4f}, drop {deg_drop * 100:.2f} points")
    checks.require(deg_drop >= DEGRADE_MIN_DROP, f"degraded drop {deg_drop * 100:.2f} < {DEGRADE_MIN_DROP * 100} points")
    checks.require(acc_deg["accuracy"] > 0.0, "degraded accuracy is 0 (trivial)")
    write_jsonl(deg_dir / "golden-predictions.jsonl", deg_preds)
    checks.gate("degraded")

    # ---- 7. slow: repeated forward
    log(f"slow: recogniser forward x{SLOW_REPEATS}")
    slow_dir = work / "ppocr-v4-slow"
    slow_dir.mkdir()
    slow_mod, slow_trace = trace_save(make_repeated(to_torch(prepared["rec"]), SLOW_REPEATS), torch.from_numpy(
        np.random.default_rng(11).uniform(-1, 1, examples["rec"]).astype(np.float32)), slow_dir / "rec.pt")
    std_rec = torch.jit.load(str(std_dir / "rec.pt")).eval()
    slow_rec = torch.jit.load(str(slow_dir / "rec.pt")).eval()
    rng = np.random.default_rng(9)
    slow_diff = 0.0
    for shp in [(1, 3, 48, 320), (6, 3, 48, 640), (3, 3, 48, 250), (8, 3, 48, 1200)]:
        x = torch.from_numpy(rng.uniform(-1, 1, shp).astype(np.float32))
        with torch.no_grad():
            slow_diff = max(slow_diff, float((std_rec(x) - slow_rec(x)).abs().max()))
    checks.require(slow_diff <= 1e-6, f"slow recogniser output differs from standard by {slow_diff}")
    latency = measure_latency(std_rec, slow_rec)
    for i in latency["inputs"]:
        log(f"  latency {i['shape']}: standard {i['standardMedianMs']} ms, slow {i['slowMedianMs']} ms, "
            f"ratio {i['ratio']}")
    checks.require(latency["minRatio"] >= SLOW_MIN_RATIO,
                   f"slow latency ratio {latency['minRatio']} < {SLOW_MIN_RATIO}")
    slow_preds = run_pipeline(variant_engine(slow_rec), golden, truth, "slow golden run")
    acc_slow = accuracy(truth, slow_preds)
    slow_differing = sorted(i for i in std_preds if std_preds[i] != slow_preds[i])
    checks.require(not slow_differing, f"slow golden predictions differ from standard on {slow_differing[:5]}")
    write_jsonl(slow_dir / "golden-predictions.jsonl", slow_preds)
    checks.gate("slow")

    # ---- 8. bundle files
    for d in (deg_dir, slow_dir):
        for f in ("det.pt", "cls.pt", "charset.txt"):
            shutil.copyfile(std_dir / f, d / f)
            checks.require(sha256(std_dir / f) == sha256(d / f), f"{d.name}/{f} is not identical to the standard one")
    common = {
        "exportedWith": versions, "tolerance": TOL, "golden": {"path": str(golden), "items": len(truth)},
        "onnxRewrite": infos, "charset": rec_info,
        "outputs": {"det": "N x 1 x H x W float32, sigmoid probability map",
                    "cls": "N x 2 float32 softmax probabilities (labels order)",
                    "rec": "N x T x numClasses float32 softmax probabilities, T = " + rec_info["seqLen"]},
        "sweeps": sweep, "goldenModules": golden_modules, "libtorchLoad": libtorch,
        "accuracyDefinition": "1 - CER, micro (total edits / total truth chars), NFKC, whitespace collapsed, "
                              "DOCUMENT lines joined with a space",
        "referenceAccuracy": acc_ref, "standardAccuracy": acc_std,
        "pipelineItemsDifferingFromOnnxruntime": differing,
        "frozen": False,
    }
    bundles = {
        "ppocr-v4": ("standard", std_dir, {"accuracy": acc_std}, ""),
        "ppocr-v4-degraded": ("degraded", deg_dir, {
            "accuracy": acc_deg, "degradation": {
                "method": "gaussian noise N(0, (scale*std(w))^2) added to every Conv/MatMul weight tensor of "
                          "the recogniser, numpy default_rng([seed, tensor index])",
                "seed": DEGRADE_SEED, "scale": deg_scale, "search": search,
                "standardAccuracy": acc_std["accuracy"], "degradedAccuracy": acc_deg["accuracy"],
                "dropPoints": round(deg_drop * 100, 3), "minDropPoints": DEGRADE_MIN_DROP * 100},
            "recTrace": deg_trace},
            f"# VARIANT degraded: recogniser weights perturbed (noise scale {deg_scale}, seed {DEGRADE_SEED});\n"
            f"# golden accuracy {acc_deg['accuracy']:.4f} vs {acc_std['accuracy']:.4f} standard.\n"),
        "ppocr-v4-slow": ("slow", slow_dir, {
            "accuracy": acc_slow, "slow": {
                "repeats": SLOW_REPEATS, "maxAbsDiffVsStandard": slow_diff, "latency": latency,
                "minRatio": SLOW_MIN_RATIO, "goldenPredictionsIdenticalToStandard": not slow_differing},
            "recTrace": slow_trace},
            f"# VARIANT slow: rec.pt runs the recogniser {SLOW_REPEATS}x (chained, same outputs); "
            f"latency ratio {latency['minRatio']}.\n"),
    }
    for name, (variant, d, extra, comment) in bundles.items():
        (d / "bundle.yaml").write_text(bundle_yaml(name, variant, params, versions, rec_info, comment),
                                       encoding="utf-8")
        files = {f: sha256(d / f) for f in ("det.pt", "cls.pt", "rec.pt", "charset.txt")}
        ver = {"bundle": name, "variant": variant, "passed": True, "files": files, **extra, **common,
               "elapsedSeconds": round(time.perf_counter() - T0, 1)}
        with open(d / "verification.json", "w", encoding="utf-8") as f:
            json.dump(ver, f, indent=2, ensure_ascii=False, default=str)
            f.write("\n")
    # sanity: the YAML parses and says what we think
    import yaml
    for name, (variant, d, _, _) in bundles.items():
        y = yaml.safe_load((d / "bundle.yaml").read_text(encoding="utf-8"))
        checks.require(y["name"] == name and y["variant"] == variant and
                       y["recognizer"]["numClasses"] == num_classes, f"{name}/bundle.yaml does not round-trip")
        for f in ("det.pt", "cls.pt", "rec.pt", "charset.txt", "verification.json", "golden-predictions.jsonl"):
            checks.require((d / f).is_file(), f"{name}/{f} missing")
    checks.gate("bundle files")

    # ---- 9. move into place (rename; the previous copy is removed only after the new one is in)
    for name, (_, d, _, _) in bundles.items():
        dest = out_dir / name
        old = None
        if dest.exists():
            old = out_dir / f".{name}.old-{os.getpid()}"
            os.rename(dest, old)
        os.rename(d, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        log(f"wrote {dest}")
    shutil.rmtree(work, ignore_errors=True)
    log(f"summary: accuracy ref {acc_ref['accuracy']:.4f} / standard {acc_std['accuracy']:.4f} / degraded "
        f"{acc_deg['accuracy']:.4f} (drop {deg_drop * 100:.2f} pts) / slow {acc_slow['accuracy']:.4f}; "
        f"slow ratio {latency['minRatio']}; max|diff| det {golden_modules['det']['maxAbsDiff']:.3g} "
        f"cls {golden_modules['cls']['maxAbsDiff']:.3g} rec {golden_modules['rec']['maxAbsDiff']:.3g}")
    return True


if __name__ == "__main__":
    sys.exit(main())
