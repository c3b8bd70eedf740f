"""Runs the benchmarks and writes one JSON summary: `make bench`.

    .venv/bin/python -m benchmarks.run_all                 # the quick set (a few minutes on 2 cores)
    .venv/bin/python -m benchmarks.run_all --all           # every benchmarks/bench_*.py with its documented defaults
    .venv/bin/python -m benchmarks.run_all --only bench_latency bench_dsp_chain --out results.json

Each benchmark runs as `python -m benchmarks.<name> ARGS` in its own process (one at a time: they measure speed on
a shared machine), and every JSON object it prints is kept. The quick set runs each headline figure of
docs/benchmarks.md with shorter runs (fewer seconds, repeats and channel counts): the same code paths, noisier
figures. A benchmark that fails or times out is recorded with the end of its error output and the others go on;
one that needs ../shared/data where it is absent, or a package that is not installed, is recorded as skipped.
The summary (machine, load average before and after, each benchmark's command, exit status, wall time and
results) goes to ``--out`` (default build/benchmarks/summary.json) and a one-line digest per benchmark to stderr.
Exit status: 0 when none failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, load_average, machine

SHARED_DATA = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class Benchmark:
    name: str
    quick_args: tuple[str, ...] = ()
    needs_data: str | None = None  # a folder of ../shared/data
    needs_module: str | None = None  # a package the benchmark imports that `make setup` does not install


#: the quick set, in the order of docs/benchmarks.md's headline table; arguments shorten the runs only
QUICK = (
    Benchmark("bench_latency", ("--channels", "64", "--duration", "8")),
    Benchmark("bench_dsp_chain", ("--channels", "8", "64", "--duration", "5")),
    Benchmark("bench_model_inference", ("--repeats", "50")),
    Benchmark("bench_inference_service", ("--round-trips", "100", "--phases", "round_trip")),
    Benchmark("bench_gui_fps", ("--channels", "8", "64", "--seconds", "2")),
    Benchmark("bench_simulator", ("--seconds", "3", "--repeats", "1")),
    Benchmark("bench_analyze", ("--repeats", "1", "--no-model"), needs_data="hdemg-vastus-lateralis"),
    Benchmark("bench_replay", ("--seconds", "5"), needs_data="hdemg-vastus-lateralis"),
    Benchmark("bench_stages", ("--channels", "8", "--seconds", "2")),
)
#: what --all needs to know about benchmarks beyond the quick set (the rest need nothing special)
NEEDS = {
    "bench_acquisition_vs_mnelsl": Benchmark("bench_acquisition_vs_mnelsl", needs_module="mne_lsl"),
    "bench_features_vs_libemg": Benchmark("bench_features_vs_libemg", needs_data="hdemg-vastus-lateralis"),
    "bench_label_timing": Benchmark("bench_label_timing", needs_data="myo-gestures"),
    "bench_mup": Benchmark("bench_mup", needs_data="hdemg-vastus-lateralis"),
    "bench_decomposition": Benchmark("bench_decomposition", needs_data="hdemg-vastus-lateralis"),
    "bench_needle_analyze": Benchmark("bench_needle_analyze", needs_data="needle-emg-clinical"),
    "bench_needle_live": Benchmark("bench_needle_live", needs_data="needle-emg-clinical"),
}


def every_benchmark() -> list[Benchmark]:
    """Every benchmarks/bench_*.py, run with its own defaults (the commands docs/benchmarks.md quotes)."""
    quick = {benchmark.name: benchmark for benchmark in QUICK}
    found = []
    for path in sorted((REPO / "benchmarks").glob("bench_*.py")):
        known = NEEDS.get(path.stem) or quick.get(path.stem) or Benchmark(path.stem)
        found.append(Benchmark(path.stem, (), known.needs_data, known.needs_module))
    return found


def json_objects(text: str) -> list[Any]:
    """Every JSON object printed in ``text`` (benchmarks print indented objects between other lines)."""
    decoder = json.JSONDecoder()
    objects, position = [], 0
    while (start := text.find("{", position)) != -1:
        try:
            value, position = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        objects.append(value)
    return objects


def why_skipped(benchmark: Benchmark) -> str | None:
    if benchmark.needs_data and not (SHARED_DATA / benchmark.needs_data).is_dir():
        return f"needs {SHARED_DATA / benchmark.needs_data}"
    if benchmark.needs_module and importlib.util.find_spec(benchmark.needs_module) is None:
        return f"needs the Python package {benchmark.needs_module}"
    return None


def run_benchmark(benchmark: Benchmark, args: tuple[str, ...], timeout_s: float) -> dict[str, Any]:
    command = [sys.executable, "-m", f"benchmarks.{benchmark.name}", *args]
    entry: dict[str, Any] = {"name": benchmark.name, "command": " ".join(["python", *command[1:]])}
    skipped = why_skipped(benchmark)
    if skipped:
        return entry | {"status": "skipped", "reason": skipped}
    entry["load_average_before"] = load_average()
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout_s,
                              stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout.decode(errors="replace") if isinstance(expired.stdout, bytes) else expired.stdout
        return entry | {"status": "timed out", "wall_s": round(time.monotonic() - started, 1),
                        "timeout_s": timeout_s, "results": json_objects(output or "")}  # fmt: skip
    entry |= {"wall_s": round(time.monotonic() - started, 1), "exit_code": done.returncode,
              "results": json_objects(done.stdout)}  # fmt: skip
    if done.returncode != 0:
        entry |= {"status": "failed", "error": done.stderr.strip().splitlines()[-5:]}
    else:
        entry["status"] = "ok" if entry["results"] else "no JSON printed"
    return entry


def digest(entry: dict[str, Any]) -> str:
    detail = entry.get("reason") or (f"{entry.get('wall_s', 0):.0f} s" if entry["status"] == "ok" else
                                     "; ".join(entry.get("error", [])) or entry["status"])  # fmt: skip
    return f"{entry['name']:<30} {entry['status']:<10} {detail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="every bench_*.py with its documented defaults")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="just these (bench_latency ...)")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "benchmarks" / "summary.json")
    parser.add_argument("--timeout", type=float, metavar="S", help="per benchmark (default 600 quick, 3600 --all)")
    args = parser.parse_args(argv)
    chosen = every_benchmark() if args.all else list(QUICK)
    if args.only:
        known = {benchmark.name: benchmark for benchmark in [*every_benchmark(), *chosen]}  # chosen's arguments
        unknown = [name for name in args.only if name not in known]
        if unknown:
            parser.error(f"no benchmark named {', '.join(unknown)} (see benchmarks/bench_*.py)")
        chosen = [known[name] for name in args.only]
    timeout_s = args.timeout or (3600.0 if args.all else 600.0)
    summary: dict[str, Any] = {
        "suite": "all" if args.all else "quick", "machine": machine(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "benchmarks": [],
    }  # fmt: skip
    started = time.monotonic()
    for benchmark in chosen:
        print(f"running {benchmark.name} ...", file=sys.stderr, flush=True)
        entry = run_benchmark(benchmark, () if args.all else benchmark.quick_args, timeout_s)
        summary["benchmarks"].append(entry)
        print(digest(entry), file=sys.stderr, flush=True)
    failed = [entry["name"] for entry in summary["benchmarks"] if entry["status"] not in ("ok", "skipped")]
    summary |= {"wall_s": round(time.monotonic() - started, 1), "load_average_after": load_average(),
                "failed": failed}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"summary of {len(chosen)} benchmarks ({len(failed)} failed) written to {args.out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
