"""Every verdict end to end: events → Kafka → real worker → ocop.records/stamps/alerts → sink → SQL → the scan page.

Also the copied-stamp scenario: scans from two provinces through the web → ocop.events.scans → scans agent →
suspicious_copy alert → sink → the next scan of that stamp says "suspicious".
"""

from __future__ import annotations

import threading
import uuid

import pytest
from fastapi.testclient import TestClient

from consumers.sink import Sink
from consumers.store import Store
from ocop_trace.config import Settings
from ocop_trace.server import create_app
from producers.client import EventProducer, canonical
from qr.digital_link import DigitalLink
from qr.serials import StampSigner
from schemas import topics
from schemas.events import new_event
from tests.kafka_io import wait_for
from tests.samples import GTIN, SAMPLE_EVENTS, SUBJECT
from tests.workers import Worker

pytestmark = pytest.mark.kafka


def _ev(i: int, t: str, p: dict, at: str) -> dict:
    return canonical(new_event(t, p, subject_id=SUBJECT, occurred_at=at, recorded_at=at,
                               event_id=f"00000000-0000-4000-9000-{i:012d}"))


def _chain() -> list[dict]:
    kg = lambda v: {"value": float(v), "unit": "kg"}  # noqa: E731
    ev = [SAMPLE_EVENTS[t] for t in ("subject", "area", "product", "rating", "facility")]
    for n, (lot, prod, exp) in enumerate([("V-OK", "2026-11-01", "2027-11-01"), ("V-REC", "2026-11-01", "2027-11-01"),
                                          ("V-EXP", "2025-01-10", "2026-01-10")]):
        base = 10 * n
        ev.append(_ev(base + 1, "harvest", {"lot": f"{lot}-H", "area_code": "VN-TN-TC-001", "crop": "chè",
                                            "quantity": kg(100), "crate_tags": []}, f"{prod}T06:00:00+07:00"))
        ev.append(_ev(base + 2, "transform", {"process": "drying", "inputs": [{"lot": f"{lot}-H", "quantity": kg(100)}],
                                              "outputs": [{"lot": lot, "quantity": kg(25)}], "duration_hours": 12.0},
                      f"{prod}T08:00:00+07:00"))
        ev.append(_ev(base + 3, "package", {"lot": lot, "gtin": GTIN, "units": 100, "quantity": kg(25),
                                            "production_date": prod, "expiry_date": exp, "stamps_requested": 20},
                      f"{prod}T10:00:00+07:00"))
    # the recall hits the harvest lot; the packed lot is its descendant
    ev.append(_ev(99, "recall", {"scope": "lot", "target": "V-REC-H", "reason": "Vượt ngưỡng dư lượng thuốc BVTV",
                                 "authority": "Chi cục QLCL Thái Nguyên"}, "2026-11-10T09:00:00+07:00"))
    return ev


@pytest.fixture(scope="module")
def system(kafka_broker, tmp_path_factory):
    d = tmp_path_factory.mktemp("verdicts")
    prefix = f"t{uuid.uuid4().hex[:8]}."
    settings = Settings(bootstrap=kafka_broker.bootstrap, topic_prefix=prefix, data_dir=d,
                        database_url=f"sqlite:///{d / 'read.sqlite3'}", resolver_base="http://testserver",
                        scan_rate_per_minute=1000)
    topics.create_topics(kafka_broker.bootstrap, prefix)
    worker = Worker(kafka_broker.bootstrap, prefix, d / "worker", d / "worker.log").start()
    store = Store(settings.sqlalchemy_url)
    store.migrate()
    sink = Sink.from_settings(settings, store=store)
    stop = threading.Event()
    sink_thread = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    sink_thread.start()
    worker.wait_ready()
    with EventProducer(settings) as p:
        p.send_many(_chain())
    wait_for(lambda: all((store.lot(l) or {}).get("stamps") for l in ("V-OK", "V-REC", "V-EXP"))
             and (store.lot("V-REC") or {}).get("status") == "recalled", 90, "records and stamps in SQL")
    with TestClient(create_app(settings)) as client:
        yield settings, store, client
    stop.set()
    sink_thread.join(30)
    worker.stop()
    store.close()


def _url(settings: Settings, lot: str, index: int = 0, serial: str | None = None) -> str:
    serial = serial or StampSigner.from_settings(settings).serial(GTIN, lot, index)
    return DigitalLink(GTIN, lot, serial).build("http://testserver").removeprefix("http://testserver")


def _verdict(client: TestClient, path: str, **params) -> dict:
    r = client.get(path, params=params, headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()


def test_genuine(system):
    settings, _, client = system
    body = _verdict(client, _url(settings, "V-OK", 3))
    assert body["verdict"]["code"] == "genuine"
    page = client.get(_url(settings, "V-OK", 3)).text
    assert "Chính hãng" in page and "Chè Tân Cương Hảo Đạt" in page and "VN-TN-TC-001" in page


def test_recalled_through_an_ancestor(system):
    settings, _, client = system
    body = _verdict(client, _url(settings, "V-REC", 1))
    assert body["verdict"]["code"] == "recalled"
    assert "Vượt ngưỡng dư lượng thuốc BVTV" in client.get(_url(settings, "V-REC", 1)).text


def test_expired(system):
    settings, _, client = system
    assert _verdict(client, _url(settings, "V-EXP", 0))["verdict"]["code"] == "expired"


def test_unknown_index_never_issued(system):
    settings, _, client = system
    # a correctly signed serial beyond the 20 issued stamps
    assert _verdict(client, _url(settings, "V-OK", 500))["verdict"]["code"] == "unknown"


def test_forged_tag(system):
    settings, _, client = system
    genuine = StampSigner.from_settings(settings).serial(GTIN, "V-OK", 4)
    forged = genuine[:-1] + ("A" if genuine[-1] != "A" else "B")
    assert _verdict(client, _url(settings, "V-OK", serial=forged))["verdict"]["code"] == "forged"


def test_copied_stamp_turns_suspicious(system):
    settings, store, client = system
    path = _url(settings, "V-OK", 7)
    assert _verdict(client, path, region="19")["verdict"]["code"] == "genuine"   # Thái Nguyên
    _verdict(client, path, region="79")                                          # TP Hồ Chí Minh, minutes later
    serial = path.rsplit("/21/", 1)[1]
    wait_for(lambda: store.serial_flagged(serial), 60, "scans agent flagged the copied serial")
    body = wait_for(lambda: (lambda b: b if b["verdict"]["code"] == "suspicious" else None)(
        _verdict(client, path, region="19")), 10, "the next scan shows suspicious")
    assert body["verdict"]["code"] == "suspicious"
    # another stamp of the same lot stays genuine
    assert _verdict(client, _url(settings, "V-OK", 8))["verdict"]["code"] == "genuine"
