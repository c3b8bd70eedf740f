"""Hot swap on a real worker subprocess: load_model switches between two requests, use_model switches back, and a
corrupt or incompatible checkpoint leaves the running model answering; a peer without the control token, or a
checkpoint outside the worker's model folders, is refused with a clear error reply."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from monitor.errors import UserError
from monitor.inference import protocol
from monitor.inference.client import InferenceClient, ModelControl
from monitor.inference.supervisor import WorkerHandle
from tests.inference.helpers import collect_decisions, emg_like_windows, make_checkpoint

FS = 2000.0


@pytest.fixture(scope="module")
def other_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("other"), "ring8", seed=1)


WINDOWS = emg_like_windows(8, 8, 400, seed=11)


def stream_windows(client: InferenceClient, stop: threading.Event, sent: list[int]) -> None:
    """One window every 10 ms (a 2 kHz stream with a 20-sample hop would be 100 windows/s) until stopped."""
    windows = WINDOWS
    sequence = 0
    while not stop.is_set():
        client.submit(windows[sequence % 8], 100.0 + sequence * 0.01, sequence, FS)
        sent.append(sequence)
        sequence += 1
        time.sleep(0.01)


def answers_while(client: InferenceClient, action) -> tuple[list, object]:
    """Decisions for every window streamed while ``action()`` runs (plus a settling tail)."""
    stop, sent = threading.Event(), []
    streamer = threading.Thread(target=stream_windows, args=(client, stop, sent), daemon=True)
    streamer.start()
    time.sleep(0.3)
    try:
        outcome = action()
    finally:
        time.sleep(0.3)
        stop.set()
        streamer.join()
    decisions = collect_decisions(client, len(sent), timeout_s=20.0)
    # none lost, none answered twice
    assert len(sent) > 40 and sorted(d.sequence for d in decisions) == sent, client.stats
    return sorted(decisions, key=lambda d: d.sequence), outcome


def test_load_model_switches_between_two_requests_and_use_model_switches_back(
        worker: WorkerHandle, ring8_checkpoint: Path, other_checkpoint: Path) -> None:
    original = worker.model_id
    # in flight: room for the windows of a stalled second on a loaded machine (beyond it, latest wins: the oldest
    # unsent window would be dropped, a client policy this test is not about)
    with InferenceClient(worker.endpoint, bed_id="swap", deadline_s=20.0, max_in_flight=128) as client, \
            ModelControl(worker.endpoint) as control:
        decisions, loaded = answers_while(client, lambda: control.load_model(other_checkpoint))
        assert loaded.model_id == "test-ring8-1" and loaded.previous_model_id == original
        assert set(loaded.loaded) == {original, "test-ring8-1"}
        ids = [d.model_id for d in decisions]
        switch_at = ids.index("test-ring8-1")
        assert 0 < switch_at < len(ids) and set(ids[:switch_at]) == {original} and set(ids[switch_at:]) == {
            "test-ring8-1"}
        # the two models really differ: the same window gets different probabilities before and after
        before = decisions[switch_at - 1]
        after = next(d for d in decisions[switch_at:] if d.sequence % 8 == before.sequence % 8)
        assert not np.allclose(before.probabilities, after.probabilities, atol=1e-4)

        decisions, back = answers_while(client, lambda: control.use_model(original))
        assert back.model_id == original and back.previous_model_id == "test-ring8-1"
        ids = [d.model_id for d in decisions]
        assert ids[-1] == original and ids.count("test-ring8-1") == ids.index(original)
        stats = client.stats
        assert stats["errors"] == 0 and stats["dropped_deadline"] == 0 and stats["dropped_superseded"] == 0


def test_corrupt_or_incompatible_checkpoints_leave_the_running_model(
        worker: WorkerHandle, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 20)
    other_window = make_checkpoint(tmp_path, "ring8", window_samples=300, seed=5)
    other_layout = make_checkpoint(tmp_path, "grid8x8", seed=6)
    with InferenceClient(worker.endpoint, bed_id="bad", deadline_s=20.0, max_in_flight=128) as client, \
            ModelControl(worker.endpoint) as control:
        running = [None]

        def try_all() -> list[str]:
            messages = []
            for path in (corrupt, other_window, other_layout, tmp_path / "missing.pt"):
                with pytest.raises(UserError) as refused:
                    control.load_model(path)
                messages.append(str(refused.value))
            with pytest.raises(UserError) as unknown:
                control.use_model("never-loaded")
            messages.append(str(unknown.value))
            running[0] = control.use_model(worker_model_id(control))
            return messages

        decisions, messages = answers_while(client, try_all)
    assert all(protocol.BAD_MODEL in message for message in messages[:4])
    assert "window_samples" in messages[1] and "channels" in messages[2] and "missing.pt" in messages[3]
    assert protocol.UNKNOWN_MODEL in messages[4]
    assert {d.model_id for d in decisions} == {running[0].model_id}


def worker_model_id(control: ModelControl) -> str:
    """The worker's active model, asked over the wire (a ping's pong names it)."""
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(control.endpoint)
    try:
        sock.send_multipart([b"", *protocol.encode_ping(protocol.Ping("p"))])
        assert sock.poll(10_000)
        pong = protocol.decode(protocol.split_envelope(sock.recv_multipart())[1])
        return pong.model_id
    finally:
        sock.close(0)


def ask_raw(endpoint: str, frames: list[bytes]) -> protocol.Message:
    """One request from a bare DEALER socket (a peer that is not our ModelControl) and the worker's reply."""
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart([b"", *frames])
        assert sock.poll(10_000)
        return protocol.decode(protocol.split_envelope(sock.recv_multipart())[1])
    finally:
        sock.close(0)


def test_a_peer_without_the_control_token_can_neither_load_nor_switch(
        worker: WorkerHandle, other_checkpoint: Path) -> None:
    running = worker_model_id(ModelControl(worker.endpoint))
    attempts = [
        protocol.encode_load_model(protocol.LoadModel("no-token", str(other_checkpoint))),
        protocol.encode_load_model(protocol.LoadModel("wrong-token", str(other_checkpoint), "0" * 43)),
        protocol.encode_use_model(protocol.UseModel("switch", running)),
    ]
    replies = [ask_raw(worker.endpoint, frames) for frames in attempts]
    assert [(type(reply), reply.request_id, reply.code) for reply in replies] == [
        (protocol.ErrorReply, "no-token", protocol.UNAUTHORIZED),
        (protocol.ErrorReply, "wrong-token", protocol.UNAUTHORIZED),
        (protocol.ErrorReply, "switch", protocol.UNAUTHORIZED)]
    assert "load_model refused: no control token" in replies[0].message
    assert "load_model refused: a wrong control token" in replies[1].message
    assert "use_model refused: no control token" in replies[2].message
    assert worker_model_id(ModelControl(worker.endpoint)) == running  # nothing was loaded or switched


def test_a_checkpoint_outside_the_allowed_folders_is_refused_before_it_is_read(
        worker: WorkerHandle, other_checkpoint: Path, tmp_path: Path) -> None:
    outside = Path(tempfile.mkdtemp(prefix="neurofusion-outside-"))  # /tmp itself: not a folder the worker allows
    try:
        copied = Path(shutil.copy(other_checkpoint, outside / "elsewhere.pt"))
        shutil.copy(other_checkpoint.with_suffix(".card.json"), outside / "elsewhere.card.json")
        link = tmp_path / "link.pt"  # a link inside an allowed folder to a file outside it
        link.symlink_to(copied)
        climbing = tmp_path / ".." / ".." / ".." / outside.name / "elsewhere.pt"  # '..' out of an allowed folder
        messages = []
        with ModelControl(worker.endpoint) as control:
            running = worker_model_id(control)
            for path in (copied, link, climbing, Path("/etc/passwd"), outside / "missing.pt"):
                with pytest.raises(UserError) as refused:
                    control.load_model(path)
                messages.append(str(refused.value))
            assert worker_model_id(control) == running
    finally:
        shutil.rmtree(outside)
    assert all(protocol.MODEL_NOT_ALLOWED in message and "outside the folders this worker loads models from"
               in message and "--models-dir" in message for message in messages), messages
    # a missing file outside is refused the same way as an existing one: the reply says nothing about what exists
    assert messages[4].replace("missing.pt", "elsewhere.pt") == messages[0]
