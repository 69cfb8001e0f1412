#!/usr/bin/env python3
"""Legibility sanity check of the golden set with a reference OCR (RapidOCR, PP-OCRv4 ONNX).

Usage:
    python golden/tools/reference_eval.py --data golden/data --out /tmp/reference-predictions.jsonl

For every item of <data>/truth.jsonl the full RapidOCR pipeline (det+cls+rec, the
default call) is run. LINE: detected texts joined with a space -> {"id", "text"}.
DOCUMENT: detected texts in the returned order -> {"id", "lines"}.
Predictions are written sorted by id, one JSON object per line, and a CER summary
(micro: total edits / total truth chars, after NFKC + whitespace collapsing;
DOCUMENT lines are joined with a space before comparing) is printed per task and
per variant. This is a sanity check, not the project's scorer (that lives in the
golden crate).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_metrics import levenshtein, normalise  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description="RapidOCR reference run over the golden set")
    ap.add_argument("--data", required=True, help="golden data folder (with truth.jsonl)")
    ap.add_argument("--out", required=True, help="predictions JSONL to write")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    ap.add_argument("--verbose", action="store_true", help="print every item with CER > 0")
    args = ap.parse_args()

    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(intra_op_num_threads=args.threads, inter_op_num_threads=1)

    with open(os.path.join(args.data, "truth.jsonl"), encoding="utf-8") as f:
        truth = [json.loads(line) for line in f if line.strip()]
    truth.sort(key=lambda r: r["id"])

    preds = []
    rec_only = defaultdict(lambda: [0, 0, 0])  # LINE, recognition only (no det/cls): info for the summary
    stats = defaultdict(lambda: [0, 0, 0])  # key -> [edits, chars, items]
    worst = []
    for r in truth:
        result, _ = engine(os.path.join(args.data, r["file"]))
        texts = [t for (_, t, _) in (result or [])]
        if r["task"] == "LINE":
            pred = {"id": r["id"], "text": " ".join(texts)}
            ref, hyp = normalise(r["text"]), normalise(pred["text"])
        else:
            pred = {"id": r["id"], "lines": texts}
            ref, hyp = normalise(" ".join(r["lines"])), normalise(" ".join(texts))
        preds.append(pred)
        if r["task"] == "LINE":
            ro, _ = engine(os.path.join(args.data, r["file"]), use_det=False, use_cls=False, use_rec=True)
            ro_text = normalise(" ".join(t for (t, _) in (ro or [])))
            ro_e = levenshtein(ref, ro_text)
            for key in ("LINE rec-only", f"LINE rec-only / {r['variant']}"):
                rec_only[key][0] += ro_e
                rec_only[key][1] += len(ref)
                rec_only[key][2] += 1
        e = levenshtein(ref, hyp)
        for key in (("ALL",), (r["task"],), (r["task"], r["variant"]), ("variant", r["variant"])):
            s = stats[key]
            s[0] += e
            s[1] += len(ref)
            s[2] += 1
        cer = e / max(1, len(ref))
        worst.append((cer, r["id"], ref, hyp))
        if args.verbose and e:
            print(f"{r['id']}: CER={cer:.3f}\n  ref: {ref}\n  hyp: {hyp}", file=sys.stderr)

    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for p in preds:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")

    def row(key):
        e, n, k = stats[key]
        cer = e / max(1, n)
        return f"{' / '.join(key):<24} items={k:<4} chars={n:<5} edits={e:<4} CER={cer:.4f} acc={1 - cer:.4f}"

    print(f"wrote {len(preds)} predictions to {args.out}")
    print(row(("ALL",)))
    for task in ("LINE", "DOCUMENT"):
        if (task,) in stats:
            print(row((task,)))
            for key in sorted(k for k in stats if len(k) == 2 and k[0] == task):
                print("  " + row(key))
    for key in sorted(k for k in stats if k[0] == "variant"):
        print(row(key))
    if rec_only:
        print("info (not in the predictions file): LINE with recognition only, no detection")
        for key in ["LINE rec-only"] + sorted(k for k in rec_only if k != "LINE rec-only"):
            e, n, k = rec_only[key]
            print(f"  {key:<30} items={k:<4} CER={e / max(1, n):.4f} acc={1 - e / max(1, n):.4f}")
    worst.sort(key=lambda w: (-w[0], w[1]))
    print("worst items:")
    for cer, iid, ref, hyp in worst[:8]:
        print(f"  {cer:.3f} {iid}: ref={ref!r} hyp={hyp!r}")


if __name__ == "__main__":
    main()
