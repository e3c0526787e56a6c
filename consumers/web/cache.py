"""The scan service's read cache: answers from memory, never older than ``fresh_seconds`` behind SQL.

Why it can be exact: nothing writes the read side but the sink, and the sink commits every batch together with its
new positions in ``sink_offsets`` (docs/READ_SIDE.md). So the positions are a version vector of the whole read
side, and rows that carry their source position (``lots``, ``alerts``) say exactly what a change touched.

* **Validation.** Before answering from memory, a request needs the positions to have been read within
  ``fresh_seconds`` (default 0.2 s). If not, the request (in a worker thread) reads them — one small statement,
  at most once per interval per process, whatever the load — and forgets what changed since the last read:

  ================  ======================================================================================
  topic changed     forgotten
  ================  ======================================================================================
  ``ocop.records``  the lot views that depend on a lot written since (its own or an ancestor's record;
                    ``lots.source_partition/source_offset`` ≥ the old position, index ``ix_lots_source``)
  ``ocop.alerts``   the serial facts of every serial whose alert was written since (``ix_alerts_source``)
  ``ocop.events.scans``  every serial's facts (scan counts: the ``scans`` table has no source position)
  ``ocop.stamps``   "no range holds this index" answers (issued ranges themselves are facts: kept)
  ``ocop.events.master``  every lot view and product (master data is rare and reaches every page)
  other / a position went back (rebuilt database)  everything
  ================  ======================================================================================

  So data committed to SQL at time *t* is on every page served after *t* + ``fresh_seconds``.
* **Kinds.** ``lot`` (a lot's page data: view, ancestors, facilities), ``product`` (a GTIN's product, ratings and
  owner), ``serial`` (open ``suspicious_copy`` alert, scan count, first and last scan), ``norange`` (no issued
  range of (GTIN, lot) holds the index), ``index`` (the ranges that hold an index, for ``/01/{gtin}/21/{serial}``),
  and ``range`` (the issued range that holds an index: a fact that never changes, kept until evicted).
* **Safety net.** Every entry but ``range`` is also reloaded after at most ``max_age`` (default 300 s; each entry
  lives a random 80-100 % of it, so entries filled together are not all reloaded together), for writes that did
  not come through the sink (an operator's manual fix) and for lots deleted by a tombstone (their rows are gone,
  so ``changed_since`` cannot name them). LRU-bounded: ``lot_size``
  lot views and products (tens of KiB each with their rendered parts), ``size`` entries of each small kind.
* **Races.** A load that overlaps an invalidation of its kind is used for that request but not kept (a per-kind
  epoch), so a view read just before a change can never outlive the change.

Thread-safe: lookups happen on the event loop, loads and validations in worker threads.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Hashable, Iterable

from consumers import store as store_mod
from schemas import topics

log = logging.getLogger("ocop.web.cache")

KINDS = ("lot", "product", "serial", "norange", "index", "range")
MISS = object()


class ReadCache:
    def __init__(self, store: Any, *, topic_prefix: str = "", fresh_seconds: float = 0.2, max_age: float = 300.0,
                 size: int = 50_000, lot_size: int = 2048, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.fresh_seconds = max(float(fresh_seconds), 0.0)
        self.max_age = float(max_age)
        self.sizes = {k: (lot_size if k in ("lot", "product") else size) for k in KINDS}
        self.clock = clock
        self.enabled = self.max_age > 0
        self.topic_kind = {spec.full(topic_prefix): spec.name for spec in
                           (topics.RECORDS, topics.ALERTS, topics.STAMPS, topics.SCANS, topics.MASTER)}
        self.positions: dict[tuple[str, int], int] | None = None
        self.checked_at = -math.inf
        self.stats = {"hits": 0, "misses": 0, "checks": 0, "invalidations": 0}
        self._maps: dict[str, OrderedDict] = {k: OrderedDict() for k in KINDS}
        self._epochs: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._dependents: dict[str, set] = {}  # lot → lot-view keys whose answer reads that lot
        self._flights: dict[tuple, _Flight] = {}
        self._random = random.Random().random
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()

    # --- freshness -----------------------------------------------------------------------------------------------
    def is_fresh(self) -> bool:
        """True if the positions were read within ``fresh_seconds`` (memory may answer; no I/O)."""
        return self.enabled and self.clock() - self.checked_at < self.fresh_seconds

    def refresh(self) -> None:
        """Read the sink positions unless fresh, and forget what changed since the last read (does I/O)."""
        if not self.enabled or self.is_fresh():
            return
        with self._refresh_lock:
            if self.is_fresh():
                return
            started = self.clock()
            s = self.store
            with s.read() as c:
                new = s.sink_offsets(c)
                old = self.positions
                plan = self._plan(old, new, c) if old is not None and new != old else None
            with self._lock:
                if plan is not None:
                    self._apply(plan)
                self.positions = new
                self.checked_at = started  # what was committed before the read is now visible
                self.stats["checks"] += 1

    def _plan(self, old: dict, new: dict, c: Any) -> dict:
        """What to forget, from the positions before and after (reads ``lots``/``alerts`` by source position)."""
        since: dict[str, dict[int, int]] = {}
        for key in old.keys() | new.keys():
            o, n = old.get(key), new.get(key)
            if o == n:
                continue
            kind = self.topic_kind.get(key[0])
            if n is None or (o is not None and n < o) or kind is None:
                return {"all": True}
            since.setdefault(kind, {})[key[1]] = o or 0
        plan: dict[str, Any] = {}
        if topics.RECORDS.name in since:
            rows = store_mod.changed_since(c, store_mod.LOTS, since[topics.RECORDS.name], ["lot"])
            plan["lots"] = None if rows is None else {r["lot"] for r in rows}
        if topics.ALERTS.name in since:
            rows = store_mod.changed_since(c, store_mod.ALERTS, since[topics.ALERTS.name], ["serial"])
            plan["serials"] = None if rows is None else {r["serial"] for r in rows if r["serial"]}
        plan["scans"] = topics.SCANS.name in since
        plan["stamps"] = topics.STAMPS.name in since
        plan["master"] = topics.MASTER.name in since
        return plan

    def _apply(self, plan: dict) -> None:
        """Forget per ``plan`` (under the lock)."""
        if plan.get("all"):
            for kind in KINDS:
                self._clear(kind)
            return
        if plan.get("master"):
            self._clear("lot")
            self._clear("product")
        elif "lots" in plan:
            if plan["lots"] is None:
                self._clear("lot")
            elif plan["lots"]:
                keys = set().union(*(self._dependents.pop(lot, ()) for lot in plan["lots"]))
                self._forget("lot", keys)
        if plan.get("scans") or ("serials" in plan and plan["serials"] is None):
            self._clear("serial")
        elif plan.get("serials"):
            self._forget("serial", plan["serials"])
        if plan.get("stamps"):
            self._clear("norange")
            self._clear("index")

    def _clear(self, kind: str) -> None:
        if self._maps[kind]:
            self._maps[kind].clear()
            self.stats["invalidations"] += 1
        if kind == "lot":
            self._dependents.clear()
        self._epochs[kind] += 1

    def _forget(self, kind: str, keys: Iterable[Hashable]) -> None:
        m = self._maps[kind]
        for k in keys:
            self._unlink(k, m.pop(k, None))
        self.stats["invalidations"] += 1
        self._epochs[kind] += 1

    def _unlink(self, key: Hashable, entry: tuple | None) -> None:
        for d in (entry[2] if entry is not None else ()):
            keys = self._dependents.get(d)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._dependents[d]

    def clear(self) -> None:
        """Forget everything, positions included (tests, benchmarks)."""
        with self._lock:
            self._apply({"all": True})
            self.positions = None
            self.checked_at = -math.inf

    # --- entries -------------------------------------------------------------------------------------------------
    def get(self, kind: str, key: Hashable) -> Any:
        """The cached value or :data:`MISS` (no I/O; expired entries are misses)."""
        if not self.enabled:
            return MISS
        hit = self._maps[kind].get(key)
        if hit is None or (kind != "range" and self.clock() >= hit[0]):
            return MISS
        self.stats["hits"] += 1
        return hit[1]

    def epoch(self, kind: str) -> int:
        return self._epochs[kind]

    def put(self, kind: str, key: Hashable, value: Any, epoch: int, deps: Iterable[str] = ()) -> None:
        """Keep ``value`` unless an invalidation of ``kind`` happened since ``epoch`` (read before loading)."""
        if not self.enabled:
            return
        with self._lock:
            if self._epochs[kind] != epoch:
                return
            m = self._maps[kind]
            deps = tuple(deps)
            self._unlink(key, m.get(key))
            m[key] = (self.clock() + self.max_age * (1.0 - 0.2 * self._random()), value, deps)  # expiry
            m.move_to_end(key)
            for d in deps:
                self._dependents.setdefault(d, set()).add(key)
            while len(m) > self.sizes[kind]:
                self._unlink(*m.popitem(last=False))

    def load(self, kind: str, key: Hashable, loader: Callable[[], Any],
             deps: Callable[[Any], Iterable[str]] | None = None) -> Any:
        """The cached value, else ``loader()`` (kept per :meth:`put`). Call :meth:`refresh` first.

        One load per key at a time: concurrent requests for the same missing key (the stamps of one lot, scanned
        together when the process is cold) wait for the first one's result instead of reading the same rows again,
        unless an invalidation of the kind happened meanwhile (then they load for themselves)."""
        value = self.get(kind, key)
        if value is not MISS:
            return value
        with self._lock:
            flight = self._flights.get((kind, key))
            owner = flight is None
            if owner:
                flight = self._flights[(kind, key)] = _Flight(self._epochs[kind])
        if not owner:
            if flight.done.wait(60) and flight.ok and self._epochs[kind] == flight.epoch:
                self.stats["hits"] += 1
                return flight.value
            return loader()
        self.stats["misses"] += 1
        try:
            value = loader()
            flight.value, flight.ok = value, True
            self.put(kind, key, value, flight.epoch, deps(value) if deps else ())
            return value
        finally:
            with self._lock:
                self._flights.pop((kind, key), None)
            flight.done.set()


class _Flight:
    """A load in progress: the epoch of its kind when it started, and its value once done."""

    __slots__ = ("epoch", "done", "ok", "value")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.done = threading.Event()
        self.ok = False
        self.value: Any = None
