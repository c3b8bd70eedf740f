"""The window's garbage collection runs in the Qt thread while other threads allocate (monitor/gui/collector.py)."""

from __future__ import annotations

import gc
import threading
import weakref

from monitor.gui.collector import collection_in_qt_thread


class _Node:
    def __init__(self) -> None:
        self.partner: _Node | None = None


def _cycle_collected_in(thread_names: list[str]) -> None:
    first, second = _Node(), _Node()
    first.partner, second.partner = second, first  # only the cyclic collector can free these
    weakref.finalize(first, lambda: thread_names.append(threading.current_thread().name))


def _allocate_in_a_thread(count: int) -> list[list[int]]:
    """``count`` new container objects, made in another thread and kept (each counts towards the young generation)."""
    kept: list[list[int]] = []
    worker = threading.Thread(target=lambda: kept.extend([index] for index in range(count)), name="allocating-thread")
    worker.start()
    worker.join()
    return kept


def test_a_cycle_dropped_while_another_thread_allocates_is_freed_by_the_qt_thread(qtbot):
    gc.enable()  # as in a real window's process (the window tests turn it off for the whole package)
    try:
        collected_in: list[str] = []
        with collection_in_qt_thread(interval_s=0.05):
            assert not gc.isenabled()
            _cycle_collected_in(collected_in)
            kept = _allocate_in_a_thread(200_000)  # ~285 young-generation thresholds' worth
            assert collected_in == []  # the allocating thread never collected
            qtbot.waitUntil(lambda: collected_in != [], timeout=5000)
            del kept
            gc.freeze()  # as run_window does once the window is up
        assert collected_in == [threading.main_thread().name]
        assert gc.isenabled()  # restored on the way out
        assert gc.get_freeze_count() == 0  # nothing left to outlive the QApplication
    finally:
        gc.disable()


def test_without_it_the_allocating_thread_collects_the_cycle():
    """The hazard the collector removes: the automatic collector runs in whichever thread fills the generation."""
    gc.enable()
    try:
        gc.collect()
        collected_in: list[str] = []
        _cycle_collected_in(collected_in)
        kept = _allocate_in_a_thread(200_000)
        del kept
        assert collected_in == ["allocating-thread"]
    finally:
        gc.disable()
