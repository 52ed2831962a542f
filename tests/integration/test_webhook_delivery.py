"""Webhook delivery below HTTP, on SQLite and Postgres: exactly-once creation with racing workers,
one sender at a time per webhook, retries and the failure budget (on an injected clock), the
sender's limits against real servers, and the dramatiq path (`webhooks.deliver` on real Redis).

The receivers are real HTTP servers on 127.0.0.1; the deployments allow private destinations so
they may deliver to them."""
from __future__ import annotations

import functools
import socket
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from application import Principal
from interfaces.bootstrap import build
from workers.webhooks import sender
from workers.webhooks.dispatcher import Dispatcher
from workers.webhooks.runner import WebhookRunner
from tests.support.waiting import until as wait_until
from workers.webhooks.store import deliveries

FAST = dict(webhooks_allow_private_networks=True, webhook_retry_base_seconds=0.05, webhook_retry_max_seconds=0.2,
            webhook_timeout_seconds=2.0)


class Receiver:
    """Records (headers, body) of each POST. `statuses`: answers to give, in order, then `status`;
    `delay`: seconds each answer takes (to widen race windows); tracks requests in flight."""

    def __init__(self, status: int = 200, delay: float = 0.0, statuses: list[int] | None = None):
        self.status, self.delay, self.statuses = status, delay, list(statuses or [])
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.status
                time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.in_flight -= 1
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.requests.append({"path": self.path, "headers": headers, "body": raw, "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def accepted(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if 200 <= r["status"] < 300]

    def positions(self) -> list[int]:
        return [int(r["headers"]["promptforge-event-id"]) for r in self.accepted()]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make(**kw) -> Receiver:
        made.append(Receiver(**kw))
        return made[-1]

    yield make
    for r in made:
        r.close()


#: Deliveries through threads, Redis and dramatiq: a longer wait than the e2e default.
until = functools.partial(wait_until, timeout=20.0)


class World:
    """An owner, an organisation and a prompt, made through the application's commands."""

    def __init__(self, app, tag: str = "hooks"):
        self.app = app
        user_id, _ = app.register_user(f"{tag}-{uuid.uuid4().hex[:6]}@example.com", "correct horse battery", tag, "r")
        self.owner = Principal.user(user_id)
        self.org = app.create_organisation(self.owner, tag, "r").id
        self.prompt = app.create_prompt(self.owner, self.org, name="p", template="v1 {{x}}", request_id="r").id
        self.version = 1

    def hook(self, url: str, events: list[str] | None = None) -> tuple[str, str]:
        result = self.app.create_webhook(self.owner, self.org, url=url, events=events or ["prompt.revised"],
                                         request_id="r")
        return str(result.id), result.data["secret"]

    def revise(self, n: int = 1) -> list[int]:
        positions = []
        for _ in range(n):
            self.version += 1
            result = self.app.revise_prompt(self.owner, self.org, self.prompt, base_version=self.version - 1,
                                            template=f"v{self.version} {{{{x}}}}", request_id="r")
            positions.append(result.position)
        return positions


def _rows(container, webhook_id: str) -> list[dict[str, Any]]:
    with container.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(deliveries).where(deliveries.c.webhook_id == webhook_id).order_by(deliveries.c.position))]


# -- exactly-once creation -------------------------------------------------------------------------
def test_two_dispatchers_racing_create_each_delivery_exactly_once(make_settings, receivers):
    settings = make_settings(**FAST, db_pool_size=3)
    first, second = build(settings), build(settings)
    try:
        world = World(first.app)
        url = receivers().url
        hooks = [world.hook(url, ["*"])[0], world.hook(url, ["prompt.revised"])[0], world.hook(url, ["*"])[0]]
        created: dict[str, list[tuple[str, str]]] = {"first": [], "second": []}
        errors: list[BaseException] = []
        expected: list[int] = []
        for round_ in range(6):
            expected += world.revise(5)
            first.supervisor.catch_up()
            barrier = threading.Barrier(4)

            def race(name: str, container) -> None:
                try:
                    barrier.wait()
                    for _ in range(3):
                        created[name].extend(container.dispatcher.enqueue())
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=race, args=(n, c)) for n, c in
                       (("first", first), ("second", second), ("first", first), ("second", second))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        assert errors == [], errors  # losing a race is not an error (e.g. both creating a cursor)
        both = created["first"] + created["second"]
        assert len(both) == len(set(both)), "a delivery reported created twice"
        changes = first.changes.after(str(world.org), 0, audit=True, limit=1000)
        for hook_id in hooks:
            rows = _rows(first, hook_id)
            start = first.webhooks.get(str(world.org), hook_id)["created_position"]
            events = first.webhooks.get(str(world.org), hook_id)["events"]
            wanted = [c["position"] for c in changes
                      if c["position"] > start and ("*" in events or c["type"] in events)]
            assert [r["position"] for r in rows] == wanted
            assert sorted(d for w, d in both if w == hook_id) == sorted(r["delivery_id"] for r in rows)
        assert set(expected) <= {r["position"] for r in _rows(first, hooks[1])}
    finally:
        first.close()
        second.close()


def test_two_workers_never_send_one_webhook_concurrently_or_out_of_order(make_settings, receivers):
    settings = make_settings(**FAST, db_pool_size=4)
    first, second = build(settings), build(settings)
    try:
        world = World(first.app)
        receiver = receivers(delay=0.02)
        hook_id, secret = world.hook(receiver.url)
        positions = world.revise(20)
        first.supervisor.catch_up()
        assert len(first.dispatcher.enqueue()) == 20
        stop = threading.Event()
        errors: list[BaseException] = []

        def work(container) -> None:
            try:
                while not stop.is_set():
                    container.dispatcher.deliver(hook_id)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(c,)) for c in (first, second, first, second)]
        for t in threads:
            t.start()
        try:
            until(lambda: len(receiver.accepted()) >= 20, message="20 deliveries")
            time.sleep(0.2)  # anything sent twice would arrive now
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert errors == []
        assert receiver.max_in_flight == 1
        assert receiver.positions() == positions  # each once, in order
        assert all(sender.verify(secret, r["body"], r["headers"]["promptforge-signature"]) for r in receiver.accepted())
        assert all(r["state"] == "delivered" and r["attempts"] == 1 for r in _rows(first, hook_id))
    finally:
        first.close()
        second.close()


def test_a_runner_leaves_alone_a_webhook_another_process_is_sending(make_settings, receivers):
    """Two API processes with embedded runners: while one waits on a slow receiver, the other
    does not start that webhook again and again (it is held; its turn comes on the next round)."""
    settings = make_settings(**{**FAST, "webhook_timeout_seconds": 5.0}, db_pool_size=4, inprocess_projections=True,
                             projection_poll_seconds=0.1)
    first, second = build(settings), build(settings)
    try:
        receiver = receivers(delay=2.0)
        world = World(first.app)
        world.hook(receiver.url)
        starts = {"first": 0, "second": 0}
        for name, container in (("first", first), ("second", second)):
            def counting(webhook_id, deliver=container.dispatcher.deliver, name=name):
                starts[name] += 1  # counts, then delivers
                return deliver(webhook_id)

            container.dispatcher.deliver = counting
        first.start()
        second.start()
        world.revise(1)
        until(lambda: receiver.in_flight == 1, message="the slow delivery in flight")
        before = dict(starts)
        time.sleep(1.0)
        assert sum(starts.values()) - sum(before.values()) <= 25, starts  # ~10 rounds a second, not a spin
        until(lambda: len(receiver.accepted()) == 1, message="the slow delivery done")
    finally:
        first.close()
        second.close()


# -- retries and the failure budget, on the dispatcher's clock --------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def _dispatcher(container, clock) -> Dispatcher:
    d = container.dispatcher
    return Dispatcher(d.app, d.engine, d.store, d.webhooks, d.changes, d.policy, clock=clock)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def test_retries_back_off_and_the_queue_waits_behind_the_head(make_settings, receivers):
    container = build(make_settings(**{**FAST, "webhook_retry_base_seconds": 10, "webhook_retry_max_seconds": 60}))
    try:
        world = World(container.app)
        receiver = receivers(status=503)
        hook_id, _ = world.hook(receiver.url)
        positions = world.revise(3)
        container.supervisor.catch_up()
        clock = Clock()
        dispatcher = _dispatcher(container, clock)
        dispatcher.enqueue()
        steps = []
        for failures in range(1, 6):
            assert dispatcher.due() == [hook_id]
            retry = dispatcher.deliver(hook_id)
            step = min(60, 10 * 2 ** (failures - 1))
            assert step / 2 <= (retry - clock.now).total_seconds() <= step
            head = _rows(container, hook_id)[0]
            assert _aware(head["next_attempt_at"]) == retry and head["attempts"] == failures
            assert dispatcher.deliver(hook_id) is None and dispatcher.due() == []  # not due yet: nothing sent
            steps.append(len(receiver.requests))
            clock.now = retry
        assert steps == [1, 2, 3, 4, 5]
        assert {int(r["headers"]["promptforge-event-id"]) for r in receiver.requests} == {positions[0]}
        log = container.deliveries.log(str(world.org), hook_id)
        assert [a["status_code"] for a in log[-1]["log"]] == [503] * 5
        assert all(a["error"] == "HTTP 503" and a["next_retry_at"] is not None for a in log[-1]["log"])
        receiver.status = 200
        assert dispatcher.deliver(hook_id) is None
        assert receiver.positions() == positions
        assert container.deliveries.failures(hook_id) == (0, None)  # success ends the run of failures
    finally:
        container.close()


def test_the_failure_budget_disables_the_webhook_as_the_system(make_settings, receivers):
    container = build(make_settings(**{**FAST, "webhook_retry_base_seconds": 60, "webhook_retry_max_seconds": 3600,
                                       "webhook_failure_budget_seconds": 86_400}))
    try:
        world = World(container.app)
        receiver = receivers(status=500)
        hook_id, _ = world.hook(receiver.url)
        world.revise(2)
        container.supervisor.catch_up()
        clock = Clock()
        dispatcher = _dispatcher(container, clock)
        dispatcher.enqueue()
        started = clock.now
        while True:
            retry = dispatcher.deliver(hook_id)
            if retry is None:
                break
            clock.now = retry
        assert (clock.now - started).total_seconds() >= 86_400
        hook = container.app.get_webhook(world.owner, world.org, uuid.UUID(hook_id))
        assert not hook.enabled and "consecutive failed deliveries over" in hook.disabled_reason
        failures = len(receiver.requests)
        assert 5 < failures < 60  # the budget, not the count, ended it
        container.supervisor.catch_up()
        audit, _ = container.audit.query(str(world.org), action="webhook.disabled")
        assert [(a["actor"], a["target_id"]) for a in audit] == [("system:webhooks", hook_id)]
        # Disabled: nothing is due, and no round starts it (it would find it disabled, round after round).
        assert dispatcher.due() == []
        runner = WebhookRunner(dispatcher, None, poll_seconds=0.05, concurrency=2)
        runner._pool = ThreadPoolExecutor(2)  # run_once() without the loop thread
        try:
            assert runner.run_once() == 0
        finally:
            runner._pool.shutdown(wait=True)
        assert _rows(container, hook_id)[0]["state"] == "pending"
        # Re-enabled by a member: a fresh budget, the head due at once, the queue in order.
        receiver.status = 200
        container.app.update_webhook(world.owner, world.org, uuid.UUID(hook_id), "r", enabled=True)
        container.supervisor.catch_up()
        assert dispatcher.due() == [hook_id]
        assert dispatcher.deliver(hook_id) is None
        assert len(receiver.accepted()) == 2 and receiver.positions() == sorted(receiver.positions())
        assert len(receiver.requests) == failures + 2
    finally:
        container.close()


def test_a_long_unresolvable_host_is_logged_and_disables_cleanly(make_settings):
    container = build(make_settings(**{**FAST, "webhook_max_consecutive_failures": 1}))
    try:
        world = World(container.app)
        host = ".".join(["a" * 63] * 15) + "." + "b" * 64 + ".test"  # one label too long for DNS
        hook_id, _ = world.hook(f"http://{host}/hook")
        world.revise(1)
        container.supervisor.catch_up()
        container.dispatcher.enqueue()
        assert container.dispatcher.deliver(hook_id) is None
        (row,) = container.deliveries.log(str(world.org), hook_id)
        assert row["state"] == "pending" and row["log"][0]["error"].startswith("cannot resolve")
        hook = container.app.get_webhook(world.owner, world.org, uuid.UUID(hook_id))
        assert not hook.enabled and "cannot resolve" in hook.disabled_reason
    finally:
        container.close()


# -- the sender against real servers -----------------------------------------------------------------
class _Awkward(BaseHTTPRequestHandler):
    """/trickle: a 200 whose body comes a byte every 0.1 s; /flood: a 200 with an endless body."""

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append((self.path, self.headers.get("Host")))
        self.send_response(200)
        try:
            if self.path == "/trickle":
                self.send_header("Content-Length", "100")
                self.end_headers()
                for _ in range(50):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
            else:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for _ in range(200_000):
                    self.wfile.write(b"1000\r\n" + b"y" * 4096 + b"\r\n")
        except OSError:
            pass

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def awkward():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Awkward)
    server.daemon_threads = True
    server.seen = []
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_timeout_bounds_the_whole_attempt(awkward):
    started = time.monotonic()
    outcome = sender.deliver(f"http://127.0.0.1:{awkward.server_address[1]}/trickle", b"{}", {}, allow_private=True,
                             timeout=0.5)
    assert not outcome.ok and outcome.error == "timed out after 0.5s"
    assert time.monotonic() - started < 2.0


def test_at_most_a_few_kib_of_the_answer_is_read(awkward):
    started = time.monotonic()
    outcome = sender.deliver(f"http://127.0.0.1:{awkward.server_address[1]}/flood", b"{}", {}, allow_private=True,
                             timeout=2.0)
    assert outcome.ok and outcome.status_code == 200
    assert time.monotonic() - started < 1.5  # it stopped reading: the body never ends


def test_the_resolved_address_is_connected_to_with_the_original_host_header(awkward, monkeypatch):
    real = socket.getaddrinfo
    port = awkward.server_address[1]

    def resolving(host, *args, **kwargs):
        return real("127.0.0.1" if host == "receiver.hooks.test" else host, *args, **kwargs)

    monkeypatch.setattr(sender.socket, "getaddrinfo", resolving)
    url = f"http://receiver.hooks.test:{port}/flood"
    assert sender.deliver(url, b"{}", {}, allow_private=True, timeout=2.0).ok
    assert awkward.seen == [("/flood", f"receiver.hooks.test:{port}")]
    refused = sender.deliver(url, b"{}", {}, allow_private=False, timeout=2.0)
    assert not refused.ok and "non-public address (127.0.0.1)" in refused.error and len(awkward.seen) == 1


def test_every_resolved_address_is_tried_until_one_answers(awkward, monkeypatch):
    """`localhost` often resolves to ::1 first, while the receiver listens on 127.0.0.1 only."""
    real = socket.getaddrinfo
    port = awkward.server_address[1]

    def resolving(host, *args, **kwargs):
        if host == "dual.hooks.test":
            return real("::1", *args, **kwargs) + real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(sender.socket, "getaddrinfo", resolving)
    outcome = sender.deliver(f"http://dual.hooks.test:{port}/flood", b"{}", {}, allow_private=True, timeout=2.0)
    assert outcome.ok, outcome
    assert awkward.seen == [("/flood", f"dual.hooks.test:{port}")]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    free = closed.getsockname()[1]
    closed.close()
    down = sender.deliver(f"http://dual.hooks.test:{free}/", b"{}", {}, allow_private=True, timeout=2.0)
    assert not down.ok and down.error.startswith("ConnectError")


@pytest.mark.parametrize("url", ["http://example.com:99999/", "http://[::1/", "http://" + "a" * 64 + ".test/",
                                 "http://nowhere.invalid/", "http://127.0.0.1:9/\x7f"])
def test_undeliverable_urls_are_outcomes_not_crashes(url):
    """URLs the rules refuse now may be in older events: sending them is a failed attempt, not a crash."""
    outcome = sender.deliver(url, b"{}", {}, allow_private=True, timeout=1.0)
    assert not outcome.ok and outcome.status_code is None and outcome.error


# -- the dramatiq path ------------------------------------------------------------------------------
@pytest.fixture
def dramatiq_worker(redis_url):
    """A real RedisBroker (its own namespace on the tests' Redis) and a dramatiq Worker in this process."""
    import dramatiq
    import redis
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.middleware import Middleware

    from workers.actors import TickMiddleware, register
    from workers.broker import QUEUE, WEBHOOK_QUEUE

    class Processed(Middleware):
        def __init__(self) -> None:
            self.messages: list[tuple[str, str]] = []

        def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
            self.messages.append((message.queue_name, message.actor_name))

    started: list[Any] = []

    def start(container, *, tick: float | None = None):
        namespace = f"pf-test-{uuid.uuid4().hex[:8]}"
        broker = RedisBroker(client=redis.Redis.from_url(redis_url), namespace=namespace)
        processed = Processed()
        broker.add_middleware(processed)
        if tick is not None:
            broker.add_middleware(TickMiddleware(lambda: container, tick, sweep_seconds=0))
        broker.declare_queue(QUEUE)
        broker.declare_queue(WEBHOOK_QUEUE)
        actors = register(broker, lambda: container)
        worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
        worker.start()
        started.append((worker, broker, namespace))
        return actors, processed

    def stop() -> None:
        """Before the container closes: the worker's threads use it."""
        while started:
            worker, broker, namespace = started.pop()
            for tick in [m for m in broker.middleware if isinstance(m, TickMiddleware)]:
                tick.before_worker_shutdown(broker, worker)
                if tick._thread is not None:
                    tick._thread.join(10)
            worker.stop()
            keys = list(broker.client.scan_iter(f"{namespace}*"))
            if keys:
                broker.client.delete(*keys)
            broker.close()

    start.stop = stop
    yield start
    stop()


@pytest.mark.redis
def test_a_delivery_arrives_through_the_webhooks_deliver_actor_with_retries(make_settings, receivers, dramatiq_worker):
    from workers.broker import CATCH_UP_ACTOR, DELIVER_ACTOR, WEBHOOK_QUEUE

    container = build(make_settings(**FAST))
    try:
        world = World(container.app)
        receiver = receivers(statuses=[500, 502])
        hook_id, secret = world.hook(receiver.url)
        positions = world.revise(3)
        assert container.runners == []  # nothing in-process: only the worker can deliver
        actors, processed = dramatiq_worker(container)
        actors[CATCH_UP_ACTOR].send()  # what the API's commit nudge does
        until(lambda: len(receiver.accepted()) >= 3, message="deliveries through dramatiq")
        assert receiver.positions() == positions
        assert [r["status"] for r in receiver.requests] == [500, 502, 200, 200, 200]
        assert all(sender.verify(secret, r["body"], r["headers"]["promptforge-signature"]) for r in receiver.requests)
        delivered = Counter(actor for queue, actor in processed.messages if queue == WEBHOOK_QUEUE)
        assert delivered[DELIVER_ACTOR] >= 3  # one message per delivery created, plus the delayed retries
        (head, *_) = reversed(container.deliveries.log(str(world.org), hook_id))
        assert [a["ok"] for a in head["log"]] == [False, False, True]
    finally:
        dramatiq_worker.stop()
        container.close()


@pytest.mark.redis
def test_the_tick_sweeps_up_deliveries_whose_messages_were_lost(make_settings, receivers, dramatiq_worker):
    container = build(make_settings(**FAST))
    try:
        world = World(container.app)
        receiver = receivers()
        world.hook(receiver.url)
        positions = world.revise(2)
        container.supervisor.catch_up()
        container.dispatcher.enqueue()  # created, but no message sent for them
        dramatiq_worker(container, tick=0.1)
        until(lambda: len(receiver.accepted()) >= 2, message="the sweep's deliveries")
        assert receiver.positions() == positions
    finally:
        dramatiq_worker.stop()
        container.close()
