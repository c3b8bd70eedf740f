"""`calibrate` for the needle model: a new site (other rate, other gain) adapts the bundled model from a manifest of a
few labelled whole recordings, through the real CLI, and the adapted model does better on that site's other
patients. The people are the final-test patients named in the bundled card (never trained on)."""

from __future__ import annotations

import csv
import json
import lzma
from pathlib import Path

import numpy as np
import pytest

from dsp.resample import resample, to_needle_rate
from models.needle_corpus import LABELS, scan
from models.needle_model import BUNDLED_NEEDLE_MODEL, load_needle_model
from monitor.cli import build_parser
from monitor.errors import UserError
from monitor.recordings.asc import parse
from tests.conftest import NEEDLE_CLINICAL, needs_needle_clinical

SITE_FS = 8000.0
SITE_GAIN_DB = -12.0  # a quieter amplifier chain than the training hospital's
pytestmark = needs_needle_clinical


def site_signal(path: Path) -> np.ndarray:
    """A recording as the new site gives it: recorded at 8 kHz, 12 dB quieter."""
    with lzma.open(path) as handle:
        raw = parse(handle.read(), path.name)[:, 0]
    return resample(raw, 32768.0, SITE_FS) * np.float32(10 ** (SITE_GAIN_DB / 20))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(folder with a manifest of 3 calibration recordings, held-out signals at 8 kHz with their labels)."""
    folder = tmp_path_factory.mktemp("site")
    test_people = set(load_needle_model().card["split"]["final_test_patients"])
    infos = [i for i in scan(NEEDLE_CLINICAL) if i.patient in test_people]
    people = {label: sorted({i.patient for i in infos if i.label == label}) for label in LABELS}
    rows, held_out = [], []
    for label in LABELS:
        calibration_person, *others = people[label]
        info = next(i for i in infos if i.patient == calibration_person)
        name = f"{calibration_person}.asc"
        (folder / name).write_text(" ".join(f"{v:.2f}" for v in site_signal(info.path)) + "\n")
        rows.append({"file": name, "patient": calibration_person, "label": label, "muscle": info.muscle,
                     "fs": SITE_FS})
        held_out += [(site_signal(i.path), label) for p in others[:2] for i in infos if i.patient == p][:2]
    with (folder / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder, held_out


def probability_of_label(model, held_out) -> tuple[float, float]:
    signals = [to_needle_rate(signal, SITE_FS) for signal, _ in held_out]
    probabilities = model.probabilities(signals, [SITE_FS] * len(signals))
    truth = np.array([LABELS.index(label) for _, label in held_out])
    return (float(np.mean(probabilities[np.arange(len(truth)), truth])),
            float(np.mean(probabilities.argmax(1) == truth)))


def calibrate(*arguments: str) -> int:
    args = build_parser().parse_args(["calibrate", *arguments])
    return args.handler(args)


def test_calibration_from_a_manifest_helps_the_sites_other_patients(site, tmp_path):
    folder, held_out = site
    assert calibrate("--checkpoint", str(BUNDLED_NEEDLE_MODEL), "--manifest", str(folder / "manifest.csv"),
                     "--out", str(tmp_path)) == 0
    report = json.loads((tmp_path / "calibration.json").read_text())
    on_calibration = report["on_the_calibration_recordings"]
    assert on_calibration["after"]["mean_probability_of_label"] > on_calibration["before"]["mean_probability_of_label"]
    tuned = load_needle_model(tmp_path / "needle.pt")
    assert tuned.model_id.endswith("-calibrated") and tuned.card["calibration"]["recordings"] == 3
    before_probability, before_accuracy = probability_of_label(load_needle_model(), held_out)
    after_probability, after_accuracy = probability_of_label(tuned, held_out)
    print(f"held out: p(label) {before_probability:.3f} -> {after_probability:.3f}, "
          f"accuracy {before_accuracy:.3f} -> {after_accuracy:.3f}")
    assert after_probability > before_probability
    assert after_accuracy >= before_accuracy


def test_a_needle_model_without_a_manifest_is_refused_in_one_line(tmp_path):
    with pytest.raises(UserError, match="--manifest") as caught:
        calibrate("--checkpoint", str(BUNDLED_NEEDLE_MODEL), "--out", str(tmp_path))
    assert "\n" not in str(caught.value)
