"""The hot-swap control messages on the wire: round trips, strict validation, and which peer accepts them."""

from __future__ import annotations

import json

import pytest

from monitor.inference import protocol
from monitor.inference.worker import WORKER_ACCEPTS


def frames_of(**header) -> list[bytes]:
    return [json.dumps({"v": 1, **header}).encode()]


def test_control_messages_round_trip() -> None:
    load = protocol.LoadModel("r1", "/patients/p7/p7-20261124.pt")
    use = protocol.UseModel("r2", "base-model")
    loaded = protocol.ModelLoaded("r1", "adapted", "base-model", ("base-model", "adapted"))
    with_token = (protocol.LoadModel("r3", "/a.pt", "t" * 43), protocol.UseModel("r4", "m", "t" * 43))
    for message in (load, use, loaded, *with_token):
        assert protocol.decode(protocol.encode(message)) == message
    assert protocol.KIND_LOAD_MODEL in WORKER_ACCEPTS and protocol.KIND_USE_MODEL in WORKER_ACCEPTS
    assert protocol.KIND_MODEL_LOADED not in WORKER_ACCEPTS  # a reply kind is never obeyed by a worker


@pytest.mark.parametrize("header, frames, code", [
    ({"kind": "load_model", "id": "a"}, 1, protocol.BAD_FIELD),  # no path
    ({"kind": "load_model", "id": "a", "path": ""}, 1, protocol.BAD_FIELD),
    ({"kind": "load_model", "id": "a", "path": "x" * (protocol.MAX_PATH + 1)}, 1, protocol.BAD_FIELD),
    ({"kind": "load_model", "id": "a", "path": "a\x00b.pt"}, 1, protocol.BAD_FIELD),
    ({"kind": "load_model", "id": "a", "path": ["a.pt"]}, 1, protocol.BAD_FIELD),
    ({"kind": "load_model", "id": "a", "path": "a.pt"}, 2, protocol.BAD_FRAMES),  # a payload it cannot have
    ({"kind": "use_model", "id": "a", "model": 7}, 1, protocol.BAD_FIELD),
    ({"kind": "use_model", "id": "a"}, 1, protocol.BAD_FIELD),
    ({"kind": "use_model", "id": "a", "model": "m", "token": 5}, 1, protocol.BAD_FIELD),
    ({"kind": "load_model", "id": "a", "path": "/a.pt", "token": "x" * (protocol.MAX_TEXT + 1)}, 1,
     protocol.BAD_FIELD),
    ({"kind": "model_loaded", "id": "a", "model": "m", "previous": "p", "loaded": []}, 1, protocol.BAD_FIELD),
    ({"kind": "model_loaded", "id": "a", "model": "m", "previous": "p",
      "loaded": ["m"] * (protocol.MAX_LOADED_MODELS + 1)}, 1, protocol.BAD_FIELD),
])
def test_malformed_control_messages_are_refused_with_a_code(header, frames, code) -> None:
    message = frames_of(**header) + [b"\x00" * 4] * (frames - 1)
    with pytest.raises(protocol.ProtocolError) as refused:
        protocol.decode(message)
    assert refused.value.code == code and refused.value.request_id == "a"
