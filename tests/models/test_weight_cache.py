"""The per-user cache: a private folder, and cached corpora or weights whose hash does not match are rebuilt."""

from __future__ import annotations

import stat

import numpy as np
import pytest
import torch

from models.datasets import _cache_path, _cached_subject
from models.weight_cache import is_verified, load_cached, private_dir, save_cached, user_cache_dir, write_verified


def mode_of(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_cache_is_a_private_folder_under_the_users_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "xdg" / "neurofusion"
    assert mode_of(private_dir(user_cache_dir())) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o777)
    assert mode_of(private_dir(loose)) == 0o700  # an existing folder of ours is tightened
    written = write_verified(tmp_path / "fresh" / "a.bin", lambda stream: stream.write(b"abc"))
    assert mode_of(written.parent) == 0o700 and is_verified(written)
    assert not list(written.parent.glob("*.part"))  # nothing half-written is left beside it


def test_a_tampered_or_unhashed_corpus_file_is_simulated_again(tmp_path, monkeypatch):
    import models.datasets

    args = ("myopathy", 4244, 1.0, "ring8", 2048.0)  # a held contraction: windows from the start
    first = _cached_subject(*args, tmp_path)
    path = _cache_path(tmp_path, *args)
    assert is_verified(path) and len(first.windows) > 0
    simulations: list[tuple] = []  # from here on a simulation returns the first one's result, counted
    monkeypatch.setattr(models.datasets, "simulated_subject", lambda *a: simulations.append(a) or first)
    assert np.array_equal(_cached_subject(*args, tmp_path).windows, first.windows) and not simulations  # cached
    # someone replaces the cached windows: a hash mismatch, so the subject is simulated again, not trusted
    np.savez(path, windows=np.zeros_like(first.windows), labels=first.labels, groups=first.groups.astype(str),
             fatigue=first.fatigue, times=first.times)
    assert not is_verified(path)
    rebuilt = _cached_subject(*args, tmp_path)
    assert len(simulations) == 1 and np.array_equal(rebuilt.windows, first.windows) and is_verified(path)
    assert np.array_equal(np.load(path)["windows"], first.windows)  # the rebuilt file replaced the tampered one
    # a file without its recorded hash (e.g. from the old shared /tmp cache) is not trusted either
    path.with_name(path.name + ".sha256").unlink()
    assert path.is_file() and not is_verified(path)


def test_tampered_weights_are_not_loaded(tmp_path):
    torch.manual_seed(0)
    trained = torch.nn.Linear(4, 2)
    _, path = load_cached(torch.nn.Linear(4, 2), tmp_path, "helper")
    save_cached(trained, path)
    fresh = torch.nn.Linear(4, 2)
    loaded, _ = load_cached(fresh, tmp_path, "helper")
    assert loaded and torch.equal(fresh.weight, trained.weight)
    torch.save({"weight": torch.full((2, 4), 9.0), "bias": torch.zeros(2)}, path)  # changed behind our back
    other = torch.nn.Linear(4, 2)
    before = other.weight.detach().clone()
    loaded, again = load_cached(other, tmp_path, "helper")
    assert not loaded and again == path and torch.equal(other.weight, before)


@pytest.mark.parametrize("name", ["models/datasets.py", "models/denoising.py", "models/prognosis.py",
                                  "monitor/commands/train.py"])
def test_no_cache_lives_in_a_shared_tmp_path(name):
    from tests.conftest import REPO

    assert "/tmp/neurofusion" not in (REPO / name).read_text()
