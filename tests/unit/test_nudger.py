"""workers.broker.Nudger: one message per new position, none for a position already nudged."""
from __future__ import annotations

from workers.broker import Nudger


class _Broker:
    def __init__(self, fail: bool = False):
        self.fail = fail
        self.positions: list[int] = []

    def enqueue(self, message) -> None:
        if self.fail:
            raise ConnectionError("down")
        self.positions.append(message.args[0])


def test_a_position_at_or_below_one_already_sent_is_not_sent_again():
    broker = _Broker()
    nudger = Nudger(broker)
    for position in (5, 5, 5, 7, 6, 7, 9):  # a batch's creations share its position; commits race
        nudger(position)
    assert broker.positions == [5, 7, 9]
    assert (nudger.sent, nudger.skipped) == (3, 4)


def test_a_failed_send_does_not_count_as_sent():
    broker = _Broker(fail=True)
    nudger = Nudger(broker, cooldown=0.0)
    nudger(5)
    broker.fail = False
    nudger(5)
    assert broker.positions == [5]
    assert nudger.failed == 1
