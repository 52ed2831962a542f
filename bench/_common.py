"""Shared helpers of the Postgres benchmarks: statistics, markdown tables, machine facts,
a throw-away benchmark database, CPU meters and a thread runner.

Nothing here touches the application's code; the scripts drive it only through its commands.
"""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = os.environ.get("PROMPTFORGE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


# -- statistics ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stats:
    """Median and spread of repeated measurements (p10/p90 interpolated, inclusive method)."""

    n: int
    median: float
    p10: float
    p90: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "Stats":
        values = sorted(float(v) for v in values)
        if not values:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan)
        if len(values) == 1:
            v = values[0]
            return cls(1, v, v, v, v, v)
        deciles = statistics.quantiles(values, n=10, method="inclusive")
        return cls(len(values), statistics.median(values), deciles[0], deciles[-1], values[0], values[-1])

    @property
    def spread_pct(self) -> float:
        """(p90 - p10) / median, in percent: how noisy the repetitions were."""
        return 100.0 * (self.p90 - self.p10) / self.median if self.median else float("nan")

    def cells(self, fmt: Callable[[float], str] | None = None) -> list[str]:
        """median, p10, p90, min, max formatted for a table row."""
        fmt = fmt or num
        return [fmt(self.median), fmt(self.p10), fmt(self.p90), fmt(self.min), fmt(self.max)]


STATS_HEADERS = ["median", "p10", "p90", "min", "max"]


def num(value: float) -> str:
    """Human formatting: thousands separators, fewer decimals for big numbers."""
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


def pct(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.1f}%"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "| " + " | ".join(headers) + " |"
    rule = "|" + "|".join("---" for _ in headers) + "|"
    body = ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


# -- machine facts ------------------------------------------------------------------------------
def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_facts(db_url: str | None = None) -> list[str]:
    """Bullet lines: date, git commit, CPU, memory, load, Python, library and Postgres versions."""
    import eventsourcing  # noqa: F401 - only for the version
    from importlib.metadata import version

    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    facts = [
        f"date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"git commit: {commit}{' (+ uncommitted changes)' if dirty else ''}",
        f"machine: {os.cpu_count()} cores ({_cpu_model()}), {mem_gb:.0f} GiB RAM, "
        f"load average at start {' / '.join(f'{x:.2f}' for x in os.getloadavg())} (shared with other jobs)",
        f"Python {platform.python_version()}, eventsourcing {version('eventsourcing')}, "
        f"psycopg {version('psycopg')}, SQLAlchemy {version('sqlalchemy')}",
    ]
    if db_url:
        with psycopg.connect(db_url, autocommit=True) as conn:
            server = conn.execute("SHOW server_version").fetchone()[0]
            settings = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]
                for name in ("synchronous_commit", "fsync", "shared_buffers", "max_connections")
            }
        facts.append(
            f"PostgreSQL {server} on 127.0.0.1 (same machine): "
            + ", ".join(f"{k}={v}" for k, v in settings.items())
        )
    return facts


# -- the benchmark database ---------------------------------------------------------------------
class BenchDatabase:
    """A dedicated database on the local server, created on enter and dropped on exit.

    `reuse=True` keeps an existing database (and its data); `keep=True` leaves it in place on exit.
    Schemas inside it separate the parts of one run (one event store + read models per schema)."""

    def __init__(self, name: str, *, keep: bool = False, reuse: bool = False, server: str = PG_SERVER):
        self.name = name
        self.keep = keep
        self.reuse = reuse
        self.server = server.rstrip("/")
        self.existed = False

    @property
    def url(self) -> str:
        return f"{self.server}/{self.name}"

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(f"{self.server}/postgres", autocommit=True, connect_timeout=5)

    def __enter__(self) -> "BenchDatabase":
        with self._admin() as conn:
            self.existed = bool(conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", (self.name,)).fetchone())
            if self.existed and not self.reuse:
                conn.execute(f'DROP DATABASE "{self.name}" WITH (FORCE)')
                self.existed = False
            if not self.existed:
                conn.execute(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *exc) -> None:
        if self.keep:
            print(f"kept database {self.name!r} (drop it with: dropdb -h 127.0.0.1 -U postgres {self.name})")
            return
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    # schemas ----------------------------------------------------------------------------------
    def has_schema(self, schema: str) -> bool:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return bool(conn.execute("SELECT 1 FROM pg_namespace WHERE nspname=%s", (schema,)).fetchone())

    def create_schema(self, schema: str | None = None) -> str:
        schema = schema or "b_" + uuid.uuid4().hex[:10]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        return schema

    def event_store_url(self, schema: str) -> str:
        return f"{self.url}?schema={schema}"

    def read_model_url(self, schema: str) -> str:
        return self.url.replace("postgresql://", "postgresql+psycopg://", 1) + f"?options=-csearch_path%3D{schema}"

    def settings(self, schema: str, data_dir: Path, pool_size: int = 10, **overrides):
        """Settings of a Container whose event store and read models live in `schema`."""
        from interfaces.settings import Settings

        base = dict(
            env="test", data_dir=data_dir, inprocess_projections=False, vectors_enabled=False, db_pool_size=pool_size,
            event_store_url=self.event_store_url(schema), read_model_url=self.read_model_url(schema),
        )
        base.update(overrides)
        return Settings(**base)


@contextmanager
def library_env(**extra: str):
    """Build containers whose eventsourcing environment has `extra` on top of what
    `interfaces.event_store.eventsourcing_env` derives from the URL (bench-only variants such as
    AGGREGATE_CACHE_MAXSIZE or POSTGRES_PRE_PING; the application's code is not changed)."""
    import interfaces.bootstrap as bootstrap

    original = bootstrap.eventsourcing_env

    def patched(url: str, pool_size: int = 20) -> dict[str, str]:
        env = original(url, pool_size)
        env.update(extra)
        return env

    bootstrap.eventsourcing_env = patched
    try:
        yield
    finally:
        bootstrap.eventsourcing_env = original


def sqlite_settings(data_dir: Path, **overrides):
    from interfaces.settings import Settings

    base = dict(
        env="test", data_dir=data_dir, inprocess_projections=False, vectors_enabled=False,
        event_store_url=f"sqlite:///{data_dir}/events.db", read_model_url=f"sqlite:///{data_dir}/readmodels.db",
    )
    base.update(overrides)
    return Settings(**base)


# -- CPU meters ---------------------------------------------------------------------------------
def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat (iowait counts as idle)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


class CpuMeter:
    """Wall time, this process's CPU time and the whole machine's busy share over a block.

    `client_cores`: CPU seconds of this Python process per wall second (1.0 = one core busy;
    the GIL keeps pure-Python work at or below ~1.0). `machine_busy`: share of all cores busy
    (Postgres, this process and anything else running on the box)."""

    def __enter__(self) -> "CpuMeter":
        self._busy0, self._total0 = _machine_jiffies()
        self._cpu0 = time.process_time()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self._t0
        self.cpu = time.process_time() - self._cpu0
        busy1, total1 = _machine_jiffies()
        total = total1 - self._total0
        self.machine_busy = (busy1 - self._busy0) / total if total else float("nan")
        self.client_cores = self.cpu / self.wall if self.wall else float("nan")


# -- threads ------------------------------------------------------------------------------------
@dataclass
class ThreadRun:
    wall: float
    cpu: float
    client_cores: float
    machine_busy: float
    errors: list[str]


def run_threads(workers: Sequence[Callable[[], None]]) -> ThreadRun:
    """Start one thread per worker, release them together, time until the last one finishes."""
    barrier = threading.Barrier(len(workers) + 1)
    errors: list[str] = []
    lock = threading.Lock()

    def body(work: Callable[[], None]) -> None:
        barrier.wait()
        try:
            work()
        except Exception as exc:  # reported, not raised: a benchmark run should finish
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=body, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    meter = CpuMeter()
    with meter:
        barrier.wait()
        for t in threads:
            t.join()
    return ThreadRun(meter.wall, meter.cpu, meter.client_cores, meter.machine_busy, errors)


# -- a trivial aggregate for the library's own save ceiling -------------------------------------
from eventsourcing.domain import Aggregate, event  # noqa: E402


class BenchTick(Aggregate):
    """One event, no attributes: `app.save(BenchTick())` is the cheapest save the library does."""

    @event("Created")
    def __init__(self) -> None:
        pass


def write_results(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"\nwrote {path}")
