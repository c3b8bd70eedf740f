"""Choosing the bundled surface model's configuration honestly (issue 22, "Honest figures").

The protocol, in the order it runs (``tools/select_surface_model.py`` drives it):

1. A simulated corpus of fresh subjects (seeds never used to choose anything before) is split **by subject**
   into training, validation and test, per condition, by a seeded permutation (``subject_split``). The split,
   its seed and the subject lists are written down before any model is trained.
2. Every candidate configuration (the ablation switches, a few hyperparameters: ``CANDIDATES``) is trained on
   the training subjects (early stopping on the validation subjects' loss) and scored on the validation subjects
   only (``choose``: the best validation macro F1; ties go to the earlier candidate).
3. The chosen configuration's model is scored on the test subjects **once** (``test_once``): a marker file in the
   run folder refuses a second look unless asked for, and the count of looks goes into the card.

The figure is the pooled window accuracy over the test subjects with a percentile bootstrap interval that
resamples whole subjects (``models.evaluation.group_interval``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

SPLIT_NAMES = ("train", "validation", "test")


def subject_condition(group: str) -> str:
    """'neuropathy-40002' -> 'neuropathy' (the simulated subjects' group names)."""
    return group.rsplit("-", 1)[0]


def subject_split(groups: list[str], seed: int, validation_per_condition: int,
                  test_per_condition: int) -> dict[str, list[str]]:
    """-> {"train", "validation", "test": sorted subject lists}, stratified by condition.

    Each condition's subjects are sorted, permuted with ``numpy.random.default_rng([seed, condition index])``;
    the first ``test_per_condition`` are test, the next ``validation_per_condition`` validation, the rest
    training. The permutation depends on the seed and the subject names only, never on any signal."""
    conditions = sorted({subject_condition(group) for group in groups})
    split: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    for index, condition in enumerate(conditions):
        members = sorted(group for group in set(groups) if subject_condition(group) == condition)
        if len(members) < validation_per_condition + test_per_condition + 1:
            raise ValueError(f"{condition}: {len(members)} subjects cannot give {test_per_condition} test, "
                             f"{validation_per_condition} validation and at least one training subject")
        order = np.random.default_rng([seed, index]).permutation(len(members))
        shuffled = [members[i] for i in order]
        split["test"] += shuffled[:test_per_condition]
        split["validation"] += shuffled[test_per_condition:test_per_condition + validation_per_condition]
        split["train"] += shuffled[test_per_condition + validation_per_condition:]
    return {name: sorted(members) for name, members in split.items()}


@dataclass(frozen=True)
class Candidate:
    """One configuration to compare: network switches, whether handcrafted features are fused, training
    overrides (``TrainingConfig`` fields)."""

    name: str
    network: dict[str, Any] = field(default_factory=dict)
    features: bool = False
    training: dict[str, Any] = field(default_factory=dict)
    regularised: bool = True

    def describe(self) -> dict[str, Any]:
        return asdict(self)


#: the ablation switches of NeuroFusionNet (handcrafted features, graph layers, attention) and two hyperparameters
#: of the configuration bundled until now (no handcrafted features). Shrunk to fit a loaded 2-core machine (each
#: candidate is one training run of several minutes there): the "no regularisation" ablation and a grid of
#: hyperparameters were left out (docs/evaluation.md, section 1g).
CANDIDATES: tuple[Candidate, ...] = (
    Candidate("with features (the paper's full fusion)", features=True),
    Candidate("no features (bundled until now)"),
    Candidate("no features, no gnn", network={"use_gnn": False}),
    Candidate("no features, no attention", network={"use_attention": False}),
    Candidate("no features, learning rate 0.001", training={"learning_rate": 1e-3}),
    Candidate("no features, effort augmentation x/4", training={"effort_scale": 4.0}),
)


def candidate_config(candidate: Candidate, base: Any) -> Any:
    """The TrainingConfig a candidate trains with (``base`` with the candidate's overrides)."""
    config = replace(base, **candidate.training)
    return config.without_regularisation() if not candidate.regularised else config


def feature_names_of(candidate: Candidate) -> list[str]:
    from dsp.features import MODEL_FEATURES

    return list(MODEL_FEATURES) if candidate.features else []


def train_candidate(candidate: Candidate, train: Any, validation: Any, base: Any) -> tuple[Any, dict[str, Any]]:
    """Train one candidate on ``train`` (early stopping on ``validation``) and score it on ``validation``."""
    from models.evaluation import classification_metrics
    from models.neurofusionnet import parameter_count
    from models.training import predict_classes, train_neurofusionnet

    names = feature_names_of(candidate)
    config = candidate_config(candidate, base)
    model, history, _, _ = train_neurofusionnet(train, validation, names, config, **candidate.network)
    metrics = classification_metrics(validation.labels, predict_classes(model, validation, names),
                                      list(validation.classes))
    return model, {
        "candidate": candidate.describe(), "config": asdict(config),
        "validation_accuracy": metrics["accuracy"], "validation_macro_f1": metrics["macro_f1"],
        "validation_confusion_matrix": metrics["confusion_matrix"],
        "epochs_run": len(history.train_loss), "best_epoch": history.best_epoch + 1,
        "stopped_on_time": history.seconds > config.max_seconds, "seconds": round(history.seconds, 1),
        "parameters": parameter_count(model), "history": history.to_dict(),
    }


CRITERION = "validation_macro_f1"


def choose(results: list[dict[str, Any]]) -> int:
    """Index of the result with the best validation macro F1 (ties: the earlier). Only validation figures exist
    at this point: the test subjects have not been scored by any candidate."""
    if not results:
        raise ValueError("no candidate results to choose from")
    return max(range(len(results)), key=lambda index: (results[index][CRITERION], -index))


TEST_MARKER = "test_looks.json"


def earlier_looks(run_dir: Path, again: bool = False) -> list[dict[str, Any]]:
    """The looks at the test subjects recorded in ``run_dir``; raises RuntimeError when there was one and
    ``again`` is not set (called before a test window is even read)."""
    marker = Path(run_dir) / TEST_MARKER
    looks = json.loads(marker.read_text())["looks"] if marker.is_file() else []
    if looks and not again:
        raise RuntimeError(f"the test subjects were already scored ({marker}); pass --look-again to look again, "
                           "and report that you did")
    return looks


def test_once(model: Any, candidate: Candidate, test: Any, run_dir: Path, again: bool = False) -> dict[str, Any]:
    """Score ``model`` on the test subjects and record the look in ``run_dir/test_looks.json``.

    A second look is refused unless ``again``; it is then counted (``looks`` > 1) and the card says so."""
    from models.evaluation import classification_metrics, group_interval, held_out_breakdown
    from models.training import predict_classes

    looks = earlier_looks(run_dir, again)
    predicted = predict_classes(model, test, feature_names_of(candidate))
    metrics = {**classification_metrics(test.labels, predicted, list(test.classes)),
               **held_out_breakdown(test, predicted), **group_interval(test, predicted)}
    looks.append({"candidate": candidate.name, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "accuracy": metrics["accuracy"]})
    (Path(run_dir) / TEST_MARKER).write_text(json.dumps({"looks": looks}, indent=2) + "\n")
    return {**metrics, "test_looks": len(looks)}


def run_candidates(candidates: tuple[Candidate, ...], train: Any, validation: Any, base: Any, run_dir: Path,
                   log: Callable[[str], None] = print) -> list[tuple[Any, dict[str, Any]]]:
    """Train every candidate; each result is written to ``run_dir/candidates.json`` as it ends (a run cut short
    keeps what it measured)."""
    outcomes = []
    for candidate in candidates:
        started = time.perf_counter()
        model, result = train_candidate(candidate, train, validation, base)
        outcomes.append((model, result))
        log(f"{candidate.name}: validation macro F1 {100 * result['validation_macro_f1']:.2f} %, accuracy "
            f"{100 * result['validation_accuracy']:.2f} % ({result['epochs_run']} epochs, best "
            f"{result['best_epoch']}; {time.perf_counter() - started:.0f} s)")
        (Path(run_dir) / "candidates.json").write_text(
            json.dumps([outcome for _, outcome in outcomes], indent=2) + "\n")
    return outcomes
