"""The PDF peer for `make bench`: what a user would run instead of kube-ocr for PDFs.

Every page of the golden document set's PDFs (golden/documents/multipage/*.pdf) rendered
by PDFium (pypdfium2) at each resolution, then read by rapidocr-onnxruntime 1.4.4 (the
default pipeline: detect, classify, recognise) with a fixed number of onnxruntime
threads, one page at a time in this one process. Per resolution: one warm-up pass, then
`rounds` timed passes (render + read); render time is also kept alone.

Writes <out>/peer-pdf.json: the command, the engine, threads, and per dpi the pages, the
seconds per round, the render seconds per round, and each page's lines
({"<item id>#<page>": [lines]}) for the Rust bench to score with kube-ocr-golden.

pypdfium2 lives in its own venv (tools/bench/requirements.txt); `--site-packages` adds it
to this interpreter's path (it is pure Python around a bundled libpdfium).

Usage: python tools/bench/peer_pdf.py --documents golden/documents --out target/bench \
           --threads 2 --dpi 100 --dpi 200 --site-packages <venv>/lib/python3.11/site-packages
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

ENGINE = "rapidocr-onnxruntime 1.4.4 (onnxruntime, PP-OCRv4) on pages rendered by pypdfium2 5.15.2 (PDFium)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dpi", type=int, action="append", required=True)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("OCR_BENCH_ROUNDS", "3")))
    parser.add_argument("--site-packages", type=Path)
    args = parser.parse_args()
    if args.site_packages:
        sys.path.insert(0, str(args.site_packages))

    import pypdfium2 as pdfium
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR(intra_op_num_threads=args.threads, inter_op_num_threads=1)
    items = [
        json.loads(line)
        for line in (args.documents / "truth.jsonl").read_text().splitlines()
        if line.strip() and json.loads(line)["file"].endswith(".pdf")
    ]
    documents = [(item["id"], (args.documents / item["file"]).read_bytes()) for item in items]

    def read_all(dpi: int) -> tuple[dict[str, list[str]], float]:
        """Every page of every PDF; the reads and the seconds spent rendering."""
        reads: dict[str, list[str]] = {}
        rendering = 0.0
        for item_id, data in documents:
            pdf = pdfium.PdfDocument(data)
            for index in range(len(pdf)):
                started = time.perf_counter()
                # BGR, as rapidocr takes arrays (OpenCV's order).
                pixels = pdf[index].render(scale=dpi / 72).to_numpy()
                rendering += time.perf_counter() - started
                result, _ = engine(pixels)
                reads[f"{item_id}#{index + 1}"] = [text for _, text, _ in (result or [])]
            pdf.close()
        return reads, rendering

    report = {
        "engine": ENGINE,
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "threads": args.threads,
        "dpis": {},
    }
    for dpi in args.dpi:
        read_all(dpi)
        round_seconds, render_seconds = [], []
        reads: dict[str, list[str]] = {}
        for _ in range(max(args.rounds, 1)):
            started = time.perf_counter()
            reads, rendering = read_all(dpi)
            round_seconds.append(time.perf_counter() - started)
            render_seconds.append(rendering)
        report["dpis"][str(dpi)] = {
            "pages": len(reads),
            "roundSeconds": round_seconds,
            "renderSeconds": render_seconds,
            "reads": reads,
        }
        best = min(round_seconds)
        print(f"peer PDF at {dpi} dpi: {len(reads)} pages, best round {best:.2f}s = {len(reads) / best:.2f} pages/s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peer-pdf.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
