"""Keeps LSL discovery on this machine unless the user chose a config.

liblsl reads its configuration once, when the library first needs it, so this must run before any LSL object
is made (the CLI calls it first thing; tests call it in conftest; benchmarks in their common module).
"""

from __future__ import annotations

import os
from pathlib import Path

SHIPPED_LSL_CONFIG = Path(__file__).with_name("lsl_api.cfg")


def use_lsl_config(path: str | os.PathLike[str] | None = None) -> Path:
    """Point ``LSLAPICFG`` at ``path``, or at the shipped machine-local config when neither it nor the env is set."""
    if path is not None:
        chosen = Path(path).resolve()
        if not chosen.is_file():
            raise FileNotFoundError(f"LSL config not found: {chosen}")
        os.environ["LSLAPICFG"] = str(chosen)
    elif not os.environ.get("LSLAPICFG"):
        os.environ["LSLAPICFG"] = str(SHIPPED_LSL_CONFIG)
    return Path(os.environ["LSLAPICFG"])
