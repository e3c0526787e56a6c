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

import asyncio
import hashlib
import logging
import math
import queue
import re
import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Hashable
from urllib.parse import parse_qsl, quote, urlencode

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from consumers import store as store_mod
from consumers.web import i18n
from consumers.web.cache import MISS, ReadCache
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
_CONTROL = re.compile(r"[\x00-\x20\x7f]")

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
                 clock: Callable[[], float] = time.monotonic, batch_pause: float = 0.005) -> None:
        self.producer = producer
        self.batch_pause = batch_pause
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
            if self.batch_pause and self._q.empty():
                # let the next values gather in the queue rather than waking this thread for each one: under load
                # a thread hand-off per scan costs the request path more than the send itself
                time.sleep(self.batch_pause)

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
    if _CONTROL.search(path) or _CONTROL.search(query):
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
    if (accept is None or len(accept) <= 256) and (link_type is None or len(link_type) <= 64):
        return _negotiate_cached(accept, link_type)  # phones send a handful of distinct headers
    return _negotiate(accept, link_type)


def _negotiate(accept: str | None, link_type: str | None) -> str:
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


_negotiate_cached = lru_cache(maxsize=1024)(_negotiate)


def pick_lang(query_lang: str | None, accept_language: str | None, default: str) -> str:
    """:func:`consumers.web.i18n.pick_lang`, remembered for the few distinct short headers phones send."""
    if (accept_language is None or len(accept_language) <= 128) and (query_lang is None or len(query_lang) <= 16):
        return _pick_lang_cached(query_lang, accept_language, default)
    return i18n.pick_lang(query_lang, accept_language, default)


_pick_lang_cached = lru_cache(maxsize=1024)(i18n.pick_lang)

#: DigitalLink.parse of a request target (pure, the result is frozen): a stamp is scanned more than once
parse_link = lru_cache(maxsize=8192)(DigitalLink.parse)


# ---------------------------------------------------------------------------------------------------------------
# the view: everything a page or a program is told, built once per request
# ---------------------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class LotBundle:
    """A lot's page data as one read saw it: its view (with ``ancestor_recalls``), its known ancestors' views
    nearest first, the facilities its journey names, and the lots it depends on (cache invalidation). Immutable
    once built; the per-language parts of the JSON are computed once and kept (``memo``)."""

    lot: str
    view: dict | None
    ancestors: list = field(default_factory=list)
    facilities: dict = field(default_factory=dict)
    deps: tuple = ()
    _memo: dict = field(default_factory=dict, repr=False)

    def memo(self, key: Hashable, make: Callable[[], Any]) -> Any:
        value = self._memo.get(key, _MISSING)
        if value is _MISSING:
            value = self._memo[key] = make()
        return value


_MISSING = object()


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
    ancestors: list = field(default_factory=list)  # the known ancestors' views, nearest first
    scans: dict | None = None
    bundle: LotBundle | None = None


class _Miss(Exception):
    """A memory-only resolution needs the database."""


def _step_facilities(view: dict) -> list[str]:
    """Facilities a lot's steps name: where they happened, ship destinations (``→ X``), points of sale (``@ X``)."""
    out = []
    for s in (view.get("record") or {}).get("steps") or []:
        out.append(s.get("facility"))
        detail = s.get("detail") or ""
        if s.get("event_type") == "ship" and detail.startswith("→ "):
            out.append(detail[2:].strip())
        elif s.get("event_type") == "sell" and detail.startswith("@ "):
            out.append(detail[2:].strip())
    return [f for f in out if f]


class Resolver:
    """Looks facts up in the read side through a :class:`consumers.web.cache.ReadCache` and computes the verdict
    (pure :func:`verdict`).

    :meth:`resolve_cached` answers from memory only (on the event loop; None when anything is missing or the cache
    is not fresh); :meth:`resolve` may read the database (in a worker thread): first the sink positions (at most
    once per ``fresh_seconds``), then whatever is missing, in one read transaction per kind: the lot's page data
    (``store.scan_lot_views``), the serial's facts and issued range (``store.serial_facts``, one statement), the
    product (``store.product_view``)."""

    def __init__(self, store: Any, signer: StampSigner, today: Callable[[], date], *, fresh_seconds: float = 0.2,
                 max_age: float = 300.0, cache_size: int = 50_000, lot_cache_size: int = 2048,
                 clock: Callable[[], float] = time.monotonic, topic_prefix: str = "") -> None:
        self.signer = signer
        self.today = today
        self.cache = ReadCache(store, topic_prefix=topic_prefix, fresh_seconds=fresh_seconds, max_age=max_age,
                               size=cache_size, lot_size=lot_cache_size, clock=clock)
        self._store = store
        # SQLite is a local file whose readers never wait for the writer (WAL): a serial's one statement (~0.2 ms)
        # costs less on the event loop than a hand-off to a thread and back
        self.inline_serial = getattr(store, "dialect", None) == "sqlite"

    @property
    def store(self) -> Any:
        return self._store

    @store.setter
    def store(self, value: Any) -> None:
        self._store = value
        self.cache.store = value

    def clear(self) -> None:
        self.cache.clear()

    def resolve_cached(self, link: DigitalLink) -> Resolution | None:
        """The resolution from memory alone, or None (then call :meth:`resolve` off the event loop)."""
        if not self.cache.is_fresh():
            return None
        try:
            return self._resolve(link, False)
        except _Miss:
            return None

    def resolve(self, link: DigitalLink) -> Resolution:
        self.cache.refresh()
        return self._resolve(link, True)

    def _get(self, io: bool, kind: str, key: Hashable, load: Callable[[], Any],
             deps: Callable[[Any], Any] | None = None) -> Any:
        if io:
            return self.cache.load(kind, key, load, deps)
        value = self.cache.get(kind, key)
        if value is MISS:
            raise _Miss
        return value

    def _resolve(self, link: DigitalLink, io: bool) -> Resolution:
        r = Resolution(link)
        if link.serial is not None and link.lot is None:
            self._resolve_serial_only(r, io)
        else:
            r.lot = link.lot
            if link.serial is not None:
                r.verification = self.signer.verify(link.gtin14, link.lot, link.serial)
        if r.lot is not None:
            lot = r.lot
            b = r.bundle = self._get(io, "lot", lot, lambda: self._lot_bundle(lot), lambda b: b.deps)
            r.lot_view, r.ancestors = b.view, b.ancestors
        if link.serial is not None:
            self._serial(r, io)
        view = r.lot_view
        if view is not None:
            r.product = view.get("product") or None
            r.ratings = view.get("ratings") or []
            r.subject = view.get("subject")
        else:
            r.product, r.ratings, r.subject = self._product(link.gtin14, io)
        r.verdict = verdict(link, r.verification, view, r.range is not None, r.flagged, self.today())
        if not trusted(r) and view is not None:
            # an unissued or forged code: only the GTIN's own product and owner are shown, never the lot's story
            r.product, r.ratings, r.subject = self._product(link.gtin14, io)
        return r

    def _product(self, gtin14: str, io: bool) -> tuple:
        return self._get(io, "product", gtin14, lambda: store_mod.product_view(self.store, gtin14))

    def _serial(self, r: Resolution, io: bool) -> None:
        """The serial's facts (open suspicious_copy alert, scans) and, for a valid tag, the issued range that holds
        its index: from memory, else ONE statement for whatever is missing."""
        link, v, cache = r.link, r.verification, self.cache
        rng: Any = None
        rk = None
        if v is not None and v.ok and r.lot is not None and r.range is None:
            rk = (link.gtin14, r.lot, v.index)
            rng = cache.get("range", rk)
            if rng is MISS and cache.get("norange", rk) is not MISS:
                rng = None
        facts = cache.get("serial", link.serial)
        if facts is MISS or rng is MISS:
            if not io and not self.inline_serial:
                raise _Miss
            cache.stats["misses"] += 1
            epochs = {k: cache.epoch(k) for k in ("serial", "range", "norange")}
            got = store_mod.serial_facts(self.store, link.serial, *(rk if rng is MISS else (None, None, None)))
            if rng is MISS:
                rng = got["range"]
                if rng is None:
                    cache.put("norange", rk, True, epochs["norange"])
                else:
                    cache.put("range", rk, rng, epochs["range"])
            facts = (got["flagged"], got["scans"])
            cache.put("serial", link.serial, facts, epochs["serial"])
        if rk is not None:
            r.range = rng
        r.flagged, r.scans = facts

    def _resolve_serial_only(self, r: Resolution, io: bool) -> None:
        """``/01/{gtin}/21/{serial}``: try the lots whose issued ranges contain the serial's index."""
        link = r.link
        parts = self.signer.split(link.serial)
        if parts is None:
            r.verification = Verification(False, None, None, "malformed")
            return
        index = parts[0]
        candidates = self._get(io, "index", (link.gtin14, index),
                               lambda: store_mod.stamp_ranges_for_index(self.store, link.gtin14, index))
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

    def _lot_bundle(self, lot: str) -> LotBundle:
        """The lot's page data in one read transaction (``store.scan_lot_views``), with ``ancestor_recalls``."""
        view, ancestors, facilities, deps = store_mod.scan_lot_views(self.store, lot, max_ancestors=MAX_ANCESTORS,
                                                                     facility_ids=_step_facilities)
        if view is None:
            return LotBundle(lot, None, deps=tuple(deps))
        recalls = []
        for anc in ancestors:
            if anc.get("status") == "recalled":
                rec = (anc.get("record") or {}).get("recall") or {}
                recalls.append({"lot": anc["lot"], "recall_reason": rec.get("reason") or anc.get("recall_reason"),
                                "recall_event_id": rec.get("event_id") or anc.get("recall_event_id")})
        return LotBundle(lot, dict(view, ancestor_recalls=recalls), ancestors, facilities, tuple(deps))


def _facility(known: dict, fid: str | None) -> dict | None:
    if not fid:
        return None
    f = known.get(fid) or {"facility_id": fid, "name": None}
    return {"id": fid, "name": f.get("name"), "kind": f.get("kind"), "address": f.get("address") or None,
            "lat": f.get("lat"), "lon": f.get("lon")}


def _journey(b: LotBundle) -> tuple[list[dict], list[dict]]:
    """(journey steps oldest first, inspections) of the lot and its ancestors; voided steps left out."""
    known = b.facilities
    area_names = {a["area_code"]: a.get("name") for v in (b.view, *b.ancestors) for a in (v or {}).get("areas") or []}
    steps: dict[str, dict] = {}
    inspections: dict[str, dict] = {}
    views = [(b.view, True)] + [(a, False) for a in b.ancestors]
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
            place = _facility(known, s.get("facility"))
            dest = None
            if t == "ship" and detail.startswith("→ "):
                dest = _facility(known, detail[2:].strip())
            elif t == "sell" and detail.startswith("@ "):
                place = _facility(known, detail[2:].strip()) or place
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


def _product_json(product: dict | None, lang: str) -> dict | None:
    if not product:
        return None
    return {"gtin": product.get("gtin"), "name_vi": product.get("name_vi"), "name_en": product.get("name_en") or None,
            "name": _product_name(product, lang), "ocop_group": product.get("ocop_group"),
            "net_content": product.get("net_content")}


def _producer_json(subject: dict | None) -> dict | None:
    if not subject:
        return None
    return {"subject_id": subject.get("subject_id"), "name": subject.get("name"), "kind": subject.get("kind"),
            "address": subject.get("address") or None, "province_code": subject.get("province_code")}


def _lot_parts(r: Resolution, lang: str) -> dict:
    """The parts of the JSON that depend only on the lot's page data and the language: computed once per bundle
    and language and shared by every answer until the bundle is replaced (never mutate them)."""

    def make() -> dict:
        view = r.lot_view or {}
        record = view.get("record") or {}
        packaging = record.get("packaging") or {}
        journey, inspections = (r.bundle.memo("journey", lambda: _journey(r.bundle)) if r.bundle is not None
                                else ([], []))
        return {
            "product": _product_json(r.product or record.get("product"), lang),
            "lot": {"lot": r.lot, "status": view.get("status"), "production_date": packaging.get("production_date"),
                    "expiry_date": packaging.get("expiry_date"), "units_packaged": view.get("units_packaged")}
            if view else None,
            "rating": _rating(r),
            "producer": _producer_json(r.subject),
            "origins": _origins(r),
            "journey": [{**s, "label": i18n.t(f"step.{s['step']}", lang)} for s in journey],
            "inspections": [{"event_id": i.get("event_id"), "occurred_at": i.get("occurred_at"), "lab": i.get("lab"),
                             "result": i.get("result"), "certificate_no": i.get("certificate_no"),
                             "lot": i.get("lot")} for i in inspections],
        }

    if r.bundle is None or r.bundle.view is None:  # a product page: nothing worth keeping
        return make()
    return r.bundle.memo(("parts", lang), make)


def trace_json(r: Resolution, store: Any = None, *, uri: str, lang: str) -> dict:
    """The JSON contract ``ocop-trace/scan/1`` (documented in docs/SCANS.md): stable keys, new ones may be added.

    For a stamp that is ``forged`` or ``unknown`` only the product and producer the GTIN belongs to are given (who
    to contact); ``lot``, ``rating``, ``origins``, ``journey``, ``inspections``, ``scans`` and ``recall`` are
    null or empty: nothing ties the package to a lot. (``store`` is not used any more: the resolution carries
    everything, facilities included.)"""
    v = r.verdict
    ok = trusted(r)
    if ok:
        parts = _lot_parts(r, lang)
    else:
        parts = {"product": _product_json(r.product, lang), "lot": None, "rating": None,
                 "producer": _producer_json(r.subject), "origins": [], "journey": [], "inspections": []}
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
        "product": parts["product"],
        "lot": parts["lot"],
        "rating": parts["rating"],
        "producer": parts["producer"],
        "origins": parts["origins"],
        "journey": parts["journey"],
        "inspections": parts["inspections"],
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
    if len(uri) <= MAX_PATH_BYTES + 256:
        return _with_query_cached(uri, tuple(params.items()))
    return _with_pairs(uri, tuple(params.items()))


@lru_cache(maxsize=16384)
def _with_query_cached(uri: str, params: tuple) -> str:
    return _with_pairs(uri, params)


def _with_pairs(uri: str, params_: tuple) -> str:
    params = dict(params_)
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


class FastJSONResponse(Response):
    """JSON by orjson (UTF-8, compact, like Starlette's JSONResponse but several times faster on large pages)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


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
                      trim_blocks=True, lstrip_blocks=True, auto_reload=False)  # compiled once per process
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


@dataclass(frozen=True)
class _RouteTemplate:
    path: str


def _lang_links(uri_path: str, params: dict[str, str], lang: str) -> dict:
    other = "en" if lang == "vi" else "vi"
    keep = {k: v for k, v in params.items() if k != "lang"}
    return {"other": other, "href": uri_path + "?" + urlencode({**keep, "lang": other})}


# ---------------------------------------------------------------------------------------------------------------
# the router
# ---------------------------------------------------------------------------------------------------------------


def scan_router(settings: Any, store: Any = None, producer: Any = None, *, today: Callable[[], date] | None = None,
                now: Callable[[], datetime] | None = None, dedupe_seconds: float = 60.0, fresh_seconds: float = 0.2,
                cache_max_age: float = 300.0, clock: Callable[[], float] = time.monotonic, read_threads: int = 4,
                emitter: ScanEmitter | None = None, limiter: TokenBucket | None = None) -> APIRouter:
    """The scan service's routes over ``store`` (a :class:`consumers.store.Store`; ``None``: one opened on
    ``settings.sqlalchemy_url`` and closed with the app), producing scans with ``producer`` (an
    :class:`producers.client.EventProducer` or the server's lazy one; ``None``: no scan events).

    Caching (:mod:`consumers.web.cache`): answers come from memory validated against the sink's positions at most
    ``fresh_seconds`` old, so what is in SQL shows on the page within ``fresh_seconds``; ``cache_max_age`` bounds
    any entry's life (0: no cache at all); ``clock`` (monotonic seconds) is for tests. A request that needs the
    database runs its reads on one of ``read_threads`` threads; one answered from memory stays on the event loop.
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
    resolver = Resolver(store, signer, today, fresh_seconds=fresh_seconds, max_age=cache_max_age, clock=clock,
                        topic_prefix=getattr(settings, "topic_prefix", "") or "")
    emitter = emitter or ScanEmitter(producer, dedupe_seconds=dedupe_seconds)
    limiter = limiter or TokenBucket(settings.scan_rate_per_minute)
    css = (STATIC / "scan.css").read_text(encoding="utf-8")
    page = Page(make_env(), css, getattr(settings, "timezone", "Asia/Ho_Chi_Minh"))

    # the read side's worker threads (a miss: one transaction); lighter than anyio's to_thread per call
    reader = ThreadPoolExecutor(max_workers=read_threads, thread_name_prefix="ocop-scan-read")

    @asynccontextmanager
    async def lifespan(_app: Any):
        yield
        reader.shutdown(wait=False)
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
            error = {"status": status, "title": title, "message": message, "part": part or None,
                     "code": code or None, "reason": reason or None}
            return FastJSONResponse({"contract": CONTRACT, "error": error}, status_code=status, headers=headers)
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
        accept_language = request.headers.get("accept-language")
        lang = pick_lang(None, accept_language, default_lang)
        kind = negotiate(accept, None)
        try:
            path, query = _raw_target(request)
            params = _query(query)
        except BadRequest as e:
            e.lang, e.kind = lang, kind  # type: ignore[attr-defined]
            raise
        if params:
            lang = pick_lang(params.get("lang"), accept_language, default_lang)
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
                link = parse_link(path + ("?" + query if query else ""))
            except DigitalLinkError as e:
                raise BadRequest(400, e.part, e.code, e.reason) from None
            r = resolver.resolve_cached(link)  # memory only, on the loop: the common case
            if r is None:
                try:
                    r = await asyncio.get_running_loop().run_in_executor(reader, resolver.resolve, link)
                except SQLAlchemyError:
                    log.exception("read side unavailable")
                    return _error(request, 503, lang, kind, retry_after=30)
            if link.serial is None and r.lot_view is None:
                if link.lot is not None:
                    return _error(request, 404, lang, kind, body_key="e.body.404.lot", lot=link.lot,
                                  gtin=link.gtin14)
                if r.product is None:
                    return _error(request, 404, lang, kind, body_key="e.body.404.product", gtin=link.gtin14)
            lq = link.query
            uri = (base or str(request.base_url).rstrip("/")) + link.path + (f"?{lq}" if lq else "")
            if request.method == "GET" and kind in ("html", "json"):
                scan = _scan_value(r, request, params, client)
                if scan is not None:
                    emitter.emit(scan)
            observability.verdict_seen(r.verdict)  # ocop_scan_verdicts_total{verdict}
            return _represent(r, kind, lang, uri, path, params)  # no I/O: the resolution holds everything
        except BadRequest as e:
            return _error(request, e.status, lang, kind, part=e.part, code=e.code, reason=e.reason)

    def _represent(r: Resolution, kind: str, lang: str, uri: str, path: str, params: dict[str, str]) -> Response:
        link_header = {"Link": f'<{_with_query(uri, linkType="all")}>; rel="linkset"; '
                               f'type="application/linkset+json"'}
        if kind == "linkset":
            return FastJSONResponse(linkset(r, uri=uri, lang=lang), media_type="application/linkset+json",
                                headers=_headers(lang, {"Link": f'<{LINKSET_CONTEXT}>; '
                                                                f'rel="http://www.w3.org/ns/json-ld#context"; '
                                                                f'type="application/ld+json"'}))
        data = trace_json(r, uri=uri, lang=lang)
        if kind == "cert":
            body = {"contract": CONTRACT, "link": data["link"], "product": data["product"], "rating": data["rating"],
                    "certifications": [{"area_code": o["area_code"], **c} for o in data["origins"]
                                       for c in o["certifications"]]}
            return FastJSONResponse(body, headers=_headers(lang, link_header))
        if kind == "json":
            return FastJSONResponse(data, headers=_headers(lang, link_header))
        style, symbol = VERDICT_STYLE[data["verdict"]["code"]]
        lang_link = _lang_links(path, params, lang)
        day = today()
        lot_sections = Markup("")
        if trusted(r):  # the lot's sections: rendered once per lot view, language and day (templates/lot.html)
            def sections() -> Markup:
                return Markup(page.render("lot.html", lang=lang, d=data, today=day))

            b = r.bundle
            lot_sections = b.memo(("html", lang, day), sections) if b is not None and b.view is not None \
                else sections()
        html = page.render("scan.html", lang=lang, d=data, style=style, symbol=symbol, icon=ICONS[style],
                           lang_link=lang_link, lot_sections=lot_sections,
                           json_href=_with_query(path, linkType="gs1:traceability", lang=lang),
                           linkset_href=_with_query(path, linkType="all"),
                           stars=(data["rating"] or {}).get("stars") or 0, today=day)
        return HTMLResponse(html, headers=_headers(lang, link_header))

    def routed(template: str) -> Callable[[Request], Any]:
        marker = _RouteTemplate(template)

        async def endpoint(request: Request) -> Response:
            request.scope["route"] = marker  # the template for the metrics' route label (APIRoutes set their own)
            return await resolve_route(request)

        return endpoint

    # plain Starlette routes: the handler reads the raw request, there is nothing for FastAPI to inject or validate
    for prefix in ("/01", "/gtin"):
        for template in (prefix, prefix + "/{rest:path}"):
            router.add_route(template, routed(template), methods=["GET", "HEAD"], include_in_schema=False)

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
