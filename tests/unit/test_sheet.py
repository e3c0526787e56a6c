"""PDF stamp sheets (qr.sheet): every label decodes back to its URI, also after print-like degradation."""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from PIL import Image, ImageFilter

from qr.decode import decode_image
from qr.label import Label, LabelSpec, iter_labels
from qr.serials import StampSigner
from qr.sheet import page_count, sheet_grid, write_sheet

NAME = "Chè Tân Cương Hảo Đạt"
GTIN = "08934588012112"
LOT = "TC-2024-001"
TITLE = "Tem truy xuất nguồn gốc – Chè Tân Cương Hảo Đạt"
SIGNER = StampSigner({"dev1": b"unit-test-key-0123456789abcdef"}, "dev1", 8)
SPEC = LabelSpec()
N = 60  # 3 pages of 28


def labels(n: int = N, first: int = 1) -> Iterator[Label]:
    return iter_labels(
        SIGNER, "https://truyxuat.ocop.vn", GTIN, LOT, first, n, name=NAME, expiry=date(2025, 12, 31), stars=4
    )


def poppler(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not found: install poppler-utils (apt-get install poppler-utils)")
    return path


def render_pages(pdf: Path, dpi: int, out: Path) -> list[Path]:
    """Rasterise like a printer would (grayscale; PGM because PNG encoding would dominate the test's time)."""
    subprocess.run([poppler("pdftoppm"), "-r", str(dpi), "-gray", str(pdf), str(out / "p")], check=True)
    return sorted(out.glob("p-*.pgm"))


@pytest.fixture(scope="module")
def sheet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Label], list[int]]:
    out = tmp_path_factory.mktemp("sheet")
    pdf = out / "stamps.pdf"
    seen: list[int] = []
    n = write_sheet(pdf, labels(), SPEC, lot=LOT, title=TITLE, progress=seen.append, workers=1)
    assert n == N
    return pdf, list(labels()), seen


@pytest.fixture(scope="module")
def pages(sheet, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:  # noqa: ANN001
    return render_pages(sheet[0], 300, tmp_path_factory.mktemp("pages"))


def test_grid() -> None:
    g = sheet_grid(SPEC)
    assert (g.cols, g.rows, g.per_page) == (4, 7, 28)
    dot = 72 / 300
    for x, y in g.cells:
        assert abs(x / dot - round(x / dot)) < 1e-6 and abs(y / dot - round(y / dot)) < 1e-6
        assert 28 <= x and x + g.label_w <= g.page_w - 28 and 28 <= y and y + g.label_h <= g.page_h - 28
    assert page_count(N) == 3 and page_count(0) == 1 and page_count(28) == 1


def test_text_header_footer_and_progress(sheet) -> None:  # noqa: ANN001
    pdf, _, seen = sheet
    assert seen == [28, 56, 60]
    text = subprocess.run([poppler("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    pages = text.split("\f")[:3]
    for i, page in enumerate(pages, 1):
        assert f"Trang {i}/3" in page
        assert TITLE in page
        assert f"Lô: {LOT}" in page
        assert NAME in page  # Vietnamese text is real text with a ToUnicode map, not outlines or tofu
        assert "HSD: 31/12/2025" in page and "OCOP" in page
    assert "tem 57–60" in pages[2]
    info = subprocess.run([poppler("pdffonts"), str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "DejaVuSans" in info and "yes" in info  # embedded


def test_every_label_decodes_from_the_printed_pages(sheet, pages) -> None:  # noqa: ANN001
    _, all_labels, _ = sheet
    assert len(pages) == 3
    found: list[str] = []
    for p in pages:
        with Image.open(p) as im:
            assert im.size == (2481, 3508)  # A4 at 300 dpi
            found += decode_image(im)
    assert sorted(found) == sorted(lb.uri for lb in all_labels)


def test_every_label_decodes_after_print_like_degradation(sheet, pages) -> None:  # noqa: ANN001
    """150 dpi, Gaussian blur, rotated 3 degrees, JPEG quality 40."""
    _, all_labels, _ = sheet
    found: list[str] = []
    for i, p in enumerate(pages):
        with Image.open(p) as im:
            d = im.convert("L").resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS)
        d = d.filter(ImageFilter.GaussianBlur(0.9))
        d = d.rotate(3 if i % 2 else -3, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
        buf = io.BytesIO()
        d.save(buf, "JPEG", quality=40)
        found += decode_image(buf.getvalue())
    assert sorted(found) == sorted(lb.uri for lb in all_labels)


def test_crop_marks_at_label_corners(pages) -> None:  # noqa: ANN001
    g = sheet_grid(SPEC)
    px = 300 / 72
    with Image.open(pages[0]) as im:
        page = im.convert("L")
    for x, y in (g.cells[0], g.cells[-1]):
        left, top = round(x * px), round((g.page_h - y - g.label_h) * px)
        # a horizontal mark left of the top-left corner, on the label's top edge line ...
        mark = page.crop((left - 20, top - 1, left - 8, top + 2))
        assert mark.getextrema()[0] < 128
        # ... and nothing inside the label's corner itself
        assert page.crop((left + 1, top + 1, left + 6, top + 6)).getextrema() == (255, 255)


def test_workers_give_the_same_bytes_and_streaming(tmp_path: Path) -> None:
    pulled = 0

    def counted() -> Iterator[Label]:
        nonlocal pulled
        for lb in labels(6 * 28):
            pulled += 1
            yield lb

    pulled_at_progress: list[tuple[int, int]] = []
    a, b = tmp_path / "a.pdf", tmp_path / "b.pdf"
    write_sheet(a, counted(), SPEC, lot=LOT, title=TITLE, workers=2,
                progress=lambda n: pulled_at_progress.append((n, pulled)))
    write_sheet(b, labels(6 * 28), SPEC, lot=LOT, title=TITLE, workers=1)
    assert a.read_bytes() == b.read_bytes()  # reproducible, whatever the parallelism
    # labels are pulled a bounded number of pages ahead of what has been written
    for written, pulled_then in pulled_at_progress:
        assert pulled_then - written <= 5 * 28
    assert pulled_at_progress[0][1] < 6 * 28


def test_vector_mode_decodes_too(tmp_path: Path) -> None:
    pdf = tmp_path / "v.pdf"
    write_sheet(pdf, labels(28), SPEC, lot=LOT, title=TITLE, workers=1, qr_mode="vector")
    (p,) = render_pages(pdf, 300, tmp_path)
    with Image.open(p) as im:
        assert sorted(decode_image(im)) == sorted(lb.uri for lb in labels(28))


def test_empty_and_mixed_products(tmp_path: Path) -> None:
    empty = tmp_path / "e.pdf"
    assert write_sheet(empty, iter(()), SPEC, lot=LOT, title=TITLE, workers=1) == 0
    assert empty.read_bytes().startswith(b"%PDF")
    mixed = list(labels(3)) + list(
        iter_labels(SIGNER, "https://truyxuat.ocop.vn", GTIN, "TA-0425", 1, 3, name="Tỏi đen Trường An", stars=None)
    )
    pdf = tmp_path / "m.pdf"
    assert write_sheet(pdf, mixed, SPEC, lot="nhiều lô", title=TITLE, workers=1) == 6
    (p,) = render_pages(pdf, 300, tmp_path)
    with Image.open(p) as im:
        assert sorted(decode_image(im)) == sorted(lb.uri for lb in mixed)
    with pytest.raises(ValueError, match="qr_mode"):
        write_sheet(tmp_path / "x.pdf", [], SPEC, lot=LOT, title=TITLE, qr_mode="png")  # type: ignore[arg-type]
