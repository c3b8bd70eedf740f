"""Every test runs with LSL kept on this machine and Qt offscreen, set before anything imports pylsl or Qt."""

from __future__ import annotations

import atexit
import gc
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("LSLAPICFG", str(REPO / "monitor" / "lsl_api.cfg"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# the control token the workers and clients the tests start make on first use: in a folder of this run, not in the
# user's own ~/.config/neurofusion
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="neurofusion-tests-config-")
atexit.register(shutil.rmtree, os.environ["XDG_CONFIG_HOME"], True)
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two test processes on two cores: one BLAS/OpenMP/torch thread each (and in the processes they
    # start), as two-thread pools spinning against each other on a busy 2-core machine cost ~3x the CPU
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

SHARED_DATA = REPO.parent / "shared" / "data"
# the clinical needle set (258 recordings, 154 people; its README): one definition for every test that reads it,
# skipped with the reason in a clone without the shared data
NEEDLE_CLINICAL = SHARED_DATA / "needle-emg-clinical"
needs_needle_clinical = pytest.mark.skipif(not NEEDLE_CLINICAL.is_dir(), reason=f"{NEEDLE_CLINICAL} is not present")

# the tests that read the real recordings in ../shared/data (beside the repository in this workplace); where that
# folder is absent they are skipped with a reason rather than failing on a missing file
READS_SHARED_DATA = (
    "tests/gui/test_snapshot.py::test_a_replayed_hdemg_recording_is_drawn_on_its_13x5_grid",
    "tests/models/test_model_commands.py::"
    "test_muscle_timed_training_labels_move_training_onsets_and_leave_the_test_labels_alone",
    "tests/recordings/test_analyze.py::test_a_model_for_another_layout_is_refused_before_any_work",
    "tests/recordings/test_analyze.py::test_analyze_command_reports_a_missing_model_and_an_unwritable_folder",
    "tests/recordings/test_analyze.py::test_analyze_command_writes_the_report_files",
    "tests/recordings/test_analyze.py::test_decisions_equal_the_model_run_directly_on_the_same_windows",
    "tests/recordings/test_analyze.py::test_dsp_and_fatigue_only_on_a_real_recording",
    "tests/recordings/test_analyze.py::test_preprocessing_summary_names_filters_mains_masks_and_lost_windows",
    "tests/recordings/test_analyze.py::test_quality_issues_name_the_channels_and_their_duration",
    "tests/recordings/test_live_equals_offline.py::test_replayed_recording_gets_the_decisions_analyze_computes",
    "tests/recordings/test_readers.py::test_a_folder_of_myo_files_is_a_dataset_of_24_recordings",
    "tests/recordings/test_readers.py::test_csv_without_a_rate_names_the_option_that_supplies_it",
    "tests/recordings/test_readers.py::test_mat_file_that_is_not_an_otb_export_is_refused",
    "tests/recordings/test_readers.py::test_myo_file_loads_with_rate_and_label_column_as_the_readme_describes",
    "tests/recordings/test_readers.py::test_myo_preset_adds_the_ring_layout_and_names_the_units",
    "tests/recordings/test_readers.py::test_otb_channels_sit_where_the_grid_puts_them",
    "tests/recordings/test_readers.py::test_otb_file_reads_the_64_grid_channels_in_microvolts",
    "tests/recordings/test_replay.py::test_replayed_myo_file_keeps_its_labels_as_markers",
    "tests/recordings/test_fatigue_per_contraction.py::test_on_real_myo_gestures_each_gesture_is_one_contraction",
    "tests/dsp/test_decomposition.py::test_analyze_decompose_refuses_a_low_density_recording",
)
# whole files whose fixtures read the shared recordings
FILES_READING_SHARED_DATA = ("tests/dsp/test_decomposition.py",)


def pytest_collection_modifyitems(config, items) -> None:  # noqa: ANN001 (pytest hook)
    if SHARED_DATA.is_dir():
        return
    skip = pytest.mark.skip(reason=f"{SHARED_DATA} is not present")
    for item in items:
        if item.nodeid.split("[")[0] in READS_SHARED_DATA or item.nodeid.split("::")[0] in FILES_READING_SHARED_DATA:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def bundled_worker():  # noqa: ANN201 (a pytest fixture)
    """One worker serving the bundled model, started as the monitor starts it, for the tests that only send it
    windows (each start costs a Python + torch + model load: 3-12 s on the 2-core machine). No standby spare:
    these tests never restart it. Tests that kill, swap or slow a worker start their own."""
    from monitor.inference.supervisor import spawn_worker

    handle = spawn_worker(standby=False)
    yield handle
    handle.stop()


@pytest.fixture(autouse=True)
def nothing_left_frozen():
    """A session run in the test process calls gc.freeze() once it has started (as the real monitor does); after
    the test those objects are garbage like any other, not kept for the rest of the test process."""
    yield
    if gc.get_freeze_count():
        gc.unfreeze()


@pytest.fixture
def private_runtime_dir(monkeypatch):  # noqa: ANN001, ANN201 (a pytest fixture)
    """XDG_RUNTIME_DIR of this test's own (the cores it starts, and only those, are found there), short enough for
    the cores' Unix control sockets: pytest's tmp_path under xdist is not (monitor.core.control.runtime_root)."""
    folder = tempfile.mkdtemp(prefix="nf-run-", dir="/tmp")
    monkeypatch.setenv("XDG_RUNTIME_DIR", folder)
    yield Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
