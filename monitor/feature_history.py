"""A bounded history of per-window features in preallocated arrays: the trend views' source.

A deque of ``(timestamp, {name: array})`` tuples costs ~2 KB a window at 8 channels, mostly Python object headers;
20 minutes of windows made the monitor's memory grow ~50 MiB. Here each feature is one (capacity, *shape) float32
array written in place, so the history costs its payload only, and readers get whole arrays instead of a loop.

Not thread-safe on its own: ``MonitorState.lock`` guards it, as it guards everything else in the state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from numpy.typing import ArrayLike

from monitor.timed_slots import TimedSlots

# float32 is what the views have always drawn from (the pipeline cast to it before the ring existed) and halves the
# payload; timestamps stay float64, where LSL times in seconds keep their sub-millisecond digits.
VALUE_DTYPE = np.float32


class FeatureRing:
    """The last ``capacity`` windows' features, oldest first on every read.

    The feature names and each feature's per-window shape ((C,) from the DSP engine, () for a scalar figure) are
    fixed by the first ``append``: the arrays are allocated then, when they are first known.
    """

    def __init__(self, capacity: int) -> None:
        self._slots = TimedSlots(capacity)
        self.capacity = capacity
        self._values: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return self._slots.count

    @property
    def names(self) -> tuple[str, ...]:
        """The feature names held (empty until the first append)."""
        return tuple(self._values)

    def shape(self, name: str) -> tuple[int, ...]:
        """One window's shape of feature ``name``."""
        return self._values[name].shape[1:]

    def append(self, timestamp: float, features: Mapping[str, ArrayLike]) -> None:
        """Stores one window's features, overwriting the oldest window once full."""
        if not self._values:
            self._allocate(features)
        unknown = set(features) - set(self._values)
        if unknown:
            raise ValueError(f"features {sorted(unknown)} were not in the first window's {list(self._values)}")
        values = {name: np.asarray(value) for name, value in features.items()}
        # all checked before any is written: once full, the slot written holds the oldest window, still readable
        for name, value in values.items():
            if value.shape != self._values[name].shape[1:]:
                raise ValueError(
                    f"feature {name!r} has shape {value.shape}, the history holds {self._values[name].shape[1:]}"
                )
        slot = self._slots.claim(timestamp)
        for name, column in self._values.items():
            # a feature a window lacks is unknown for it, as the views treat NaN
            column[slot] = values.get(name, np.nan)

    def _allocate(self, features: Mapping[str, ArrayLike]) -> None:
        if not features:
            raise ValueError("the first window has no features: nothing fixes the history's layout")
        # np.empty leaves the pages untouched until written: the process's memory grows as the history fills, by
        # the payload only, and a monitor stopped after a minute never pays for twenty
        self._values = {name: np.empty((self.capacity, *np.shape(value)), dtype=VALUE_DTYPE)
                        for name, value in features.items()}  # fmt: skip

    def oldest_timestamp(self) -> float | None:
        return self._slots.oldest_timestamp()

    def latest(self) -> tuple[float, dict[str, np.ndarray]] | None:
        """(timestamp, {name: values}) of the newest window, copies; None while empty."""
        if not len(self):
            return None
        slot = int(self._slots.newest(1)[0])
        return float(self._slots.times[slot]), {name: column[slot].copy() for name, column in self._values.items()}

    def recent(self, n: int, names: Iterable[str] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(timestamps (k,), {name: (k, *shape)}) of the newest k = min(n, len) windows, oldest first, copies."""
        return self._read(self._slots.newest(n), names)

    def since(
        self, time: float, names: Iterable[str] | None = None, inclusive: bool = True
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Like ``recent``, for the newest run of windows stamped at or after ``time`` (after it, if not
        ``inclusive``).

        The run stops at the newest window before ``time``, as a walk back from the newest window would: if time
        stamps ever went backwards (a restarted stream), older windows past that point are not returned.
        """
        return self._read(self._slots.since(time, inclusive), names)

    def _read(self, slots: np.ndarray, names: Iterable[str] | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        wanted = self._values if names is None else {name: self._values[name] for name in names if name in self._values}
        return self._slots.times[slots], {name: column[slots] for name, column in wanted.items()}
