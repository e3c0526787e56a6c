"""One stamp label: product name (Vietnamese), OCOP stars, lot, expiry, the QR code and a short readable code.

::

    +--------------------------------------+
    | Chè Tân Cương Hảo Đạt                |   name: DejaVu Sans Bold, wrapped to 2 lines, shrunk to fit
    | (second line if needed)              |
    | +------------+  OCOP ★★★★            |   stars only when the caller passes them (rating valid
    | |  QR code   |  Lô: TC-2024-001      |   on the packaging date)
    | | (quiet     |  HSD: 31/12/2025      |
    | |  zone 4)   |                       |
    | +------------+  123D7KQ2M9XA         |   the serial, DejaVu Sans Mono
    +--------------------------------------+

Sizes are computed once per (spec, product, lot) in printer dots (:class:`LabelLayout`); the raster renderer
(:class:`LabelRenderer`) and the PDF sheet (:mod:`qr.sheet`) both draw from that layout, so a PNG label and a sheet
label look the same. The QR is drawn with an integer number of dots per module and its 4-module quiet zone left
white. Labels of one lot differ only in QR and code: the renderer draws the rest once and pastes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from qr.digital_link import DigitalLink
from qr.fonts import SANS, SANS_BOLD, SANS_MONO, pil_font
from qr.matrix import QrMatrix, qr_matrix

__all__ = [
    "Label",
    "LabelLayout",
    "LabelRenderer",
    "LabelSpec",
    "LabelTooSmallError",
    "TextRun",
    "iter_labels",
    "layout_label",
    "qr_image",
    "render_label",
    "save_png",
]

MM_PER_INCH = 25.4
PRINT_EC_LEVELS = ("M", "Q", "H")  # QR error correction fit for printed stamps (15 %, 25 %, 30 % recovery)
STAR = "\u2605"
STAR_COLOUR = (176, 124, 0)  # dark gold: still prints dark on a monochrome printer
INK = (0, 0, 0)
PAPER = (255, 255, 255)


class LabelTooSmallError(ValueError):
    """The label size cannot hold the content at a readable size."""


@dataclass(frozen=True, slots=True)
class LabelSpec:
    """Physical label: size (mm), printer resolution, QR error correction, quiet zone (modules), margins.

    ``min_module_mm`` refuses layouts whose QR modules would be too small to scan reliably after printing
    (at 40 x 30 mm and 300 dpi a URI of ~85 characters gets 5 dots = 0.42 mm per module).
    """

    width_mm: float = 40.0
    height_mm: float = 30.0
    dpi: int = 300
    ec: str = "M"
    quiet_zone: int = 4
    margin_mm: float = 1.2
    min_module_mm: float = 0.35

    def __post_init__(self) -> None:
        if not (15 <= self.width_mm <= 200 and 15 <= self.height_mm <= 200):
            raise ValueError(f"label size {self.width_mm}x{self.height_mm} mm is outside 15..200 mm")
        if not 100 <= self.dpi <= 1200:
            raise ValueError(f"dpi must be 100..1200, got {self.dpi}")
        if self.ec not in PRINT_EC_LEVELS:
            raise ValueError(f"ec must be one of {PRINT_EC_LEVELS} (L is too weak for print), got {self.ec!r}")
        if self.quiet_zone < 4:
            raise ValueError("the QR quiet zone must be at least 4 modules")

    def dots(self, mm: float) -> int:
        return round(mm / MM_PER_INCH * self.dpi)

    @property
    def width_px(self) -> int:
        return self.dots(self.width_mm)

    @property
    def height_px(self) -> int:
        return self.dots(self.height_mm)

    @property
    def dots_per_pt(self) -> float:
        return self.dpi / 72.0


@dataclass(frozen=True, slots=True)
class Label:
    """Everything printed on one label. ``stars`` is None when no valid OCOP rating is to be shown."""

    name: str
    lot: str
    expiry: date | None
    stars: int | None
    uri: str
    code: str

    @property
    def static_key(self) -> tuple[str, str, date | None, int | None]:
        """What labels of one print run share (everything but QR and code)."""
        return (self.name, self.lot, self.expiry, self.stars)


@dataclass(frozen=True, slots=True)
class TextRun:
    """Text at (x, baseline y) in dots from the label's top-left corner; ``size`` is the em size in dots."""

    x: int
    y: int
    text: str
    font: str
    size: int
    colour: tuple[int, int, int] = INK


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def _width(text: str, font_name: str, size: int) -> float:
    return pil_font(size, font_name).getlength(text)


def _wrap_words(text: str, font_name: str, size: int, width: int) -> list[str]:
    """Greedy word wrap; a word wider than the line is broken between characters."""
    lines: list[str] = []
    cur = ""
    for word in text.split():
        trial = f"{cur} {word}" if cur else word
        if _width(trial, font_name, size) <= width:
            cur = trial
            continue
        if cur:
            lines.append(cur)
        cur = ""
        for ch in word:
            if _width(cur + ch, font_name, size) <= width or not cur:
                cur += ch
            else:
                lines.append(cur)
                cur = ch
    if cur:
        lines.append(cur)
    return lines


def _ellipsize(text: str, font_name: str, size: int, width: int) -> str:
    if _width(text, font_name, size) <= width:
        return text
    while text and _width(text + "…", font_name, size) > width:
        text = text[:-1]
    return text.rstrip() + "…"


@dataclass(frozen=True)
class LabelLayout:
    """Where everything goes on a label, in dots at ``spec.dpi`` from the top-left corner."""

    spec: LabelSpec
    width: int
    height: int
    static_runs: tuple[TextRun, ...]
    qr_box: tuple[int, int, int]  # x, y (top-left), side: the square the QR (with quiet zone) is centred in
    code_x: int
    code_bottom: int  # baseline of the last code line
    code_size: int
    code_chars: int  # characters per code line
    code_line_h: int
    _qr_fit: dict[int, tuple[int, int, int]] = field(default_factory=dict, compare=False, repr=False)

    def qr_placement(self, modules: int) -> tuple[int, int, int]:
        """(x, y, dots per module) of the top-left *dark-area* corner for a symbol of ``modules`` modules."""
        fit = self._qr_fit.get(modules)
        if fit is None:
            bx, by, side = self.qr_box
            total = modules + 2 * self.spec.quiet_zone
            k = side // total
            if k < 1 or k * MM_PER_INCH / self.spec.dpi < self.spec.min_module_mm:
                raise LabelTooSmallError(
                    f"a {modules}-module QR fits in {side} dots only at {k} dots per module, under the "
                    f"{self.spec.min_module_mm} mm minimum module size; use a larger label or a higher dpi"
                )
            off = (side - total * k) // 2
            q = self.spec.quiet_zone * k
            fit = self._qr_fit[modules] = (bx + off + q, by + off + q, k)
        return fit

    def code_runs(self, code: str) -> list[TextRun]:
        """The readable code, on one line or broken over two."""
        code = _nfc(code)
        n = self.code_chars
        parts = [code[i : i + n] for i in range(0, len(code), n)] or [""]
        if len(parts) > 2:
            raise LabelTooSmallError(f"code {code!r} does not fit on two lines of {n} characters")
        y = self.code_bottom - (len(parts) - 1) * self.code_line_h
        return [
            TextRun(self.code_x, y + i * self.code_line_h, p, SANS_MONO, self.code_size) for i, p in enumerate(parts)
        ]


def _pt_steps(hi: float, lo: float, step: float = 0.25) -> Iterator[float]:
    pt = hi
    while pt >= lo - 1e-9:
        yield pt
        pt -= step


def _right_column(
    x0: int, y0: int, y1: int, col_w: int, size: int, lot: str, expiry_text: str | None, stars: int | None,
    lot_may_wrap: bool,
) -> tuple[list[TextRun], int, int, int, int] | None:
    """Stars, lot, expiry and room for two code lines at text size ``size``, or None if they do not fit."""
    asc, desc = pil_font(size, SANS).getmetrics()
    line_h = round(size * 1.25)
    col: list[TextRun] = []
    y = y0 + asc
    if stars:
        bold_w = _width("OCOP ", SANS_BOLD, size)
        ssize = round(size * 1.25)
        if bold_w + _width(STAR * stars, SANS, ssize) > col_w:
            return None
        col.append(TextRun(x0, y, "OCOP", SANS_BOLD, size))
        col.append(TextRun(x0 + round(bold_w), y, STAR * stars, SANS, ssize, STAR_COLOUR))
        y += round(line_h * 1.15)
    lot_line = f"Lô: {lot}"
    if _width(lot_line, SANS, size) <= col_w:
        col.append(TextRun(x0, y, lot_line, SANS, size))
        y += line_h
    elif lot_may_wrap:
        col.append(TextRun(x0, y, "Lô:", SANS, size))
        y += line_h
        for part in _wrap_words(lot, SANS, size, col_w):
            col.append(TextRun(x0, y, part, SANS, size))
            y += line_h
    else:
        return None
    if expiry_text:
        if _width(expiry_text, SANS, size) > col_w:
            return None
        col.append(TextRun(x0, y, expiry_text, SANS, size))
        y += line_h
    # the code: monospaced, room for two lines at the bottom of the column
    mono = pil_font(size, SANS_MONO)
    chars = int(col_w // mono.getlength("0"))
    cline_h = round(size * 1.15)
    m_asc, m_desc = mono.getmetrics()
    code_bottom = y1 - m_desc
    code_top = code_bottom - cline_h - m_asc
    if chars < 10 or y - line_h + desc > code_top:
        return None
    return col, size, chars, cline_h, code_bottom


@lru_cache(maxsize=64)
def layout_label(
    spec: LabelSpec, name: str, lot: str, expiry: date | None, stars: int | None
) -> LabelLayout:
    """Compute the :class:`LabelLayout` (cached)."""
    if stars is not None and not (isinstance(stars, int) and 1 <= stars <= 5):
        raise ValueError(f"stars must be 1..5 or None, got {stars!r}")
    name, lot = _nfc(name.strip()), _nfc(lot)
    if not name:
        raise ValueError("product name is empty")
    W, H, m = spec.width_px, spec.height_px, spec.dots(spec.margin_mm)
    ppt = spec.dots_per_pt
    inner_w = W - 2 * m

    # 1. name band: the largest bold size (7.5 .. 5 pt) at which the name fits on two lines
    for pt in _pt_steps(7.5, 5.0):
        nsize = round(pt * ppt)
        lines = _wrap_words(name, SANS_BOLD, nsize, inner_w)
        if len(lines) <= 2:
            break
    if len(lines) > 2:
        lines = [lines[0], _ellipsize(" ".join(lines[1:]), SANS_BOLD, nsize, inner_w)]
    asc, desc = pil_font(nsize, SANS_BOLD).getmetrics()
    nline_h = round(nsize * 1.17)
    runs = [TextRun(m, m + asc + i * nline_h, line, SANS_BOLD, nsize) for i, line in enumerate(lines)]
    band = m + asc + (len(lines) - 1) * nline_h + desc + spec.dots(0.5)

    # 2. QR square, bottom-left: its quiet zone is the margin there
    side = min(H - band, int(W * 0.52))
    qr_box = (0, H - side, side)
    x0, x1, y0, y1 = side, W - m, band, H - m
    col_w = x1 - x0
    if col_w < spec.dots(8):
        raise LabelTooSmallError(f"{spec.width_mm}x{spec.height_mm} mm leaves no room beside the QR")

    # 3. right column: the largest text size (6.5 .. 4.5 pt) at which all lines fit, the lot on one line if
    #    possible at any of those sizes, else broken over several
    expiry_text = f"HSD: {expiry:%d/%m/%Y}" if expiry is not None else None
    found = None
    for lot_may_wrap in (False, True):
        for pt in _pt_steps(6.5, 4.5):
            found = _right_column(x0, y0, y1, col_w, round(pt * ppt), lot, expiry_text, stars, lot_may_wrap)
            if found is not None:
                break
        if found is not None:
            break
    if found is None:
        raise LabelTooSmallError(f"{spec.width_mm}x{spec.height_mm} mm is too small for this label's text")
    col, csize, chars, cline_h, code_bottom = found

    return LabelLayout(
        spec=spec,
        width=W,
        height=H,
        static_runs=tuple(runs + col),
        qr_box=qr_box,
        code_x=x0,
        code_bottom=code_bottom,
        code_size=csize,
        code_chars=chars,
        code_line_h=cline_h,
    )


def _draw_runs(draw: ImageDraw.ImageDraw, runs: list[TextRun] | tuple[TextRun, ...]) -> None:
    for r in runs:
        draw.text((r.x, r.y), r.text, font=pil_font(r.size, r.font), fill=r.colour, anchor="ls")


def qr_image(matrix: QrMatrix, module_px: int, quiet_zone: int = 4) -> Image.Image:
    """The symbol as a grayscale image, ``module_px`` pixels per module, with a white quiet zone."""
    n = matrix.size
    img = Image.frombytes("L", (n, n), matrix.gray())
    if module_px != 1:
        img = img.resize((n * module_px, n * module_px), Image.Resampling.NEAREST)
    if quiet_zone:
        q = quiet_zone * module_px
        framed = Image.new("L", (img.width + 2 * q, img.height + 2 * q), 255)
        framed.paste(img, (q, q))
        img = framed
    return img


class LabelRenderer:
    """Renders the labels of one product lot; the static part is drawn once."""

    def __init__(
        self,
        spec: LabelSpec,
        name: str,
        lot: str,
        expiry: date | None = None,
        stars: int | None = None,
    ) -> None:
        self.spec = spec
        self.layout = layout_label(spec, name, lot, expiry, stars)
        base = Image.new("RGB", (self.layout.width, self.layout.height), PAPER)
        _draw_runs(ImageDraw.Draw(base), self.layout.static_runs)
        self._base = base

    @property
    def static_image(self) -> Image.Image:
        """A copy of the part shared by every label of the lot."""
        return self._base.copy()

    def render(self, uri: str, code: str, matrix: QrMatrix | None = None) -> Image.Image:
        """One label as an RGB image of ``spec.width_px`` x ``spec.height_px``."""
        mx = matrix if matrix is not None else qr_matrix(uri, self.spec.ec)
        x, y, k = self.layout.qr_placement(mx.size)
        img = self._base.copy()
        n = mx.size
        sym = Image.frombytes("L", (n, n), mx.gray())
        if k != 1:
            sym = sym.resize((n * k, n * k), Image.Resampling.NEAREST)
        img.paste(sym, (x, y))
        _draw_runs(ImageDraw.Draw(img), self.layout.code_runs(code))
        return img


@lru_cache(maxsize=8)
def _renderer(spec: LabelSpec, key: tuple[str, str, date | None, int | None]) -> LabelRenderer:
    return LabelRenderer(spec, *key)


def render_label(label: Label, spec: LabelSpec | None = None) -> Image.Image:
    """Render one :class:`Label` (renderers for recent lots are cached)."""
    return _renderer(spec or LabelSpec(), label.static_key).render(label.uri, label.code)


def save_png(img: Image.Image, path: str | Path, spec: LabelSpec) -> Path:
    """Save with the DPI recorded, so printing at 100 % gives the stated millimetres."""
    p = Path(path)
    img.save(p, dpi=(spec.dpi, spec.dpi))
    return p


def iter_labels(
    signer: Any,
    base: str,
    gtin14: str,
    lot: str,
    first: int,
    count: int,
    *,
    name: str,
    expiry: date | None = None,
    stars: int | None = None,
    key_id: str | None = None,
) -> Iterator[Label]:
    """The labels of stamps ``first .. first+count-1`` of a lot: signed serials, their URIs and texts.

    ``signer`` is a :class:`qr.serials.StampSigner`; ``base`` the resolver base URL; ``key_id`` the key the range
    was (or is to be) signed with (default: the signer's active key).
    """
    head = DigitalLink(gtin14, lot, None, expiry)
    prefix = head.build(base).split("?", 1)[0] + "/21/"
    query = f"?{head.query}" if head.query else ""
    for serial in signer.serials(head.gtin14, lot, first, count, key_id=key_id):
        # serials are Crockford base32 and digits: nothing to percent-encode
        yield Label(name=name, lot=lot, expiry=expiry, stars=stars, uri=f"{prefix}{serial}{query}", code=serial)
