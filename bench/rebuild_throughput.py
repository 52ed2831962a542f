"""Projection rebuild throughput on Postgres, side by side with the raw log-read ceiling.

1. Builds an event log of at least --events events (default 100,000) in a dedicated database,
   only through the application's commands: users registered and logged in (sessions), PRO
   organisations with members and API keys, then many threads each working in its own org:
   `create_prompt` (3 events), `revise_prompt` and `move_label` (1 event each).
   With --keep the database stays; --reuse then skips generation when the log is big enough.
2. Each round ("repetition") measures, one after the other:
   - the ceiling: reading the whole log with `container.supervisor.source.read(after, batch)` (records
     decoded into domain events), and the same read without decoding
     (`recorder.select_notifications`), to split database time from decoding time;
   - an SQL write ceiling through the read-model engine: rows/s of single-row INSERT statements,
     of one executemany per transaction, and of one COPY per transaction (what a rebuild writes with),
     into a scratch table shaped like an audit row;
   - `container.supervisor.rebuild_all(processes=N)`: every SQL projection rebuilt into tables built
     beside the live ones, then switched to (adr/0020), shared among N processes (adr/0024; N as
     the CLI chooses on this machine, or --processes), exactly what `promptforge projections rebuild
     --all` runs; and the same in one process (one pass over the log);
   - `container.supervisor.rebuild(name)` of every SQL projection alone (what `rebuild NAME` runs),
     and their sum (all projections one after the other, each reading the whole log).
   Each rebuild's wall time (its main thread's; adr/0021) is split into waiting for the log, folding
   (Python), waiting for the writer, indexing and
   switching, and the rest. The load average is recorded at the start of every round.
Rates are log events per second of wall time (every rebuild reads the whole log, whether or not
the projection handles an event), as median and spread over the rounds, and as a fraction of
the decoded-read ceiling of the same round.

Usage: .venv/bin/python bench/rebuild_throughput.py [--events 100000] [--reps 3] [--threads 4]
       [--orgs 4] [--pool 4] [--batch 500] [--write-rows 5000]
       [--projections NAME ...] [--db promptforge_bench_rebuild] [--keep] [--reuse] [--generate-only]
       [--append] [--out bench/results/rebuild_throughput.md]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from sqlalchemy import event as sa_event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    STATS_HEADERS, BenchDatabase, CpuMeter, Stats, library_env, machine_facts, markdown_table, num, pct, run_threads,
    write_results,
)
from application import Principal  # noqa: E402
from interfaces.bootstrap import Container, build  # noqa: E402
from projections import catchup  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "rebuild_throughput.md"
SCHEMA = "rebuild"
PASSWORD = "bench-password-0123456789"


def _template(seed: int, version: int) -> str:
    return (f"You are {{{{role}}}}, revision {version} of prompt {seed}. Answer the user's question "
            f"{{{{question}}}} in at most {{{{max_words}}}} words, citing sources where possible.")


# -- generating the log through the commands ----------------------------------------------------
def generate(container: Container, target: int, threads: int, n_orgs: int, seed: int = 7) -> dict[str, object]:
    """Drive the real commands until the log holds at least `target` events."""
    app = container.app
    started = time.perf_counter()
    rid = iter(range(10**9))
    users = {}
    for role in ("owner", "admin", "developer", "reviewer"):
        users[role], _ = app.register_user(f"{role}@rebuild.bench", PASSWORD, f"Bench {role}", "bench-setup")
    owner = Principal.user(users["owner"])
    orgs: list[UUID] = []
    for i in range(n_orgs):
        org = app.create_organisation(owner, f"Rebuild Org {i}", "bench-setup").id
        app.update_organisation(owner, org, "bench-setup", plan="PRO")
        app.update_organisation(owner, org, "bench-setup", protected_labels=[])  # moves `production` directly
        for role in ("admin", "developer", "reviewer"):
            app.add_member(owner, org, role, "bench-setup", user_id=users[role])
        keys = [app.issue_api_key(owner, org, f"key {k}", ["prompts:read", "prompts:write"], "bench-setup").id
                for k in range(3)]
        app.revoke_api_key(owner, org, keys[0], "bench-setup")
        if i % 2:
            app.change_member_role(owner, org, users["reviewer"], "viewer", "bench-setup")
        orgs.append(org)
    for role in ("owner", "developer"):  # sessions: each login costs an argon2 verify (~110 ms)
        for _ in range(2):
            grant = app.login(f"{role}@rebuild.bench", PASSWORD, "bench/1.0", "bench-setup")
            app.refresh_session(grant.session_id, grant.generation, grant.user_id, "bench-setup")
    setup_s = time.perf_counter() - started

    head0 = app.recorder.max_notification_id() or 0
    per_thread = int(max(0, target - head0) * 1.02) // threads + 1  # margin: a few label moves are no-ops
    done = Counter()
    lock = threading.Lock()
    actors = [owner, Principal.user(users["admin"]), Principal.user(users["developer"])]

    def worker(i: int):
        def work():
            rng = random.Random(seed * 1000 + i)
            org = orgs[i % n_orgs]
            mine: list[list] = []  # [prompt_id, latest version, staging version]
            events = k = 0
            cursor = 0
            while events < per_thread:
                k += 1
                principal = actors[k % len(actors)]
                op = rng.choices(("create", "revise", "label"), (55, 32, 13))[0] if len(mine) > 20 else "create"
                request_id = f"bench-gen-{i}-{k}"
                if op == "create":
                    n = len(mine)
                    result = app.create_prompt(
                        principal, org, name=f"prompt {i}-{n}", template=_template(n, 1),
                        tags=["bench", f"t{n % 11}", f"team-{i}"], model_config={"model": "gpt-4o-mini", "temperature": 0.2},
                        message="initial", request_id=request_id,
                    )
                    mine.append([result.id, 1, 0])
                    events += 3
                    continue
                p = mine[cursor % len(mine)]
                cursor += 1
                if op == "revise":
                    app.revise_prompt(principal, org, p[0], base_version=p[1], request_id=request_id,
                                      template=_template(k, p[1] + 1), message=f"revision {p[1] + 1}")
                    p[1] += 1
                else:
                    label = "production" if principal is owner and rng.random() < 0.5 else "staging"
                    if label == "staging":
                        target_v = p[1] if p[2] != p[1] else max(1, p[1] - 1)
                        if target_v == p[2]:
                            continue
                        app.move_label(principal, org, p[0], "staging", target_v, request_id, expected_version=p[2])
                        p[2] = target_v
                    else:
                        app.move_label(principal, org, p[0], "production", p[1], request_id)
                events += 1
                with lock:
                    done[op] += 1
            with lock:
                done["create"] += len(mine)
        return work

    stop = threading.Event()

    def report():
        while not stop.wait(15):
            head = app.recorder.max_notification_id() or 0
            print(f"  generating: {head:,} events ({time.perf_counter() - started:.0f}s)", flush=True)

    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    run = run_threads([worker(i) for i in range(threads)])
    stop.set()
    if run.errors:
        raise RuntimeError(f"generation failed: {run.errors[:3]}")
    head = app.recorder.max_notification_id() or 0
    return {"setup_s": setup_s, "gen_s": run.wall, "events": head - head0, "commands": dict(done),
            "commands_per_s": sum(done.values()) / run.wall, "events_per_s": (head - head0) / run.wall}


def event_mix(container: Container, batch: int) -> Counter:
    counts: Counter[str] = Counter()
    after = 0
    while True:
        page = container.supervisor.source.read(after, batch)
        if not page:
            return counts
        for env in page:
            counts[type(env.event).__qualname__] += 1
        after = page[-1].position


def save_generation(db: BenchDatabase, info: dict) -> None:
    """Remember how the log was generated, for the report of a later --reuse run."""
    import json

    import psycopg

    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.bench_generation (at timestamptz DEFAULT now(), info text)")
        conn.execute("INSERT INTO public.bench_generation (info) VALUES (%s)", (json.dumps(info),))


def load_generation(db: BenchDatabase) -> dict | None:
    import json

    import psycopg

    with psycopg.connect(db.url, autocommit=True) as conn:
        if not conn.execute("SELECT to_regclass('public.bench_generation')").fetchone()[0]:
            return None
        row = conn.execute("SELECT info FROM public.bench_generation ORDER BY at DESC LIMIT 1").fetchone()
    return json.loads(row[0]) if row else None


def describe_generation(gen: dict | None, reused: bool) -> str:
    if not gen:
        return "reused from an earlier run of this script (--keep, then --reuse), generated through the commands"
    when = "in this run" if not reused else f"by an earlier run on {gen.get('date', '?')} (--keep, then --reuse)"
    parts = [f"generated {when} through the commands with {gen.get('threads', '?')} threads in "
             f"{gen.get('orgs', '?')} orgs (one org per thread, no contention)"]
    if gen.get("commands"):
        parts.append(f"{sum(gen['commands'].values()):,} commands ("
                     + ", ".join(f"{k} {v:,}" for k, v in gen["commands"].items()) + ")")
    parts.append(f"{gen['events']:,} events in {gen['gen_s']:.0f} s ({num(gen['commands_per_s'])} commands/s, "
                 f"{num(gen['events_per_s'])} events/s, aggregate cache {gen.get('cache') or 'the default'})")
    if "setup_s" in gen:
        parts.append(f"after {gen['setup_s']:.1f} s of setup (argon2 registrations and logins)")
    return ": ".join(parts[:1]) + ": " + "; ".join(parts[1:]) if len(parts) > 1 else parts[0]


# -- measurements -----------------------------------------------------------------------------
def read_decoded(container: Container, batch: int) -> tuple[int, CpuMeter]:
    n = after = 0
    with CpuMeter() as meter:
        while True:
            page = container.supervisor.source.read(after, batch)
            if not page:
                break
            n += len(page)
            after = page[-1].position
    return n, meter


def read_raw(container: Container, batch: int) -> tuple[int, CpuMeter]:
    recorder = container.app.recorder
    n = after = 0
    with CpuMeter() as meter:
        while True:
            page = recorder.select_notifications(after, batch, inclusive_of_start=False)
            if not page:
                break
            n += len(page)
            after = page[-1].id
    return n, meter


@dataclass
class RebuildTiming:
    applied: int
    meter: CpuMeter
    read_s: float  # the main thread waiting for the next page of the log (select + decode, in a reader thread on Postgres)
    fold_s: float  # the projections' handlers (Python) and the loads of what a batch touches
    write_s: float  # writing the folded rows (COPY); on Postgres: waiting for the writer thread
    finish_s: float  # indexing the new tables (waiting for the index connections), and the switches
    statements: int  # SQL statements sent by the read-model engine (an executemany or a COPY counts once)
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  # busy s of the reader, writer and index threads
    children_cpu: float = 0.0  # CPU seconds of the child processes (processes > 1)
    walls: tuple[float, ...] = ()  # wall s of each process's share (main process first)

    @property
    def wall(self) -> float:
        """The main process's share (the split below is of this time)."""
        return self.walls[0] if self.walls else self.meter.wall

    @property
    def other_s(self) -> float:
        """Creating the new tables, transactions (begin, savepoints, commit), handing work to the threads."""
        return max(0.0, self.wall - self.read_s - self.fold_s - self.write_s - self.finish_s)

    def split(self) -> tuple[float, ...]:
        return tuple(x / self.wall for x in (self.read_s, self.fold_s, self.write_s, self.finish_s, self.other_s))

    @property
    def cores(self) -> float:
        """CPU seconds of every process of the rebuild per wall second."""
        return (self.meter.cpu + self.children_cpu) / self.meter.wall


def rebuild(container: Container, names: list[str], processes: int) -> RebuildTiming:
    """`container.supervisor.rebuild_all(names, processes=...)` (what `promptforge projections rebuild NAME`
    and `--all` run), its time split by the rebuild's own timings: those of the main thread of the main
    process (the reader, writer and index threads work meanwhile; with `processes` > 1 the children
    rebuild their share at the same time)."""
    import resource
    import threading

    import projections.batch as batch
    from projections import forked

    timings: dict[str, dict[str, float]] = {}
    clock = {"statements": 0}
    lock = threading.Lock()

    def count(*_a, **_kw):
        with lock:
            clock["statements"] += 1

    copy_rows = batch.copy_rows

    def counted_copy(*a, **kw):
        count()
        return copy_rows(*a, **kw)

    sa_event.listen(container.engine, "before_cursor_execute", count)
    batch.copy_rows = counted_copy
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        with CpuMeter() as meter:
            rebuilt = container.supervisor.rebuild_all(names, timings=timings, processes=processes)
    finally:
        batch.copy_rows = copy_rows
        sa_event.remove(container.engine, "before_cursor_execute", count)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_cpu = (children1.ru_utime - children0.ru_utime) + (children1.ru_stime - children0.ru_stime)
    projections = [container.projections[n] for n in names]
    groups = forked.share(projections, processes) if processes > 1 and len(names) > 1 else [projections]
    mine = {p.name for p in groups[0]}
    shared = timings.get("", {})
    total = lambda key: sum(timings.get(n, {}).get(key, 0.0) for n in mine)  # noqa: E731 - the main process's
    walls = tuple(t.get("wall", 0.0) for k, t in sorted(timings.items()) if k == "" or k.startswith("process "))
    return RebuildTiming(min(rebuilt.values()), meter, shared.get("read", 0.0), total("fold"), total("write"),
                         total("index") + total("switch") + shared.get("index", 0.0), clock["statements"],
                         (shared.get("read_thread", 0.0), shared.get("write_thread", 0.0),
                          shared.get("index_thread", 0.0)), children_cpu, walls)


WRITE_TABLE = "bench_write_ceiling"


def write_ceiling(container: Container, rows: int, batch: int, many: bool | str) -> tuple[float, CpuMeter]:
    """Rows/s written through the read-model engine into a scratch table shaped like an audit row,
    `batch` rows per transaction: one INSERT statement per row (how the projections folded before
    adr/0020), one executemany per transaction (the live catch-up), or one COPY (`many="copy"`: a
    rebuild's writes into its new tables)."""
    from projections.batch import copy_rows

    from sqlalchemy import JSON, BigInteger, Column, DateTime, MetaData, String, Table, insert

    table = Table(WRITE_TABLE, MetaData(), Column("position", BigInteger, primary_key=True),
                  Column("org_id", String(36), nullable=False), Column("actor", String(80), nullable=False),
                  Column("at", DateTime(timezone=True), nullable=False), Column("details", JSON, nullable=False))
    table.create(container.engine, checkfirst=True)
    with container.engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {WRITE_TABLE}")
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    org = str(UUID(int=1))
    with CpuMeter() as meter:
        for start in range(0, rows, batch):
            values = [{"position": p, "org_id": org, "actor": "user:bench", "at": now, "details": {"n": p}}
                      for p in range(start, min(rows, start + batch))]
            with container.engine.begin() as conn:
                if many == "copy":
                    copy_rows(conn, table, values)
                elif many:
                    conn.execute(insert(table), values)
                else:
                    for v in values:
                        conn.execute(insert(table).values(**v))
    return rows / meter.wall, meter


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="minimum size of the log")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4, help="threads generating the log")
    parser.add_argument("--orgs", type=int, default=4)
    parser.add_argument("--pool", type=int, default=4,
                        help="connection pool size (the Postgres server is shared: 100 connections for everyone)")
    parser.add_argument("--batch", type=int, default=500, help="projection_batch_size (Settings default 500)")
    parser.add_argument("--projections", nargs="+", help="only these projections (default: all SQL ones)")
    parser.add_argument("--processes", type=int, default=None,
                        help="processes of `rebuild --all` (default: what the CLI uses here, "
                             "projections.forked.default_processes()); --all is also timed in one process")
    parser.add_argument("--append", action="store_true",
                        help="append this run's report to the results file instead of replacing it")
    parser.add_argument("--write-rows", type=int, default=5000,
                        help="rows per run of the SQL write ceiling (0 = skip)")
    parser.add_argument("--gen-cache", type=int, default=0,
                        help="AGGREGATE_CACHE_MAXSIZE while generating, instead of the application's default (1000); 0 = the default")
    parser.add_argument("--generate-only", action="store_true", help="build the log (use with --keep) and stop")
    parser.add_argument("--db", default="promptforge_bench_rebuild")
    parser.add_argument("--keep", action="store_true", help="leave the database (and its log) in place")
    parser.add_argument("--reuse", action="store_true", help="reuse the kept database's log when big enough")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="pf-rebuild-"))
    started_all = time.perf_counter()
    with BenchDatabase(args.db, keep=args.keep, reuse=args.reuse) as db:
        facts = machine_facts(db.url)
        reused = db.existed and db.has_schema(SCHEMA)
        db.create_schema(SCHEMA)
        settings = db.settings(SCHEMA, tmp, pool_size=args.pool, projection_batch_size=args.batch)
        gen = None
        container = build(settings)
        head = container.supervisor.source.head()
        if head < args.events:
            container.close()
            print(f"generating a log of >= {args.events:,} events (existing: {head:,})", flush=True)
            # the application's default already caches aggregates (interfaces/event_store.py): patch the
            # library's environment only for another size (bench/_common.library_env)
            extra = {"AGGREGATE_CACHE_MAXSIZE": str(args.gen_cache)} if args.gen_cache else {}
            with library_env(**extra) if extra else contextlib.nullcontext():
                generator = build(settings)
            gen = generate(generator, args.events - head, args.threads, args.orgs)
            gen.update(threads=args.threads, orgs=args.orgs, cache=args.gen_cache,
                       date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
            save_generation(db, gen)
            generator.close()
            reused = False
            container = build(settings)
        head = container.supervisor.source.head()
        print(f"log: {head:,} events{' (reused)' if reused else ''}", flush=True)
        if gen is None:
            gen = load_generation(db)
        if gen:
            print(f"generated {gen['events']:,} events in {gen['gen_s']:.0f}s "
                  f"({num(gen['events_per_s'])} events/s, {num(gen['commands_per_s'])} commands/s)", flush=True)
        if args.generate_only:
            container.close()
            return 0
        mix = event_mix(container, args.batch)
        names = args.projections or list(container.projections)

        read_decoded(container, args.batch)  # warm-up: the log into shared buffers / page cache
        from projections.forked import default_processes

        processes = args.processes or default_processes()
        keys = ["read", "raw", "write_one", "write_many", "write_copy", "all", "all_one", *names, "all_seq"]
        rates: dict[str, list[float]] = {k: [] for k in keys}
        cores: dict[str, list[float]] = {k: [] for k in keys}
        ratios: dict[str, list[float]] = {k: [] for k in keys}
        splits: dict[str, list[tuple[float, ...]]] = {k: [] for k in keys}
        backgrounds: dict[str, list[tuple[float, ...]]] = {k: [] for k in keys}
        walls: dict[str, list[tuple[float, ...]]] = {k: [] for k in keys}
        statements: dict[str, int] = {}
        mismatches: list[str] = []
        loads: list[tuple[float, float, float]] = []
        for rep in range(args.reps):
            t0 = time.perf_counter()
            loads.append(os.getloadavg())
            n, m = read_decoded(container, args.batch)
            ceiling = n / m.wall
            rates["read"].append(ceiling)
            cores["read"].append(m.client_cores)
            n, m = read_raw(container, args.batch)
            rates["raw"].append(n / m.wall)
            cores["raw"].append(m.client_cores)
            if args.write_rows:
                for key, many in (("write_one", False), ("write_many", True), ("write_copy", "copy")):
                    rate, m = write_ceiling(container, args.write_rows, args.batch, many=many)
                    rates[key].append(rate)
                    cores[key].append(m.client_cores)
            runs = [("all", names, processes)] if len(names) > 1 else []
            runs += [("all_one", names, 1)] if len(names) > 1 and processes > 1 else []
            runs += [(name, [name], processes) for name in names]
            total = 0.0
            for key, which, procs in runs:
                r = rebuild(container, which, procs)
                if r.applied != head:
                    mismatches.append(f"{key}: applied {r.applied} of {head}")
                rates[key].append(head / r.meter.wall)
                cores[key].append(r.cores)
                splits[key].append(r.split())
                backgrounds[key].append(r.background)
                walls[key].append(r.walls)
                statements[key] = r.statements
                if not key.startswith("all"):
                    total += r.meter.wall
                print(f"  {key}: {r.meter.wall:.1f}s ({num(head / r.meter.wall)} events/s)", flush=True)
            if len(names) > 1:
                rates["all_seq"].append(head / total)
            for key, values in rates.items():
                if values and len(values) == rep + 1:
                    ratios[key].append(values[-1] / ceiling)
            line = ", ".join(f"{k}: {num(v[-1])}" for k, v in rates.items() if v)
            print(f"round {rep + 1}/{args.reps} ({time.perf_counter() - t0:.0f}s): {line}", flush=True)
        status = {s.name: s.position for s in container.supervisor.status()}
        container.close()
    shutil.rmtree(tmp, ignore_errors=True)
    total_s = time.perf_counter() - started_all

    # -- report -----------------------------------------------------------------------------------
    labels = {
        "read": "**ceiling**: read the log, decoded (`source.read`)",
        "raw": "read the log, not decoded (`select_notifications`)",
        "write_one": f"SQL write ceiling: 1-row INSERT statements, {args.batch} per transaction (rows/s)",
        "write_many": f"SQL write ceiling: one executemany of {args.batch} rows per transaction (rows/s)",
        "write_copy": f"SQL write ceiling: one COPY of {args.batch} rows per transaction (rows/s)",
        "all": f"**`rebuild --all`**: the {len(names)} projections, {processes} process(es) "
               f"(`supervisor.rebuild_all(processes={processes})`, what the CLI runs here)",
        "all_one": f"`rebuild --all --processes 1`: the {len(names)} projections in one pass, one process",
        **{n: f"rebuild `{n}` alone" for n in names},
        "all_seq": "all projections one after the other (sum of the round's single rebuilds)",
    }
    rows = []
    for key, label in labels.items():
        if not rates.get(key):
            continue
        st = Stats.of(rates[key])
        c = num(Stats.of(cores[key]).median) if cores[key] else "–"
        if splits[key]:
            split = " / ".join(f"{100 * Stats.of([x[i] for x in splits[key]]).median:.0f}" for i in range(5))
            per_event = f"{statements[key] / head:.3f}"
            busy = " / ".join(f"{Stats.of([x[i] for x in backgrounds[key]]).median:.1f}" for i in range(3))
            shares = max((len(w) for w in walls[key]), default=0)
            each = " / ".join(f"{Stats.of([w[i] for w in walls[key] if len(w) > i]).median:.1f}"
                              for i in range(shares)) if shares else "–"
        else:
            split, per_event, busy, each = "–", "–", "–", "–"
        seconds = "–" if key.startswith("write") else num(head / st.median)
        rows.append([label, *st.cells(), f"{st.spread_pct:.0f}%", seconds,
                     pct(Stats.of(ratios[key]).median), each, split, busy, per_event, c])
    table = markdown_table(["what (log events/s)", *STATS_HEADERS, "p90−p10 / median", "median s",
                            "fraction of decoded read", "processes: wall s each (main first)",
                            "% read / fold / write / index+switch / other (main process)",
                            "threads busy s: read / write / index (main process)",
                            "SQL statements per log event (main process)", "client CPU (cores, all processes)"], rows)
    mix_rows = [[k, f"{v:,}", pct(v / head)] for k, v in mix.most_common()]
    gen_line = describe_generation(gen, reused)
    text = "\n".join([
        "# Projection rebuild throughput on Postgres vs. reading the log (same run)",
        "",
        *[f"- {f}" for f in facts],
        f"- log: {head:,} events, {gen_line}.",
        f"- {args.reps} rounds; live batch size {args.batch}, rebuild batch {max(args.batch, catchup.REBUILD_BATCH)}; "
        f"each round: decoded read, raw read, write ceilings, `rebuild --all` ({processes} processes, as the CLI "
        f"runs it here), `rebuild --all` in one process, then every projection alone. "
        f"Load average at the start of each round (1/5/15 min): "
        f"{'; '.join(' / '.join(f'{x:.2f}' for x in load) for load in loads)}. Whole run: {total_s / 60:.1f} min.",
        *([f"- PROBLEMS: {'; '.join(mismatches[:5])}"] if mismatches else []),
        "",
        "## Throughput",
        "",
        table,
        "",
        "`log events/s` = events in the log / wall seconds of the whole rebuild (tables built beside, one pass "
        "over the log, indexes, switch; every rebuild reads the whole log). The rebuild is pipelined on Postgres "
        "(adr/0021): a reader thread reads and decodes the next page while the main thread folds, a writer thread "
        "COPYs on its own connection, and the indexes are built on two more connections as each table is loaded. "
        "With more than one process (adr/0024) the projections are shared among this process and children forked "
        "from it, each making that pass for its share (`processes: wall s each`: the main process's share, then "
        "each child's, from its start to its last switch); the split and the thread columns are the main "
        "process's. "
        "`% read / fold / write / index+switch / other`: share of the MAIN thread's wall time spent waiting for "
        "the next page of the log (select + decode, done by the reader thread), in the projections' handlers "
        "(Python), waiting for the writer (COPY, done by the writer thread: its queue full, or at the end), "
        "waiting for the indexes and switching to the new tables (with what was logged meanwhile), and the rest "
        "(creating the tables, handing work over). `threads busy s`: wall seconds the reader, the writer and the "
        "index threads (summed over the two) spent working, overlapping the main thread and each other (GIL "
        "waits included). `SQL statements`: statements the read-model engine sent (an executemany or a COPY "
        "counts once). `client CPU (cores)`: CPU seconds of the benchmark process and its rebuild children per "
        "wall second; Postgres "
        "runs on the same 2 cores. A rebuild decodes only the events some projection it rebuilds handles, so "
        "a projection rebuilt alone can beat the decoded-read ceiling (which decodes every event).",
        "",
        "## The log",
        "",
        markdown_table(["event", "count", "share"], mix_rows),
        "",
        f"Projection positions at the end: {', '.join(f'{k} {v:,}' for k, v in status.items())}.",
        "",
    ])
    print("\n" + text)
    if args.append and args.out.exists():
        text = args.out.read_text().rstrip("\n") + "\n\n---\n\n" + text.replace("# Projection rebuild", "## Another run: projection rebuild", 1).replace("\n## ", "\n### ")
    write_results(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
