"""workers.broker.Nudger: one message per new position, one send at a time per process."""
from __future__ import annotations

import threading

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


def test_positions_told_during_a_send_go_in_one_message_after_it():
    nudger = None
    entered, release = threading.Event(), threading.Event()

    class Slow(_Broker):
        def enqueue(self, message) -> None:
            super().enqueue(message)
            if message.args[0] == 1:
                entered.set()
                release.wait(5)

    broker = Slow()
    nudger = Nudger(broker)
    sender = threading.Thread(target=nudger, args=(1,))
    sender.start()
    assert entered.wait(5)
    for position in (2, 3, 4):  # told while 1 is being sent: they return at once
        nudger(position)
    assert broker.positions == [1]
    release.set()
    sender.join(5)
    assert broker.positions == [1, 4]  # the sending thread sent the highest pending one
    nudger(4)
    nudger(5)
    assert broker.positions == [1, 4, 5]


def test_a_failed_send_is_given_up_as_before():
    broker = _Broker(fail=True)
    nudger = Nudger(broker, cooldown=60.0)
    nudger(5)
    nudger(6)  # in the cool-down: not tried
    broker.fail = False
    assert broker.positions == [] and nudger.failed == 2 and nudger.sent == 0
