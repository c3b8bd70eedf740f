"""LibEMG 2.0.3's own feature code, loaded without its package, as a reference for dsp.features.

LibEMG's package ``__init__`` imports GUI and device libraries, so only ``libemg/feature_extractor.py`` is
loaded, by file path. It comes from the installed ``libemg`` (the Makefile runs ``pip install --no-deps
libemg==2.0.3`` into .venv; finding the package does not run its ``__init__``) or, failing that, from the sdist
fetched with ``pip download`` into a fresh private temporary folder, removed once the module is loaded (never a
predictable shared path whose content could be someone else's). Nothing is vendored.

The module imports ``librosa`` for one feature (LPC) that the tests never call; if librosa is not installed, an
empty stand-in module lets the file import, and calling LPC would fail loudly.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tarfile
import tempfile
import types
import warnings
from pathlib import Path

LIBEMG_VERSION = "2.0.3"


def _installed_source() -> Path | None:
    spec = importlib.util.find_spec("libemg")
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations))) / "feature_extractor.py"
    return candidate if candidate.is_file() else None


def _download_source(private: Path) -> Path | None:
    """The sdist's feature_extractor.py, fetched into ``private`` (a fresh folder only this user can open).

    Never a shared or predictable path: a file another user left at a known /tmp name would be run as our code."""
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
             f"libemg=={LIBEMG_VERSION}", "-d", str(private)],
            check=True, timeout=120, capture_output=True,
        )  # fmt: skip
    except (subprocess.SubprocessError, OSError):
        return None
    archives = list(private.glob(f"libemg-{LIBEMG_VERSION}.tar.gz"))
    if not archives:
        return None
    member = f"libemg-{LIBEMG_VERSION}/libemg/feature_extractor.py"
    with tarfile.open(archives[0]) as archive:
        archive.extract(member, private, filter="data")
    extracted = private / member
    return extracted if extracted.is_file() else None


def load_feature_extractor() -> object | None:
    """A ``libemg.feature_extractor.FeatureExtractor`` instance, or None if the file cannot be obtained."""
    source = _installed_source()
    if source is not None:
        return _load_from(source)
    with tempfile.TemporaryDirectory(prefix="neurofusion-libemg-") as private:  # mode 0700, removed after loading
        downloaded = _download_source(Path(private))
        return None if downloaded is None else _load_from(downloaded)


def _load_from(source: Path) -> object:
    if importlib.util.find_spec("librosa") is None and "librosa" not in sys.modules:
        stand_in = types.ModuleType("librosa")

        def lpc(*_args: object, **_kwargs: object) -> None:
            raise RuntimeError("librosa is not installed; LibEMG's LPC feature is unavailable")

        stand_in.lpc = lpc  # type: ignore[attr-defined]
        sys.modules["librosa"] = stand_in
    spec = importlib.util.spec_from_file_location("libemg_feature_extractor_reference", source)
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # its `import numpy.matlib`
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.FeatureExtractor()
