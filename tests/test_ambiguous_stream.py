"""`neurofusion monitor` with no --name (type EMG, the default) or a --name two outlets share: liblsl's first answer
was taken, so with two amplifiers (two beds, or a simulator left running) the monitor could silently watch the
wrong patient. Several matching streams are refused in one line that names each; --source-id stays the way to pick
one. Real outlets on loopback (about a second)."""

from __future__ import annotations

import uuid

import pytest

from monitor.acquisition import resolve_stream
from monitor.errors import UserError


def test_two_streams_of_one_name_are_refused_naming_both() -> None:
    import pylsl

    name = f"ambiguous-{uuid.uuid4().hex[:8]}"
    outlets = [pylsl.StreamOutlet(pylsl.StreamInfo(name, "EMG", 2, 1000.0, "float32", f"{name}-bed{bed}"))
               for bed in (1, 2)]  # fmt: skip
    with pytest.raises(UserError, match="several LSL streams") as refused:
        resolve_stream(name=name, timeout_s=5.0)
    assert f"{name}-bed1" in str(refused.value) and f"{name}-bed2" in str(refused.value)
    assert "--source-id" in str(refused.value)
    # the source id picks one
    assert resolve_stream(source_id=f"{name}-bed2", timeout_s=5.0).source_id() == f"{name}-bed2"
    del outlets


def test_one_stream_of_a_name_is_found() -> None:
    import pylsl

    name = f"single-{uuid.uuid4().hex[:8]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "EMG", 2, 1000.0, "float32", f"{name}-bed1"))
    assert resolve_stream(name=name, timeout_s=5.0).source_id() == f"{name}-bed1"
    del outlet
