"""The peer for `make bench`: what a user would run instead of kube-ocr.

rapidocr-onnxruntime 1.4.4 (PP-OCRv4 on onnxruntime) with a fixed number of onnxruntime
threads, one image at a time in this one process (it has no server and no batching across
requests), over the golden set:
  DOCUMENT  the default pipeline (detect, classify, recognise) on every DOCUMENT image;
  LINE      the recogniser alone (`use_det=False, use_cls=False`) on every LINE image, as
            kube-ocr's LINE task reads a line without detection or direction classifier.
Each task: one warm-up pass (onnxruntime allocates per shape on first use), then `rounds`
timed passes. Writes, for the Rust bench to score with kube-ocr-golden (the same scorer
as the server's answers) and to put beside its own numbers:
  <out>/peer-documents.jsonl, <out>/peer-lines.jsonl   {"id", "lines"} per image
  <out>/peer-timing.json   the command, threads, and per task: images, seconds per round

Usage: python tools/bench/peer_rapidocr.py --golden golden/data --out target/bench --threads 2
`--rounds` defaults to $OCR_BENCH_ROUNDS or 3.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

ENGINE = "rapidocr-onnxruntime 1.4.4 (onnxruntime, PP-OCRv4)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--golden", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("OCR_BENCH_ROUNDS", "3")))
    args = parser.parse_args()

    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(intra_op_num_threads=args.threads, inter_op_num_threads=1)
    items = [json.loads(line) for line in (args.golden / "truth.jsonl").read_text().splitlines() if line.strip()]

    def images(task: str) -> list[tuple[str, bytes]]:
        return [(item["id"], (args.golden / item["file"]).read_bytes()) for item in items if item["task"] == task]

    def read_document(image: bytes) -> list[str]:
        result, _ = engine(image)
        return [text for _, text, _ in (result or [])]

    def read_line(image: bytes) -> list[str]:
        result, _ = engine(image, use_det=False, use_cls=False, use_rec=True)
        return [text for text, _ in (result or [])]

    args.out.mkdir(parents=True, exist_ok=True)
    timing = {
        "engine": ENGINE,
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "threads": args.threads,
        "cpuCount": os.cpu_count(),
    }
    for key, task, read, file in [
        ("documents", "DOCUMENT", read_document, "peer-documents.jsonl"),
        ("lines", "LINE", read_line, "peer-lines.jsonl"),
    ]:
        task_images = images(task)
        predictions, round_seconds = run(task_images, read, args.rounds)
        with open(args.out / file, "w") as out:
            for item_id, lines in predictions.items():
                out.write(json.dumps({"id": item_id, "lines": lines}, ensure_ascii=False) + "\n")
        timing[key] = {
            "task": task,
            "images": len(task_images),
            "rounds": args.rounds,
            "roundSeconds": round_seconds,
            "predictions": file,
        }
        best = min(round_seconds)
        print(f"peer {task}: {len(task_images)} images, best round {best:.2f}s = {len(task_images) / best:.2f}/s")
    (args.out / "peer-timing.json").write_text(json.dumps(timing, indent=1) + "\n")


def run(images, read, rounds: int) -> tuple[dict[str, list[str]], list[float]]:
    """One warm-up pass, then `rounds` timed passes; the last pass's reads."""
    for _, image in images:
        read(image)
    predictions: dict[str, list[str]] = {}
    round_seconds = []
    for _ in range(max(rounds, 1)):
        started = time.perf_counter()
        for item_id, image in images:
            predictions[item_id] = read(image)
        round_seconds.append(time.perf_counter() - started)
    return predictions, round_seconds


if __name__ == "__main__":
    main()
