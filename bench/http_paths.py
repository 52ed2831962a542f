"""The service as users hit it: HTTP throughput and latency of the hot paths, beside a bare ceiling.

Three servers run side by side on this machine, each a real process tree on a TCP port:

- **sqlite**: `promptforge serve` on the embedded default (SQLite event store and read models under
  a temp dir, projections in a thread of the API process, one uvicorn worker, vectors off);
- **postgres**: `promptforge serve --workers 2` on Postgres (event store + read models in a
  dedicated database, created here and dropped at the end) with Redis (rate limits) and a
  `promptforge worker` (dramatiq) running the projections, `PROMPTFORGE_DB_POOL_SIZE` small;
- **ceiling**: bench/ceiling_app.py, a bare FastAPI app under uvicorn with 2 workers: a GET that
  validates an HS256 JWT and answers ~1 KB of JSON, a POST that validates the JWT, parses a
  pydantic body and does one 1-row INSERT through psycopg (async pool) in the same database, and
  the **save ceiling**: a POST that does the same and then saves a one-event aggregate through an
  eventsourcing Application on the same Postgres database (`app.save()`, the library's table lock),
  from a sync endpoint as PromptForge's commands are. The writes (d), (e) are reported as a ratio
  of both POST ceilings of the same round; during the Postgres writes and the save ceiling, pg_locks
  is sampled (LockSampler) to show how often the events table's lock and the organisation's command
  lock were held and waited for.

Every server is set up through its REST API only (register, log in, create the organisations,
`PATCH` them to PRO with no protected labels, create the prompts from the shared corpus, point
`production` at version 1, issue an API key with prompts:read). The same load generator
(bench/_load.py: wrk, or Python processes with --client python) then drives, closed-loop over
keep-alive connections, at 1 and 16 connections:

  (a) fetch by name + label with an API key: GET /v1/orgs/{org}/prompts/by-name/{name}?label=production
      cycling through the corpus prompts;                       ceiling: its GET
  (b) the same with the user's access JWT;                      ceiling: its GET
  (c) the same (API key) with If-None-Match = the ETag: 304;    ceiling: its GET
  (d) create a prompt, every connection in the same organisation (its Organisation aggregate
      is the contention point: 409 CONCURRENT_MODIFICATION when the application's retries run
      out), with the user's JWT;                                ceiling: its POST
  (e) revise a prompt, each connection its own prompts (base_version tracked), user's JWT;
                                                                ceiling: its POST

Rounds: after one untimed warm-up run of everything, each of `--rounds` rounds runs every workload
on every target once per connection count (the order rotated per round), so load from other jobs
hits the ceiling and the servers alike; fractions of the ceiling are paired per round, then
summarised (median, p10, p90). Before each run the target's projections are let catch up with the
log (its /metrics lag gauges at 0), so a read run does not pay for the backlog a write run left;
a run's CPU is counted until its own writes are projected (its wall time and rates end with the run). Per run we record successful ops/s, p50/p99 latency (wrk's
histogram), answers by status and error code, the server's CPU seconds per op (its process tree;
the dramatiq worker's separately) and its RSS. Results: bench/results/http_paths.md (+ .json).

`--profile` instead profiles the hot path (a) in-process with pyinstrument and writes
bench/results/http_paths_profile.md (see `profile_fetch`); with `--profile-workload d` (create) or
`e` (revise) it profiles a write (see `profile_writes`: request path, in-process projections and
webhooks measured apart) into bench/results/http_paths_profile_<create|revise>[_postgres].md.

    .venv/bin/python bench/http_paths.py                 # ~9 min: 5 rounds x 3 s per run
    .venv/bin/python bench/http_paths.py --quick         # ~3 min: 3 rounds x 2 s, 100 prompts
    .venv/bin/python bench/http_paths.py --profile       # ~1 min: pyinstrument, 2,000 fetches
    .venv/bin/python bench/http_paths.py --workloads de --connections 16   # the writes only, ~2.5 min
    .venv/bin/python bench/http_paths.py --profile --profile-workload d    # ~1.5 min: a create, in-process
    options: --rounds N --seconds S --connections 1 16 --targets sqlite postgres --client wrk|python
             --prompts 200 --db promptforge_bench_http --keep --workloads abcde
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx  # noqa: E402

from _common import (  # noqa: E402
    ROOT, BenchDatabase, Stats, _machine_jiffies, machine_facts, markdown_table, num, pct, write_results,
)
from _load import Loader, RunResult, Workload, cpu_seconds, rss_kb, tree_pids  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "http_paths.md"
PROFILE_RESULTS = ROOT / "bench" / "results" / "http_paths_profile.md"
CORPUS = Path(os.environ.get("PROMPTFORGE_CORPUS") or ROOT.parent / "shared" / "data" / "awesome-chatgpt-prompts.csv")
VENV_BIN = Path(sys.executable).parent
REDIS_URL = os.environ.get("PROMPTFORGE_BENCH_REDIS", "redis://127.0.0.1:6379/14")
PASSWORD = "correct horse battery staple"
CEILING_SECRET = "ceiling-bench-secret-0123456789abcdef0123456789"
WRITE_TEMPLATE = ("You are a support assistant for {{product}}. Answer the customer's question politely and "
                  "precisely, quote the relevant part of the documentation, and say so plainly when you do not "
                  "know. Keep answers under 200 words. ") * 2

WORKLOADS = {
    "a": "(a) fetch by name + label, API key",
    "b": "(b) fetch by name + label, user JWT",
    "c": "(c) 304 revalidation (If-None-Match), API key",
    "d": "(d) create a prompt (all connections, one org)",
    "e": "(e) revise a prompt (own prompts per connection)",
}
CEILING_OF = {"a": "get", "b": "get", "c": "get", "d": "post", "e": "post"}
CEILING_LABEL = {"get": "ceiling GET (JWT check + ~1 KB JSON)", "post": "ceiling POST (JWT + body + 1-row INSERT)",
                 "save": "save ceiling POST (JWT + body + eventsourcing `save`, table lock)"}


# -- corpus ---------------------------------------------------------------------------------------
def corpus_prompts(limit: int) -> list[tuple[str, str]]:
    """(name, template) pairs from the shared corpus: slugged `act` as the name, `prompt` as the
    template; rows whose text has mustache-like braces are skipped (they would not be templates)."""
    out, seen = [], set()
    with CORPUS.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            name = re.sub(r"[^a-z0-9]+", "-", row["act"].lower()).strip("-")[:80]
            text = row["prompt"].strip()
            if not name or name in seen or "{" in text or "}" in text or not 80 <= len(text) <= 4000:
                continue
            seen.add(name)
            out.append((name, text))
            if len(out) >= limit:
                break
    return out


# -- servers --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A process tree we started (its own session, so it can be stopped as one group)."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    port: int | None = None
    ready_path: str = "/healthz"
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        self._log = self.log.open("ab")
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        if self.port is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log}:\n"
                                   + self.log.read_text()[-3000:])
            try:
                if httpx.get(self.url + self.ready_path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f}s; see {self.log}")

    def pids(self) -> list[int]:
        return tree_pids(self.proc.pid) if self.proc and self.proc.poll() is None else []

    def stop(self) -> None:
        if not self.proc or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # our own session's group: the server and its workers
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass
        self._log.close()


def promptforge_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTFORGE_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({
        "PROMPTFORGE_VECTORS_ENABLED": "false",
        "PROMPTFORGE_RATE_LIMIT_PER_MINUTE": str(10**9),  # counted as usual, never refusing
        "PROMPTFORGE_ACCESS_TOKEN_TTL_SECONDS": "7200",
        "PROMPTFORGE_WORKER_METRICS_PORT": "0",
        "PROMPTFORGE_CONSOLE_ENABLED": "false",
    })
    env.update(extra)
    return env


# -- a PromptForge target, set up through its REST API ------------------------------------------
@dataclass
class Target:
    name: str
    api: Server
    worker: Server | None = None
    org: str = ""
    create_org: str = ""
    api_key: str = ""
    jwt: str = ""
    names: list[str] = field(default_factory=list)
    etags: list[str] = field(default_factory=list)
    revise_paths: list[str] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    setup_s: float = 0.0
    idle_rss_kb: int = 0
    idle_worker_rss_kb: int = 0

    def setup(self, prompts: list[tuple[str, str]], revise_pool: int, client: httpx.Client | None = None) -> None:
        """Everything through the REST API (`client`: e.g. a TestClient of an in-process app)."""
        started = time.perf_counter()
        c = client or httpx.Client(base_url=self.api.url, timeout=60)

        def ok(r: httpx.Response, *codes: int) -> dict:
            if r.status_code not in (codes or (200, 201)):
                raise RuntimeError(f"{self.name}: {r.request.method} {r.request.url.path} -> {r.status_code} {r.text[:300]}")
            return r.json() if r.content else {}

        email = f"bench-{self.name}@example.com"
        ok(c.post("/v1/auth/register", json={"email": email, "password": PASSWORD, "display_name": "Bench"}), 201)
        self.jwt = ok(c.post("/v1/auth/login", json={"email": email, "password": PASSWORD}))["access_token"]
        c.headers["Authorization"] = f"Bearer {self.jwt}"
        self.org = ok(c.post("/v1/orgs", json={"name": "Bench fetch"}), 201)["id"]
        self.create_org = ok(c.post("/v1/orgs", json={"name": "Bench create"}), 201)["id"]
        for org in (self.org, self.create_org):
            ok(c.patch(f"/v1/orgs/{org}", json={"plan": "PRO", "protected_labels": []}))
        position = 0
        for name, text in prompts:
            created = ok(c.post(f"/v1/orgs/{self.org}/prompts", json={"name": name, "template": text,
                                                                        "tags": ["corpus"], "message": "import"}), 201)
            moved = ok(c.put(f"/v1/orgs/{self.org}/prompts/{created['id']}/labels/production",
                             json={"version": 1, "expected_version": 0}))
            position = max(position, moved["position"])
            self.names.append(name)
        for i in range(revise_pool):
            created = ok(c.post(f"/v1/orgs/{self.org}/prompts", json={"name": f"revise/r-{i:03d}",
                                                                        "template": WRITE_TEMPLATE}), 201)
            path = f"/v1/orgs/{self.org}/prompts/{created['id']}/versions"
            self.revise_paths.append(path)
            self.versions[path] = 1
            position = max(position, created["position"])
        key = ok(c.post(f"/v1/orgs/{self.org}/api-keys", json={"name": "bench fetcher",
                                                               "permissions": ["prompts:read"]}), 201)
        self.api_key = key["key"]
        position = max(position, key["position"])
        # Read-your-writes: wait until the catalogue has everything (the worker projects it on Postgres).
        deadline = time.monotonic() + 120
        while True:
            r = c.get(self.fetch_path(self.names[-1]), headers={"X-Min-Position": str(position),
                                                                "Authorization": f"Bearer {self.api_key}"})
            if r.status_code == 200:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: catalogue not caught up: {r.status_code} {r.text[:200]}")
        for name in self.names:
            r = c.get(self.fetch_path(name), headers={"Authorization": f"Bearer {self.api_key}"})
            ok(r)
            self.etags.append(r.headers["etag"])
            assert c.get(self.fetch_path(name), headers={"Authorization": f"Bearer {self.api_key}",
                                                         "If-None-Match": r.headers["etag"]}).status_code == 304
        c.headers.pop("Authorization", None)
        if client is None:
            c.close()
        self.setup_s = time.perf_counter() - started
        self.idle_rss_kb = rss_kb(self.api.pids()) if self.api else 0
        self.idle_worker_rss_kb = rss_kb(self.worker.pids()) if self.worker else 0

    def resync(self, paths: list[str]) -> None:
        """Re-read the latest version of prompts whose last revision's answer was cut off by the end
        of a wrk run (untimed, after it): a revision with an impossible base_version is refused with
        409 PROMPT_VERSION_CONFLICT and the current version (from the event store), writing nothing."""
        time.sleep(0.5)  # let the server finish what was in flight
        with httpx.Client(base_url=self.api.url, timeout=30, headers={"Authorization": f"Bearer {self.jwt}"}) as c:
            for path in paths:
                r = c.post(path, json={"base_version": 2**31 - 1, "template": WRITE_TEMPLATE})
                self.versions[path] = int(r.json()["error"]["details"]["current_version"])

    def fetch_path(self, name: str) -> str:
        return f"/v1/orgs/{self.org}/prompts/by-name/{name}?label=production"

    def workload(self, key: str, run_id: str) -> Workload:
        paths = [self.fetch_path(n) for n in self.names]
        if key == "a":
            return Workload("get", f"Bearer {self.api_key}", paths, 200)
        if key == "b":
            return Workload("get", f"Bearer {self.jwt}", paths, 200)
        if key == "c":
            return Workload("get", f"Bearer {self.api_key}", paths, 304, etags=self.etags)
        if key == "d":
            return Workload("create", f"Bearer {self.jwt}", [f"/v1/orgs/{self.create_org}/prompts"], 201,
                            template=WRITE_TEMPLATE, prefix=f"new/{run_id}")
        return Workload("revise", f"Bearer {self.jwt}", self.revise_paths, 201, template=WRITE_TEMPLATE,
                        prefix=run_id, versions=self.versions)


@dataclass
class Ceiling:
    api: Server
    token: str = ""
    idle_rss_kb: int = 0
    name: str = "ceiling"
    worker: Server | None = None

    def workload(self, key: str, run_id: str) -> Workload:
        if key == "get":
            return Workload("get", f"Bearer {self.token}", [f"/item/prompt-{i:03d}" for i in range(200)], 200)
        return Workload("create", f"Bearer {self.token}", ["/saves" if key == "save" else "/items"], 201,
                        template=WRITE_TEMPLATE, prefix=f"new/{run_id}")


# -- measurement ---------------------------------------------------------------------------------
@dataclass
class Sample:
    """One run of one workload on one target."""

    result: RunResult
    api_cpu_s: float
    worker_cpu_s: float
    machine_busy: float
    api_rss_kb: int
    worker_rss_kb: int
    api_procs: int
    pg_cpu_s: float = 0.0
    redis_cpu_s: float = 0.0
    pg_backends: int = 0
    #: Postgres lock occupancy during the run (LockSampler.summary), Postgres writes only.
    locks: dict = field(default_factory=dict)
    #: CPU seconds of each API process during the run, largest first: how evenly the uvicorn workers
    #: shared the connections (each keeps the keep-alive connections it accepted).
    api_cpu_split: list = field(default_factory=list)

    def per_op(self, seconds: float) -> float:
        return 1000 * seconds / self.result.ok if self.result.ok else float("nan")

    @property
    def api_cpu_ms_per_op(self) -> float:
        return 1000 * self.api_cpu_s / self.result.ok if self.result.ok else float("nan")

    @property
    def worker_cpu_ms_per_op(self) -> float:
        return 1000 * self.worker_cpu_s / self.result.ok if self.result.ok else float("nan")

    def to_json(self) -> dict:
        return {**self.result.to_json(), "api_cpu_s": self.api_cpu_s, "worker_cpu_s": self.worker_cpu_s,
                "machine_busy": self.machine_busy, "api_rss_kb": self.api_rss_kb,
                "worker_rss_kb": self.worker_rss_kb, "api_procs": self.api_procs, "pg_cpu_s": self.pg_cpu_s,
                "redis_cpu_s": self.redis_cpu_s, "pg_backends": self.pg_backends, "locks": self.locks,
                "api_cpu_split": self.api_cpu_split}


class BackendMeter:
    """CPU of the servers behind the targets, from /proc: the Postgres backends connected to the
    bench database (pg_stat_activity, through one admin connection to `postgres`), and the Redis
    server (shared with anyone else using it; our load dominates during a run)."""

    def __init__(self, db: BenchDatabase):
        import psycopg

        self.db = db
        self.conn = psycopg.connect(f"{db.server}/postgres", autocommit=True)
        self.redis_pids = [int(e) for e in os.listdir("/proc") if e.isdigit() and _comm(int(e)) == "redis-server"]

    def pg_pids(self) -> list[int]:
        rows = self.conn.execute("SELECT pid FROM pg_stat_activity WHERE datname=%s", (self.db.name,)).fetchall()
        return [r[0] for r in rows]

    def snapshot(self) -> tuple[dict[int, float], float]:
        return {pid: cpu_seconds([pid]) for pid in self.pg_pids()}, cpu_seconds(self.redis_pids)

    @staticmethod
    def delta(before: tuple[dict[int, float], float], after: tuple[dict[int, float], float]) -> tuple[float, float]:
        pg = sum(cpu - before[0].get(pid, 0.0) for pid, cpu in after[0].items())  # new backends: all of theirs
        return pg, after[1] - before[1]

    def close(self) -> None:
        self.conn.close()


class LockSampler:
    """Polls pg_locks during a run (a thread with a connection of its own, every `interval` s): how
    often the events table's lock (`LOCK TABLE ... IN EXCLUSIVE MODE`, taken by every save) and the
    lock creations queue on (the session advisory lock of the org's prompt quota, adr/0025) were held, and how many
    backends waited for each. If a lock is held nearly all the time with waiters queued, that lock is
    the wall; if it is free much of the time, something else (CPU) is."""

    QUERY = ("SELECT l.locktype, l.granted, l.classid::int8, l.objid::int8, c.relname FROM pg_locks l "
             "LEFT JOIN pg_class c ON l.locktype = 'relation' AND c.oid = l.relation "
             "WHERE l.database = (SELECT oid FROM pg_database WHERE datname = %s) AND "
             "(l.locktype = 'advisory' OR (l.locktype = 'relation' AND l.mode = 'ExclusiveLock'))")

    def __init__(self, db: BenchDatabase, table: str, advisory_key: int | None = None, interval: float = 0.02):
        import threading

        self.db, self.table, self.interval = db, table, interval
        unsigned = advisory_key & (2**64 - 1) if advisory_key is not None else None
        self.advisory = (unsigned >> 32, unsigned & 0xFFFFFFFF) if unsigned is not None else None
        self.samples: list[tuple[int, int, int, int]] = []  # (table held, table waiters, org held, org waiters)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lock-sampler", daemon=True)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.db.url, autocommit=True) as conn:
            while not self._stop.wait(self.interval):
                held = waiting = org_held = org_waiting = 0
                for locktype, granted, classid, objid, relname in conn.execute(self.QUERY, (self.db.name,)):
                    if locktype == "relation" and relname == self.table:
                        held, waiting = held or int(granted), waiting + (not granted)
                    elif locktype == "advisory" and self.advisory == (classid, objid):
                        org_held, org_waiting = org_held or int(granted), org_waiting + (not granted)
                self.samples.append((held, waiting, org_held, org_waiting))

    def __enter__(self) -> "LockSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def summary(self) -> dict:
        n = len(self.samples) or 1
        cols = list(zip(*self.samples)) or [(), (), (), ()]
        return {"samples": len(self.samples), "table_held": sum(cols[0]) / n, "table_waiters": sum(cols[1]) / n,
                "org_held": sum(cols[2]) / n if self.advisory else None,
                "org_waiters": sum(cols[3]) / n if self.advisory else None}


def command_lock_key(org_id: str) -> int:
    """The advisory-lock key of the lock an organisation's prompt creations queue on: its prompt
    quota's (adr/0025; projections.writer_lock.advisory_key of `command:prompt_quota:<id>`, as
    interfaces.command_locks and BaseApp.quota_lock name it)."""
    from projections.writer_lock import advisory_key

    return advisory_key(f"command:prompt_quota:{org_id}")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


_LAG = re.compile(r'^promptforge_projection_lag_events\{projection="([^"]+)"\} ([0-9.e+]+)$', re.M)


def settle(target, timeout: float = 120.0) -> None:
    """Wait until the target's projections have applied the whole log (its /metrics lag gauges), so a
    run measures its own work, not the backlog a previous write run left (the worker on Postgres,
    the in-process runners on SQLite). The ceiling has none."""
    if not isinstance(target, Target):
        return
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=target.api.url, timeout=10.0) as c:
        while True:
            lags = {name: float(v) for name, v in _LAG.findall(c.get("/metrics").text)}
            if lags and not any(lags.values()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target.name}: projections still lagging after {timeout:.0f}s: {lags}")
            time.sleep(0.05)


def measure(loader: Loader, target, key: str, conns: int, seconds: float, run_id: str,
            meter: BackendMeter, locks: LockSampler | None = None) -> Sample:
    settle(target)
    workload = target.workload(key, run_id)
    api_pids = target.api.pids()
    worker_pids = target.worker.pids() if target.worker else []
    cpu0, wcpu0 = cpu_seconds(api_pids), cpu_seconds(worker_pids)
    each0 = {pid: cpu_seconds([pid]) for pid in api_pids}
    back0 = meter.snapshot()
    busy0, total0 = _machine_jiffies()
    if locks is not None:
        with locks:
            result = loader.run(target.api.url, workload, conns, seconds)
    else:
        result = loader.run(target.api.url, workload, conns, seconds)
    busy1, total1 = _machine_jiffies()
    settle(target)  # the run's own projection work, counted in its CPU (not in its wall time)
    pg_cpu, redis_cpu = meter.delta(back0, meter.snapshot())
    api_pids = target.api.pids()
    worker_pids = target.worker.pids() if target.worker else []
    sample = Sample(result, cpu_seconds(api_pids) - cpu0, cpu_seconds(worker_pids) - wcpu0,
                    (busy1 - busy0) / (total1 - total0) if total1 > total0 else float("nan"),
                    rss_kb(api_pids), rss_kb(worker_pids), len(api_pids), pg_cpu, redis_cpu,
                    len(back0[0]))
    if locks is not None:
        sample.locks = locks.summary()
    sample.api_cpu_split = sorted((round(cpu_seconds([pid]) - each0[pid], 2) for pid in api_pids if pid in each0),
                                  reverse=True)
    if result.inflight and isinstance(target, Target):
        target.resync(result.inflight)
    return sample



def redis_flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


# -- main --------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3, help="duration of each run (whole seconds: wrk)")
    parser.add_argument("--warmup", type=int, default=1, help="duration of each untimed warm-up run")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--targets", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--workloads", default="abcde",
                        help="which workloads to run (letters of WORKLOADS; default all): abc = the reads, de = the writes")
    parser.add_argument("--client", default="auto", choices=["auto", "wrk", "python"])
    parser.add_argument("--prompts", type=int, default=200, help="corpus prompts fetched by name")
    parser.add_argument("--revise-pool", type=int, default=64, help="prompts revised (split over the connections)")
    parser.add_argument("--pool-size", type=int, default=4, help="PROMPTFORGE_DB_POOL_SIZE of the Postgres API")
    parser.add_argument("--quick", action="store_true", help="3 rounds x 2 s, 100 prompts")
    parser.add_argument("--db", default="promptforge_bench_http")
    parser.add_argument("--keep", action="store_true", help="leave the database and the temp dir in place")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--profile", action="store_true", help="profile the hot path in-process instead")
    parser.add_argument("--profile-requests", type=int, default=2000)
    parser.add_argument("--profile-out", type=Path, default=None,
                        help="default results/http_paths_profile.md (_postgres.md for --profile-backend postgres)")
    parser.add_argument("--profile-backend", default="sqlite", choices=["sqlite", "postgres"],
                        help="postgres: the same app in-process on Postgres + Redis (database <--db>_profile)")
    parser.add_argument("--profile-workload", default="a", choices=["a", "d", "e"],
                        help="with --profile: a = the fetch (default), d = create a prompt, e = revise a prompt "
                             "(results/http_paths_profile_<create|revise>[_postgres].md)")
    args = parser.parse_args()
    if args.profile and args.profile_workload != "a":
        stem = {"d": "create", "e": "revise"}[args.profile_workload]
        out = args.profile_out or PROFILE_RESULTS.with_name(
            f"http_paths_profile_{stem}{'' if args.profile_backend == 'sqlite' else '_postgres'}.md")
        requests = min(args.profile_requests, 1000)
        if args.profile_backend == "postgres":
            with BenchDatabase(args.db + "_profile", keep=args.keep) as db:
                redis_flush(REDIS_URL)
                try:
                    return profile_writes(args.profile_workload, requests, out, db=db, pool_size=args.pool_size)
                finally:
                    redis_flush(REDIS_URL)
        return profile_writes(args.profile_workload, requests, out)
    if args.profile:
        out = args.profile_out or (PROFILE_RESULTS if args.profile_backend == "sqlite"
                                   else PROFILE_RESULTS.with_name("http_paths_profile_postgres.md"))
        if args.profile_backend == "postgres":
            with BenchDatabase(args.db + "_profile", keep=args.keep) as db:
                redis_flush(REDIS_URL)
                try:
                    return profile_fetch(args.profile_requests, out, db=db, pool_size=args.pool_size)
                finally:
                    redis_flush(REDIS_URL)
        return profile_fetch(args.profile_requests, out)
    if args.quick:
        args.rounds, args.seconds, args.prompts = 3, 2, 100

    started_all = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="pf-bench-http-"))
    loader = Loader(args.client, tmp / "load")
    prompts = corpus_prompts(args.prompts)
    servers: list[Server] = []
    peak_pg_conns = 0
    meter: BackendMeter | None = None
    with BenchDatabase(args.db, keep=args.keep) as db:
        facts = machine_facts(db.url)
        load_start = os.getloadavg()
        try:
            targets: list = []
            ceiling = Ceiling(Server("ceiling", [str(VENV_BIN / "uvicorn"), "ceiling_app:app", "--app-dir",
                                                 str(ROOT / "bench"), "--host", "127.0.0.1", "--port", "0",
                                                 "--workers", "2", "--no-access-log", "--log-level", "warning"],
                                     {**os.environ, "CEILING_DB_URL": db.url, "CEILING_JWT_SECRET": CEILING_SECRET,
                                      "CEILING_POOL_SIZE": "4"}, ROOT, tmp / "ceiling.log"))
            import jwt as pyjwt

            ceiling.token = pyjwt.encode({"sub": "bench", "iss": "ceiling", "aud": "ceiling-api",
                                          "exp": int(time.time()) + 7200}, CEILING_SECRET, algorithm="HS256")
            promptforge = str(VENV_BIN / "promptforge")
            if "sqlite" in args.targets:
                d = tmp / "sqlite"
                d.mkdir()
                env = promptforge_env({"PROMPTFORGE_DATA_DIR": str(d),
                                       "PROMPTFORGE_EVENT_STORE_URL": f"sqlite:///{d}/events.db",
                                       "PROMPTFORGE_READ_MODEL_URL": f"sqlite:///{d}/readmodels.db"})
                targets.append(Target("sqlite", Server("sqlite", [promptforge, "serve", "--host", "127.0.0.1",
                                                                  "--port", "0"], env, d, tmp / "sqlite.log")))
            if "postgres" in args.targets:
                d = tmp / "postgres"
                d.mkdir()
                redis_flush(REDIS_URL)
                pg = {"PROMPTFORGE_DATA_DIR": str(d), "PROMPTFORGE_EVENT_STORE_URL": db.url,
                      "PROMPTFORGE_READ_MODEL_URL": db.url.replace("postgresql://", "postgresql+psycopg://", 1),
                      "PROMPTFORGE_REDIS_URL": REDIS_URL}
                api = Server("postgres", [promptforge, "serve", "--host", "127.0.0.1", "--port", "0",
                                          "--workers", "2"],
                             promptforge_env({**pg, "PROMPTFORGE_DB_POOL_SIZE": str(args.pool_size)}), d,
                             tmp / "postgres.log")
                worker = Server("worker", [promptforge, "worker", "--processes", "1", "--threads", "2"],
                                promptforge_env({**pg, "PROMPTFORGE_DB_POOL_SIZE": "2"}), d, tmp / "worker.log")
                targets.append(Target("postgres", api, worker))
            # Ports: uvicorn with --port 0 and several workers is not portable; pick free ones here.
            for server in [ceiling.api, *[t.api for t in targets]]:
                server.port = free_port()
                server.cmd[server.cmd.index("--port") + 1] = str(server.port)
            ceiling.api.start()
            servers.append(ceiling.api)
            ceiling.idle_rss_kb = rss_kb(ceiling.api.pids())
            for t in targets:
                t.api.start()
                servers.append(t.api)
                if t.worker:
                    t.worker.start()
                    servers.append(t.worker)
                t.setup(prompts, args.revise_pool)
                print(f"{t.name}: set up {len(t.names)} prompts + {len(t.revise_paths)} to revise in {t.setup_s:.1f}s, "
                      f"API RSS {t.idle_rss_kb / 1024:.0f} MiB", flush=True)

            everything = {"ceiling": ceiling, **{t.name: t for t in targets}}
            meter = BackendMeter(db)
            plan: list[tuple[str, str, str]] = []  # (group, target, workload)
            for group, keys in (("get", "abc"), ("post", "de")):
                keys = [k for k in keys if k in args.workloads]
                if not keys:
                    continue
                plan.append((group, "ceiling", group))
                if group == "post":  # the eventsourcing save ceiling, beside the bare INSERT
                    plan.append((group, "ceiling", "save"))
                plan.extend((group, t.name, k) for t in targets for k in keys)
            run_no = 0

            def run(target_name: str, key: str, conns: int, seconds: float) -> Sample:
                nonlocal run_no, peak_pg_conns
                run_no += 1
                sampler = None
                if key == "save":
                    sampler = LockSampler(db, "ceilingsaves_events")
                elif key in "de" and target_name == "postgres":
                    sampler = LockSampler(db, "promptforge_events", command_lock_key(everything[target_name].create_org))
                sample = measure(loader, everything[target_name], key, conns, seconds, f"x{run_no}", meter, sampler)
                peak_pg_conns = max(peak_pg_conns, sample.pg_backends, len(meter.pg_pids()))
                return sample

            for conns in args.connections:  # warm-up, untimed
                for _, target_name, key in plan:
                    run(target_name, key, conns, args.warmup)
            samples: dict[tuple[str, str, int], list[Sample]] = {}
            for rnd in range(args.rounds):
                t0 = time.perf_counter()
                for conns in args.connections:
                    for group in ("get", "post"):
                        items = [p for p in plan if p[0] == group]
                        if not items:
                            continue
                        shift = rnd % len(items)
                        for _, target_name, key in items[shift:] + items[:shift]:
                            samples.setdefault((target_name, key, conns), []).append(
                                run(target_name, key, conns, args.seconds))
                line = ", ".join(f"{t}/{k}/{c}: {num(v[-1].result.ok_per_s)}" for (t, k, c), v in samples.items())
                print(f"round {rnd + 1}/{args.rounds} ({time.perf_counter() - t0:.0f}s): {line}", flush=True)
            log_sizes = {t.name: (t.api.log.stat().st_size if t.api.log.exists() else 0) for t in targets}
            final_versions = Stats.of(list(targets[0].versions.values())).median if targets else float("nan")
        finally:
            if meter is not None:
                meter.close()
            for server in reversed(servers):
                server.stop()
            if "postgres" in args.targets:
                try:
                    redis_flush(REDIS_URL)
                except Exception:  # noqa: BLE001 - cleanup only
                    pass
    load_end = os.getloadavg()
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    total_s = time.perf_counter() - started_all
    report = render(args, facts, loader, ceiling, targets, samples, load_start, load_end, total_s, peak_pg_conns,
                    log_sizes, final_versions)
    print("\n" + report)
    write_results(args.out, report)
    raw = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "facts": facts,
           "client": loader.version(),
           "runs": {f"{t}|{k}|{c}": [s.to_json() for s in v] for (t, k, c), v in samples.items()}}
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    return 0


# -- report ----------------------------------------------------------------------------------------
def ms(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}" if value < 10 else f"{value:.1f}"


def render(args, facts, loader, ceiling, targets, samples, load_start, load_end, total_s, peak_pg_conns,
           log_sizes, final_versions) -> str:
    def series(t: str, k: str, c: int) -> list[Sample]:
        return samples.get((t, k, c), [])

    rows, lat_rows, err_rows, save_rows = [], [], [], []
    for c in args.connections:
        saves = series("ceiling", "save", c)
        for ck in ("get", "post", "save"):
            base = series("ceiling", ck, c)
            if not base:
                continue
            st = Stats.of([s.result.ok_per_s for s in base])
            rows.append([CEILING_LABEL[ck], c, "ceiling", num(st.median), f"{num(st.p10)}–{num(st.p90)}",
                         f"{st.spread_pct:.0f}%", "1", *cpu_cells(base, worker=False, redis=False), "1"])
            lat_rows.append([CEILING_LABEL[ck], c, "ceiling", ms(Stats.of([s.result.p50_ms for s in base]).median),
                             ms(Stats.of([s.result.p99_ms for s in base]).median), "1", "1",
                             num(Stats.of([s.result.bytes / max(1, s.result.requests) for s in base]).median),
                             pct(Stats.of([s.machine_busy for s in base]).median)])
            errors = sum((s.result.errors for s in base), Counter())
            sock = sum((Counter(s.result.socket_errors) for s in base), Counter())
            err_rows.append([CEILING_LABEL[ck], c, "ceiling", sum(s.result.requests for s in base),
                             errors_text(errors), errors_text(sock)])
            for k, label in WORKLOADS.items():
                if CEILING_OF[k] != ck:
                    continue
                for t in targets:
                    ours = series(t.name, k, c)
                    if not ours:
                        continue
                    st = Stats.of([s.result.ok_per_s for s in ours])
                    ratio = Stats.of([a.result.ok_per_s / b.result.ok_per_s for a, b in zip(ours, base)])
                    pg_side = t.worker is not None
                    total_ratio = Stats.of([total_cpu(s, pg_side) / total_cpu(b, False) for s, b in zip(ours, base)])
                    rows.append([label, c, f"**{t.name}**", num(st.median), f"{num(st.p10)}–{num(st.p90)}",
                                 f"{st.spread_pct:.0f}%", f"**{ratio.median:.3f}** ({ratio.p10:.3f}–{ratio.p90:.3f})",
                                 *cpu_cells(ours, worker=pg_side, redis=pg_side), f"{total_ratio.median:.1f}×"])
                    p50 = Stats.of([s.result.p50_ms for s in ours])
                    p99 = Stats.of([s.result.p99_ms for s in ours])
                    lat_rows.append([label, c, t.name, f"{ms(p50.median)} ({ms(p50.p10)}–{ms(p50.p90)})",
                                     f"{ms(p99.median)} ({ms(p99.p10)}–{ms(p99.p90)})",
                                     f"{Stats.of([a.result.p50_ms / b.result.p50_ms for a, b in zip(ours, base)]).median:.1f}×",
                                     f"{Stats.of([a.result.p99_ms / b.result.p99_ms for a, b in zip(ours, base)]).median:.1f}×",
                                     num(Stats.of([s.result.bytes / max(1, s.result.requests) for s in ours]).median),
                                     pct(Stats.of([s.machine_busy for s in ours]).median)])
                    if saves:
                        vs_save = Stats.of([a.result.ok_per_s / b.result.ok_per_s for a, b in zip(ours, saves)])
                        save_med = Stats.of([b.result.ok_per_s for b in saves])
                        save_rows.append([label, c, f"**{t.name}**", num(st.median), num(save_med.median),
                                          f"**{vs_save.median:.3f}** ({vs_save.p10:.3f}–{vs_save.p90:.3f})",
                                          f"{ms(p99.median)} ({ms(p99.p10)}–{ms(p99.p90)})"])
                    errors = sum((s.result.errors for s in ours), Counter())
                    sock = sum((Counter(s.result.socket_errors) for s in ours), Counter())
                    total = sum(s.result.requests for s in ours)
                    err_rows.append([label, c, t.name, total, errors_text(errors, total), errors_text(sock)])
    lock_rows = []
    for (t, k, c), v in sorted(samples.items(), key=lambda i: (i[0][2], i[0][1], i[0][0])):
        got = [s.locks for s in v if s.locks and s.locks.get("samples")]
        if not got:
            continue

        def med(name: str, scale: float = 1.0, fmt: str = "{:.2f}") -> str:
            values = [g[name] for g in got if g.get(name) is not None]
            if not values:
                return "–"
            st = Stats.of(values)
            return f"{fmt.format(st.median * scale)} ({fmt.format(st.p10 * scale)}–{fmt.format(st.p90 * scale)})"

        label = WORKLOADS.get(k, CEILING_LABEL.get(k, k))
        lock_rows.append([label, c, t, num(Stats.of([s.result.ok_per_s for s in v]).median),
                          med("table_held", 100, "{:.0f}%"), med("table_waiters"), med("org_held", 100, "{:.0f}%"),
                          med("org_waiters"), sum(g["samples"] for g in got)])
    table = markdown_table(["workload", "conns", "target", "ok ops/s median", "p10–p90", "p90−p10 / median",
                            "× ceiling, paired (p10–p90)", "CPU ms/op: API", "worker", "Postgres", "Redis",
                            "total", "total CPU/op × ceiling"], rows)
    lat_table = markdown_table(["workload", "conns", "target", "p50 ms (p10–p90 over rounds)",
                                "p99 ms (p10–p90 over rounds)", "p50 × ceiling", "p99 × ceiling",
                                "bytes/answer", "machine busy"], lat_rows)
    err_table = markdown_table(["workload", "conns", "target", "answers (all rounds)",
                                "non-success answers by status / error code", "socket errors (wrk)"], err_rows)

    mem_rows = [["ceiling (uvicorn, 2 workers)", f"{ceiling.idle_rss_kb / 1024:.0f}",
                 f"{max(s.api_rss_kb for (t, _, _), v in samples.items() if t == 'ceiling' for s in v) / 1024:.0f}",
                 max(s.api_procs for (t, _, _), v in samples.items() if t == 'ceiling' for s in v), "–", "–"]]
    for t in targets:
        ours = [s for (n, _, _), v in samples.items() if n == t.name for s in v]
        if not ours:
            continue
        mem_rows.append([f"{t.name} ({'2 workers' if t.worker else '1 worker, projections in-process'})",
                         f"{t.idle_rss_kb / 1024:.0f}", f"{max(s.api_rss_kb for s in ours) / 1024:.0f}",
                         max(s.api_procs for s in ours),
                         f"{t.idle_worker_rss_kb / 1024:.0f}" if t.worker else "–",
                         f"{max(s.worker_rss_kb for s in ours) / 1024:.0f}" if t.worker else "–"])
    mem_table = markdown_table(["server", "API RSS after setup (MiB)", "API RSS max after a run (MiB)",
                                "API processes", "worker RSS after setup (MiB)", "worker RSS max (MiB)"], mem_rows)
    setup = "; ".join(f"{t.name} {t.setup_s:.0f} s" for t in targets)
    logs = "; ".join(f"{name} {size / 2**20:.0f} MiB" for name, size in log_sizes.items())
    return "\n".join([
        "# HTTP hot paths: PromptForge served as users hit it, beside a bare FastAPI ceiling",
        "",
        *[f"- {f}" for f in facts],
        f"- load average at the end {' / '.join(f'{x:.2f}' for x in load_end)} "
        f"(start {' / '.join(f'{x:.2f}' for x in load_start)}); client: {loader.version()}; "
        f"{args.rounds} rounds × {args.seconds} s per run, connections {args.connections}, warm-up {args.warmup} s "
        f"per run; whole run {total_s / 60:.1f} min (set-up through the REST API: {setup})",
        f"- targets: **sqlite** = `promptforge serve` (1 uvicorn worker, SQLite, projections in-process); "
        f"**postgres** = `promptforge serve --workers 2` + `promptforge worker` (dramatiq, 1 process × 2 threads) on "
        f"Postgres + Redis, `PROMPTFORGE_DB_POOL_SIZE={args.pool_size}` (peak {peak_pg_conns} connections to the "
        f"bench database, ceiling included); **ceiling** = bench/ceiling_app.py under uvicorn, 2 workers, no access "
        f"log. All on uvloop + httptools. PromptForge as shipped: JSON access log per request (to a file: {logs}), "
        f"metrics, rate limiter counting (limit raised to 10⁹/min so it never refuses; memory on sqlite, Redis on "
        f"postgres), vectors off.",
        f"- data: {len(targets[0].names) if targets else 0} corpus prompts fetched by name (cycled), `production` → "
        f"v1; creates into a second PRO org; revisions over {args.revise_pool} prompts split across the connections "
        f"(median {final_versions:.0f} versions each at the end on {targets[0].name if targets else '-'}).",
        "",
        "## Throughput (successful answers per second)",
        "",
        table,
        "",
        "`× ceiling`: ops/s ÷ the ceiling's ops/s in the same round and at the same connection count (GET for "
        "(a)–(c), POST for (d)–(e)), then median (p10–p90) over the rounds. `CPU ms/op`: CPU seconds during the run ÷ "
        "successful answers, from /proc, of the API's process tree, the dramatiq worker's (projecting the writes; "
        "every run starts with the projections caught up, and its CPU counts until they have caught up with its own "
        "writes), the Postgres backends connected to the bench database, and the Redis "
        "server (shared with other users of it); `total` adds those the target uses (the SQLite target and the "
        "ceiling: API + Postgres backends, ~0 for the GETs). With 2 cores shared by the client, the servers and "
        "other jobs, CPU per op is the steadier number: ops/s ≤ cores available ÷ total CPU per op.",
        "",
        *(["## Writes as a fraction of the eventsourcing save ceiling (same run, paired per round)", "",
           markdown_table(["workload", "conns", "target", "ok ops/s median", "save ceiling ops/s median",
                           "× save ceiling, paired (p10–p90)", "p99 ms (p10–p90 over rounds)"], save_rows), "",
           "Save ceiling: bench/ceiling_app.py `POST /saves`, 2 uvicorn workers: the JWT check and pydantic body of "
           "the POST ceiling, then `app.save()` of a one-event aggregate through an eventsourcing Application on the "
           "same Postgres database (its own table; the library's default insert path, `LOCK TABLE ... IN EXCLUSIVE "
           "MODE` per save), from a sync endpoint (thread pool), pool size 4 per worker. A create saves 3 events of 3 "
           "aggregates in one save; a revision 1 event. For the SQLite target the ratio compares across backends "
           "(for scale only).", ""] if save_rows else []),
        *(["## Postgres locks during the writes (pg_locks sampled every 20 ms; median (p10–p90) over rounds)", "",
           markdown_table(["workload", "conns", "target", "ok ops/s median", "events table lock held",
                           "backends waiting for it (mean)", "quota lock held", "backends waiting for it (mean)",
                           "samples"], lock_rows), "",
           "Events table lock: a granted `ExclusiveLock` on the events table (`LOCK TABLE ... IN EXCLUSIVE MODE`, "
           "held from the start of a save's insert to its commit; `promptforge_events`, or `ceilingsaves_events` for "
           "the save ceiling). Quota lock: the session advisory lock on the create organisation's prompt quota "
           "(adr/0025; the organisation's command lock before, adr/0019), held by one API process at a time while "
           "a creation counts and saves; the other process's waiting "
           "thread shows as a waiter (threads of the same process queue on its in-process lock first, unseen "
           "here). A lock held well under 100% of the time is not what limits throughput.", ""]
          if lock_rows else []),
        "## Latency (closed loop: at 16 connections latency ≈ 16 ÷ ops/s)",
        "",
        lat_table,
        "",
        "## Errors",
        "",
        err_table,
        "",
        "## Memory (RSS summed over the process tree; shared pages counted once per process)",
        "",
        mem_table,
        "",
    ])


def total_cpu(s: Sample, redis_and_worker: bool) -> float:
    """Server-side CPU ms per successful op: API + Postgres backends (+ worker + Redis for the
    Postgres target; the SQLite target and the ceiling use neither)."""
    extra = s.worker_cpu_s + s.redis_cpu_s if redis_and_worker else 0.0
    return s.per_op(s.api_cpu_s + s.pg_cpu_s + extra)


def cpu_cells(samples: list[Sample], worker: bool, redis: bool) -> list[str]:
    def med(values) -> str:
        return ms(Stats.of(list(values)).median)

    return [med(s.per_op(s.api_cpu_s) for s in samples),
            med(s.per_op(s.worker_cpu_s) for s in samples) if worker else "–",
            med(s.per_op(s.pg_cpu_s) for s in samples),
            med(s.per_op(s.redis_cpu_s) for s in samples) if redis else "–",
            med(total_cpu(s, worker) for s in samples)]


def errors_text(errors: Counter, total: int | None = None) -> str:
    if not errors:
        return "none"
    parts = [f"{k}: {v:,}" for k, v in errors.most_common()]
    share = f" ({100 * sum(errors.values()) / total:.2f}% of answers)" if total else ""
    return "; ".join(parts) + share


# -- profile -----------------------------------------------------------------------------------------
def _fn(path_part: str, name: str, cls: str | None = None):
    def match(frame) -> bool:
        return (frame.function == name and path_part in (frame.file_path or "")
                and (cls is None or getattr(frame, "class_name", None) == cls))
    return match


def _builtin(*names: str):
    """C functions: pyinstrument names them `Class.method` (or `function`), file `<built-in>`."""
    def match(frame) -> bool:
        return frame.file_path_short == "<built-in>" and frame.function in names
    return match


SQLITE_C = _builtin(*[f"{cls}.{m}" for cls in ("Cursor", "Connection") for m in (
    "execute", "executemany", "fetchone", "fetchall", "fetchmany", "commit", "rollback", "cursor", "close")])


#: Where the time of a request goes: (label, predicate on a frame); inclusive time of the outermost
#: matching frame of each stack, so an indented phase is a part of the one above it.
PHASES = [
    ("whole app call (RequestContextMiddleware.__call__)", _fn("interfaces/http/middleware.py", "__call__")),
    ("  FastAPI route matching (routers' `matches`, every route tried in order)", _fn("fastapi/routing.py",
                                                                                       "matches")),
    ("  FastAPI route handling (router `handle`)", _fn("fastapi/routing.py", "handle")),
    ("    FastAPI solve_dependencies (parameters + all dependencies)", _fn("fastapi/dependencies/utils.py",
                                                                          "solve_dependencies")),
    ("      FastAPI request_params_to_args (path, query, header parameters)",
     _fn("fastapi/dependencies/utils.py", "request_params_to_args")),
    ("      org_scope dependency (authenticate + grant + limiter)", _fn("interfaces/http/deps.py", "dependency")),
    ("        _authenticate (credential + per-key limiter)", _fn("interfaces/http/deps.py", "_authenticate")),
    ("          authenticate_api_key (parse, load the ApiKey aggregate, compare the secret)",
     _fn("application/api_keys.py", "authenticate_api_key")),
    ("          ratelimit.apply (per-key bucket here; the org bucket below)", _fn("interfaces/http/ratelimit.py",
                                                                                "apply")),
    ("            limits MemoryStorage: schedule expiry (starts a threading.Timer)",
     _fn("limits/storage/memory.py", "__schedule_expiry")),
    ("        grant (access policy; loads the Organisation aggregate)", _fn("application/base.py", "grant")),
    ("        request_access (adr/0020: one check of the log head)", _fn("application/base.py", "request_access")),
    ("        log-head check on the event loop (interfaces.http.head_check: SQLite probe / async Postgres read)",
     _fn("interfaces/http/head_check.py", "check")),
    ("        access cache: API key verified from cached state", _fn("application/request_access.py", "api_key")),
    ("        access cache: grant from cached state", _fn("application/request_access.py", "grant")),
    ("        rate limits counted on the loop (memory, async Redis, or leased: adr/0023)",
     _fn("interfaces/http/deps.py", "_count_on_loop")),
    ("    fast path: the route's dependencies called directly (interfaces.http.fast_route)",
     _fn("interfaces/http/routers/fetch.py", "_run_plain")),
    ("    endpoint fetch_by_name", _fn("interfaces/http/routers/fetch.py", "fetch_by_name")),
    ("      catalogue.fetch (SQL: the row by name + label)", _fn("projections/catalogue/projection.py", "fetch")),
    ("      catalogue.compose (includes; none here)", _fn("projections/catalogue/projection.py", "compose")),
    ("      views.fetched (build the FetchOut model)", _fn("interfaces/http/views.py", "fetched")),
    ("      model_dump_json (serialise the answer)", _fn("pydantic/main.py", "model_dump_json")),
    ("  access log line (middleware.access_line → JsonFormatter → write + flush)",
     _fn("interfaces/http/middleware.py", "access_line")),
    ("  metrics (observe_http)", _fn("interfaces/observability/metrics.py", "observe_http")),
    ("across the app: eventsourcing Repository.get (aggregate loads)", _fn("eventsourcing/application.py", "get",
                                                                           "Repository")),
    ("across the app: copy.deepcopy (the aggregate cache copies what it hands out)", _fn("copy.py", "deepcopy")),
    ("across the app: eventsourcing EventStore.get (replay / fast-forward reads)",
     _fn("eventsourcing/persistence.py", "get", "EventStore")),
    ("across the app: SQLAlchemy Connection.execute (read-model SQL)", _fn("sqlalchemy/engine/base.py", "execute",
                                                                           "Connection")),
    ("across the app: sqlite3 C calls (execute, fetch, commit, rollback, ...)", SQLITE_C),
    ("across the app: psycopg Cursor.execute (a statement: one round trip to Postgres)",
     _fn("psycopg/cursor.py", "execute", "Cursor")),
    ("across the app: psycopg transaction commands (BEGIN / COMMIT / ROLLBACK)",
     _fn("psycopg/_connection_base.py", "_exec_command")),
    ("across the app: redis execute_command (one round trip to Redis)", _fn("redis/client.py", "execute_command",
                                                                            "Redis")),
    ("across the app: Thread.start (limits' expiry Timer)", _fn("threading.py", "start")),
    ("across the app: lock.acquire (C; outside Thread.start)", _builtin("lock.acquire")),
]
BUCKETS = [  # self time by where the code lives (first match wins; C calls go to their caller's bucket)
    ("SQLAlchemy (Core: statement cache keys, compile, execute, rows)", ("sqlalchemy/",)),
    ("eventsourcing (library: recorder, mapper, aggregate replay)", ("eventsourcing/",)),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("FastAPI (routing, dependency solving, params)", ("fastapi/",)),
    ("Starlette", ("starlette/",)),
    ("anyio / asyncio / threading / contextlib", ("anyio/", "asyncio/", "threading.py", "concurrent/",
                                                   "contextlib.py")),
    ("logging + json", ("logging/", "json/")),
    ("prometheus_client", ("prometheus_client/",)),
    ("limits (rate-limit library)", ("limits/",)),
    ("httpx / httpcore (client side)", ("httpx/", "httpcore/", "h11/")),
    ("psycopg (Postgres driver: send, wait, adapt)", ("psycopg/", "psycopg_pool/")),
    ("redis client (Redis protocol, sockets)", ("redis/",)),
    ("PromptForge interfaces/ (HTTP middleware, deps, views, logs)", ("interfaces/",)),
    ("PromptForge application/", ("application/",)),
    ("PromptForge domain/", ("domain/",)),
    ("PromptForge projections/ (catalogue queries)", ("projections/",)),
    ("copy (deepcopy)", ("copy.py",)),
    ("uuid / hmac / hashlib / secrets", ("uuid.py", "hmac.py", "hashlib.py", "secrets.py")),
]


def _frame_key(frame) -> str:
    cls = getattr(frame, "class_name", None)
    name = f"{cls}.{frame.function}" if cls else frame.function
    return f"{name}  {frame.file_path_short}:{frame.line_no}" if frame.line_no else f"{name}  {frame.file_path_short}"


def _self_time(frame) -> float:
    return sum(c.time for c in frame.children if c.is_synthetic_leaf)


def _bucket(path: str) -> str:
    for label, needles in BUCKETS:
        if any(n in path for n in needles):
            return label
    if "site-packages/" in path:
        return "other library: " + path.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/lib/python" in path or path.startswith("<frozen"):
        return "other stdlib"
    return "other: " + path.rsplit("/", 1)[-1]


def analyse(root, phases_spec: list | None = None) -> dict:
    """Inclusive time per PHASE (outermost match), self time per function and per BUCKET (a C
    function's time goes to the bucket of the Python code calling it, except sqlite3's own calls),
    and the inclusive time of every function (outermost occurrence) for the top list."""
    spec = phases_spec or PHASES
    phases = {label: 0.0 for label, _ in spec}
    inclusive: Counter = Counter()
    self_by_fn: Counter = Counter()
    buckets: Counter = Counter()

    app_label = spec[0][0]

    def walk(frame, active_phases: frozenset, active_keys: frozenset, caller_bucket: str) -> None:
        if frame.is_synthetic_leaf:
            return
        key = _frame_key(frame)
        for label, match in spec:
            if label not in active_phases and match(frame):
                phases[label] += frame.time
                active_phases = active_phases | {label}
        if app_label not in active_phases:  # outside the app call: the client, transport, loop
            for child in frame.children:
                walk(child, active_phases, active_keys, caller_bucket)
            return
        if key not in active_keys:
            inclusive[key] += frame.time
            active_keys = active_keys | {key}
        if frame.file_path_short == "<built-in>":
            bucket = "SQLite driver (sqlite3 C calls)" if SQLITE_C(frame) else caller_bucket
        else:
            bucket = _bucket(frame.file_path or "")
        own = _self_time(frame)
        if own:
            self_by_fn[key] += own
            buckets[bucket] += own
        for child in frame.children:
            walk(child, active_phases, active_keys, bucket)

    walk(root, frozenset(), frozenset(), "other")
    return {"phases": phases, "inclusive": inclusive, "self": self_by_fn, "buckets": buckets, "total": root.time}


class CallCounter:
    """Counts, while active, what one request does below the app: SQL statements and transaction
    commands sent through psycopg (each one round trip to Postgres), SQLAlchemy statements and pool
    checkouts on the read-model engine, eventsourcing recorder calls, Redis commands, rate-limiter
    hits. Bench-only wrappers on classes and on this container's objects, removed on exit. Only calls
    on the request's threads count (the event loop's and anyio's workers); the in-process runners'
    polling (projections, webhooks) is counted apart in `background`."""

    def __init__(self, container, limiter):
        self.container, self.limiter = container, limiter
        self.counts: Counter = Counter()
        self.background: Counter = Counter()
        self._undo: list = []

    def count(self, label: str) -> None:
        import threading

        name = threading.current_thread().name
        (self.counts if name == "MainThread" or name.startswith("AnyIO") else self.background)[label] += 1

    def _wrap(self, owner, name: str, label) -> None:
        original = getattr(owner, name)
        count = self.count

        def wrapper(*a, **k):
            count(label(a) if callable(label) else label)
            return original(*a, **k)

        is_class = isinstance(owner, type)
        setattr(owner, name, wrapper)
        self._undo.append(lambda: setattr(owner, name, original) if is_class else owner.__dict__.pop(name, None))

    def __enter__(self) -> "CallCounter":
        import psycopg
        import redis.client
        from psycopg._connection_base import BaseConnection
        from sqlalchemy import event

        def command(a) -> str:
            raw = a[1]
            text = raw.decode() if isinstance(raw, bytes) else str(getattr(raw, "as_string", lambda *_: raw)(None))
            return f"psycopg: {text.split()[0].upper()} (transaction command)"

        self._wrap(psycopg.Cursor, "execute", "psycopg: Cursor.execute (one statement)")
        self._wrap(psycopg.Cursor, "executemany", "psycopg: Cursor.executemany")
        self._wrap(BaseConnection, "_exec_command", command)
        self._wrap(redis.client.Redis, "execute_command", lambda a: f"redis: {a[1]}")
        self._wrap(redis.client.Pipeline, "execute", "redis: pipeline execute (one round trip)")
        app = self.container.app
        for name in ("select_events", "max_notification_id", "select_notifications", "insert_events"):
            if hasattr(app.recorder, name):
                self._wrap(app.recorder, name, f"event store recorder: {name}")
        snapshots = getattr(app, "snapshots", None)
        if snapshots is not None and getattr(snapshots, "recorder", None) is not app.recorder:
            self._wrap(snapshots.recorder, "select_events", "snapshot recorder: select_events")
        if self.limiter is not None:
            self._wrap(self.limiter, "hit", "rate limiter: RateLimiter.hit (one bucket)")
        engine = self.container.engine
        count = self.count

        def on_execute(*_a, **_k):
            count("read models (SQLAlchemy): statement")

        def on_checkout(*_a, **_k):
            count("read models (SQLAlchemy): pool checkout")

        event.listen(engine, "before_cursor_execute", on_execute)
        event.listen(engine, "checkout", on_checkout)
        self._undo.append(lambda: event.remove(engine, "before_cursor_execute", on_execute))
        self._undo.append(lambda: event.remove(engine, "checkout", on_checkout))
        return self

    def __exit__(self, *exc) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


def _profiled_app(db: BenchDatabase | None, pool_size: int, prefix: str):
    """The app as `promptforge serve` builds it, for the in-process profiles: (temp dir, access-log
    file, backend, started container, app). On Postgres the projections run in this process too (the
    set-up needs the catalogue); vectors off, limits never refusing, the JSON access log to a file."""
    from interfaces.bootstrap import build
    from interfaces.http.app import create_app
    from interfaces.observability.logs import configure_logging
    from interfaces.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    log_file = (tmp / "access.log").open("a")
    configure_logging("INFO", stream=log_file)
    backend = "postgres" if db is not None else "sqlite"
    common = dict(env="development", data_dir=tmp, vectors_enabled=False, rate_limit_per_minute=10**9,
                  access_token_ttl_seconds=7200, console_enabled=False)
    if db is None:
        settings = Settings(**common, event_store_url=f"sqlite:///{tmp}/events.db",
                            read_model_url=f"sqlite:///{tmp}/readmodels.db")
    else:
        settings = Settings(**common, event_store_url=db.url, inprocess_projections=True, redis_url=REDIS_URL,
                            read_model_url=db.url.replace("postgresql://", "postgresql+psycopg://", 1),
                            db_pool_size=pool_size)
    container = build(settings)
    container.start()
    return tmp, log_file, backend, container, create_app(container)


def profile_fetch(requests: int, out: Path, db: BenchDatabase | None = None, pool_size: int = 4) -> int:
    """Profile the by-name fetch with an API key (workload (a)) in-process, on the embedded default.

    The app is built as `promptforge serve` builds it (interfaces.bootstrap.build + create_app, JSON
    access log to a file, in-process projections, SQLite in a temp dir, vectors off) and called
    through httpx's ASGI transport from an asyncio loop in this thread. pyinstrument samples one
    thread, so for the profiled passes FastAPI's `run_in_threadpool` (sync dependencies and
    endpoints) is replaced by a direct call: the thread hops are measured separately (timed passes
    with and without the replacement) instead of profiled. Two profiles: one on this thread's CPU
    time (`time.thread_time`: steady on a shared machine, excludes waiting) and one on wall time
    (includes waiting: thread starts, locks, being descheduled by other jobs)."""
    import asyncio
    import logging
    import statistics

    import fastapi.dependencies.utils as fastapi_deps
    import fastapi.routing as fastapi_routing
    from fastapi.testclient import TestClient
    from pyinstrument import Profiler
    from pyinstrument.stack_sampler import get_stack_sampler

    started_all = time.perf_counter()
    load_start = os.getloadavg()
    tmp, log_file, backend, container, app = _profiled_app(db, pool_size, "pf-bench-profile-")
    target = Target("profile", None)  # type: ignore[arg-type]
    with TestClient(app) as tc:
        target.setup(corpus_prompts(200), 0, client=tc)
    paths = [target.fetch_path(n) for n in target.names]
    headers = {"Authorization": f"Bearer {target.api_key}"}

    import jwt as pyjwt

    import ceiling_app

    ceiling_app.SECRET = CEILING_SECRET
    ceiling_headers = {"Authorization": "Bearer " + pyjwt.encode(
        {"sub": "bench", "iss": "ceiling", "aud": "ceiling-api", "exp": int(time.time()) + 7200}, CEILING_SECRET,
        algorithm="HS256")}
    ceiling_urls = [f"/item/prompt-{i:03d}" for i in range(200)]

    from interfaces.http import deps as pf_deps, head_check as pf_head_check  # the fast path's own hops
    from interfaces.http.routers import fetch as fetch_router

    hopping = (fastapi_routing, fastapi_deps, fetch_router, pf_deps, pf_head_check)
    threadpool = tuple(module.run_in_threadpool for module in hopping)

    async def direct(func, *args, **kwargs):
        return func(*args, **kwargs)

    def set_inline(on: bool) -> None:
        for module, original in zip(hopping, threadpool):
            module.run_in_threadpool = direct if on else original

    async def drive(asgi_app, n: int, hdrs: dict, urls: list[str]) -> list[float]:
        transport = httpx.ASGITransport(app=asgi_app, client=("127.0.0.1", 50123))
        times = []
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as ac:
            for i in range(n):
                t0 = time.perf_counter()
                r = await ac.get(urls[i % len(urls)], headers=hdrs)
                times.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise RuntimeError(f"{r.status_code} {r.text[:200]}")
        return times

    def timed(asgi_app, hdrs, urls, inline: bool, n: int) -> tuple[float, float]:
        """(median wall s per request, process CPU s per request: all threads)."""
        set_inline(inline)
        try:
            c0 = time.process_time()
            times = asyncio.run(drive(asgi_app, n, hdrs, urls))
            return statistics.median(times), (time.process_time() - c0) / n
        finally:
            set_inline(False)

    variants = {
        "served": (app, headers, paths, False),
        "inline": (app, headers, paths, True),
        "ceiling": (ceiling_app.app, ceiling_headers, ceiling_urls, False),
    }
    async def hops(n: int) -> tuple[float, float]:
        """One `await run_in_threadpool(noop)`: (wall s, process CPU s), each per hop."""
        from starlette.concurrency import run_in_threadpool

        def noop() -> None:
            return None

        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            await run_in_threadpool(noop)
        return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n

    # Ablations (bench-only switches on this process's objects; the product code is unchanged):
    # what each piece costs, measured as served, without the profiler.
    http_log = logging.getLogger("promptforge.http")
    limiter = app.state.rate_limiter
    repository = container.app.repository

    def ablate(name: str, on: bool) -> None:
        if name == "no rate limiter":
            app.state.rate_limiter = None if on else limiter
        elif name == "no access log line":
            http_log.disabled = on
        elif name == "aggregate cache hands out without deepcopy":
            repository.deepcopy_from_cache = not on
        elif name == "no metrics":
            if on:
                container.metrics.observe_http = lambda *a, **k: None
            else:
                container.metrics.__dict__.pop("observe_http", None)

    ablations = ["no rate limiter", "no access log line", "aggregate cache hands out without deepcopy", "no metrics"]
    deepcopy_default = repository.deepcopy_from_cache

    async def interleaved(groups: int, blocks_per_group: int, per_block: int) -> dict[str, list[tuple[float, float]]]:
        """Every variant in turn, `per_block` requests at a time, over one client per app: per group of
        blocks, (median wall s of the requests, process CPU s per request) of each variant."""
        clients = {}
        for asgi_app in (app, ceiling_app.app):
            transport = httpx.ASGITransport(app=asgi_app, client=("127.0.0.1", 50123))
            clients[id(asgi_app)] = httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")
        names = [*variants, *ablations]
        out: dict[str, list[tuple[float, float]]] = {k: [] for k in names}
        i = 0
        try:
            for _ in range(groups):
                times = {k: [] for k in names}
                cpu = dict.fromkeys(names, 0.0)
                for _ in range(blocks_per_group):
                    for name in names:
                        asgi_app, hdrs, urls, inline = variants.get(name, variants["served"])
                        set_inline(inline)
                        if name in ablations:
                            ablate(name, True)
                        try:
                            c0 = time.process_time()
                            for _ in range(per_block):
                                i += 1
                                t0 = time.perf_counter()
                                r = await clients[id(asgi_app)].get(urls[i % len(urls)], headers=hdrs)
                                times[name].append(time.perf_counter() - t0)
                                if r.status_code != 200:
                                    raise RuntimeError(f"{name}: {r.status_code} {r.text[:200]}")
                            cpu[name] += time.process_time() - c0
                        finally:
                            set_inline(False)
                            if name in ablations:
                                ablate(name, False)
                for name in names:
                    out[name].append((statistics.median(times[name]), cpu[name] / len(times[name])))
        finally:
            for client in clients.values():
                await client.aclose()
        return out

    for v in variants.values():  # warm-up
        timed(*v, n=300)
    asyncio.run(hops(500))
    per_block = 25
    blocks_per_group = max(2, requests // (5 * per_block))
    per_pass = blocks_per_group * per_block
    passes = asyncio.run(interleaved(5, blocks_per_group, per_block))
    passes["hop"] = [asyncio.run(hops(2000)) for _ in range(5)]
    assert repository.deepcopy_from_cache == deepcopy_default and app.state.rate_limiter is limiter

    def profile(clock: str, n: int):
        sampler = get_stack_sampler()
        profiler = Profiler(interval=0.0002, async_mode="disabled")
        sampler.timer_func = time.thread_time if clock == "cpu" else None
        set_inline(True)
        try:
            profiler.start()
            t0, c0 = time.perf_counter(), time.thread_time()
            asyncio.run(drive(app, n, headers, paths))
            wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
            profiler.stop()
        finally:
            set_inline(False)
            sampler.timer_func = None
        return profiler, wall, cpu, n

    counted = 200

    async def count_pass() -> CallCounter:
        with CallCounter(container, app.state.rate_limiter) as counter:
            await drive(app, counted, headers, paths)
        return counter

    set_inline(False)
    counter = asyncio.run(count_pass())
    calls = counter.counts
    background = ", ".join(f"{k}: {v}" for k, v in sorted(counter.background.items())) or "none"
    profiles = {"wall": profile("wall", requests), "cpu": profile("cpu", max(200, requests // 2))}
    container.close()
    log_file.close()
    logging.getLogger().handlers.clear()
    analysed = {clock: analyse(p.last_session.root_frame()) for clock, (p, _, _, _) in profiles.items()}
    app_total = {clock: a["phases"][PHASES[0][0]] for clock, a in analysed.items()}
    profiled_n = {clock: n for clock, (_, _, _, n) in profiles.items()}

    def us(v: float, clock: str) -> str:
        return f"{1e6 * v / profiled_n[clock]:,.0f}"

    def share(v: float, clock: str) -> str:
        return f"{100 * v / app_total[clock]:.1f}%"

    phase_rows = [[label.replace("  ", "&nbsp;&nbsp;"), us(analysed["cpu"]["phases"][label], "cpu"),
                   share(analysed["cpu"]["phases"][label], "cpu"), us(analysed["wall"]["phases"][label], "wall"),
                   share(analysed["wall"]["phases"][label], "wall")] for label, _ in PHASES]
    bucket_names = [k for k, _ in analysed["cpu"]["buckets"].most_common(20)]
    bucket_rows = [[k, us(analysed["cpu"]["buckets"][k], "cpu"), share(analysed["cpu"]["buckets"][k], "cpu"),
                    us(analysed["wall"]["buckets"][k], "wall"), share(analysed["wall"]["buckets"][k], "wall")]
                   for k in bucket_names]

    def top(clock: str, kind: str, n: int) -> list[list[str]]:
        items = analysed[clock][kind].most_common()
        if kind == "inclusive":
            items = [(k, v) for k, v in items if v <= app_total[clock] * 1.0001]
        return [[f"`{k}`", us(v, clock), share(v, clock)] for k, v in items[:n]]

    stats = {k: (Stats.of([w for w, _ in v]), Stats.of([c for _, c in v])) for k, v in passes.items()}

    def row(label: str, k: str) -> list[str]:
        w, c = stats[k]
        return [label, f"{w.median * 1e3:.3f} ({w.p10 * 1e3:.3f}–{w.p90 * 1e3:.3f})",
                f"{c.median * 1e3:.3f} ({c.p10 * 1e3:.3f}–{c.p90 * 1e3:.3f})"]

    hop_wall = stats["served"][0].median - stats["inline"][0].median
    hop_cpu = stats["served"][1].median - stats["inline"][1].median
    cpu_prof, cpu_wall, cpu_cpu, _ = profiles["cpu"]
    wall_prof, wall_wall, wall_cpu, _ = profiles["wall"]
    base_cpu = passes["served"]
    ablation_rows = []
    for name in ablations:
        saved = Stats.of([b[1] - a[1] for a, b in zip(passes[name], base_cpu)])  # paired per pass
        w, c = stats[name]
        ablation_rows.append([name, f"{c.median * 1e3:.3f} ({c.p10 * 1e3:.3f}–{c.p90 * 1e3:.3f})",
                              f"{saved.median * 1e3:+.3f} ({saved.p10 * 1e3:+.3f}…{saved.p90 * 1e3:+.3f})",
                              f"{100 * saved.median / stats['served'][1].median:.0f}%",
                              f"{w.median * 1e3:.3f}"])
    tree = cpu_prof.output_text(unicode=True, color=False, show_all=False, time="percent_of_total").splitlines()
    from importlib.metadata import version

    report = "\n".join([
        f"# Profile of the hot path: by-name fetch with an API key ({'embedded default: SQLite' if backend == 'sqlite' else 'Postgres + Redis'}, in-process)",
        "",
        *[f"- {f}" for f in machine_facts()],
        f"- load average at the end {' / '.join(f'{x:.2f}' for x in os.getloadavg())} (start "
        f"{' / '.join(f'{x:.2f}' for x in load_start)}); pyinstrument {version('pyinstrument')} (interval 0.2 ms, "
        f"async_mode=disabled), FastAPI {version('fastapi')}, Starlette {version('starlette')}, pydantic "
        f"{version('pydantic')}, limits {version('limits')}; whole run {(time.perf_counter() - started_all):.0f} s",
        f"- {requests:,} requests (wall profile; {max(200, requests // 2):,} for the CPU profile): `GET /v1/orgs/{{org}}/prompts/by-name/{{name}}?label=production` with "
        f"`Authorization: Bearer pfk_…` (prompts:read), cycling over {len(paths)} corpus prompts, all answered 200. "
        "The app is built as `promptforge serve` builds it (`interfaces.bootstrap.build` + `create_app`: "
        + ("SQLite under a temp dir, projections in-process and idle, the rate limiter counting in memory"
           if backend == "sqlite" else
           f"Postgres (database `{db.name if db else ''}`, pool size {pool_size}) + Redis db 14 for the rate limiter, "
           "projections in-process and idle (in production a worker runs them)")
        + ", JSON access log to a file, metrics on, the limiter's limit raised so it never refuses, vectors off) "
        "and called through "
        "`httpx.ASGITransport` from an asyncio loop in the profiled thread: no sockets, no uvicorn/httptools.",
        "- pyinstrument samples one thread, so in the profiled passes FastAPI's `run_in_threadpool` is a direct "
        "call: the two thread hops per request (the sync `org_scope` dependency and the sync endpoint) are not in "
        "the profiles; the timed passes below measure them. **CPU profile**: pyinstrument's clock set to "
        "`time.thread_time` (this thread's CPU time: steady on a shared machine, excludes waiting). **Wall "
        "profile**: its default clock (includes waiting for locks, for a new thread to start, and for a core "
        "while other jobs run).",
        "",
        f"## Per request, no profiler ({per_pass * 5:,} requests per variant, interleaved {per_block} at a time; "
        f"median (p10–p90) over 5 groups of {per_pass:,})",
        "",
        markdown_table(["pass", "wall ms (median of requests)", "process CPU ms / request (all threads)"], [
            row("PromptForge fetch, as served (sync dependency + endpoint in the anyio thread pool)", "served"),
            row("PromptForge fetch, thread pool replaced by direct calls (as profiled)", "inline"),
            ["→ difference (served − direct): the two thread hops, within the noise", f"{hop_wall * 1e3:.3f}",
             f"{hop_cpu * 1e3:.3f}"],
            row("one thread hop alone: `await run_in_threadpool(noop)` (2,000 per pass)", "hop"),
            row("ceiling GET (bench/ceiling_app.py: async route, JWT check, ~1 KB dict), same harness", "ceiling"),
        ]),
        "",
        f"## What one request does below the app (calls per request, counted over {counted} requests as served)",
        "",
        markdown_table(["call", "per request"], [[k, f"{v / counted:.2f}"] for k, v in sorted(calls.items())]),
        "",
        "On Postgres every psycopg statement and every transaction command (BEGIN, COMMIT, ROLLBACK) is one round "
        "trip to the server, every Redis command one round trip to Redis; on SQLite they are calls into the "
        "library in this process. A pooled connection is pinged on checkout only when it may be gone (its socket "
        "has input while idle, or it was idle 30 s: projections.liveness, adr/0030; a ping is one more statement, "
        "counted among the psycopg statements). Not counted: the in-process runners' "
        f"polling on their own threads during the pass (in all, not per request: {background}).",
        "",
        "## What each piece costs: switched off in this process (as served, no profiler, interleaved with the "
        "baseline, paired per group)",
        "",
        markdown_table(["variant", "process CPU ms / request", "CPU saved vs as served (p10…p90)",
                        "saved / as served", "wall ms (median)"], [
            ["as served (baseline of the rows below)", f"{stats['served'][1].median * 1e3:.3f}", "–", "–",
             f"{stats['served'][0].median * 1e3:.3f}"], *ablation_rows]),
        "",
        "Switches (bench-only, on this process's objects): `app.state.rate_limiter = None` (no bucket counted); the "
        "`promptforge.http` logger disabled (no access line); `container.app.repository.deepcopy_from_cache = False` "
        "(the aggregate cache, AGGREGATE_CACHE_MAXSIZE=1000 with fast-forward as interfaces/event_store.py sets it, "
        "hands out its cached object instead of a deep copy: safe only for read-only loads such as the API key and "
        "the organisation of a query); `observe_http` a no-op.",
        "",
        f"Profiled passes (profiler overhead included): wall profile {profiled_n['wall']:,} requests, "
        f"{wall_wall:.1f} s wall / {wall_cpu:.1f} s CPU, {wall_prof.last_session.sample_count:,} samples; CPU profile "
        f"{profiled_n['cpu']:,} requests, {cpu_wall:.1f} s wall / {cpu_cpu:.1f} s CPU, "
        f"{cpu_prof.last_session.sample_count:,} samples. The profiler's overhead is per Python call, so code made of "
        "many small calls (SQLAlchemy statement building, FastAPI parameter handling, deepcopy) is inflated more "
        "than C work (sqlite3): the switched-off costs above are the unbiased numbers, the profiles say where "
        "inside. The app call (the middleware's `__call__`) is "
        f"{100 * app_total['cpu'] / analysed['cpu']['total']:.0f}% (CPU) / "
        f"{100 * app_total['wall'] / analysed['wall']['total']:.0f}% (wall) of the profiled time; the rest "
        "is the httpx client, the ASGI transport and the event loop. µs below are the profiles' (inflated by the "
        "profiler, roughly alike everywhere): read the percentages.",
        "",
        "## Where the app's time goes (inclusive, outermost frame; indented rows are parts of the row above)",
        "",
        markdown_table(["phase", "CPU µs / request", "% of app (CPU)", "wall µs / request", "% of app (wall)"],
                       phase_rows),
        "",
        "## Self time by library / layer, inside the app call (a C function counts where its Python caller lives, "
        "except sqlite3's own calls)",
        "",
        markdown_table(["where", "CPU µs / request", "% (CPU)", "wall µs / request", "% (wall)"], bucket_rows),
        "",
        "## Top functions by self time, CPU profile",
        "",
        markdown_table(["function", "CPU µs / request", "% of the app call"], top("cpu", "self", 30)),
        "",
        "## Top functions by self time, wall profile",
        "",
        markdown_table(["function", "wall µs / request", "% of the app call"], top("wall", "self", 15)),
        "",
        "## Top functions by inclusive time, CPU profile (outermost occurrence per stack)",
        "",
        markdown_table(["function", "CPU µs / request", "% of the app call"], top("cpu", "inclusive", 45)),
        "",
        "## pyinstrument's tree, CPU profile (library frames collapsed; % of the profiled time)",
        "",
        "```",
        *tree[:200],
        *(["... (truncated)"] if len(tree) > 200 else []),
        "```",
        "",
    ])
    print(report)
    write_results(out, report)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


# -- profile of the writes -------------------------------------------------------------------------
#: Where the time of a write goes (same conventions as PHASES: inclusive, outermost match).
WRITE_PHASES = [
    ("whole app call (RequestContextMiddleware.__call__)", _fn("interfaces/http/middleware.py", "__call__")),
    ("  FastAPI route matching", _fn("fastapi/routing.py", "matches")),
    ("  FastAPI route handling (router `handle`)", _fn("fastapi/routing.py", "handle")),
    ("    FastAPI solve_dependencies (parameters, body, dependencies)", _fn("fastapi/dependencies/utils.py",
                                                                          "solve_dependencies")),
    ("      request body: read + JSON decode (Starlette Request.json)", _fn("starlette/requests.py", "json")),
    ("      request body: pydantic validation (request_body_to_args)", _fn("fastapi/dependencies/utils.py",
                                                                         "request_body_to_args")),
    ("      org_scope dependency (log head, authenticate, grant, rate limit)", _fn("interfaces/http/deps.py",
                                                                                   "dependency")),
    ("        request_access: LogHead.check (head read + new notifications read, evictions)",
     _fn("application/log_head.py", "check")),
    ("        access cache: grant (Organisation reloaded after each write)", _fn("application/request_access.py",
                                                                                 "grant")),
    ("        access JWT verified (TokenService.verify_access)", _fn("interfaces/http/security.py", "verify_access")),
    ("        rate limiter (hit_pair)", _fn("interfaces/http/ratelimit.py", "hit_pair")),
    ("    FastAPI run_endpoint_function (the endpoint)", _fn("fastapi/routing.py", "run_endpoint_function")),
    ("      @command wrapper (application/commands.py run)", _fn("application/commands.py", "run")),
    ("        KeyedLocks.hold (per-org lock; advisory lock on Postgres)", _fn("application/serialise.py", "hold")),
    ("        tenacity Retrying.__call__ overhead (incl. the command)", _fn("tenacity/__init__.py", "__call__")),
    ("          BaseApp.grant (policy: Organisation loaded from the repository)", _fn("application/base.py",
                                                                                     "grant")),
    ("          _idempotent (request fingerprint: json + sha256)", _fn("application/base.py", "_idempotent")),
    ("          request_fingerprint", _fn("application/base.py", "request_fingerprint")),
    ("          Prompt.create (domain: validation, template parse)", _fn("domain/prompt.py", "create")),
    ("          Prompt.revise (domain)", _fn("domain/prompt.py", "revise")),
    ("          _prompt (Prompt loaded from the repository)", _fn("application/prompts.py", "_prompt")),
    ("          _exists (name index: a store read)", _fn("application/base.py", "_exists")),
    ("          _check_composition", _fn("application/prompts.py", "_check_composition")),
    ("          BaseApp.authorise (policy: from the access cache after a head check)", _fn("application/base.py",
                                                                                            "authorise")),
    ("          QuotaBatches.count_and_save (queue, quota lock, count, batch save)",
     _fn("application/quota_batches.py", "count_and_save")),
    ("          PromptQuota.count_prompt", _fn("domain/quota.py", "count_prompt")),
    ("          BaseApp._save → Application.save", _fn("application/base.py", "_save")),
    ("            recorder insert_events (the transaction: lock, insert, commit)",
     _fn("eventsourcing/", "insert_events")),
    ("            mapper to_stored_event (encode events)", _fn("eventsourcing/persistence.py", "to_stored_event")),
    ("            snapshotting (take_snapshot)", _fn("eventsourcing/application.py", "take_snapshots")),
    ("            commit listeners (BaseApp._notify: projection wake / Redis nudge)", _fn("application/base.py",
                                                                                       "_notify")),
    ("    FastAPI serialize_response (response model)", _fn("fastapi/routing.py", "serialize_response")),
    ("  access log line (middleware.access_line → JsonFormatter → write + flush)",
     _fn("interfaces/http/middleware.py", "access_line")),
    ("  metrics (observe_http)", _fn("interfaces/observability/metrics.py", "observe_http")),
    ("across the app: eventsourcing Repository.get (aggregate loads)", _fn("eventsourcing/application.py", "get",
                                                                           "Repository")),
    ("across the app: copy.deepcopy (the aggregate cache copies what it hands out)", _fn("copy.py", "deepcopy")),
    ("across the app: eventsourcing EventStore.get (replay / fast-forward reads)",
     _fn("eventsourcing/persistence.py", "get", "EventStore")),
    ("across the app: mapper to_domain_event (decode events read)", _fn("eventsourcing/persistence.py",
                                                                        "to_domain_event")),
    ("across the app: sqlite3 C calls (execute, fetch, commit, rollback, ...)", SQLITE_C),
    ("across the app: psycopg Cursor.execute (a statement: one round trip to Postgres)",
     _fn("psycopg/cursor.py", "execute", "Cursor")),
    ("across the app: psycopg transaction commands (BEGIN / COMMIT / ROLLBACK)",
     _fn("psycopg/_connection_base.py", "_exec_command")),
    ("across the app: redis execute_command (one round trip to Redis)", _fn("redis/client.py", "execute_command",
                                                                            "Redis")),
]


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads by group (from /proc/self/task: user + system)."""
    import threading

    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: Counter = Counter()
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "other")
        group = ("request (event loop + anyio workers)" if name == "MainThread" or name.startswith("AnyIO")
                 else name if name in ("projection-runner", "webhook-dispatcher") else "other threads")
        out[group] += (int(fields[11]) + int(fields[12])) / tick
    return dict(out)


def profile_writes(key: str, requests: int, out: Path, db: BenchDatabase | None = None, pool_size: int = 4) -> int:
    """Profile a write workload, (d) create or (e) revise, in-process, as `profile_fetch` does the
    fetch: the app built as `promptforge serve` builds it, called through httpx's ASGI transport.

    On SQLite the projections run in a thread of this process (as served): their CPU is measured
    apart (per-thread CPU from /proc) and profiled apart (a catch-up over the events of a pass, run
    in this thread). On Postgres the in-process runners are stopped after the set-up (as served, a
    dramatiq worker projects; nudges go to Redis): the projections' catch-up is profiled the same way."""
    import asyncio
    import logging
    import statistics

    import fastapi.dependencies.utils as fastapi_deps
    import fastapi.routing as fastapi_routing
    from fastapi.testclient import TestClient
    from pyinstrument import Profiler
    from pyinstrument.stack_sampler import get_stack_sampler

    started_all = time.perf_counter()
    load_start = os.getloadavg()
    tmp, log_file, backend, container, app = _profiled_app(db, pool_size, "pf-bench-profile-w-")
    target = Target("profile", None)  # type: ignore[arg-type]
    revise_pool = 16
    with TestClient(app) as tc:
        target.setup(corpus_prompts(20), revise_pool, client=tc)
    runners = list(container.runners)
    if backend == "postgres":  # as served: the API process does not project
        for runner in runners:
            runner.stop()
    headers = {"Authorization": f"Bearer {target.jwt}", "Content-Type": "application/json"}
    create_path = f"/v1/orgs/{target.create_org}/prompts"
    seq = 0

    def next_request() -> tuple[str, bytes]:
        nonlocal seq
        seq += 1
        if key == "d":
            return create_path, json.dumps({"name": f"new/p-{seq}", "template": WRITE_TEMPLATE,
                                            "message": "bench create"}).encode()
        path = target.revise_paths[seq % len(target.revise_paths)]
        return path, json.dumps({"base_version": target.versions[path], "message": "bench revise",
                                 "template": f"{WRITE_TEMPLATE} (p-{seq})"}).encode()

    from interfaces.http import deps as pf_deps, head_check as pf_head_check

    hopping = (fastapi_routing, fastapi_deps, pf_deps, pf_head_check)
    threadpool = tuple(module.run_in_threadpool for module in hopping)

    async def direct(func, *args, **kwargs):
        return func(*args, **kwargs)

    def set_inline(on: bool) -> None:
        for module, original in zip(hopping, threadpool):
            module.run_in_threadpool = direct if on else original

    async def drive(n: int) -> list[float]:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50123))
        times = []
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as ac:
            for _ in range(n):
                path, body = next_request()
                t0 = time.perf_counter()
                r = await ac.post(path, content=body, headers=headers)
                times.append(time.perf_counter() - t0)
                if r.status_code != 201:
                    raise RuntimeError(f"{r.status_code} {r.text[:300]}")
                if key == "e":
                    target.versions[path] = r.json()["version"]
        return times

    def settle() -> None:
        """Wait until the in-process projections have caught up with the log (SQLite, while they run)."""
        if backend == "sqlite" and all(r._thread is not None for r in runners):
            head = container.app.head_position()
            deadline = time.monotonic() + 60
            while min(container.supervisor.positions().values()) < head and time.monotonic() < deadline:
                time.sleep(0.05)

    def timed(n: int, inline: bool) -> tuple[float, float, dict[str, float]]:
        """(median wall s per request, process CPU s per request, CPU s per request by thread group);
        the projections' catch-up of these requests' events included (waited for)."""
        settle()
        set_inline(inline)
        try:
            c0, t0 = time.process_time(), _thread_cpu()
            times = asyncio.run(drive(n))
            settle()
            c1, t1 = time.process_time(), _thread_cpu()
        finally:
            set_inline(False)
        return statistics.median(times), (c1 - c0) / n, {g: (t1.get(g, 0) - t0.get(g, 0)) / n for g in t1}

    timed(100, False)  # warm-up
    passes: dict[str, list] = {"served": [], "served, projections stopped": [], "inline, projections stopped": []}
    per_pass = max(50, requests // 5)
    for _ in range(3):  # as `serve` runs: projections (and, on SQLite, webhooks) in this process's threads
        passes["served"].append(timed(per_pass, False))
    # The request path alone: the in-process runners stopped (on Postgres they already are, as served).
    for runner in runners:
        runner.stop()
    timed(50, True)
    for _ in range(5):
        for variant in ("served, projections stopped", "inline, projections stopped"):
            passes[variant].append(timed(per_pass, variant.startswith("inline")))

    def profile(n: int):
        sampler = get_stack_sampler()
        profiler = Profiler(interval=0.0002, async_mode="disabled")
        sampler.timer_func = time.thread_time
        settle()
        set_inline(True)
        try:
            profiler.start()
            c0 = time.thread_time()
            asyncio.run(drive(n))
            cpu = time.thread_time() - c0
            profiler.stop()
        finally:
            set_inline(False)
            sampler.timer_func = None
        return profiler, cpu

    counted = 100

    async def count_pass() -> CallCounter:
        with CallCounter(container, app.state.rate_limiter) as counter:
            await drive(counted)
        return counter

    settle()
    counter = asyncio.run(count_pass())
    prof, prof_cpu = profile(requests)
    # The projections' share, profiled in this thread: (runners stopped) write, then catch up here.
    supervisor = container.supervisor
    supervisor.catch_up(list(supervisor.sql))
    before = container.app.head_position()
    set_inline(True)
    asyncio.run(drive(per_pass))
    set_inline(False)
    written = container.app.head_position() - before
    sampler = get_stack_sampler()
    proj_prof = Profiler(interval=0.0002, async_mode="disabled")
    sampler.timer_func = time.thread_time
    proj_prof.start()
    c0 = time.thread_time()
    supervisor.catch_up(list(supervisor.sql))
    proj_cpu = time.thread_time() - c0
    proj_prof.stop()
    sampler.timer_func = None
    container.close()
    log_file.close()
    logging.getLogger().handlers.clear()

    analysed = analyse(prof.last_session.root_frame(), WRITE_PHASES)
    app_total = analysed["phases"][WRITE_PHASES[0][0]]

    def us(v: float) -> str:
        return f"{1e6 * v / requests:,.0f}"

    def share(v: float) -> str:
        return f"{100 * v / app_total:.1f}%"

    phase_rows = [[label.replace("  ", "&nbsp;&nbsp;"), us(analysed["phases"][label]), share(analysed["phases"][label])]
                  for label, _ in WRITE_PHASES]
    bucket_rows = [[k, us(v), share(v)] for k, v in analysed["buckets"].most_common(20)]

    def top(kind: str, n: int) -> list[list[str]]:
        items = analysed[kind].most_common()
        if kind == "inclusive":
            items = [(k, v) for k, v in items if v <= app_total * 1.0001]
        return [[f"`{k}`", us(v), share(v)] for k, v in items[:n]]

    groups = sorted({g for v in passes.values() for _, _, t in v for g in t})

    def row(variant: str) -> list[str]:
        w = Stats.of([p[0] for p in passes[variant]])
        c = Stats.of([p[1] for p in passes[variant]])
        cells = [variant, f"{w.median * 1e3:.2f} ({w.p10 * 1e3:.2f}–{w.p90 * 1e3:.2f})",
                 f"{c.median * 1e3:.2f} ({c.p10 * 1e3:.2f}–{c.p90 * 1e3:.2f})"]
        for g in groups:
            s = Stats.of([p[2].get(g, 0.0) for p in passes[variant]])
            cells.append(f"{s.median * 1e3:.2f}")
        return cells

    proj_total = proj_prof.last_session.root_frame().time
    proj_tree = proj_prof.output_text(unicode=True, color=False, show_all=False,
                                      time="percent_of_total").splitlines()
    tree = prof.output_text(unicode=True, color=False, show_all=False, time="percent_of_total").splitlines()
    from importlib.metadata import version

    what = {"d": "create a prompt (`POST /v1/orgs/{org}/prompts`, one org, unique names)",
            "e": "revise a prompt (`POST /v1/orgs/{org}/prompts/{id}/versions`, 16 prompts round-robin)"}[key]
    report = "\n".join([
        f"# Profile of a write over HTTP: {what} ({'embedded default: SQLite' if backend == 'sqlite' else 'Postgres + Redis'}, in-process)",
        "",
        *[f"- {f}" for f in machine_facts()],
        f"- load average at the end {' / '.join(f'{x:.2f}' for x in os.getloadavg())} (start "
        f"{' / '.join(f'{x:.2f}' for x in load_start)}); pyinstrument {version('pyinstrument')} (interval 0.2 ms, "
        f"CPU clock `time.thread_time`, async_mode=disabled), FastAPI {version('fastapi')}, pydantic "
        f"{version('pydantic')}, eventsourcing {version('eventsourcing')}; whole run "
        f"{(time.perf_counter() - started_all):.0f} s",
        "- The app is built as `promptforge serve` builds it (`interfaces.bootstrap.build` + `create_app`, JSON access "
        "log to a file, metrics, the rate limiter counting, vectors off) and called through `httpx.ASGITransport` "
        "with the user's access JWT, one request at a time. "
        + ("SQLite under a temp dir; the projections run in their thread of this process, as served."
           if backend == "sqlite" else
           f"Postgres (database `{db.name}`, pool size {pool_size}) + Redis; the in-process projection runners are "
           "stopped after the set-up (as served, a dramatiq worker projects; the API nudges it through Redis)."),
        "",
        f"## Per request, no profiler ({per_pass} requests per pass; median (p10–p90) over the passes)",
        "",
        markdown_table(["variant", "wall ms (median of requests)", "process CPU ms / request",
                        *[f"of which {g}" for g in groups]], [row(v) for v in passes]),
        "",
        "`served`: sync dependency and endpoint through anyio's thread pool, as uvicorn serves them, with the "
        "in-process runners as `promptforge serve` starts them (3 passes; on SQLite each waits for the projections "
        "to catch up, so their and the webhook dispatcher's work on the pass's events is counted); `projections "
        "stopped`: the request path alone (5 passes each, interleaved); `inline`: FastAPI's `run_in_threadpool` "
        "replaced by a direct call (as profiled). Process CPU is exact; the split by thread group comes from "
        "/proc/self/task ticks (10 ms: read the medians).",
        "",
        f"## What one request does below the app (calls per request, counted over {counted} requests as served)",
        "",
        markdown_table(["call", "per request"], [[k, f"{v / counted:.2f}"] for k, v in sorted(counter.counts.items())]),
        "",
        f"## Where the request's time goes (CPU profile, {requests:,} requests, {prof_cpu:.1f} s of this thread's CPU "
        f"with the profiler; inclusive, outermost frame; indented rows are parts of the row above)",
        "",
        markdown_table(["phase", "CPU µs / request (profiled)", "% of the app call"], phase_rows),
        "",
        "## Self time by library / layer, inside the app call",
        "",
        markdown_table(["where", "CPU µs / request", "%"], bucket_rows),
        "",
        "## Top functions by self time",
        "",
        markdown_table(["function", "CPU µs / request", "% of the app call"], top("self", 30)),
        "",
        "## Top functions by inclusive time (outermost occurrence per stack)",
        "",
        markdown_table(["function", "CPU µs / request", "% of the app call"], top("inclusive", 50)),
        "",
        f"## The projections' share: one catch-up over the events of {per_pass} requests ({written} events), "
        f"run in this thread",
        "",
        f"{proj_cpu * 1e3 / per_pass:.2f} ms of CPU per request ({proj_cpu * 1e3 / max(1, written):.2f} ms per event) "
        f"without the profiler's... (with the profiler running: {proj_total * 1e3 / per_pass:.2f} ms per request). "
        "Where it goes:",
        "",
        "```",
        *proj_tree[:80],
        "```",
        "",
        "## pyinstrument's tree of the requests (library frames collapsed; % of the profiled time)",
        "",
        "```",
        *tree[:220],
        *(["... (truncated)"] if len(tree) > 220 else []),
        "```",
        "",
    ])
    print(report)
    write_results(out, report)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
