"""The inference worker's model per window, one ONNX thread, graph variants side by side (issue 21, 256 channels).

    nice -n 10 .venv/bin/python -m benchmarks.bench_onnx_worker --channels 256 --rounds 3

Variants, each a CPU ExecutionProvider session with one intra-op thread, run alternately on the same windows:
``exported`` (the file as exported), ``faster`` (GELU fused, 1-D convolutions as 2-D: models.onnx_rewrite's first
rewrites), ``serving`` (what the worker loads now: ``faster`` optimised by ORT for this CPU with each GELU kept in the
convolutions' blocked layout), and dynamic int8 quantisation of ``faster`` (onnxruntime.quantization, weights uint8)
of the MatMul/Gemm nodes only, and of the convolutions too. CPU per window is the calling thread's
(``time.thread_time``), one window per call as the worker gets them from one bed; with ``--idle-ms`` each call is
preceded by that long a sleep, as in the live worker (a window every 50 ms: caches are cold again).

Agreement is against ``exported`` on the same windows: largest absolute difference of the probabilities and of the
channel attention, and the share of windows whose most probable class is the same. The windows are band-limited
noise of EMG amplitude with a quarter of the channels masked; a network of the bundled architecture for a layout
other than the bundled one is untrained (the cost is the same; agreement on a trained model: use the bundled 64-ch
layout, ``--channels 64``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import emit


def sessions(onnx_file: Path, folder: Path) -> dict[str, object]:
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from models.onnx_rewrite import faster_model_bytes, serving_model_bytes

    faster = faster_model_bytes(onnx_file)
    assert faster is not None, "the rewrites did not apply to this graph"
    (folder / "faster.onnx").write_bytes(faster)
    models: dict[str, bytes | str] = {"exported": str(onnx_file), "faster": faster,
                                      "serving": serving_model_bytes(onnx_file) or faster}  # fmt: skip
    for name, ops in (("int8_matmul", ["MatMul", "Gemm"]), ("int8_matmul_conv", ["MatMul", "Gemm", "Conv"])):
        target = folder / f"{name}.onnx"
        quantize_dynamic(str(folder / "faster.onnx"), str(target), op_types_to_quantize=ops,
                         weight_type=QuantType.QUInt8)  # fmt: skip
        models[name] = str(target)
    built = {}
    for name, model in models.items():
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 3
        built[name] = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=256, choices=(8, 64, 256))
    parser.add_argument("--windows", type=int, default=40, help="distinct windows per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-ms", type=float, default=0.0, help="sleep before each call (live worker: ~40)")
    args = parser.parse_args()
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # the quantiser's advice to pre-process, once per variant
    from benchmarks.bench_latency import checkpoint_for
    from models.checkpoint import onnx_path

    layout = {8: "ring8", 64: "grid8x8", 256: "grid16x16"}[args.channels]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        built = sessions(onnx_path(checkpoint_for(layout, 2048.0, folder)), folder)
        inputs = built["exported"].get_inputs()  # type: ignore[attr-defined]
        n_channels, n_features = inputs[0].shape[1], inputs[1].shape[2]
        rng = np.random.default_rng(21)
        feeds = []
        for _ in range(args.windows):
            mask = (rng.random((1, n_channels)) > 0.25).astype(np.float32)
            windows = np.cumsum(rng.standard_normal((1, n_channels, 410)), axis=-1)
            windows = ((windows - windows.mean(axis=-1, keepdims=True)) * 20).astype(np.float32)
            feeds.append(dict(zip([item.name for item in inputs], (
                windows, rng.standard_normal((1, n_channels, n_features)).astype(np.float32), mask), strict=True)))
        outputs = {name: [session.run(None, feed) for feed in feeds] for name, session in built.items()}  # type: ignore[attr-defined]
        cpu: dict[str, list[float]] = {name: [] for name in built}
        for _ in range(args.rounds):
            for name, session in built.items():
                used = 0.0
                for feed in feeds:
                    if args.idle_ms:
                        time.sleep(args.idle_ms / 1000)
                    started = time.thread_time()
                    session.run(None, feed)  # type: ignore[attr-defined]
                    used += time.thread_time() - started
                cpu[name].append(round(used / len(feeds) * 1000, 2))
    reference = outputs["exported"]
    agreement = {}
    for name, got in outputs.items():
        probabilities = np.concatenate([g[0] for g in got]), np.concatenate([r[0] for r in reference])
        attention = np.concatenate([g[1] for g in got]), np.concatenate([r[1] for r in reference])
        agreement[name] = {
            "max_abs_probability": float(np.abs(probabilities[0] - probabilities[1]).max()),
            "max_abs_attention": float(np.abs(attention[0] - attention[1]).max()),
            "same_class_share": float((probabilities[0].argmax(1) == probabilities[1].argmax(1)).mean()),
            "bit_identical_to_faster": all(np.array_equal(a, b) for g, f in zip(got, outputs["faster"], strict=True)
                                           for a, b in zip(g, f, strict=True)),  # fmt: skip
        }
    emit("onnx_worker_variants", {"channels": args.channels, "idle_ms": args.idle_ms,
                                  "cpu_ms_per_window_by_round": cpu, "agreement_with_exported": agreement})  # fmt: skip


if __name__ == "__main__":
    main()
