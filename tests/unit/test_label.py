"""Label rendering (qr.label), the QR matrix it draws (qr.matrix) and the font it uses (qr.fonts)."""

from __future__ import annotations

import io
import random
import string
from datetime import date
from pathlib import Path

import pytest
import qrcode
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

from qr.decode import decode_image
from qr.digital_link import DigitalLink
from qr.fonts import SANS_BOLD, FontNotFoundError, find_font, pil_font
from qr.label import (
    STAR_COLOUR,
    Label,
    LabelRenderer,
    LabelSpec,
    LabelTooSmallError,
    iter_labels,
    layout_label,
    qr_image,
    render_label,
    save_png,
)
from qr.matrix import EC_LEVELS, qr_matrix
from qr.serials import StampSigner

NAME = "Chè Tân Cương Hảo Đạt"
GTIN = "08934588012112"
LOT = "TC-2024-001"
BASE = "https://truyxuat.ocop.vn"
SIGNER = StampSigner({"dev1": b"unit-test-key-0123456789abcdef"}, "dev1", 8)
SPEC = LabelSpec()


def labels(n: int = 5, **kw) -> list[Label]:  # noqa: ANN003
    args = {"name": NAME, "expiry": date(2025, 12, 31), "stars": 4} | kw
    return list(iter_labels(SIGNER, BASE, GTIN, LOT, 1, n, **args))


# --- the QR matrix ---------------------------------------------------------------------------------------------------
def reference_modules(data: str, ec: str) -> list[list[bool]]:
    q = qrcode.QRCode(error_correction=EC_LEVELS[ec], border=0)
    q.add_data(data)
    q.make(fit=True)
    return q.modules


@pytest.mark.parametrize("ec", ["L", "M", "Q", "H"])
@pytest.mark.parametrize(
    "data",
    [
        "https://truyxuat.ocop.vn/01/08934588012112/10/TC-2024-001/21/1M6DR7M703?17=251231",
        "0123456789" * 30,  # numeric mode, version >= 7 (version information blocks)
        "HTTPS://R.VN/01/" + "ABC123 $%*+-./:" * 12,  # alphanumeric mode, count field grows at version 10
        "x",
    ],
)
def test_matrix_is_exactly_what_qrcode_makes(data: str, ec: str) -> None:
    m = qr_matrix(data, ec)
    assert m.rows() == reference_modules(data, ec)


@settings(max_examples=25, deadline=None)
@given(st.text(alphabet=string.printable + "ươĐạ", min_size=1, max_size=200), st.sampled_from("LMQH"))
def test_matrix_matches_qrcode_on_random_text(data: str, ec: str) -> None:
    assert qr_matrix(data, ec).rows() == reference_modules(data, ec)


def test_matrix_helpers() -> None:
    m = qr_matrix("https://r.vn/01/08934588012112/10/L1/21/9A00000000", "M")
    rows = m.rows()
    covered = [[False] * m.size for _ in range(m.size)]
    for c, r, w, h in m.rects():
        for rr in range(r, r + h):
            for cc in range(c, c + w):
                assert not covered[rr][cc]
                covered[rr][cc] = True
    assert covered == rows
    assert all(m.dark(r, c) == rows[r][c] for r in range(m.size) for c in range(m.size))
    with pytest.raises(ValueError, match="error correction"):
        qr_matrix("x", "X")
    forced = qr_matrix("x", "M", mask=3)
    assert forced.mask == 3 and decode_image(qr_image(forced, 4)) == ["x"]


# --- layout and rendering --------------------------------------------------------------------------------------------
def test_spec() -> None:
    assert (SPEC.width_px, SPEC.height_px) == (472, 354)
    assert (LabelSpec(50, 30, 600).width_px, LabelSpec(50, 30, 600).height_px) == (1181, 709)
    for bad in ({"width_mm": 5}, {"dpi": 50}, {"ec": "X"}, {"ec": "L"}, {"quiet_zone": 2}):
        with pytest.raises(ValueError):
            LabelSpec(**bad)


def test_label_decodes_to_its_uri_with_whole_dot_modules_and_quiet_zone() -> None:
    lb = labels(1)[0]
    img = render_label(lb, SPEC)
    assert img.size == (472, 354) and img.mode == "RGB"
    assert decode_image(img) == [lb.uri]
    m = qr_matrix(lb.uri, SPEC.ec)
    layout = layout_label(SPEC, lb.name, lb.lot, lb.expiry, lb.stars)
    x, y, k = layout.qr_placement(m.size)
    assert k == 5  # 0.42 mm modules
    # every module is exactly k x k dots of pure black or white
    want = qr_image(m, k, quiet_zone=0).convert("RGB")
    assert ImageChops.difference(img.crop((x, y, x + m.size * k, y + m.size * k)), want).getbbox() is None
    # 4-module quiet zone all white
    q = 4 * k
    ring = img.crop((x - q, y - q, x + m.size * k + q, y + m.size * k + q)).convert("L")
    ring.paste(255, (q, q, q + m.size * k, q + m.size * k))
    assert ring.getextrema() == (255, 255)
    assert x - q >= 0 and y + m.size * k + q <= img.height


def test_labels_of_a_lot_differ_only_in_qr_and_code() -> None:
    a, b = labels(2)
    r = LabelRenderer(SPEC, NAME, LOT, date(2025, 12, 31), 4)
    ia, ib = r.render(a.uri, a.code), r.render(b.uri, b.code)
    diff = ImageChops.difference(ia, ib).getbbox()
    assert diff is not None
    layout = r.layout
    bx, by, side = layout.qr_box
    code_top = layout.code_bottom - layout.code_line_h - layout.code_size
    # the difference lies inside the QR box and the code area, nothing above them changed
    assert diff[1] >= min(by, code_top)
    static = r.static_image
    assert ImageChops.difference(static.crop((0, 0, 472, by)), ia.crop((0, 0, 472, by))).getbbox() is None


def test_stars_only_when_given() -> None:
    lb = labels(1)[0]
    with_stars = render_label(lb, SPEC)
    without = render_label(Label(lb.name, lb.lot, lb.expiry, None, lb.uri, lb.code), SPEC)

    def star_pixels(img: Image.Image) -> int:
        return dict((colour, n) for n, colour in img.getcolors(1 << 16)).get(STAR_COLOUR, 0)

    assert star_pixels(with_stars) > 50
    assert star_pixels(without) == 0
    texts = [r.text for r in layout_label(SPEC, NAME, LOT, None, 5).static_runs]
    assert "★★★★★" in texts and "OCOP" in texts
    assert not any("★" in r.text for r in layout_label(SPEC, NAME, LOT, None, None).static_runs)
    with pytest.raises(ValueError, match="stars"):
        layout_label(SPEC, NAME, LOT, None, 6)


def test_texts_on_the_label() -> None:
    texts = [r.text for r in layout_label(SPEC, NAME, LOT, date(2025, 12, 31), 4).static_runs]
    assert texts == [NAME, "OCOP", "★★★★", f"Lô: {LOT}", "HSD: 31/12/2025"]
    assert [r.text for r in layout_label(SPEC, NAME, LOT, None, None).static_runs] == [NAME, f"Lô: {LOT}"]


# --- Vietnamese text -------------------------------------------------------------------------------------------------
def test_vietnamese_glyphs_are_real_not_tofu() -> None:
    font = ImageFont.truetype(str(find_font(SANS_BOLD)), 48)

    def mask(ch: str) -> tuple:
        m = font.getmask(ch)
        return m.size, bytes(m)

    notdef = mask("\U0010fffd")
    assert mask("한") == notdef  # the check does detect a missing glyph
    for ch in set(NAME.replace(" ", "")) | set("ươĐđạảấầẩẫậếềểễệộờởỡợừửữựỳỷỹ"):
        assert mask(ch) != notdef, ch
    assert mask("ư") != mask("u") and mask("ơ") != mask("o") and mask("ạ") != mask("a")


def test_name_area_is_the_font_rendering_of_the_name() -> None:
    lb = labels(1)[0]
    img = render_label(lb, SPEC)
    run = layout_label(SPEC, lb.name, lb.lot, lb.expiry, lb.stars).static_runs[0]
    assert run.text == NAME and run.font == SANS_BOLD
    ref = Image.new("RGB", img.size, "white")
    ImageDraw.Draw(ref).text(
        (run.x, run.y),
        NAME,
        font=ImageFont.truetype(str(find_font(SANS_BOLD)), run.size, layout_engine=ImageFont.Layout.BASIC),
        fill="black",
        anchor="ls",
    )
    band = (0, 0, img.width, run.y + run.size // 2)
    assert ImageChops.difference(img.crop(band), ref.crop(band)).getbbox() is None
    ink = ref.crop(band).convert("L").point(lambda v: 255 if v < 128 else 0).getbbox()
    assert ink is not None and ink[2] - ink[0] > 300  # a real line of text, not a few boxes


def test_nfd_names_render_like_nfc() -> None:
    import unicodedata

    nfd = unicodedata.normalize("NFD", NAME)
    assert nfd != NAME
    a = LabelRenderer(SPEC, NAME, LOT).static_image
    b = LabelRenderer(SPEC, nfd, LOT).static_image
    assert ImageChops.difference(a, b).getbbox() is None


def test_missing_font_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FontNotFoundError, match="fonts-dejavu-core"):
        find_font("DejaVuSans.ttf", dirs=[tmp_path])
    assert find_font().name == "DejaVuSans.ttf"
    assert pil_font(20) is pil_font(20)  # cached
    with pytest.raises(ValueError):
        pil_font(0)


# --- hard cases -------------------------------------------------------------------------------------------------------
def test_long_name_wraps_then_ellipsizes_and_long_lot_wraps() -> None:
    name = "Tỏi đen Trường An cô đơn lên men 40 ngày – hộp quà tặng cao cấp loại đặc biệt dành cho biếu tặng"
    layout = layout_label(SPEC, name, "ABCDEFGHIJ0123456789", date(2026, 1, 5), 3)
    lines = [r for r in layout.static_runs if r.font == SANS_BOLD and r.text not in ("OCOP",)]
    assert len(lines) == 2 and lines[1].text.endswith("…")
    for r in layout.static_runs:
        assert r.x + pil_font(r.size, r.font).getlength(r.text) <= SPEC.width_px
    code = "12345678901D7KQ2M9XA"
    img = LabelRenderer(SPEC, name, "ABCDEFGHIJ0123456789", date(2026, 1, 5), 3).render(labels(1)[0].uri, code)
    assert img.size == (472, 354)
    assert "".join(r.text for r in layout.code_runs(code)) == code


def test_too_small() -> None:
    with pytest.raises(LabelTooSmallError):
        layout_label(LabelSpec(20, 15), NAME, LOT, date(2025, 12, 31), 4)
    small = LabelRenderer(LabelSpec(30, 20), NAME, LOT)
    with pytest.raises(LabelTooSmallError, match="minimum module size"):
        small.render(labels(1)[0].uri, "1A00000000")


def test_iter_labels_serials_verify(tmp_path: Path) -> None:
    out = labels(20)
    assert [lb.code for lb in out] == list(SIGNER.serials(GTIN, LOT, 1, 20))
    for lb in out:
        dl = DigitalLink.parse(lb.uri, base=BASE)
        assert (dl.gtin14, dl.lot, dl.serial, dl.expiry) == (GTIN, LOT, lb.code, date(2025, 12, 31))
        assert SIGNER.verify(GTIN, LOT, dl.serial).ok
    odd = list(iter_labels(SIGNER, "https://r.vn/x/", GTIN, "A/B C"[:3], 7, 1, name=NAME))
    assert odd[0].uri.startswith("https://r.vn/x/01/08934588012112/10/A%2FB/21/7")
    assert DigitalLink.parse(odd[0].uri).lot == "A/B"
    p = save_png(render_label(out[0]), tmp_path / "l.png", SPEC)
    with Image.open(p) as im:
        assert im.info["dpi"] == pytest.approx((300, 300), abs=0.01)


def degrade(img: Image.Image, *, seed: int) -> bytes:
    """Print and re-scan, roughly: 150 dpi, blur, a 3 degree twist, heavy JPEG."""
    rnd = random.Random(seed)
    d = img.convert("L").resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)
    d = d.filter(ImageFilter.GaussianBlur(0.9))
    d = d.rotate(rnd.choice((-3, 3)), resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    buf = io.BytesIO()
    d.save(buf, "JPEG", quality=40)
    return buf.getvalue()


@pytest.mark.parametrize("ec", ["M", "Q"])
def test_labels_decode_after_print_like_degradation(ec: str) -> None:
    r = LabelRenderer(LabelSpec(ec=ec), NAME, LOT, date(2025, 12, 31), 4)
    for i, lb in enumerate(labels(12)):
        assert decode_image(degrade(r.render(lb.uri, lb.code), seed=i)) == [lb.uri]
