"""Whether the bundled 8-electrode model fits a live stream is decided on the outlet's full description: an index
channel typed MISC is not an electrode (a resolved StreamInfo carries no channel types)."""

from __future__ import annotations

import uuid

import pylsl
import pytest

from monitor.session import SessionOptions, check_model_fits, model_card


def _outlet(types: list[str]) -> tuple[pylsl.StreamOutlet, str]:
    source_id = f"fits-{uuid.uuid4().hex[:8]}"
    info = pylsl.StreamInfo("fits", "EMG", len(types), 2048.0, "float32", source_id)
    channels = info.desc().append_child("channels")
    for index, kind in enumerate(types):
        channel = channels.append_child("channel")
        channel.append_child_value("label", "INDEX" if kind == "MISC" else f"E{index + 1:02d}")
        channel.append_child_value("type", kind)
    return pylsl.StreamOutlet(info), source_id


@pytest.mark.parametrize(("types", "fits"), [(["EMG"] * 8 + ["MISC"], True), (["EMG"] * 9, False)])
def test_an_index_channel_is_not_counted_as_an_electrode(types, fits):
    outlet, source_id = _outlet(types)
    resolved = pylsl.resolve_byprop("source_id", source_id, timeout=5.0)
    assert resolved and resolved[0].channel_count() == 9
    options = SessionOptions()
    assert check_model_fits(model_card(options), resolved[0], options) is fits
    del outlet
