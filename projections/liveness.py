"""Whether a pooled Postgres connection still works, mostly without asking the server (adr/0030).

Both pools (the event store's psycopg pool and the read models' SQLAlchemy pool) used to ping the
server on every checkout: one round trip more per checkout, two to four per prompt creation. The
ping is kept where it can find something, and skipped where it cannot:
- a connection the server closed (a restart, a failover, `pg_terminate_backend`, an idle timeout)
  has something to read while idle, the server's termination notice or the end of the stream: that
  is seen on the socket without a round trip (`has_pending_input`), and the connection is pinged,
  fails, and is replaced before anyone uses it, as before;
- a connection not checked out for `IDLE_PING_SECONDS` is pinged as before: a path that drops
  connections silently (a NAT or firewall timeout) gives no sign on the socket.
A connection in steady use, with nothing to read, is handed out as it is. What the ping never
caught either (the server going away between checkout and use) the libraries' own handling
covers, as before: eventsourcing's recorders retry a read or an insert on a connection error, and
SQLAlchemy invalidates the connection and raises.
"""
from __future__ import annotations

import select
import threading
import weakref
from time import monotonic
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError

#: A connection not checked out for this long is pinged on its next checkout.
IDLE_PING_SECONDS = 30.0


def has_pending_input(conn: Any) -> bool:
    """Whether an idle psycopg connection's socket has something to read: the server closed it or
    sent a message while nobody was using it. No round trip."""
    if conn.closed or conn.broken:
        return True
    try:
        poller = select.poll()  # not select(): no limit on the descriptor's number
        poller.register(conn.pgconn.socket, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))  # readable, or hung up / in error (always reported)
    except (OSError, ValueError):
        return True


class _LastCheckouts:
    """When each connection was last checked out (connections are dropped with their pool)."""

    def __init__(self, idle_ping_seconds: float):
        self.idle_ping_seconds = idle_ping_seconds
        self._at: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def needs_ping(self, conn: Any) -> bool:
        now = monotonic()
        with self._lock:
            last = self._at.get(conn)
            self._at[conn] = now
        return last is None or now - last >= self.idle_ping_seconds or has_pending_input(conn)


class QuietPoolCheck:
    """A psycopg_pool `check` callback: the pool's own check (`ConnectionPool.check_connection`, a
    round trip) only when `_LastCheckouts.needs_ping` says so.

    A connection that fails it is rarely alone: a server restart closes them all. The pool would
    find the others one checkout at a time, sleeping 1 s, 2 s, ... between failed checks (its
    backoff), past its 5 s timeout with five dead connections (measured; the ping on every checkout
    did the same). So a failed check first sweeps the pool (`ConnectionPool.check`, public: a ping
    of each idle connection, the dead ones replaced), then fails, and the next connection is good."""

    def __init__(self, pool: Any, idle_ping_seconds: float = IDLE_PING_SECONDS):
        self._pool = pool
        self._last = _LastCheckouts(idle_ping_seconds)

    def __call__(self, conn: Any) -> None:
        if not self._last.needs_ping(conn):
            return
        from psycopg_pool import ConnectionPool

        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            self._pool.check()
            raise


def quiet_event_store_checks(recorder: Any, idle_ping_seconds: float = IDLE_PING_SECONDS) -> bool:
    """Replace the pre-ping of a Postgres recorder's pool (POSTGRES_PRE_PING=y) with `QuietPoolCheck`.
    True if replaced; a recorder without a pool, or without a check, is left as it is."""
    pool = getattr(getattr(recorder, "datastore", None), "pool", None)
    if pool is None or not getattr(pool, "_check", None):
        return False
    pool._check = QuietPoolCheck(pool, idle_ping_seconds)
    return True


def quiet_pre_ping(engine: Engine, idle_ping_seconds: float = IDLE_PING_SECONDS) -> None:
    """SQLAlchemy's pessimistic disconnect handling for a Postgres engine created WITHOUT
    `pool_pre_ping`, pinging (the dialect's own `do_ping`) only when `_LastCheckouts.needs_ping`
    says so; a failed ping raises DisconnectionError, so the pool replaces the connection and
    checks out another (SQLAlchemy's documented checkout-event recipe)."""
    last = _LastCheckouts(idle_ping_seconds)
    dialect = engine.dialect

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn, _record, _proxy):
        if not last.needs_ping(dbapi_conn):
            return
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"the pooled connection failed its ping: {type(exc).__name__}") from exc
