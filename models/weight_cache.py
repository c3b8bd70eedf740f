"""The per-user cache: simulated corpora and the weights of small helper networks, so a second run skips the work.

It lives in ``$XDG_CACHE_HOME/neurofusion`` (``~/.cache/neurofusion``), a folder created with mode 0700 and
owned by the user, never in a shared predictable place such as ``/tmp``: another local user must not be able to
plant a corpus or weights there that a training run or the monitor would then use. Every cached file is written
atomically with a ``.sha256`` sidecar and read only when the file is the user's own and its hash still matches;
anything else (truncated by a crash, changed behind our back, left by someone else) is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from monitor.errors import UserError

CACHE_NAME = "neurofusion"
HASH_SUFFIX = ".sha256"


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/neurofusion``, else ``~/.cache/neurofusion`` (not created here; see ``private_dir``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / CACHE_NAME


def private_dir(path: str | Path) -> Path:
    """``path`` as a folder only this user can enter: created 0700, or an existing one of ours tightened to it.

    UserError for a folder owned by someone else (a cache another user controls is not a cache we may use)."""
    folder = Path(path)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid():
        raise UserError(f"cache folder {folder} belongs to another user: choose a folder of your own")
    if stat.S_IMODE(info.st_mode) & 0o077:
        folder.chmod(0o700)
    return folder


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_file(path: Path) -> Path:
    return path.with_name(path.name + HASH_SUFFIX)


def is_verified(path: str | Path) -> bool:
    """True when ``path`` and its sidecar are this user's files and the file's sha256 is the one recorded."""
    path = Path(path)
    sidecar = _hash_file(path)
    try:
        if path.stat().st_uid != os.getuid() or sidecar.stat().st_uid != os.getuid():
            return False
        recorded = sidecar.read_text().strip()
    except OSError:
        return False
    return recorded == file_sha256(path)


def write_verified(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through ``write(binary stream)`` atomically (temporary file, then rename), then its sidecar.

    The folder is made private first. A reader never sees half a file: until the sidecar matches it is rebuilt."""
    path = Path(path)
    private_dir(path.parent)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            write(stream)
        digest = file_sha256(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    sidecar_temporary = _hash_file(path).with_suffix(".part")
    sidecar_temporary.write_text(digest + "\n")
    os.replace(sidecar_temporary, _hash_file(path))
    return path


def load_cached(network: Any, cache_dir: Path | None, name: str) -> tuple[bool, Path | None]:
    """Loads ``cache_dir/name.pt`` into ``network`` when it is verified (``weights_only``, never a pickle).

    Returns whether it was loaded and the path to save freshly trained weights to (None: no cache). Weights that
    fail the hash check, or that do not fit the network, are not used: the caller trains and saves afresh."""
    import torch

    path = None if cache_dir is None else Path(cache_dir) / f"{name}.pt"
    if path is not None and is_verified(path):
        try:
            network.load_state_dict(torch.load(path, weights_only=True))
            return True, path
        except Exception:  # unreadable or another shape: rebuilt below by the caller, never half-loaded silently
            return False, path
    return False, path


def save_cached(network: Any, path: Path | None) -> None:
    import torch

    if path is not None:
        write_verified(path, lambda stream: torch.save(network.state_dict(), stream))
