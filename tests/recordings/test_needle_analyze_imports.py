"""What a fresh `analyze` of one 5 s needle recording imports (issue 17: a 5 s recording analysed in under a second;
a fresh command spent most of its 2.3 s importing libraries). Checked in a fresh process, as a user runs it, because
this test process has usually imported them all already. One run (~2 s) serves every test here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import NEEDLE_CLINICAL, REPO, needs_needle_clinical

RECORDING = NEEDLE_CLINICAL / "02_Biceps Brachii" / "Healthy" / "EMG _225 _13_ RB_Hea.asc.xz"
WATCHED = ("torch", "torch_geometric", "onnxruntime", "dask", "distributed", "matplotlib", "sklearn", "pandas")
CHILD = (
    "import json, sys\n"
    "from monitor.cli import main\n"
    "code = main(sys.argv[1:])\n"
    f"watched = {WATCHED!r}\n"
    "print(json.dumps({'code': code, 'imported': sorted({m.split('.')[0] for m in sys.modules} & set(watched))}))\n"
)

pytestmark = needs_needle_clinical


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The watched top-level packages a fresh `analyze FILE --mode needle --no-figures` imported."""
    out = tmp_path_factory.mktemp("needle-analyze") / "report"
    argv = ["analyze", str(RECORDING), "--mode", "needle", "--quiet", "--no-figures", "--out", str(out)]
    done = subprocess.run([sys.executable, "-c", CHILD, *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    assert json.loads(Path(out / "summary.json").read_text())["condition"]["label"]  # the model did run
    return set(result["imported"])


def test_the_needle_model_and_report_import_neither_torch_nor_onnxruntime_nor_dask(imported):
    # the needle statistics model runs in numpy (models/tensor_archive.py); Dask is for cohorts only
    assert not imported & {"torch", "torch_geometric", "onnxruntime", "dask", "distributed"}


def test_matplotlib_is_imported_only_when_figures_are_written(imported):
    assert "matplotlib" not in imported


@pytest.mark.xfail(strict=True, reason="dsp/mup.py clusters MUPs with scikit-learn's PCA and GaussianMixture (which "
                   "imports pandas): ~0.5 s quiet, ~1 s loaded, of a fresh analyze; numpy clustering still to come")
def test_a_needle_analyze_imports_neither_scikit_learn_nor_pandas(imported):
    assert not imported & {"sklearn", "pandas"}
