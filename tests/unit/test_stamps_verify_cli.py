"""`ocop-trace stamps verify --file` (bulk verification of one lot's serials) and its process split."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ocop_trace.config import Settings, get_settings
from ocop_trace.stamps_cli import stamps_app, verify_bulk
from qr.serials import StampSigner

GTIN = "08934588012112"
LOT = "TC-2024-001"


@pytest.fixture
def signer() -> StampSigner:
    get_settings.cache_clear()
    return StampSigner.from_settings(get_settings())


def _run(*args: str):
    return CliRunner().invoke(stamps_app, ["verify", *args])


def test_a_file_of_genuine_serials(tmp_path, signer) -> None:
    f = tmp_path / "serials.txt"
    f.write_text("\n".join(signer.serials(GTIN, LOT, 0, 1000)) + "\n")
    r = _run("--file", str(f), "--gtin", GTIN[1:], "--lot", LOT)  # a GTIN-13 names the same product
    assert r.exit_code == 0, r.output
    assert "1,000 serials genuine" in r.output


def test_a_file_with_bad_serials_lists_them_by_line(tmp_path, signer) -> None:
    serials = list(signer.serials(GTIN, LOT, 5, 30))
    forged = serials[3][:-1] + ("0" if serials[3][-1] != "0" else "1")
    lines = serials[:3] + ["", forged] + serials[4:] + ["NOT-A-SERIAL"]
    f = tmp_path / "scans.txt"
    f.write_text("\r\n".join(lines))
    r = _run("--file", str(f), "--gtin", GTIN, "--lot", LOT, "--jobs", "1")
    assert r.exit_code == 1, r.output
    assert "2 / 31" in r.output and "malformed 1" in r.output and "bad_tag 1" in r.output
    assert f"line 5: '{forged}' bad_tag" in r.output  # line numbers count the blank line
    assert "line 32: 'NOT-A-SERIAL' malformed" in r.output


def test_usage_errors(tmp_path) -> None:
    f = tmp_path / "s.txt"
    f.write_text("1D00000000\n")
    assert _run("--file", str(f), "--lot", LOT).exit_code == 2  # no GTIN
    assert _run().exit_code == 2  # neither a URL nor a file
    assert _run("--file", str(tmp_path / "missing.txt"), "--gtin", GTIN, "--lot", LOT).exit_code == 2
    assert _run("--file", str(f), "--gtin", "08934588012113", "--lot", LOT).exit_code == 2  # bad check digit


def test_split_over_processes_gives_the_same_batch(signer) -> None:
    serials: list = list(signer.serials(GTIN, LOT, 95, 3000))
    serials[10] = "NOT-A-SERIAL"
    serials[2000] = serials[2000][:-1] + ("0" if serials[2000][-1] != "0" else "1")
    serials[2500] = None  # not a string: that part travels as a list
    serials[1700] = "12\n34"  # holds a newline: that part travels as a list too
    whole = signer.verify_many(GTIN, LOT, serials)
    for jobs in (1, 2, 3):
        split = verify_bulk(Settings(_env_file=None), GTIN, LOT, serials, jobs=jobs)
        assert list(split) == list(whole), jobs
    assert [i for i, _ in whole.failures()] == [10, 1700, 2000, 2500]
