"""The local Kafka broker (ocop_trace/broker.py): readiness, a real round trip, idempotent start, stale pid files,
ports in use, a full start/stop of a second instance, and the ``ocop-trace broker`` commands."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic

from ocop_trace import broker
from ocop_trace.config import PROJECT_ROOT, Settings
from tests.helpers import free_ports, wait_until


def _local(kafka_broker) -> Settings:
    if kafka_broker.external:
        pytest.skip("OCOP_TEST_BOOTSTRAP points at an external cluster: no local broker process to inspect")
    return kafka_broker.settings


def _isolated(tmp_path: Path, **kw) -> Settings:
    bport, cport = free_ports(2)
    values = {"data_dir": tmp_path, "broker_port": bport, "controller_port": cport, "bootstrap": None}
    values.update(kw)
    return Settings(_env_file=None, **values)


def _cli(settings: Settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``ocop-trace broker ...`` in a subprocess configured (via OCOP_* env) like ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCOP_")}
    env.update(OCOP_DATA_DIR=str(settings.data_dir), OCOP_KAFKA_HOME=str(settings.kafka_home),
               OCOP_BROKER_PORT=str(settings.broker_port), OCOP_CONTROLLER_PORT=str(settings.controller_port))
    if settings.bootstrap:
        env["OCOP_BOOTSTRAP"] = settings.bootstrap
    exe = Path(sys.executable).parent / "ocop-trace"
    return subprocess.run([str(exe), "broker", *args], capture_output=True, text=True, env=env, cwd=PROJECT_ROOT,
                          timeout=timeout)


# ------------------------------------------------------------------------------------------ the session broker
def test_broker_answers_metadata(kafka_broker):
    cluster = broker.wait_ready(kafka_broker.bootstrap, 10)
    assert cluster["cluster_id"]
    assert [b for b in cluster["brokers"] if not b["is_fenced"]]


def test_create_topic_produce_and_consume(kafka_broker, topic_prefix):
    topic = f"{topic_prefix}roundtrip"
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        wait_until(lambda: topic in admin.list_topics(), 10, message=f"topic {topic} listed")
    finally:
        admin.close()

    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    payload = "Tỏi đen Lý Sơn ★★★★".encode()
    producer.send(topic, key=b"lot-1", value=payload).get(timeout=30)
    producer.close()

    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_broker.bootstrap, group_id=f"g-{uuid.uuid4().hex[:6]}",
                             auto_offset_reset="earliest", consumer_timeout_ms=500)
    got: list = []
    try:
        def poll() -> bool:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(records)
            return bool(got)

        wait_until(poll, 30, interval=0, message="the produced message comes back")
    finally:
        consumer.close()
    assert [(r.key, r.value) for r in got] == [(b"lot-1", payload)]


def test_auto_topic_creation_is_off(kafka_broker, topic_prefix):
    """Every topic is declared (catalog or faust): a typo in a topic name must not silently create one."""
    if kafka_broker.external:
        pytest.skip("an external cluster has its own policy")
    props = (kafka_broker.settings.data_dir / "kafka" / "server.properties").read_text()
    assert "auto.create.topics.enable=false" in props


def test_start_again_is_a_no_op(kafka_broker):
    s = _local(kafka_broker)
    info = broker.start(s, wait=10)
    assert info.already_running and info.pid == kafka_broker.pid and info.bootstrap == kafka_broker.bootstrap
    st = broker.status(s)
    assert st.running and st.reachable and st.pid == kafka_broker.pid and st.cluster_id


def test_cli_up_twice_and_status(kafka_broker):
    s = _local(kafka_broker)
    for _ in range(2):
        res = _cli(s, "up")
        assert res.returncode == 0, res.stderr
        assert "Kafka is already up" in res.stdout and "Kafka đã chạy sẵn" in res.stdout
        assert str(kafka_broker.pid) in res.stdout
    res = _cli(s, "status")
    assert res.returncode == 0, res.stderr
    assert f"Kafka đang chạy / Kafka is up at {kafka_broker.bootstrap}" in res.stdout


def test_external_bootstrap_skips_the_local_broker(kafka_broker, tmp_path):
    s = Settings(_env_file=None, bootstrap=kafka_broker.bootstrap, data_dir=tmp_path)
    info = broker.start(s, wait=10)
    assert info.external and info.pid is None
    assert not (tmp_path / "kafka").exists()  # nothing local was prepared
    st = broker.status(s)
    assert st.external and st.reachable and not st.running
    res = _cli(s, "up")
    assert res.returncode == 0 and "local broker skipped" in res.stdout


# ------------------------------------------------------------------------------------ cheap failure handling
def test_port_in_use_is_a_clear_error(tmp_path):
    s = _isolated(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", s.broker_port))
        squatter.listen()
        with pytest.raises(broker.BrokerError, match=rf"port {s.broker_port} .*already in use"):
            broker.start(s, wait=5)
        res = _cli(s, "up", "--wait", "5")
    assert res.returncode == 1
    assert f"Cổng {s.broker_port} đang bị chiếm" in res.stderr and "already in use" in res.stderr
    assert not (tmp_path / "kafka" / "broker.pid").exists()


def test_stale_pid_file_is_detected_and_removed(tmp_path):
    s = _isolated(tmp_path)
    pidfile = tmp_path / "kafka" / "broker.pid"
    pidfile.parent.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pidfile.write_text(f"{dead.pid}\n")
    st = broker.status(s)
    assert not st.running and not st.reachable and st.stale_pid == dead.pid
    assert "stale pid file" in broker.describe(st)
    assert not pidfile.exists()

    # a live process that is not our Kafka (pid reuse) is stale too, and is never signalled
    pidfile.write_text(f"{os.getpid()}\n")
    msg = broker.stop(s)
    assert "stale pid file" in msg and str(os.getpid()) in msg
    assert not pidfile.exists()

    pidfile.write_text(f"{dead.pid}\n")
    res = _cli(s, "status")
    assert res.returncode == 1 and "stale pid file" in res.stdout and "Kafka is down" in res.stdout
    assert broker.stop(s) == "Kafka không chạy / Kafka is not running"


def test_wait_ready_gives_up_at_the_deadline():
    (port,) = free_ports(1)
    t0 = time.monotonic()
    with pytest.raises(broker.BrokerError, match="did not answer within"):
        broker.wait_ready(f"127.0.0.1:{port}", 1.0)
    assert time.monotonic() - t0 < 5


def test_jars_are_marked_with_the_pom_hash(kafka_broker):
    s = _local(kafka_broker)
    assert broker.jars_ready(s)
    t0 = time.monotonic()
    broker.ensure_jars(s)  # up to date: no Maven run
    assert time.monotonic() - t0 < 1


# -------------------------------------------------------------------------------- a second, short-lived broker
def test_full_lifecycle_of_a_second_broker(kafka_broker, tmp_path):
    """Start (format + run), start again, stop (SIGTERM), stop again, restart on the same data: the whole cycle."""
    _local(kafka_broker)  # jars are there; skip with an external cluster
    s = _isolated(tmp_path, broker_heap="256m")
    info = broker.start(s, wait=120, die_with_parent=True)
    try:
        assert not info.already_running and info.pid and info.startup_seconds is not None
        cluster_id = (tmp_path / "kafka" / "cluster.id").read_text().strip()
        assert broker.status(s).cluster_id == cluster_id
        assert broker.start(s, wait=10).already_running
    finally:
        msg = broker.stop(s)
    assert "stopped" in msg and str(info.pid) in msg
    assert not (tmp_path / "kafka" / "broker.pid").exists()
    assert not broker._pid_alive(info.pid)
    assert broker.stop(s) == "Kafka không chạy / Kafka is not running"
    st = broker.status(s)
    assert not st.running and not st.reachable

    again = broker.start(s, wait=120, die_with_parent=True)  # same data dir: no new format, same cluster id
    try:
        assert broker.status(s).cluster_id == cluster_id
    finally:
        broker.stop(s)
    assert not broker._pid_alive(again.pid)
