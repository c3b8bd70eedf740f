"""Python's cyclic garbage collector confined to the Qt thread while a window is up.

The collector runs in whichever thread happens to allocate when a generation fills up. With the acquisition,
DSP and inference-client threads allocating all the time, that is usually not the Qt thread, and a cycle that
holds a Qt object (pyqtgraph's items hold many) is then destroyed there while the Qt thread paints it: "wrapped
C/C++ object of type AxisItem has been deleted", then a segmentation fault (seen in the window tests, 2026-12-06).
pyqtgraph's own remedy, ``GarbageCollector``, turns automatic collection off and collects on a Qt timer instead.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: how often the Qt thread checks the generations; a young-generation collection is sub-millisecond
CHECK_INTERVAL_S = 0.25


@contextmanager
def collection_in_qt_thread(interval_s: float = CHECK_INTERVAL_S) -> Iterator[None]:
    """Within the block, garbage is collected only by a timer in the Qt thread; the previous state comes back after.

    Needs a QApplication (the timer's thread is the one that calls this)."""
    from pyqtgraph.util.garbage_collector import GarbageCollector

    was_enabled = gc.isenabled()
    collector = GarbageCollector(interval=interval_s)
    try:
        yield
    finally:
        collector.timer.stop()
        # what the closed window left in cycles goes here, not later in some other thread; frozen objects too,
        # which would otherwise outlive the QApplication and be freed at interpreter exit in no particular order
        # ("double free or corruption", abort, seen once after the window tests had all passed)
        gc.unfreeze()
        gc.collect()
        if was_enabled:
            gc.enable()
