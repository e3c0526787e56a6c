"""The label font: DejaVu from the Debian package ``fonts-dejavu-core``, found on disk, never guessed.

Vietnamese needs a font with the precomposed letters (ư ơ ạ ả ấ ầ ẩ ẫ ậ đ ...): DejaVu Sans has them all. The
project's setup script apt-installs ``fonts-dejavu-core``; :func:`find_font` looks in the places Debian and a few
other distributions put it and raises :class:`FontNotFoundError` (saying what to install) if it is not there.
There is deliberately no fallback to PIL's built-in bitmap font: it has no Vietnamese and would print tofu.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

__all__ = [
    "FONT_DIRS",
    "FontNotFoundError",
    "SANS",
    "SANS_BOLD",
    "SANS_MONO",
    "find_font",
    "pil_font",
    "reportlab_font",
]

SANS = "DejaVuSans.ttf"
SANS_BOLD = "DejaVuSans-Bold.ttf"
SANS_MONO = "DejaVuSansMono.ttf"

FONT_DIRS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/dejavu"),  # Debian, Ubuntu: fonts-dejavu-core
    Path("/usr/share/fonts/dejavu"),  # Fedora (dejavu-sans-fonts), Alpine (font-dejavu)
    Path("/usr/share/fonts/TTF"),  # Arch (ttf-dejavu)
    Path("/usr/local/share/fonts/dejavu"),
    Path("/usr/local/share/fonts"),
    Path("/opt/homebrew/share/fonts"),  # macOS with Homebrew
)


class FontNotFoundError(FileNotFoundError):
    """The label font is not installed."""


@lru_cache(maxsize=None)
def _find(name: str, dirs: tuple[Path, ...]) -> Path:
    for d in dirs:
        p = d / name
        if p.is_file():
            return p
    where = ", ".join(str(d) for d in dirs)
    raise FontNotFoundError(
        f"font {name} not found (looked in {where}); install it with `apt-get install fonts-dejavu-core` "
        "(Debian/Ubuntu) or pass the folder that holds it"
    )


def find_font(name: str = SANS, dirs: Iterable[Path | str] | None = None) -> Path:
    """Path of font file ``name`` in ``dirs`` (default :data:`FONT_DIRS`), or FontNotFoundError."""
    return _find(name, FONT_DIRS if dirs is None else tuple(Path(d) for d in dirs))


@lru_cache(maxsize=256)
def _pil_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size=size, layout_engine=ImageFont.Layout.BASIC)


def pil_font(size_px: int, name: str = SANS, dirs: Iterable[Path | str] | None = None) -> ImageFont.FreeTypeFont:
    """A cached PIL FreeType font of ``size_px`` pixels (em size). Text should be NFC-normalised before drawing."""
    if size_px < 1:
        raise ValueError(f"font size must be at least 1 px, got {size_px}")
    return _pil_font(str(find_font(name, dirs)), int(size_px))


_REGISTERED: dict[str, str] = {}


def reportlab_font(name: str = SANS, dirs: Iterable[Path | str] | None = None) -> str:
    """Register TTF ``name`` with reportlab (once) and return the reportlab font name to draw with."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    path = str(find_font(name, dirs))
    rl_name = _REGISTERED.get(path)
    if rl_name is None:
        rl_name = Path(name).stem
        if rl_name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(rl_name, path))
        _REGISTERED[path] = rl_name
    return rl_name
