"""The pipeline benchmark's baseline: a bare aiokafka consume → produce pass-through (no decoding, no state).

    python -m bench.passthrough --bootstrap HOST:PORT --group G --out-topic T IN_TOPIC [IN_TOPIC...]

One asyncio process, the same client library and durability as the faust worker (aiokafka, consumer group,
``acks=all``, offsets committed about every second): every message of the input topics is produced unchanged
(key, value, headers) to ``--out-topic``. It prints ``READY`` once it holds its partitions and runs until SIGTERM.
What is measured (by bench/pipeline.py) is the time from the first produce until every message is on the output
topic: the cost of moving the events through Kafka and one Python consumer/producer, with none of the work.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time


async def passthrough(bootstrap: str, group: str, inputs: list[str], output: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(*inputs, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                client_id="ocop-bench-passthrough")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                                client_id="ocop-bench-passthrough")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await consumer.start()
    await producer.start()
    try:
        ready = False
        last_commit = time.monotonic()
        pending = []
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=2000)
            if not ready and consumer.assignment():
                print("READY", flush=True)
                ready = True
            for _tp, msgs in batch.items():
                for m in msgs:
                    pending.append(await producer.send(output, m.value, key=m.key, headers=list(m.headers or ())))
            if pending and (len(pending) >= 5000 or not batch or time.monotonic() - last_commit > 1.0):
                await asyncio.gather(*pending)  # delivered (acks=all) before the offsets are committed
                pending.clear()
                await consumer.commit()
                last_commit = time.monotonic()
    finally:
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await producer.stop()
        await consumer.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--out-topic", required=True)
    ap.add_argument("inputs", nargs="+")
    a = ap.parse_args()
    asyncio.run(passthrough(a.bootstrap, a.group, a.inputs, a.out_topic))
    sys.exit(0)


if __name__ == "__main__":
    main()
