"""The scan service: the GS1 Digital Link resolver a shopper's phone opens when it reads a stamp.

``scan_router(settings, store, producer)`` returns a FastAPI router; ``ocop_trace.server.create_app`` includes it
(``app.include_router(scan_router(settings, store, producer))``).

Routes
------
* ``GET /01/{gtin}/10/{lot}/21/{serial}[?17=YYMMDD]``: the stamp page: verdict, product, OCOP rating, producer,
  growing areas, journey, inspections, scan history. Always ``200`` with a verdict (``unknown`` and ``forged`` are
  answers, not errors).
* ``GET /01/{gtin}/10/{lot}``: the lot page (no stamp verdict; ``recalled``/``expired`` still shown); 404 if the
  lot is unknown.
* ``GET /01/{gtin}/21/{serial}``: the stamp resolved through the issued ranges that contain the serial's index.
* ``GET /01/{gtin}``: the product (name, rating, producer); 404 if unknown.
* The Digital Link 1.1 convenience names (``/gtin/../lot/../ser/..``) work too; GTIN-8/12/13 are read as GTIN-14.
* ``GET /ping`` (plain ``pong``: the benchmark baseline) and ``GET /healthz`` (the database answers).

Representations (content negotiation, ``Vary: Accept, Accept-Language``)
-------------------------------------------------------------------------
* HTML (default; ``linkType=gs1:pip``): Vietnamese first, ``?lang=en`` or ``Accept-Language`` for English.
* JSON (``Accept: application/json`` or ``?linkType=gs1:traceability``): :func:`trace_json`, contract
  ``ocop-trace/scan/1`` documented in docs/SCANS.md.
* ``?linkType=gs1:certificationInfo``: the rating and the growing areas' certifications, as JSON.
* GS1 linkset (``?linkType=all`` or ``Accept: application/linkset+json``): ``application/linkset+json`` per
  RFC 9264 and the GS1-Conformant Resolver standard (``anchor``, ``itemDescription``, link types as
  ``https://gs1.org/voc/...`` URIs).

Scan events
-----------
Every GET of a stamp (a serial in the path) that shows a verdict produces an ``ocop.scan.Scan`` to
``ocop.events.scans`` keyed by serial: time, coarse region (``?region=`` or the ``X-OCOP-Region`` header), location
rounded to 0.1° (``?geo=lat,lon``, ``?lat=&lon=`` or the ``X-OCOP-Geo`` header), ``client_hash`` = salted SHA-256
of client IP and user agent, and the verdict shown. The request never waits for the broker: values go to a bounded
in-memory queue drained by one background thread (:class:`ScanEmitter`); if the queue is full the scan is dropped
and counted (the page matters more than the statistic). A repeat of the same (client, serial, region, place) within
``dedupe_seconds`` (a reload, the language toggle) is not sent again.

Hostile input
-------------
The path is read from the raw request bytes and parsed by :meth:`qr.digital_link.DigitalLink.parse` (strict
percent-decoding, GS1 character set 82, check digits); anything else is a 400 page (or JSON) naming the bad part,
in Vietnamese. Path > 512 bytes or query > 1024 bytes: 414; more than 16 query parameters: 400. Scan routes are rate
limited per client (token bucket keyed by the client hash, ``settings.scan_rate_per_minute``): 429 with
``Retry-After``. A read-side failure is a 503 with ``Retry-After``, never a stack trace.
"""

from __future__ import annotations

import hashlib
import logging
import math
import queue
import re
import threading
import time
import uuid
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from consumers import store as store_mod
from consumers.web import i18n
from consumers.web.verdict import Verdict, unverifiable, verdict
from ocop_trace import observability
from qr.digital_link import DigitalLink, DigitalLinkError
from qr.serials import StampSigner, Verification
from schemas import topics

log = logging.getLogger("ocop.web.scan")

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

CONTRACT = "ocop-trace/scan/1"
MAX_PATH_BYTES = 512
MAX_QUERY_BYTES = 1024
MAX_PARAMS = 16
MAX_UA = 512
MAX_ANCESTORS = 16
GS1_VOC = "https://gs1.org/voc/"
LINKSET_CONTEXT = "https://ref.gs1.org/standards/resolver/linkset-context"
JOURNEY_ORDER = ("harvest", "receive", "transform", "inspect", "package", "ship", "sell", "recall")
ANCESTOR_STEPS = frozenset({"harvest", "receive", "transform", "inspect", "ship"})
_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,15}")
_NUM = re.compile(r"-?[0-9]{1,3}(?:\.[0-9]{1,12})?")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
}


# ---------------------------------------------------------------------------------------------------------------
# rate limiting
# ---------------------------------------------------------------------------------------------------------------


class TokenBucket:
    """Per-key token buckets: ``rate_per_minute`` tokens a minute, bursts up to ``capacity`` (default: the rate).

    ``take(key)`` returns 0.0 when a token was taken, else the seconds until one is available. Keys are kept in
    LRU order and at most ``max_keys`` of them (a flood of new keys evicts the oldest, full-bucket ones first in
    practice). Thread-safe."""

    def __init__(self, rate_per_minute: float, capacity: float | None = None, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = max(float(rate_per_minute), 0.0) / 60.0
        self.capacity = float(capacity if capacity is not None else max(rate_per_minute, 1))
        self.max_keys = max_keys
        self.clock = clock
        self._b: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        now = self.clock()
        with self._lock:
            tokens, last = self._b.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._b[key] = (tokens - 1.0, now)
                self._b.move_to_end(key)
                wait = 0.0
            else:
                self._b[key] = (tokens, now)
                self._b.move_to_end(key)
                wait = math.inf if self.rate <= 0 else (1.0 - tokens) / self.rate
            while len(self._b) > self.max_keys:
                self._b.popitem(last=False)
        return wait


# ---------------------------------------------------------------------------------------------------------------
# scan events, off the request path
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class EmitterStats:
    queued: int = 0
    sent: int = 0
    dropped: int = 0
    failed: int = 0
    deduped: int = 0


class ScanEmitter:
    """A bounded queue of scan values and one daemon thread handing them to the producer (``wait=False``).

    ``emit`` never blocks: a full queue drops the value (counted in ``stats.dropped``). The producer's own
    ``send`` may block on metadata while the broker is away; that happens on this thread, never a request's."""

    def __init__(self, producer: Any, *, maxsize: int = 10_000, dedupe_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.producer = producer
        self.stats = EmitterStats()
        self.dedupe_seconds = dedupe_seconds
        self.clock = clock
        self._q: queue.Queue = queue.Queue(maxsize=maxsize)
        self._recent: OrderedDict[tuple, float] = OrderedDict()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def enabled(self) -> bool:
        return self.producer is not None and not self._closed

    def _seen_recently(self, key: tuple) -> bool:
        if self.dedupe_seconds <= 0:
            return False
        now = self.clock()
        with self._lock:
            last = self._recent.get(key)
            self._recent[key] = now
            self._recent.move_to_end(key)
            while len(self._recent) > 50_000:
                self._recent.popitem(last=False)
        return last is not None and now - last < self.dedupe_seconds

    def emit(self, scan: dict) -> bool:
        """Queue a scan value; False if it was not queued (no producer, a recent duplicate, or the queue is full)."""
        if not self.enabled:
            return False
        loc = scan.get("location") or {}
        if self._seen_recently((scan["client_hash"], scan["gtin"], scan["lot"], scan["serial"], scan.get("region"),
                                loc.get("lat"), loc.get("lon"))):
            self.stats.deduped += 1
            return False
        self._start()
        try:
            self._q.put_nowait(scan)
        except queue.Full:
            self.stats.dropped += 1
            return False
        self.stats.queued += 1
        return True

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="ocop-scan-emitter", daemon=True)
                    self._thread.start()

    def _target(self) -> Any:
        """The producer to call: an ``EventProducer``, or the real one behind the server's ``LazyProducer``
        (created here, on this thread, the first time a scan is sent)."""
        p = self.producer
        if not hasattr(p, "send_value") and hasattr(p, "get"):
            p = p.get()
        return p

    def _run(self) -> None:
        while True:
            scan = self._q.get()
            try:
                if scan is None:
                    return
                self._target().send_value(topics.SCANS, scan["serial"], scan, wait=False)
                self.stats.sent += 1
            except Exception:  # a bad value or a closed producer: log, count, keep serving
                self.stats.failed += 1
                log.exception("scan event not sent (serial %r)", scan.get("serial") if scan else None)
            finally:
                self._q.task_done()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until queued values are handed to the producer and the producer flushed (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._q.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        if self.producer is not None and self.stats.sent:
            try:
                self._target().flush(max(deadline - time.monotonic(), 0.1))
            except Exception:
                log.exception("producer flush failed")
                return False
        return not self._q.unfinished_tasks

    def close(self, timeout: float = 5.0) -> None:
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        if self._thread is not None:
            try:
                self._q.put_nowait(None)
            except queue.Full:
                pass


def client_hash(salt: str, ip: str | None, user_agent: str | None) -> str:
    """Salted SHA-256 of the client's IP and user agent: a stable pseudonym, never the address itself."""
    h = hashlib.sha256()
    for part in (salt, ip or "", (user_agent or "")[:MAX_UA]):
        h.update(part.encode("utf-8", "replace"))
        h.update(b"\x1f")
    return h.hexdigest()[:32]


def round_location(lat: float, lon: float) -> dict | None:
    """A point rounded to 0.1° (about 11 km): enough to tell provinces apart, not enough to find a home."""
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return {"lat": round(lat, 1) + 0.0, "lon": round(lon, 1) + 0.0}


def parse_location(text_: str | None) -> dict | None:
    if not text_ or len(text_) > 64:
        return None
    parts = text_.replace(";", ",").split(",")
    if len(parts) != 2 or not all(_NUM.fullmatch(p.strip()) for p in parts):
        return None
    return round_location(float(parts[0]), float(parts[1]))


def parse_region(text_: str | None) -> str | None:
    if text_ and _REGION.fullmatch(text_.strip()):
        return text_.strip()
    return None


# ---------------------------------------------------------------------------------------------------------------
# request parsing
# ---------------------------------------------------------------------------------------------------------------


class BadRequest(Exception):
    def __init__(self, status: int, part: str, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.part, self.code, self.reason = status, part, code, reason


def _raw_target(request: Request) -> tuple[str, str]:
    """(raw path, raw query) as sent, ASCII only, within the size limits."""
    raw_path = request.scope.get("raw_path") or request.scope.get("path", "").encode("utf-8", "surrogateescape")
    raw_query = request.scope.get("query_string") or b""
    if len(raw_path) > MAX_PATH_BYTES:
        raise BadRequest(414, "path", "too_long", f"path is {len(raw_path)} bytes, at most {MAX_PATH_BYTES}")
    if len(raw_query) > MAX_QUERY_BYTES:
        raise BadRequest(414, "query", "too_long", f"query is {len(raw_query)} bytes, at most {MAX_QUERY_BYTES}")
    try:
        path, query = raw_path.decode("ascii"), raw_query.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest(400, "uri", "not_ascii", "the request target has raw non-ASCII bytes") from None
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in path + query):
        raise BadRequest(400, "uri", "bad_uri", "control characters or spaces in the request target")
    if "?" in path:  # some clients send the query inside raw_path
        path, _, extra = path.partition("?")
        query = query or extra
    return path, query


def _query(query: str) -> dict[str, str]:
    """Decoded query parameters (first value wins), refusing floods."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_PARAMS, encoding="utf-8",
                          errors="strict")
    except ValueError:
        raise BadRequest(400, "query", "too_many", f"more than {MAX_PARAMS} query parameters") from None
    out: dict[str, str] = {}
    for k, v in pairs:
        out.setdefault(k, v)
    return out


def _q_of(accept: str, media: str) -> float:
    best = -1.0
    for part in accept.split(",")[:32]:
        mt, _, params = part.strip().partition(";")
        mt = mt.strip().lower()
        if mt == media or mt == "*/*" or (mt.endswith("/*") and media.startswith(mt[:-1])):
            q = 1.0
            for p in params.split(";"):
                p = p.strip()
                if p.startswith("q="):
                    try:
                        q = float(p[2:])
                    except ValueError:
                        q = 0.0
            specificity = 0.0 if mt == "*/*" else (0.001 if mt.endswith("/*") else 0.002)
            best = max(best, q + specificity if q > 0 else 0.0)
    return best


def negotiate(accept: str | None, link_type: str | None) -> str:
    """``html`` | ``json`` | ``linkset`` | ``cert`` from ``?linkType=`` first, then the Accept header."""
    lt = (link_type or "").strip()
    if lt.startswith(GS1_VOC):
        lt = "gs1:" + lt[len(GS1_VOC):]
    if lt == "all":
        return "linkset"
    if lt == "gs1:traceability":
        return "json"
    if lt == "gs1:certificationInfo":
        return "cert"
    accept = (accept or "")[:1024]
    if not accept:
        return "html"
    scores = {"html": _q_of(accept, "text/html"), "json": _q_of(accept, "application/json"),
              "linkset": _q_of(accept, "application/linkset+json")}
    if lt == "gs1:pip":
        return "html" if scores["json"] <= scores["html"] or scores["html"] > 0 else "json"
    best = max(scores.values())
    if best <= 0:
        return "html"
    for kind in ("html", "json", "linkset"):  # ties: the page
        if scores[kind] == best:
            return kind
    return "html"


# ---------------------------------------------------------------------------------------------------------------
# the view: everything a page or a program is told, built once per request
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Resolution:
    link: DigitalLink
    lot: str | None = None
    lot_view: dict | None = None
    verification: Verification | None = None
    range: dict | None = None
    flagged: bool = False
    verdict: Verdict | None = None
    product: dict | None = None
    ratings: list = field(default_factory=list)
    subject: dict | None = None
    ancestors: list = field(default_factory=list)  # store.lot() of each known ancestor, nearest first
    scans: dict | None = None


class Resolver:
    """Looks facts up in the read side and computes the verdict (pure :func:`verdict`)."""

    def __init__(self, store: Any, signer: StampSigner, today: Callable[[], date], *, cache_seconds: float = 2.0,
                 cache_size: int = 2048, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.signer = signer
        self.today = today
        self.cache_seconds = cache_seconds
        self.cache_size = cache_size
        self.clock = clock
        self._cache: OrderedDict[tuple, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, key: tuple, load: Callable[[], Any]) -> Any:
        """``load()`` at most once per ``cache_seconds`` per key: lot views, lineage and master data change only
        when the sink writes, and a page a second or two behind is fine; the per-serial facts (flag, scan count,
        issued range) are always read fresh."""
        if self.cache_seconds <= 0:
            return load()
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                self._cache.move_to_end(key)
                return hit[1]
        value = load()
        with self._lock:
            self._cache[key] = (now + self.cache_seconds, value)
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def resolve(self, link: DigitalLink) -> Resolution:
        r = Resolution(link)
        s = self.store
        if link.serial is not None and link.lot is None:
            self._resolve_serial_only(r)
        else:
            r.lot = link.lot
            if link.serial is not None:
                r.verification = self.signer.verify(link.gtin14, link.lot, link.serial)
        if r.lot is not None:
            r.lot_view, r.ancestors = self.cached(("lot", r.lot), lambda: self._lot_bundle(r.lot))
        if link.serial is not None:
            if r.verification is not None and r.verification.ok and r.lot is not None and r.range is None:
                r.range = s.stamp_range_for(link.gtin14, r.lot, r.verification.index)
            r.flagged = s.serial_flagged(link.serial)
            r.scans = s.scan_stats(link.serial)
        view = r.lot_view
        if view is not None:
            r.product = view.get("product") or None
            r.ratings = view.get("ratings") or []
            r.subject = view.get("subject")
        else:
            r.product, r.ratings, r.subject = self.cached(("product", link.gtin14),
                                                          lambda: self._product_bundle(link.gtin14))
        r.verdict = verdict(link, r.verification, view, r.range is not None, r.flagged, self.today())
        if not trusted(r) and view is not None:
            # an unissued or forged code: only the GTIN's own product and owner are shown, never the lot's story
            r.product, r.ratings, r.subject = self.cached(("product", link.gtin14),
                                                          lambda: self._product_bundle(link.gtin14))
        return r

    def _resolve_serial_only(self, r: Resolution) -> None:
        """``/01/{gtin}/21/{serial}``: try the lots whose issued ranges contain the serial's index."""
        link = r.link
        parts = self.signer.split(link.serial)
        if parts is None:
            r.verification = Verification(False, None, None, "malformed")
            return
        index = parts[0]
        candidates = store_mod.stamp_ranges_for_index(self.store, link.gtin14, index)
        last: Verification | None = None
        for rng in candidates:
            try:
                v = self.signer.verify(link.gtin14, rng["lot"], link.serial)
            except ValueError:  # a lot that is not a valid AI 10 value cannot be a stamp's lot
                continue
            if v.ok:
                r.lot, r.verification, r.range = rng["lot"], v, rng
                return
            last = v
        if last is not None:  # issued ranges hold this index, but the tag fits none of their lots
            r.verification = last
        else:
            r.verification = unverifiable(index)

    def _product_bundle(self, gtin14: str) -> tuple[dict | None, list, dict | None]:
        s = self.store
        product = s.product(gtin14)
        ratings = s.ratings(gtin14) if product else []
        owner = (product or {}).get("owner_subject_id")
        return product, ratings, (s.subject(owner) if owner else None)

    def _lot_bundle(self, lot: str) -> tuple[dict | None, list[dict]]:
        """(the lot's view with ``ancestor_recalls``, its known ancestors' views nearest first), or (None, [])."""
        view = self.store.lot(lot)
        if view is None:
            return None, []
        try:
            lineage = self.store.lineage(lot, max_depth=MAX_ANCESTORS)
        except SQLAlchemyError:
            raise
        except Exception:  # lineage is a nice-to-have on the page
            log.exception("lineage of %r", lot)
            return dict(view, ancestor_recalls=[]), []
        ancestors, recalls = [], []
        for item in lineage.get("ancestors", [])[:MAX_ANCESTORS]:
            if not item.get("known"):
                continue
            anc = self.store.lot(item["lot"])
            if anc is None:
                continue
            ancestors.append(anc)
            if anc.get("status") == "recalled":
                rec = (anc.get("record") or {}).get("recall") or {}
                recalls.append({"lot": item["lot"], "recall_reason": rec.get("reason") or anc.get("recall_reason"),
                                "recall_event_id": rec.get("event_id") or anc.get("recall_event_id")})
        return dict(view, ancestor_recalls=recalls), ancestors


def _facility_names(r: Resolution, store: Any) -> Callable[[str | None], dict | None]:
    known: dict[str, dict] = {}
    for view in (r.lot_view, *r.ancestors):
        for f in (view or {}).get("facilities") or []:
            known[f["facility_id"]] = f

    def look(fid: str | None) -> dict | None:
        if not fid:
            return None
        if fid not in known:
            try:
                known[fid] = store.facility(fid) or {"facility_id": fid, "name": None}
            except SQLAlchemyError:
                known[fid] = {"facility_id": fid, "name": None}
        f = known[fid]
        return {"id": fid, "name": f.get("name"), "kind": f.get("kind"), "address": f.get("address") or None,
                "lat": f.get("lat"), "lon": f.get("lon")}

    return look


def _journey(r: Resolution, store: Any) -> tuple[list[dict], list[dict]]:
    """(journey steps oldest first, inspections) of the lot and its ancestors; voided steps left out."""
    look = _facility_names(r, store)
    area_names = {a["area_code"]: a.get("name") for v in (r.lot_view, *r.ancestors) for a in (v or {}).get("areas") or []}
    steps: dict[str, dict] = {}
    inspections: dict[str, dict] = {}
    views = [(r.lot_view, True)] + [(a, False) for a in r.ancestors]
    for view, own in views:
        if not view:
            continue
        record = view.get("record") or {}
        lot = record.get("lot") or view.get("lot")
        for s in record.get("steps") or []:
            t = s.get("event_type")
            if s.get("voided") or t == "void" or s["event_id"] in steps:
                continue
            if not own and t not in ANCESTOR_STEPS:
                continue
            detail = s.get("detail") or ""
            place = look(s.get("facility"))
            dest = None
            if t == "ship" and detail.startswith("→ "):
                dest = look(detail[2:].strip())
            elif t == "sell" and detail.startswith("@ "):
                place = look(detail[2:].strip()) or place
            q = s.get("quantity") or None
            step = {
                "event_id": s["event_id"], "step": t, "occurred_at": s.get("occurred_at"), "lot": lot,
                "facility": place, "destination": dest, "quantity": q, "units": s.get("units"), "detail": detail,
            }
            if t == "harvest" and " @ " in detail:  # "<crop> @ <area code>" (streams.fold.STEP_DETAIL)
                crop, _, code = detail.rpartition(" @ ")
                step["crop"], step["area_code"] = crop, code
                step["area"] = f"{area_names[code]} ({code})" if area_names.get(code) else code
            steps[s["event_id"]] = step
        for ins in record.get("inspections") or []:
            inspections.setdefault(ins["event_id"], {**ins, "lot": lot})

    def key(x: dict) -> tuple:
        at = store_mod.parse_instant(x.get("occurred_at"))
        return (at.timestamp() if at else 0.0, JOURNEY_ORDER.index(x["step"]) if x["step"] in JOURNEY_ORDER else 99,
                x["event_id"])

    return sorted(steps.values(), key=key), sorted(inspections.values(), key=_key_ins)


def _key_ins(x: dict) -> tuple:
    at = store_mod.parse_instant(x.get("occurred_at"))
    return (at.timestamp() if at else 0.0, x.get("event_id") or "")


def _rating(r: Resolution) -> dict | None:
    record = (r.lot_view or {}).get("record") or {}
    rating = record.get("rating")
    if rating is None and r.lot_view is None and r.ratings:
        # a product page: its latest rating that is not a withdrawal
        latest = r.ratings[-1]
        if latest.get("action") != "withdrawn":
            rating = {k: latest.get(k) for k in ("stars", "score", "level", "decision_no", "decision_date",
                                                 "valid_from", "valid_to")}
    return dict(rating) if rating else None


def _origins(r: Resolution) -> list[dict]:
    view = r.lot_view or {}
    by_code: dict[str, dict] = {}
    for a in view.get("areas") or []:
        by_code[a["area_code"]] = a
    harvests: dict[str, list[str]] = {}
    for o in view.get("origins") or []:
        harvests.setdefault(o["area_code"], []).append(o["harvest_lot"])
    out = []
    for code in sorted(set(by_code) | set(harvests)):
        a = by_code.get(code) or {}
        out.append({
            "area_code": code, "name": a.get("name") or None, "crops": list(a.get("crops") or []),
            "area_ha": a.get("area_ha"),
            "location": [{"lat": p.get("lat"), "lon": p.get("lon")} for p in a.get("location") or []],
            "certifications": [dict(c) for c in a.get("certifications") or []],
            "revoked": bool(a.get("revoked")), "harvest_lots": sorted(harvests.get(code, [])),
        })
    return out


def trusted(r: Resolution) -> bool:
    """False for a stamp the system did not issue (forged, unknown): its lot's facts must not be shown as this
    package's (see consumers.web.verdict)."""
    return not (r.link.serial is not None and r.verdict is not None and r.verdict.code in ("forged", "unknown"))


def trace_json(r: Resolution, store: Any, *, uri: str, lang: str) -> dict:
    """The JSON contract ``ocop-trace/scan/1`` (documented in docs/SCANS.md): stable keys, new ones may be added.

    For a stamp that is ``forged`` or ``unknown`` only the product and producer the GTIN belongs to are given (who
    to contact); ``lot``, ``rating``, ``origins``, ``journey``, ``inspections``, ``scans`` and ``recall`` are
    null or empty: nothing ties the package to a lot."""
    v = r.verdict
    ok = trusted(r)
    view = (r.lot_view or {}) if ok else {}
    record = view.get("record") or {}
    product = r.product or record.get("product")
    journey, inspections = _journey(r, store) if ok else ([], [])
    packaging = record.get("packaging") or {}
    recall = None
    if v.recall:
        recall = {k: v.recall.get(k) for k in ("reason", "authority", "occurred_at", "scope", "target", "event_id")}
        recall["via"] = v.recall.get("via") or (v.recall.get("target") if v.recall.get("scope") == "lot"
                                                and v.recall.get("target") != r.lot else None)
        recall["advice"] = i18n.t("va.recalled", lang)
    scans = None
    if r.scans is not None and ok:
        scans = {"previous": r.scans["count"], "first_scan_at": r.scans["first_scan_at"],
                 "last_scan_at": r.scans["last_scan_at"]}
    subject = r.subject
    return {
        "contract": CONTRACT,
        "lang": lang,
        "link": {"uri": uri, "gtin": r.link.gtin14, "lot": r.link.lot, "serial": r.link.serial,
                 "expiry": r.link.expiry.isoformat() if r.link.expiry else None,
                 "resolved_lot": r.lot},
        "verdict": {
            "code": v.code,
            "stamp_checked": r.link.serial is not None,
            "title": i18n.t(f"v.{v.code}", lang),
            "symbol": VERDICT_STYLE[v.code][1],
            "message": _message(v, r, lang),
            "advice": i18n.t(f"va.{v.code}", lang),
            "reasons": [{"code": c, "text": _reason_text(c, v, r, lang)} for c in v.reasons],
            "expiry": v.expiry.isoformat() if v.expiry and ok else None,
        },
        "product": {
            "gtin": product.get("gtin"), "name_vi": product.get("name_vi"), "name_en": product.get("name_en") or None,
            "name": _product_name(product, lang), "ocop_group": product.get("ocop_group"),
            "net_content": product.get("net_content"),
        } if product else None,
        "lot": {
            "lot": r.lot, "status": view.get("status"), "production_date": packaging.get("production_date"),
            "expiry_date": packaging.get("expiry_date"), "units_packaged": view.get("units_packaged"),
        } if view else None,
        "rating": _rating(r) if ok else None,
        "producer": {
            "subject_id": subject.get("subject_id"), "name": subject.get("name"), "kind": subject.get("kind"),
            "address": subject.get("address") or None, "province_code": subject.get("province_code"),
        } if subject else None,
        "origins": _origins(r) if ok else [],
        "journey": [{**s, "label": i18n.t(f"step.{s['step']}", lang)} for s in journey],
        "inspections": [{"event_id": i.get("event_id"), "occurred_at": i.get("occurred_at"), "lab": i.get("lab"),
                         "result": i.get("result"), "certificate_no": i.get("certificate_no"), "lot": i.get("lot")}
                        for i in inspections],
        "scans": scans,
        "recall": recall,
        "links": {"self": uri, "linkset": _with_query(uri, linkType="all"),
                  "pip": _with_query(uri, linkType="gs1:pip")},
    }


def _product_name(product: dict | None, lang: str) -> str | None:
    if not product:
        return None
    if lang == "en" and product.get("name_en"):
        return product["name_en"]
    return product.get("name_vi")


def _message(v: Verdict, r: Resolution, lang: str) -> str:
    return i18n.t(f"vm.{v.code}", lang, lot=r.lot or r.link.lot or "",
                  expiry=i18n.fmt_date(v.expiry, lang) if v.expiry else "")


def _reason_text(code: str, v: Verdict, r: Resolution, lang: str) -> str:
    return i18n.t(f"r.{code}", lang, index=v.detail.get("index", ""), lot=r.lot or r.link.lot or "",
                  printed=i18n.fmt_date(v.detail.get("printed_expiry"), lang))


def _with_query(uri: str, **params: str) -> str:
    base, _, query = uri.partition("?")
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in params]
    pairs += list(params.items())
    return f"{base}?{urlencode(pairs)}" if pairs else base


def linkset(r: Resolution, *, uri: str, lang: str) -> dict:
    """A GS1 linkset (RFC 9264 JSON) for the identified item: where its page, data and certificates are."""
    product = r.product or ((r.lot_view or {}).get("record") or {}).get("product")
    name = _product_name(product, lang) or i18n.t("unknown.product", lang)
    anchor = uri.partition("?")[0]
    pip = [{"href": _with_query(anchor, linkType="gs1:pip", lang=lg), "title": f"{name} — {i18n.t('site', lg)}",
            "type": "text/html", "hreflang": [lg]} for lg in i18n.LANGS]
    trace = [{"href": _with_query(anchor, linkType="gs1:traceability"), "title": i18n.t("h.journey", lang),
              "type": "application/json", "hreflang": list(i18n.LANGS)}]
    cert = [{"href": _with_query(anchor, linkType="gs1:certificationInfo"), "title": i18n.t("h.rating", lang),
             "type": "application/json"}]
    entry: dict[str, Any] = {
        "anchor": anchor,
        "itemDescription": name,
        GS1_VOC + "defaultLink": [pip[0]],
        GS1_VOC + "pip": pip,
        GS1_VOC + "traceability": trace,
        GS1_VOC + "certificationInfo": cert,
    }
    if r.verdict is not None and r.verdict.recall:
        entry[GS1_VOC + "recallStatus"] = [{"href": _with_query(anchor, linkType="gs1:traceability"),
                                            "title": i18n.t("v.recalled", lang), "type": "application/json"}]
    return {"linkset": [entry]}


# ---------------------------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------------------------


# The product photo placeholder: a neutral drawing (a leaf over a package), inline so the page needs no request.
_PHOTO_SVG = (
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 88 88'>"
    "<rect width='88' height='88' rx='12' fill='#e8efe9'/>"
    "<rect x='20' y='38' width='48' height='34' rx='4' fill='#ffffff' stroke='#0e5a38' stroke-width='2.5'/>"
    "<path d='M20 48h48' stroke='#0e5a38' stroke-width='2.5'/>"
    "<path d='M44 16c10 2 16 9 15 19-9 1-17-4-18-13' fill='#6fae7f' stroke='#0e5a38' stroke-width='2'/>"
    "<path d='M44 36c0-8 2-14 8-19' fill='none' stroke='#0e5a38' stroke-width='2'/>"
    "<text x='44' y='64' font-family='sans-serif' font-size='10' font-weight='700' text-anchor='middle'"
    " fill='#0e5a38'>OCOP</text></svg>"
)
PHOTO = "data:image/svg+xml," + quote(_PHOTO_SVG, safe="")

VERDICT_STYLE = {
    # code: (css class, text symbol for programs and the <title>)
    "genuine": ("ok", "✔"),
    "forged": ("bad", "✖"),
    "suspicious": ("warn", "⚠"),
    "recalled": ("stop", "⛔"),
    "expired": ("late", "⌛"),
    "unknown": ("unknown", "?"),
    "info": ("info", "ℹ"),
}

# Banner icons as inline SVG (24 x 24, drawn with currentColor): the same on every phone, no emoji font needed.
_ICON_PATHS = {
    "ok": "<path d='M5 12.5l4.5 4.5L19 7.5'/>",
    "bad": "<path d='M6.5 6.5l11 11M17.5 6.5l-11 11'/>",
    "warn": "<path d='M12 3.5L2.5 20h19L12 3.5z'/><path d='M12 10v4.5'/><path d='M12 17.4v.1'/>",
    "stop": "<circle cx='12' cy='12' r='8.5'/><path d='M6 6l12 12'/>",
    "late": "<circle cx='12' cy='12' r='8.5'/><path d='M12 7.5V12l3 3'/>",
    "unknown": "<path d='M9.2 9.2a2.9 2.9 0 1 1 4.1 2.6c-.8.4-1.3 1-1.3 1.9v.6'/><path d='M12 17.4v.1'/>",
    "info": "<path d='M12 11v6'/><path d='M12 7.4v.1'/>",
}
ICONS = {k: ("<svg viewBox='0 0 24 24' width='30' height='30' fill='none' stroke='currentColor' stroke-width='2.6' "
             "stroke-linecap='round' stroke-linejoin='round' aria-hidden='true' focusable='false'>" + v + "</svg>")
         for k, v in _ICON_PATHS.items()}


def make_env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.globals["t"] = i18n.t
    env.globals["label"] = i18n.label
    env.globals["photo"] = PHOTO
    env.filters["d"] = i18n.fmt_date
    env.filters["num"] = i18n.fmt_number
    return env


@dataclass
class Page:
    env: Environment
    css: str
    tz: str

    def render(self, name: str, **ctx: Any) -> str:
        lang = ctx.get("lang", "vi")
        ctx.setdefault("css", self.css)
        ctx.setdefault("dt", lambda v: i18n.fmt_datetime(v, lang, self.tz))
        return self.env.get_template(name).render(**ctx)


def _lang_links(uri_path: str, params: dict[str, str], lang: str) -> dict:
    other = "en" if lang == "vi" else "vi"
    keep = {k: v for k, v in params.items() if k != "lang"}
    return {"other": other, "href": uri_path + "?" + urlencode({**keep, "lang": other})}


# ---------------------------------------------------------------------------------------------------------------
# the router
# ---------------------------------------------------------------------------------------------------------------


def scan_router(settings: Any, store: Any = None, producer: Any = None, *, today: Callable[[], date] | None = None,
                now: Callable[[], datetime] | None = None, dedupe_seconds: float = 60.0, cache_seconds: float = 2.0,
                emitter: ScanEmitter | None = None, limiter: TokenBucket | None = None) -> APIRouter:
    """The scan service's routes over ``store`` (a :class:`consumers.store.Store`; ``None``: one opened on
    ``settings.sqlalchemy_url`` and closed with the app), producing scans with ``producer`` (an
    :class:`producers.client.EventProducer` or the server's lazy one; ``None``: no scan events).

    ``cache_seconds``: how long a lot's view (record, lineage, master data) is reused between requests (0: never);
    the serial's own facts (suspicious flag, scan count, issued range) are always read fresh.
    ``today``/``now`` (local date/time) are for tests; the router's ``emitter``, ``limiter``, ``resolver`` and
    ``store`` attributes are exposed for tests and metrics."""
    owned_store = store is None
    if owned_store:
        store = store_mod.Store(settings.sqlalchemy_url)
    tz = i18n.zone(getattr(settings, "timezone", "Asia/Ho_Chi_Minh"))
    now = now or (lambda: datetime.now(tz))
    today = today or (lambda: now().date())
    salt = settings.client_salt.get_secret_value() if hasattr(settings.client_salt, "get_secret_value") \
        else str(settings.client_salt)
    default_lang = getattr(settings, "lang", "vi")
    base = str(getattr(settings, "resolver_base", "")).rstrip("/")
    signer = StampSigner.from_settings(settings)
    resolver = Resolver(store, signer, today, cache_seconds=cache_seconds)
    emitter = emitter or ScanEmitter(producer, dedupe_seconds=dedupe_seconds)
    limiter = limiter or TokenBucket(settings.scan_rate_per_minute)
    css = (STATIC / "scan.css").read_text(encoding="utf-8")
    page = Page(make_env(), css, getattr(settings, "timezone", "Asia/Ho_Chi_Minh"))

    @asynccontextmanager
    async def lifespan(_app: Any):
        yield
        emitter.close()
        if owned_store:
            store.close()

    router = APIRouter(lifespan=lifespan)
    router.emitter = emitter  # type: ignore[attr-defined]
    router.limiter = limiter  # type: ignore[attr-defined]
    router.resolver = resolver  # type: ignore[attr-defined]
    router.store = store  # type: ignore[attr-defined]

    def _headers(lang: str, extra: dict | None = None) -> dict:
        h = {**SECURITY_HEADERS, "Vary": "Accept, Accept-Language", "Cache-Control": "no-store",
             "Content-Language": lang}
        if extra:
            h.update(extra)
        return h

    def _error(request: Request, status: int, lang: str, kind: str, *, part: str = "", code: str = "",
               reason: str = "", body_key: str | None = None, retry_after: int | None = None, **kw: Any) -> Response:
        title = i18n.t(f"e.title.{status}", lang)
        body_key = body_key or f"e.body.{status}"
        where = i18n.t(f"e.where.{part}", lang) if part else ""
        why = i18n.t(f"e.why.{code}", lang) if code else ""
        if why == f"e.why.{code}":
            why = i18n.t("e.why.bad_value", lang)
        message = i18n.t(body_key, lang, where=where, why=why, seconds=retry_after or "", **kw)
        extra = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        headers = _headers(lang, extra)
        if kind in ("json", "linkset", "cert"):
            return JSONResponse({"contract": CONTRACT, "error": {"status": status, "title": title, "message": message,
                                                                 "part": part or None, "code": code or None,
                                                                 "reason": reason or None}},
                                status_code=status, headers=headers)
        raw = request.scope.get("raw_path") or b"/"
        safe_path = raw.decode("ascii") if raw.isascii() and len(raw) <= MAX_PATH_BYTES and \
            not any(b < 0x21 or b == 0x7F for b in raw) else "/"
        html = page.render("error.html", lang=lang, status=status, title=title, message=message,
                           hint=i18n.t("e.hint", lang) if status in (400, 404, 414) else None,
                           lang_link=_lang_links(safe_path.partition("?")[0], {}, lang))
        return HTMLResponse(html, status_code=status, headers=headers)

    def _prelude(request: Request) -> tuple[str, str, dict[str, str], str, str]:
        """(raw path, raw query, params, language, representation) — or BadRequest."""
        accept = request.headers.get("accept")
        lang = i18n.pick_lang(None, request.headers.get("accept-language"), default_lang)
        kind = negotiate(accept, None)
        try:
            path, query = _raw_target(request)
            params = _query(query)
        except BadRequest as e:
            e.lang, e.kind = lang, kind  # type: ignore[attr-defined]
            raise
        lang = i18n.pick_lang(params.get("lang"), request.headers.get("accept-language"), default_lang)
        kind = negotiate(accept, params.get("linkType"))
        return path, query, params, lang, kind

    def _client(request: Request) -> str:
        ip = request.client.host if request.client else None
        return client_hash(salt, ip, request.headers.get("user-agent"))

    def _scan_value(r: Resolution, request: Request, params: dict[str, str], client: str) -> dict | None:
        if r.link.serial is None or r.verdict is None or not r.verdict.is_stamp_verdict:
            return None
        region = parse_region(params.get("region")) or parse_region(request.headers.get("x-ocop-region"))
        loc = None
        if params.get("geo"):
            loc = parse_location(params["geo"])
        elif params.get("lat") and params.get("lon"):
            loc = parse_location(f"{params['lat']},{params['lon']}")
        if loc is None:
            loc = parse_location(request.headers.get("x-ocop-geo"))
        return {"scan_id": str(uuid.uuid4()), "serial": r.link.serial, "gtin": r.link.gtin14, "lot": r.lot or "",
                "scanned_at": now().isoformat(timespec="seconds"), "region": region, "location": loc,
                "client_hash": client, "verdict": r.verdict.code}

    async def resolve_route(request: Request) -> Response:
        lang, kind = default_lang, "html"
        try:
            client = _client(request)
            wait = limiter.take(client)
            try:
                path, query, params, lang, kind = _prelude(request)
            except BadRequest as e:
                lang, kind = getattr(e, "lang", lang), getattr(e, "kind", kind)
                raise
            if wait > 0:
                return _error(request, 429, lang, kind, retry_after=max(1, math.ceil(min(wait, 3600))))
            try:
                link = DigitalLink.parse(path + ("?" + query if query else ""))
            except DigitalLinkError as e:
                raise BadRequest(400, e.part, e.code, e.reason) from None
            try:
                r = await run_in_threadpool(resolver.resolve, link)
            except SQLAlchemyError:
                log.exception("read side unavailable")
                return _error(request, 503, lang, kind, retry_after=30)
            if link.serial is None and r.lot_view is None:
                if link.lot is not None:
                    return _error(request, 404, lang, kind, body_key="e.body.404.lot", lot=link.lot,
                                  gtin=link.gtin14)
                if r.product is None:
                    return _error(request, 404, lang, kind, body_key="e.body.404.product", gtin=link.gtin14)
            uri = (base or str(request.base_url).rstrip("/")) + link.path + (f"?{link.query}" if link.query else "")
            if request.method == "GET" and kind in ("html", "json"):
                scan = _scan_value(r, request, params, client)
                if scan is not None:
                    emitter.emit(scan)
            observability.verdict_seen(r.verdict)  # ocop_scan_verdicts_total{verdict}
            return await run_in_threadpool(_represent, r, kind, lang, uri, path, params)
        except BadRequest as e:
            return _error(request, e.status, lang, kind, part=e.part, code=e.code, reason=e.reason)

    def _represent(r: Resolution, kind: str, lang: str, uri: str, path: str, params: dict[str, str]) -> Response:
        link_header = {"Link": f'<{_with_query(uri, linkType="all")}>; rel="linkset"; '
                               f'type="application/linkset+json"'}
        if kind == "linkset":
            return JSONResponse(linkset(r, uri=uri, lang=lang), media_type="application/linkset+json",
                                headers=_headers(lang, {"Link": f'<{LINKSET_CONTEXT}>; '
                                                                f'rel="http://www.w3.org/ns/json-ld#context"; '
                                                                f'type="application/ld+json"'}))
        data = trace_json(r, store, uri=uri, lang=lang)
        if kind == "cert":
            body = {"contract": CONTRACT, "link": data["link"], "product": data["product"], "rating": data["rating"],
                    "certifications": [{"area_code": o["area_code"], **c} for o in data["origins"]
                                       for c in o["certifications"]]}
            return JSONResponse(body, headers=_headers(lang, link_header))
        if kind == "json":
            return JSONResponse(data, headers=_headers(lang, link_header))
        style, symbol = VERDICT_STYLE[data["verdict"]["code"]]
        lang_link = _lang_links(path, params, lang)
        html = page.render("scan.html", lang=lang, d=data, style=style, symbol=symbol, icon=ICONS[style],
                           lang_link=lang_link,
                           json_href=_with_query(path, linkType="gs1:traceability", lang=lang),
                           linkset_href=_with_query(path, linkType="all"),
                           stars=(data["rating"] or {}).get("stars") or 0, today=today())
        return HTMLResponse(html, headers=_headers(lang, link_header))

    for prefix in ("/01", "/gtin"):
        router.add_api_route(prefix, resolve_route, methods=["GET", "HEAD"], include_in_schema=False)
        router.add_api_route(prefix + "/{rest:path}", resolve_route, methods=["GET", "HEAD"],
                             summary="GS1 Digital Link resolver (stamp, lot or product page)")

    @router.get("/ping", response_class=PlainTextResponse, include_in_schema=False)
    async def ping() -> PlainTextResponse:
        return PlainTextResponse("pong")

    @router.get("/healthz")
    def healthz() -> JSONResponse:
        try:
            with store.read() as c:
                c.execute(text("SELECT 1"))
            db = "ok"
        except Exception as e:  # noqa: BLE001 — report, do not raise
            db = f"error: {type(e).__name__}"
        st = emitter.stats
        body = {"status": "ok" if db == "ok" else "degraded", "db": db,
                "scan_events": {"enabled": emitter.enabled, "queued": st.queued, "sent": st.sent,
                                "dropped": st.dropped, "failed": st.failed, "deduped": st.deduped}}
        return JSONResponse(body, status_code=200 if db == "ok" else 503, headers={"Cache-Control": "no-store"})

    return router
