"""Golden-set accuracy for the Python tools (the export's self-check and the reference run).

The Rust crate kube-ocr-golden is the canonical scorer (graphemes, WER, 1-NED, reports);
this is the same micro-averaged CER on code points, enough for the tools' gates, and
inference-pod/tests/server/bundle_verification.rs re-scores their output with the Rust metrics.
"""

from __future__ import annotations

import re
import unicodedata


def normalise(s: str) -> str:
    """NFKC (folds full-width forms OCR engines emit), whitespace runs collapsed, trimmed."""
    s = unicodedata.normalize("NFKC", s)
    return re.sub(r"\s+", " ", s).strip()


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def truth_text(item: dict) -> str:
    """The expected text of a truth.jsonl item, normalised (DOCUMENT lines joined)."""
    return normalise(item["text"] if item["task"] == "LINE" else " ".join(item["lines"]))


def predicted_text(prediction: dict) -> str:
    """The text of a predictions.jsonl entry, normalised; `text` or `lines` either way."""
    if "text" in prediction:
        return normalise(prediction["text"])
    return normalise(" ".join(prediction.get("lines", [])))


def accuracy(truth: list, predictions: dict) -> dict:
    """1 - micro CER (total edits / total truth chars) of `predictions` (id -> entry)."""
    edits = chars = 0
    for item in truth:
        ref = truth_text(item)
        edits += levenshtein(ref, predicted_text(predictions.get(item["id"], {})))
        chars += len(ref)
    cer = edits / max(1, chars)
    return {"accuracy": round(1.0 - cer, 6), "cer": round(cer, 6), "edits": edits, "chars": chars,
            "items": len(truth)}
