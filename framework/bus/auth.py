"""CURVE keys and the allow-list that guards hazardous command ports.

A key directory (written by ``pdh keys``) holds::

    service.key / service.key_secret      the command port's keypair (the server)
    <operator>.key / <operator>.key_secret an operator's keypair (the client)
    authorized/<operator>.key             public keys allowed to connect

Files are ZeroMQ certificates (``zmq.auth.create_certificates``): Z85 keys in
a small text format. Secret files are created mode 0600.

:class:`Authenticator` runs the ZAP handler (pyzmq's ThreadAuthenticator) on
the service's context: a client whose public key is not in ``authorized/`` is
refused during the CURVE handshake, before any command of it is read, and the
refusal is queued so the service can publish it as an event. An accepted
client's Z85 public key becomes the ZAP User-Id that the command server hands
to handlers as the client's identity.

The handshake happens once per connection, so a key removed from
``authorized/`` would keep a connection made before. :meth:`AllowList.name_of`
therefore re-reads the list whenever any of its files changed (names, sizes,
modification times, inodes; a few ``stat`` calls), and the services check the
client's key with it on every command: revocation takes effect on the next
command, not the next handshake.

A run has one key directory (the config's ``security.keys_dir``, see
:meth:`framework.config.Config.keys_dir`). :func:`ensure_run_keys` makes what
is missing there at run start: the service keypair (the server side of every
command port), a client keypair per process of the config (named by process
name) and an ``operator`` keypair, each client authorised. Several processes
of one run may start at once, so creation holds an exclusive lock on
``keys_dir/.lock``: they all end up with the same service key. The directory
and ``authorized/`` are mode 0700, secret files 0600.

:func:`server_curve` and :func:`client_curve` read the keys a command port and
a client use; :func:`operator_client` is a tool's client of a run's port.
"""

from __future__ import annotations

import collections
import fcntl
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from framework.bus.commands import CommandClient, CurveClientKeys, CurveServerKeys
from framework.errors import ConfigError

__all__ = ["ZAP_DOMAIN", "SERVICE_NAME", "OPERATOR_NAME", "AUTHORIZED_DIR", "KeyPair", "generate_keypair",
           "load_keypair", "load_public_key", "authorize", "ensure_service_keys", "ensure_run_keys", "server_curve",
           "client_curve", "operator_client", "AllowList", "Authenticator"]

ZAP_DOMAIN = "pdh"
SERVICE_NAME = "service"
OPERATOR_NAME = "operator"
"""The operator's keypair every run makes (``pdh cmd`` and the tools use it unless told another)."""
AUTHORIZED_DIR = "authorized"
_LOCK_FILE = ".lock"


@dataclass(frozen=True)
class KeyPair:
    """A CURVE keypair as Z85 bytes (40 characters each)."""

    public: bytes
    secret: bytes

    @property
    def public_text(self) -> str:
        return self.public.decode("ascii")


def generate_keypair(directory: str | Path, name: str, overwrite: bool = False) -> KeyPair:
    """Write ``name.key`` and ``name.key_secret`` into ``directory``; keep existing ones unless ``overwrite``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    secret_path = d / f"{name}.key_secret"
    if secret_path.exists() and not overwrite:
        return load_keypair(secret_path)
    public_file, secret_file = zmq.auth.create_certificates(str(d), name)
    os.chmod(secret_file, 0o600)
    return load_keypair(secret_file)


def load_keypair(secret_path: str | Path) -> KeyPair:
    """Read a ``.key_secret`` certificate; raise ConfigError if it is missing or holds no secret key."""
    try:
        public, secret = zmq.auth.load_certificate(str(secret_path))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(secret_path), "<file>", "a ZeroMQ secret certificate (pdh keys)", str(exc)) from None
    if not secret:
        raise ConfigError(str(secret_path), "secret-key", "a secret key (is this the .key_secret file?)")
    return KeyPair(public=public, secret=secret)


def load_public_key(path: str | Path) -> bytes:
    """Read a public certificate (``.key``) and return its Z85 public key."""
    try:
        public, _ = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), "<file>", "a ZeroMQ public certificate (pdh keys)", str(exc)) from None
    return public


def authorize(keys_dir: str | Path, public_cert: str | Path, name: str | None = None) -> Path:
    """Copy a client's public certificate into ``keys_dir/authorized``; return its new path."""
    src = Path(public_cert)
    load_public_key(src)  # refuse anything that is not a certificate
    dest_dir = Path(keys_dir) / AUTHORIZED_DIR
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{name or src.stem}.key"
    shutil.copyfile(src, dest)
    return dest


def ensure_service_keys(keys_dir: str | Path) -> KeyPair:
    """The service keypair in ``keys_dir``, created on first use."""
    with _locked(keys_dir):
        return generate_keypair(keys_dir, SERVICE_NAME)


class _locked:
    """An exclusive lock on ``keys_dir/.lock`` (the directory made 0700 first): one creator at a time."""

    def __init__(self, keys_dir: str | Path) -> None:
        self.dir = Path(keys_dir)
        self._fd = -1

    def __enter__(self) -> Path:
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.dir, 0o700)
            self._fd = os.open(self.dir / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(str(self.dir), "<keys_dir>", "a key directory this user can make and write",
                              str(exc)) from None
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self.dir

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def ensure_run_keys(keys_dir: str | Path, clients: Iterable[str]) -> list[str]:
    """Make what is missing in a run's key directory: the service keypair, a keypair for each client name
    (and the operator's), each client authorised. Existing keys and authorisations are kept (a revoked
    client stays revoked only if its keypair is kept too: a missing ``authorized/<name>.key`` whose keypair
    exists is NOT restored). Return the names created now."""
    created: list[str] = []
    with _locked(keys_dir) as d:
        if not (d / f"{SERVICE_NAME}.key_secret").exists():
            generate_keypair(d, SERVICE_NAME)
            created.append(SERVICE_NAME)
        (d / AUTHORIZED_DIR).mkdir(mode=0o700, exist_ok=True)
        for name in dict.fromkeys([*clients, OPERATOR_NAME]):
            if (d / f"{name}.key_secret").exists():
                continue
            generate_keypair(d, name)
            authorize(d, d / f"{name}.key", name)
            created.append(name)
    return created


def server_curve(keys_dir: str | Path) -> CurveServerKeys:
    """The command ports' CURVE keys (the run's service keypair); ConfigError naming a missing file."""
    keys = load_keypair(Path(keys_dir) / f"{SERVICE_NAME}.key_secret")
    return CurveServerKeys(public=keys.public, secret=keys.secret, zap_domain=ZAP_DOMAIN)


def client_curve(keys_dir: str | Path, name: str) -> CurveClientKeys:
    """Client ``name``'s CURVE keys for the run's command ports; ConfigError naming a missing file."""
    d = Path(keys_dir)
    me = load_keypair(d / f"{name}.key_secret")
    return CurveClientKeys(public=me.public, secret=me.secret, server_public=load_public_key(d / f"{SERVICE_NAME}.key"))


def operator_client(zctx: zmq.Context, config: Any, out_dir: str | Path, process: str, role: str = "command",
                    name: str = OPERATOR_NAME, keys_dir: str | Path | None = None) -> CommandClient:
    """A tool's client of a run's command port (``config`` resolved for the run, :meth:`Config.for_run`):
    CURVE with keypair ``name`` from the run's key directory unless the config's ``security.curve`` is off."""
    endpoint = config.reach(process, role)
    if not config.security["curve"]:
        return CommandClient(zctx, endpoint)
    directory = Path(keys_dir) if keys_dir is not None else config.keys_dir(out_dir)
    return CommandClient(zctx, endpoint, client_curve(directory, name))


class AllowList:
    """The public keys in a directory of certificates; re-read when the directory changes.

    :meth:`callback` is pyzmq's CURVE credentials-provider hook (called on the
    authenticator's thread); every refusal is queued for :meth:`drain_refusals`.
    """

    def __init__(self, directory: str | Path, max_queued: int = 1000) -> None:
        self.directory = Path(directory)
        self._keys: dict[bytes, str] = {}
        self._stamp: tuple[Any, ...] | None = None
        self._lock = threading.Lock()
        self._refusals: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_queued)
        self.refused = 0
        self.allowed = 0
        self.reload()

    def _stamp_now(self) -> tuple[Any, ...]:
        """What changes when a key is added, removed or rewritten (in place or by a rename)."""
        try:
            top = self.directory.stat()
            certs = sorted(self.directory.glob("*.key"))
        except OSError:
            return ()
        files = []
        for cert in certs:
            try:
                st = cert.stat()
            except OSError:
                continue
            files.append((cert.name, st.st_ino, st.st_size, st.st_mtime_ns))
        return (top.st_ino, top.st_mtime_ns, tuple(files))

    def reload(self) -> None:
        """Re-read the certificates if any of them (or the directory) changed since the last read."""
        stamp = self._stamp_now()
        if stamp == self._stamp:
            return
        keys: dict[bytes, str] = {}
        if self.directory.is_dir():
            for cert in sorted(self.directory.glob("*.key")):
                try:
                    keys[load_public_key(cert)] = cert.stem
                except ConfigError:
                    continue  # a stray file is not a key; it allows nobody
        with self._lock:
            self._keys, self._stamp = keys, stamp

    def name_of(self, public_z85: str | bytes) -> str | None:
        """The name the key is authorised under now (the list re-read if it changed), or None."""
        key = public_z85.encode("ascii") if isinstance(public_z85, str) else public_z85
        self.reload()
        with self._lock:
            return self._keys.get(key)

    def __len__(self) -> int:
        return len(self._keys)

    def callback(self, domain: str, key: bytes) -> bool:
        if self.name_of(key) is not None:
            self.allowed += 1
            return True
        self.refused += 1
        self._refusals.append({"domain": domain, "client_key": key.decode("ascii", "replace")})
        return False

    def drain_refusals(self) -> list[dict[str, Any]]:
        out = []
        while self._refusals:
            out.append(self._refusals.popleft())
        return out


class Authenticator:
    """The ZAP handler of one context: CURVE clients must be on the allow-list."""

    def __init__(self, ctx: zmq.Context, allow: AllowList, domain: str = ZAP_DOMAIN) -> None:
        self.allow = allow
        self._auth = ThreadAuthenticator(ctx)
        self._auth.start()
        self._auth.configure_curve_callback(domain, credentials_provider=allow)

    def stop(self) -> None:
        self._auth.stop()
