"""`promptforge` command line: serve, worker, projections status/rebuild, seed-demo."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from interfaces.settings import Settings


def _container(vectors: bool = False):
    """A container for one-shot commands: projections driven synchronously, no background runner;
    the vector index is opened only when the command needs it (the embedded engine is single-process)
    and only if the deployment has one (PROMPTFORGE_VECTORS_ENABLED)."""
    from interfaces.bootstrap import build
    from interfaces.startup import StartupError

    settings = Settings(inprocess_projections=False)
    try:
        return build(settings, vectors=vectors and settings.vectors_enabled)
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def main() -> None:
    """PromptForge: a multi-tenant, event-sourced prompt registry."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn worker processes")
def serve(host: str, port: int, workers: int) -> None:
    """Run the HTTP API (embedded default: SQLite under ./var, projections in-process)."""
    import uvicorn

    import os
    import tempfile

    from pydantic import ValidationError

    from interfaces.startup import StartupError, reachable

    try:
        settings = Settings()  # fail fast on invalid configuration, before forking workers
    except ValidationError as exc:
        raise click.ClickException("invalid configuration: " + "; ".join(
            str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors())) from None
    try:
        reachable(settings)  # wait (bounded) for the databases, or stop with one line (adr/0010)
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each uvicorn worker counts into its own files here; whichever one answers /metrics
        # aggregates them all (interfaces.observability.metrics). Fresh per start: no stale counts.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="promptforge-api-metrics-")
    if workers > 1 and settings.vectors_enabled and not settings.qdrant_url:
        raise click.UsageError(
            "the embedded vector engine is single-process: use --workers 1, set PROMPTFORGE_QDRANT_URL "
            "to a Qdrant server, or PROMPTFORGE_VECTORS_ENABLED=false")
    uvicorn.run("interfaces.http.app:create_app", factory=True, host=host, port=port, workers=workers,
                loop="auto", http="auto", proxy_headers=True, log_level="info")


@main.command()
@click.option("--processes", default=1, show_default=True, type=int)
@click.option("--threads", default=2, show_default=True, type=int)
def worker(processes: int, threads: int) -> None:
    """Run projection workers (dramatiq on Redis when PROMPTFORGE_REDIS_URL is set, else a poll loop)."""
    from workers.main import run_worker

    sys.exit(run_worker(processes=processes, threads=threads))


@main.group()
def projections() -> None:
    """Inspect and rebuild read models."""


@projections.command("status")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def projections_status(as_json: bool) -> None:
    """Each projection's position, the head of the log, lag in events and seconds."""
    container = _container()
    try:
        rows = container.supervisor.status()
    finally:
        container.close()
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in rows], indent=2, default=str))
        return
    click.echo(f"{'projection':<16}{'position':>10}{'head':>10}{'lag':>8}{'lag (s)':>10}  error")
    for r in rows:
        error = f"  FAILING since {r.failed_at:%Y-%m-%d %H:%M:%S}: {r.error}" if r.error else ""
        click.echo(f"{r.name:<16}{r.position:>10}{r.head:>10}{r.lag_events:>8}{r.lag_seconds:>10.1f}{error}")


@projections.command("rebuild")
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="rebuild every projection")
@click.option("--processes", type=click.IntRange(min=1), default=None,
              help="processes sharing the projections on Postgres (default: 2 with 2+ cores, else 1)")
def projections_rebuild(name: str | None, all_: bool, processes: int | None) -> None:
    """Rebuild a projection (or --all) from position zero: SQL read models are built beside their
    live tables in one pass over the log and switched to at the end (reads keep answering). On
    Postgres the projections are shared among processes, each making its own pass."""
    from tqdm import tqdm

    from projections.catchup import RebuildFailed
    from projections.forked import default_processes
    from projections.supervisor import VECTORS

    container = _container(vectors=all_ or name == "vectors")
    try:
        supervisor = container.supervisor
        names = supervisor.names if all_ else [name] if name else []
        unknown = [n for n in names if n not in supervisor.names]
        if not names or unknown:
            raise click.UsageError(f"name one of {', '.join(supervisor.names)} or pass --all")
        if VECTORS in names and container.vector_projection is None:
            raise click.ClickException(
                f"cannot open the vector index ({container.vectors_error}): stop the API first, "
                "or rebuild the SQL projections by name")
        head = supervisor.source.head()
        sql = [n for n in names if n != VECTORS]
        failed: dict[str, BaseException] = {}
        if sql:
            label = sql[0] if len(sql) == 1 else f"{len(sql)} projections"
            started = time.perf_counter()
            with tqdm(total=head, desc=label, unit="ev") as bar:
                try:
                    rebuilt = supervisor.rebuild_all(sql, progress=bar.update,
                                                     processes=processes or default_processes())
                except RebuildFailed as exc:
                    rebuilt, failed = exc.rebuilt, exc.failures
            elapsed = time.perf_counter() - started
            for n in sql:
                if n in rebuilt:
                    click.echo(f"{n}: {rebuilt[n]} events")
                else:
                    click.echo(f"{n}: FAILED ({type(failed[n]).__name__}: {failed[n]}); its tables are unchanged")
            applied = max(rebuilt.values(), default=0)
            click.echo(f"rebuilt {len(rebuilt)} of {len(sql)} in {elapsed:.2f}s "
                       f"({applied / elapsed if elapsed else 0:,.0f} events/s)")
        if VECTORS in names:
            started = time.perf_counter()
            with tqdm(total=head, desc=VECTORS, unit="ev") as bar:
                applied = supervisor.rebuild(VECTORS, progress=bar.update)
            elapsed = time.perf_counter() - started
            click.echo(f"{VECTORS}: {applied} events in {elapsed:.2f}s "
                       f"({applied / elapsed if elapsed else 0:,.0f} events/s)")
        if failed:
            raise click.ClickException(f"{len(failed)} projection(s) failed to rebuild: {', '.join(failed)}")
    finally:
        container.close()


@main.command("seed-demo")
@click.option("--corpus", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              default=Path("../shared/data/awesome-chatgpt-prompts.csv"), show_default=True)
@click.option("--limit", type=int, default=None, help="load only the first N prompts")
def seed_demo(corpus: Path, limit: int | None) -> None:
    """Load the demo corpus into a few demo orgs through the real commands."""
    from tqdm import tqdm

    from interfaces.seed import seed_demo as run_seed

    container = _container()
    try:
        with tqdm(desc="prompts", unit="prompt") as bar:
            summary = run_seed(container.app, corpus, limit=limit, progress=bar.update)
        container.supervisor.catch_up()
    finally:
        container.close()
    click.echo(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
