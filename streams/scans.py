"""The scans agent: consumer scans -> copied-stamp suspicions on ``ocop.alerts`` (keyed by serial)."""

from __future__ import annotations

import faust

from ocop_trace import observability as obs
from ocop_trace.config import Settings
from schemas import codec, topics
from schemas.codec import CodecError
from streams.app import json_table, lookup
from streams import copydetect
from streams.accept import dlq_entry
from streams.validate import dead_letter, source_of


def register(app: faust.App, settings: Settings, t) -> None:
    th = copydetect.Thresholds(settings.copy_window_seconds, settings.copy_max_regions, settings.copy_max_devices)
    scan_codec, alert_codec = codec.codec(codec.SCAN), codec.codec(codec.ALERT)
    state = json_table(t, "scan-state")

    @app.agent(t[topics.SCANS], name="scans")
    async def scans_agent(stream):
        async for event in t.each(stream):
            try:
                scan = scan_codec.decode(event.value)
            except CodecError as e:
                src = source_of(event)
                await dead_letter(t, src, dlq_entry(src, e.kind, e.reason))
                continue
            key = f"{scan['gtin']}|{scan['lot']}|{scan['serial']}"
            st = lookup(state, key) or copydetect.new_state()
            reason = copydetect.observe(st, scan, th)
            if reason:
                await t.send(topics.ALERTS, scan["serial"].encode(), alert_codec.encode(
                    obs.alert_published(copydetect.suspicion_alert(scan, reason))))
            state[key] = st
