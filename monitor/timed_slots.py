"""Slot bookkeeping of a fixed-capacity ring of time-stamped entries, shared by the feature and decision histories:
which slot the next entry takes, which slots hold the newest ones in time order, and the newest run stamped at or
after a time. The histories keep their values in arrays indexed by these slots.
"""

from __future__ import annotations

import numpy as np


class TimedSlots:
    """``capacity`` slots written round and round, each with the time stamp of the entry it holds."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.times = np.empty(capacity, dtype=np.float64)  # float64: an LSL time keeps its sub-millisecond digits
        self._next = 0  # slot the next entry takes
        self.count = 0

    def claim(self, timestamp: float) -> int:
        """The slot for a new entry stamped ``timestamp`` (the oldest entry's, once full); the caller writes it."""
        slot = self._next
        self.times[slot] = timestamp
        self._next = (slot + 1) % self.capacity
        self.count = min(self.count + 1, self.capacity)
        return slot

    def newest(self, n: int) -> np.ndarray:
        """Slots of the newest min(n, count) entries, oldest first."""
        n = max(0, min(n, self.count))
        return (self._next - n + np.arange(n)) % self.capacity

    def since(self, time: float, inclusive: bool = True) -> np.ndarray:
        """Slots of the newest run stamped at or after ``time`` (after it, if not ``inclusive``), oldest first.

        The run stops at the newest entry stamped before ``time``, as a walk back from the newest would: with two
        workers, or time stamps that went backwards (a restarted stream), older entries past that point are left out.
        """
        # compared in storage order (filled slots are 0..count-1 until the ring wraps), so a frame that wants the
        # last second does not reorder the whole history first
        filled = self.times[: self.count]
        older = np.flatnonzero(filled < time if inclusive else filled <= time)
        oldest = (self._next - self.count) % self.capacity
        newest_older = int(((older - oldest) % self.capacity).max()) if len(older) else -1
        return self.newest(self.count - 1 - newest_older)

    def oldest_timestamp(self) -> float | None:
        if not self.count:
            return None
        return float(self.times[(self._next - self.count) % self.capacity])
