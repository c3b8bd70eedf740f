"""An amplifier switched off while the monitor starts (after its stream was resolved, before the monitor opened it):
pylsl 1.18 raises its own TimeoutError / LostError, which it does not export at the top level, so `except
pylsl.TimeoutError` was itself an AttributeError ("neurofusion monitor: error: AttributeError: module 'pylsl' has no
attribute 'TimeoutError'"). The description falls back to what was resolved, and opening the stream says in one
line that it did not answer. Another outlet that took the vanished one's port is not taken for it (it answered with
its own description). Real outlets on loopback."""

from __future__ import annotations

import gc
import time
import uuid

import pytest

from monitor.errors import UserError


def _resolved_then_gone() -> object:
    import pylsl

    from monitor.acquisition import resolve_stream

    source_id = f"vanish-{uuid.uuid4().hex[:8]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo("vanish-test", "EMG", 3, 1000.0, "float32", source_id))
    info = resolve_stream(source_id=source_id, timeout_s=10.0)
    del outlet
    gc.collect()
    time.sleep(0.3)
    return info


def test_a_stream_gone_before_its_full_description_is_described_from_what_was_resolved() -> None:
    from monitor.acquisition import full_description

    info = _resolved_then_gone()
    description = full_description(info, timeout_s=0.5)
    # its own name and channel count, never another stream's (an inlet left to recover could reach any stream)
    assert description.name == "vanish-test"
    assert description.n_channels == 3


def test_a_stream_gone_before_it_is_opened_is_one_line() -> None:
    from monitor.acquisition import Acquisition

    info = _resolved_then_gone()
    with pytest.raises(UserError, match="did not answer|is gone"):
        Acquisition(info, open_timeout_s=0.5)


def _gone_and_port_taken() -> tuple[object, object]:
    """A resolved stream whose outlet is gone, and a new outlet (another bed) that takes the port it left."""
    import pylsl

    info = _resolved_then_gone()
    other = pylsl.StreamOutlet(pylsl.StreamInfo("another-bed", "EMG", 5, 500.0, "float32",
                                                f"other-{uuid.uuid4().hex[:8]}"))  # fmt: skip
    time.sleep(0.3)
    return info, other


def test_another_outlet_on_the_vanished_ones_port_is_not_taken_for_it() -> None:
    from monitor.acquisition import Acquisition, full_description

    info, other = _gone_and_port_taken()
    description = full_description(info, timeout_s=1.0)  # was another-bed's, 5 channels at 500 Hz
    assert (description.name, description.n_channels) == ("vanish-test", 3)
    with pytest.raises(UserError, match="did not answer"):
        Acquisition(info, open_timeout_s=1.0)  # would have acquired the other bed's samples as this stream's
    del other
