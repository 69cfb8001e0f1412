#!/usr/bin/env python3
"""Deterministic generator for the default kube-ocr golden set.

Usage:
    python golden/tools/make_golden_set.py --out golden/data

Writes (after wiping only these paths inside --out):
    lines/        single-line images (task LINE)
    documents/    multi-line page images (task DOCUMENT)
    truth.jsonl   one JSON object per image, sorted by id
    MANIFEST.sha256  sha256sum-format list of every other file, sorted by path

Determinism: every random choice comes from random.Random / numpy default_rng
seeded from a fixed string (crc32 of the group/item id, never Python's salted
hash()); contents are fixed lists below; PNG/JPEG are written with fixed
parameters and without metadata. Output bytes depend on the Pillow / FreeType /
zlib / libjpeg builds and on the exact Debian font files (see fonts.txt), so
regenerate with the same toolchain to get the same bytes (MANIFEST.sha256).

Requires: Pillow, numpy. Fonts: the Debian packages listed in fonts.txt.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# --------------------------------------------------------------------------
# Fonts: key -> (Debian file path, Debian package, face index in collection)
# --------------------------------------------------------------------------
FONTS = {
    "dejavu-sans": ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "fonts-dejavu-core", 0),
    "dejavu-serif": ("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf", "fonts-dejavu-core", 0),
    "liberation-sans": ("/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf", "fonts-liberation2", 0),
    "liberation-serif": ("/usr/share/fonts/truetype/liberation2/LiberationSerif-Regular.ttf", "fonts-liberation2", 0),
    "liberation-mono": ("/usr/share/fonts/truetype/liberation2/LiberationMono-Regular.ttf", "fonts-liberation2", 0),
    "freesans": ("/usr/share/fonts/truetype/freefont/FreeSans.ttf", "fonts-freefont-ttf", 0),
    "freeserif": ("/usr/share/fonts/truetype/freefont/FreeSerif.ttf", "fonts-freefont-ttf", 0),
    "wqy-microhei": ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "fonts-wqy-microhei", 0),
    "wqy-zenhei": ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", "fonts-wqy-zenhei", 0),
}

LATIN_FONTS = ["dejavu-sans", "liberation-serif", "freesans", "liberation-sans", "dejavu-serif", "liberation-mono", "freeserif"]
CJK_FONTS = ["wqy-microhei", "wqy-zenhei"]

# --------------------------------------------------------------------------
# Content (fixed). Each line group -> (group id, lang tag, kind tag, text).
# --------------------------------------------------------------------------
LINE_CONTENT = [
    ("line-en-001", "en", "sentence", "The quick brown fox jumps over the lazy dog"),
    ("line-en-002", "en", "sentence", "Please keep this receipt for your records"),
    ("line-en-003", "en", "address", "Shipping address: 42 Harbour Road, Springfield"),
    ("line-en-004", "en", "sentence", "Payment is due within thirty days of delivery"),
    ("line-en-005", "en", "sentence", "Thank you for choosing our service"),
    ("line-zh-001", "zh", "sentence", "今天天气很好，我们去公园散步"),
    ("line-zh-002", "zh", "sentence", "请保管好您的发票和收据"),
    ("line-zh-003", "zh", "sentence", "本店支持微信和支付宝付款"),
    ("line-zh-004", "zh", "sentence", "会议将于下午三点在二楼举行"),
    ("line-zh-005", "zh", "sentence", "欢迎光临，祝您购物愉快"),
    ("line-num-001", "en", "invoice-field", "Invoice No. INV-2026-0042"),
    ("line-num-002", "en", "amount", "Total: ¥1,234.50"),
    ("line-num-003", "en", "date", "2026-03-15"),
    ("line-num-004", "en", "phone", "Tel: +86 21 6234 5678"),
    ("line-num-005", "en", "amount", "Amount Due: $12,980.00"),
    ("line-mix-001", "mixed", "invoice-field", "发票号码 INV-2026-0042"),
    ("line-mix-002", "mixed", "amount", "合计金额：¥1,234.50元"),
    ("line-mix-003", "mixed", "date", "开票日期 2026年3月15日"),
    ("line-mix-004", "mixed", "phone", "联系电话 Tel 021-62345678"),
    ("line-mix-005", "mixed", "invoice-field", "订单编号 Order No. A7781"),
]

# Each document -> (group id, lang tag, kind tag, font key, degraded variant, lines)
DOC_CONTENT = [
    ("doc-invoice-01", "en", "invoice", "liberation-sans", "jpeg", [
        "ACME Trading Ltd.",
        "Invoice No. INV-2026-0042",
        "Date: 2026-03-15",
        "Bill to: Northwind Foods Inc.",
        "Item: Paper rolls x 12",
        "Subtotal: $1,092.48",
        "Tax (13%): $142.02",
        "Total: $1,234.50",
    ]),
    ("doc-receipt-01", "zh", "receipt", "wqy-microhei", "rotate", [
        "便利店购物小票",
        "门店：上海市徐汇区店",
        "日期：2026-03-15 14:32",
        "矿泉水 2瓶 ¥6.00",
        "面包 1个 ¥8.50",
        "合计：¥14.50",
        "谢谢惠顾，欢迎再次光临",
    ]),
    ("doc-notice-01", "zh", "notice", "wqy-zenhei", "blur", [
        "关于春节放假的通知",
        "各位同事：",
        "根据公司安排，春节假期为二月十日至二月十七日。",
        "请各部门提前做好工作安排。",
        "如有紧急事务，请联系行政部。",
        "行政部",
        "2026年1月20日",
    ]),
    ("doc-form-01", "mixed", "form", "wqy-microhei", "lowres", [
        "客户登记表",
        "Customer Registration Form",
        "姓名：李明",
        "电话：138-0013-8000",
        "邮箱：liming@example.com",
        "日期：2026-03-15",
        "备注：VIP会员",
    ]),
    ("doc-letter-01", "en", "letter", "dejavu-serif", "rotate", [
        "Dear Customer,",
        "Your order 7781 has been shipped today.",
        "It should arrive within three business days.",
        "If you have any questions, please contact us.",
        "Best regards,",
        "The Support Team",
    ]),
    ("doc-receipt-02", "en", "receipt", "freesans", "jpeg", [
        "CITY CAFE",
        "Order #0315-27",
        "2 x Latte 9.00",
        "1 x Bagel 3.50",
        "Subtotal 12.50",
        "Tip 1.50",
        "Total 14.00",
        "Paid by card",
    ]),
]

DEGRADATIONS = ["blur", "noise", "jpeg", "rotate", "lowres"]
LINE_DEGRADED_PER_GROUP = 3

PNG_PARAMS = dict(format="PNG", optimize=False, compress_level=9)
JPEG_LINE_QUALITY = 35
JPEG_DOC_QUALITY = 40
JPEG_PARAMS = dict(format="JPEG", optimize=False, progressive=False, subsampling=0)

OWNED = ["lines", "documents", "truth.jsonl", "MANIFEST.sha256"]


def seed_of(*parts: str) -> int:
    """Stable 32-bit seed from strings (independent of PYTHONHASHSEED)."""
    return zlib.crc32("/".join(parts).encode("utf-8"))


def load_font(key: str, size: int) -> ImageFont.FreeTypeFont:
    path, package, index = FONTS[key]
    if not os.path.isfile(path):
        sys.exit(
            f"error: font '{key}' not found at {path}; "
            f"install the Debian package '{package}' (apt-get install -y {package}), "
            f"or install everything listed in golden/tools/fonts.txt"
        )
    return ImageFont.truetype(path, size=size, index=index, layout_engine=ImageFont.Layout.BASIC)


def check_fonts() -> None:
    missing = sorted({pkg for (path, pkg, _) in FONTS.values() if not os.path.isfile(path)})
    if missing:
        paths = [f"  {p} ({pkg})" for (p, pkg, _) in FONTS.values() if not os.path.isfile(p)]
        sys.exit(
            "error: missing fonts:\n" + "\n".join(paths)
            + f"\ninstall the Debian packages: apt-get install -y {' '.join(missing)}"
        )


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------
def render_line(text: str, font_key: str, size: int, fg: int, bg: int, margin_x: int, margin_y: int) -> Image.Image:
    font = load_font(font_key, size)
    # Use the font's ascent/descent so every line of a font has the same height.
    ascent, descent = font.getmetrics()
    left, _, right, _ = font.getbbox(text, anchor="ls")
    w = (right - left) + 2 * margin_x
    h = ascent + descent + 2 * margin_y
    img = Image.new("L", (w, h), color=bg)
    draw = ImageDraw.Draw(img)
    draw.text((margin_x - left, margin_y + ascent), text, font=font, fill=fg, anchor="ls")
    return img


def render_document(lines: list[str], font_key: str, size: int, fg: int, bg: int, width: int) -> Image.Image:
    font = load_font(font_key, size)
    ascent, descent = font.getmetrics()
    pitch = int(round((ascent + descent) * 1.9))
    margin_x, margin_top = 48, 48
    height = margin_top * 2 + pitch * (len(lines) - 1) + ascent + descent
    need = max(font.getbbox(t, anchor="ls")[2] for t in lines) + 2 * margin_x
    if need > width:
        raise SystemExit(f"document line too wide for page ({need} > {width}): {lines}")
    img = Image.new("L", (width, height), color=bg)
    draw = ImageDraw.Draw(img)
    y = margin_top + ascent
    for t in lines:
        draw.text((margin_x, y), t, font=font, fill=fg, anchor="ls")
        y += pitch
    # A thin frame like a printed form border (far from the text).
    draw.rectangle([12, 12, width - 13, height - 13], outline=min(255, fg + 120), width=1)
    return img


# --------------------------------------------------------------------------
# Degradations (all deterministic given the seed)
# --------------------------------------------------------------------------
ROTATE_LINE_ANGLES = [-2.0, -1.5, -1.0, 1.0, 1.5, 2.0]
ROTATE_DOC_ANGLES = [-3.0, -2.5, -2.0, -1.5, 1.5, 2.0, 2.5, 3.0]


def degrade(img: Image.Image, variant: str, seed: int, bg: int, angles: list[float] = ROTATE_LINE_ANGLES) -> Image.Image:
    rng = random.Random(seed)
    if variant == "clean" or variant == "jpeg":
        return img  # jpeg = clean pixels, lossy encoding at save time
    if variant == "blur":
        return img.filter(ImageFilter.GaussianBlur(radius=rng.choice([0.9, 1.0, 1.1])))
    if variant == "noise":
        sigma = rng.choice([8.0, 10.0, 12.0])
        nrng = np.random.default_rng(seed)
        arr = np.asarray(img, dtype=np.float32)
        arr = arr + nrng.normal(0.0, sigma, size=arr.shape).astype(np.float32)
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
    if variant == "rotate":
        angle = rng.choice(angles)
        return img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=bg)
    if variant == "lowres":
        factor = rng.choice([0.5, 0.55, 0.6])
        w, h = img.size
        small = img.resize((max(1, int(round(w * factor))), max(1, int(round(h * factor)))), Image.Resampling.BOX)
        return small.resize((w, h), Image.Resampling.BILINEAR)
    raise ValueError(variant)


def save(img: Image.Image, path: str, variant: str, jpeg_quality: int) -> None:
    if variant == "jpeg":
        img.save(path, quality=jpeg_quality, **JPEG_PARAMS)
    else:
        img.save(path, **PNG_PARAMS)


# --------------------------------------------------------------------------
def build(out: str) -> list[dict]:
    for name in OWNED:
        p = os.path.join(out, name)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
    os.makedirs(os.path.join(out, "lines"))
    os.makedirs(os.path.join(out, "documents"))

    records: list[dict] = []
    latin_i = 0
    cjk_i = 0
    for gi, (group, lang, kind, text) in enumerate(LINE_CONTENT):
        rng = random.Random(seed_of(group))
        needs_cjk = any(ord(c) > 0x2E80 for c in text)
        if needs_cjk:
            font_key = CJK_FONTS[cjk_i % len(CJK_FONTS)]
            cjk_i += 1
        else:
            font_key = LATIN_FONTS[latin_i % len(LATIN_FONTS)]
            latin_i += 1
        size = rng.choice([24, 26, 28, 30])
        fg = rng.choice([0, 16, 32, 48])
        bg = rng.choice([255, 250, 244, 238])
        margin_x = rng.choice([12, 14, 16])
        margin_y = rng.choice([8, 10, 12])
        base = render_line(text, font_key, size, fg, bg, margin_x, margin_y)
        variants = ["clean"] + [DEGRADATIONS[(gi + k) % len(DEGRADATIONS)] for k in range(LINE_DEGRADED_PER_GROUP)]
        for variant in variants:
            item_id = f"{group}-{variant}"
            ext = "jpg" if variant == "jpeg" else "png"
            rel = f"lines/{item_id}.{ext}"
            img = degrade(base, variant, seed_of(item_id), bg)
            save(img, os.path.join(out, rel), variant, JPEG_LINE_QUALITY)
            records.append({
                "id": item_id, "file": rel, "task": "LINE", "text": text,
                "group": group, "variant": variant,
                "tags": [f"lang:{lang}", f"font:{font_key}", f"kind:{kind}"],
            })

    for group, lang, kind, font_key, degraded, lines in DOC_CONTENT:
        rng = random.Random(seed_of(group))
        size = rng.choice([28, 30, 32])
        fg = rng.choice([0, 24, 40])
        bg = rng.choice([255, 248, 242])
        base = render_document(lines, font_key, size, fg, bg, width=800)
        for variant in ["clean", degraded]:
            item_id = f"{group}-{variant}"
            ext = "jpg" if variant == "jpeg" else "png"
            rel = f"documents/{item_id}.{ext}"
            img = degrade(base, variant, seed_of(item_id), bg, ROTATE_DOC_ANGLES)
            save(img, os.path.join(out, rel), variant, JPEG_DOC_QUALITY)
            records.append({
                "id": item_id, "file": rel, "task": "DOCUMENT", "lines": list(lines),
                "group": group, "variant": variant,
                "tags": [f"lang:{lang}", f"font:{font_key}", f"kind:{kind}"],
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
    files = []
    for name in OWNED:
        if name == "MANIFEST.sha256":
            continue
        p = os.path.join(out, name)
        if os.path.isdir(p):
            for root, _, fnames in os.walk(p):
                for fn in fnames:
                    files.append(os.path.relpath(os.path.join(root, fn), out).replace(os.sep, "/"))
        elif os.path.isfile(p):
            files.append(name)
    files.sort()
    with open(os.path.join(out, "MANIFEST.sha256"), "w", encoding="utf-8", newline="\n") as f:
        for rel in files:
            with open(os.path.join(out, rel), "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
            f.write(f"{digest}  {rel}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="output folder (e.g. golden/data)")
    args = ap.parse_args()
    check_fonts()
    os.makedirs(args.out, exist_ok=True)
    records = build(args.out)
    n_line = sum(1 for r in records if r["task"] == "LINE")
    n_doc = len(records) - n_line
    total = 0
    for root, _, fnames in os.walk(args.out):
        for fn in fnames:
            if os.path.relpath(os.path.join(root, fn), args.out).split(os.sep)[0] in OWNED:
                total += os.path.getsize(os.path.join(root, fn))
    print(f"wrote {n_line} LINE + {n_doc} DOCUMENT items to {args.out} ({total} bytes)")


if __name__ == "__main__":
    main()
