"""Start-up: wait (bounded) for the databases, then fail with one clear line (adr/0010).

A service started beside its database (compose, a fresh VM) often comes up first: the event
store and the read-model database are retried with backoff for `startup_timeout_seconds`; if one
stays unreachable the process stops with a single-line `StartupError` naming the setting to
check (never the password), instead of a long traceback, and a supervisor restarts it."""
from __future__ import annotations

import gc
import logging

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from interfaces.settings import Settings

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """A dependency the service cannot run without is unreachable or misconfigured."""


def _sqlalchemy_url(url: str) -> str:
    if url.startswith("sqlite") or url.startswith("memory"):
        return ""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + rest.split("?", 1)[0]
    return url


def _check(setting: str, url: str, timeout: float) -> None:
    target = _sqlalchemy_url(url)
    if not target:
        return  # embedded SQLite: nothing to reach
    try:
        shown = make_url(target).render_as_string(hide_password=True)
    except ArgumentError:
        raise StartupError(f"{setting} is not a valid database URL") from None
    engine = create_engine(target, poolclass=None, connect_args={"connect_timeout": 3})

    def attempt() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def before_sleep(state) -> None:
        log.warning("waiting for %s (%s): %s", setting, shown, type(state.outcome.exception()).__name__)

    try:
        Retrying(retry=retry_if_exception_type(OperationalError), stop=stop_after_delay(timeout),
                 wait=wait_exponential(multiplier=0.25, max=4), before_sleep=before_sleep, reraise=True)(attempt)
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise StartupError(f"cannot reach the database of {setting} ({shown}) after {timeout:g}s: {reason}") from None
    finally:
        engine.dispose()


def reachable(settings: Settings) -> None:
    """Raise StartupError unless the event store and the read-model database answer."""
    timeout = settings.startup_timeout_seconds
    _check("PROMPTFORGE_EVENT_STORE_URL", settings.event_store_url, timeout)
    _check("PROMPTFORGE_READ_MODEL_URL", settings.read_model_url, timeout)


def freeze_startup_objects() -> None:
    """What start-up made (modules, the container, its caches' first contents) lives as long as the
    process: move it out of the cyclic collector's full passes, which otherwise walk it every time
    and pause the process for ~70–130 ms each (the API's event loop: bench/results/sse_fanout.md;
    a worker: 116 and 129 ms during 45 s of prompt creations, bench/results/http_writes_summary.md)."""
    gc.collect()
    gc.freeze()
