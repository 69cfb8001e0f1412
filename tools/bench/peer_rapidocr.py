"""The peer for `make bench`: what a user would run instead of kube-ocr.

Runs rapidocr-onnxruntime 1.4.4 (PP-OCRv4 on onnxruntime, default pipeline: detect,
classify, recognise) over the golden set's DOCUMENT images with a fixed number of
onnxruntime threads, one page at a time, and writes:
  <out>/peer-predictions.jsonl   {"id", "lines"} per page (scored by the Rust bench with
                                  kube-ocr-golden, the same scorer as the server's answers)
  <out>/peer-timing.json          pages, rounds, seconds per round, threads

Usage: python tools/bench/peer_rapidocr.py --golden golden/data --out target/bench --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--golden", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(intra_op_num_threads=args.threads, inter_op_num_threads=1)
    items = [json.loads(line) for line in (args.golden / "truth.jsonl").read_text().splitlines() if line.strip()]
    documents = [item for item in items if item["task"] == "DOCUMENT"]
    images = [(item["id"], (args.golden / item["file"]).read_bytes()) for item in documents]

    def read(image: bytes) -> list[str]:
        result, _ = engine(image)
        return [text for _, text, _ in (result or [])]

    read(images[0][1])  # warm-up: onnxruntime allocates on the first run
    round_seconds = []
    predictions = {}
    for _ in range(args.rounds):
        started = time.perf_counter()
        for item_id, image in images:
            predictions[item_id] = read(image)
        round_seconds.append(time.perf_counter() - started)

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "peer-predictions.jsonl", "w") as out:
        for item_id, lines in predictions.items():
            out.write(json.dumps({"id": item_id, "lines": lines}, ensure_ascii=False) + "\n")
    timing = {
        "engine": "rapidocr-onnxruntime 1.4.4 (onnxruntime, PP-OCRv4 det+cls+rec)",
        "pages": len(images),
        "rounds": args.rounds,
        "roundSeconds": round_seconds,
        "threads": args.threads,
        "cpuCount": os.cpu_count(),
    }
    (args.out / "peer-timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    best = min(round_seconds)
    print(f"peer: {len(images)} pages, best round {best:.2f}s = {len(images) / best:.2f} pages/s")


if __name__ == "__main__":
    main()
