"""The project's local Apache Kafka: one KRaft node (broker + controller) run from jars on Maven Central.

No Docker, no tarball: ``kafka/pom.xml`` lists the jars, ``mvn dependency:copy-dependencies`` puts them into
``settings.kafka_home / "libs"`` (:func:`ensure_jars`, skipped when the pom's hash marker matches), and
:func:`start` formats the storage once (``kafka.tools.StorageTool``) and runs ``kafka.Kafka`` in the background.

Everything the broker owns lives under ``settings.data_dir / "kafka"``::

    server.properties  log4j2.properties  cluster.id  broker.pid  server.log  data/

so a second instance (the test suite's) only needs another ``data_dir`` and other ports. When
``settings.bootstrap`` is set the cluster is somebody else's: ``start`` only checks that it answers.

Command line: ``ocop-trace broker up|down|status|fetch``.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import typer

from ocop_trace.config import PROJECT_ROOT, Settings, get_settings

KAFKA_POM = PROJECT_ROOT / "kafka" / "pom.xml"
MARKER_NAME = ".pom-sha256"
SERVER_MAIN = "kafka.Kafka"
STORAGE_TOOL_MAIN = "kafka.tools.StorageTool"

# Fast start on a small machine: serial GC, C1 only (the broker is I/O bound here), no JVM class verification.
JVM_FLAGS = (
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
    "-Dfile.encoding=UTF-8",
)

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
logger.logcleaner.name = kafka.log.LogCleaner
logger.logcleaner.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.kafkaconfig.name = kafka.server.KafkaConfig
logger.kafkaconfig.level = WARN
"""


class BrokerError(RuntimeError):
    """Anything that stops the local broker from starting, stopping or answering. The message is for people."""


@dataclass(frozen=True)
class BrokerInfo:
    bootstrap: str
    pid: int | None  # None for an external cluster
    external: bool = False
    already_running: bool = False
    startup_seconds: float | None = None
    log_file: Path | None = None


@dataclass(frozen=True)
class BrokerStatus:
    bootstrap: str
    running: bool  # our process is alive (always False for an external cluster)
    reachable: bool  # answers a metadata request
    pid: int | None = None
    external: bool = False
    stale_pid: int | None = None  # a pid file pointed at a dead (or foreign) process; the file was removed
    cluster_id: str | None = None


# --------------------------------------------------------------------------------------------------- paths
@dataclass(frozen=True)
class _Paths:
    home: Path

    @property
    def config(self) -> Path:
        return self.home / "server.properties"

    @property
    def log4j(self) -> Path:
        return self.home / "log4j2.properties"

    @property
    def cluster_id(self) -> Path:
        return self.home / "cluster.id"

    @property
    def pid(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    @property
    def data(self) -> Path:
        return self.home / "data"


def _paths(settings: Settings) -> _Paths:
    return _Paths(Path(settings.data_dir).resolve() / "kafka")


def libs_dir(settings: Settings) -> Path:
    return Path(settings.kafka_home).resolve() / "libs"


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    """An exclusive advisory lock (another `up`, a test session, setup.sh's fetch wait for it)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------------------- jars
def pom_hash(pom: Path = KAFKA_POM) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def jars_ready(settings: Settings, pom: Path = KAFKA_POM) -> bool:
    libs = libs_dir(settings)
    marker = libs / MARKER_NAME
    try:
        return marker.read_text().strip() == pom_hash(pom) and any(libs.glob("kafka_2.13-*.jar"))
    except FileNotFoundError:
        return False


def ensure_jars(settings: Settings, *, pom: Path = KAFKA_POM, quiet: bool = True) -> Path:
    """Make sure the Kafka jars are in ``kafka_home/libs``; fetch them with Maven when the pom changed."""
    libs = libs_dir(settings)
    if jars_ready(settings, pom):
        return libs
    with _locked(libs.with_name(".fetch.lock")):
        if jars_ready(settings, pom):  # fetched by whoever held the lock before us
            return libs
        return _fetch_jars(settings, pom, quiet)


def _fetch_jars(settings: Settings, pom: Path, quiet: bool) -> Path:
    libs = libs_dir(settings)
    if not pom.is_file():
        raise BrokerError(f"Không thấy {pom} / {pom} not found: cannot fetch the Kafka jars")
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Thiếu Maven (mvn) / Maven (mvn) is missing: run scripts/setup.sh")
    tmp = libs.with_name(f"libs.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [mvn, "-B", "-f", str(pom), "dependency:copy-dependencies", f"-DoutputDirectory={tmp}",
           "-DincludeScope=runtime"]
    if quiet:
        cmd.insert(1, "-q")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise BrokerError(f"Tải jar Kafka thất bại / fetching the Kafka jars failed (mvn exit {proc.returncode}):\n{tail}")
    (tmp / MARKER_NAME).write_text(pom_hash(pom) + "\n")
    shutil.rmtree(libs, ignore_errors=True)
    libs.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(libs)
    return libs


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise BrokerError("Thiếu Java / Java is missing (need a JRE 17+ on PATH): run scripts/setup.sh")
    return java


def _classpath(settings: Settings) -> str:
    return str(libs_dir(settings) / "*")


# ----------------------------------------------------------------------------------------------- processes
def _pid_alive(pid: int) -> bool:
    try:
        # reap it if it is our own child, so a finished broker does not linger as a zombie
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def _is_our_broker(pid: int, paths: _Paths) -> bool:
    """True when ``pid`` is a live ``kafka.Kafka`` running this data dir's config (guards against pid reuse)."""
    if not _pid_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, PermissionError):
        return False
    return SERVER_MAIN.encode() in argv and str(paths.config).encode() in argv


def _read_pid(paths: _Paths) -> int | None:
    try:
        return int(paths.pid.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _check_pid_file(paths: _Paths) -> tuple[int | None, int | None]:
    """(live pid, stale pid). A stale pid file (dead or foreign process) is removed."""
    pid = _read_pid(paths)
    if pid is None:
        if paths.pid.exists():  # garbage content
            paths.pid.unlink(missing_ok=True)
            return None, -1
        return None, None
    if _is_our_broker(pid, paths):
        return pid, None
    paths.pid.unlink(missing_ok=True)
    return None, pid


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------- readiness
def _split_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        out.append((host.strip("[]") or "127.0.0.1", int(port)))
    return out


def _tcp_open(bootstrap: str, timeout: float = 0.5) -> bool:
    for host, port in _split_bootstrap(bootstrap):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def probe(bootstrap: str, timeout: float = 2.0) -> dict | None:
    """One metadata round trip. The cluster description when a broker answers and is unfenced, else None."""
    if not _tcp_open(bootstrap, timeout=min(timeout, 0.5)):
        return None
    from kafka import KafkaAdminClient  # imported lazily: keeps `ocop-trace --help` fast

    ms = max(int(timeout * 1000), 200)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ocop-trace-probe",
                                 request_timeout_ms=ms, bootstrap_timeout_ms=ms)
    except Exception:  # noqa: BLE001 - not up yet, whatever the reason
        return None
    try:
        cluster = admin.describe_cluster()
    except Exception:  # noqa: BLE001
        return None
    finally:
        admin.close()
    brokers = [b for b in cluster.get("brokers", []) if not b.get("is_fenced")]
    return cluster if brokers else None


def wait_ready(bootstrap: str, timeout: float = 60.0, *, pid: int | None = None, log_file: Path | None = None,
               interval: float = 0.2) -> dict:
    """Wait until ``bootstrap`` answers a metadata request with an unfenced broker; return the cluster info.

    With ``pid``, give up at once (with the log's tail) when that process dies.
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if pid is not None and not _pid_alive(pid):
            raise BrokerError(f"Kafka đã dừng khi khởi động / Kafka exited during startup (pid {pid}). "
                              f"Log {log_file}:\n{_tail(log_file) if log_file else ''}")
        cluster = probe(bootstrap, timeout=max(min(remaining, 2.0), 0.2))
        if cluster is not None:
            return cluster
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            where = f" Log {log_file}:\n{_tail(log_file)}" if log_file else ""
            raise BrokerError(f"Kafka không trả lời / Kafka at {bootstrap} did not answer within {timeout:.0f}s.{where}")
        time.sleep(min(interval, remaining))


# ----------------------------------------------------------------------------------------------- lifecycle
def server_properties(settings: Settings, paths: _Paths) -> str:
    b, c = settings.broker_port, settings.controller_port
    return "\n".join([
        "# written by ocop_trace/broker.py on every start; edit there, not here",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{c}",
        "controller.listener.names=CONTROLLER",
        f"listeners=PLAINTEXT://127.0.0.1:{b},CONTROLLER://127.0.0.1:{c}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{b}",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={paths.data}",
        f"num.partitions={settings.partitions}",
        "default.replication.factor=1",
        "min.insync.replicas=1",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=10",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "transaction.state.log.num.partitions=10",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        # every topic is declared: the catalog via `ocop-trace topics create`, faust's internal ones by faust
        "auto.create.topics.enable=false",
        "delete.topic.enable=true",
        "num.network.threads=2",
        "num.io.threads=4",
        "num.recovery.threads.per.data.dir=1",
        "log.retention.hours=-1",
        "log.segment.bytes=67108864",
        "log.cleaner.dedupe.buffer.size=16777216",
        "",
    ])


def new_cluster_id() -> str:
    """A KRaft cluster id: a base64url (no padding) random UUID, as `kafka-storage.sh random-uuid` prints it, and like
    Kafka's own never one that starts with "-" (the storage tool would read it as an option: 1 start in 64 failed)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _format_storage(settings: Settings, paths: _Paths) -> None:
    if (paths.data / "meta.properties").exists():
        return
    if paths.cluster_id.exists():
        cluster_id = paths.cluster_id.read_text().strip()
    else:
        cluster_id = new_cluster_id()
        paths.cluster_id.write_text(cluster_id + "\n")
    cmd = [_java(), *JVM_FLAGS, "-Xmx256m", f"-Dlog4j2.configurationFile={paths.log4j}", "-cp",
           _classpath(settings), STORAGE_TOOL_MAIN, "format", "-t", cluster_id, "-c", str(paths.config),
           "--ignore-formatted"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise BrokerError(f"Định dạng lưu trữ Kafka thất bại / formatting Kafka storage failed:\n"
                          f"{(proc.stdout + proc.stderr).strip()[-2000:]}")


def _die_with_parent():
    """A preexec_fn asking Linux to SIGTERM the child when its parent dies (libc loaded before the fork)."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


def start(settings: Settings | None = None, *, wait: float = 60, die_with_parent: bool = False) -> BrokerInfo:
    """Start the local broker (idempotent) and wait until it answers; or just check an external cluster.

    ``die_with_parent``: the broker gets SIGTERM when the calling process dies (test sessions: no orphaned
    brokers after a crash). The CLI's ``up`` leaves it off: the broker outlives the command.
    """
    settings = settings or get_settings()
    if not settings.local_broker:
        t0 = time.monotonic()
        wait_ready(settings.bootstrap_servers, wait)
        return BrokerInfo(settings.bootstrap_servers, None, external=True, already_running=True,
                          startup_seconds=time.monotonic() - t0)

    paths = _paths(settings)
    paths.home.mkdir(parents=True, exist_ok=True)
    with _locked(paths.home / ".lock"):
        return _start_locked(settings, paths, wait, die_with_parent)


def _start_locked(settings: Settings, paths: _Paths, wait: float, die_with_parent: bool) -> BrokerInfo:
    bootstrap = settings.bootstrap_servers
    live, _stale = _check_pid_file(paths)
    if live is not None:
        wait_ready(bootstrap, wait, pid=live, log_file=paths.log)
        return BrokerInfo(bootstrap, live, already_running=True, log_file=paths.log)

    for name, port in (("broker_port", settings.broker_port), ("controller_port", settings.controller_port)):
        if not port_free(port):
            raise BrokerError(
                f"Cổng {port} đang bị chiếm / port {port} (OCOP_{name.upper()}) is already in use by another "
                f"process: stop it or choose another port, e.g. OCOP_{name.upper()}={port + 100}")

    ensure_jars(settings)
    java = _java()
    paths.data.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(server_properties(settings, paths))
    paths.log4j.write_text(_LOG4J2)
    _format_storage(settings, paths)

    if paths.log.exists():
        paths.log.replace(paths.log.with_suffix(".log.1"))
    cmd = [java, f"-Xms{settings.broker_heap}", f"-Xmx{settings.broker_heap}", *JVM_FLAGS,
           f"-Dlog4j2.configurationFile={paths.log4j}", f"-Dkafka.logs.dir={paths.home}",
           "-cp", _classpath(settings), SERVER_MAIN, str(paths.config)]
    t0 = time.monotonic()
    with open(paths.log, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=paths.home, close_fds=True,
                                preexec_fn=_die_with_parent() if die_with_parent else None)
    paths.pid.write_text(f"{proc.pid}\n")
    try:
        wait_ready(bootstrap, wait, pid=proc.pid, log_file=paths.log)
    except BaseException:
        _terminate(proc.pid, timeout=10)
        paths.pid.unlink(missing_ok=True)
        raise
    return BrokerInfo(bootstrap, proc.pid, startup_seconds=time.monotonic() - t0, log_file=paths.log)


def _terminate(pid: int, timeout: float) -> bool:
    """SIGTERM the broker's process group, wait up to ``timeout``, then SIGKILL. True if it had to be killed."""
    def send(sig: int) -> None:
        try:
            os.killpg(pid, sig)  # started with its own session: pgid == pid
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    send(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return False
        time.sleep(0.1)
    send(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def stop(settings: Settings | None = None, *, timeout: float = 30) -> str:
    """Stop the local broker. Returns a (bilingual) message of what happened."""
    settings = settings or get_settings()
    if not settings.local_broker:
        return f"Cụm Kafka bên ngoài, không dừng / external cluster {settings.bootstrap}: nothing to stop"
    paths = _paths(settings)
    live, stale = _check_pid_file(paths)
    if live is None:
        if stale is not None:
            return f"Đã xoá file pid cũ / removed a stale pid file (pid {stale} was not running Kafka); Kafka is down"
        return "Kafka không chạy / Kafka is not running"
    killed = _terminate(live, timeout)
    paths.pid.unlink(missing_ok=True)
    how = "SIGKILL sau khi hết hạn chờ / killed after timeout" if killed else "đã dừng / stopped"
    return f"Kafka {how} (pid {live})"


def status(settings: Settings | None = None, *, timeout: float = 2.0) -> BrokerStatus:
    settings = settings or get_settings()
    bootstrap = settings.bootstrap_servers
    if not settings.local_broker:
        cluster = probe(bootstrap, timeout)
        return BrokerStatus(bootstrap, False, cluster is not None, external=True,
                            cluster_id=(cluster or {}).get("cluster_id"))
    live, stale = _check_pid_file(_paths(settings))
    cluster = probe(bootstrap, timeout) if live is not None else None
    return BrokerStatus(bootstrap, live is not None, cluster is not None, pid=live, stale_pid=stale,
                        cluster_id=(cluster or {}).get("cluster_id"))


def describe(st: BrokerStatus) -> str:
    if st.external:
        return (f"Cụm Kafka bên ngoài trả lời / external Kafka is up at {st.bootstrap}" if st.reachable
                else f"Cụm Kafka bên ngoài không trả lời / external Kafka at {st.bootstrap} is not reachable")
    stale = (f"Đã xoá file pid cũ / removed a stale pid file (pid {st.stale_pid}). " if st.stale_pid else "")
    if st.running and st.reachable:
        return f"{stale}Kafka đang chạy / Kafka is up at {st.bootstrap} (pid {st.pid})"
    if st.running:
        return f"{stale}Kafka đang khởi động hoặc treo / Kafka process {st.pid} runs but does not answer at {st.bootstrap}"
    return f"{stale}Kafka không chạy / Kafka is down ({st.bootstrap})"


# ---------------------------------------------------------------------------------------------------- CLI
broker_app = typer.Typer(no_args_is_help=True, help="Kafka cục bộ / the local single-node Kafka (KRaft).")


def _fail(exc: BrokerError) -> None:
    typer.secho(str(exc), fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@broker_app.command()
def up(wait: float = typer.Option(60, help="Seconds to wait for the broker to answer.")) -> None:
    """Khởi động Kafka / start the local broker (no-op when it already runs)."""
    settings = get_settings()
    try:
        if settings.local_broker:
            _, stale = _check_pid_file(_paths(settings))
            if stale:
                typer.echo(f"Đã xoá file pid cũ / removed a stale pid file (pid {stale} was not running Kafka)")
        info = start(settings, wait=wait)
    except BrokerError as exc:
        _fail(exc)
        return
    if info.external:
        typer.echo(f"Dùng cụm Kafka bên ngoài, bỏ qua broker cục bộ / OCOP_BOOTSTRAP is set: local broker skipped; "
                   f"{info.bootstrap} answers")
    elif info.already_running:
        typer.echo(f"Kafka đã chạy sẵn / Kafka is already up at {info.bootstrap} (pid {info.pid})")
    else:
        typer.echo(f"Kafka đang chạy / Kafka is up at {info.bootstrap} (pid {info.pid}, "
                   f"{info.startup_seconds:.1f}s, log {info.log_file})")


@broker_app.command()
def down(timeout: float = typer.Option(30, help="Seconds to wait after SIGTERM before SIGKILL.")) -> None:
    """Dừng Kafka / stop the local broker."""
    typer.echo(stop(get_settings(), timeout=timeout))


@broker_app.command("status")
def status_cmd() -> None:
    """Trạng thái Kafka / is the broker up? Exit code 0 when it answers, 1 otherwise."""
    st = status(get_settings())
    typer.echo(describe(st))
    if not st.reachable:
        raise typer.Exit(1)


@broker_app.command()
def fetch() -> None:
    """Tải jar Kafka / fetch the Kafka jars with Maven (skipped when up to date)."""
    settings = get_settings()
    try:
        libs = ensure_jars(settings)
    except BrokerError as exc:
        _fail(exc)
        return
    typer.echo(f"Jar Kafka sẵn sàng / Kafka jars ready in {libs}")


if __name__ == "__main__":  # `python -m ocop_trace.broker fetch` (scripts/setup.sh): no need to import the whole CLI
    broker_app()
