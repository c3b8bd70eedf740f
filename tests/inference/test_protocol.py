"""The wire format: exact round trips, and every malformation refused with its own code (never another exception)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitor.inference import protocol
from monitor.inference.protocol import ProtocolError


def make_request(n_channels: int = 8, n_samples: int = 400, seed: int = 0) -> protocol.InferenceRequest:
    rng = np.random.default_rng(seed)
    mask = np.ones(n_channels, bool)
    mask[1] = False
    return protocol.InferenceRequest(
        request_id="r-1", bed_id="bed-7", sequence=42, last_timestamp=12345.678901234, fs=2048.0,
        window=rng.normal(0, 50, (n_channels, n_samples)).astype(np.float32), channel_mask=mask, model_id=None,
    )


def wire(frames: list) -> list[bytes]:
    """What the receiver gets: plain bytes per frame."""
    return [bytes(frame) for frame in frames]


def header_of(frames: list[bytes]) -> dict:
    return json.loads(frames[0])


def with_header(frames: list[bytes], **changes: object) -> list[bytes]:
    header = header_of(frames)
    header.update(changes)
    return [json.dumps(header).encode(), *frames[1:]]


def test_request_round_trip_is_bit_exact() -> None:
    request = make_request()
    frames = wire(protocol.encode_request(request))
    assert len(frames) == 2 and len(frames[1]) == 8 * 400 * 4
    decoded = protocol.decode(frames)
    assert isinstance(decoded, protocol.InferenceRequest)
    assert decoded.window.dtype == np.dtype("<f4") and decoded.window.shape == (8, 400)
    assert np.array_equal(decoded.window, request.window)
    assert decoded.channel_mask.tolist() == request.channel_mask.tolist()
    assert decoded.last_timestamp == request.last_timestamp  # float64 survives JSON exactly
    assert (decoded.sequence, decoded.bed_id, decoded.fs, decoded.model_id) == (42, "bed-7", 2048.0, None)


def test_payload_is_little_endian_float32_whatever_the_input() -> None:
    request = make_request(2, 3)
    big_endian = request.window.astype(">f8")
    frames = wire(protocol.encode_request(protocol.InferenceRequest(**{**request.__dict__, "window": big_endian})))
    expected = np.asarray(request.window, "<f4").tobytes()
    assert frames[1] == expected


def test_result_round_trip() -> None:
    result = protocol.InferenceResult(
        request_id="r-1", bed_id="bed-7", sequence=3, last_timestamp=1.5, model_id="m", classes=("a", "b", "c"),
        label="b", probabilities=np.array([0.2, 0.7, 0.1], np.float32),
        channel_attention=np.arange(8, dtype=np.float32) / 28, worker_ms=1.25, batch_size=4,
    )
    decoded = protocol.decode(wire(protocol.encode_result(result)))
    assert isinstance(decoded, protocol.InferenceResult)
    assert np.array_equal(decoded.probabilities, result.probabilities)
    assert np.array_equal(decoded.channel_attention, result.channel_attention)
    assert (decoded.label, decoded.classes, decoded.worker_ms, decoded.batch_size) == ("b", ("a", "b", "c"), 1.25, 4)


def test_control_messages_round_trip() -> None:
    assert protocol.decode(wire(protocol.encode_ping(protocol.Ping("p")))) == protocol.Ping("p")
    pong = protocol.Pong("p", "broker", None, 2, {"queued": 0})
    assert protocol.decode(wire(protocol.encode_pong(pong))) == pong
    error = protocol.ErrorReply("r", protocol.BAD_SHAPE, "nope")
    assert protocol.decode(wire(protocol.encode_error(error))) == error
    ready = protocol.WorkerReady("host:1", "model", 64)
    assert protocol.decode(wire(protocol.encode_worker_ready(ready))) == ready


GOOD = wire(protocol.encode_request(make_request()))


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([], protocol.BAD_FRAMES),
        ([GOOD[0]], protocol.BAD_FRAMES),
        (GOOD + [b"extra"], protocol.BAD_FRAMES),
        ([b"{not json", GOOD[1]], protocol.BAD_HEADER),
        ([b"\xff\xfe", GOOD[1]], protocol.BAD_HEADER),
        ([b"[1, 2]", GOOD[1]], protocol.BAD_HEADER),
        ([b"[" * 100_000, GOOD[1]], protocol.TOO_LARGE),
        ([b"[" * 60_000, GOOD[1]], protocol.BAD_HEADER),  # deep nesting: RecursionError inside json, refused
        (with_header(GOOD, v=2), protocol.BAD_VERSION),
        (with_header(GOOD, v=True), protocol.BAD_VERSION),
        (with_header(GOOD, kind="execute"), protocol.BAD_KIND),
        (with_header(GOOD, dtype="<f8"), protocol.BAD_DTYPE),
        (with_header(GOOD, dtype=">f4"), protocol.BAD_DTYPE),
        (with_header(GOOD, shape=[8, 399]), protocol.BAD_SHAPE),
        (with_header(GOOD, shape=[8]), protocol.BAD_SHAPE),
        (with_header(GOOD, shape=[8, -400]), protocol.BAD_SHAPE),
        (with_header(GOOD, shape=[8.0, 400]), protocol.BAD_SHAPE),
        (with_header(GOOD, shape=[100_000, 100_000]), protocol.TOO_LARGE),
        (with_header(GOOD, shape=[512, 16_384]), protocol.TOO_LARGE),  # each within limits, payload too big
        ([GOOD[0], GOOD[1][:-3]], protocol.BAD_SHAPE),
        ([GOOD[0], GOOD[1] + b"\0\0\0\0"], protocol.BAD_SHAPE),
        (with_header(GOOD, seq=-1), protocol.BAD_FIELD),
        (with_header(GOOD, seq=True), protocol.BAD_FIELD),
        (with_header(GOOD, seq="1"), protocol.BAD_FIELD),
        (with_header(GOOD, fs=0), protocol.BAD_FIELD),
        (with_header(GOOD, fs="2k"), protocol.BAD_FIELD),
        (with_header(GOOD, t_last=None), protocol.BAD_FIELD),
        (with_header(GOOD, id=""), protocol.BAD_FIELD),
        (with_header(GOOD, id="x" * 1000), protocol.BAD_FIELD),
        (with_header(GOOD, bed=7), protocol.BAD_FIELD),
        (with_header(GOOD, mask="1" * 7), protocol.BAD_FIELD),
        (with_header(GOOD, mask="1111111x"), protocol.BAD_FIELD),
        (with_header(GOOD, mask=[True] * 8), protocol.BAD_FIELD),
        (with_header(GOOD, model=5), protocol.BAD_FIELD),
    ],
)
def test_malformed_requests_are_refused_with_a_code(frames: list[bytes], code: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        protocol.decode(frames)
    assert caught.value.code == code


def test_non_finite_payload_is_refused() -> None:
    for bad in (np.nan, np.inf, -np.inf):
        window = make_request().window.copy()
        window[3, 17] = bad
        frames = wire(protocol.encode_request(protocol.InferenceRequest(**{**make_request().__dict__,
                                                                            "window": window})))
        with pytest.raises(ProtocolError) as caught:
            protocol.decode(frames)
        assert caught.value.code == protocol.NOT_FINITE
        assert caught.value.request_id == "r-1"  # so the error reply can be matched by the client


def test_nan_in_json_header_is_refused() -> None:
    header = GOOD[0].replace(b'"fs":2048.0', b'"fs":NaN')
    with pytest.raises(ProtocolError) as caught:
        protocol.decode([header, GOOD[1]])
    assert caught.value.code == protocol.BAD_FIELD


def test_result_label_must_be_a_class() -> None:
    result = protocol.InferenceResult("r", "b", 0, 0.0, "m", ("a", "b"), "a", np.array([1, 0], np.float32),
                                      np.ones(2, np.float32), 1.0, 1)
    frames = with_header(wire(protocol.encode_result(result)), label="z")
    with pytest.raises(ProtocolError):
        protocol.decode(frames)


def test_envelope_split() -> None:
    envelope, body = protocol.split_envelope([b"client", b"", b"h", b"p"])
    assert (envelope, body) == ([b"client", b""], [b"h", b"p"])
    envelope, body = protocol.split_envelope([b"worker", b"client", b"", b"h"])
    assert (envelope, body) == ([b"worker", b"client", b""], [b"h"])
    with pytest.raises(ProtocolError):
        protocol.split_envelope([b"client", b"h", b"p"])


def test_random_bytes_only_ever_raise_protocol_error() -> None:
    rng = np.random.default_rng(1)
    header_prefix = GOOD[0][:40]
    refused = 0
    for _ in range(3000):
        n_frames = int(rng.integers(0, 6))
        frames = [rng.bytes(int(rng.integers(0, 64))) for _ in range(n_frames)]
        if frames and rng.random() < 0.5:
            frames[0] = header_prefix + frames[0]  # get past the first JSON byte more often
        try:
            protocol.decode(frames)
        except ProtocolError:
            refused += 1
    assert refused == 3000  # noise never decodes, and never raises anything but ProtocolError
