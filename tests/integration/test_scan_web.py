"""The scan service (consumers.web.app) over a real read side (SQLite and PostgreSQL: ``db_url``).

The read side is filled exactly as in production, through the sink's apply functions, from records that the
workers' own pure fold computes (:class:`streams.fold.Projection`, which also issues stamp ranges like the stamps
agent). Scan values go to the REAL broker in :func:`test_scan_event_reaches_the_broker`.

Reusable pieces (the lead's end-to-end tests and tests/e2e/test_scan_browser.py import them):

* :func:`world_events` — master data and supply events of one cooperative's tea: a genuine lot, a lot recalled
  through its raw-material lot, a lot recalled directly, an expired lot;
* :class:`World` / :func:`build_world` — those events folded and applied to a store, with a serial for every
  verdict (``world.serials["genuine"]``...) and its path (``world.path("recalled")``);
* fixtures ``scan_store``, ``world``, ``scan_app_factory`` and ``scan_client``.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis import strategies as st

from consumers import sink
from consumers.store import Store
from consumers.web.app import TokenBucket, client_hash, negotiate, parse_location, scan_router
from qr.digital_link import DigitalLink
from qr.serials import StampSigner
from schemas import codec, topics
from schemas.events import new_event, validate_event
from schemas.validation import validate
from streams import copydetect
from streams.fold import Projection

VN = timezone(timedelta(hours=7))
SUBJECT = "HTX-HAODAT"
GTIN = "08938505974194"  # GS1 Vietnam prefix 893, valid check digit
AREA = "VN-TN-TC-001"
TODAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 1, 9, 30, tzinfo=VN)
RECALL_REASON = "Phát hiện dư lượng thuốc bảo vệ thực vật vượt ngưỡng cho phép"


def at(month: int, day: int, hour: int = 8, minute: int = 0) -> str:
    return datetime(2026, month, day, hour, minute, tzinfo=VN).isoformat()


def _ev(n: int, event_type: str, payload: dict, occurred_at: str, facility: str | None = None) -> dict:
    ev = new_event(event_type, payload, subject_id=SUBJECT, user="lan", facility=facility, source="cli",
                   occurred_at=occurred_at, recorded_at=occurred_at,
                   event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"ocop-scan-web/{n}")))
    validate_event(ev)
    return ev


def world_events() -> list[dict]:
    """Master data and supply events, in log order."""
    kg = lambda v: {"value": float(v), "unit": "kg"}  # noqa: E731
    m = [
        ("subject", {"subject_id": SUBJECT, "name": "Hợp tác xã chè Hảo Đạt", "kind": "cooperative",
                     "tax_id": "4600123456", "province_code": "19", "commune_code": "05518",
                     "address": "xã Tân Cương, TP Thái Nguyên", "contact": None}),
        ("area", {"area_code": AREA, "owner_subject_id": SUBJECT, "name": "Đồi chè Hảo Đạt", "crops": ["chè"],
                  "area_ha": 3.2, "location": [{"lat": 21.5927, "lon": 105.7628}],
                  "certifications": [{"scheme": "VietGAP", "number": "VG-19-001", "valid_from": "2024-01-01",
                                      "valid_to": "2027-01-01"}],
                  "valid_from": "2024-01-01", "valid_to": None, "revoked": False}),
        ("product", {"gtin": GTIN, "owner_subject_id": SUBJECT, "name_vi": "Chè Tân Cương Hảo Đạt",
                     "name_en": "Hao Dat Tan Cuong green tea", "ocop_group": "beverage",
                     "net_content": {"value": 0.2, "unit": "kg"}, "shelf_life_days": 365}),
        ("rating", {"gtin": GTIN, "action": "granted", "stars": 4, "score": 82, "level": "province",
                    "decision_no": "1234/QĐ-UBND", "decision_date": "2025-06-01", "valid_from": "2025-06-01",
                    "valid_to": "2028-06-01"}),
        ("facility", {"facility_id": "FARM-TC", "owner_subject_id": SUBJECT, "name": "Đồi chè Tân Cương",
                      "kind": "farm", "address": "Tân Cương", "location": {"lat": 21.5927, "lon": 105.7628}}),
        ("facility", {"facility_id": "FAC-HAODAT-01", "owner_subject_id": SUBJECT,
                      "name": "Xưởng chế biến chè Hảo Đạt", "kind": "plant", "address": "Tân Cương",
                      "location": {"lat": 21.59, "lon": 105.76}}),
        ("facility", {"facility_id": "POS-QUANVUONG", "owner_subject_id": SUBJECT,
                      "name": "Điểm bán sản phẩm OCOP Quán Vuông", "kind": "point_of_sale",
                      "address": "Định Hóa, Thái Nguyên", "location": {"lat": 21.91, "lon": 105.64}}),
    ]
    events = [_ev(i, t, p, at(1, 5, 7)) for i, (t, p) in enumerate(m)]
    n = 100

    def add(event_type: str, payload: dict, when: str, facility: str | None = None) -> None:
        nonlocal n
        n += 1
        events.append(_ev(n, event_type, payload, when, facility))

    def chain(h: str, p: str, day: int, *, expiry: str, stamps: int, transform: bool = True) -> None:
        add("harvest", {"lot": h, "area_code": AREA, "crop": "chè", "quantity": kg(120), "crate_tags": []},
            at(11, day, 6, 30), "FARM-TC")
        if transform:
            add("transform", {"process": "sao chè (diệt men, vò, sấy)", "inputs": [{"lot": h, "quantity": kg(120)}],
                              "outputs": [{"lot": p, "quantity": kg(30)}], "duration_hours": 18.0},
                at(11, day + 1, 8), "FAC-HAODAT-01")
        add("inspect", {"lot": p, "lab": "Trung tâm Kiểm nghiệm Thái Nguyên", "result": "pass",
                        "parameters": [{"name": "dư lượng BVTV", "value": "KPH", "limit": "MRL", "passed": True}],
                        "certificate_no": f"KN-2026-{day:02d}"}, at(11, day + 2, 10), "FAC-HAODAT-01")
        add("package", {"lot": p, "gtin": GTIN, "units": 150, "quantity": kg(30),
                        "production_date": f"2026-11-{day + 3:02d}", "expiry_date": expiry,
                        "stamps_requested": stamps}, at(11, day + 3, 9), "FAC-HAODAT-01")

    chain("TC-H1", "TC-P1", 1, expiry="2027-11-04", stamps=20)
    add("ship", {"lot": "TC-P1", "units": 50, "to_facility": "POS-QUANVUONG", "carrier": "VNPost",
                 "document_ref": "VD-1"}, at(11, 6, 7), "FAC-HAODAT-01")
    add("sell", {"lot": "TC-P1", "units": 2, "point_of_sale": "POS-QUANVUONG"}, at(11, 8, 15), "POS-QUANVUONG")
    chain("TC-H2", "TC-P2", 2, expiry="2027-11-05", stamps=10)
    add("recall", {"scope": "lot", "target": "TC-H2", "reason": RECALL_REASON,
                   "authority": "Chi cục Quản lý chất lượng Nông lâm sản và Thủy sản Thái Nguyên"},
        at(11, 20, 9))
    chain("TC-P4", "TC-P4", 4, expiry="2027-11-07", stamps=5, transform=False)
    add("recall", {"scope": "lot", "target": "TC-P4", "reason": "Nhãn ghi sai hạn sử dụng",
                   "authority": "Sở Nông nghiệp và Môi trường Thái Nguyên"}, at(11, 21, 9))
    chain("TC-H3", "TC-P3", 3, expiry="2026-11-10", stamps=5)  # already past on the real clock too
    return events


@dataclass
class World:
    """The folded world in a store: records, stamp ranges, and a serial (and path) for each verdict."""

    store: Store
    signer: StampSigner
    events: list[dict]
    records: dict[str, dict]
    ranges: list[dict]
    serials: dict[str, str] = field(default_factory=dict)
    lots: dict[str, str] = field(default_factory=dict)
    offset: int = 0
    prefix: str = ""  # topic prefix of the sink positions written with the rows

    def path(self, name: str, *, lot: bool = True) -> str:
        link = DigitalLink(GTIN, self.lots[name] if lot else None, self.serials[name])
        return link.path

    def apply(self, fn: Callable, *values: Any, positions: bool = True) -> None:
        """Apply values with a sink apply function (``sink.apply_alert``, ``sink.apply_scan``...) and, as the sink
        does, the topic's new position in the same transaction (``positions=False``: a write that bypasses the
        sink)."""
        with self.store.write() as c:
            for v in values:
                self.offset += 1
                if fn in (sink.apply_stamp_range, sink.apply_scan):
                    fn(c, v)
                else:
                    fn(c, v, 0, self.offset)
            if positions and values:
                sink.set_offsets(c, {(self.prefix + SINK_TOPICS[fn].name, 0): self.offset + 1})

    def flag(self, name: str, reason: str = "scanned in 2 regions (19, 01) within 60 min") -> dict:
        """Raise the scans agent's ``suspicious_copy`` alert for a serial, as the agent builds it."""
        scan = scan_value(self.serials[name], self.lots[name], 0, region="19")
        alert = copydetect.suspicion_alert(scan, reason)
        validate(codec.ALERT, alert)
        self.apply(sink.apply_alert, alert)
        return alert


def scan_value(serial: str, lot: str, n: int, *, region: str | None = "19", when: str | None = None,
               verdict: str = "genuine", client: str | None = None) -> dict:
    s = {"scan_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"scan/{serial}/{n}")), "serial": serial, "gtin": GTIN,
         "lot": lot, "scanned_at": when or at(11, 10 + n, 9), "region": region,
         "location": {"lat": 21.6, "lon": 105.8}, "client_hash": client or f"c{n:04d}", "verdict": verdict}
    validate(codec.SCAN, s)
    return s


#: name -> (lot, stamp index, expected verdict once the world is in the read side)
STAMPS = {
    "genuine": ("TC-P1", 3, "genuine"),
    "suspicious": ("TC-P1", 4, "suspicious"),       # flagged by World.flag (or by the scans agent)
    "recalled": ("TC-P2", 0, "recalled"),           # recalled through its raw-material lot TC-H2
    "recalled_direct": ("TC-P4", 1, "recalled"),
    "expired": ("TC-P3", 0, "expired"),             # expired on 2026-11-10 (TODAY is 2026-12-01)
    "not_issued": ("TC-P1", 999, "unknown"),        # a valid tag, never issued (20 stamps were)
    "unknown_lot": ("TC-NOPE", 0, "unknown"),       # a valid tag for a lot nobody recorded
    "forged": ("TC-P1", 5, "forged"),               # stamp 5's serial with its tag altered
}


def stamp_serials(signer: StampSigner) -> tuple[dict[str, str], dict[str, str]]:
    """({name: serial}, {name: lot}) for :data:`STAMPS` — pure, usable before anything is in the read side."""
    serials, lots = {}, {}
    for name, (lot, index, _) in STAMPS.items():
        serial = signer.serial(GTIN, lot, index)
        if name == "forged":
            serial = serial[:-2] + ("00" if serial[-2:] != "00" else "11")
        serials[name], lots[name] = serial, lot
    return serials, lots


SINK_TOPICS = {sink.apply_master: topics.MASTER, sink.apply_record: topics.RECORDS, sink.apply_alert: topics.ALERTS,
               sink.apply_stamp_range: topics.STAMPS, sink.apply_scan: topics.SCANS}


def build_world(store: Store, signer: StampSigner, key_id: str, prefix: str = "") -> World:
    """Fold :func:`world_events` with the workers' pure functions and apply everything through the sink."""
    events = world_events()
    proj = Projection(stamp_key_id=key_id)
    for ev in events:
        proj.add(ev)
    records = proj.run()
    w = World(store, signer, events, records, list(proj.stamp_ranges), prefix=prefix)
    w.apply(sink.apply_master, *[e for e in events if e["event_type"] in
                                 ("subject", "area", "product", "rating", "facility")])
    w.apply(sink.apply_record, *[records[k] for k in sorted(records)])
    w.apply(sink.apply_stamp_range, *w.ranges)

    w.serials, w.lots = stamp_serials(signer)
    # the genuine stamp was scanned twice before today
    w.apply(sink.apply_scan, scan_value(w.serials["genuine"], "TC-P1", 0, when=at(11, 12, 10, 15)),
            scan_value(w.serials["genuine"], "TC-P1", 1, when=at(11, 15, 18, 40)))
    w.flag("suspicious")
    return w


# ---------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def scan_store(store):
    return store


@pytest.fixture
def scan_settings(settings_factory, db_url):
    return settings_factory(kafka=False, database_url=db_url, scan_rate_per_minute=10_000,
                            resolver_base="https://truyxuat.example.vn")


@pytest.fixture
def world(scan_store: Store, scan_settings) -> World:
    return build_world(scan_store, StampSigner.from_settings(scan_settings), scan_settings.stamp_active_key,
                       scan_settings.topic_prefix)


@pytest.fixture
def scan_app_factory(scan_store: Store, scan_settings):
    """``make(settings=None, producer=None, **scan_router_kwargs) -> (FastAPI app, router)`` on today = TODAY."""

    def make(settings=None, producer=None, **kw):
        kw.setdefault("today", lambda: TODAY)
        kw.setdefault("now", lambda: NOW)
        router = scan_router(settings or scan_settings, scan_store, producer, **kw)
        app = FastAPI()
        app.include_router(router)
        return app, router

    return make


@pytest.fixture
def scan_client(scan_app_factory, world):
    app, _ = scan_app_factory()
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def get_json(client: TestClient, path: str, **params) -> dict:
    r = client.get(path, params=params or None, headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


# ------------------------------------------------------------------------------------------------------ verdicts
EXPECTED = {
    "genuine": ("genuine", "Chính hãng"),
    "suspicious": ("suspicious", "Nghi vấn tem sao chép"),
    "recalled": ("recalled", "Sản phẩm bị thu hồi"),
    "recalled_direct": ("recalled", "Sản phẩm bị thu hồi"),
    "expired": ("expired", "Hết hạn sử dụng"),
    "not_issued": ("unknown", "Không xác định"),
    "unknown_lot": ("unknown", "Không xác định"),
    "forged": ("forged", "Hàng giả"),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_verdict_page_and_json(scan_client, world, name):
    code, title = EXPECTED[name]
    r = scan_client.get(world.path(name))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-language"] == "vi"
    h1 = re.search(r"<h1[^>]*>(.*?)</h1>", r.text, re.S).group(1)
    assert title in h1
    assert '<html lang="vi">' in r.text
    data = get_json(scan_client, world.path(name))
    assert data["verdict"]["code"] == code
    assert data["verdict"]["title"] == title
    assert data["contract"] == "ocop-trace/scan/1"


def test_genuine_page_tells_the_story(scan_client, world):
    html = scan_client.get(world.path("genuine")).text
    for text in ("Chè Tân Cương Hảo Đạt", "Hợp tác xã chè Hảo Đạt", "Hợp tác xã", "4 sao OCOP", "82/100 điểm",
                 "1234/QĐ-UBND", "01/06/2025", "Tỉnh", "Đồi chè Hảo Đạt", "VN-TN-TC-001", "21.5927, 105.7628",
                 "https://www.openstreetmap.org/?mlat=21.59270&amp;mlon=105.76280", "VietGAP VG-19-001",
                 "Thu hoạch", "Chế biến", "Kiểm nghiệm", "Đóng gói", "Vận chuyển", "Điểm bán",
                 "Điểm bán sản phẩm OCOP Quán Vuông", "Trung tâm Kiểm nghiệm Thái Nguyên", "Đạt",
                 "đã được quét 2 lần trước đây", "12/11/2026 10:15", 'alt="Ảnh minh họa sản phẩm',
                 "Chính hãng", "✔"):
        assert text in html, text
    # the journey is in order: harvest → processing → testing → packaging → shipping → point of sale
    order = [html.index(f"<b>{label}</b>") for label in
             ("Thu hoạch", "Chế biến", "Kiểm nghiệm", "Đóng gói", "Vận chuyển", "Điểm bán")]
    assert order == sorted(order)
    # headings: one h1, sections as h2
    assert html.count("<h1") == 1 and html.count("<h2") >= 6
    # no script, no external resource
    assert "<script" not in html and "src=\"http" not in html and "<link" not in html


def test_json_contract(scan_client, world):
    d = get_json(scan_client, world.path("genuine"))
    assert set(d) >= {"contract", "lang", "link", "verdict", "product", "lot", "rating", "producer", "origins",
                      "journey", "inspections", "scans", "recall", "links"}
    assert d["link"] == {"uri": f"https://truyxuat.example.vn{world.path('genuine')}", "gtin": GTIN,
                         "lot": "TC-P1", "serial": world.serials["genuine"], "expiry": None, "resolved_lot": "TC-P1"}
    v = d["verdict"]
    assert v["code"] == "genuine" and v["stamp_checked"] is True and v["reasons"][0]["code"] == "tag_ok"
    assert v["expiry"] == "2027-11-04"
    assert d["product"] == {"gtin": GTIN, "name_vi": "Chè Tân Cương Hảo Đạt", "name_en": "Hao Dat Tan Cuong green tea",
                            "name": "Chè Tân Cương Hảo Đạt", "ocop_group": "beverage",
                            "net_content": {"value": 0.2, "unit": "kg"}}
    assert d["rating"] == {"stars": 4, "score": 82, "level": "province", "decision_no": "1234/QĐ-UBND",
                           "decision_date": "2025-06-01", "valid_from": "2025-06-01", "valid_to": "2028-06-01"}
    assert d["producer"]["name"] == "Hợp tác xã chè Hảo Đạt" and d["producer"]["kind"] == "cooperative"
    assert d["origins"][0]["area_code"] == AREA and d["origins"][0]["location"] == [{"lat": 21.5927, "lon": 105.7628}]
    assert d["origins"][0]["harvest_lots"] == ["TC-H1"]
    steps = [s["step"] for s in d["journey"]]
    assert steps == ["harvest", "transform", "inspect", "package", "ship", "sell"]
    assert d["journey"][0]["lot"] == "TC-H1" and d["journey"][0]["label"] == "Thu hoạch"
    assert d["journey"][4]["destination"]["name"] == "Điểm bán sản phẩm OCOP Quán Vuông"
    assert d["inspections"][0]["result"] == "pass" and d["inspections"][0]["certificate_no"] == "KN-2026-01"
    assert d["scans"] == {"previous": 2, "first_scan_at": at(11, 12, 10, 15), "last_scan_at": at(11, 15, 18, 40)}
    assert d["recall"] is None
    assert d["lot"]["status"] == "active" and d["lot"]["production_date"] == "2026-11-04"
    # the same by GS1 linkType, whatever the Accept header
    r = scan_client.get(world.path("genuine"), params={"linkType": "gs1:traceability"})
    assert r.headers["content-type"].startswith("application/json") and r.json()["verdict"]["code"] == "genuine"
    r = scan_client.get(world.path("genuine"), params={"linkType": "https://gs1.org/voc/traceability"})
    assert r.json()["contract"] == "ocop-trace/scan/1"
    assert "Accept" in r.headers["vary"] and r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("name", ["forged", "not_issued", "unknown_lot"])
def test_unissued_codes_never_show_the_lots_story(scan_client, world, name):
    """A forged or unknown stamp gets the GTIN's product and owner (whom to contact), nothing about the lot."""
    d = get_json(scan_client, world.path(name))
    assert d["verdict"]["code"] in ("forged", "unknown")
    assert d["product"]["name_vi"] == "Chè Tân Cương Hảo Đạt" and d["producer"]["name"] == "Hợp tác xã chè Hảo Đạt"
    assert d["lot"] is None and d["rating"] is None and d["recall"] is None and d["scans"] is None
    assert d["origins"] == [] and d["journey"] == [] and d["inspections"] == [] and d["verdict"]["expiry"] is None
    html = scan_client.get(world.path(name)).text
    assert "Sản phẩm ghi trên tem" in html and "Hành trình sản phẩm" not in html and "sao OCOP" not in html
    assert "Chủ sở hữu mã sản phẩm" in html


def test_recall_json_explains_reason_and_what_to_do(scan_client, world):
    d = get_json(scan_client, world.path("recalled"))
    assert d["verdict"]["code"] == "recalled"
    rc = d["recall"]
    assert rc["reason"] == RECALL_REASON and rc["target"] == "TC-H2" and rc["via"] == "TC-H2"
    assert rc["advice"].startswith("Ngừng sử dụng, liên hệ điểm bán hoặc nhà sản xuất")
    assert rc["authority"].startswith("Chi cục")
    html = scan_client.get(world.path("recalled")).text
    for text in ("⛔", "Sản phẩm bị thu hồi", RECALL_REASON, "Ngừng sử dụng, liên hệ điểm bán hoặc nhà sản xuất",
                 "Thu hồi do lô nguyên liệu TC-H2 bị thu hồi", "20/11/2026"):
        assert text in html, text
    d = get_json(scan_client, world.path("recalled_direct"))
    assert d["recall"]["reason"] == "Nhãn ghi sai hạn sử dụng" and d["recall"]["via"] is None


def test_english_toggle_and_accept_language(scan_client, world):
    path = world.path("genuine")
    vi = scan_client.get(path).text
    assert f'href="{path}?lang=en"' in vi and ">English<" in vi
    en = scan_client.get(path, params={"lang": "en"})
    assert en.headers["content-language"] == "en" and '<html lang="en">' in en.text
    assert "Genuine" in en.text and "Hao Dat Tan Cuong green tea" in en.text and "Journey" in en.text
    assert f'href="{path}?lang=vi"' in en.text
    by_header = scan_client.get(path, headers={"Accept-Language": "en-US,en;q=0.9,vi;q=0.5"})
    assert '<html lang="en">' in by_header.text
    assert '<html lang="vi">' in scan_client.get(path, headers={"Accept-Language": "fr, vi;q=0.8, en;q=0.5"}).text
    # ?lang wins over the header
    assert '<html lang="vi">' in scan_client.get(path, params={"lang": "vi"},
                                                 headers={"Accept-Language": "en"}).text
    assert get_json(scan_client, path, lang="en")["verdict"]["title"] == "Genuine"


def test_linkset(scan_client, world):
    r = scan_client.get(world.path("genuine"), params={"linkType": "all"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/linkset+json")
    ls = r.json()["linkset"]
    assert len(ls) == 1
    entry = ls[0]
    anchor = f"https://truyxuat.example.vn{world.path('genuine')}"
    assert entry["anchor"] == anchor and entry["itemDescription"] == "Chè Tân Cương Hảo Đạt"
    for lt in ("pip", "traceability", "certificationInfo", "defaultLink"):
        links = entry[f"https://gs1.org/voc/{lt}"]
        assert links and all(x["href"].startswith(anchor + "?linkType=") for x in links)
    assert {x["hreflang"][0] for x in entry["https://gs1.org/voc/pip"]} == {"vi", "en"}
    assert "json-ld#context" in r.headers["link"]
    # also by Accept
    r = scan_client.get(world.path("recalled"), headers={"Accept": "application/linkset+json"})
    assert "https://gs1.org/voc/recallStatus" in r.json()["linkset"][0]
    # and every page advertises it
    assert 'rel="linkset"' in scan_client.get(world.path("genuine")).headers["link"]


def test_certification_info(scan_client, world):
    d = scan_client.get(world.path("genuine"), params={"linkType": "gs1:certificationInfo"}).json()
    assert d["rating"]["stars"] == 4 and d["certifications"][0]["scheme"] == "VietGAP"


def test_short_forms(scan_client, world):
    # /01/{gtin}/21/{serial}: resolved through the issued range that holds the index
    d = get_json(scan_client, world.path("genuine", lot=False))
    assert d["verdict"]["code"] == "genuine" and d["link"]["resolved_lot"] == "TC-P1" and d["link"]["lot"] is None
    assert get_json(scan_client, world.path("recalled", lot=False))["verdict"]["code"] == "recalled"
    # the index is in an issued range but the tag fits none of the candidate lots
    assert get_json(scan_client, world.path("forged", lot=False))["verdict"]["code"] == "forged"
    # no issued range holds the index
    d = get_json(scan_client, world.path("not_issued", lot=False))
    assert d["verdict"]["code"] == "unknown" and d["verdict"]["reasons"][0]["code"] == "lot_unresolved"
    # /01/{gtin}/10/{lot}: the lot, no stamp verdict
    d = get_json(scan_client, f"/01/{GTIN}/10/TC-P1")
    assert d["verdict"]["code"] == "info" and d["verdict"]["stamp_checked"] is False and d["scans"] is None
    assert [s["step"] for s in d["journey"]][:2] == ["harvest", "transform"]
    assert get_json(scan_client, f"/01/{GTIN}/10/TC-P2")["verdict"]["code"] == "recalled"
    html = scan_client.get(f"/01/{GTIN}/10/TC-P1").text
    assert "Thông tin lô hàng" in html and "Lịch sử quét tem" not in html
    # ?17= is accepted; GTIN-13 and the DL 1.1 names work too
    d = get_json(scan_client, world.path("genuine") + "?17=271104")
    assert d["verdict"]["code"] == "genuine" and d["link"]["expiry"] == "2027-11-04"
    d = get_json(scan_client, world.path("genuine") + "?17=261101")  # a stale ?17= does not override the record
    assert d["verdict"]["code"] == "genuine" and "expiry_mismatch" in [x["code"] for x in d["verdict"]["reasons"]]
    assert get_json(scan_client, f"/gtin/{GTIN[1:]}/lot/TC-P1/ser/{world.serials['genuine']}")["verdict"]["code"] \
        == "genuine"
    # /01/{gtin}: the product
    d = get_json(scan_client, f"/01/{GTIN}")
    assert d["product"]["name_vi"] == "Chè Tân Cương Hảo Đạt" and d["rating"]["stars"] == 4
    # unknown lot / product: 404 with a Vietnamese page
    r = scan_client.get(f"/01/{GTIN}/10/NOPE")
    assert r.status_code == 404 and "Không có lô hàng NOPE" in r.text
    r = scan_client.get("/01/08930000000019")
    assert r.status_code == 404 and "Không có sản phẩm nào mang mã GTIN" in r.text


def test_percent_encoded_lot_round_trips(scan_client, world, scan_settings):
    """A lot with characters that must be percent-encoded in the path (here '/') resolves from the raw path."""
    signer = StampSigner.from_settings(scan_settings)
    serial = signer.serial(GTIN, "A/B", 0)
    link = DigitalLink(GTIN, "A/B", serial)
    assert "%2F" in link.path
    d = get_json(scan_client, link.path)
    assert d["link"]["lot"] == "A/B" and d["verdict"]["code"] == "unknown"  # a valid tag, lot never recorded


def test_scan_history_and_first_scan(scan_client, world):
    d = get_json(scan_client, world.path("expired"))
    assert d["scans"] == {"previous": 0, "first_scan_at": None, "last_scan_at": None}
    assert "Đây là lần quét đầu tiên" in scan_client.get(world.path("expired")).text


def test_ping_and_healthz(scan_client):
    r = scan_client.get("/ping")
    assert r.status_code == 200 and r.text == "pong"
    r = scan_client.get("/healthz")
    assert r.status_code == 200 and r.json()["db"] == "ok"


# ------------------------------------------------------------------------------------------------ scan events
class FakeProducer:
    """Records ``send_value`` calls; with ``gate`` set, each send waits for it (a broker that is away)."""

    def __init__(self, gate: threading.Event | None = None):
        self.sent: list[tuple] = []
        self.gate = gate
        self.flushed = 0

    def send_value(self, spec, key, value, *, wait=True, timeout=30.0):
        if self.gate is not None:
            self.gate.wait(60)
        assert wait is False
        validate(spec.value, value)
        self.sent.append((spec, key, value))

    def flush(self, timeout=None):
        self.flushed += 1


def test_scan_values_are_produced_without_waiting(scan_app_factory, world):
    gate = threading.Event()
    stuck = FakeProducer(gate)  # the broker does not answer until the gate opens
    app, router = scan_app_factory(producer=stuck)
    with TestClient(app) as c:
        r = c.get(world.path("genuine"), params={"region": "19", "geo": "21.5927,105.7628"},
                  headers={"User-Agent": "phone-a"})
        r2 = c.get(world.path("forged"), headers={"User-Agent": "phone-a", "X-OCOP-Region": "01",
                                                    "X-OCOP-Geo": "21.0285, 105.8542"})
        # both pages were served while the producer was still stuck on the first send
        assert r.status_code == 200 and r2.status_code == 200 and stuck.sent == []
        # the lot page and the linkset are not scans; a reload by the same phone is not sent twice
        c.get(f"/01/{GTIN}/10/TC-P1")
        c.get(world.path("genuine"), params={"linkType": "all"})
        c.get(world.path("genuine"), params={"region": "19", "geo": "21.5927,105.7628"},
              headers={"User-Agent": "phone-a"})
        gate.set()
        assert router.emitter.flush(10)
    assert [v["verdict"] for _, _, v in stuck.sent] == ["genuine", "forged"]
    spec, key, v = stuck.sent[0]
    assert spec is topics.SCANS and key == world.serials["genuine"]
    assert v["serial"] == world.serials["genuine"] and v["gtin"] == GTIN and v["lot"] == "TC-P1"
    assert v["region"] == "19" and v["location"] == {"lat": 21.6, "lon": 105.8}
    assert v["scanned_at"] == NOW.isoformat()
    assert v["client_hash"] == client_hash("ocop-dev-salt-change-me", "testclient", "phone-a")
    assert "testclient" not in json.dumps(v) and "phone-a" not in json.dumps(v)
    assert stuck.sent[1][2]["region"] == "01" and stuck.sent[1][2]["location"] == {"lat": 21.0, "lon": 105.9}
    assert router.emitter.stats.deduped == 1


def test_emitter_drops_rather_than_blocks(world, scan_app_factory):
    from consumers.web.app import ScanEmitter

    class Stuck(FakeProducer):
        def send_value(self, *a, **kw):
            time.sleep(30)

    em = ScanEmitter(Stuck(), maxsize=2, dedupe_seconds=0)
    t0 = time.monotonic()
    results = [em.emit(scan_value("1A" + "B" * 8, "L", i)) for i in range(10)]
    assert time.monotonic() - t0 < 1.0
    assert results.count(True) <= 3 and em.stats.dropped >= 7


def test_scan_event_reaches_the_broker(kafka_broker, topic_prefix, settings_factory, db_url, scan_store, world):
    """The router's scan values land on the REAL ocop.events.scans topic, keyed by serial, Avro-encoded."""
    from producers.client import EventProducer
    from tests.kafka_io import read_all, wait_for

    s = settings_factory(kafka=True, database_url=db_url)
    topics.create_topics(kafka_broker.bootstrap, topic_prefix, partitions=3)
    producer = EventProducer(s, client_id="scan-web-test")
    try:
        router = scan_router(s, scan_store, producer, today=lambda: TODAY, now=lambda: NOW)
        app = FastAPI()
        app.include_router(router)
        with TestClient(app) as c:
            r = c.get(world.path("genuine"), params={"region": "19"}, headers={"User-Agent": "phone-b"})
            assert r.status_code == 200
            r = c.get(world.path("recalled"), headers={"User-Agent": "phone-b", "Accept": "application/json"})
            assert r.json()["verdict"]["code"] == "recalled"
            assert router.emitter.flush(30)
        topic = topics.SCANS.full(topic_prefix)
        got = wait_for(lambda: len(read_all(kafka_broker.bootstrap, topic, codec.SCAN)) >= 2 and
                       read_all(kafka_broker.bootstrap, topic, codec.SCAN), 30, "two scans on the topic")
    finally:
        producer.close()
    by_serial = {k.decode(): v for k, v in got}
    g = by_serial[world.serials["genuine"]]
    assert g["verdict"] == "genuine" and g["lot"] == "TC-P1" and g["region"] == "19" and g["gtin"] == GTIN
    assert by_serial[world.serials["recalled"]]["verdict"] == "recalled"
    assert router.emitter.stats.sent == 2 and router.emitter.stats.failed == 0


# ------------------------------------------------------------------------------------------------ hostile input
def test_rate_limit(scan_app_factory, world, scan_settings):
    app, router = scan_app_factory(settings=scan_settings.model_copy(update={"scan_rate_per_minute": 5}))
    with TestClient(app) as c:
        codes = [c.get(world.path("genuine"), headers={"User-Agent": "flooder"}).status_code for _ in range(7)]
        assert codes == [200] * 5 + [429, 429]
        r = c.get(world.path("genuine"), headers={"User-Agent": "flooder"})
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 12
        assert "Quá nhiều lượt quét" in r.text and "giây" in r.text
        r = c.get(world.path("genuine"), headers={"User-Agent": "flooder", "Accept": "application/json"})
        assert r.status_code == 429 and r.json()["error"]["status"] == 429
        # another client is not affected; /ping is not limited
        assert c.get(world.path("genuine"), headers={"User-Agent": "someone else"}).status_code == 200
        assert c.get("/ping", headers={"User-Agent": "flooder"}).status_code == 200


def test_token_bucket_refills():
    now = [0.0]
    b = TokenBucket(60, clock=lambda: now[0])  # one a second, bursts of 60
    assert all(b.take("a") == 0 for _ in range(60))
    assert b.take("a") == pytest.approx(1.0)
    now[0] += 1.0
    assert b.take("a") == 0 and b.take("a") > 0
    small = TokenBucket(10, max_keys=3, clock=lambda: now[0])
    for k in "abcdef":
        small.take(k)
    assert len(small._b) == 3


@pytest.mark.parametrize("path, status, where", [
    ("/01/08938505974195/10/TC-P1/21/1A", 400, "sai số kiểm tra"),          # check digit
    ("/01/0893850597419/10/TC-P1", 400, "mã sản phẩm GTIN"),                # 13 digits, wrong check
    ("/01/abc", 400, "mã sản phẩm GTIN"),
    ("/01/", 400, "Mã QR không hợp lệ"),
    ("/01", 400, "Mã QR không hợp lệ"),
    ("/01/08938505974194/10/", 400, "thiếu giá trị"),
    ("/01/08938505974194/10//21/1A", 400, "mã lô"),
    ("/01/08938505974194/21/1A/10/TC-P1", 400, "sai thứ tự"),
    ("/01/08938505974194/10/TC%ZZ", 400, "mã hóa phần trăm sai"),
    ("/01/08938505974194/10/TC%00P1", 400, "ký tự không được phép"),
    ("/01/08938505974194/10/TC%FF%FE", 400, "ký tự không được phép"),       # not UTF-8
    ("/01/08938505974194/10/%C3%A9", 400, "ký tự không được phép"),         # é is not in GS1 set 82
    ("/01/08938505974194/10/" + "L" * 21, 400, "quá dài"),
    ("/01/08938505974194/10/TC-P1?17=991399", 400, "ngày không hợp lệ"),
    ("/01/08938505974194/22/X", 400, "không dùng trên tem OCOP"),
    ("/01/08938505974194/10/" + "L" * 600, 414, "Đường dẫn quá dài"),
    ("/01/08938505974194?" + "&".join(f"p{i}=1" for i in range(40)), 400, "quá nhiều tham số"),
    ("/01/08938505974194?x=" + "y" * 2000, 414, "Đường dẫn quá dài"),
])
def test_bad_input_gets_a_helpful_4xx(scan_client, world, path, status, where):
    r = scan_client.get(path)
    assert r.status_code == status, r.text[:500]
    assert where in r.text
    assert '<html lang="vi">' in r.text and "<h1" in r.text
    j = scan_client.get(path, headers={"Accept": "application/json"})
    assert j.status_code == status and j.json()["error"]["status"] == status


def test_raw_non_ascii_and_control_bytes(scan_app_factory, world):
    """Bytes a browser would never send, straight into the ASGI scope: still a 4xx page."""
    import asyncio

    app, _ = scan_app_factory()

    async def call(raw_path: bytes, query: bytes = b"") -> tuple[int, bytes]:
        sent: list[dict] = []
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": raw_path.decode("latin-1"), "raw_path": raw_path, "root_path": "",
                 "query_string": query, "headers": [(b"host", b"x")], "client": ("1.2.3.4", 5),
                 "server": ("x", 80)}

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(msg):
            sent.append(msg)

        await app(scope, receive, send)
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return sent[0]["status"], body

    for raw, q in [(b"/01/08938505974194/10/\xff\xfe", b""), (b"/01/08938505974194/10/A B", b""),
                   (b"/01/08938505974194/10/A\x00", b""), (b"/01/08938505974194", b"lang=\xff"),
                   (b"/01/08938505974194", b"17=%")]:
        status, body = asyncio.run(call(raw, q))
        assert 400 <= status < 500, (raw, q, status)
        assert "Mã QR không hợp lệ".encode() in body or "Không tìm thấy".encode() in body


SEGMENT = st.one_of(
    st.text(min_size=0, max_size=40),
    st.text(alphabet="%0123456789ABCDEFabcdefz/.?#&=+;:@!$'()*,~-_ \x00\x7f", max_size=40),
    st.sampled_from(["01", "10", "21", "17", "gtin", "lot", "ser", "22", "..", ".", "%", "%2", "%2F", "%00",
                     "08938505974194", "8938505974194", "TC-P1", "3DXXXXXXXX"]),
)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segs=st.lists(SEGMENT, min_size=0, max_size=8),
       query=st.dictionaries(st.text(max_size=12), st.text(max_size=60), max_size=20),
       accept=st.sampled_from([None, "application/json", "text/html", "application/linkset+json", "*/*;q=x",
                               "garbage;;;", ""]),
       lang=st.sampled_from([None, "en", "vi", "xx", "en-US,en;q=0.9", "q=;;,", "*"]))
def test_fuzz_never_500(scan_client, world, segs, query, accept, lang):
    from urllib.parse import quote as q

    path = "/01/" + "/".join(q(s, safe="%") for s in segs)
    headers = {}
    if accept is not None:
        headers["Accept"] = accept
    if lang is not None:
        headers["Accept-Language"] = lang
    r = scan_client.get(path, params=query, headers=headers)
    assert r.status_code < 500, (path, query, r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert r.status_code in (400, 404, 414, 429)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lot=st.text(alphabet="!\"%&'()*+,-./0123456789:;<=>?ABCZ_az", min_size=1, max_size=20),
       serial=st.text(alphabet="0123456789ABCDEFGHJKMNPQRSTVWXYZ", min_size=1, max_size=20),
       region=st.text(max_size=30), geo=st.text(max_size=40))
def test_fuzz_well_formed_links_get_a_verdict(scan_client, world, lot, serial, region, geo):
    link = DigitalLink(GTIN, lot, serial)
    r = scan_client.get(link.path, params={"region": region, "geo": geo},
                        headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["verdict"]["code"] in ("forged", "unknown", "genuine", "suspicious", "recalled", "expired")


def test_read_side_down_is_a_503(scan_app_factory, world, scan_store):
    class Broken:
        def __getattr__(self, name):
            def fail(*a, **kw):
                from sqlalchemy.exc import OperationalError

                raise OperationalError("SELECT", {}, Exception("database is gone"))
            return fail

    app, router = scan_app_factory()
    router.resolver.store = Broken()
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get(world.path("genuine"))
        assert r.status_code == 503 and r.headers["retry-after"] == "30"
        assert "Hệ thống tạm thời gián đoạn" in r.text


# ------------------------------------------------------------------------------------------------------- caching
class Clock:
    """A monotonic clock the test moves by hand (the resolver's cache reads it; nothing sleeps)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class Selects:
    """Counts the SELECT statements the store runs (``with Selects(store) as n: ...; n.count``)."""

    def __init__(self, store: Store) -> None:
        self.store, self.count = store, 0

    def _on(self, conn, cursor, statement, *a) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            self.count += 1

    def __enter__(self) -> "Selects":
        from sqlalchemy import event

        event.listen(self.store.engine, "before_cursor_execute", self._on)
        return self

    def __exit__(self, *exc) -> None:
        from sqlalchemy import event

        event.remove(self.store.engine, "before_cursor_execute", self._on)


@pytest.fixture
def cached(scan_app_factory, world):
    """(client, router, clock) with the default freshness (0.2 s) on a hand-moved clock."""
    clock = Clock()
    app, router = scan_app_factory(clock=clock)
    with TestClient(app) as c:
        yield c, router, clock


def refold(world: World, key_id: str, *extra: dict) -> dict[str, dict]:
    """The records after ``extra`` events, as the workers would publish them."""
    proj = Projection(stamp_key_id=key_id)
    for ev in [*world.events, *extra]:
        proj.add(ev)
    return proj.run()


def recall_event(n: int, target: str, reason: str = "Vi sinh vật vượt ngưỡng") -> dict:
    return _ev(n, "recall", {"scope": "lot", "target": target, "reason": reason,
                             "authority": "Chi cục Quản lý chất lượng Nông lâm sản và Thủy sản Thái Nguyên"},
               at(11, 28, 9))


def test_cache_answers_from_memory_until_the_sink_moves(cached, world, scan_store):
    c, router, clock = cached
    for name in ("genuine", "expired", "forged"):
        get_json(c, world.path(name))
    with Selects(scan_store) as n:  # all from memory: no statement at all
        assert get_json(c, world.path("genuine"))["verdict"]["code"] == "genuine"
        assert get_json(c, world.path("genuine"), lang="en")["verdict"]["title"] == "Genuine"
        assert "Chính hãng" in c.get(world.path("genuine")).text
        assert get_json(c, world.path("forged"))["verdict"]["code"] == "forged"
    assert n.count == 0
    clock.advance(0.2)
    with Selects(scan_store) as n:  # the positions are read again (one statement); nothing changed: still memory
        assert get_json(c, world.path("genuine"))["verdict"]["code"] == "genuine"
        assert get_json(c, world.path("expired"))["verdict"]["code"] == "expired"
    assert n.count == 1
    assert router.resolver.cache.stats["checks"] >= 2


def test_recall_in_sql_is_shown_within_fresh_seconds(cached, world, scan_settings, scan_store):
    c, router, clock = cached
    assert get_json(c, world.path("genuine"))["verdict"]["code"] == "genuine"
    assert get_json(c, world.path("expired"))["verdict"]["code"] == "expired"
    records = refold(world, scan_settings.stamp_active_key, recall_event(900, "TC-P1"))
    world.apply(sink.apply_record, records["TC-P1"])  # the sink commits the recalled record (and its position)
    clock.advance(0.1)  # within the window memory may still answer
    assert get_json(c, world.path("genuine"))["verdict"]["code"] == "genuine"
    clock.advance(0.1)
    d = get_json(c, world.path("genuine"))
    assert d["verdict"]["code"] == "recalled" and d["recall"]["reason"] == "Vi sinh vật vượt ngưỡng"
    assert "Sản phẩm bị thu hồi" in c.get(world.path("genuine")).text
    assert get_json(c, f"/01/{GTIN}/10/TC-P1")["verdict"]["code"] == "recalled"
    with Selects(scan_store) as n:  # only the lot that changed was forgotten
        assert get_json(c, world.path("expired"))["verdict"]["code"] == "expired"
    assert n.count == 0


def test_an_ancestors_recall_reaches_its_descendants_pages(cached, world, scan_settings):
    """The raw-material lot's record arrives before the product lot's re-derived one: the product lot's page,
    which read the raw-material lot as an ancestor, is forgotten with it."""
    c, router, clock = cached
    assert get_json(c, world.path("genuine"))["verdict"]["code"] == "genuine"
    records = refold(world, scan_settings.stamp_active_key, recall_event(901, "TC-H1"))
    world.apply(sink.apply_record, records["TC-H1"])  # TC-P1's own record not yet
    clock.advance(0.2)
    d = get_json(c, world.path("genuine"))
    assert d["verdict"]["code"] == "recalled" and d["recall"]["via"] == "TC-H1"


def test_copy_alert_and_new_scans_are_shown_within_fresh_seconds(cached, world):
    c, router, clock = cached
    d = get_json(c, world.path("genuine"))
    assert d["verdict"]["code"] == "genuine" and d["scans"]["previous"] == 2
    world.apply(sink.apply_scan, scan_value(world.serials["genuine"], "TC-P1", 7, when=at(11, 25, 8)))
    clock.advance(0.2)
    assert get_json(c, world.path("genuine"))["scans"]["previous"] == 3
    world.flag("genuine")
    clock.advance(0.2)
    assert get_json(c, world.path("genuine"))["verdict"]["code"] == "suspicious"


def test_a_range_issued_later_turns_unknown_into_genuine(cached, world):
    """"No issued range holds this index" is forgotten when stamps arrive; issued ranges are kept (facts)."""
    c, router, clock = cached
    assert get_json(c, world.path("not_issued"))["verdict"]["code"] == "unknown"
    assert get_json(c, world.path("not_issued", lot=False))["verdict"]["code"] == "unknown"
    base = next(r for r in world.ranges if r["lot"] == "TC-P1")
    world.apply(sink.apply_stamp_range, {**base, "range_id": "extra-TC-P1", "first_index": 900, "count": 200,
                                         "request_id": None})
    clock.advance(0.2)
    assert get_json(c, world.path("not_issued"))["verdict"]["code"] == "genuine"
    d = get_json(c, world.path("not_issued", lot=False))
    assert d["verdict"]["code"] == "genuine" and d["link"]["resolved_lot"] == "TC-P1"


def test_master_data_change_is_shown_within_fresh_seconds(cached, world):
    c, router, clock = cached
    assert get_json(c, world.path("genuine"))["product"]["name_vi"] == "Chè Tân Cương Hảo Đạt"
    assert get_json(c, world.path("forged"))["producer"]["name"] == "Hợp tác xã chè Hảo Đạt"
    product, owner = (next(e for e in world.events if e["event_type"] == t) for t in ("product", "subject"))
    renamed = {**product["payload"], "name_vi": "Chè Tân Cương Hảo Đạt (mới)"}
    world.apply(sink.apply_master, _ev(902, "product", renamed, at(11, 30, 9)),
                _ev(903, "subject", {**owner["payload"], "name": "HTX chè Hảo Đạt"}, at(11, 30, 9)))
    clock.advance(0.2)
    assert get_json(c, world.path("genuine"))["product"]["name_vi"] == "Chè Tân Cương Hảo Đạt (mới)"
    assert get_json(c, world.path("forged"))["producer"]["name"] == "HTX chè Hảo Đạt"


def test_writes_that_bypass_the_sink_show_after_max_age(scan_app_factory, world, scan_settings):
    """Nothing but the sink writes the read side; if something does anyway, no answer is older than the max age."""
    clock = Clock()
    app, router = scan_app_factory(clock=clock, cache_max_age=5)
    with TestClient(app) as c:
        assert get_json(c, world.path("genuine"))["verdict"]["code"] == "genuine"
        records = refold(world, scan_settings.stamp_active_key, recall_event(904, "TC-P1"))
        world.apply(sink.apply_record, records["TC-P1"], positions=False)
        clock.advance(1)
        assert get_json(c, world.path("genuine"))["verdict"]["code"] == "genuine"
        clock.advance(4)
        assert get_json(c, world.path("genuine"))["verdict"]["code"] == "recalled"


def test_no_cache_reads_every_time(scan_app_factory, world, scan_store):
    app, router = scan_app_factory(cache_max_age=0)
    with TestClient(app) as c:
        get_json(c, world.path("genuine"))
        with Selects(scan_store) as n:
            assert get_json(c, world.path("genuine"))["verdict"]["code"] == "genuine"
        assert n.count >= 2  # the lot's page data and the serial's facts, nothing remembered


# ---------------------------------------------------------------------------------------------- small helpers
def test_negotiation_and_location_helpers():
    assert negotiate(None, None) == "html"
    assert negotiate("text/html,application/xhtml+xml,*/*;q=0.8", None) == "html"
    assert negotiate("application/json", None) == "json"
    assert negotiate("application/json;q=0.5, text/html", None) == "html"
    assert negotiate("text/html", "gs1:traceability") == "json"
    assert negotiate("application/json", "all") == "linkset"
    assert negotiate("*/*", None) == "html"
    assert parse_location("21.5927,105.7628") == {"lat": 21.6, "lon": 105.8}
    assert parse_location("95,0") is None and parse_location("nan,1") is None and parse_location("1e9,2") is None


def test_server_includes_the_scan_routes(scan_settings, world):
    """``ocop_trace.server.create_app`` serves the resolver path next to the intake API."""
    from ocop_trace.server import create_app

    fake = FakeProducer()
    app = create_app(scan_settings, producer=fake)
    with TestClient(app) as c:
        r = c.get(world.path("genuine"), headers={"Accept": "application/json"})
        assert r.status_code == 200 and r.json()["verdict"]["code"] == "genuine"
        assert c.get("/ping").text == "pong"
        assert c.get(f"/01/{GTIN}/10/TC-P1").status_code == 200
    # the scan went through the app's producer
    deadline = time.monotonic() + 5
    while not fake.sent and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.sent and fake.sent[0][1] == world.serials["genuine"]
