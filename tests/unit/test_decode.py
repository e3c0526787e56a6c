"""Reading QR codes back (qr.decode)."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest
from PIL import Image

from qr import decode as decode_mod
from qr.decode import decode_digital_links, decode_image
from qr.digital_link import DigitalLink, DigitalLinkError
from qr.label import LabelRenderer, LabelSpec, layout_label, qr_image
from qr.matrix import qr_matrix

BASE = "https://truyxuat.ocop.vn"
LINK = DigitalLink("08934588012112", "TC-2024-001", "12M5ZJVGJ90", date(2025, 12, 31))
URI = LINK.build(BASE)


def symbol(text: str, module_px: int = 6) -> Image.Image:
    return qr_image(qr_matrix(text, "M"), module_px)


def side_by_side(*imgs: Image.Image) -> Image.Image:
    out = Image.new("L", (sum(i.width for i in imgs), max(i.height for i in imgs)), 255)
    x = 0
    for i in imgs:
        out.paste(i, (x, 0))
        x += i.width
    return out


@pytest.mark.parametrize("mode", ["1", "L", "RGB", "P", "LA", "CMYK", "I;16"])
def test_pil_images_of_any_mode(mode: str) -> None:
    assert decode_image(symbol(URI).convert(mode)) == [URI]


def test_transparent_background_reads_as_paper() -> None:
    sym = symbol(URI)
    rgba = Image.new("RGBA", sym.size, (0, 0, 0, 0))
    rgba.paste((0, 0, 0, 255), mask=sym.point(lambda v: 255 - v))  # black modules on transparency
    assert decode_image(rgba) == [URI]


@pytest.mark.parametrize(("fmt", "suffix"), [("PNG", ".png"), ("JPEG", ".jpg")])
def test_files_and_bytes(tmp_path: Path, fmt: str, suffix: str) -> None:
    img = symbol(URI).convert("RGB")
    path = tmp_path / f"code{suffix}"
    img.save(path, fmt)
    assert decode_image(path) == [URI]
    assert decode_image(str(path)) == [URI]
    buf = io.BytesIO()
    img.save(buf, fmt)
    assert decode_image(buf.getvalue()) == [URI]


def test_several_codes_and_copies() -> None:
    other = DigitalLink("08934588012112", "TC-2024-001", "13MRCX0TH3V").build(BASE)
    assert sorted(decode_image(side_by_side(symbol(URI), symbol(other)))) == sorted([URI, other])
    # two identical stamps in one photo are two symbols (a copied code looks exactly like this)
    assert decode_image(side_by_side(symbol(URI), symbol(URI))) == [URI, URI]


def test_nothing_to_read() -> None:
    assert decode_image(Image.new("L", (200, 200), 255)) == []
    assert decode_digital_links(Image.new("L", (200, 200), 255)) == []


def test_rotated_photo_like_input() -> None:
    img = symbol(URI).rotate(30, expand=True, fillcolor=255)
    assert decode_image(img) == [URI]


def test_digital_links_only_stamps() -> None:
    img = side_by_side(symbol(URI), symbol("hello, not a stamp"))
    assert decode_digital_links(img) == [LINK]
    assert decode_digital_links(img, base=BASE) == [LINK]
    assert decode_digital_links(img, base="https://other.vn") == []
    with pytest.raises(DigitalLinkError):
        decode_digital_links(img, strict=True)


def test_bad_input_type() -> None:
    with pytest.raises(TypeError, match="PIL image, a path or image bytes"):
        decode_image(12345)  # type: ignore[arg-type]


def test_a_misread_fragment_is_retried_alone() -> None:
    """The second-chance path: a located but unreadable part of a symbol is re-read in a crop around it."""
    spec = LabelSpec()
    r = LabelRenderer(spec, "Chè Tân Cương Hảo Đạt", "TC-2024-001", date(2025, 12, 31), 4)
    img = r.render(URI, LINK.serial or "")
    m = qr_matrix(URI, spec.ec)
    x, y, k = layout_label(spec, "Chè Tân Cương Hảo Đạt", "TC-2024-001", date(2025, 12, 31), 4).qr_placement(m.size)
    half = (x, y, x + m.size * k, y + m.size * k // 2)  # a fragment: the top half of the symbol
    text, box = decode_mod._retry_region(img.convert("L"), half)
    assert text == URI
    assert box[0] <= x + 2 and box[2] >= x + m.size * k - 2
