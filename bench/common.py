"""What every benchmark shares: the machine's description, load sampling, the result file, a broker, subprocesses.

A result file (``bench/results/<name>.json``) holds::

    name, title, quick, sizes           what ran and how big
    figures                              the measured numbers (units in the key names: _per_s, _ms, _s, _mib)
    baseline {description, figures}      the reference measured in the same run, on the same machine
    ratio                                figure / baseline (dimensionless; what to compare across machines)
    goals [{what, target, value, pass}]  the issue's goals; pass = every goal met (None: not measured)
    rows                                 the table lines ``ocop-trace bench`` prints and bench/README.md shows
    notes                                caveats (sizes scaled down, extrapolations, ...)
    machine, load, date, duration_s, command

The machine is shared with other work, so ``load`` records the 1-minute load average at the start, the end, and
sampled every few seconds during the run (mean and max): compare ratios, not raw figures, across runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
QUICK_DIR = ROOT / "var" / "bench" / "quick"
BENCHMARKS = ("stamps", "replay", "pipeline", "latency", "scan", "trace", "memory")


# ------------------------------------------------------------------------------------------------------ machine
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def kafka_broker_version() -> str | None:
    """The Apache Kafka version of the project's jars (``.kafka/libs/kafka_2.13-<v>.jar``)."""
    libs = ROOT / ".kafka" / "libs"
    for jar in sorted(libs.glob("kafka_2.13-*.jar")):
        return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")
    return None


def machine() -> dict:
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "kafka_broker": kafka_broker_version(),
        "kafka_python": _version("kafka-python"),
        "aiokafka": _version("aiokafka"),
        "faust_streaming": _version("faust-streaming"),
        "sqlalchemy": _version("SQLAlchemy"),
        "sqlite": sqlite3.sqlite_version,
        "uvicorn": _version("uvicorn"),
        "rocksdict": _version("rocksdict"),
    }


class LoadSampler:
    """The 1-minute load average at start, end and every ``interval`` seconds in between (a daemon thread)."""

    def __init__(self, interval: float = 5.0) -> None:
        self.interval = interval
        self.start = list(os.getloadavg())
        self.samples: list[float] = [self.start[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-load", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict:
        self._stop.set()
        end = list(os.getloadavg())
        self.samples.append(end[0])
        return {"start": [round(x, 2) for x in self.start], "end": [round(x, 2) for x in end],
                "mean_1min": round(statistics.fmean(self.samples), 2), "max_1min": round(max(self.samples), 2),
                "samples": len(self.samples), "cores": os.cpu_count()}


# ------------------------------------------------------------------------------------------------------ results
def percentiles(values: list[float], ps: tuple[float, ...] = (50, 90, 99)) -> dict[str, float]:
    """Nearest-rank percentiles (``p50``, ``p99``...) plus ``max``, ``mean`` and ``n``; empty input gives {}."""
    if not values:
        return {}
    v = sorted(values)
    out = {f"p{p:g}": v[min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))] for p in ps}
    out.update(max=v[-1], mean=statistics.fmean(v), n=len(v))
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def out_dir(quick: bool, out: str | Path | None = None) -> Path:
    """Full runs write to bench/results (committed); quick runs to var/bench/quick (not committed)."""
    return Path(out) if out else (QUICK_DIR if quick else RESULTS_DIR)


def command_line() -> str:
    return os.environ.get("OCOP_BENCH_COMMAND") or shlex.join([Path(sys.executable).name, *sys.argv])


class Run:
    """One benchmark run: ``with Run("stamps", quick) as run: ...; run.finish(...)`` writes the JSON."""

    def __init__(self, name: str, title: str, quick: bool, out: str | Path | None = None) -> None:
        self.name, self.title, self.quick = name, title, quick
        self.dir = out_dir(quick, out)
        self.notes: list[str] = []
        self.t0 = time.monotonic()
        self.date = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.load = LoadSampler()
        self.path = self.dir / f"{name}.json"

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.load._stop.set()

    def note(self, text: str) -> None:
        self.notes.append(text)
        log(f"note: {text}")

    def finish(self, *, sizes: dict, figures: dict, baseline: dict, ratio: dict, goals: list[dict],
               rows: list[dict], extra: dict | None = None) -> dict:
        checked = [g["pass"] for g in goals if g.get("pass") is not None]
        result = {
            "name": self.name,
            "title": self.title,
            "quick": self.quick,
            "sizes": sizes,
            "figures": _round(figures),
            "baseline": _round(baseline),
            "ratio": _round(ratio),
            "goals": _round(goals),
            "pass": (all(checked) if checked else None),
            "rows": rows,
            "notes": self.notes,
            "machine": machine(),
            "load": self.load.stop(),
            "date": self.date,
            "duration_s": round(time.monotonic() - self.t0, 1),
            "command": command_line(),
        }
        if extra:
            result["extra"] = _round(extra)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        log(f"wrote {self.path} (pass={result['pass']}, load {result['load']['mean_1min']} mean)")
        return result


def goal(what: str, target: str, value: float | None, ok: bool | None, unit: str = "") -> dict:
    return {"what": what, "target": target, "value": value, "unit": unit, "pass": ok}


def row(figure: str, value: str, baseline: str = "", ratio_: str = "", goal_: str = "",
        ok: bool | None = None) -> dict:
    return {"figure": figure, "value": value, "baseline": baseline, "ratio": ratio_, "goal": goal_, "pass": ok}


def _round(x: Any) -> Any:
    if isinstance(x, float):
        return round(x, 4) if abs(x) < 100 else round(x, 1)
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_round(v) for v in x]
    return x


def si(x: float | None, unit: str = "") -> str:
    """1234567 -> '1.23 M', 12345 -> '12.3 k'."""
    if x is None:
        return "–"
    for div, suffix in ((1e6, " M"), (1e3, " k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}{unit}"
    return f"{x:.3g} {unit}".rstrip()


def times(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}×"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------------ network
def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@contextlib.contextmanager
def kafka(tmp: Path | None = None) -> Iterator[str]:
    """A bootstrap address: ``OCOP_BOOTSTRAP`` if set, else a throw-away single-node broker from the project's jars
    (data under a temp folder, free loopback ports, killed with this process), stopped on exit."""
    from ocop_trace import broker
    from ocop_trace.config import Settings

    external = os.environ.get("OCOP_BOOTSTRAP")
    if external:
        broker.wait_ready(external, 60)
        yield external
        return
    with contextlib.ExitStack() as stack:
        base = Path(tmp) if tmp else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ocop-bench-kafka-")))
        last: Exception | None = None
        for _ in range(2):
            bport, cport = free_ports(2)
            s = Settings(_env_file=None, bootstrap=None, data_dir=base, broker_port=bport, controller_port=cport,
                         broker_heap="512m")
            try:
                t = time.monotonic()
                info = broker.start(s, wait=180, die_with_parent=True)
                log(f"broker up at {info.bootstrap} in {time.monotonic() - t:.1f}s")
                break
            except broker.BrokerError as e:
                last = e
        else:
            raise RuntimeError(f"benchmark broker did not start: {last}")
        try:
            yield info.bootstrap
        finally:
            broker.stop(s, timeout=30)


def settings_for(bootstrap: str, prefix: str, data_dir: Path, **kw: Any):
    from ocop_trace.config import Settings

    return Settings(_env_file=None, bootstrap=bootstrap, topic_prefix=prefix, data_dir=data_dir, **kw)


def create_catalog(bootstrap: str, prefix: str) -> None:
    from ocop_trace.config import Settings
    from schemas.topics import create_topics

    s = Settings(_env_file=None, bootstrap=bootstrap)
    create_topics(bootstrap, prefix, s.partitions, s.replication_factor)


# ------------------------------------------------------------------------------------------------ subprocesses
class Proc:
    """A child process in its own session (so stopping it stops its children), output to a log file."""

    def __init__(self, argv: list[str], log_file: Path, env: dict[str, str]) -> None:
        self.argv, self.log_file = argv, log_file
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith("OCOP_")}, **env,
                    "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Proc":
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=self.log_file.open("ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 2000) -> str:
        try:
            return self.log_file.read_bytes()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def rss_mib(self) -> dict[str, float]:
        """Resident memory (VmRSS) and its peak (VmHWM) of the process, MiB."""
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k.lower().replace("vm", "")] = int(v.split()[0]) / 1024
        return out

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ocop_env(bootstrap: str, prefix: str, data_dir: Path, **extra: Any) -> dict[str, str]:
    return {"OCOP_BOOTSTRAP": bootstrap, "OCOP_TOPIC_PREFIX": prefix, "OCOP_DATA_DIR": str(data_dir),
            **{k: str(v) for k, v in extra.items()}}


def start_worker(bootstrap: str, prefix: str, data_dir: Path, *, table_store: str = "rocksdb://",
                 timeout: float = 180, argv: list[str] | None = None, env: dict[str, str] | None = None) -> Proc:
    """``python -m ocop_trace.cli worker`` (as tests/workers.py runs it), ready = its log says so and its web
    server answers."""
    import urllib.request

    port = free_ports(1)[0]
    env = {**ocop_env(bootstrap, prefix, data_dir, OCOP_WORKER_WEB_PORT=port, OCOP_TABLE_STORE=table_store),
           **(env or {})}
    p = Proc(argv or [sys.executable, "-m", "ocop_trace.cli", "worker", "--loglevel", "info"],
             data_dir / "worker.log", env).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not p.alive():
            raise RuntimeError(f"worker exited: {p.tail()}")
        if b"Worker]: Ready" in p.log_file.read_bytes():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                return p
            except OSError:
                pass
        time.sleep(0.3)
    p.stop()
    raise RuntimeError(f"worker not ready within {timeout}s: {p.tail()}")


def start_sink(bootstrap: str, prefix: str, data_dir: Path, db_url: str) -> Proc:
    """``ocop-trace sink`` (continuous) as a subprocess, writing ``db_url``."""
    env = ocop_env(bootstrap, prefix, data_dir, OCOP_DATABASE_URL=db_url)
    return Proc([sys.executable, "-m", "ocop_trace.cli", "sink"], data_dir / "sink.log", env).start()


def group_lag(bootstrap: str, group: str, topics: list[str]) -> int | None:
    """Total lag of consumer group ``group`` on ``topics`` (None if the group has committed nothing yet)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ocop-bench-lag")
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="ocop-bench-lag", group_id=None)
    try:
        committed = admin.list_group_offsets(group).get(group) or {}
        tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(tps)
        if not committed:
            return None
        lag = 0
        for tp in tps:
            c = committed.get(tp)
            lag += ends[tp] - (c.offset if c is not None and c.offset >= 0 else 0)
        return lag
    finally:
        consumer.close()
        admin.close()


def topic_messages(bootstrap: str, prefix: str) -> dict[str, int]:
    """Messages written so far to every topic whose name starts with ``prefix`` (sum of end offsets), by the name
    without the prefix (catalog topics, faust changelogs and repartition topics alike)."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, client_id="ocop-bench-count")
    try:
        names = sorted(t for t in c.topics() if t.startswith(prefix))
        tps = [TopicPartition(t, p) for t in names for p in (c.partitions_for_topic(t) or ())]
        ends = c.end_offsets(tps)
        out: dict[str, int] = {}
        for tp, n in ends.items():
            key = tp.topic[len(prefix):]
            out[key] = out.get(key, 0) + n
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))
    finally:
        c.close()


def wait_for(fn, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f}s (last: {str(last)[:300]})")


def main_args(name: str, doc: str, sizes: dict[str, int], flags: dict[str, str] | None = None):
    """The command line of a benchmark module: ``--quick``, ``--out DIR``, one ``--<size>`` per size and the
    given boolean ``flags``."""
    import argparse

    ap = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=doc.strip().splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--out", default=None, help="result folder (default: bench/results, quick: var/bench/quick)")
    for k, v in sizes.items():
        ap.add_argument(f"--{k.replace('_', '-')}", dest=k, type=type(v), default=None, help=f"default {v}")
    for k, text in (flags or {}).items():
        ap.add_argument(f"--{k.replace('_', '-')}", dest=k, action="store_true", help=text)
    return ap.parse_args()
