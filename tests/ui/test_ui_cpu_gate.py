"""FairGate: answers computed a few at a time get their turn in the order they asked."""

from __future__ import annotations

import threading
import time

import pytest

from ui.cpu_gate import FairGate


def _wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.002)


def test_waiters_get_the_slot_in_their_order_of_arrival_and_late_comers_do_not_jump_the_line():
    gate = FairGate(1)
    gate.acquire()  # the slot is busy
    order: list[int] = []
    proceed = threading.Event()

    def answer(number: int) -> None:
        with gate:
            order.append(number)
            proceed.wait(10)

    threads = []
    for number in range(5):  # they queue one after the other
        thread = threading.Thread(target=answer, args=(number,))
        thread.start()
        threads.append(thread)
        _wait_until(lambda n=number: gate.waiting == n + 1, "the waiter never queued")
    proceed.set()
    gate.release()
    # A question arriving while the line moves on waits behind it, never before the ones in line.
    late = threading.Thread(target=answer, args=(99,))
    late.start()
    for thread in [*threads, late]:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4, 99]


def test_slots_are_shared_and_given_back():
    gate = FairGate(2)
    gate.acquire()
    gate.acquire()
    got = threading.Event()
    waiter = threading.Thread(target=lambda: (gate.acquire(), got.set()))
    waiter.start()
    _wait_until(lambda: gate.waiting == 1, "the third never queued")
    assert not got.is_set()
    gate.release()
    assert got.wait(10)
    waiter.join(10)
    gate.release()
    gate.release()
    gate.acquire()  # both slots free again: no wait
    gate.release()
    with pytest.raises(ValueError, match="released more often"):
        gate.release()


def test_slots_must_be_positive():
    with pytest.raises(ValueError, match="slots"):
        FairGate(0)
