"""Who may talk to an inference socket: loopback by default, CURVE (pyzmq's zmq.auth) for anything else.

A socket bound to a non-loopback address without CURVE is refused unless the user explicitly passes
``--insecure`` (then a warning is printed): patient EMG must not cross a ward network in clear text by accident.
"""

from __future__ import annotations

import ipaddress
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from monitor.errors import UserError

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


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
