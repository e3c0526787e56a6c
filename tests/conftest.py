"""Fixtures for the whole suite: a real Kafka broker and a real PostgreSQL server, started lazily.

Nothing starts unless a test asks for it, so ``pytest tests/unit`` needs neither. When a service cannot start the
fixture FAILS the test (never skips): a green run means the integration tests really ran.

- ``kafka_broker`` (session): a dedicated single-node KRaft broker from the project's jars, in a temp dir on random
  free ports, so it never touches the demo broker (``ocop-trace broker up``). ``OCOP_TEST_BOOTSTRAP=host:port``
  uses an existing cluster instead.
- ``postgres_server`` (session): a throw-away PostgreSQL cluster (Debian's binaries, ``initdb`` as the ``postgres``
  user when we run as root) on a random port, trust auth; yields a SQLAlchemy URL to database ``ocop``.
  ``OCOP_TEST_DATABASE_URL=postgresql+psycopg://...`` uses an existing server instead (it must allow CREATE
  DATABASE).
- ``pg_database_url`` (function): a fresh database per test. ``db_url``: parametrized sqlite / postgresql.
- ``topic_prefix`` (function): a unique ``t<8 hex>.`` prefix. ``settings_factory`` / ``settings`` /
  ``unit_settings``: a :class:`Settings` isolated from the developer's environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ocop_trace.config import Settings
from tests.helpers import free_port, free_ports, wait_until

# The developer's own OCOP_* variables (a real cluster, a PG url...) must not leak into the tests; the test knobs
# are OCOP_TEST_*. Done at import time so module-level code in test files sees the clean environment too.
_TEST_ENV = {k: v for k, v in os.environ.items() if k.startswith("OCOP_TEST_")}
for _k in [k for k in os.environ if k.startswith("OCOP_") and not k.startswith("OCOP_TEST_")]:
    del os.environ[_k]

UNREACHABLE_BOOTSTRAP = "127.0.0.1:9"  # the discard port: nothing listens, so unit tests never reach a broker


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tag tests by the services they use, so ``-m 'not kafka and not postgres'`` selects the fast ones."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "kafka_broker" in names:
            item.add_marker(pytest.mark.kafka)
        if names & {"postgres_server", "pg_database_url"}:
            item.add_marker(pytest.mark.postgres)


# ------------------------------------------------------------------------------------------------------ Kafka
@dataclass(frozen=True)
class KafkaBroker:
    bootstrap: str
    settings: Settings | None  # the broker's own settings (None for an external cluster)
    pid: int | None
    external: bool
    startup_seconds: float | None


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    from ocop_trace import broker

    external = _TEST_ENV.get("OCOP_TEST_BOOTSTRAP")
    if external:
        try:
            broker.wait_ready(external, 30)
        except broker.BrokerError as exc:
            pytest.fail(f"OCOP_TEST_BOOTSTRAP={external} does not answer: {exc}", pytrace=False)
        yield KafkaBroker(external, None, None, True, None)
        return

    data_dir = tmp_path_factory.mktemp("kafka-broker")
    last: Exception | None = None
    for _attempt in range(2):  # a random port may be taken between picking and binding: one retry
        bport, cport = free_ports(2)
        s = Settings(_env_file=None, bootstrap=None, data_dir=data_dir, broker_port=bport, controller_port=cport,
                     broker_heap="512m")
        try:
            info = broker.start(s, wait=120, die_with_parent=True)
            break
        except broker.BrokerError as exc:
            last = exc
    else:
        pytest.fail(f"the test Kafka broker did not start: {last}", pytrace=False)
    try:
        yield KafkaBroker(info.bootstrap, s, info.pid, False, info.startup_seconds)
    finally:
        broker.stop(s, timeout=30)


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


# ------------------------------------------------------------------------------------------------- PostgreSQL
def _pg_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    which = shutil.which("pg_ctl")
    if which:
        return Path(which).parent
    pytest.fail("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin): run scripts/setup.sh",
                pytrace=False)


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user in that case."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def _run(cmd: list[str], what: str, timeout: float = 120) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {(proc.stdout + proc.stderr).strip()[-1500:]}")


def _reap_orphaned_clusters(bindir: Path) -> None:
    """Stop and delete test clusters left by a test session that was killed (its owner pid is gone)."""
    for root in Path("/tmp").glob("ocop-test-pg-*"):
        try:
            owner = int((root / "owner.pid").read_text())
            os.kill(owner, 0)
            continue  # a live session (maybe a parallel run): not ours to touch
        except (FileNotFoundError, ValueError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        if (root / "data" / "postmaster.pid").exists():
            subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(root / "data"), "-m", "immediate", "-w",
                                         "-t", "30", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    external = _TEST_ENV.get("OCOP_TEST_DATABASE_URL")
    if external:
        yield external
        return

    bindir = _pg_bindir()
    _reap_orphaned_clusters(bindir)
    # not under pytest's tmp dir: that one is 0700 root, which the postgres user cannot enter
    root = Path(tempfile.mkdtemp(prefix="ocop-test-pg-", dir="/tmp"))
    (root / "owner.pid").write_text(str(os.getpid()))
    data, log = root / "data", root / "postgres.log"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    started = False
    try:
        try:
            _run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                               "-E", "UTF8", "--no-locale", "--no-sync"]), "initdb")
            last: Exception | None = None
            for _attempt in range(3):  # random port race: retry with another one
                port = free_port()
                opts = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
                        "-c full_page_writes=off -c max_connections=200")
                try:
                    _run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                                       "-o", opts, "start"]), "pg_ctl start")
                    started = True
                    break
                except RuntimeError as exc:
                    last = exc
            if not started:
                raise RuntimeError(f"{last}\n{log.read_text()[-1500:] if log.exists() else ''}")
            url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/ocop"
            wait_until(lambda: psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                                               connect_timeout=2).close() or True, 30, 0.1, "PostgreSQL answers")
            with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                                 autocommit=True) as conn:
                conn.execute("CREATE DATABASE ocop")
            make_url(url)  # a valid SQLAlchemy URL
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"the test PostgreSQL server did not start: {exc}", pytrace=False)
        yield url
    finally:
        if started:
            subprocess.run(_as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                                         "-t", "60", "stop"]), capture_output=True, timeout=90)
        shutil.rmtree(root, ignore_errors=True)


def _admin_conn(server_url: str):
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(server_url)
    return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname="postgres",
                           autocommit=True, connect_timeout=10)


@pytest.fixture
def pg_database_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database for one test (dropped afterwards)."""
    from sqlalchemy.engine import make_url

    name = f"t_{uuid.uuid4().hex[:12]}"
    with _admin_conn(postgres_server) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    try:
        with _admin_conn(postgres_server) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception:  # noqa: BLE001 - best effort: the whole cluster goes away at session end
        pass


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same store test on SQLite (a fresh file) and on PostgreSQL (a fresh database)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ocop.sqlite3'}"
    return request.getfixturevalue("pg_database_url")


@pytest.fixture
def store(db_url: str):
    """A migrated, empty read-side :class:`consumers.store.Store` on ``db_url`` (SQLite and PostgreSQL)."""
    from sqlalchemy import delete

    from consumers.store import Base, Store

    st = Store(db_url)
    st.migrate()
    with st.write() as c:  # a database may be handed to several tests: start empty
        for t in reversed(Base.metadata.sorted_tables):
            c.execute(delete(t))
    yield st
    st.close()


# --------------------------------------------------------------------------------------------------- settings
@pytest.fixture
def settings_factory(request: pytest.FixtureRequest, tmp_path: Path, topic_prefix: str) -> Callable[..., Settings]:
    """``settings_factory(kafka=True, **overrides)`` -> an isolated :class:`Settings`.

    Defaults: ``data_dir=tmp_path``, the test's ``topic_prefix``, SQLite under ``tmp_path``, in-memory faust
    tables; ``kafka=True`` points ``bootstrap`` at the test broker (started on first use), ``kafka=False`` at a
    port where nothing listens. No ``.env`` file, no OCOP_* variables.
    """

    def make(*, kafka: bool = True, **overrides) -> Settings:
        values: dict = {
            "data_dir": tmp_path,
            "topic_prefix": topic_prefix,
            "database_url": f"sqlite:///{tmp_path / 'ocop.sqlite3'}",
            "table_store": "memory://",
        }
        if "bootstrap" not in overrides:
            values["bootstrap"] = (request.getfixturevalue("kafka_broker").bootstrap if kafka
                                   else UNREACHABLE_BOOTSTRAP)
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    """Settings wired to the test Kafka broker (starts it on first use)."""
    return settings_factory()


@pytest.fixture
def unit_settings(settings_factory: Callable[..., Settings]) -> Settings:
    """Settings for tests without infrastructure (bootstrap points nowhere)."""
    return settings_factory(kafka=False)
