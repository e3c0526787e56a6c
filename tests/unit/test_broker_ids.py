"""The local broker's KRaft cluster id (ocop_trace/broker.py): the storage tool reads ``-t <id>``, so an id that
starts with "-" would be taken for an option and the broker would not start (base64url: 1 id in 64)."""

from __future__ import annotations

import base64
import uuid

from ocop_trace import broker


def test_cluster_ids_never_start_with_a_dash_and_are_base64url_uuids(monkeypatch):
    dashed = uuid.UUID(bytes=base64.urlsafe_b64decode("-" + "A" * 21 + "=="))
    fresh = iter([dashed, uuid.UUID(int=1)])
    monkeypatch.setattr(broker.uuid, "uuid4", lambda: next(fresh))
    assert broker.new_cluster_id() == base64.urlsafe_b64encode(uuid.UUID(int=1).bytes).decode().rstrip("=")
    monkeypatch.undo()
    for _ in range(2000):
        cid = broker.new_cluster_id()
        assert len(cid) == 22 and not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16
