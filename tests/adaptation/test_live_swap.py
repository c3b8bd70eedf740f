"""The swap on a live 2 kHz LSL stream (player subprocess -> MonitorPipeline -> real worker subprocess): every
window gets exactly one decision, the model id changes at one point and back; a cancelled, failed or
gainless adaptation and a corrupt checkpoint leave the running model answering."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from monitor.inference.supervisor import WorkerHandle, spawn_worker
from tests.conftest import REPO
from tests.inference.helpers import collect_decisions

DURATION_S = 8.0
FS = 2048.0


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerHandle]:
    # the bundled model, as the monitor runs it, allowed to load the patients' folders the tests make
    handle = spawn_worker(None, standby=False, extra_args=("--models-dir", str(tmp_path_factory.getbasetemp())))
    yield handle
    handle.stop()


@pytest.fixture
def control(worker):
    from monitor.inference.client import ModelControl

    with ModelControl(worker.endpoint) as made:
        yield made


def run_ids(ids: list[str]) -> list[str]:
    """Consecutive runs of the same model id: ["a", "a", "b", "a"] -> ["a", "b", "a"]."""
    return [model for index, model in enumerate(ids) if index == 0 or ids[index - 1] != model]


def test_swap_and_switch_back_on_a_live_stream_lose_no_window(worker, control, adapted) -> None:
    from dsp.windows import samples_for
    from monitor.acquisition import resolve_stream
    from monitor.inference.client import InferenceClient
    from monitor.pipeline import MonitorPipeline

    checkpoint = adapted.session.models[-1].checkpoint
    original = worker.model_id
    source_id = f"swap-{uuid.uuid4().hex[:8]}"
    player = subprocess.Popen([sys.executable, str(REPO / "tests" / "players.py"), "--source-id", source_id,
                               "--duration", str(DURATION_S), "--fs", str(FS)], stdout=subprocess.PIPE, text=True)
    client = InferenceClient(worker.endpoint, bed_id="swap", deadline_s=5.0, max_in_flight=16)
    try:
        give_up = time.monotonic() + 20
        while client.state != "online" and time.monotonic() < give_up:  # windows sent before the connection is
            time.sleep(0.05)  # up would wait, and the first ones give way to newer (the client's latest-wins rule)
        pipeline = MonitorPipeline(resolve_stream(source_id=source_id, timeout_s=20.0), client=client, publish=False)
        pipeline.start()
        swaps: list = []

        def swap_twice() -> None:
            time.sleep(2.5)
            swaps.append(control.load_model(checkpoint))
            time.sleep(2.0)
            swaps.append(control.use_model(original))

        swapper = threading.Thread(target=swap_twice)
        swapper.start()
        out, _ = player.communicate(timeout=DURATION_S + 30)
        swapper.join(30)
        sent = int(out.split()[-1])
        # windows end at multiples of the hop (dsp.windows), the first once a whole window has arrived
        hop, window = samples_for(50, FS), samples_for(200, FS)
        expected = sent // hop - -(-window // hop) + 1
        give_up = time.monotonic() + 10
        while time.monotonic() < give_up and pipeline.state.windows_sent < expected:
            time.sleep(0.1)
        give_up = time.monotonic() + 15
        while time.monotonic() < give_up and len(pipeline.state.decisions) < pipeline.state.windows_sent:
            time.sleep(0.1)
        pipeline.stop()
        stats = client.stats
    finally:
        client.close()
        if player.poll() is None:
            player.kill()
        player.wait(10)

    assert sent == int(DURATION_S * FS) and pipeline.state.windows_sent == expected
    decisions = sorted(pipeline.state.decisions, key=lambda d: d.sequence)
    assert np.all(np.diff([d.sequence for d in decisions]) == hop)  # consecutive windows, none missing or doubled
    assert len(decisions) == expected
    assert (stats["errors"], stats["dropped_deadline"], stats["dropped_superseded"]) == (0, 0, 0)
    adapted_id = adapted.session.job.result["model_id"]
    assert [swap.model_id for swap in swaps] == [adapted_id, original]
    assert run_ids([d.model_id for d in decisions]) == [original, adapted_id, original]
    print({"windows": len(decisions), "with_adapted": sum(d.model_id == adapted_id for d in decisions)})


def stream_answers(worker, windows: np.ndarray, action) -> tuple[list, object]:
    """Feed windows to the worker every 20 ms while ``action()`` runs; -> (decisions, action's result)."""
    from monitor.inference.client import InferenceClient

    stop, sent = threading.Event(), []

    def feed(client) -> None:
        while not stop.is_set():
            client.submit(windows[len(sent) % len(windows)], float(len(sent)), len(sent), FS)
            sent.append(len(sent))
            time.sleep(0.02)

    with InferenceClient(worker.endpoint, bed_id="guard", deadline_s=10.0) as client:
        feeder = threading.Thread(target=feed, args=(client,))
        feeder.start()
        try:
            outcome = action()
        finally:
            stop.set()
            feeder.join()
        decisions = collect_decisions(client, len(sent), timeout_s=15.0)
        assert client.stats["errors"] == 0
    assert sorted(d.sequence for d in decisions) == sent
    return decisions, outcome


def test_cancelled_failed_and_gainless_adaptations_and_a_corrupt_checkpoint_change_nothing(
        worker, control, adapted, tmp_path) -> None:
    from monitor.adaptation.job import AdaptationSettings
    from monitor.adaptation.session import AdaptationSession, ModelEntry

    original = worker.model_id
    control.use_model(original)
    session = AdaptationSession(adapted.session.store.filtered, FS, adapted.session.card, None, "patient-8",
                                tmp_path / "patients", control=control, worker=worker)
    session.store = adapted.session.store  # the marks already captured from the simulated session
    statuses: dict[str, str] = {}

    def every_failure() -> None:
        session.settings = AdaptationSettings(epochs=500)  # far longer than the test waits: the cancel ends it
        session.start()
        give_up = time.monotonic() + 120
        while session.job.epoch < 1 and time.monotonic() < give_up:
            session.step()
            time.sleep(0.05)
        session.cancel()
        statuses["cancelled"] = session.wait(30)
        assert session.job.state == "cancelled", (session.job.state, session.job.error, statuses)

        corrupt = tmp_path / "corrupt.pt"
        corrupt.write_bytes(b"\x80\x02 not a checkpoint" * 50)
        session.active = ModelEntry(original, corrupt)  # the base itself is unreadable: the job fails
        session.start()
        statuses["failed"] = session.wait(120)
        assert session.job.state == "failed", (session.job.state, statuses)
        session.active = session.models[0]

        session.settings = AdaptationSettings(epochs=1, min_gain=1.0)  # no gain can clear this bar
        session.start()
        statuses["no gain"] = session.wait(120)
        assert session.job.state == "done" and not session.job.result["improved"], (session.job.state, statuses)

        session.load_saved(corrupt)  # an adapted file that has gone bad: the worker refuses it
        statuses["corrupt"] = session.wait(30)

    decisions, _ = stream_answers(worker, adapted.windows[:64], every_failure)
    assert {d.model_id for d in decisions} == {original} and len(decisions) > 20, statuses
    assert "unchanged" in statuses["cancelled"] and "unchanged" in statuses["failed"]
    assert "no gain" in statuses["no gain"] and "unchanged" in statuses["no gain"]
    assert "kept its model" in statuses["corrupt"] and "bad_model" in statuses["corrupt"]
    assert session.active.model_id == original and [m.model_id for m in session.models] == [original]
    assert not list((tmp_path / "patients").rglob("*.pt"))  # nothing was saved for the patient
    assert worker.model_path is None  # a restart still serves the running model
