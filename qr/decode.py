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
        im = img
    elif isinstance(img, bytes | bytearray):
        im = Image.open(io.BytesIO(img))
    elif isinstance(img, str | PathLike):
        im = Image.open(img)
    else:
        raise TypeError(f"expected a PIL image, a path or image bytes, got {type(img).__name__}")
    im = ImageOps.exif_transpose(im)  # phone photos carry their rotation in EXIF
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


def decode_image(img: ImageInput, *, try_harder: bool = True) -> list[str]:
    """Texts of all QR codes in the image, in zxing's reading order (top to bottom, roughly)."""
    im = _load(img)
    found = zxingcpp.read_barcodes(
        im,
        formats=zxingcpp.BarcodeFormat.QRCode,
        try_rotate=try_harder,
        try_downscale=try_harder,
        try_invert=False,
    )
    return [b.text for b in found if b.valid]


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
