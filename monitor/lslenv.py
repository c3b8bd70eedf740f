"""Keeps LSL discovery on this machine unless the user chose a config.

liblsl reads its configuration once, when the library first needs it, so this must run before any LSL object
is made (the CLI calls it first thing; tests call it in conftest; benchmarks in their common module).
"""

from __future__ import annotations

import os
from pathlib import Path

SHIPPED_LSL_CONFIG = Path(__file__).with_name("lsl_api.cfg")


def use_lsl_config(path: str | os.PathLike[str] | None = None) -> Path:
    """Point ``LSLAPICFG`` at ``path``, or at the shipped machine-local config when neither it nor the env is set.

    A config that is not there is refused (UserError, one line): liblsl would silently fall back to its defaults,
    which resolve streams across the whole network, not on this machine."""
    from monitor.errors import UserError

    if path is not None:
        chosen = Path(path).resolve()
        if not chosen.is_file():
            raise UserError(f"--lsl-config: no LSL config at {chosen}")
        os.environ["LSLAPICFG"] = str(chosen)
    elif not os.environ.get("LSLAPICFG"):
        os.environ["LSLAPICFG"] = str(SHIPPED_LSL_CONFIG)
    configured = Path(os.environ["LSLAPICFG"])
    if not configured.is_file():
        raise UserError(f"LSLAPICFG names {configured}, which is not a file: liblsl would fall back to network-wide "
                        "discovery; fix the path, or unset LSLAPICFG for the shipped machine-local config")  # fmt: skip
    return configured
