"""Print-ready A4 sheets of stamp labels (reportlab), written page by page.

Each page holds a grid of labels (28 labels of 40 x 30 mm on A4) with crop marks at every label corner, the
title and lot in the header and ``Trang i/n`` in the footer. The text of a label is vector text in DejaVu Sans
(embedded, subset), drawn once per product lot as a PDF form and reused; per label only the QR and the code
change. The QR is drawn from the same matrix as the PNG labels (:func:`qr.matrix.qr_matrix`, i.e. what the
``qrcode`` library makes) in one of two ways:

* ``"mask"`` (default): a 1-bit stencil mask of one sample per module, scaled to a whole number of printer dots
  per module (about 0.5 kB of page content per label, no interpolation, sharp at any resolution);
* ``"vector"``: one filled path of rectangles (row runs stacked where identical), about 3 kB per label.

Both decode the same. Measured on the project's 2-core box (CPU time per label, 560 labels, one process): mask
1.2 ms, vector 1.8 ms, and a raster label image per label (the PNG renderer + ``drawImage``) 16 ms with a PDF
60 times larger; so masks are the default. Size matters beyond the file: reportlab keeps each finished page's
content in memory until the file is saved (a 10,000-label run peaks at about 60 MB resident with masks, 110 MB
with vectors). Nothing else accumulates: labels are pulled from the iterator one page at a time and QR matrices
are computed a few pages ahead in worker processes (``workers``, default: the CPU count).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Literal

from PIL import Image
from reportlab import rl_config
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen.canvas import Canvas

from qr.fonts import SANS, SANS_BOLD, reportlab_font
from qr.label import Label, LabelLayout, LabelSpec, TextRun, layout_label
from qr.matrix import qr_matrix

__all__ = ["SheetGrid", "page_count", "sheet_grid", "write_sheet"]

PT_PER_MM = 72 / 25.4
QrMode = Literal["mask", "vector"]


@dataclass(frozen=True, slots=True)
class SheetGrid:
    """Label positions on a page: ``cells[i]`` is the bottom-left corner (points) of the i-th label."""

    cols: int
    rows: int
    label_w: float
    label_h: float
    cells: tuple[tuple[float, float], ...]
    page_w: float
    page_h: float

    @property
    def per_page(self) -> int:
        return self.cols * self.rows


def sheet_grid(
    spec: LabelSpec,
    page_size: tuple[float, float] = A4,
    *,
    margin_mm: float = 10.0,
    gutter_mm: float = 4.0,
    header_mm: float = 7.0,
    footer_mm: float = 7.0,
) -> SheetGrid:
    """The grid of labels of ``spec`` on a page: as many as fit between the margins, centred, gutters between.

    Corners are snapped to the printer's dot grid (``spec.dpi``) so QR modules stay whole dots.
    """
    pw, ph = page_size
    dot = 72.0 / spec.dpi
    lw, lh = spec.width_px * dot, spec.height_px * dot
    g = gutter_mm * PT_PER_MM
    avail_w = pw - 2 * margin_mm * PT_PER_MM
    avail_h = ph - 2 * margin_mm * PT_PER_MM - (header_mm + footer_mm) * PT_PER_MM
    cols = int((avail_w + g) // (lw + g))
    rows = int((avail_h + g) // (lh + g))
    if cols < 1 or rows < 1:
        raise ValueError(f"a {spec.width_mm}x{spec.height_mm} mm label does not fit on the page")
    grid_w, grid_h = cols * lw + (cols - 1) * g, rows * lh + (rows - 1) * g
    x0 = (pw - grid_w) / 2
    top = ph - margin_mm * PT_PER_MM - header_mm * PT_PER_MM - (avail_h - grid_h) / 2

    def snap(v: float) -> float:
        return round(v / dot) * dot

    cells = tuple(
        (snap(x0 + c * (lw + g)), snap(top - (r + 1) * lh - r * g)) for r in range(rows) for c in range(cols)
    )
    return SheetGrid(cols, rows, lw, lh, cells, pw, ph)


# --- QR drawing, done in worker processes ---------------------------------------------------------------------------
def _qr_mask_op(uri: str, ec: str) -> tuple[int, str]:
    m = qr_matrix(uri, ec)
    n = m.size
    packed = Image.frombytes("L", (n, n), m.gray()).convert("1", dither=Image.Dither.NONE).tobytes()
    # stencil mask: sample 0 (a dark module) is painted with the fill colour
    return n, f"BI /W {n} /H {n} /IM true /BPC 1 /F /AHx ID {packed.hex()}> EI"


def _qr_vector_op(uri: str, ec: str) -> tuple[int, str]:
    m = qr_matrix(uri, ec)
    return m.size, " ".join(f"{c} {r} {w} {h} re" for c, r, w, h in m.rects()) + " f"


def _qr_ops(uris: list[str], ec: str, mode: QrMode) -> list[tuple[int, str]]:
    f = _qr_mask_op if mode == "mask" else _qr_vector_op
    return [f(u, ec) for u in uris]


class _InlineExecutor(Executor):
    def submit(self, fn, /, *args, **kwargs):  # noqa: ANN001, ANN201
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(exc)
        return fut


def _executor(workers: int) -> Executor:
    if workers <= 1:
        return _InlineExecutor()
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx)


# --- drawing --------------------------------------------------------------------------------------------------------
def _fmt(v: float) -> str:
    return f"{v:.4f}".rstrip("0").rstrip(".")


class _SheetWriter:
    def __init__(self, canvas: Canvas, spec: LabelSpec, grid: SheetGrid, mode: QrMode) -> None:
        self.c = canvas
        self.spec = spec
        self.grid = grid
        self.mode = mode
        self.dot = 72.0 / spec.dpi
        self.forms: dict[tuple, tuple[str, LabelLayout]] = {}
        self.font_cache: dict[str, str] = {}
        self.marks_form = False

    def font(self, name: str) -> str:
        f = self.font_cache.get(name)
        if f is None:
            f = self.font_cache[name] = reportlab_font(name)
        return f

    def draw_runs(self, runs: Iterable[TextRun]) -> None:
        c, dot, h = self.c, self.dot, self.spec.height_px
        colour = None
        for r in runs:
            if r.colour != colour:
                colour = r.colour
                c.setFillColorRGB(*(v / 255 for v in colour))
            c.setFont(self.font(r.font), r.size * dot)
            c.drawString(r.x * dot, (h - r.y) * dot, r.text)

    def static_form(self, label: Label) -> tuple[str, LabelLayout]:
        key = label.static_key
        hit = self.forms.get(key)
        if hit is None:
            layout = layout_label(self.spec, *key)
            name = f"label{len(self.forms)}"
            c = self.c
            c.beginForm(name, 0, 0, self.grid.label_w, self.grid.label_h)
            self.draw_runs(layout.static_runs)
            c.endForm()
            hit = self.forms[key] = (name, layout)
        return hit

    def draw_label(self, x: float, y: float, label: Label, qr: tuple[int, str]) -> None:
        c, dot = self.c, self.dot
        form, layout = self.static_form(label)
        n, op = qr
        qx, qy, k = layout.qr_placement(n)
        c.saveState()
        c.translate(x, y)
        c.doForm(form)
        h = self.spec.height_px
        if self.mode == "mask":
            s = _fmt(n * k * dot)
            c.addLiteral(f"q 0 g {s} 0 0 {s} {_fmt(qx * dot)} {_fmt((h - qy - n * k) * dot)} cm {op} Q")
        else:
            s = _fmt(k * dot)
            c.addLiteral(f"q 0 g {s} 0 0 -{s} {_fmt(qx * dot)} {_fmt((h - qy) * dot)} cm {op} Q")
        self.draw_runs(layout.code_runs(label.code))
        c.restoreState()

    def crop_marks(self, count: int) -> None:
        """Marks at the corners of the first ``count`` cells (a full page's marks are one reused form)."""
        c = self.c
        if count == self.grid.per_page:
            if not self.marks_form:
                c.beginForm("cropmarks", 0, 0, self.grid.page_w, self.grid.page_h)
                self._draw_marks(count)
                c.endForm()
                self.marks_form = True
            c.doForm("cropmarks")
        else:
            self._draw_marks(count)

    def _draw_marks(self, count: int) -> None:
        c, g = self.c, self.grid
        gap, length = 0.5 * PT_PER_MM, 1.5 * PT_PER_MM
        c.saveState()
        c.setLineWidth(0.25)
        c.setStrokeColorRGB(0, 0, 0)
        lines = []
        for x, y in g.cells[:count]:
            for cx, dx in ((x, -1), (x + g.label_w, 1)):
                for cy, dy in ((y, -1), (y + g.label_h, 1)):
                    lines.append((cx + dx * gap, cy, cx + dx * (gap + length), cy))  # along the horizontal edge
                    lines.append((cx, cy + dy * gap, cx, cy + dy * (gap + length)))  # along the vertical edge
        c.lines(lines)
        c.restoreState()

    def header_footer(self, page_no: int, first: int, last: int, title: str, lot: str, margin: float) -> None:
        c, g = self.c, self.grid
        sans, bold = self.font(SANS), self.font(SANS_BOLD)
        c.setFillColorRGB(0, 0, 0)
        top = g.page_h - margin - 9
        c.setFont(bold, 9)
        c.drawString(margin, top, title)
        c.setFont(sans, 9)
        c.drawRightString(g.page_w - margin, top, f"Lô: {lot}")
        bottom = margin
        c.setFont(sans, 8)
        c.drawString(margin, bottom, f"Lô: {lot} · tem {first}–{last}")
        label = f"Trang {page_no}/"
        right = g.page_w - margin - 24
        c.drawString(right - c.stringWidth(label, sans, 8), bottom, label)
        c.saveState()
        c.translate(right, bottom)
        c.doForm("npages")
        c.restoreState()


def _pages(labels: Iterator[Label], per_page: int) -> Iterator[list[Label]]:
    while True:
        page = list(islice(labels, per_page))
        if not page:
            return
        yield page


def write_sheet(
    path: str | os.PathLike,
    labels_iter: Iterable[Label],
    spec: LabelSpec | None = None,
    *,
    lot: str,
    title: str,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
    qr_mode: QrMode = "mask",
    page_size: tuple[float, float] = A4,
    margin_mm: float = 10.0,
    gutter_mm: float = 4.0,
) -> int:
    """Write the labels to a PDF at ``path``; return the number of labels written.

    ``progress(n)`` is called after each page with the number of labels written so far. ``workers`` processes
    compute QR matrices (default: CPU count; 1 = in this process). The output is byte-for-byte reproducible
    (reportlab's invariant mode: no timestamps or random IDs).
    """
    spec = spec or LabelSpec()
    if qr_mode not in ("mask", "vector"):
        raise ValueError(f"qr_mode must be 'mask' or 'vector', got {qr_mode!r}")
    grid = sheet_grid(spec, page_size, margin_mm=margin_mm, gutter_mm=gutter_mm)
    workers = workers if workers is not None else (os.cpu_count() or 1)
    canvas = Canvas(str(path), pagesize=page_size, invariant=1, pageCompression=1)
    canvas.setTitle(title)
    canvas.setSubject(f"Lô {lot}")
    canvas.setCreator("ocop-trace")
    w = _SheetWriter(canvas, spec, grid, qr_mode)
    margin = margin_mm * PT_PER_MM
    done = 0
    page_no = 0

    def flush(page: list[Label], fut: Future) -> None:
        nonlocal done, page_no
        page_no += 1
        qrs = fut.result()
        w.header_footer(page_no, done + 1, done + len(page), title, lot, margin)
        w.crop_marks(len(page))
        for (x, y), label, qr in zip(grid.cells, page, qrs, strict=False):
            w.draw_label(x, y, label, qr)
        canvas.showPage()
        done += len(page)
        if progress is not None:
            progress(done)

    ahead = max(2, 2 * workers)
    with _executor(workers) as ex:
        pending: deque[tuple[list[Label], Future]] = deque()
        for page in _pages(iter(labels_iter), grid.per_page):
            pending.append((page, ex.submit(_qr_ops, [lb.uri for lb in page], spec.ec, qr_mode)))
            if len(pending) > ahead:
                flush(*pending.popleft())
        while pending:
            flush(*pending.popleft())

    if page_no == 0:  # an empty run still gives a valid one-page PDF saying so
        page_no = 1
        w.header_footer(1, 0, 0, title, lot, margin)
        canvas.showPage()
    canvas.beginForm("npages", 0, -4, 24, 12)
    canvas.setFont(w.font(SANS), 8)
    canvas.drawString(0, 0, str(page_no))
    canvas.endForm()
    with _binary_streams():
        canvas.save()
    return done


@contextmanager
def _binary_streams() -> Iterator[None]:
    """Skip reportlab's ASCII85 wrapping of compressed streams while saving: without the optional rl_accel C
    extension it is pure Python and costs seconds on a big sheet; binary Flate streams are plain PDF 1.2+."""
    old = rl_config.useA85
    rl_config.useA85 = 0
    try:
        yield
    finally:
        rl_config.useA85 = old


def page_count(n_labels: int, spec: LabelSpec | None = None, page_size: tuple[float, float] = A4) -> int:
    """Pages needed for ``n_labels`` labels."""
    per = sheet_grid(spec or LabelSpec(), page_size).per_page
    return max(1, -(-n_labels // per))

