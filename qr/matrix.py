"""QR code matrices, fast: the ``qrcode`` library's encoding, our own module placement and mask choice.

``qrcode.QRCode.make()`` spends most of its ~9 ms per code placing the data eight times and scoring each mask in
pure Python loops; its Reed-Solomon step is also slow. A sheet of 10,000 stamps cannot afford that. This module
keeps everything that defines *what* the symbol says from ``qrcode`` (segmentation into numeric / alphanumeric /
byte modes, version choice, bit stream, block structure, function patterns, format and version information, mask
functions, the mask penalty rules as ``qrcode.util.lost_point`` applies them) and redoes the hot parts with
whole-matrix big-integer arithmetic:

* Reed-Solomon remainders with a per-generator lookup table (one table lookup per data codeword);
* data placement via a precomputed position list per version;
* all eight masks scored at once per mask with shifts and ``int.bit_count`` on the matrix as one integer
  (bit ``r * n + c`` is module (row r, column c)).

The result is bit-for-bit the matrix ``qrcode`` itself makes (a unit test compares them over random inputs),
at about a twentieth of the cost. Quiet zones are not part of the matrix; renderers add them.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass
from functools import lru_cache

import qrcode
from qrcode import base as _qrbase
from qrcode import constants as _qrconst
from qrcode import util as _qrutil

__all__ = ["EC_LEVELS", "QrMatrix", "qr_matrix"]

EC_LEVELS = {
    "L": _qrconst.ERROR_CORRECT_L,
    "M": _qrconst.ERROR_CORRECT_M,
    "Q": _qrconst.ERROR_CORRECT_Q,
    "H": _qrconst.ERROR_CORRECT_H,
}
_RUNS = re.compile(rb"1+")


@dataclass(frozen=True, slots=True)
class QrMatrix:
    """A QR symbol without quiet zone: ``size`` modules a side, ``bits`` bit ``r*size+c`` set if (r, c) is dark."""

    size: int
    bits: int
    version: int
    ec: str
    mask: int

    def dark(self, row: int, col: int) -> bool:
        return bool(self.bits >> (row * self.size + col) & 1)

    def ascii01(self) -> bytes:
        """``size*size`` bytes of ``b'0'``/``b'1'`` (dark), row-major."""
        n2 = self.size * self.size
        return format(self.bits, "b").zfill(n2).encode("ascii")[::-1]

    def rows(self) -> list[list[bool]]:
        """The matrix as rows of booleans (True = dark), like ``qrcode.QRCode.modules``."""
        s, n = self.ascii01(), self.size
        return [[ch == 49 for ch in s[r * n : (r + 1) * n]] for r in range(n)]

    def gray(self, dark: int = 0, light: int = 255) -> bytes:
        """One byte per module (``dark`` / ``light``), row-major: ready for ``Image.frombytes("L", (n, n), ...)``."""
        return self.ascii01().translate(bytes.maketrans(b"01", bytes((light, dark))))

    def rects(self) -> list[tuple[int, int, int, int]]:
        """Dark area as rectangles ``(col, row, width, height)`` in modules: row runs, stacked where identical."""
        s, n = self.ascii01(), self.size
        done: list[tuple[int, int, int, int]] = []
        open_: dict[tuple[int, int], int] = {}  # (col, width) -> first row
        for r in range(n):
            runs = {(m.start(), m.end() - m.start()) for m in _RUNS.finditer(s, r * n, (r + 1) * n)}
            runs = {(c - r * n, w) for c, w in runs}
            for key in list(open_):
                if key not in runs:
                    r0 = open_.pop(key)
                    done.append((key[0], r0, key[1], r - r0))
            for key in runs:
                open_.setdefault(key, r)
        done.extend((c, r0, w, n - r0) for (c, w), r0 in open_.items())
        done.sort(key=lambda t: (t[1], t[0]))
        return done


@dataclass(frozen=True, slots=True)
class _Template:
    n: int
    func: int  # dark function-pattern modules (finders, separators, timing, alignment)
    order: tuple[int, ...]  # data module positions in placement order
    masks: tuple[int, ...]  # per mask pattern: data positions that the mask flips
    fmt: tuple[int, ...]  # per mask pattern: dark format-information modules (+ the dark module)
    version_bits: int  # dark version-information modules (version >= 7)
    all_: int
    h_ok: int  # (r, c) with c <= n-2
    v_ok: int  # (r, c) with r <= n-2
    h11: int  # (r, c) with c <= n-11
    v11: int  # (r, c) with r <= n-11


def _bits_of(positions: list[int]) -> int:
    v = 0
    for p in positions:
        v |= 1 << p
    return v


@lru_cache(maxsize=None)
def _template(version: int, ec_const: int) -> _Template:
    n = version * 4 + 17
    q = qrcode.QRCode(version=version, error_correction=ec_const)
    q.modules_count = n
    q.modules = [[None] * n for _ in range(n)]
    q.setup_position_probe_pattern(0, 0)
    q.setup_position_probe_pattern(n - 7, 0)
    q.setup_position_probe_pattern(0, n - 7)
    q.setup_position_adjust_pattern()
    q.setup_timing_pattern()
    func = _bits_of([r * n + c for r in range(n) for c in range(n) if q.modules[r][c]])
    before = {(r, c) for r in range(n) for c in range(n) if q.modules[r][c] is None}
    fmt = []
    for m in range(8):
        q.setup_type_info(False, m)
        fmt.append(_bits_of([r * n + c for (r, c) in before if q.modules[r][c] is True]))
    fmt_positions = {(r, c) for (r, c) in before if q.modules[r][c] is not None}
    version_bits = 0
    if version >= 7:
        q.setup_type_number(False)
        version_bits = _bits_of([r * n + c for (r, c) in before - fmt_positions if q.modules[r][c] is True])
    # Data positions in qrcode's map_data order: two-column strips from the right, zig-zagging up and down.
    order: list[int] = []
    row, inc = n - 1, -1
    for col in range(n - 1, 0, -2):
        if col <= 6:
            col -= 1
        while True:
            for c in (col, col - 1):
                if q.modules[row][c] is None:
                    order.append(row * n + c)
            row += inc
            if row < 0 or row >= n:
                row -= inc
                inc = -inc
                break
    masks = []
    for m in range(8):
        f = _qrutil.mask_func(m)
        masks.append(_bits_of([p for p in order if f(p // n, p % n)]))
    all_ = (1 << (n * n)) - 1

    def where(pred) -> int:  # noqa: ANN001
        return _bits_of([r * n + c for r in range(n) for c in range(n) if pred(r, c)])

    return _Template(
        n=n,
        func=func,
        order=tuple(order),
        masks=tuple(masks),
        fmt=tuple(fmt),
        version_bits=version_bits,
        all_=all_,
        h_ok=where(lambda r, c: c <= n - 2),
        v_ok=where(lambda r, c: r <= n - 2),
        h11=where(lambda r, c: c <= n - 11),
        v11=where(lambda r, c: r <= n - 11),
    )


@lru_cache(maxsize=None)
def _rs_table(ec_count: int) -> tuple[int, ...]:
    """For each leading coefficient f: f * generator (without its leading 1) as an ``ec_count``-byte integer."""
    gen = _qrutil.LUT.rsPoly_LUT.get(ec_count)
    if gen is None:  # pragma: no cover - qrcode ships every size QR uses
        poly = _qrbase.Polynomial([1], 0)
        for i in range(ec_count):
            poly = poly * _qrbase.Polynomial([1, _qrbase.gexp(i)], 0)
        gen = [poly[i] for i in range(len(poly))]
    gen = list(gen)[1:]
    table = [0]
    for f in range(1, 256):
        lf = _qrbase.glog(f)
        v = 0
        for g in gen:
            v = (v << 8) | (_qrbase.gexp(lf + _qrbase.glog(g)) if g else 0)
        table.append(v)
    return tuple(table)


def _rs_remainder(data: bytes, ec_count: int) -> bytes:
    table = _rs_table(ec_count)
    shift = 8 * (ec_count - 1)
    keep = (1 << shift) - 1
    rem = 0
    for byte in data:
        rem = ((rem & keep) << 8) ^ table[(rem >> shift) ^ byte]
    return rem.to_bytes(ec_count, "big")


def _bitstream(version: int, data_list: list) -> tuple[int, int]:  # noqa: ANN001
    """The segments' bits as (value, bit count): what ``QRData.write`` puts in a ``BitBuffer``, without per-bit
    Python calls."""
    v = nb = 0
    for seg in data_list:
        mode, data = seg.mode, seg.data
        count_bits = _qrutil.length_in_bits(mode, version)
        v = (((v << 4) | mode) << count_bits) | len(data)
        nb += 4 + count_bits
        if mode == _qrutil.MODE_8BIT_BYTE:
            v = (v << (8 * len(data))) | int.from_bytes(data, "big")
            nb += 8 * len(data)
        elif mode == _qrutil.MODE_NUMBER:
            for i in range(0, len(data), 3):
                chars = data[i : i + 3]
                bl = _qrutil.NUMBER_LENGTH[len(chars)]
                v = (v << bl) | int(chars)
                nb += bl
        elif mode == _qrutil.MODE_ALPHA_NUM:
            find = _qrutil.ALPHA_NUM.find
            for i in range(0, len(data), 2):
                if i + 1 < len(data):
                    v = (v << 11) | (find(data[i : i + 1]) * 45 + find(data[i + 1 : i + 2]))
                    nb += 11
                else:
                    v = (v << 6) | find(data[i : i + 1])
                    nb += 6
        else:  # pragma: no cover - qrcode does not produce other modes
            raise ValueError(f"unsupported QR segment mode {mode}")
    return v, nb


def _best_fit(ec_const: int, data_list: list) -> int:  # noqa: ANN001
    """qrcode's ``QRCode.best_fit``: the smallest version whose capacity holds the bits (count fields grow at
    versions 10 and 27, hence the second round)."""
    start = 1
    while True:
        _, needed = _bitstream(start, data_list)
        version = bisect_left(_qrutil.BIT_LIMIT_TABLE[ec_const], needed, start)
        if version == 41:
            raise qrcode.exceptions.DataOverflowError(f"{needed} bits do not fit in any QR version")
        if _qrutil.mode_sizes_for_version(version) is _qrutil.mode_sizes_for_version(start):
            return version
        start = version


def _codewords(version: int, ec_const: int, data_list: list) -> bytes:  # noqa: ANN001
    """qrcode.util.create_data, with a fast bit writer and Reed-Solomon step."""
    blocks = _qrbase.rs_blocks(version, ec_const)
    bit_limit = sum(b.data_count * 8 for b in blocks)
    v, nb = _bitstream(version, data_list)
    if nb > bit_limit:
        raise qrcode.exceptions.DataOverflowError(f"data needs {nb} bits, version has {bit_limit}")
    term = min(bit_limit - nb, 4)  # terminator, then zeros to a byte boundary
    v <<= term
    nb += term
    if nb % 8:
        v <<= 8 - nb % 8
        nb += 8 - nb % 8
    raw = v.to_bytes(nb // 8, "big")
    fill = bit_limit // 8 - len(raw)
    raw += bytes((_qrutil.PAD0, _qrutil.PAD1)) * (fill // 2) + (bytes((_qrutil.PAD0,)) if fill % 2 else b"")
    dc: list[bytes] = []
    ec: list[bytes] = []
    off = 0
    for b in blocks:
        chunk = raw[off : off + b.data_count]
        off += b.data_count
        dc.append(chunk)
        ec.append(_rs_remainder(chunk, b.total_count - b.data_count))
    return _interleave(dc) + _interleave(ec)


def _interleave(blocks: list[bytes]) -> bytes:
    """Codeword i of every block, for i = 0, 1, ... (blocks differ in length by at most one codeword)."""
    k, short = len(blocks), min(map(len, blocks))
    out = bytearray(k * short)
    for j, b in enumerate(blocks):
        out[j::k] = b[:short]
    out += bytes(b[short] for b in blocks if len(b) > short)
    return bytes(out)


# N3 patterns, dark = True: 1011101 0000 and 0000 1011101 (offset, pattern 1, pattern 2)
_FINDER_LIKE = tuple((k, x == "1", y == "1") for k, (x, y) in enumerate(zip("10111010000", "00001011101")))


def _penalty(m: int, t: _Template) -> int:
    """qrcode.util.lost_point of the matrix ``m`` (rules N1-N4), on the whole matrix as an integer."""
    n, all_ = t.n, t.all_
    inv = ~m & all_
    eh = ~(m ^ (m >> 1)) & t.h_ok  # (r, c) same colour as (r, c+1)
    ev = ~(m ^ (m >> n)) & t.v_ok  # (r, c) same colour as (r+1, c)
    # N1: runs of 5+ in a line score (length - 2) = windows of 5 + 2 per run
    wh = eh & (eh >> 1) & (eh >> 2) & (eh >> 3)
    wv = ev & (ev >> n) & (ev >> 2 * n) & (ev >> 3 * n)
    p = wh.bit_count() + 2 * (wh & ~(wh << 1)).bit_count()
    p += wv.bit_count() + 2 * (wv & ~(wv << n)).bit_count()
    # N2: 2x2 blocks of one colour, 3 each
    p += 3 * (eh & ev & (eh >> n)).bit_count()
    # N3: 1011101 finder-like runs with 4 light modules before or after, 40 each
    for step, ok in ((1, t.h11), (n, t.v11)):
        a = b = ok
        for k, x, y in _FINDER_LIKE:
            if a:
                a &= (m if x else inv) >> (k * step)
            if b:
                b &= (m if y else inv) >> (k * step)
        p += 40 * (a.bit_count() + b.bit_count())
    # N4: dark proportion, exactly as qrcode computes it
    percent = float(m.bit_count()) / (n * n)
    p += int(abs(percent * 100 - 50) / 5) * 10
    return p


def qr_matrix(data: str, ec: str = "M", *, mask: int | None = None) -> QrMatrix:
    """The QR symbol ``qrcode`` would make for ``data`` (smallest version, optimised segments) at level ``ec``.

    ``mask`` forces a mask pattern (0-7); by default the one with the lowest penalty, as ``qrcode`` picks it.
    """
    try:
        ec_const = EC_LEVELS[ec]
    except KeyError:
        raise ValueError(f"error correction level must be one of {sorted(EC_LEVELS)}, got {ec!r}") from None
    q = qrcode.QRCode(error_correction=ec_const, border=0)
    q.add_data(data)  # qrcode's own segmentation into numeric / alphanumeric / byte runs
    version = _best_fit(ec_const, q.data_list)
    t = _template(version, ec_const)
    words = _codewords(version, ec_const, q.data_list)
    nbits = min(len(words) * 8, len(t.order))
    placed = bytearray(b"0" * (t.n * t.n))
    bitstr = format(int.from_bytes(words, "big"), "b").zfill(len(words) * 8).encode("ascii")
    deque(map(placed.__setitem__, t.order[:nbits], bitstr[:nbits]), maxlen=0)
    raw = int(placed[::-1], 2)
    if mask is None:
        scores = [_penalty(t.func | (raw ^ t.masks[k]), t) for k in range(8)]
        mask = scores.index(min(scores))
    elif mask not in range(8):
        raise ValueError(f"mask must be 0-7, got {mask!r}")
    bits = t.func | (raw ^ t.masks[mask]) | t.fmt[mask] | t.version_bits
    return QrMatrix(size=t.n, bits=bits, version=version, ec=ec, mask=mask)
