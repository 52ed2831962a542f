"""dramatiq broker on Redis, and the best-effort nudge the API sends after each commit."""
from __future__ import annotations

import logging
import threading
import time

import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker

log = logging.getLogger(__name__)

QUEUE = "projections"
CATCH_UP_ACTOR = "projections.catch_up"
#: Webhook deliveries have their own queue: a slow receiver never holds up the read models.
WEBHOOK_QUEUE = "webhooks"
DELIVER_ACTOR = "webhooks.deliver"


def make_broker(url: str) -> RedisBroker:
    """A Redis broker with short socket timeouts: a dead Redis must fail fast, not hang a request."""
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=2.0)
    broker = RedisBroker(client=client)
    broker.declare_queue(QUEUE)
    broker.declare_queue(WEBHOOK_QUEUE)
    return broker


class Nudger:
    """Commit listener: enqueue a catch-up message after events are committed.

    Best-effort by design (adr/0006): events are already durable in the event store and the
    workers' periodic tick guarantees progress, so a Redis outage only delays read models. After
    a failure, sends are skipped for `cooldown` seconds so commands never queue on a dead socket."""

    def __init__(self, broker: RedisBroker, cooldown: float = 2.0):
        self.broker = broker
        self.cooldown = cooldown
        self._down_until = 0.0
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0

    def __call__(self, position: int) -> None:
        if time.monotonic() < self._down_until:
            self.failed += 1
            return
        message = Message(queue_name=QUEUE, actor_name=CATCH_UP_ACTOR, args=(position,), kwargs={}, options={})
        try:
            self.broker.enqueue(message)
            self.sent += 1
        except Exception as exc:  # any broker/connection error: never fail the command
            with self._lock:
                self._down_until = time.monotonic() + self.cooldown
                self.failed += 1
            log.warning("projection nudge not sent (%s); workers will catch up on their next tick",
                        type(exc).__name__)
