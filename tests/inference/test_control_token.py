"""The control token (made on first use, private to the user) and the model-folder allow-list, without a worker."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from monitor.errors import UserError
from monitor.inference import protocol
from monitor.inference.security import (
    BUNDLED_MODELS_DIR,
    ControlPolicy,
    ControlRefused,
    control_token,
    default_control_token_file,
    user_models_dir,
)


def test_the_token_is_made_once_private_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = default_control_token_file()
    assert path == tmp_path / "config" / "neurofusion" / "control.token" and not path.exists()
    token = control_token()
    assert len(token) >= 40 and control_token() == token and control_token(path) == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [item.name for item in path.parent.iterdir()] == ["control.token"]  # nothing left aside
    assert control_token(tmp_path / "other.token") != token  # random, not derived from anything guessable


def test_a_token_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "control.token"
    control_token(path)
    path.chmod(0o644)
    with pytest.raises(UserError, match="readable by other users: run `chmod 600"):
        control_token(path)


def test_the_policy_allows_the_bundled_and_user_folders_and_the_added_ones(tmp_path: Path) -> None:
    policy = ControlPolicy.create([tmp_path / "extra"], token="secret")
    assert policy.model_dirs == (BUNDLED_MODELS_DIR.resolve(), user_models_dir().resolve(),
                                 (tmp_path / "extra").resolve())
    assert policy.checkpoint(str(BUNDLED_MODELS_DIR / "default.pt")) == (BUNDLED_MODELS_DIR / "default.pt").resolve()
    assert policy.checkpoint(str(tmp_path / "extra" / "p7" / "a.pt")) == tmp_path / "extra" / "p7" / "a.pt"
    for path, code in ((str(tmp_path / "a.pt"), protocol.MODEL_NOT_ALLOWED),
                       ("extra/a.pt", protocol.MODEL_NOT_ALLOWED)):  # relative: refused, never resolved by cwd
        with pytest.raises(ControlRefused) as refused:
            policy.checkpoint(path)
        assert refused.value.code == code
    policy.check_peer("secret", "load_model")
    for wrong in (None, "Secret", ""):
        with pytest.raises(ControlRefused) as refused:
            policy.check_peer(wrong, "load_model")
        assert refused.value.code == protocol.UNAUTHORIZED
    ControlPolicy.create(token=None).check_peer(None, "load_model")  # a CURVE server: the handshake authenticated


def test_a_token_that_cannot_be_made_is_a_one_line_error(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    with pytest.raises(UserError, match="cannot use the control token file .*pass --control-token FILE"):
        control_token(blocked / "control.token")
