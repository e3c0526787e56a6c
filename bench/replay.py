"""Replay: the auditor's replay rate (events/s) beside a bare kafka-python consume of the same topics.

    python -m bench.replay [--quick] [--events 100000]

Generates ``--events`` events (``producers.generator.generate``: master data and lot chains, a few rule-breaking),
produces them with ``producers.client.EventProducer.send_many`` onto a fresh topic prefix, then, on the same broker:

* baseline: a bare kafka-python ``KafkaConsumer`` (no group, manual assignment, the auditor's kafka-python fetch
  settings, CRC checks on) reading the supply and master topics from the beginning to the end offsets, touching each
  record's value;
* ``consumers.audit.replay.replay`` (read with aiokafka, decode + validate with ``streams.accept.accept``, fold with
  ``streams.fold.Projection`` into every record) as ``ocop-trace audit replay`` runs it (one process per CPU,
  no canonical hashes), and with a single process.

The baseline runs before and after the replays (mean used). Broker: ``OCOP_BOOTSTRAP`` or a throw-away local one.
Goal: ≥ 30,000 events/s.
"""

from __future__ import annotations

import os
import time
import uuid

from bench.common import (Run, create_catalog, goal, kafka, log, main_args, ratio, row, settings_for, si,
                          times)

SIZES = {"events": 100_000}
QUICK = {"events": 3_000}


def generated(n_events: int, seed: int = 3) -> list[dict]:
    """``n_events`` generated events (a chain is 13-15 events; the last ones are cut)."""
    from producers.generator import generate

    return generate(subjects=20, lots=max(1, n_events // 12), seed=seed)[:n_events]


def produce(settings, events: list[dict]) -> float:
    from producers.client import EventProducer

    t = time.perf_counter()
    with EventProducer(settings, linger_ms=20) as p:
        p.send_many(events)
    return time.perf_counter() - t


def bare_consume(settings) -> tuple[int, float]:
    """Every message of the supply and master topics with a bare KafkaConsumer (the auditor's fetch settings)."""
    from consumers.audit.replay import FETCH
    from kafka import KafkaConsumer, TopicPartition
    from schemas import topics

    c = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None, enable_auto_commit=False,
                      client_id="ocop-bench-bare", **FETCH)
    try:
        t = time.perf_counter()
        tps = [TopicPartition(spec.full(settings.topic_prefix), p) for spec in (topics.SUPPLY, topics.MASTER)
               for p in sorted(c.partitions_for_topic(spec.full(settings.topic_prefix)) or ())]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        todo = {tp for tp in tps if end[tp] > 0}
        n = size = 0
        while todo:
            for _tp, records in c.poll(timeout_ms=200).items():
                for r in records:
                    size += len(r.value)
                    n += 1
            todo = {tp for tp in todo if c.position(tp) < end[tp]}
        return n, time.perf_counter() - t
    finally:
        c.close()


def run(quick: bool = False, out: str | None = None, **override: int) -> dict:
    sizes = {**(QUICK if quick else SIZES), **{k: v for k, v in override.items() if v}}
    from consumers.audit.replay import replay

    with Run("replay", "Auditor replay (read + accept + fold) events/s", quick, out) as run_, kafka() as bootstrap:
        prefix = f"bench-replay-{uuid.uuid4().hex[:8]}."
        create_catalog(bootstrap, prefix)
        settings = settings_for(bootstrap, prefix, run_.dir)
        events = generated(sizes["events"])
        log(f"producing {len(events):,} events under {prefix}")
        produce_s = produce(settings, events)

        n1, b1 = bare_consume(settings)
        workers = os.cpu_count() or 1  # `ocop-trace audit replay` default (--workers 0: one per CPU)
        log(f"replay with {workers} process(es)")
        rep = replay(settings, workers=workers, hashes=False)
        rep_s, st = rep.stats.seconds, rep.stats
        log(f"  {st.messages:,} messages in {rep_s:.2f}s (read {st.read_seconds:.2f}s, fold {st.fold_seconds:.2f}s)")
        lots = st.lots
        del rep
        rep1 = replay(settings, workers=1, hashes=False)
        rep1_s, st1 = rep1.stats.seconds, rep1.stats
        log(f"  1 process: {rep1_s:.2f}s (read {st1.read_seconds:.2f}s, fold {st1.fold_seconds:.2f}s)")
        del rep1
        n2, b2 = bare_consume(settings)
        assert n1 == n2 == st.messages == len(events), (n1, n2, st.messages, len(events))

        rate = st.messages / rep_s
        rate1 = st1.messages / rep1_s
        bare = n1 / ((b1 + b2) / 2)
        g = goal("auditor replay", "≥ 30,000 events/s", rate, rate >= 30_000, "events/s")
        r = ratio(rate, bare)
        if sizes["events"] != SIZES["events"]:
            run_.note(f"{len(events):,} events (full size: {SIZES['events']:,})")
        run_.note(f"CRC checks on: aiokafka's (compiled) for the replay; kafka-python's for the baseline, "
                  f"{'in C (crc32c package)' if _crc32c_in_c() else 'in pure Python (no crc32c package)'}")
        return run_.finish(
            sizes={**sizes, "events_produced": len(events), "lots": lots, "workers": workers},
            figures={"replay_events_per_s": rate, "replay_1_process_events_per_s": rate1,
                     "read_s": st.read_seconds, "fold_s": st.fold_seconds, "read_1_process_s": st1.read_seconds,
                     "fold_1_process_s": st1.fold_seconds, "produce_events_per_s": len(events) / produce_s},
            baseline={"description": "bare kafka-python consume of the same topics (auditor's fetch settings), "
                                     "mean of a run before and one after the replays",
                      "figures": {"bare_consume_events_per_s": bare, "bare_before_s": b1, "bare_after_s": b2}},
            ratio={"replay_vs_bare": r, "replay_1_process_vs_bare": ratio(rate1, bare)},
            goals=[g],
            rows=[row(f"replay events/s ({workers} proc)", si(rate, "/s"), f"bare consume {si(bare, '/s')}",
                      times(r), "≥ 30 k/s", g["pass"]),
                  row("replay events/s (1 proc)", si(rate1, "/s"), f"bare consume {si(bare, '/s')}",
                      times(ratio(rate1, bare)))],
        )


def _crc32c_in_c() -> bool:
    from kafka.record import util

    return util.crc32c_c is not None


def main() -> None:
    a = main_args("replay", __doc__, SIZES)
    run(a.quick, a.out, **{k: getattr(a, k) for k in SIZES})


if __name__ == "__main__":
    main()
