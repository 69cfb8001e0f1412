#!/usr/bin/env python3
"""Deterministic generator for the kube-ocr document golden set (documents as users send them).

Usage:
    python golden/tools/make_document_set.py --out golden/documents

Writes (after wiping only these paths inside --out):
    multipage/    a born-digital PDF (text layer), an image-only ("scanned") PDF and a
                  multi-page TIFF, all three holding the same three English pages
    rotated/      two clean documents turned 90, 180 and 270 degrees clockwise, plus
                  each one upright (variant `clean`) as the baseline
    transparent/  RGBA PNGs: dark text and light text on a fully transparent background
    truth.jsonl   one JSON object per item, sorted by id (DOCUMENT items; multi-page
                  items also carry `pages`, the lines of each page)
    MANIFEST.sha256  sha256sum-format list of every other file, sorted by path

Inputs: the clean document PNGs and truth of the default set (golden/data, checked
against its MANIFEST.sha256 before use), the content lists and font table of
make_golden_set.py, and the Debian fonts in fonts.txt (transparent items only).

Determinism: no randomness; PDFs are written by the small writer below (no dates,
no IDs, uncompressed content streams); PNG, JPEG and TIFF are written with fixed
parameters and without metadata. As for the default set, the bytes depend on the
Pillow / FreeType / zlib / libjpeg / libtiff builds and on the font files.

Requires: Pillow, numpy.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden_set as mgs  # noqa: E402  (content lists, fonts, PNG parameters)

DEFAULT_SET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")

OWNED = ["multipage", "rotated", "transparent", "truth.jsonl", "MANIFEST.sha256"]

# The three English documents of the default set, in page order.
MULTIPAGE_GROUP = "multipage-en-01"
MULTIPAGE_DOCS = ["doc-invoice-01", "doc-letter-01", "doc-receipt-02"]
SCAN_DPI = 200
SCAN_JPEG_QUALITY = 75

# Clean documents to turn: one English, one Chinese (the orientation classifier must
# handle both scripts).
ROTATED_DOCS = ["doc-invoice-01", "doc-notice-01"]
ROTATIONS_CW = [90, 180, 270]
# Image.transpose names counter-clockwise turns: a clockwise quarter is ROTATE_270.
TRANSPOSE_CW = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}

# Transparent items: (group, font key, size, lines). Each is written with dark ink and
# with light ink. The colour channels hold the ink colour everywhere and the alpha channel
# holds the glyph coverage, as text exported from a design tool often is: dropping alpha
# gives a blank page for both, and flattening onto white blanks the light one.
TRANSPARENT_CONTENT = [
    ("transparent-label-01", "dejavu-sans", 30, [
        "SHIPPING LABEL",
        "Ship to: 42 Harbour Road, Springfield",
        "Tracking: 1Z 999 AA1 0123 4567",
    ]),
    ("transparent-note-01", "dejavu-serif", 30, [
        "Meeting moved to 3 pm",
        "Room 204, second floor",
        "Please bring the signed contracts",
    ]),
]
TRANSPARENT_INKS = [("alpha-dark", "dark", (16, 16, 16)), ("alpha-light", "light", (255, 255, 255))]

# Born-digital PDF layout (points; US Letter).
PDF_PAGE = (612, 792)
PDF_MARGIN_X = 72
PDF_TOP = 720
PDF_TITLE_SIZE = 16
PDF_BODY_SIZE = 12
PDF_LEADING = 22


# --------------------------------------------------------------------------
# Inputs from the default set
# --------------------------------------------------------------------------
def load_default_set(root: str) -> tuple[dict[str, dict], dict[str, str]]:
    """The default set's truth by id and its manifest (path -> sha256)."""
    truth = {}
    with open(os.path.join(root, "truth.jsonl"), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                truth[record["id"]] = record
    manifest = {}
    with open(os.path.join(root, "MANIFEST.sha256"), encoding="utf-8") as f:
        for line in f:
            digest, rel = line.rstrip("\n").split("  ", 1)
            manifest[rel] = digest
    return truth, manifest


def clean_document(root: str, truth: dict, manifest: dict, group: str) -> tuple[Image.Image, list[str], str]:
    """The clean PNG of a default-set document (hash-checked), its lines and its path."""
    record = truth[f"{group}-clean"]
    rel = record["file"]
    with open(os.path.join(root, rel), "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != manifest.get(rel):
        sys.exit(f"error: {rel} in {root} does not match its MANIFEST.sha256; restore golden/data first")
    lines = list(record["lines"])
    content = {c[0]: c[5] for c in mgs.DOC_CONTENT}
    assert lines == content[group], f"{group}: truth.jsonl and make_golden_set.py disagree"
    img = Image.open(io.BytesIO(data))
    img.load()
    return img, lines, f"golden/data/{rel}"


# --------------------------------------------------------------------------
# A minimal PDF 1.4 writer: numbered objects, a classic xref table, no dates or IDs.
# --------------------------------------------------------------------------
def pdf_number(x: float) -> str:
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.4f}".rstrip("0").rstrip(".")


def pdf_string(text: str) -> bytes:
    """A literal string in WinAnsiEncoding (ASCII here), with \\ ( ) escaped."""
    if any(not (0x20 <= ord(c) < 0x7F) for c in text):
        raise SystemExit(f"born-digital PDF text must be printable ASCII: {text!r}")
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("latin-1") + b")"


class PdfWriter:
    def __init__(self) -> None:
        self.objects: list[bytes | None] = []

    def reserve(self) -> int:
        self.objects.append(None)
        return len(self.objects)

    def set(self, num: int, body: bytes) -> None:
        self.objects[num - 1] = body

    def add(self, body: bytes) -> int:
        num = self.reserve()
        self.set(num, body)
        return num

    def add_stream(self, entries: bytes, data: bytes) -> int:
        head = b"<< " + entries + (b" " if entries else b"") + b"/Length " + str(len(data)).encode() + b" >>"
        return self.add(head + b"\nstream\n" + data + b"\nendstream")

    def write(self, root: int) -> bytes:
        out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for num, body in enumerate(self.objects, start=1):
            assert body is not None, f"object {num} reserved but never set"
            offsets.append(len(out))
            out += f"{num} 0 obj\n".encode() + body + b"\nendobj\n"
        xref = len(out)
        out += f"xref\n0 {len(self.objects) + 1}\n".encode()
        out += b"0000000000 65535 f \n"
        for offset in offsets:
            out += f"{offset:010d} 00000 n \n".encode()
        out += f"trailer\n<< /Size {len(self.objects) + 1} /Root {root} 0 R >>\n".encode()
        out += f"startxref\n{xref}\n%%EOF\n".encode()
        return bytes(out)


def born_digital_pdf(pages_lines: list[list[str]]) -> bytes:
    """Text pages in Helvetica: the first line of a page as a title, one Tj per line."""
    w = PdfWriter()
    catalog = w.reserve()
    pages_obj = w.reserve()
    font = w.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    kids = []
    for lines in pages_lines:
        ops = []
        y = PDF_TOP
        for i, text in enumerate(lines):
            size = PDF_TITLE_SIZE if i == 0 else PDF_BODY_SIZE
            ops.append(b"BT /F1 %d Tf %d %d Td " % (size, PDF_MARGIN_X, y) + pdf_string(text) + b" Tj ET")
            y -= PDF_LEADING + (8 if i == 0 else 0)
        content_obj = w.add_stream(b"", b"\n".join(ops) + b"\n")
        kids.append(w.add(
            f"<< /Type /Page /Parent {pages_obj} 0 R /MediaBox [0 0 {PDF_PAGE[0]} {PDF_PAGE[1]}] "
            f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {content_obj} 0 R >>".encode()
        ))
    w.set(pages_obj, f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>".encode())
    w.set(catalog, f"<< /Type /Catalog /Pages {pages_obj} 0 R >>".encode())
    return w.write(catalog)


def scanned_pdf(images: list[Image.Image]) -> bytes:
    """One grayscale JPEG (DCTDecode) per page, drawn over the whole page; no text."""
    w = PdfWriter()
    catalog = w.reserve()
    pages_obj = w.reserve()
    kids = []
    for img in images:
        assert img.mode == "L", img.mode
        buf = io.BytesIO()
        img.copy().save(buf, quality=SCAN_JPEG_QUALITY, **mgs.JPEG_PARAMS)
        jpeg = buf.getvalue()
        width_pt = img.width * 72 / SCAN_DPI
        height_pt = img.height * 72 / SCAN_DPI
        image_obj = w.add_stream(
            f"/Type /XObject /Subtype /Image /Width {img.width} /Height {img.height} "
            f"/ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode".encode(),
            jpeg,
        )
        content = f"q {pdf_number(width_pt)} 0 0 {pdf_number(height_pt)} 0 0 cm /Im1 Do Q\n".encode()
        content_obj = w.add_stream(b"", content)
        kids.append(w.add(
            f"<< /Type /Page /Parent {pages_obj} 0 R "
            f"/MediaBox [0 0 {pdf_number(width_pt)} {pdf_number(height_pt)}] "
            f"/Resources << /XObject << /Im1 {image_obj} 0 R >> >> /Contents {content_obj} 0 R >>".encode()
        ))
    w.set(pages_obj, f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>".encode())
    w.set(catalog, f"<< /Type /Catalog /Pages {pages_obj} 0 R >>".encode())
    return w.write(catalog)


def multipage_tiff(images: list[Image.Image], path: str) -> None:
    # Fresh copies: Image.save leaves its options on the image (encoderinfo), and a TIFF
    # writer appending a frame saved before as JPEG would pick them up.
    images = [img.copy() for img in images]
    images[0].save(
        path, format="TIFF", save_all=True, append_images=images[1:],
        compression="tiff_adobe_deflate", dpi=(SCAN_DPI, SCAN_DPI),
    )


# --------------------------------------------------------------------------
# Transparent text
# --------------------------------------------------------------------------
def render_transparent(lines: list[str], font_key: str, size: int, ink: tuple[int, int, int]) -> Image.Image:
    font = mgs.load_font(font_key, size)
    ascent, descent = font.getmetrics()
    pitch = int(round((ascent + descent) * 1.6))
    margin = 32
    width = max(font.getbbox(t, anchor="ls")[2] for t in lines) + 2 * margin
    height = 2 * margin + pitch * (len(lines) - 1) + ascent + descent
    coverage = Image.new("L", (width, height), color=0)
    draw = ImageDraw.Draw(coverage)
    y = margin + ascent
    for t in lines:
        draw.text((margin, y), t, font=font, fill=255, anchor="ls")
        y += pitch
    rgba = np.empty((height, width, 4), dtype=np.uint8)
    rgba[..., :3] = np.array(ink, dtype=np.uint8)
    rgba[..., 3] = np.asarray(coverage)
    return Image.fromarray(rgba, mode="RGBA")


# --------------------------------------------------------------------------
def build(out: str, default_set: str) -> list[dict]:
    truth, manifest = load_default_set(default_set)
    for name in OWNED:
        p = os.path.join(out, name)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
    for d in ["multipage", "rotated", "transparent"]:
        os.makedirs(os.path.join(out, d))

    records: list[dict] = []

    # Multi-page documents: the same three pages as text, as images in a PDF, as a TIFF.
    pages = [clean_document(default_set, truth, manifest, g) for g in MULTIPAGE_DOCS]
    images = [img for img, _, _ in pages]
    pages_lines = [lines for _, lines, _ in pages]
    all_lines = [line for lines in pages_lines for line in lines]
    sources = [src for _, _, src in pages]
    multipage = [
        ("pdf-born-digital", "multipage/pdf-born-digital.pdf", "pdf-text", ["format:pdf", "layer:text"]),
        ("pdf-scanned", "multipage/pdf-scanned.pdf", "pdf-image", ["format:pdf", "layer:image"]),
        ("tiff-multipage", "multipage/tiff-multipage.tif", "tiff", ["format:tiff", "layer:image"]),
    ]
    for item_id, rel, variant, format_tags in multipage:
        path = os.path.join(out, rel)
        if variant == "pdf-text":
            with open(path, "wb") as f:
                f.write(born_digital_pdf(pages_lines))
        elif variant == "pdf-image":
            with open(path, "wb") as f:
                f.write(scanned_pdf(images))
        else:
            multipage_tiff(images, path)
        records.append({
            "id": item_id, "file": rel, "task": "DOCUMENT", "lines": all_lines,
            "group": MULTIPAGE_GROUP, "variant": variant,
            "tags": ["lang:en", "kind:multipage", *format_tags, f"pages:{len(pages_lines)}"],
            "pages": pages_lines, "sources": sources,
        })

    # Rotated pages (lossless quarter turns of the clean PNG) and the upright baseline.
    for group in ROTATED_DOCS:
        img, lines, source = clean_document(default_set, truth, manifest, group)
        lang = next(t for t in truth[f"{group}-clean"]["tags"] if t.startswith("lang:"))
        for angle in [0, *ROTATIONS_CW]:
            variant = "clean" if angle == 0 else f"rot{angle}"
            item_id = f"{group}-{variant}"
            rel = f"rotated/{item_id}.png"
            turned = img if angle == 0 else img.transpose(TRANSPOSE_CW[angle])
            turned.save(os.path.join(out, rel), **mgs.PNG_PARAMS)
            records.append({
                "id": item_id, "file": rel, "task": "DOCUMENT", "lines": lines,
                "group": group, "variant": variant,
                "tags": [lang, "format:png", f"rotation:{angle}"],
                "sources": [source],
            })

    # Text on a transparent background, dark and light ink.
    for group, font_key, size, lines in TRANSPARENT_CONTENT:
        for variant, ink_name, ink in TRANSPARENT_INKS:
            item_id = f"{group}-{variant}"
            rel = f"transparent/{item_id}.png"
            render_transparent(lines, font_key, size, ink).save(os.path.join(out, rel), **mgs.PNG_PARAMS)
            records.append({
                "id": item_id, "file": rel, "task": "DOCUMENT", "lines": list(lines),
                "group": group, "variant": variant,
                "tags": ["lang:en", "format:png", f"font:{font_key}", "alpha:transparent", f"ink:{ink_name}"],
            })

    records.sort(key=lambda r: r["id"])
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), "duplicate ids"
    with open(os.path.join(out, "truth.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, separators=(", ", ": ")) + "\n")

    write_manifest(out)
    return records


def write_manifest(out: str) -> None:
    """sha256sum format, sorted by path, like golden/data/MANIFEST.sha256."""
    files = []
    for name in OWNED:
        p = os.path.join(out, name)
        if os.path.isdir(p):
            for root, _, fnames in os.walk(p):
                files += [os.path.relpath(os.path.join(root, fn), out).replace(os.sep, "/") for fn in fnames]
        elif os.path.isfile(p) and name != "MANIFEST.sha256":
            files.append(name)
    files.sort()
    with open(os.path.join(out, "MANIFEST.sha256"), "w", encoding="utf-8", newline="\n") as f:
        for rel in files:
            with open(os.path.join(out, rel), "rb") as fh:
                f.write(f"{hashlib.sha256(fh.read()).hexdigest()}  {rel}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder (e.g. golden/documents)")
    ap.add_argument("--default-set", default=DEFAULT_SET, help="the default set to take clean pages from (golden/data)")
    args = ap.parse_args()
    for key in {font for _, font, _, _ in TRANSPARENT_CONTENT}:
        path, package, _ = mgs.FONTS[key]
        if not os.path.isfile(path):
            sys.exit(f"error: font '{key}' not found at {path}; apt-get install -y {package}")
    os.makedirs(args.out, exist_ok=True)
    records = build(args.out, os.path.normpath(args.default_set))
    total = 0
    for root, _, fnames in os.walk(args.out):
        for fn in fnames:
            if os.path.relpath(os.path.join(root, fn), args.out).split(os.sep)[0] in OWNED:
                total += os.path.getsize(os.path.join(root, fn))
    print(f"wrote {len(records)} DOCUMENT items to {args.out} ({total} bytes)")


if __name__ == "__main__":
    main()
