"""Commands/s through the PromptForge application on Postgres, side by side with its ceilings.

Every repetition ("round") measures, one after the other and for 1 and 8 threads/clients:
  (a) pgbench: single-row INSERT per transaction (the database's own ceiling), and the same
      through psycopg from Python threads (what a Python client can push at all);
  (b) eventsourcing: `app.save(BenchTick())` of a trivial one-event aggregate through the same
      application's recorder (the library's ceiling: `LOCK TABLE ... IN EXCLUSIVE MODE` per save);
  (c) PromptForge commands: a mix of `revise_prompt` (each on a prompt no other thread touches),
      `create_prompt` (3 events: Prompt.Created, PromptNameIndex.Created, Organisation.PromptAdded)
      and `move_label` (compare-and-set on "staging"), by the owner of the organisations;
  (c') the same mix with eventsourcing's aggregate cache on (AGGREGATE_CACHE_MAXSIZE, a library
      setting; the application does not set it) to measure what loading the Organisation and
      Prompt aggregates from the store on every command costs;
  (c'') the same mix, and (b') the trivial saves, with POSTGRES_PRE_PING=n instead of the "y" that
      interfaces/event_store.py sets (a liveness check, i.e. one extra round trip, on every
      connection checkout: every recorder read and every save);
  (d) the same mix on the embedded SQLite backend, for reference.
Our commands/s are reported as a fraction of each ceiling measured in the same round (paired
ratios, then median and spread over the rounds). A final untimed pass breaks one command of each
kind down into wall time, client CPU time and event-store reads.

Projections are not running (inprocess_projections=False): this measures the write side only.
Users are registered once (argon2 costs ~110 ms); one owner runs all commands.

Usage: .venv/bin/python bench/commands_throughput.py [--reps 5] [--commands 600] [--threads 1 8]
       [--orgs 4] [--pool 800] [--mix revise=60,create=30,label=10] [--seconds 4]
       [--aggregate-cache 1000 | --no-cache-variant] [--no-preping-variant] [--no-sqlite]
       [--db promptforge_bench] [--keep]
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402
from eventsourcing.persistence import IntegrityError  # noqa: E402

from _common import (  # noqa: E402
    STATS_HEADERS, BenchDatabase, BenchTick, CpuMeter, Stats, machine_facts, markdown_table, num, pct,
    library_env, run_threads, sqlite_settings, write_results,
)
from application import Principal  # noqa: E402
from interfaces.bootstrap import Container, build  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "commands_throughput.md"
PASSWORD = "bench-password-0123456789"


# -- the workload -----------------------------------------------------------------------------
@dataclass
class PromptState:
    id: UUID
    org: UUID
    latest: int = 1
    staging: int = 0  # 0 = label not set


@dataclass
class RunCounters:
    saves: int = 0
    integrity_errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def count_saves(container: Container) -> RunCounters:
    """Wrap this app instance's save() to count saves and IntegrityErrors (retried by the app)."""
    app = container.app
    counters = RunCounters()
    original = app.save

    def save(*args, **kwargs):
        try:
            result = original(*args, **kwargs)
        except IntegrityError:
            with counters.lock:
                counters.integrity_errors += 1
            raise
        with counters.lock:
            counters.saves += 1
        return result

    app.save = save  # instance attribute: only this container's app, only in this process
    return counters


class Workload:
    """Orgs, one owner and a pool of prompts; runs of N commands split over T threads.

    In a run with T threads, thread i only touches pool prompts whose index is i mod T, so
    revisions and label moves never race; it walks its share round-robin across runs, so every
    prompt grows at the same pace. create_prompt goes to org (i + k) mod n_orgs: with more threads
    than orgs, concurrent creates in one org race on its Organisation aggregate (prompt counter)
    and the application retries them (counted as IntegrityErrors)."""

    def __init__(self, container: Container, n_orgs: int, pool: int, mix: dict[str, int], tag: str):
        self.container = container
        self.n_orgs = n_orgs
        self.pool_size = pool
        self.mix = mix
        self.tag = tag
        self.orgs: list[UUID] = []
        self.prompts: list[PromptState] = []
        self.cursors: dict[tuple[int, int], int] = {}
        self.serial = 0
        self.serial_lock = threading.Lock()

    def next_serial(self) -> int:
        with self.serial_lock:
            self.serial += 1
            return self.serial

    def setup(self, threads: int = 8) -> float:
        app = self.container.app
        started = time.perf_counter()
        owner, _ = app.register_user(f"owner-{self.tag}@bench.local", PASSWORD, "Bench Owner", "bench-setup")
        self.principal = Principal.user(owner)
        for i in range(self.n_orgs):
            org = app.create_organisation(self.principal, f"Bench Org {i}", "bench-setup").id
            app.update_organisation(self.principal, org, "bench-setup", plan="PRO")
            self.orgs.append(org)
        states: list[PromptState | None] = [None] * self.pool_size

        def creator(i: int):
            def work():
                for j in range(i, self.pool_size, threads):
                    org = self.orgs[j % self.n_orgs]
                    result = app.create_prompt(
                        self.principal, org, name=f"pool prompt {j}", template=_template(j, 1),
                        tags=["bench", f"t{j % 7}"], model_config={"model": "gpt-4o-mini", "temperature": 0.2},
                        message="initial", request_id=f"bench-setup-{j}",
                    )
                    states[j] = PromptState(result.id, org)
            return work

        run = run_threads([creator(i) for i in range(threads)])
        if run.errors:
            raise RuntimeError(f"setup failed: {run.errors[:3]}")
        self.prompts = [s for s in states if s is not None]
        return time.perf_counter() - started

    def plan(self, n_commands: int, threads: int, seed: int) -> list[list[str]]:
        rng = random.Random(seed)
        kinds, weights = zip(*self.mix.items())
        per_thread = [n_commands // threads + (1 if i < n_commands % threads else 0) for i in range(threads)]
        return [rng.choices(kinds, weights, k=n) for n in per_thread]

    def _next_prompt(self, threads: int, i: int) -> PromptState:
        share = range(i, len(self.prompts), threads)
        k = self.cursors.get((threads, i), 0)
        self.cursors[(threads, i)] = k + 1
        return self.prompts[share[k % len(share)]]

    def worker(self, container: Container, ops: list[str], threads: int, i: int):
        app = container.app
        principal = self.principal

        def work():
            for k, op in enumerate(ops):
                self.do(app, principal, op, threads, i, k)
        return work

    def do(self, app, principal, op: str, threads: int, i: int, k: int) -> str:
        rid = f"bench-{self.tag}-{threads}-{i}-{k}"
        if op == "label":
            st = self._next_prompt(threads, i)
            target = st.latest if st.staging != st.latest else st.latest - 1
            if target < 1:
                op = "revise"
            else:
                app.move_label(principal, st.org, st.id, "staging", target, rid, expected_version=st.staging)
                st.staging = target
                return op
        if op == "revise":
            st = self._next_prompt(threads, i)
            app.revise_prompt(principal, st.org, st.id, base_version=st.latest, request_id=rid,
                              template=_template(st.latest, st.latest + 1), message=f"revision {st.latest + 1}")
            st.latest += 1
            return op
        if op == "create":
            n = self.next_serial()
            org = self.orgs[(i + k) % self.n_orgs]
            app.create_prompt(principal, org, name=f"new prompt {self.tag} {n}", template=_template(n, 1),
                              tags=["bench", "new"], model_config={"model": "gpt-4o-mini"},
                              message="initial", request_id=rid)
            return op
        raise ValueError(op)

    def run(self, container: Container, n_commands: int, threads: int, seed: int):
        plans = self.plan(n_commands, threads, seed)
        return run_threads([self.worker(container, ops, threads, i) for i, ops in enumerate(plans)])


def _template(seed: int, version: int) -> str:
    return (f"You are {{{{role}}}}, revision {version} of prompt {seed}. Answer the user's question "
            f"{{{{question}}}} in at most {{{{max_words}}}} words, citing sources where possible.")


# -- ceilings -------------------------------------------------------------------------------------
PGBENCH_SCRIPT = """\\set v random(1, 1000000000)
INSERT INTO bench_insert_ceiling (v, payload) VALUES (:v, 'bench');
"""


def prepare_insert_table(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.bench_insert_ceiling "
                     "(id bigserial PRIMARY KEY, v bigint NOT NULL, payload text NOT NULL)")


def pgbench_tps(db: BenchDatabase, clients: int, seconds: int, script: Path) -> float:
    cmd = ["pgbench", "-n", "-h", "127.0.0.1", "-U", "postgres", "-f", str(script),
           "-c", str(clients), "-j", str(clients), "-T", str(seconds), db.name]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
    if out.returncode != 0 or not match:
        raise RuntimeError(f"pgbench failed: {out.stderr.strip() or out.stdout.strip()}")
    return float(match.group(1))


def psycopg_insert_tps(db_url: str, clients: int, seconds: float) -> tuple[float, CpuMeter]:
    """The pgbench transaction from Python threads: one connection each, autocommit INSERTs."""
    conns = [psycopg.connect(db_url, autocommit=True) for _ in range(clients)]
    counts = [0] * clients
    stop = time.perf_counter() + seconds

    def worker(i: int):
        def work():
            rng = random.Random(i)
            conn, n = conns[i], 0
            while time.perf_counter() < stop:
                conn.execute("INSERT INTO bench_insert_ceiling (v, payload) VALUES (%s, 'bench')",
                             (rng.randrange(1_000_000_000),))
                n += 1
            counts[i] = n
        return work

    try:
        run = run_threads([worker(i) for i in range(clients)])
    finally:
        for c in conns:
            c.close()
    return sum(counts) / run.wall, run


def raw_saves(container: Container, n: int, threads: int):
    app = container.app
    per = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]

    def worker(k: int):
        def work():
            for _ in range(k):
                app.save(BenchTick())
        return work

    return run_threads([worker(k) for k in per])


# -- diagnostics: one command of each kind, broken down -----------------------------------------
def breakdown(container: Container, workload: Workload, per_kind: int) -> list[list[str]]:
    """Median wall / CPU time and recorder reads of each command kind, 1 thread, kinds interleaved
    (revise, create, label, raw save, revise, ...) so that load from other jobs hits all alike."""
    app = container.app
    current = ["?"]
    reads: Counter[tuple[str, str]] = Counter()
    recorders = {"events": app.recorder}
    if app.snapshots is not None:
        recorders["snapshots"] = app.snapshots.recorder
    for name, rec in recorders.items():
        def wrapped(*a, _name=name, _orig=rec.select_events, **kw):
            reads[(current[0], _name)] += 1
            return _orig(*a, **kw)
        rec.select_events = wrapped
    kinds = ("revise", "create", "label", "raw")
    walls: dict[str, list[float]] = {k: [] for k in kinds}
    cpus: dict[str, list[float]] = {k: [] for k in kinds}
    events: Counter[str] = Counter()
    try:
        for k in range(per_kind):
            for kind in kinds:
                current[0] = kind
                before = app.recorder.max_notification_id() or 0
                c0, t0 = time.process_time(), time.perf_counter()
                if kind == "raw":
                    app.save(BenchTick())
                else:
                    workload.do(app, workload.principal, kind, 1, 0, 10_000_000 + k)
                walls[kind].append(time.perf_counter() - t0)
                cpus[kind].append(time.process_time() - c0)
                events[kind] += (app.recorder.max_notification_id() or 0) - before
    finally:
        for rec in recorders.values():
            del rec.select_events  # drop the instance attribute, back to the class method
    rows = []
    for kind in kinds:
        w, c = Stats.of(walls[kind]), Stats.of(cpus[kind])
        rows.append([{"raw": "raw save (BenchTick)"}.get(kind, kind), num(w.median * 1e3), num(c.median * 1e3),
                     pct(c.median / w.median), num(reads[(kind, "events")] / per_kind),
                     num(reads[(kind, "snapshots")] / per_kind), num(events[kind] / per_kind)])
    return rows


def org_replay(container: Container, workload: Workload) -> str:
    """How many Organisation events each command replays (events after the last snapshot) and
    what replaying one costs in this process (`project_aggregate`, asserts on unless python -O)."""
    from eventsourcing.application import project_aggregate

    from domain.organisation import Organisation

    interval = container.app.snapshotting_intervals.get(Organisation)
    lengths, per_event = [], []
    for org in workload.orgs:
        events = list(container.app.events.get(org))
        lengths.append(len(events))
        c0 = time.process_time()
        for _ in range(20):
            project_aggregate(None, events)
        per_event.append((time.process_time() - c0) / (20 * len(events)))
    tail = Stats.of([n % interval if interval else n for n in lengths]).median
    return (f"Organisation streams at the end: {Stats.of(lengths).median:,.0f} events (median of {len(lengths)} orgs; "
            f"every create_prompt appends Organisation.PromptAdded); snapshot interval {interval}, so a load "
            f"replays 0–{(interval or 1) - 1} events after the snapshot ({tail:.0f} now, median). Replaying one "
            f"event costs {Stats.of(per_event).median * 1e6:.1f} µs of CPU in this process (Python asserts "
            f"{'on' if __debug__ else 'off (python -O)'}; eventsourcing's `project_aggregate` runs "
            f"`assert isinstance(event, CanMutateProtocol)`, a runtime-Protocol check, on every event).")


# -- main -----------------------------------------------------------------------------------------
def parse_mix(text: str) -> dict[str, int]:
    mix = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        if k.strip() not in ("revise", "create", "label"):
            raise argparse.ArgumentTypeError(f"unknown command {k!r} in --mix")
        mix[k.strip()] = int(v)
    return mix


@dataclass
class Series:
    """Per-round values of one measurement."""

    rate: list[float] = field(default_factory=list)
    client_cores: list[float] = field(default_factory=list)
    machine_busy: list[float] = field(default_factory=list)
    retries: int = 0
    saves: int = 0
    commands: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, rate: float, run=None) -> None:
        self.rate.append(rate)
        if run is not None:
            self.client_cores.append(run.client_cores)
            self.machine_busy.append(run.machine_busy)
            self.errors.extend(run.errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="rounds; each measures everything once")
    parser.add_argument("--commands", type=int, default=600, help="commands per run (split over the threads)")
    parser.add_argument("--raw-saves", type=int, default=1500, help="trivial saves per run")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--orgs", type=int, default=4)
    parser.add_argument("--pool", type=int, default=800, help="pre-created prompts revised by the runs")
    parser.add_argument("--mix", type=parse_mix, default=parse_mix("revise=60,create=30,label=10"))
    parser.add_argument("--seconds", type=int, default=4, help="duration of each pgbench / psycopg run")
    parser.add_argument("--aggregate-cache", type=int, default=1000,
                        help="AGGREGATE_CACHE_MAXSIZE of the cached variant (library setting)")
    parser.add_argument("--no-cache-variant", action="store_true")
    parser.add_argument("--no-preping-variant", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-psycopg", action="store_true", help="skip the psycopg INSERT ceiling")
    parser.add_argument("--db", default="promptforge_bench")
    parser.add_argument("--keep", action="store_true", help="leave the database in place")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    os.environ.pop("AGGREGATE_CACHE_MAXSIZE", None)
    max_threads = max(args.threads)
    pool_size = max(10, max_threads + 2)
    have_pgbench = shutil.which("pgbench") is not None

    tmp = Path(tempfile.mkdtemp(prefix="pf-bench-"))
    started_all = time.perf_counter()
    with BenchDatabase(args.db, keep=args.keep) as db:
        facts = machine_facts(db.url)
        prepare_insert_table(db.url)
        script = tmp / "insert.sql"
        script.write_text(PGBENCH_SCRIPT)

        schema = db.create_schema("commands")
        pg = build(db.settings(schema, tmp / "pg", pool_size=pool_size))
        pg_counters = count_saves(pg)
        workload = Workload(pg, args.orgs, args.pool, args.mix, "pg")
        setup_s = workload.setup(threads=max_threads)
        print(f"postgres setup: {len(workload.prompts)} prompts in {args.orgs} orgs in {setup_s:.1f}s")

        cached = noping = None
        if not args.no_cache_variant:
            with library_env(AGGREGATE_CACHE_MAXSIZE=str(args.aggregate_cache)):
                cached = build(db.settings(schema, tmp / "pg-cached", pool_size=pool_size))
            cached_counters = count_saves(cached)
            assert cached.app.repository.cache is not None
        if not args.no_preping_variant:
            with library_env(POSTGRES_PRE_PING="n"):
                noping = build(db.settings(schema, tmp / "pg-noping", pool_size=pool_size))
            noping_counters = count_saves(noping)
            assert noping.app.recorder.datastore.pre_ping is False and pg.app.recorder.datastore.pre_ping

        lite = lite_workload = None
        if not args.no_sqlite:
            lite = build(sqlite_settings(tmp / "sqlite"))
            lite_counters = count_saves(lite)
            lite_workload = Workload(lite, args.orgs, args.pool, args.mix, "lite")
            s = lite_workload.setup(threads=max_threads)
            print(f"sqlite setup: {len(lite_workload.prompts)} prompts in {s:.1f}s")

        # Warm-up (untimed): connections in every pool, caches, first-call costs.
        for t in args.threads:
            raw_saves(pg, 50 * t, t)
            workload.run(pg, 20 * t, t, seed=-t)
            if cached:
                workload.run(cached, 20 * t, t, seed=-100 - t)
            if noping:
                raw_saves(noping, 50 * t, t)
                workload.run(noping, 20 * t, t, seed=-200 - t)
            if lite:
                lite_workload.run(lite, 20 * t, t, seed=-t)
        if have_pgbench:
            pgbench_tps(db, 1, 1, script)

        series: dict[tuple[str, int], Series] = {}

        def s(name: str, t: int) -> Series:
            return series.setdefault((name, t), Series())

        def commands(name: str, container: Container, wl: Workload, counters: RunCounters, t: int, seed: int):
            e0, v0 = counters.integrity_errors, counters.saves
            run = wl.run(container, args.commands, t, seed)
            entry = s(name, t)
            entry.add(args.commands / run.wall, run)
            entry.retries += counters.integrity_errors - e0
            entry.saves += counters.saves - v0
            entry.commands += args.commands

        for rep in range(args.reps):
            t0 = time.perf_counter()
            for t in args.threads:
                if have_pgbench:
                    s("pgbench", t).add(pgbench_tps(db, t, args.seconds, script))
                if not args.no_psycopg:
                    rate, run = psycopg_insert_tps(db.url, t, args.seconds)
                    s("psycopg", t).add(rate, run)
                run = raw_saves(pg, args.raw_saves, t)
                s("raw", t).add(args.raw_saves / run.wall, run)
                if noping:
                    run = raw_saves(noping, args.raw_saves, t)
                    s("raw_noping", t).add(args.raw_saves / run.wall, run)
                commands("pg", pg, workload, pg_counters, t, seed=rep * 100 + t)
                if cached:
                    commands("pg_cached", cached, workload, cached_counters, t, seed=rep * 100 + t + 50)
                if noping:
                    commands("pg_noping", noping, workload, noping_counters, t, seed=rep * 100 + t + 70)
                if lite:
                    commands("sqlite", lite, lite_workload, lite_counters, t, seed=rep * 100 + t)
            summary = ", ".join(f"{n}/{t}: {num(v.rate[-1])}" for (n, t), v in series.items())
            print(f"round {rep + 1}/{args.reps} ({time.perf_counter() - t0:.0f}s): {summary}", flush=True)

        diag = breakdown(pg, workload, per_kind=100)
        diag_cached = breakdown(cached, workload, per_kind=100) if cached else None
        diag_noping = breakdown(noping, workload, per_kind=100) if noping else None
        versions = sum(p.latest for p in workload.prompts) / len(workload.prompts)
        replay_line = org_replay(pg, workload)
        head = pg.app.recorder.max_notification_id()

        for c in (pg, cached, noping, lite):
            if c is not None:
                c.close()
    shutil.rmtree(tmp, ignore_errors=True)
    total_s = time.perf_counter() - started_all

    # -- report -----------------------------------------------------------------------------------
    labels = {
        "pgbench": "(a) pgbench: 1-row INSERT per transaction",
        "psycopg": "(a') psycopg from Python threads: 1-row INSERT per transaction",
        "raw": "(b) eventsourcing `app.save(BenchTick())` (1 event, table lock)",
        "raw_noping": "(b') the same, POSTGRES_PRE_PING=n (variant)",
        "pg": "**PromptForge commands, Postgres**",
        "pg_cached": f"PromptForge commands, Postgres + aggregate cache ({args.aggregate_cache}) (variant)",
        "pg_noping": "PromptForge commands, Postgres, POSTGRES_PRE_PING=n (variant)",
        "sqlite": "PromptForge commands, SQLite (embedded)",
    }
    rows = []
    for name in labels:
        for t in args.threads:
            v = series.get((name, t))
            if not v:
                continue
            st = Stats.of(v.rate)
            cores = num(Stats.of(v.client_cores).median) if v.client_cores else "–"
            busy = pct(Stats.of(v.machine_busy).median) if v.machine_busy else "–"
            rows.append([labels[name], t, *st.cells(), f"{st.spread_pct:.0f}%", cores, busy])
    table = markdown_table(["measurement (per second)", "threads / clients", *STATS_HEADERS, "p90−p10 / median",
                            "client CPU (cores)", "machine busy"], rows)

    short = {"pgbench": "(a) pgbench INSERT", "psycopg": "(a') psycopg INSERT", "raw": "(b) eventsourcing save",
             "raw_noping": "(b') eventsourcing save, pre-ping off"}
    ratio_rows = []
    for name in ("pg", "pg_cached", "pg_noping"):
        for t in args.threads:
            ours = series.get((name, t))
            if not ours:
                continue
            for ceiling in ("pgbench", "psycopg", "raw", *(["raw_noping"] if name == "pg_noping" else [])):
                base = series.get((ceiling, t))
                if not base:
                    continue
                ratios = Stats.of([a / b for a, b in zip(ours.rate, base.rate)])
                ratio_rows.append([labels[name].strip("*"), t, short[ceiling],
                                   pct(ratios.median), pct(ratios.p10), pct(ratios.p90)])
    ratio_table = markdown_table(["ours", "threads", "ceiling", "median fraction", "p10", "p90"], ratio_rows)

    retry_rows = []
    for name in ("pg", "pg_cached", "pg_noping", "sqlite"):
        for t in args.threads:
            v = series.get((name, t))
            if v:
                retry_rows.append([labels[name].strip("*"), t, v.commands, v.saves, v.retries,
                                   num(1000 * v.retries / v.commands), len(v.errors)])
    retry_table = markdown_table(["commands", "threads", "commands run", "saves", "IntegrityError retries",
                                  "retries / 1000 commands", "failed commands"], retry_rows)
    errors = sorted({e for v in series.values() for e in v.errors})

    diag_headers = ["command", "wall ms", "client CPU ms", "CPU / wall", "event reads", "snapshot reads",
                    "events written"]
    mix_text = ", ".join(f"{k} {v}%" for k, v in args.mix.items())
    text = "\n".join([
        "# Command throughput: PromptForge on Postgres vs. ceilings measured in the same run",
        "",
        *[f"- {f}" for f in facts],
        f"- workload: {args.reps} rounds; each round runs every measurement once for {args.threads} threads, "
        f"in the order of the table. Commands: runs of {args.commands} ({mix_text}), one owner, {args.orgs} PRO "
        f"orgs, {len(workload.prompts)} pre-created prompts revised round-robin (each thread its own share), "
        f"mean {versions:.1f} versions per pool prompt at the end; raw saves: runs of {args.raw_saves}; "
        f"pgbench / psycopg: {args.seconds} s per run. Projections off (write side only). "
        f"Log head at the end: {head:,} events. Whole run: {total_s / 60:.1f} min.",
        "",
        "## Throughput",
        "",
        table,
        "",
        "`client CPU (cores)`: CPU seconds of the benchmark process per wall second (the GIL caps pure-Python "
        "work near 1.0). `machine busy`: share of both cores busy (Postgres + this process + other jobs).",
        "",
        "## Commands/s as a fraction of each ceiling (paired per round)",
        "",
        ratio_table,
        "",
        "## Contention and failures",
        "",
        retry_table,
        "",
        *([f"Errors: {'; '.join(errors[:5])}", ""] if errors else []),
        "## One command, broken down (Postgres, 1 thread, median of 100 each, untimed pass after the rounds)",
        "",
        markdown_table(diag_headers, diag),
        "",
        *([f"With the aggregate cache ({args.aggregate_cache}):", "", markdown_table(diag_headers, diag_cached), ""]
          if diag_cached else []),
        *(["With POSTGRES_PRE_PING=n:", "", markdown_table(diag_headers, diag_noping), ""] if diag_noping else []),
        "`event reads` / `snapshot reads`: calls of the recorders' `select_events` per command (each one a "
        "round trip to Postgres). Every `repository.get` asks the snapshot store first (snapshotting is "
        "enabled for Organisation) and then the event store, for every aggregate type.",
        "",
        replay_line,
        "",
    ])
    print("\n" + text)
    write_results(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
