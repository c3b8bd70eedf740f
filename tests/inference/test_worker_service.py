"""A real worker subprocess: same answers as the model in-process, batching, and survival of malformed traffic."""

from __future__ import annotations

import json
import time

import numpy as np
import psutil
import pytest
import zmq

from monitor.inference import protocol
from monitor.inference.client import InferenceClient
from monitor.inference.supervisor import WorkerHandle
from tests.inference.helpers import collect_decisions, emg_like_windows

FS = 2000.0


@pytest.fixture
def client(worker: WorkerHandle):
    with InferenceClient(worker.endpoint, bed_id="bed-3", deadline_s=20.0, max_in_flight=16) as made:
        yield made


def test_round_trip_equals_the_model_in_process(client, in_process_predictor) -> None:
    windows = emg_like_windows(6, 8, 400, seed=3)
    masks = np.ones((6, 8), bool)
    masks[2, [0, 5]] = False
    for index in range(6):
        client.submit(windows[index], 500.0 + index * 0.05, index, FS, masks[index])
        [decision] = collect_decisions(client, 1)
        expected = in_process_predictor.predict(windows[index : index + 1], masks[index : index + 1], FS)
        assert decision.sequence == index and decision.last_timestamp == 500.0 + index * 0.05
        assert decision.bed_id == "bed-3" and decision.model_id == in_process_predictor.card.model_id
        np.testing.assert_allclose(decision.probabilities, expected.probabilities[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(decision.channel_attention, expected.channel_attention[0], rtol=1e-5, atol=1e-6)
        assert decision.label == in_process_predictor.card.classes[int(np.argmax(expected.probabilities[0]))]
        assert decision.worker_ms > 0 and decision.round_trip_ms >= decision.worker_ms
    assert masks[2, 0] == 0 and np.all(windows[2][0] != 0)
    # masked channels get no attention: the mask crossed the wire
    stats = client.stats
    assert (stats["answered"], stats["errors"], stats["dropped_deadline"]) == (6, 0, 0)


def test_a_channel_with_nan_is_masked_not_sent(client, in_process_predictor) -> None:
    window = emg_like_windows(1, 8, 400, seed=6)[0]
    broken = window.copy()
    broken[2, 100:110] = np.nan  # an electrode that fell off mid-window
    client.submit(broken, 1.0, 0, FS)
    [decision] = collect_decisions(client, 1)
    mask = np.ones((1, 8), bool)
    mask[0, 2] = False
    expected = in_process_predictor.predict(window[None], mask, FS)
    assert decision.channel_attention[2] == 0.0 and client.stats["errors"] == 0
    np.testing.assert_allclose(decision.probabilities, expected.probabilities[0], rtol=1e-5, atol=1e-6)


def test_windows_arriving_together_are_batched_with_the_same_answers(client, in_process_predictor) -> None:
    windows = emg_like_windows(12, 8, 400, seed=4)
    for index in range(12):
        client.submit(windows[index], float(index), index, FS)
    decisions = sorted(collect_decisions(client, 12), key=lambda d: d.sequence)
    assert [d.sequence for d in decisions] == list(range(12))
    assert max(d.batch_size for d in decisions) > 1
    expected = in_process_predictor.predict(windows, np.ones((12, 8), bool), FS)
    np.testing.assert_allclose([d.probabilities for d in decisions], expected.probabilities, rtol=1e-4, atol=1e-5)


def test_model_refusal_and_model_mismatch_are_error_replies(worker: WorkerHandle) -> None:
    with InferenceClient(worker.endpoint, bed_id="bed-4", deadline_s=20.0) as client:
        client.submit(np.ones((4, 400), np.float32), 0.0, 0, FS)  # the model takes 8 channels
        give_up = time.monotonic() + 20
        while client.stats["errors"] < 1 and time.monotonic() < give_up:
            time.sleep(0.05)
        assert client.stats["error_codes"] == {protocol.MODEL_REJECTED: 1}
        assert "8 channels" in client.stats["last_error"]
    with InferenceClient(worker.endpoint, bed_id="bed-4", deadline_s=20.0, model_id="other-model") as client:
        client.submit(np.ones((8, 400), np.float32), 0.0, 0, FS)
        give_up = time.monotonic() + 20
        while client.stats["errors"] < 1 and time.monotonic() < give_up:
            time.sleep(0.05)
        assert client.stats["error_codes"] == {protocol.MODEL_MISMATCH: 1}
        assert client.poll() == []


def malformed_messages(rng: np.random.Generator, good: list[bytes]) -> list[tuple[list[bytes], bool]]:
    """(frames as the client sends them, whether the worker should answer) for every way we know to be wrong."""
    header = json.loads(good[0])

    def variant(payload: bytes = good[1], **changes: object) -> list[bytes]:
        return [b"", json.dumps({**header, "id": rng.bytes(6).hex(), **changes}).encode(), payload]

    nan_payload = np.frombuffer(good[1], "<f4").copy()
    nan_payload[int(rng.integers(0, nan_payload.size))] = np.nan
    cut = int(rng.integers(1, len(good[1])))
    choices = [
        ([b""], True),  # delimiter and nothing else
        ([b"", good[0]], True),  # header without payload
        ([b"", good[0], good[1], b"x", b"y", b"z"], True),  # too many frames
        ([b"", rng.bytes(int(rng.integers(1, 200)))], True),  # header is noise
        ([b"", b'{"v":1,"kind":"infer","id":"x","shape":[', good[1]], True),  # truncated JSON
        (variant(shape=[100_000, 1_000_000]), True),  # huge declared shape, small payload
        (variant(shape=[8, 10**30]), True),
        (variant(payload=nan_payload.tobytes()), True),
        (variant(dtype="<f8", payload=good[1] + good[1]), True),
        (variant(dtype="int16", payload=good[1][: len(good[1]) // 2]), True),
        (variant(payload=good[1][:cut]), True),  # truncated payload
        (variant(v=99), True),
        (variant(kind="result"), True),  # a client may not send results
        (variant(kind="worker_ready"), True),
        (variant(mask="2" * 8), True),
        (variant(seq=-5), True),
        ([rng.bytes(int(rng.integers(1, 50))) + b"!" for _ in range(int(rng.integers(1, 4)))], False),  # no envelope
    ]
    return [choices[int(index)] for index in rng.integers(0, len(choices), size=100)]


def test_fuzzed_worker_never_dies_keeps_memory_bounded_and_answers_after(worker: WorkerHandle,
                                                                          in_process_predictor) -> None:
    rng = np.random.default_rng(7)
    window = emg_like_windows(1, 8, 400, seed=9)[0]
    good = [bytes(f) for f in protocol.encode_request(protocol.InferenceRequest(
        "good", "bed-9", 1, 2.0, FS, window, np.ones(8, bool)))]
    context = zmq.Context.instance()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(worker.endpoint)
    process = psutil.Process(worker.pid)
    codes: dict[str, int] = {}

    def blast(rounds: int) -> tuple[int, int]:
        expected = answered = 0
        for _ in range(rounds):
            batch = malformed_messages(rng, good)
            for frames, answers in batch:
                sock.send_multipart(frames)
                expected += answers
            give_up = time.monotonic() + 20
            while answered < expected and time.monotonic() < give_up:
                if sock.poll(200):
                    reply = protocol.decode(sock.recv_multipart()[1:])
                    assert isinstance(reply, protocol.ErrorReply)
                    codes[reply.code] = codes.get(reply.code, 0) + 1
                    answered += 1
        return expected, answered

    try:
        blast(5)  # first allocations (json, numpy) happen here, not in the measured part
        rss_before = process.memory_info().rss
        expected, answered = blast(30)  # 3000 malformed messages
        rss_after = process.memory_info().rss
        assert worker.alive
        assert answered == expected > 2000  # every message with an envelope got exactly its error reply
        assert not sock.poll(300)  # and nothing more (the ones without an envelope were dropped, not answered)
        assert rss_after - rss_before < 20 * 2**20
        assert {protocol.BAD_FRAMES, protocol.BAD_HEADER, protocol.TOO_LARGE, protocol.NOT_FINITE,
                protocol.BAD_DTYPE, protocol.BAD_SHAPE, protocol.BAD_VERSION, protocol.BAD_KIND,
                protocol.BAD_FIELD} <= set(codes)
        # a message larger than the protocol allows is cut off by libzmq itself (the sender is disconnected)
        sock.send_multipart([b"", good[0], bytes(protocol.MAX_PAYLOAD_BYTES + 2 * protocol.MAX_HEADER_BYTES)])
        time.sleep(0.3)
        assert worker.alive
    finally:
        sock.close(0)
    with InferenceClient(worker.endpoint, bed_id="bed-9", deadline_s=20.0) as client:
        client.submit(window, 2.0, 1, FS)
        [decision] = collect_decisions(client, 1)
    expected_prediction = in_process_predictor.predict(window[None], np.ones((1, 8), bool), FS)
    np.testing.assert_allclose(decision.probabilities, expected_prediction.probabilities[0], rtol=1e-5, atol=1e-6)
