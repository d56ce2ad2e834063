"""A first-come, first-served limit on how many answers compute at once.

`threading.Semaphore` is not fair: a released slot wakes the oldest waiter, but a thread arriving at that
moment may take the slot first, and the waiter it woke goes back to the *end* of the queue. Under 50 chat
sessions that is the long tail: a few questions lost the race again and again and waited for three or four
rounds of everybody else's answers. Here each waiter has its own place in line and is handed the slot.
"""

from __future__ import annotations

import threading
from collections import deque


class FairGate:
    """At most `slots` holders at once; the others get in by order of arrival. Use as a context manager."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        self.slots = slots
        self._lock = threading.Lock()
        self._free = slots
        self._line: deque[threading.Event] = deque()

    def acquire(self) -> None:
        with self._lock:
            if self._free > 0 and not self._line:
                self._free -= 1
                return
            turn = threading.Event()
            self._line.append(turn)
        turn.wait()  # the slot is handed over by `release`: nobody can take it in between

    def release(self) -> None:
        with self._lock:
            if self._line:
                self._line.popleft().set()  # the slot goes to the oldest waiter, still counted as taken
            elif self._free < self.slots:
                self._free += 1
            else:
                raise ValueError("FairGate released more often than acquired")

    @property
    def waiting(self) -> int:
        """Questions in line for a slot now."""
        return len(self._line)

    def __enter__(self) -> FairGate:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
