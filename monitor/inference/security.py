"""Who may talk to an inference socket: loopback by default, CURVE (pyzmq's zmq.auth) for anything else.

A socket bound to a non-loopback address without CURVE is refused unless the user explicitly passes
``--insecure`` (then a warning is printed): patient EMG must not cross a ward network in clear text by accident.

Changing the model that serves every bed (``load_model``, ``use_model``) needs more than reaching the socket: the
peer must be authenticated (a CURVE client whose key the worker accepts, or, without CURVE, a peer presenting the
control token, a random secret in a file only the user can read), and a checkpoint is loaded only from the
allow-listed model folders (``ControlPolicy``; docs/protocol.md "Model control").
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import stat
import sys
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from monitor.errors import UserError

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
CONTROL_TOKEN_FILE = "control.token"
BUNDLED_MODELS_DIR = Path(__file__).resolve().parents[2] / "models" / "weights"


class InsecureBindWarning(UserWarning):
    """Binding a non-loopback address in clear text, as the user explicitly asked."""


@dataclass(frozen=True)
class CurveServerKeys:
    """A server's key pair and the directory of client public keys it accepts."""

    secret_key_file: Path  # the ``.key_secret`` file made by ``neurofusion keys``
    authorized_clients_dir: Path  # directory of clients' ``.key`` (public) files


@dataclass(frozen=True)
class CurveClientKeys:
    server_public_key_file: Path  # the server's ``.key`` file
    secret_key_file: Path  # this client's ``.key_secret`` file


def endpoint_is_local(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback address; False for anything reachable from outside."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp" or not rest:
        return False
    host = urlsplit(f"//{rest}").hostname or ""
    if ";" in rest:  # "tcp://source;dest": the destination decides
        host = urlsplit(f"//{rest.split(';', 1)[1]}").hostname or ""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name: not provably local


def check_bind_allowed(endpoint: str, curve: bool, insecure: bool) -> None:
    """Refuse a clear-text bind outside loopback unless ``insecure``; warn when it is allowed that way."""
    if curve or endpoint_is_local(endpoint):
        return
    if not insecure:
        raise UserError(
            f"refusing to bind {endpoint} without CURVE encryption: pass --curve-secret and --curve-clients "
            "(make keys with `neurofusion keys`), bind 127.0.0.1, or pass --insecure to accept clear text"
        )
    message = f"WARNING: {endpoint} is bound without encryption or authentication (--insecure)"
    warnings.warn(message, InsecureBindWarning, stacklevel=2)
    print(message, file=sys.stderr, flush=True)


def _load_certificate(path: Path, need_secret: bool) -> tuple[bytes, bytes | None]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"key file not found: {path}")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (ValueError, OSError) as error:
        raise UserError(f"not a ZeroMQ certificate: {path} ({error})") from None
    if need_secret and not secret:
        raise UserError(f"{path} holds no secret key (use the .key_secret file)")
    return public, secret


def secure_server(socket: zmq.Socket, keys: CurveServerKeys,
                  authenticator: ThreadAuthenticator | None = None) -> ThreadAuthenticator:
    """Make ``socket`` a CURVE server accepting only the clients whose public keys are in the directory.

    Call before bind. One authenticator serves every socket of a context: pass the one a previous call returned
    to secure another socket. Returns the running authenticator; stop it after closing the sockets.
    """
    clients_dir = Path(keys.authorized_clients_dir)
    if not clients_dir.is_dir():
        raise UserError(f"authorized clients directory not found: {clients_dir}")
    if not any(clients_dir.glob("*.key")):
        raise UserError(f"no client public keys (*.key) in {clients_dir}: nobody could connect")
    public, secret = _load_certificate(keys.secret_key_file, need_secret=True)
    if authenticator is None:
        authenticator = ThreadAuthenticator(socket.context)
        authenticator.start()
        authenticator.configure_curve(domain="*", location=str(clients_dir))
    socket.curve_publickey = public
    socket.curve_secretkey = secret
    socket.curve_server = True
    return authenticator


def secure_client(socket: zmq.Socket, keys: CurveClientKeys) -> None:
    """Make ``socket`` a CURVE client of the server whose public key is given. Call before connect."""
    server_public, _ = _load_certificate(keys.server_public_key_file, need_secret=False)
    public, secret = _load_certificate(keys.secret_key_file, need_secret=True)
    socket.curve_serverkey = server_public
    socket.curve_publickey = public
    socket.curve_secretkey = secret


def make_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write ``name.key`` (public, share it) and ``name.key_secret`` (keep it) into ``directory``."""
    directory = Path(directory)
    if not name or "/" in name or name.startswith("."):
        raise UserError(f"bad key name {name!r}: use a plain name such as 'worker' or 'bed-1'")
    public_file, secret_file = directory / f"{name}.key", directory / f"{name}.key_secret"
    for existing in (public_file, secret_file):
        if existing.exists():
            raise UserError(f"{existing} exists; refusing to overwrite a key")
    directory.mkdir(parents=True, exist_ok=True)
    public_path, secret_path = zmq.auth.create_certificates(directory, name)
    Path(secret_path).chmod(0o600)
    return Path(public_path), Path(secret_path)


# ---------------------------------------------------------------- model control: who may swap, and what


def user_config_dir() -> Path:
    """``$XDG_CONFIG_HOME/neurofusion``, else ``~/.config/neurofusion``."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "neurofusion"


def user_models_dir() -> Path:
    """The user's own models folder, ``~/.neurofusion`` (live-adapted models are kept in its ``patients/``)."""
    return Path.home() / ".neurofusion"


def default_control_token_file() -> Path:
    return user_config_dir() / CONTROL_TOKEN_FILE


def _check_private_file(path: Path) -> None:
    info = path.stat()
    if info.st_uid != os.getuid():
        raise UserError(f"control token {path} belongs to another user: it cannot authenticate you")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise UserError(f"control token {path} is readable by other users: run `chmod 600 {path}` "
                        "(or delete it to make a new one)")


def control_token(path: str | Path | None = None) -> str:
    """The control token in ``path`` (default ``~/.config/neurofusion/control.token``), made on first use.

    A new token is 32 random bytes (URL-safe text) in a file of mode 0600, in a folder made 0700; it appears under
    its name complete or not at all (written aside, then linked), so a worker and a client starting together
    read the same one. A token file another user owns or could read is refused (UserError)."""
    path = Path(path) if path is not None else default_control_token_file()
    try:
        if not path.exists():
            _create_token_file(path)
        _check_private_file(path)
        token = path.read_text().strip()
    except OSError as error:  # an unwritable home, a folder in the way: say where, and how to choose another
        raise UserError(f"cannot use the control token file {path}: {error.strerror or error} "
                        "(pass --control-token FILE, or set XDG_CONFIG_HOME)") from None
    if not token:
        raise UserError(f"control token {path} is empty: delete it to make a new one")
    return token


def _create_token_file(path: Path) -> None:
    folder = path.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, aside = tempfile.mkstemp(dir=folder, prefix=".token.")  # mkstemp: mode 0600
    try:
        with os.fdopen(descriptor, "w") as stream:
            stream.write(secrets.token_urlsafe(32) + "\n")
        os.link(aside, path)  # fails if another process made the file first: then that one is the token
    except FileExistsError:
        pass
    finally:
        os.unlink(aside)


class ControlRefused(Exception):
    """A model-control request the worker will not carry out; ``code`` is the protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ControlPolicy:
    """Who may change the served model (``token``; None: CURVE already authenticated every peer) and from which
    folders a checkpoint may be loaded (``model_dirs``, resolved)."""

    model_dirs: tuple[Path, ...]
    token: str | None

    @classmethod
    def create(cls, extra_dirs: Iterable[str | Path] = (), token: str | None = None) -> ControlPolicy:
        """The bundled weights folder, the user's models folder and ``extra_dirs``."""
        folders = [BUNDLED_MODELS_DIR, user_models_dir(), *(Path(folder).expanduser() for folder in extra_dirs)]
        unique = dict.fromkeys(Path(os.path.realpath(folder)) for folder in folders)
        return cls(tuple(unique), token)

    def check_peer(self, token: str | None, what: str) -> None:
        """ControlRefused unless the request is authenticated."""
        from monitor.inference import protocol

        if self.token is None:
            return  # a CURVE server: only clients whose public keys are authorised got this far
        if token is None or not hmac.compare_digest(token.encode(), self.token.encode()):
            raise ControlRefused(protocol.UNAUTHORIZED, (
                f"{what} refused: {'no' if token is None else 'a wrong'} control token (the worker's user keeps it "
                f"in ~/.config/neurofusion/{CONTROL_TOKEN_FILE}, mode 600; or connect with CURVE keys)"))

    def checkpoint(self, path: str) -> Path:
        """The real path of ``path`` when it lies inside an allowed folder (links followed); else ControlRefused.

        Checked before the file is even looked at, so a peer learns nothing about files outside the folders."""
        from monitor.inference import protocol

        candidate = Path(path)
        if not candidate.is_absolute():
            raise ControlRefused(protocol.MODEL_NOT_ALLOWED, f"checkpoint path {path!r} must be absolute")
        real = Path(os.path.realpath(candidate))
        if not any(real.is_relative_to(folder) for folder in self.model_dirs):
            raise ControlRefused(protocol.MODEL_NOT_ALLOWED, (
                f"{path} is outside the folders this worker loads models from "
                f"({', '.join(str(folder) for folder in self.model_dirs)}); start it with --models-dir to add one"))
        return real
