"""The topic catalog: the only place a topic name is spelled.

Every name gets the settings' ``topic_prefix`` (tests use a unique one). ``create_topics`` makes them idempotently.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import codec

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    value: str  # top-level Avro schema full name ("json" for the internal inbox)
    cleanup: str = "delete"  # "delete" | "compact"
    retention_ms: int = -1  # -1: kept forever
    partitions: int | None = None  # None: the settings' default
    doc: str = ""

    def full(self, prefix: str = "") -> str:
        return f"{prefix}{self.name}"

    def config(self) -> dict[str, str]:
        cfg = {"cleanup.policy": self.cleanup}
        if self.cleanup == "delete":
            cfg["retention.ms"] = str(self.retention_ms)
        return cfg


MASTER = TopicSpec("ocop.events.master", "entity id", codec.EVENT,
                   doc="Master data: subjects, growing areas, products, OCOP ratings, facilities. Every change is history.")
SUPPLY = TopicSpec("ocop.events.supply", "lot id", codec.EVENT,
                   doc="Supply-chain events (envelope + one payload). The history auditors replay.")
ACCEPTED = TopicSpec("ocop.events.accepted", "lot id or entity id", codec.EVENT,
                     doc="Events that passed validation, in canonical form, duplicates removed.")
SCANS = TopicSpec("ocop.events.scans", "serial", codec.SCAN, retention_ms=400 * DAY_MS,
                  doc="Consumer scans of stamps (time, coarse place, salted client hash, verdict shown).")
RECORDS = TopicSpec("ocop.records", "lot id", codec.LOT_RECORD, cleanup="compact",
                    doc="The traceability record of each lot (latest wins).")
STAMPS = TopicSpec("ocop.stamps", "lot id", codec.STAMP_RANGE,
                   doc="Issued stamp ranges; a range is a fact, never compacted away.")
STAMP_REQUESTS = TopicSpec("ocop.stamps.requests", "lot id", codec.STAMP_REQUEST,
                           doc="Requests for an extra run of stamps for a packaged lot.")
ALERTS = TopicSpec("ocop.alerts", "lot id or serial", codec.ALERT,
                   doc="Rule violations, copied-stamp suspicions, recalls.")
DLQ = TopicSpec("ocop.dlq", "original key", codec.DLQ_ENTRY,
                doc="Messages that could not be accepted: original bytes, headers, source and reason.")
CHECKPOINTS = TopicSpec("ocop.audit.checkpoints", "checkpoint id", codec.CHECKPOINT, partitions=1,
                        doc="Signed checkpoints of every hash-chain head.")

LOT_INBOX = TopicSpec("ocop.internal.lot-inbox", "lot id", "json",
                      doc="Internal to the lots agent: each lot's events, lineage updates from its parents, stamp "
                          "ranges, and master data broadcast to every partition (JSON).")

CATALOG: tuple[TopicSpec, ...] = (MASTER, SUPPLY, ACCEPTED, SCANS, RECORDS, STAMPS, STAMP_REQUESTS, ALERTS, DLQ,
                                  CHECKPOINTS, LOT_INBOX)
INPUTS: tuple[TopicSpec, ...] = (MASTER, SUPPLY)


def by_name(name: str) -> TopicSpec:
    for spec in CATALOG:
        if spec.name == name:
            return spec
    raise KeyError(f"no topic {name!r} in the catalog")


def create_topics(bootstrap: str, prefix: str = "", partitions: int = 6, replication: int = 1,
                  timeout_s: float = 30.0) -> dict[str, str]:
    """Create every catalog topic that does not exist yet. Returns ``{full name: "created" | "exists"}``."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ocop-trace-admin",
                             request_timeout_ms=int(timeout_s * 1000))
    try:
        existing = set(admin.list_topics())
        result: dict[str, str] = {}
        new = []
        for spec in CATALOG:
            name = spec.full(prefix)
            if name in existing:
                result[name] = "exists"
                continue
            new.append(NewTopic(name, spec.partitions or partitions, replication, topic_configs=spec.config()))
            result[name] = "created"
        if new:
            try:
                admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
            except TopicAlreadyExistsError:  # a concurrent creator won the race: that is fine
                pass
        return result
    finally:
        admin.close()
