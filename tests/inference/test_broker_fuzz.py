"""The broker, like the worker, answers every malformed message it can and keeps serving."""

from __future__ import annotations

import time

import numpy as np
import psutil
import zmq

from monitor.inference import protocol
from tests.inference.helpers import emg_like_windows
from tests.inference.test_broker import pool, start_broker, stop
from tests.inference.test_worker_service import malformed_messages


def test_fuzzed_broker_answers_each_message_and_stays_up() -> None:
    broker, bound = start_broker()
    rng = np.random.default_rng(11)
    window = emg_like_windows(1, 8, 400, seed=2)[0]
    good = [bytes(f) for f in protocol.encode_request(protocol.InferenceRequest(
        "good", "bed-1", 1, 2.0, 2000.0, window, np.ones(8, bool)))]
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(bound["frontend"])
    codes: dict[str, int] = {}
    expected = answered = 0
    try:
        for _ in range(10):  # 1000 messages
            for frames, answers in malformed_messages(rng, good):
                sock.send_multipart(frames)
                expected += answers
            give_up = time.monotonic() + 20
            while answered < expected and time.monotonic() < give_up:
                if sock.poll(200):
                    reply = protocol.decode(sock.recv_multipart()[1:])
                    codes[reply.code] = codes.get(reply.code, 0) + 1
                    answered += 1
        assert broker.poll() is None and psutil.pid_exists(broker.pid)
        assert answered == expected > 500 and not sock.poll(300)
        # the broker reads headers only: a well-formed header with a bad payload waits for a worker to judge it
        assert {protocol.BAD_FRAMES, protocol.BAD_HEADER, protocol.BAD_VERSION, protocol.BAD_KIND,
                protocol.NO_WORKER} <= set(codes)
        assert pool(bound["frontend"])["workers"] == 0
    finally:
        sock.close(0)
        stop(broker)
