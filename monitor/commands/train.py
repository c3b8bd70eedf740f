"""`neurofusion train`: train NeuroFusionNet on simulated subjects or labelled recordings, split by subject/session.

The data options here are shared with `evaluate` and `calibrate` (they import ``add_data_arguments`` and
``load_split``), so every command sees the same windows and the same split.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from monitor.cli_options import add_mains_argument

SIMULATOR = "simulator"


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data (simulated subjects, or labelled recordings)")
    data.add_argument(
        "--data", default=SIMULATOR, metavar="PATH",
        help="'simulator' (default) or a folder of recordings: each sub-folder is one session/subject (a group), "
        "or a single recording file; any format `replay` reads, with a per-sample label (e.g. ../shared/data/"
        "myo-gestures with --preset myo)",
    )
    data.add_argument("--test-groups", nargs="+", metavar="GROUP",
                      help="groups (sub-folder names / simulated subjects) held out for the test figure "
                      "(default: the last session; for the simulator every 5th subject)")
    data.add_argument("--validation-groups", nargs="+", metavar="GROUP",
                      help="groups used for early stopping (default: the last 15%% of each training group's windows "
                      "per class; for the simulator every 5th subject, offset by one)")
    data.add_argument("--window-ms", type=float, default=200.0, help="window length (default 200 ms)")
    data.add_argument("--hop-ms", type=float, help="hop between windows (default 50 ms; 100 ms for the simulator)")
    recordings = parser.add_argument_group("recordings")
    recordings.add_argument("--preset", help="reader preset for delimited files (e.g. myo)")
    recordings.add_argument("--label-column", help="column holding the per-sample label (CSV/TSV)")
    recordings.add_argument("--fs", type=float, help="sampling rate when the file does not say")
    recordings.add_argument("--layout", help="electrode layout when the file does not say (ring8, grid8x8, ...)")
    add_mains_argument(recordings)
    recordings.add_argument("--label-timing", choices=["cue", "muscle"], default="cue",
                            help="train on the labels as recorded (cue, default) or with every rest<->gesture change "
                            "moved to when the muscle made it (models/label_timing.py); test figures always use the "
                            "recorded labels, and report the muscle-timed ones beside them")
    recordings.add_argument("--label-delay-ms", type=float, default=0.0,
                            help="move every recorded label this much later before cutting windows (default 0)")
    recordings.add_argument("--mode", choices=["surface", "needle"], default="surface",
                            help="filter chain the windows are cut after (the monitor's default_chain)")
    simulator = parser.add_argument_group("simulator")
    simulator.add_argument("--subjects", type=int, default=30, help="simulated subjects per condition (default 30)")
    simulator.add_argument("--duration", type=float, default=20.0, help="seconds per simulated subject (default 20)")
    simulator.add_argument("--sim-layout", default="ring8", help="simulated electrode layout (default ring8)")
    simulator.add_argument("--sim-fs", type=float, default=2048.0, help="simulated sampling rate (default 2048 Hz)")
    simulator.add_argument("--subject-gain-db", type=float, default=12.0,
                           help="each subject's signal scaled by a random gain within +-this many dB (default 12), "
                           "as electrode contact and amplifier gain vary between patients")
    simulator.add_argument("--sim-tissue", choices=("legacy", "fibres"), default="legacy",
                           help="simulator model: 'fibres' (each unit's muscle fibres, disease as tissue changes, each "
                           "patient's severity drawn; docs/simulator.md) or 'legacy' (default)")
    simulator.add_argument("--sim-workers", dest="workers", type=int, help=argparse.SUPPRESS)  # older spelling
    simulator.add_argument("--cache", default=None,
                           help="folder caching generated subjects (default $XDG_CACHE_HOME/neurofusion, i.e. "
                           "~/.cache/neurofusion, private to you; 'none' disables)")

    from monitor.cohort.cluster import add_cluster_arguments

    add_cluster_arguments(parser.add_argument_group(
        "where tasks run (simulated subjects missing from the cache, cross-validation folds: Dask tasks)"),
        "local worker processes (default 1: everything in this process; more starts a local Dask cluster)")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=int, default=40, help="maximum epochs (default 40)")
    training.add_argument("--max-minutes", type=float, default=8.0, help="stop training after this long (default 8)")
    training.add_argument("--patience", type=int, default=6, help="epochs without better validation loss (default 6)")
    training.add_argument("--batch-size", type=int, default=64)
    training.add_argument("--learning-rate", type=float, default=3e-3)
    training.add_argument("--mixup", type=float, default=0.2,
                          help="mixup Beta(a, a) parameter; 0 disables (default 0.2)")
    training.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing (default 0)")
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--threads", type=int, default=1, help="torch and BLAS CPU threads (default 1)")
    training.add_argument("--graph", choices=["layout", "full"], default="layout",
                          help="electrode graph: layout neighbours, or full (attention learns the adjacency)")
    training.add_argument("--no-features", action="store_true", help="do not fuse the handcrafted features")
    training.add_argument("--effort-scale", type=float, default=1.0, metavar="FACTOR",
                          help="augment: scale every training window (gestures only when a class is named rest) by "
                          "a log-uniform factor within [1/FACTOR, FACTOR]; 4 covers +-12 dB (default 1: off)")
    training.add_argument("--channel-gain", type=float, default=1.0, metavar="FACTOR",
                          help="augment: each electrode's gain log-uniform within [1/FACTOR, FACTOR] (default 1: off)")
    training.add_argument("--electrode-shift", type=float, default=0.0, metavar="SPACINGS",
                          help="augment: rotate a ring / move a grid by up to this many spacings (default 0: off)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train NeuroFusionNet (simulator or labelled recordings)",
        description="Train NeuroFusionNet with early stopping and write model.pt (+ model.card.json, model.onnx), "
        "metrics.json, training_curves.png and confusion_test.png into --out. The test figure comes from whole "
        "held-out groups (subjects or sessions), never from windows of a recording that was trained on.",
    )
    add_data_arguments(parser)
    add_training_arguments(parser)
    parser.add_argument("--out", default="runs/train", help="output folder (default runs/train)")
    parser.add_argument("--model-id", help="name stored in the model card (default: derived from the data)")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX export")
    # opt-in, not opt-out: the held-out patients may be judged once; a plain re-run (reproducing the CV figures, a
    # site retraining) must not spend that look by accident (docs/needle-model.md: already touched twice)
    parser.add_argument("--final-test", action=argparse.BooleanOptionalAction, default=False,
                        help="--mode needle: judge the held-out final-test patients (default: no; the run records "
                             "whether it did in metrics.json and the model card)")
    parser.set_defaults(handler=run)


def _label_index(labels: Any, values: list[int]) -> Any:
    import numpy as np

    lookup = {value: index for index, value in enumerate(values)}
    return np.vectorize(lookup.__getitem__, otypes=[np.int64])(labels)


def load_windows(args: argparse.Namespace):
    """Every labelled window the data options describe, as one models.datasets.WindowSet."""
    from monitor.errors import UserError

    if args.data == SIMULATOR:
        from rich.progress import Progress

        from models.datasets import DEFAULT_CACHE, simulated_corpus
        from monitor.cohort.cluster import TaskRunner, options_from

        cache = None if str(args.cache).lower() == "none" else (args.cache or DEFAULT_CACHE)
        with Progress(transient=True) as bar:
            task = bar.add_task("simulating subjects", total=3 * args.subjects)
            corpus = simulated_corpus(
                args.subjects, duration_s=args.duration, layout=args.sim_layout, fs=args.sim_fs, cache_dir=cache,
                progress=lambda done, total: bar.update(task, completed=done), subject_gain_db=args.subject_gain_db,
                run_tasks=TaskRunner(options_from(args)), tissue=getattr(args, "sim_tissue", "legacy"),
            )
        return corpus
    return load_recordings(Path(args.data), args, UserError)


def load_recordings(root: Path, args: argparse.Namespace, UserError: type[Exception]):  # noqa: N803
    import numpy as np

    from models.datasets import concatenate, windows_from_recording
    from monitor.recordings import open_recording

    if not root.exists():
        raise UserError(f"no recordings at {root}")
    if root.is_file():
        files = [(root.stem, root)]
    else:
        files = [(path.parent.name if path.parent != root else path.stem, path)
                 for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name[0] != ".")
                 if path.suffix.lower() in {".csv", ".tsv", ".txt", ".xdf", ".edf", ".bdf", ".hea", ".mat", ".npz"}]
    if not files:
        raise UserError(f"{root}: no recordings found")
    options = {"preset": args.preset, "label_column": args.label_column, "fs": args.fs, "layout": args.layout}
    recordings = [(group, open_recording(path, **options)) for group, path in files]
    unlabelled = [path.name for (_, path), (_, rec) in zip(files, recordings, strict=True) if rec.labels is None]
    if unlabelled:
        raise UserError(f"{', '.join(unlabelled[:3])}: no per-sample labels (give --label-column or --preset)")
    values = sorted({int(v) for _, rec in recordings for v in np.unique(rec.labels)})
    names = next((rec.label_names for _, rec in recordings if getattr(rec, "label_names", None)), None)
    classes = [names[v] if names and 0 <= v < len(names) else str(v) for v in values]
    layouts = {str(rec.layout) for _, rec in recordings}
    if len(layouts) != 1 or recordings[0][1].layout is None:
        raise UserError("every recording needs the same electrode layout; give --layout (e.g. ring8)")
    hop_ms = args.hop_ms or 50.0
    parts = [
        windows_from_recording(rec.data, _label_index(rec.labels, values), rec.fs, group, rec.layout, classes,
                               args.window_ms, hop_ms, args.mode, label_delay_ms=args.label_delay_ms,
                               mains_hz=args.mains or None)
        for group, rec in recordings
    ]
    dataset = concatenate(parts)
    dataset.description = {"dataset": str(root), "files": [str(path) for _, path in files], "reader_options":
                           {k: v for k, v in options.items() if v is not None}, "window_ms": args.window_ms,
                           "hop_ms": hop_ms, "label_timing": args.label_timing, "label_delay_ms": args.label_delay_ms}
    return dataset


def load_split(args: argparse.Namespace):
    """-> (train, validation, test) WindowSets split by group as the options say."""
    from dataclasses import replace

    from models.datasets import split_by_group
    from monitor.errors import UserError

    dataset = load_windows(args)
    groups = sorted(set(dataset.groups.tolist()))
    if args.data == SIMULATOR:
        def index_of(group: str) -> int:
            return (int(group.rsplit("-", 1)[1]) - 1000) // 3

        test = args.test_groups or [g for g in groups if index_of(g) % 5 == 0]
        validation = args.validation_groups or [g for g in groups if index_of(g) % 5 == 1]
    else:
        if len(groups) < 2 and not args.test_groups:
            raise UserError(f"only one group ({groups[0]}): need sessions or subjects in sub-folders to hold one out")
        test = args.test_groups or groups[-1:]
        validation = args.validation_groups
    unknown = sorted(set(test + (validation or [])) - set(groups))
    if unknown:
        raise UserError(f"unknown group(s) {', '.join(unknown)}; groups are {', '.join(groups)}")
    try:
        train, validation_set, test_set = split_by_group(dataset, test, validation)
    except ValueError as error:
        raise UserError(str(error)) from None
    empty = [name for name, part in (("training", train), ("validation", validation_set), ("test", test_set))
             if len(part) == 0]  # fmt: skip
    if empty:  # else training fails later on an empty array (an IndexError after minutes of simulation)
        more = "more --subjects or a longer --duration" if args.data == SIMULATOR else "more groups"
        raise UserError(f"no {' or '.join(empty)} windows after the split by group ({len(groups)} groups): give {more}")
    if args.data != SIMULATOR and args.label_timing == "muscle":
        if train.muscle_labels is None:
            raise UserError("--label-timing muscle needs a 'rest' class to time the changes between rest and gestures")
        train, validation_set = (replace(part, labels=part.muscle_labels) for part in (train, validation_set))
    return train, validation_set, test_set


def check_training_arguments(args: argparse.Namespace) -> None:
    """Refuses, in one line and before any subject is simulated or recording read, training options no run could
    use (--epochs -1 failed in the scheduler after minutes of simulation)."""
    from monitor.errors import UserError

    for option, value in (("--epochs", args.epochs), ("--patience", args.patience), ("--batch-size", args.batch_size),
                          ("--threads", args.threads), ("--subjects", getattr(args, "subjects", 1))):  # fmt: skip
        if value < 1:
            raise UserError(f"{option} must be at least 1, not {value}")
    for option, value in (("--max-minutes", args.max_minutes), ("--learning-rate", args.learning_rate)):
        if not 0 < value < float("inf"):
            raise UserError(f"{option} must be a positive number, not {value:g}")


def training_config(args: argparse.Namespace):
    from models.training import TrainingConfig

    return TrainingConfig(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate, patience=args.patience,
        max_seconds=60.0 * args.max_minutes, seed=args.seed, threads=args.threads, mixup_alpha=args.mixup,
        label_smoothing=args.label_smoothing, effort_scale=args.effort_scale, channel_gain=args.channel_gain,
        electrode_shift=args.electrode_shift,
    )


def feature_names(args: argparse.Namespace) -> list[str]:
    from dsp.features import MODEL_FEATURES

    return [] if args.no_features else list(MODEL_FEATURES)


def run_needle(args: argparse.Namespace) -> int:
    """`train --mode needle` on a labelled needle study: patient-wise CV, bundle, and the final test only with
    ``--final-test`` (models/needle_run)."""
    import torch
    from rich.console import Console

    from models.needle_corpus import scan
    from models.needle_run import run as run_protocol
    from monitor.errors import UserError

    if args.data == SIMULATOR:
        raise UserError("--mode needle trains on labelled needle recordings: give --data FOLDER or a manifest .csv")
    torch.set_num_threads(args.threads)
    console = Console(stderr=True)
    infos = scan(args.data)
    if len({info.patient for info in infos}) < 10:
        raise UserError(f"{args.data}: {len({i.patient for i in infos})} patients; a patient-wise 5-fold "
                        "cross-validation with a final test needs at least 10")
    out = Path(args.out if args.out != "runs/train" else "runs/train-needle")
    from monitor.cohort.cluster import TaskRunner, options_from, wants_cluster

    cluster = options_from(args)  # --workers/--scheduler: every (contender, fold) a Dask task
    from threadpoolctl import threadpool_limits

    # BLAS as many threads as torch: scikit-learn's small fits (the logistic regressions' C grids, SVM, LDA) ran
    # 6-8x slower in CPU with OpenBLAS's default 2 threads on this shared 2-core machine (spinning threads), with
    # the same probabilities (benchmarks.bench_needle_train_threads)
    with threadpool_limits(limits=args.threads):
        report = run_protocol(infos, out, seed=args.seed, default_fs=args.fs, log=console.print,
                              run_tasks=TaskRunner(cluster) if wants_cluster(cluster) else None,
                              final_test=args.final_test)
    chosen = report["bundled_configuration"]["name"]
    if chosen and not args.final_test:
        figures = report["cross_validation"][chosen]["per_patient"]
        console.print(f"bundled {chosen}: cross-validated patient balanced accuracy "
                      f"{figures['balanced_accuracy']:.3f} {figures['interval_95']['balanced_accuracy']}; final test "
                      f"not read (--final-test reads it); {report['minutes']['total']:.1f} min in all")
    elif chosen:
        figures = report["final_test"][chosen]["per_patient"]
        console.print(f"bundled {chosen}: final-test patient balanced accuracy {figures['balanced_accuracy']:.3f} "
                      f"{[round(v, 3) for v in figures['interval_95']['balanced_accuracy']]}; "
                      f"{report['minutes']['total']:.1f} min in all")
    return 0


def is_needle_study(data: str) -> bool:
    """A folder of the clinical needle set's files or with a manifest.csv, or a manifest (file, patient, label)."""
    from models.needle_corpus import parse_shared_name

    path = Path(data)
    if path.is_file() and path.suffix.lower() == ".csv":
        return "patient" in path.open().readline()
    if not path.is_dir():
        return False
    return (path / "manifest.csv").is_file() or any(parse_shared_name(p) for p in path.rglob("*.asc*"))


def run(args: argparse.Namespace) -> int:
    check_training_arguments(args)  # before torch is imported: a bad option is said at once
    from rich.console import Console

    if args.mode == "needle" and is_needle_study(args.data):
        return run_needle(args)
    console = Console(stderr=True)
    train, validation, test = load_split(args)
    if args.data == SIMULATOR:
        if args.hop_ms or args.window_ms != 200.0:
            console.print("[yellow]simulated subjects use 200 ms windows and 100 ms hops[/yellow]")
        model_id = args.model_id or f"neurofusionnet-condition-{args.sim_layout}-{args.sim_fs:g}hz"
    else:
        model_id = args.model_id or f"neurofusionnet-{Path(args.data).name}"
    console.print(f"{len(train)} training, {len(validation)} validation and {len(test)} test windows; "
                  f"classes: {', '.join(train.classes)}; test groups: {', '.join(sorted(set(test.groups)))}")
    from models.training import rich_progress, train_and_save  # torch: after the split, which may be refused

    config = training_config(args)
    bar, update = rich_progress(config.epochs, "training NeuroFusionNet")
    with bar:
        checkpoint, metrics = train_and_save(
            train, validation, test, args.out, model_id, feature_names(args), config, args.graph,
            train.description, export=not args.no_onnx, progress=update,
        )
    from monitor.recordings.preprocessing import write_training_summary  # step 16: what was done to the data

    write_training_summary(args, train, validation, test, Path(args.out))
    console.print(
        f"test accuracy {100 * metrics['accuracy']:.2f}%, macro F1 {100 * metrics['macro_f1']:.2f}% on "
        f"{metrics['n_windows']} windows of unseen groups; wrote {checkpoint} and figures in {Path(args.out)}"
    )
    if "muscle_timed_accuracy" in metrics:
        console.print(f"against muscle-timed test labels {100 * metrics['muscle_timed_accuracy']:.2f}% (they agree "
                      f"with the recorded ones on {100 * metrics['muscle_cue_agreement']:.2f}% of the windows)")
    return 0
