"""Memory and start-up cost of the fatigue view's "endurance left" forecaster, in a fresh process (the measurement
and the no-torch check must not see the torch a test process has already imported):

    .venv/bin/python -m tests.gui.endurance_footprint --backend live    # what the GUI loads (ONNX Runtime)
    .venv/bin/python -m tests.gui.endurance_footprint --backend torch   # the torch path (the GUI before the export)

Prints one JSON line: RSS after importing the GUI module, after loading the forecaster and running one forecast,
the peak, the seconds each took, the forecaster's type and whether torch ended up in ``sys.modules``.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402 (the clock starts before every import it measures)
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def measure(backend: str) -> dict[str, object]:
    import numpy as np

    from monitor.gui.endurance import EnduranceForecast

    imported_s, imported_mb = time.perf_counter() - STARTED, rss_mb()
    if backend == "torch":
        from models.prognosis import load_forecaster as loader
    else:
        from models.prognosis import load_live_forecaster as loader
    forecast = EnduranceForecast(loader, background=False)
    # 40 s of contraction, MDF falling 10 Hz/min from 100 Hz, in the view's 1 s bins
    estimate = forecast.update(100.0 - 10.0 * np.arange(40) / 60.0, np.ones(40, dtype=bool))
    if estimate is None:
        raise RuntimeError(f"no forecast: {forecast.state} {forecast.error}")
    return {
        "backend": backend,
        "forecaster": type(forecast.estimator.network).__name__,
        "import_s": round(imported_s, 2),
        "first_forecast_s": round(time.perf_counter() - STARTED, 2),
        "rss_after_import_mb": round(imported_mb, 1),
        "rss_after_forecast_mb": round(rss_mb(), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_imported": "torch" in sys.modules,
        "endurance_s": estimate["seconds"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("live", "torch"), default="live")
    print(json.dumps(measure(parser.parse_args().backend)))
