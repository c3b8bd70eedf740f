"""`neurofusion evaluate`: NeuroFusionNet against the baselines and its own ablations, same split, same windows."""

from __future__ import annotations

import argparse
from pathlib import Path

from monitor.commands.train import (
    SIMULATOR,
    add_data_arguments,
    add_training_arguments,
    check_training_arguments,
    feature_names,
    load_split,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="compare NeuroFusionNet with LDA/SVM (Hudgins TD), CNN, LSTM, GRU, attention-only, and ablations",
        description="Train every model on the same training groups with the same early stopping, and report "
        "accuracy, sensitivity, specificity, precision, macro F1 (one-vs-rest, macro-averaged), inference time per "
        "window (batched, features included) and parameter count on the held-out test groups. The configuration to "
        "report (NeuroFusionNet or one of its ablations) is chosen on the validation groups' macro F1, never on the "
        "test figures, and its test accuracy is given with a bootstrap interval over test groups; then the feature "
        "analysis of the training windows (PCA, Random Forest importance, feature selection for LDA; "
        "feature_analysis.png) and the resource figures (per-window time of each DSP stage, CPU %, memory). Writes "
        "evaluation.md and evaluation.json into --out.",
    )
    add_data_arguments(parser)
    add_training_arguments(parser)
    parser.add_argument("--out", default="runs/evaluate", help="output folder (default runs/evaluate)")
    parser.add_argument("--baselines", nargs="*", default=["lda", "svm", "cnn", "lstm", "gru", "attention"],
                        help="baselines to run (default all: lda svm cnn lstm gru attention)")
    parser.add_argument("--ablations", nargs="*",
                        default=["no_gnn", "no_attention", "no_features", "no_regularisation"],
                        help="ablations to run (default all: no_gnn no_attention no_features no_regularisation)")
    parser.add_argument("--title", help="table title (default: derived from the data)")
    parser.add_argument("--no-feature-analysis", action="store_true",
                        help="skip the PCA / Random Forest feature analysis section")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    check_training_arguments(args)  # before torch is imported: a bad option is said at once
    import platform
    import sys
    from dataclasses import asdict

    from rich.console import Console

    from dsp.resources import StageProfiler
    from models.evaluation import compare_models, markdown_table, select_on_validation, write_json
    from models.evaluation_analysis import feature_analysis_report, markdown_sections, resource_report
    from monitor.commands.train import training_config
    from monitor.errors import UserError

    profiler = StageProfiler()  # CPU % and memory of the whole evaluation
    console = Console(stderr=True)
    unknown = sorted(set(args.ablations) - {"no_gnn", "no_attention", "no_features", "no_regularisation"})
    if unknown:
        raise UserError(f"unknown ablation(s) {', '.join(unknown)}")
    unknown = sorted(set(args.baselines) - {"lda", "svm", "cnn", "lstm", "gru", "attention"})
    if unknown:
        raise UserError(f"unknown baseline(s) {', '.join(unknown)}")
    train, validation, test = load_split(args)
    config = training_config(args)
    title = args.title or (
        f"Simulated condition task ({args.sim_layout}, {args.sim_fs:g} Hz), unseen subjects"
        if args.data == SIMULATOR else f"{Path(args.data).name}: test on {', '.join(sorted(set(test.groups)))}"
    )
    console.print(f"{len(train)} training, {len(validation)} validation, {len(test)} test windows")
    with console.status("training") as status:
        rows = compare_models(
            train, validation, test, feature_names(args), config, tuple(args.baselines),
            tuple(args.ablations), progress=lambda name: status.update(f"training and testing {name}"),
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with console.status("feature analysis and resource figures"):
        analysis = None if args.no_feature_analysis else feature_analysis_report(train, test, out, config.seed)
        hop_ms = args.hop_ms or (100.0 if args.data == SIMULATOR else 50.0)
        resources = resource_report(test, profiler, rows, args.window_ms, hop_ms, args.mode)
    table = markdown_table(rows, title) + markdown_sections(analysis, resources)
    (out / "evaluation.md").write_text(table)
    write_json(out / "evaluation.json", {
        "title": title, "rows": rows, "classes": list(train.classes), "selection": select_on_validation(rows),
        "split": {"train": sorted(set(train.groups)), "validation": sorted(set(validation.groups)),
                  "test": sorted(set(test.groups))},
        "windows": {"train": len(train), "validation": len(validation), "test": len(test)},
        "training_config": asdict(config), "command": "neurofusion " + " ".join(sys.argv[1:]),
        "data": train.description if args.data != SIMULATOR else {k: v for k, v in train.description.items()
                                                                   if k != "subjects"},
        "feature_analysis": analysis, "resources": resources,
        "machine": {"processor": platform.processor() or platform.machine(), "python": platform.python_version()},
    })
    print(table)
    return 0
