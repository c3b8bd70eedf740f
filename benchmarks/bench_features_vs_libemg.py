"""Feature extraction time vs LibEMG 2.0.3 on the same windows (Hudgins TD + MNF + MDF + RMS), in one run.

    .venv/bin/python -m benchmarks.bench_features_vs_libemg

Windows: the real 64-channel HD-EMG recording (../shared/data/hdemg-vastus-lateralis), filtered with the monitor's
chain, cut into 400-sample (as in the brief's LibEMG figure) and 512-sample windows. Our side runs here; LibEMG's
runs in its own environment (peers venv: numpy < 2, as LibEMG 2.0.3's MDF fails under numpy 2), on the
same windows passed as .npy files, loading only libemg/feature_extractor.py (tests/dsp/libemg_reference.py). Both
sides time the same calls the same way, interleaved repeat by repeat (median, per window; all windows in one call
and one window per call as live), and the values are compared.

The peers environment is made on first use (``ensure_peers_venv``) in the per-user cache, not at a fixed path, so
the benchmark runs the same wherever the repository lies ($NEUROFUSION_PEERS_VENV chooses another folder):
    python3 -m venv ~/.cache/neurofusion/peers-venv
    ~/.cache/neurofusion/peers-venv/bin/pip install "numpy<2" scipy scikit-learn matplotlib PyWavelets psutil mne-lsl
    ~/.cache/neurofusion/peers-venv/bin/pip install --no-deps libemg==2.0.3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO, emit


def peers_venv() -> Path:
    """$NEUROFUSION_PEERS_VENV, else ``peers-venv`` in the per-user cache folder (models/weight_cache.py)."""
    from models.weight_cache import private_dir, user_cache_dir

    chosen = os.environ.get("NEUROFUSION_PEERS_VENV")
    return Path(chosen).expanduser() if chosen else private_dir(user_cache_dir()) / "peers-venv"

PEERS_PACKAGES = ["numpy<2", "scipy", "scikit-learn", "matplotlib", "PyWavelets", "psutil", "mne-lsl"]
HDEMG = REPO.parent / "shared" / "data" / "hdemg-vastus-lateralis" / "otb_testfile.mat"
FS = 2048.0
GROUPS = {
    "HTD": ["MAV", "WL", "ZC", "SSC"],
    "MNF+MDF+RMS": ["MNF", "MDF", "RMS"],
    "HTD+MNF+MDF+RMS": ["MAV", "WL", "ZC", "SSC", "MNF", "MDF", "RMS"],  # the target's set, in one call
}


def ensure_peers_venv() -> Path:
    """The Python of the peers' environment, created (with pip, from PyPI) if it does not exist yet."""
    venv = peers_venv()
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS_PACKAGES], check=True)
    check = subprocess.run([str(python), "-c", "import libemg"], capture_output=True)
    if check.returncode != 0 and b"No module named 'libemg'" in check.stderr:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "libemg==2.0.3"], check=True)
    return python


def real_windows(n_samples: int, n_windows: int) -> np.ndarray:
    import scipy.io

    from dsp.filters import default_chain

    data = scipy.io.loadmat(HDEMG)["Data"][0, 0][:, :64].astype(np.float32)
    filtered, _ = default_chain(FS, 64, mains_hz=50.0).process(data[8192 : 8192 + 4096 + n_windows * 200 + n_samples])
    starts = 4096 + 200 * np.arange(n_windows)
    return np.stack([filtered[s : s + n_samples].T for s in starts]).astype(np.float32)


# Runs inside the peers' environment as a small server: for each line "<length> <group> <mode>" on stdin it times
# LibEMG once and answers with the seconds, so that our timings and LibEMG's can be interleaved (the machine's load
# changes from second to second; measuring one side after the other would compare different machines).
LIBEMG_SIDE = r"""
import importlib.util, json, sys, time
import numpy as np
helper_path, windows_dir, fs = sys.argv[1], sys.argv[2], float(sys.argv[3])
groups = json.loads(sys.argv[4])
spec = importlib.util.spec_from_file_location("libemg_reference", helper_path)
helper = importlib.util.module_from_spec(spec); spec.loader.exec_module(helper)
fe = helper.load_feature_extractor()
params = {"MNF_fs": fs, "MDF_fs": fs, "SSC_threshold": 0.0}
windows = {}
for name in ("w400", "w512"):
    windows[name] = np.load(f"{windows_dir}/{name}.npy", allow_pickle=False).astype(np.float64)
    values = fe.extract_features(groups["HTD+MNF+MDF+RMS"], windows[name], params)
    np.savez(f"{windows_dir}/{name}_libemg.npz", **{k: np.asarray(v, dtype=np.float64) for k, v in values.items()})
print(json.dumps({"ready": True, "numpy": np.__version__}), flush=True)
for line in sys.stdin:
    name, group, mode = line.split()
    w, features = windows[name], groups[group]
    started = time.perf_counter()
    if mode == "batch":
        fe.extract_features(features, w, params)
    else:
        for i in range(len(w)):
            fe.extract_features(features, w[i:i + 1], params)
    print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)
"""


def time_ours(windows: np.ndarray, features: list[str], mode: str) -> float:
    from dsp.features import compute_features

    started = time.perf_counter()
    if mode == "batch":
        compute_features(windows, FS, features)
    else:
        for i in range(len(windows)):
            compute_features(windows[i : i + 1], FS, features)
    return time.perf_counter() - started


def agreement(windows: np.ndarray, theirs: dict[str, np.ndarray]) -> dict[str, float]:
    """Largest relative difference per feature (MDF: largest difference in FFT bins, LibEMG reports bin edges)."""
    from dsp.features import compute_features

    ours = compute_features(windows, FS, GROUPS["HTD+MNF+MDF+RMS"])
    result = {}
    for name, values in ours.items():
        if name == "MDF":
            result["MDF_max_diff_bins"] = float(np.max(np.abs(values - theirs[name])) / (FS / windows.shape[-1]))
        else:
            result[f"{name}_max_rel_diff"] = float(np.max(np.abs(values - theirs[name]) / np.abs(theirs[name])))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=100, help="windows per length")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    peers_python = ensure_peers_venv()
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        windows = {"w400": real_windows(400, args.windows), "w512": real_windows(512, args.windows)}
        for name, array in windows.items():
            np.save(Path(folder) / f"{name}.npy", array)
        peer = subprocess.Popen(
            [str(peers_python), "-c", LIBEMG_SIDE, str(REPO / "tests" / "dsp" / "libemg_reference.py"), folder,
             str(FS), json.dumps(GROUPS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            hello = json.loads(peer.stdout.readline())

            def time_theirs(name: str, group: str, mode: str) -> float:
                peer.stdin.write(f"{name} {group} {mode}\n")
                peer.stdin.flush()
                return json.loads(peer.stdout.readline())["seconds"]

            for name, array in windows.items():
                for group, features in GROUPS.items():
                    entry: dict[str, object] = {}
                    for mode in ("batch", "single"):
                        ours, theirs = [], []
                        for _ in range(args.repeats):  # interleaved, so both sides see the same machine load
                            ours.append(time_ours(array, features, mode))
                            theirs.append(time_theirs(name, group, mode))
                        # best of the repeats is the cost without interference from other load; the median says
                        # what a busy machine gives
                        best_ours, best_theirs = min(ours) / len(array) * 1e3, min(theirs) / len(array) * 1e3
                        median_ours = float(np.median(ours)) / len(array) * 1e3
                        median_theirs = float(np.median(theirs)) / len(array) * 1e3
                        entry[mode] = {
                            "ours_ms_per_window": {"best": round(best_ours, 4), "median": round(median_ours, 4)},
                            "libemg_ms_per_window": {"best": round(best_theirs, 4), "median": round(median_theirs, 4)},
                            "speedup_best": round(best_theirs / best_ours, 1),
                            "speedup_median": round(median_theirs / median_ours, 1),
                        }
                    results[f"{name}/{group}"] = entry
                with np.load(Path(folder) / f"{name}_libemg.npz", allow_pickle=False) as stored:
                    results[f"{name}/agreement"] = agreement(array, {key: stored[key] for key in stored.files})
        finally:
            peer.stdin.close()
            peer.wait(timeout=30)
    emit(
        "features_vs_libemg",
        {
            "windows": f"{args.windows} x 64 ch of real HD-EMG at 2048 Hz, per length",
            "libemg": "2.0.3, numpy " + hello["numpy"] + " (peers venv)",
            "modes": "batch: all windows in one call; single: one window per call, as live",
            "target": "ours >= 10x faster (HTD + MNF + MDF + RMS)",
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
