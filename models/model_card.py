"""docs/model-card.md, written from the bundled model's card (models/weights/default.card.json).

Every figure and setting in the page comes from the card: the prose cannot say one thing while the model file
says another (tests/models/test_model_card_doc.py checks that the page equals what this script writes).

    .venv/bin/python -m models.model_card            # rewrite docs/model-card.md
    .venv/bin/python -m models.model_card --check    # exit 1 if the page differs from the card
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from models.checkpoint import BUNDLED_CHECKPOINT, card_path, describe_layout

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "model-card.md"
# what the GUI's condition view and the analysis report say beside a verdict of the bundled surface model (issue 18)
SIMULATED_ONLY_NOTE = ("surface condition model trained on simulated patients only; not validated on real surface "
                       "recordings (docs/model-card.md)")


def simulated_only_note(model_id: str | None, card_file: str | Path | None = None) -> str | None:
    """``SIMULATED_ONLY_NOTE`` when ``model_id`` is the bundled surface model (``card_file``: its card, default
    models/weights/default.card.json) or a model adapted from it (``<bundled id>+<patient>-<time>``) and that card
    says it learnt from the simulator only; None for any other model (the needle model learnt real patients)."""
    if not model_id:
        return None
    try:
        card = json.loads(card_path(card_file if card_file is not None else BUNDLED_CHECKPOINT).read_text())
    except (OSError, ValueError):
        return None
    bundled = card.get("model_id")
    data = (card.get("training") or {}).get("data") or {}
    if bundled and (model_id == bundled or model_id.startswith(f"{bundled}+")) and data.get("dataset") == "simulator":
        return SIMULATED_ONLY_NOTE
    return None


def _percent(value: float) -> str:
    return f"{100 * value:.2f} %"


def _count(value: int) -> str:
    return f"{value:,}"


def _seconds(value: float) -> str:
    return f"{value / 60:.1f} minutes" if value >= 60 else f"{value:.0f} s"


def _features(card: dict[str, Any]) -> str:
    names = card["feature_names"]
    if names:
        return (f"- **Handcrafted features** ({len(names)} per channel: {', '.join(names)}) are computed inside the "
                "predictor from the window (`dsp.features.feature_matrix`), signed-log transformed and standardised "
                "with training-set statistics stored in the checkpoint, so the wire carries only the window.")
    return ("- **No handcrafted features:** `feature_names` is empty and the network has `n_features` = "
            f"{card['network']['n_features']}, so it reads only the window: each channel's waveform divided by its "
            "own standard deviation, plus that channel's log amplitude. The wire carries only the window.")


def _architecture(card: dict[str, Any]) -> list[str]:
    network = card["network"]
    first, second = network["conv_channels"]
    hidden = network["hidden"]
    n_inputs = 1 + network["n_features"] if network["use_features"] else 1
    fusion = ("CNN embedding, log amplitude" + (f" and {network['n_features']} handcrafted features"
                                                 if network["use_features"] and network["n_features"] else ""))
    steps = [
        "1. Each channel divided by its own standard deviation (the waveform shape is learned independently of "
        "electrode gain); its log amplitude goes to the fusion step, so amplitude information is not lost.",
        f"2. Per-channel temporal CNN with shared weights: Conv1d 1->{first} (k9, stride 4) -> {first}->{second} "
        f"(k5, stride 2) -> {second}->{hidden} (k3), GELU.",
        "3. " + ("Temporal attention pooling (softmax over time of a 1x1 convolution's score)."
                 if network["use_attention"] else "Temporal mean pooling (attention switched off)."),
        f"4. Fusion: [{fusion}] ({hidden} + {n_inputs} inputs) -> Linear -> GELU -> LayerNorm"
        + (f", plus a learned per-electrode identity embedding ({network['identity_width']} wide readout)."
           if network["channel_identity"] else "."),
    ]
    if network["use_gnn"]:
        steps.append(
            f"5. {network['gnn_layers']} GATv2 layers (torch-geometric `GATv2Conv`, {network['heads']} heads, "
            f"attention dropout {network['attention_dropout']:g}, residual + LayerNorm) over the "
            f"{'electrode-neighbour' if card['graph'] == 'layout' else 'fully connected'} graph of "
            "`models/graphs.py` (self loops included, so the export has no data-dependent indexing).")
    else:
        steps.append("5. No graph layers (`use_gnn` off).")
    readout = ("attention readout over electrodes (masked softmax)" if network["use_attention"]
               else "mean over usable electrodes")
    steps.append(
        f"6. {readout[0].upper() + readout[1:]}"
        + (" concatenated with a position-aware readout (each electrode projected, flattened)"
           if network["channel_identity"] else "")
        + f", then an MLP head for the {network['n_classes']} classes"
        + (_fatigue_head(card) if network["fatigue_head"] else "") + ".")
    return steps


def _fatigue_head(card: dict[str, Any]) -> str:
    weight = card["training"]["config"].get("fatigue_weight", 0.0)
    if weight:
        return f" and an auxiliary fatigue-regression head (trained with loss weight {weight:g})"
    return (" and an auxiliary fatigue-regression head, trained with loss weight 0: its output is untrained and not "
            "exported")


def _regularisation(card: dict[str, Any]) -> str:
    network, config = card["network"], card["training"]["config"]
    parts = [f"dropout {network['dropout']:g} (attention dropout {network['attention_dropout']:g})"]
    if network["use_gnn"]:
        parts.append(f"DropEdge {network['drop_edge']:g}")
    parts.append(f"random channel masking (p = {config['channel_drop']:g} per channel, one always kept)")
    parts.append(f"mixup Beta({config['mixup_alpha']:g}, {config['mixup_alpha']:g})" if config["mixup_alpha"] > 0
                 else "no mixup")
    parts.append(f"label smoothing {config['label_smoothing']:g}" if config["label_smoothing"] > 0
                 else "no label smoothing (0)")
    parts.append(f"per-window gain jitter +-{100 * config['gain_jitter']:g} %")
    for key, what in (("effort_scale", "effort augmentation x"), ("channel_gain", "per-channel gain x"),
                      ("electrode_shift", "electrode shift of")):
        neutral = 0.0 if key == "electrode_shift" else 1.0
        if config.get(key, neutral) != neutral:
            parts.append(f"{what}{config[key]:g}")
    parts.append(f"AdamW (learning rate {config['learning_rate']:g}, weight decay {config['weight_decay']:g}), "
                 "one-cycle schedule, gradient clipping")
    parts.append(f"early stopping on validation loss (patience {config['patience']}), the best epoch's weights "
                 "restored")
    return ", ".join(parts) + "."


def _simulator_model(card: dict[str, Any]) -> str:
    """Which of the simulator's two models made the training subjects (the card's data records the fibre model's
    versions; a card without them predates the fibre model's training option: legacy)."""
    data = card["training"]["data"]
    if data.get("tissue", "legacy") == "fibres":
        return ("the simulator's fibre-level model (`tissue=\"fibres\"`: fibre model "
                f"{data.get('fibre_model_version', '?')}, surface model {data.get('surface_model_version', '?')}; "
                "each patient's severity drawn)")
    return ("the simulator's legacy model (`tissue=\"legacy\"`: conditions differ by a MUAP duration scale and a "
            "tissue low-pass), not its fibre-level surface model (docs/simulator.md), which it has not seen")


def _reproduce(card: dict[str, Any]) -> str:
    data, config = card["training"]["data"], card["training"]["config"]
    options = [f"--subjects {data['subjects_per_condition']}", "--sim-workers 2",
               f"--duration {data['duration_s']:g}", f"--sim-layout {data['layout']}", f"--sim-fs {data['fs']:g}",
               f"--subject-gain-db {data['subject_gain_db']:g}"]
    if data.get("tissue", "legacy") != "legacy":
        options.append(f"--sim-tissue {data['tissue']}")
    if not card["feature_names"]:
        options.append("--no-features")
    options += [f"--epochs {config['epochs']}", f"--patience {config['patience']}",
                f"--max-minutes {config['max_seconds'] / 60:g}", f"--batch-size {config['batch_size']}",
                f"--learning-rate {config['learning_rate']:g}", f"--mixup {config['mixup_alpha']:g}",
                f"--label-smoothing {config['label_smoothing']:g}", f"--seed {config['seed']}",
                f"--threads {config['threads']}", f"--graph {card['graph']}", f"--model-id {card['model_id']}",
                "--out runs/default"]
    lines, line = [], "    .venv/bin/neurofusion train"
    for option in options:
        if len(line) + len(option) + 3 > 116:
            lines.append(line + " \\")
            line = "        "
        line += ("" if line.endswith("        ") and not line.strip() else " ") + option
    lines.append(line)
    return "\n".join(lines)


def _how_to_reproduce(card: dict[str, Any]) -> list[str]:
    training_command = [_reproduce(card), "    cp runs/default/model.pt models/weights/default.pt",
                        "    cp runs/default/model.card.json models/weights/default.card.json",
                        "    cp runs/default/model.onnx models/weights/default.onnx",
                        "    .venv/bin/python -m models.model_card"]
    selection = card["metrics"].get("selection")
    if selection is None:
        return training_command
    lines = []
    if selection["keeps_bundled_weights"]:
        lines += ["The weights (trained before the selection, by the command below; the selection kept them):", "",
                  *training_command, ""]
    what = ("the choice of configuration, the test figure and this card" if selection["keeps_bundled_weights"]
            else "the choice of configuration, the weights (the chosen candidate's model), the ONNX export, the test "
            "figure and this card")
    return lines + [f"One command makes {what} (`benchmarks/select_surface_model.py`, protocol in "
                    "`models/evaluation_selection.py`; candidates trained in parallel processes, one thread each):", "",
                    "    " + selection["command"]]


def _real_recordings(card: dict[str, Any]) -> list[str]:
    real = card["training"].get("real_recordings")
    return ["", f"**Real recordings:** {real[0].upper() + real[1:]}."] if real else []


def _data(card: dict[str, Any]) -> str:
    training, data = card["training"], card["training"]["data"]
    per_condition = data["subjects_per_condition"]
    n_classes = len(card["classes"])
    last_seed = data["first_seed"] + n_classes * per_condition - 1
    windows = training["windows"]
    window_ms = 1000 * card["window_samples"] / card["fs"]
    trained_on = training.get("trained_on", "simulated subjects")
    text = (
        f"**Trained on {trained_on}.** {n_classes * per_condition} simulated subjects ({per_condition} per "
        f"condition; seeds {data['first_seed']}-{last_seed}, each its own motor-unit pool drawn from its condition's "
        f"ranges), {data['duration_s']:g} s each, each subject's signal scaled by its own gain within "
        f"+-{data['subject_gain_db']:g} dB (electrode contact, skin and amplifier differ that much between "
        f"patients), {data['layout']} at {data['fs']:g} Hz, windows of {card['window_samples']} samples "
        f"({window_ms:.0f} ms), only windows fully inside a contraction. Split **by subject**: "
        f"{len(training['train_groups'])} training subjects ({_count(windows['train'])} windows), "
        f"{len(training['validation_groups'])} validation subjects ({_count(windows['validation'])} windows)")
    split = training.get("split")
    if split is None:
        return text + (f", {len(training['test_groups'])} test subjects ({_count(windows['test'])} windows); the "
                       "subject lists are in the card. Generated subjects are cached in the per-user cache "
                       "(`~/.cache/neurofusion`, hash-checked).")
    fresh = split["first_seed"] != data["first_seed"]
    last_fresh = split["first_seed"] + n_classes * split["subjects_per_condition"] - 1
    text += (". The test subjects: " + (
        f"{len(training['test_groups'])} further subjects ({_count(windows['test'])} windows) of a fresh corpus "
        f"(seeds {split['first_seed']}-{last_fresh}, the same simulator, durations and gain range), drawn before "
        f"anything was chosen: {split['test_per_condition']} per condition by a permutation with seed "
        f"{split['seed']} (`models.evaluation_selection.subject_split`), never used to train, stop or choose. The "
        f"{_count(len(training.get('earlier_held_out_groups', [])) or 120)} subjects that the figure before this "
        "protocol came from, and that chose the configuration then, are in no figure now." if fresh else
        f"{len(training['test_groups'])} subjects ({_count(windows['test'])} windows), "
        f"{split['test_per_condition']} per condition drawn by a permutation with seed {split['seed']} "
        "(`models.evaluation_selection.subject_split`) before anything was trained or chosen."))
    return text + (" The subject lists are in the card. Generated subjects are cached in the per-user cache "
                   "(`~/.cache/neurofusion`, hash-checked).")


def _measured(card: dict[str, Any]) -> list[str]:
    test = card["metrics"]["test"]
    per_class = ", ".join(f"{name} {_percent(value)}" for name, value in test["per_class_sensitivity"].items())
    n_subjects = len(card["training"]["test_groups"])
    rows = [
        "| metric | value |",
        "| --- | ---: |",
        f"| accuracy | {_percent(test['accuracy'])} ({_count(test['n_windows'])} windows, {n_subjects} subjects "
        f"at +-{card['training']['data']['subject_gain_db']:g} dB) |",
    ]
    if "accuracy_interval" in test:
        low, high = test["accuracy_interval"]
        rows.append(f"| {100 * test['interval_level']:.0f} % interval of the accuracy (bootstrap over the "
                    f"{test['interval_groups']} test subjects) | {_percent(low)} - {_percent(high)} |")
    if "subjects_below_90_percent" in test:
        rows.append(f"| test subjects below 90 % of their windows / read right in most windows | "
                    f"{test['subjects_below_90_percent']} / {test['subjects_read_right_in_most_windows']} of "
                    f"{n_subjects} |")
    return rows + [
        f"| macro F1 | {_percent(test['macro_f1'])} |",
        f"| sensitivity / specificity / precision (macro) | {_percent(test['sensitivity'])} / "
        f"{_percent(test['specificity'])} / {_percent(test['precision'])} |",
        f"| per class sensitivity | {per_class} |",
    ]


def _selection(card: dict[str, Any]) -> list[str]:
    selection = card["metrics"].get("selection")
    if selection:
        looks = card["metrics"]["test"].get("test_looks", 1)
        split = card["training"]["split"]
        lines = [
            f"**How the configuration was chosen.** {len(selection['candidates'])} candidate configurations were "
            f"trained on the same {split['subjects_per_condition'] * len(card['classes'])}-subject corpus's "
            f"training subjects and compared on its validation subjects only (criterion: "
            f"{selection['criterion'].replace('_', ' ').replace('f1', 'F1')}; the test subjects were not loaded "
            "until the choice was written down):",
            "",
            "| candidate | validation macro F1 | validation accuracy | epochs (best) |",
            "| --- | ---: | ---: | ---: |",
        ]
        for candidate in selection["candidates"]:
            chosen = " **(chosen)**" if candidate["name"] == selection["chosen"] else ""
            lines.append(f"| {candidate['name']}{chosen} | {_percent(candidate['validation_macro_f1'])} | "
                         f"{_percent(candidate['validation_accuracy'])} | {candidate['epochs_run']} "
                         f"({candidate['best_epoch']}) |")
        weights = ("The chosen configuration is the one bundled until now, so the bundled weights (trained as "
                   "above, on more subjects than the candidates) were kept and only scored on the test subjects"
                   if selection["keeps_bundled_weights"] else
                   "The chosen candidate's own model (trained on the training subjects, early-stopped on the "
                   "validation subjects' loss) is the bundled model, scored on the test subjects")
        still_improving = sum(c["best_epoch"] == c["epochs_run"] for c in selection["candidates"])
        epochs = max(c["epochs_run"] for c in selection["candidates"])
        lines += ["", f"Each candidate trained for at most {epochs} epochs (a shorter one-cycle schedule than the "
                  f"bundled weights' {card['training']['config']['epochs']}, to fit a shared 2-core machine); "
                  f"{still_improving} of {len(selection['candidates'])} had their best validation loss at their "
                  "last epoch, so this compares equally short trainings, not converged ones."]
        times = "once" if looks == 1 else f"{looks} times (looked at again: the figure is no longer untouched)"
        lines += ["", f"{weights} {times}; the figure above is as it came out. One candidate run each (seed "
                  f"{card['training']['config']['seed']}): differences of a point or two on "
                  f"{len(card['training']['selection_groups']['validation'])} validation subjects are within what "
                  "one subject more or less right moves."]
        return lines
    return [
        "**The figure above predates the fix of the selection procedure and is optimistic.** This configuration "
        "(without handcrafted features) was picked by comparing NeuroFusionNet variants' accuracy on the same "
        f"{len(card['training']['test_groups'])} test subjects that the figure above comes from "
        "(docs/evaluation.md, 1e), so those subjects were used both to choose and to report. `neurofusion "
        "evaluate` now chooses among NeuroFusionNet and its ablations by validation macro F1 only and reports the "
        "chosen configuration's test accuracy once, with a bootstrap interval over test subjects "
        "(`models.evaluation.select_on_validation`); the bundled model has not been re-selected and retrained that "
        "way yet. Until it is, read the figure as an upper estimate for unseen simulated subjects.",
    ]


def render(card: dict[str, Any]) -> str:
    """The whole page for ``card`` (the parsed .card.json)."""
    training, network, config = card["training"], card["network"], card["training"]["config"]
    window_ms = 1000 * card["window_samples"] / card["fs"]
    classes = " / ".join(f"`{name}`" for name in card["classes"])
    layout = describe_layout(card["layout"])
    lines = [
        "# NeuroFusionNet model card",
        "",
        "<!-- Written by `python -m models.model_card` from models/weights/default.card.json: edit the script or",
        "     the card, never this page (tests/models/test_model_card_doc.py fails when they differ). -->",
        "",
        f"The bundled default model is `models/weights/default.pt` (`{card['model_id']}`: weights + JSON card, loaded "
        "with `torch.load(..., weights_only=True)`), with its card also in `default.card.json` and its ONNX export "
        "in `default.onnx` (the card records the ONNX file's sha256; a stale export is never used). The inference "
        "worker and the demo load it when no model is given: `models.predictor.load_predictor()` (backend `auto` = "
        "ONNX Runtime when the export is current, else torch).",
        "",
        "## Intended use",
        "",
        f"- **Task:** neuromuscular condition of the muscle under the electrodes, {classes}, from a "
        f"{window_ms:.0f} ms window ({card['window_samples']} samples at {card['fs']:g} Hz) of band-pass-filtered "
        "surface EMG during a voluntary contraction.",
        f"- **Input it was trained on:** simulated patients only, from the bundled simulator (`simulators/emg.py`), "
        f"{layout} at {card['fs']:g} Hz, filtered with the monitor's own causal `dsp.filters.default_chain`, made "
        f"by {_simulator_model(card)}"
        + ("; its condition verdict has **not been validated on real surface recordings**."
           if card["training"].get("real_recordings") else "."),
        "- **Not for diagnosis.** It has only seen simulated motor-unit pools; a real patient's recording differs. "
        "Adapt it with `neurofusion calibrate` on labelled seconds of real data, and keep a clinician in the loop.",
        "- **Windows at rest carry no condition information** (no motor units fire). The model was trained only on "
        "windows inside contractions and answers anyway at rest; gate its output on activity.",
        "",
        "## Inputs and outputs (the `Predictor` contract)",
        "",
        "`Predictor.predict(windows (B, C, S) float32 µV, channel_mask (B, C) bool, fs) -> Prediction(probabilities "
        "(B, K), channel_attention (B, C))`.",
        "",
        _features(card),
        f"- **Sampling rate:** a window at another rate is resampled to {card['fs']:g} Hz with "
        "`scipy.signal.resample_poly` before the network; feed windows of the trained length.",
        f"- **Layout:** this checkpoint serves one layout, the {layout}; another layout or channel count is refused "
        "with a readable `ValueError` (`Predictor.check_layout`).",
        "- **Masked channels** (mask False, or any non-finite sample) are zeroed, their graph edges redirected to "
        "self loops, and the readout gives them zero weight: their signal cannot change the output.",
        f"- **Outputs:** probabilities in the card's class order ({', '.join(card['classes'])}); channel attention "
        "over electrodes (sums to 1 over usable channels) — which electrodes drove the decision.",
        "",
        f"## Architecture (`models/neurofusionnet.py`, {_count(training['parameters'])} parameters)",
        "",
        *_architecture(card),
        "",
        "Ablation switches of the network configuration as bundled: "
        + ", ".join(f"`{key}` {'on' if network[key] else 'off'}"
                    for key in ("use_gnn", "use_attention", "use_features", "channel_identity"))
        + (" (`use_features` is on but there are no features to use)"
           if network["use_features"] and not network["n_features"] else "") + ".",
        "",
        "## Regularisation and training (`models/training.py`)",
        "",
        _regularisation(card),
        f"At most {config['epochs']} epochs of batches of {config['batch_size']}; it ran {training['epochs_run']} "
        f"epochs (best {training['best_epoch']}) in {_seconds(training['seconds'])} on {config['threads']} "
        f"thread{'s' if config['threads'] != 1 else ''} (seed {config['seed']}).",
        "",
        "## Training data and how to reproduce the bundled model",
        "",
        *_how_to_reproduce(card),
        "",
        _data(card),
        *_real_recordings(card),
        "",
        "## Measured (held-out subjects, never seen in training or validation)",
        "",
        *_measured(card),
        "",
        *_selection(card),
        "",
        "Comparisons with baselines, the ablations and how the figure changes with the range of unknown gain are in "
        "`docs/evaluation.md`; speed in `docs/benchmarks/model.md`.",
        "",
        "## Limitations",
        "",
        "- **Amplitude:** errors come whole subjects at a time, at the ends of the gain range (docs/evaluation.md, "
        "\"What limits the simulated task\"). Calibrate (`neurofusion calibrate`) or adapt live (docs/adaptation.md) "
        "on a few marked seconds of the patient.",
        "- Simulated training data only; calibrate before any real use.",
        f"- One layout per checkpoint ({data_layout(card)} for the default); other layouts need their own training "
        "(`neurofusion train --sim-layout grid8x8`) or calibration data.",
        "- Windows at rest are out of distribution (see above).",
    ]
    return "\n".join(lines) + "\n"


def data_layout(card: dict[str, Any]) -> str:
    return f"{card['training']['data']['layout']} @ {card['fs']:g} Hz"


def bundled_card() -> dict[str, Any]:
    return json.loads(card_path(BUNDLED_CHECKPOINT).read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/model-card.md from the bundled model's card.")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the page differs")
    args = parser.parse_args(argv)
    page = render(bundled_card())
    if args.check:
        same = PAGE.is_file() and PAGE.read_text() == page
        print(f"{PAGE} {'matches' if same else 'differs from'} the card")
        return 0 if same else 1
    PAGE.write_text(page)
    print(PAGE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
