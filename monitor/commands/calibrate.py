"""`neurofusion calibrate`: adapt a checkpoint to a new patient or session from a few labelled seconds."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NamedTuple

from monitor.cli_options import add_mains_argument
from monitor.recordings.options import add_reader_arguments, reader_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="fine-tune a checkpoint on a few labelled seconds of a new recording",
        description="Fine-tune --checkpoint on marked spans of new labelled recordings (default: the first "
        "--seconds-per-class seconds of every class), measure accuracy before and after on the rest of the "
        "recordings (windows never straddle a span edge), and save model.pt + card (base checkpoint, spans, "
        "figures) and model.onnx into --out. Labels come from a --manifest row (a whole recording of one class), the "
        "file's per-sample labels (--label-column, --preset), or its annotations naming the model's classes (WFDB "
        "--annotation, EDF+ annotations, XDF markers). The recordings are filtered as the model's card says "
        "(surface band-pass or needle preprocessing).",
    )
    parser.add_argument("recordings", nargs="*", metavar="RECORDING",
                        help="labelled recording files, or folders of them (e.g. ../shared/data/myo-gestures/12345-3)")
    parser.add_argument("--manifest", metavar="CSV",
                        help="whole labelled recordings: a CSV with columns file,label (and optionally patient, ...); "
                        "file relative to the CSV, label a class of the model; every window of a file gets its label")
    parser.add_argument("--checkpoint", help="base checkpoint (default: the bundled model)")
    parser.add_argument("--seconds-per-class", type=float, default=10.0,
                        help="labelled seconds of each class used for calibration (default 10)")
    parser.add_argument("--span", action="append", metavar="[FILE:]START-END",
                        help="calibrate on this span instead (seconds; repeatable; FILE is a recording's file name, "
                        "needed when there are several recordings)")
    parser.add_argument("--hop-ms", type=float, default=50.0, help="hop between windows (default 50 ms)")
    add_mains_argument(parser)
    parser.add_argument("--epochs", type=int, default=25, help="fine-tuning epochs (default 25)")
    parser.add_argument("--learning-rate", type=float, default=3e-4,
                        help="fine-tuning learning rate (default 3e-4; 1e-3 and 3e-3 gave less on Myo session 3)")
    parser.add_argument("--cue-timed-labels", action="store_true",
                        help="fine-tune on the labels as recorded; by default a gesture's first samples before the "
                        "muscle answers its cue are relabelled rest (measured within the spans; +0.5 points on Myo)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/calibrate", help="output folder (default runs/calibrate)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    add_reader_arguments(parser)  # --units/--scale/--channels/--annotation ... as analyze and replay
    parser.set_defaults(handler=run)


def parse_span(text: str, names: list[str]):
    from models.calibration import Span
    from monitor.errors import UserError

    source, _, times = text.rpartition(":")
    if not source:
        if len(names) != 1:
            raise UserError(f"--span {text}: name the recording (FILE:START-END), there are {len(names)}")
        source = names[0]
    if source not in names:
        raise UserError(f"--span {text}: no recording named {source!r}; recordings: {', '.join(names)}")
    try:
        start, end = (float(part) for part in times.split("-"))
    except ValueError:
        raise UserError(f"--span {text}: expected START-END in seconds, e.g. 0-10") from None
    if not 0 <= start < end:
        raise UserError(f"--span {text}: need 0 <= START < END")
    return Span(source, start, end)


class Labelled(NamedTuple):
    name: str  # file name (the whole path when two recordings share one)
    path: Path
    recording: Any
    labels: Any  # per-sample class index, -1 where unlabelled
    source: str  # where the labels came from: manifest, per-sample, annotations
    patient: str | None  # the manifest's patient column


def read_manifest(path: Path) -> list[tuple[Path, str, str | None]]:
    """(recording file, class label, patient or None) per row of a manifest CSV (columns file, label and optionally
    patient; others are for people)."""
    import csv
    import io

    from monitor.errors import UserError

    try:
        # utf-8-sig: a spreadsheet's "CSV UTF-8" starts with a byte-order mark, which would hide the 'file' column
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise UserError(f"--manifest {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"--manifest {path}: not a text CSV file (columns file,label)") from None
    header = text.splitlines()[0] if text.strip() else ""
    # a spreadsheet where the decimal separator is a comma writes ';' between cells
    delimiter = max(",;\t", key=header.count) if header else ","
    try:
        rows = [{str(key).strip().lower(): (value or "").strip() for key, value in row.items()
                 if key is not None}  # a row's stray extra cells come as a list under the key None
                for row in csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)]  # fmt: skip
    except csv.Error as error:
        raise UserError(f"--manifest {path}: not a readable CSV file ({error})") from None
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise UserError(f"--manifest {path}: need a header with the columns file,label and one row per recording")
    entries = []
    for number, row in enumerate(rows, start=2):
        if not row["file"] or not row["label"]:
            raise UserError(f"--manifest {path}: line {number} has no file or no label")
        entries.append((path.parent / row["file"], row["label"], row.get("patient") or None))
    return entries


def class_labels(name: str, recording: Any, classes: list[str], manifest_label: str | None) -> tuple[Any, str]:
    """-> (per-sample class index, -1 where unlabelled; where the labels came from) for one recording."""
    import numpy as np

    from models.calibration import labels_from_markers
    from monitor.errors import UserError

    if manifest_label is not None:
        if manifest_label not in classes:
            raise UserError(f"{name}: manifest label {manifest_label!r} is not a class of the model "
                            f"({', '.join(classes)})")
        return np.full(recording.n_samples, classes.index(manifest_label), dtype=np.int64), "manifest"
    if recording.labels is not None:
        values = np.asarray(recording.labels, dtype=np.int64)
        label_names = getattr(recording, "label_names", None)
        if label_names:
            unknown = sorted({label_names[v] for v in np.unique(values)} - set(classes))
            if unknown:
                raise UserError(f"{name}: labels {unknown} are not classes of the model ({', '.join(classes)})")
            return np.array([classes.index(label_names[v]) for v in range(len(label_names))])[values], "per-sample"
        if values.min() < 0 or values.max() >= len(classes):
            raise UserError(f"{name}: label values must index the model's classes 0..{len(classes) - 1}")
        return values, "per-sample"
    if recording.markers:
        labels, ignored = labels_from_markers(recording.markers, recording.timestamps, classes)
        if (labels >= 0).any():
            return labels, "annotations"
        raise UserError(f"{name}: none of its annotations names a class of the model ({', '.join(classes)}); "
                        f"found {', '.join(map(repr, sorted(set(ignored))[:5]))}")
    raise UserError(f"{name}: no labels; give --label-column or --preset (CSV/TSV), annotations naming the classes "
                    "(WFDB --annotation, EDF+), or a --manifest row")


def _labelled_recordings(args: argparse.Namespace, classes: list[str]) -> list[Labelled]:
    """Every recording named on the command line or in the manifest, with its class labels."""
    from monitor.errors import UserError
    from monitor.recordings import open_recording

    entries: list[tuple[Path, str | None, str | None]] = []
    for item in map(Path, args.recordings):
        if item.is_dir():
            entries += [(p, None, None) for p in sorted(item.iterdir()) if p.is_file() and not p.name.startswith(".")]
        elif item.is_file():
            entries.append((item, None, None))
        else:
            raise UserError(f"recording not found: {item}")
    if args.manifest:
        entries += read_manifest(Path(args.manifest))
    if not entries:
        raise UserError("no recordings: name labelled recording files or folders, or give --manifest")
    names = [path.name for path, _, _ in entries]
    if len(set(names)) < len(names):  # the same file name in two folders: spans and reports name the whole path
        names = [str(path) for path, _, _ in entries]
    labelled = []
    for name, (path, manifest_label, patient) in zip(names, entries, strict=True):
        recording = open_recording(path, **reader_options(args))
        labels, source = class_labels(name, recording, classes, manifest_label)
        labelled.append(Labelled(name, path, recording, labels, source, patient))
    return labelled


def _needle_checkpoint(path: Path) -> Any | None:
    """The needle condition model at ``path`` (models.needle_model, its own checkpoint format), or None."""
    try:
        from models.needle_model import load_needle_model
    except ModuleNotFoundError:
        return None
    try:
        return load_needle_model(path)
    except (ValueError, OSError):
        return None


def _calibrate_needle(args: argparse.Namespace, base_path: Path, model: Any, card: Any) -> int:
    """Needle models are calibrated with the needle preprocessing their card names, by
    ``models.needle_calibration.calibrate_needle_checkpoint(args, base_path, model, card) -> exit status`` (the
    needle model's own module). ``model`` and ``card`` are a NeuroFusionNet and its ModelCard whose card says
    "needle", or a ``models.needle_model.NeedleModel`` and its card dict. Until that module exists a needle model
    is refused: the surface band-pass would remove the high-frequency MUP content the model was trained on."""
    from monitor.errors import UserError

    model_id = card["model_id"] if isinstance(card, dict) else card.model_id

    try:
        from models.needle_calibration import calibrate_needle_checkpoint
    except ModuleNotFoundError as error:
        if error.name != "models.needle_calibration":
            raise
        raise UserError(f"model {model_id!r} is a needle model and needle calibration "
                        "(models.needle_calibration) is not available yet; the surface filters would mis-filter "
                        "it, so nothing was done") from None
    return int(calibrate_needle_checkpoint(args, base_path, model, card))


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    import numpy as np
    from rich.console import Console

    from models.calibration import (
        fine_tune,
        first_seconds_per_class,
        merge,
        model_mode,
        shared_budget,
        split_by_spans,
    )
    from models.checkpoint import BUNDLED_CHECKPOINT, load_checkpoint, save_checkpoint
    from models.evaluation import classification_metrics, held_out_breakdown, plot_confusion, write_json
    from models.training import TrainingConfig, predict_logits, to_tensors
    from monitor.errors import UserError

    console = Console(stderr=True)
    base_path = Path(args.checkpoint) if args.checkpoint else BUNDLED_CHECKPOINT
    try:
        model, card = load_checkpoint(base_path)
    except (FileNotFoundError, ValueError) as error:
        needle = _needle_checkpoint(base_path) if base_path.is_file() else None
        if needle is None:
            raise UserError(str(error)) from None
        return _calibrate_needle(args, base_path, needle, needle.card)
    mode = model_mode(card)
    if mode == "needle":  # dispatch point: needle models have their own preprocessing and calibration
        return _calibrate_needle(args, base_path, model, card)
    labelled = _labelled_recordings(args, list(card.classes))
    files = [item.path for item in labelled]
    names = [item.name for item in labelled]
    spans = [parse_span(text, names) for text in args.span] if args.span else None
    calibration_parts, held_out_parts, used_spans = [], [], []
    budgets = shared_budget([item.labels[item.labels >= 0] for item in labelled], args.seconds_per_class)
    for (name, _, recording, values, _, _), budget in zip(labelled, budgets, strict=True):
        if recording.layout is not None:
            try:
                card.check_layout(recording.layout)
            except ValueError as error:
                raise UserError(f"{name}: {error}") from None
        if recording.n_channels != card.n_channels:
            raise UserError(f"{name}: {recording.n_channels} channels, the model expects {card.n_channels}")
        if abs(recording.fs - card.fs) > 1e-6 * card.fs:
            raise UserError(f"{name}: recorded at {recording.fs:g} Hz, the model at {card.fs:g} Hz")
        chosen = [s for s in spans if s.source == name] if spans else first_seconds_per_class(
            values, recording.fs, budget, name)
        used_spans += chosen
        window_ms = 1000.0 * card.window_samples / card.fs
        calibration, held_out = split_by_spans(recording.data, values, recording.fs, name, chosen, card.layout,
                                               list(card.classes), window_ms, args.hop_ms, mode=mode,
                                               mains_hz=args.mains or None, muscle_timing=not args.cue_timed_labels)
        calibration_parts.append(calibration)
        held_out_parts.append(held_out)
    try:
        calibration, held_out = merge(calibration_parts), merge(held_out_parts)
    except ValueError as error:
        raise UserError(str(error)) from None
    names_used = card.feature_names
    held_out_tensors = to_tensors(held_out, names_used)  # features computed once for both models

    patients = {item.name: item.patient for item in labelled if item.patient}

    def held_out_figures(network: Any) -> dict[str, Any]:
        predicted = predict_logits(network, held_out_tensors).argmax(dim=1).numpy()
        figures = {**classification_metrics(held_out.labels, predicted, list(card.classes)),
                   **held_out_breakdown(held_out, predicted)}
        if patients:  # the manifest's people: one accuracy each over all their recordings' held-out windows
            of_window = np.array([patients.get(str(group), "") for group in held_out.groups])
            figures["accuracy_by_patient"] = {
                patient: round(float(np.mean(predicted[of_window == patient] == held_out.labels[of_window == patient])),
                               4)  # as accuracy_by_group
                for patient in sorted(set(patients.values())) if (of_window == patient).any()}
        return figures

    before_metrics = held_out_figures(model)
    before = before_metrics["accuracy"]
    console.print(f"{len(calibration)} calibration windows ({sum(s.end_s - s.start_s for s in used_spans):.1f} s), "
                  f"{len(held_out)} held-out windows; accuracy before: {100 * before:.2f}%")
    config = TrainingConfig(epochs=args.epochs, learning_rate=args.learning_rate, batch_size=32, seed=args.seed)
    with console.status("fine-tuning"):
        prior = card.training.get("class_counts")
        tuned = fine_tune(model, calibration, names_used, config, class_prior=prior)
    after = held_out_figures(tuned)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from models.predictor import file_sha256

    new_card = type(card)(**{**asdict(card), "onnx_sha256": None})
    new_card.model_id = f"{card.model_id}-calibrated"
    new_card.training = {
        "calibration": {
            "base_model_id": card.model_id, "base_checkpoint": str(base_path), "base_sha256": file_sha256(base_path),
            "recordings": [str(path) for path in files], "spans": [asdict(span) for span in used_spans],
            "label_sources": {item.name: item.source for item in labelled}, "mode": mode,
            "patients": patients or None,
            "reader_options": {k: v for k, v in reader_options(args).items() if v is not None},
            "seconds_per_class": None if spans else args.seconds_per_class, "windows": len(calibration),
            "held_out_windows": len(held_out), "epochs": args.epochs, "learning_rate": args.learning_rate,
            "logit_adjustment_prior": card.training.get("class_counts"),
            "label_timing": "cue" if args.cue_timed_labels else "muscle",
        },
        "base_training": card.training,
    }
    new_card.metrics = {
        "held_out_before": {k: v for k, v in before_metrics.items() if k != "confusion_matrix"},
        "held_out_after": {k: v for k, v in after.items() if k != "confusion_matrix"},
        "base_metrics": card.metrics,
    }
    checkpoint = save_checkpoint(out / "model.pt", tuned, new_card)
    if not args.no_onnx:
        from models.export import export_checkpoint

        export_checkpoint(checkpoint)
    write_json(out / "calibration.json", {"before": before_metrics, "after": after, "card": asdict(new_card)})
    plot_confusion(before_metrics["confusion_matrix"], card.classes, out / "confusion_before.png",
                   f"before calibration ({100 * before:.1f}%)")
    plot_confusion(after["confusion_matrix"], card.classes, out / "confusion_after.png",
                   f"after calibration ({100 * after['accuracy']:.1f}%)")
    console.print(f"held-out accuracy {100 * before:.2f}% -> {100 * after['accuracy']:.2f}% "
                  f"(macro F1 {100 * before_metrics['macro_f1']:.2f}% -> {100 * after['macro_f1']:.2f}%); "
                  f"wrote {checkpoint}")
    if "settled_accuracy" in after:
        console.print(f"windows >= {after['settled_margin_s']:g} s from a label change ({after['settled_windows']}): "
                      f"{100 * before_metrics['settled_accuracy']:.2f}% -> {100 * after['settled_accuracy']:.2f}%")
    if "muscle_timed_accuracy" in after:
        before_muscle, after_muscle = before_metrics["muscle_timed_accuracy"], after["muscle_timed_accuracy"]
        console.print(f"against the labels moved to when the muscle moved: {100 * before_muscle:.2f}% -> "
                      f"{100 * after_muscle:.2f}% (they agree with the recorded labels on "
                      f"{100 * after['muscle_cue_agreement']:.2f}% of the windows: the most a classifier that follows "
                      "the muscle can score on the first figure)")
    return 0
