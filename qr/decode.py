"""Read QR codes back from images (zxing-cpp): label checks, sheet proofs, photos sent by phones.

``decode_image`` returns the text of every QR code found, ``decode_digital_links`` those that are stamp Digital
Links. Inputs: a PIL image (any mode), a path to a PNG/JPEG/... file, or raw encoded image bytes.
"""

from __future__ import annotations

import io
from os import PathLike
from typing import Union

import zxingcpp
from PIL import Image, ImageOps

from qr.digital_link import DigitalLink, DigitalLinkError

__all__ = ["ImageInput", "decode_digital_links", "decode_image"]

ImageInput = Union[Image.Image, str, PathLike, bytes]


def _load(img: ImageInput) -> Image.Image:
    if isinstance(img, Image.Image):
        im = ImageOps.exif_transpose(img)  # phone photos carry their rotation in EXIF
    elif isinstance(img, bytes | bytearray | str | PathLike):
        src = io.BytesIO(img) if isinstance(img, bytes | bytearray) else img
        with Image.open(src) as f:
            im = ImageOps.exif_transpose(f)  # a loaded copy: the file is closed on leaving
    else:
        raise TypeError(f"expected a PIL image, a path or image bytes, got {type(img).__name__}")
    if im.mode not in ("L", "RGB"):
        if im.mode in ("RGBA", "LA", "P", "PA"):
            # flatten transparency on white: a transparent background must read as paper, not as ink
            rgba = im.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            im = flat
        else:
            im = im.convert("L")
    return im


_RETRY_BINARIZERS = (
    zxingcpp.Binarizer.LocalAverage,
    zxingcpp.Binarizer.FixedThreshold,
    zxingcpp.Binarizer.GlobalHistogram,
)


def _read(im: Image.Image, try_harder: bool, binarizer: zxingcpp.Binarizer, errors: bool) -> list:
    return zxingcpp.read_barcodes(
        im,
        formats=zxingcpp.BarcodeFormat.QRCode,
        try_rotate=try_harder,
        try_downscale=try_harder,
        try_invert=False,
        binarizer=binarizer,
        return_errors=errors,
    )


def _box(code: zxingcpp.Barcode) -> tuple[int, int, int, int]:
    pos = code.position
    xs = (pos.top_left.x, pos.top_right.x, pos.bottom_right.x, pos.bottom_left.x)
    ys = (pos.top_left.y, pos.top_right.y, pos.bottom_right.y, pos.bottom_left.y)
    return min(xs), min(ys), max(xs), max(ys)


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return False
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])) or 1
    return w * h / smaller > 0.5


def _retry_region(im: Image.Image, box: tuple[int, int, int, int]) -> tuple[str, tuple[int, int, int, int]] | None:
    """Decode a symbol that was located but misread (e.g. a checksum error on a blurred, rotated sheet) again,
    in a crop around it and with each binarizer. The located part may be a fragment of the symbol, so the crop
    reaches one box size around it; the readable symbol nearest its centre wins. Returns (text, box in ``im``)."""
    pad = max(box[2] - box[0], box[3] - box[1]) + 16
    x0, y0 = max(0, box[0] - pad), max(0, box[1] - pad)
    crop = im.crop((x0, y0, min(im.width, box[2] + pad), min(im.height, box[3] + pad)))
    cx, cy = (box[0] + box[2]) / 2 - x0, (box[1] + box[3]) / 2 - y0
    for binarizer in _RETRY_BINARIZERS:
        found = [b for b in _read(crop, True, binarizer, False) if b.valid]
        if found:
            def dist(b: zxingcpp.Barcode) -> float:
                bx = _box(b)
                return ((bx[0] + bx[2]) / 2 - cx) ** 2 + ((bx[1] + bx[3]) / 2 - cy) ** 2

            best = min(found, key=dist)
            bx = _box(best)
            return best.text, (bx[0] + x0, bx[1] + y0, bx[2] + x0, bx[3] + y0)
    return None


def decode_image(img: ImageInput, *, try_harder: bool = True) -> list[str]:
    """Texts of all QR codes in the image: in zxing's reading order, symbols that needed a second try last.

    With ``try_harder`` (default) zxing also looks for rotated and downscaled symbols, and a symbol it located
    but could not read is retried on its own with other binarizers. The same text twice means two symbols.
    """
    im = _load(img)
    found = _read(im, try_harder, zxingcpp.Binarizer.LocalAverage, try_harder)
    texts: list[str] = []
    boxes: list[tuple[int, int, int, int]] = []
    for b in found:
        if b.valid:
            texts.append(b.text)
            boxes.append(_box(b))
    if try_harder:
        for b in found:
            if b.valid or any(_overlaps(_box(b), other) for other in boxes):
                continue
            retry = _retry_region(im, _box(b))
            if retry is not None and not any(_overlaps(retry[1], other) for other in boxes):
                texts.append(retry[0])
                boxes.append(retry[1])
    return texts


def decode_digital_links(
    img: ImageInput, *, base: str | None = None, strict: bool = False, try_harder: bool = True
) -> list[DigitalLink]:
    """The stamp Digital Links among the QR codes in the image.

    Codes that are not stamp Digital Links are skipped, or raise :class:`DigitalLinkError` if ``strict``.
    """
    out: list[DigitalLink] = []
    for text in decode_image(img, try_harder=try_harder):
        try:
            out.append(DigitalLink.parse(text, base=base))
        except DigitalLinkError:
            if strict:
                raise
    return out
