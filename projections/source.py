"""Reading the application's log in batches, decoded into domain events."""
from __future__ import annotations

import json
import threading
from bisect import bisect_right
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID, SafeUUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent, find_id_convertor
from eventsourcing.utils import resolve_topic

from projections.events import Envelope

#: (the wanted events of a page, the last event read, how many events were read)
Page = tuple[list[Envelope], Envelope | None, int]


class EventSource(Protocol):
    def read(self, after: int, limit: int) -> list[Envelope]: ...

    def head(self) -> int: ...


class LogPass(Protocol):
    """One pass over the log (a rebuild), page by page, from one thread."""

    def read_wanted(self, after: int, limit: int, wanted: Callable[[str], bool]) -> Page: ...

    def close(self) -> None: ...


class ApplicationEventSource:
    """Uses the recorder directly: `notification_log.select()` refuses limits above its
    section size (10), far too small for catch-up batches."""

    def __init__(self, app: Application):
        self.app = app

    def read(self, after: int, limit: int) -> list[Envelope]:
        notifications = self.app.recorder.select_notifications(after, limit, inclusive_of_start=False)
        to_event = self.app.mapper.to_domain_event
        return [Envelope(n.id, to_event(n)) for n in notifications]

    def read_wanted(self, after: int, limit: int, wanted: Callable[[str], bool]) -> Page:
        """Like `read`, decoding only the events whose topic is `wanted` (and the last one read, whose
        position and time a rebuild records): (the wanted events, the last event read, how many
        events were read). A rebuild skips decoding what no projection handles (a quarter of a
        typical log: the prompt-name index's events)."""
        notifications = self.app.recorder.select_notifications(after, limit, inclusive_of_start=False)
        if not notifications:
            return [], None, 0
        to_event = self.app.mapper.to_domain_event
        out = [Envelope(n.id, to_event(n)) for n in notifications if wanted(n.topic)]
        final = notifications[-1]
        last = out[-1] if out and out[-1].position == final.id else Envelope(final.id, to_event(final))
        return out, last, len(notifications)

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def open_pass(self) -> LogPass:
        """A reader for one pass over the whole log (a rebuild). On Postgres it reads the events table
        on a connection of its own (`PostgresLog`); elsewhere through the recorder."""
        log = self.postgres_log()
        return log.open_pass() if log is not None else _RecorderPass(self)

    def postgres_log(self) -> PostgresLog | None:
        """The same log read without the application's connection pool (None when the events are not
        in Postgres): what a rebuild's second process reads (its parent's pool is not its own)."""
        recorder = self.app.recorder
        datastore = getattr(recorder, "datastore", None)
        pool = getattr(datastore, "pool", None)
        if type(recorder).__module__ != "eventsourcing.postgres" or pool is None:
            return None
        return PostgresLog(pool, datastore.schema, recorder.events_table_name, self.app.mapper)


class _RecorderPass:
    def __init__(self, source: ApplicationEventSource):
        self.source = source

    def read_wanted(self, after: int, limit: int, wanted: Callable[[str], bool]) -> Page:
        return self.source.read_wanted(after, limit, wanted)

    def close(self) -> None:
        pass


class RecentEvents:
    """An event source that remembers the events it read last, so that the projections of one catch-up
    round, each reading the same new events in turn, have them read and decoded once (the live path:
    ten projections read each batch; adr/0029).

    Exact, never stale: the log only grows and its commits become visible in position order
    (adr/0001, adr/0020), so a read of (after, last] returned every event of that range, and still
    does. It keeps one run of consecutive reads, at most `capacity` events (a catch-up batch: what a
    round shares; a prompt's event may carry 256k characters of template, so no more is retained than
    one read already holds), and whether its last read reached the log's head. Every answer is one
    the source gave or would have given at some moment: a full page, or a short one only when the
    run reached the head (a page short because the run ends is completed from the source). A read
    before the run, or past its end, goes to the source and continues the run or starts a new one.
    Anything else is the source's (head, rebuild passes)."""

    def __init__(self, source: EventSource, capacity: int = 500):
        self.source = source
        self.capacity = capacity
        self._lock = threading.Lock()
        self._after = 0  # the run covers the positions (_after, _positions[-1]]
        self._positions: list[int] = []
        self._events: list[Envelope] = []
        self._at_head = False  # the run's last read from the source returned less than its limit

    def read(self, after: int, limit: int) -> list[Envelope]:
        page: list[Envelope] = []
        with self._lock:
            positions = self._positions
            if positions and self._after <= after < positions[-1]:
                i = bisect_right(positions, after)
                page = self._events[i:i + limit]
                if len(page) == limit or self._at_head:
                    return page
                after, limit = positions[-1], limit - len(page)
        more = self.source.read(after, limit)
        self._remember(after, more, at_head=len(more) < limit)
        return page + more

    def _remember(self, after: int, batch: list[Envelope], at_head: bool) -> None:
        with self._lock:
            positions, events = self._positions, self._events
            if positions and self._after <= after <= positions[-1]:  # continues the run (or overlaps its end)
                keep = bisect_right(positions, after)
                if keep < len(positions) and not batch:
                    return  # an empty read from inside the run says nothing about its end
                del positions[keep:], events[keep:]
            elif not batch:
                return
            else:
                positions.clear()
                events.clear()
                self._after = after
            positions.extend(e.position for e in batch)
            events.extend(batch)
            self._at_head = at_head
            extra = len(events) - self.capacity
            if extra > 0:
                self._after = positions[extra - 1]
                del positions[:extra], events[:extra]

    def head(self) -> int:
        return self.source.head()

    def __getattr__(self, name: str) -> Any:  # open_pass, postgres_log, read_wanted: a rebuild's
        return getattr(self.source, name)


class PostgresLog:
    """The application's log in Postgres, read on connections of its own (never the application's pool),
    so it can be used in a process forked from the one that opened the pool. Made from the pool's
    connection settings; nothing is connected until it reads.

    Rows come back as tuples (no dict per row, no `Notification` per event), in binary (the state's
    bytes as stored, not twice as many hex digits for the server to write and this process to parse:
    a quarter less of the reader's CPU over a 102k-event log, adr/0028) and events are decoded with
    the application's mapper's transcoder (`_Decoder`): the same events `ApplicationEventSource.read`
    returns, for less of this process's CPU, which is what bounds a rebuild."""

    def __init__(self, pool: Any, schema: str, table: str, mapper: Any):
        self.conninfo = pool.conninfo
        self.kwargs = {k: v for k, v in dict(pool.kwargs or {}).items() if k != "row_factory"}
        self.get_password = getattr(pool, "get_password_func", None)
        self.table = ".".join('"' + name.replace('"', '""') + '"' for name in (schema, table))
        self.mapper = mapper
        self.decoder = _Decoder(mapper)
        self._conn: Any = None

    def connect(self) -> Any:
        import psycopg

        kwargs = dict(self.kwargs)
        if self.get_password is not None:
            kwargs["password"] = self.get_password()
        return psycopg.connect(self.conninfo, autocommit=True, **kwargs)

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = self.connect()
        return self._conn

    def read(self, after: int, limit: int) -> list[Envelope]:
        decode = self.decoder.envelope
        rows = self._connection().execute(
            f"SELECT notification_id, topic, originator_id, originator_version, state FROM {self.table} "
            "WHERE notification_id > %s ORDER BY notification_id LIMIT %s", (after, limit), prepare=True,
            binary=True).fetchall()
        return [decode(*row) for row in rows]

    def head(self) -> int:
        return self._connection().execute(f"SELECT max(notification_id) FROM {self.table}").fetchone()[0] or 0

    def open_pass(self) -> _PostgresPass:
        return _PostgresPass(self)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _PostgresPass:
    """Pages of the log on one connection. The topics found unwanted so far are left out by the server
    (the page still counts them, and its last event always comes back: its position and time are
    what a rebuild records), so they are neither sent nor turned into Python objects."""

    def __init__(self, log: PostgresLog):
        self.log = log
        self.conn: Any = None
        self.decoder = _Decoder(log.mapper)
        self.unwanted: set[str] = set()
        self.known: dict[str, bool] = {}
        table = log.table
        self.all_sql = (f"SELECT notification_id, topic, originator_id, originator_version, state, 0 FROM {table} "
                        "WHERE notification_id > %s ORDER BY notification_id LIMIT %s")
        self.some_sql = (
            "SELECT notification_id, topic, originator_id, originator_version, state, n FROM ("
            " SELECT page.*, count(*) OVER () AS n, max(notification_id) OVER () AS last FROM ("
            f"  SELECT notification_id, topic, originator_id, originator_version, state FROM {table}"
            "   WHERE notification_id > %s ORDER BY notification_id LIMIT %s) AS page) AS counted "
            "WHERE notification_id = last OR topic <> ALL(%s) ORDER BY notification_id")

    def read_wanted(self, after: int, limit: int, wanted: Callable[[str], bool]) -> Page:
        if self.conn is None:
            self.conn = self.log.connect()
        filtered = bool(self.unwanted)
        if filtered:
            rows = self.conn.execute(self.some_sql, (after, limit, sorted(self.unwanted)), prepare=True,
                                     binary=True).fetchall()
        else:
            rows = self.conn.execute(self.all_sql, (after, limit), prepare=True, binary=True).fetchall()
        if not rows:
            return [], None, 0
        known, envelope = self.known, self.decoder.envelope
        out = []
        for position, topic, originator_id, version, state, _ in rows:
            take = known.get(topic)
            if take is None:
                take = known[topic] = bool(wanted(topic))
                if not take:
                    self.unwanted.add(topic)
            if take:
                out.append(envelope(position, topic, originator_id, version, state))
        final = rows[-1]
        last = out[-1] if out and out[-1].position == final[0] else envelope(*final[:5])
        return out, last, final[5] if filtered else len(rows)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class _Decoder:
    """Stored events to domain events as the application's mapper does (`Mapper.to_domain_event`:
    the transcoder's decoding, the originator id's type, upcasting), with what depends only on the
    topic looked up once per topic. A mapper that encrypts or compresses decodes every event itself."""

    def __init__(self, mapper: Any):
        self.mapper = mapper
        self.plain = not getattr(mapper, "cipher", None) and not getattr(mapper, "compressor", None)
        self.decode = _json_decoder(mapper.transcoder) or mapper.transcoder.decode
        self.topics: dict[str, tuple[type, Callable[[Any], Any], int]] = {}

    def envelope(self, position: int, topic: str, originator_id: Any, version: int, state: Any) -> Envelope:
        if not self.plain:
            stored = StoredEvent(originator_id=originator_id, originator_version=version, topic=topic,
                                 state=bytes(state))
            return Envelope(position, self.mapper.to_domain_event(stored))
        found = self.topics.get(topic)
        if found is None:
            cls = resolve_topic(topic)
            found = self.topics[topic] = (cls, find_id_convertor(cls, type(originator_id)),
                                          getattr(cls, "class_version", 1))
        cls, convert, class_version = found
        fields = self.decode(bytes(state) if not isinstance(state, bytes) else state)
        fields["originator_id"] = convert(originator_id)
        fields["originator_version"] = version
        from_version = fields.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(fields)
            from_version += 1
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", fields)
        return Envelope(position, event)


def _json_decoder(transcoder: Any) -> Callable[[bytes], Any] | None:
    """eventsourcing's `JSONTranscoder.decode`, with an object hook that calls the decoders of its own
    UUID and datetime transcodings directly (a Python call less for each of the ~3.5 objects of an
    event; the decoding was ~60% of reading the log). None for another transcoder."""
    from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, UUIDAsHex

    if type(transcoder) is not JSONTranscoder:
        return None
    fallback = transcoder._decode_obj  # the unregistered-type error, as the transcoder raises it
    direct: dict[str, Callable[[Any], Any]] = {}
    for name, transcoding in transcoder.names.items():
        if type(transcoding) is UUIDAsHex:
            direct[name] = _uuid_of_hex
        elif type(transcoding) is DatetimeAsISO:
            direct[name] = datetime.fromisoformat
        else:
            direct[name] = transcoding.decode

    def hook(d: dict[str, Any]) -> Any:
        if len(d) == 2 and "_type_" in d and "_data_" in d:
            try:
                decode = direct[d["_type_"]]
            except (KeyError, TypeError):
                return fallback(d)
            return decode(d["_data_"])
        return d

    decode = json.JSONDecoder(object_hook=hook).decode

    def decode_bytes(data: bytes) -> Any:
        return decode(data.decode("utf8"))

    return decode_bytes


_new, _set = object.__new__, object.__setattr__
_UNKNOWN = SafeUUID.unknown  # an enum member looked up on its class costs ~0.2 µs


def _uuid_of_hex(text: str) -> UUID:
    """`UUID(text)` for the 32 hex digits `UUIDAsHex` stores, without the constructor's Python checks
    and clean-ups (half its ~2.7 µs; a rebuild decodes one or more per event). The same object: `int`
    from the digits, `is_safe` unknown. Anything else goes to `UUID` (and raises as it does)."""
    if len(text) == 32:
        try:
            value = int(text, 16)
        except ValueError:
            return UUID(text)
        if value >= 0:
            uuid = _new(UUID)
            _set(uuid, "int", value)
            _set(uuid, "is_safe", _UNKNOWN)
            return uuid
    return UUID(text)
