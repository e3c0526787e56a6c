"""Stamps: serials issued and verified per second, and labels per second into a PDF sheet.

    python -m bench.stamps [--quick] [--serials 1000000] [--labels 10000] [--naive-labels 300]

* serials: ``StampSigner.serials`` (issue) and ``StampSigner.verify_many`` (verify, one process; median of 3 runs)
  over one lot, beside the obvious implementation: one ``hmac.new(key, message, sha256)`` per serial (same message,
  same tag, same comparison). Goal: 1,000,000 serials verified in < 2 s, judged on one process. Also measured: the
  same list split over the CPUs (at least 2) by ``ocop_trace.stamps_cli.verify_bulk``, what
  ``ocop-trace stamps verify --file`` runs.
* sheet: ``qr.sheet.write_sheet`` of ``qr.label.iter_labels`` (what ``ocop-trace stamps sheet`` feeds it) into an
  A4 PDF, beside a naive loop making one PNG per label with ``qrcode.make`` + Pillow (label text drawn with the same
  DejaVu font) on ``--naive-labels`` labels. Goal: a 10,000-stamp sheet in < 15 s.

Pure (no broker, no database).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from bench.common import Run, goal, log, main_args, ratio, row, si, times
from ocop_trace.stamps_cli import cpu_count, verify_bulk

SIZES = {"serials": 1_000_000, "labels": 10_000, "naive_labels": 300}
QUICK = {"serials": 20_000, "labels": 200, "naive_labels": 10}
REPEAT = 3  # verify runs of each kind; the figure is their median (the machine is shared)

GTIN = "08936045200018"
LOT = "TC-2026-T01"
NAME = "Chè Tân Cương Hảo Đạt"


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the sheet's QR worker processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _signer():
    from ocop_trace.config import Settings
    from qr.serials import StampSigner

    s = Settings(_env_file=None)
    return StampSigner.from_settings(s), s


def naive_verify(secret: bytes, kid: str, gtin: str, lot: str, serials: list[str], tag_len: int) -> int:
    """The obvious verifier: one ``hmac.new`` per serial over the same message as qr/serials.py. Returns #ok."""
    from qr.serials import _TAG_TABLE

    prefix = b"\x1f".join((b"OCOP-STAMP-1", kid.encode(), gtin.encode(), lot.encode(), b""))
    block = prefix + b"\0" * (-len(prefix) % 64)  # the same padded prefix the signer MACs
    ok = 0
    n1 = tag_len + 1
    for s in serials:
        idx, tag = s[:-n1], s[-tag_len:]
        mac = hmac.new(secret, block + idx.encode(), hashlib.sha256).digest()
        if hmac.compare_digest(mac[:tag_len].translate(_TAG_TABLE), tag.encode()):
            ok += 1
    return ok


def naive_png_labels(labels, folder: Path) -> int:
    """One PNG per label: ``qrcode.make`` for the symbol, Pillow for the label (same size, font and texts)."""
    import qrcode
    from PIL import Image, ImageDraw, ImageFont

    from qr.fonts import SANS, SANS_BOLD, find_font
    from qr.label import LabelSpec

    spec = LabelSpec()
    w, h = spec.width_px, spec.height_px
    bold = ImageFont.truetype(str(find_font(SANS_BOLD)), 28)
    sans = ImageFont.truetype(str(find_font(SANS)), 24)
    n = 0
    for i, lb in enumerate(labels):
        qr = qrcode.make(lb.uri, error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=5, border=4)
        img = Image.new("RGB", (w, h), "white")
        qr_img = qr.get_image().convert("L")
        img.paste(qr_img.resize((h - 20, h - 20), Image.Resampling.NEAREST), (10, 10))
        d = ImageDraw.Draw(img)
        x = h
        d.text((x, 20), lb.name[:18], font=bold, fill="black")
        d.text((x, 60), f"Lô {lb.lot}", font=sans, fill="black")
        d.text((x, 95), f"HSD {lb.expiry:%d/%m/%Y}" if lb.expiry else "", font=sans, fill="black")
        d.text((x, h - 40), lb.code, font=sans, fill="black")
        img.save(folder / f"label-{i:06d}.png", dpi=(spec.dpi, spec.dpi))
        n += 1
    return n


def run(quick: bool = False, out: str | None = None, **override: int) -> dict:
    sizes = {**(QUICK if quick else SIZES), **{k: v for k, v in override.items() if v}}
    n_serials, n_labels, n_naive = sizes["serials"], sizes["labels"], sizes["naive_labels"]
    from qr.label import iter_labels
    from qr.sheet import page_count, write_sheet

    with Run("stamps", "Stamp serials (issue, verify) and PDF sheets", quick, out) as run_:
        signer, settings = _signer()
        signer.serial(GTIN, LOT, 0)  # warm the per-lot hash state cache, as a long-running service has it

        log(f"issuing {n_serials:,} serials")
        t = time.perf_counter()
        serials = list(signer.serials(GTIN, LOT, 0, n_serials))
        issue_s = time.perf_counter() - t

        jobs = max(2, cpu_count())
        log(f"verifying {n_serials:,} serials {REPEAT} times with verify_many (one process) and, alternately, "
            f"split over {jobs} processes (verify_bulk, as `ocop-trace stamps verify --file` runs it)")
        single, parallel = [], []
        for _ in range(REPEAT):
            load = os.getloadavg()[0]
            t, c = time.perf_counter(), time.process_time()
            batch = signer.verify_many(GTIN, LOT, serials)
            single.append({"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c, "load_1min": load})
            assert batch.all_ok and len(batch) == n_serials, "a genuine serial did not verify"
            del batch
            load = os.getloadavg()[0]
            t = time.perf_counter()
            batch = verify_bulk(settings, GTIN, LOT, serials, jobs=jobs)
            parallel.append({"wall_s": time.perf_counter() - t, "load_1min": load})
            assert batch.all_ok and len(batch) == n_serials, "a genuine serial did not verify (parallel)"
            del batch
        verify_s, verify_cpu = _median(single, "wall_s"), _median(single, "cpu_s")
        par_s = _median(parallel, "wall_s")

        n_base = min(n_serials, 200_000)
        kid = signer.active
        secret = settings.stamp_key_map()[kid]
        log(f"baseline: hmac.new per serial on {n_base:,} serials")
        t = time.perf_counter()
        ok = naive_verify(secret, kid, GTIN, LOT, serials[:n_base], signer.tag_len)
        base_s = time.perf_counter() - t
        if ok != n_base:
            run_.note(f"the naive verifier accepted {ok} of {n_base} serials (message layout differs); its rate "
                      "is still the cost of one hmac.new per serial")
        del serials

        issue_rate, verify_rate, base_rate = n_serials / issue_s, n_serials / verify_s, n_base / base_s
        verify_1m = 1_000_000 / verify_rate
        verify_1m_cpu = 1_000_000 * verify_cpu / n_serials
        par_rate = n_serials / par_s
        verify_1m_par = 1_000_000 / par_rate

        expiry = date(2027, 11, 20)
        with tempfile.TemporaryDirectory(prefix="ocop-bench-stamps-") as tmp:
            pdf = Path(tmp) / "sheet.pdf"
            labels = iter_labels(signer, settings.resolver_base, GTIN, LOT, 0, n_labels, name=NAME, expiry=expiry,
                                 stars=4)
            log(f"sheet: {n_labels:,} labels into {page_count(n_labels)} A4 pages")
            t, c = time.perf_counter(), _cpu()
            written = write_sheet(pdf, labels, lot=LOT, title=NAME)
            sheet_s, sheet_cpu = time.perf_counter() - t, _cpu() - c
            assert written == n_labels
            pdf_mib = pdf.stat().st_size / 2**20

            naive_dir = Path(tmp) / "png"
            naive_dir.mkdir()
            log(f"baseline: {n_naive} PNG labels with qrcode + Pillow")
            t = time.perf_counter()
            naive_png_labels(iter_labels(signer, settings.resolver_base, GTIN, LOT, 0, n_naive, name=NAME,
                                         expiry=expiry, stars=4), naive_dir)
            naive_s = time.perf_counter() - t
            png_mib = sum(p.stat().st_size for p in naive_dir.iterdir()) / 2**20

        sheet_rate, naive_rate = n_labels / sheet_s, n_naive / naive_s
        sheet_10k = 10_000 / sheet_rate
        if n_serials != 1_000_000:
            run_.note(f"verified {n_serials:,} serials; the 1,000,000 time is scaled from the measured rate")
        if n_labels != 10_000:
            run_.note(f"sheet of {n_labels:,} labels; the 10,000-label time is scaled from the measured rate")
        run_.note(f"naive PNG baseline measured on {n_naive} labels (rate extrapolates: it is per label); "
                  f"hmac baseline on {n_base:,} serials")
        def fmt(runs: list[dict], key: str) -> str:
            return ", ".join(f"{r[key]:.2f}" for r in runs)

        run_.note(f"verify: median of {REPEAT} runs each, one process ({fmt(single, 'wall_s')} s at 1-min load "
                  f"{fmt(single, 'load_1min')}) and split over {jobs} processes ({fmt(parallel, 'wall_s')} s at "
                  f"load {fmt(parallel, 'load_1min')}); the goal is judged on one process")

        g_verify = goal("1,000,000 serials verified", "< 2 s", verify_1m, verify_1m < 2, "s")
        g_sheet = goal("10,000-stamp PDF sheet", "< 15 s", sheet_10k, sheet_10k < 15, "s")
        r_verify, r_sheet = ratio(verify_rate, base_rate), ratio(sheet_rate, naive_rate)
        return run_.finish(
            sizes=sizes,
            figures={"serials_issued_per_s": issue_rate, "serials_verified_per_s": verify_rate,
                     "verify_1m_s": verify_1m, "verify_1m_cpu_s": verify_1m_cpu,
                     "serials_verified_parallel_per_s": par_rate, "verify_1m_parallel_s": verify_1m_par,
                     "verify_parallel_jobs": jobs, "sheet_labels_per_s": sheet_rate,
                     "sheet_10k_s": sheet_10k, "sheet_10k_cpu_s": sheet_cpu * 10_000 / n_labels,
                     "sheet_seconds": sheet_s, "sheet_pdf_mib": pdf_mib},
            baseline={"description": "serials: one hmac.new(key, msg, sha256) per serial; sheet: one PNG per label "
                                     "with qrcode.make + Pillow",
                      "figures": {"hmac_new_verified_per_s": base_rate, "naive_png_labels_per_s": naive_rate,
                                  "naive_png_mib_per_1000": png_mib / n_naive * 1000}},
            ratio={"verify_vs_hmac_new": r_verify, "issue_vs_hmac_new": ratio(issue_rate, base_rate),
                   "verify_parallel_vs_hmac_new": ratio(par_rate, base_rate), "sheet_vs_naive_png": r_sheet},
            goals=[g_verify, g_sheet],
            extra={"verify_runs": single, "verify_parallel_runs": parallel},
            rows=[
                row("serials issued/s", si(issue_rate, "/s"), f"hmac.new {si(base_rate, '/s')}",
                    times(ratio(issue_rate, base_rate))),
                row("serials verified/s (1 proc)", si(verify_rate, "/s"), f"hmac.new {si(base_rate, '/s')}", times(r_verify),
                    f"1M in < 2 s: {verify_1m:.2f} s (CPU {verify_1m_cpu:.2f} s)", g_verify["pass"]),
                row(f"serials verified/s ({jobs} proc)", si(par_rate, "/s"), f"hmac.new {si(base_rate, '/s')}",
                    times(ratio(par_rate, base_rate)), f"1M: {verify_1m_par:.2f} s"),
                row("sheet labels/s", si(sheet_rate, "/s"), f"PNG loop {si(naive_rate, '/s')}", times(r_sheet),
                    f"10k in < 15 s: {sheet_10k:.1f} s (CPU {sheet_cpu * 10_000 / n_labels:.1f} s)", g_sheet["pass"]),
            ],
        )


def main() -> None:
    a = main_args("stamps", __doc__, SIZES)
    run(a.quick, a.out, **{k: getattr(a, k) for k in SIZES})


if __name__ == "__main__":
    main()
