"""Load and validate a lunar-pdh configuration file.

One YAML file names every endpoint and every process (``configs/demo.yaml``).
It is validated completely at start: the first wrong, missing or unknown key
raises :class:`~framework.errors.ConfigError` naming the file, the key and what was
expected, before any process starts.

Schema of a file::

    version: 1
    hosts: {name: address}                 # optional; left out: one host, "local"
    endpoints: {name: "tcp://HOST:PORT" | "udp://HOST:PORT" | "ipc://NAME" | "ipc:///path"}
    bus: {sndhwm: int, rcvhwm: int}
    security: {keys_dir: keys, curve: true, delegates: [ingest, sequencer]}   # optional; these defaults
    processes:
      <name>: {kind: <kind>, host: <host name>, endpoints: {<role>: <endpoint name>}, ...kind's keys}

Each kind declares its endpoint roles, which of them it binds, and its keys as
data in :mod:`framework.kinds`. Where the processes run is checked here too: a
process binds only its own host's address or ``*`` (every interface), and never
connects to ``*`` (there is nothing to connect to: name the host's address in
another endpoint). The default configs and profiles ship inside the
distribution as the package ``configs`` (:func:`config_dir`).

``ipc://NAME`` (a plain name, no slash) is a socket in the run's private ipc
directory: :meth:`Config.for_run` resolves it once the run's output directory
is known, creating that directory mode 0700 (``OUT/ipc``, or under
``$XDG_RUNTIME_DIR`` when that path would not fit a Unix socket address), so
only the service user can connect to the bus and the internal ports. Such an
endpoint is host-local: processes on two hosts cannot share it.

``security`` is the run's one key directory and whether every command port
takes only CURVE clients whose keys are authorised there (``curve: false`` only
in tests that say so); ``keys_dir`` is relative to the run's output directory
unless absolute (:meth:`Config.keys_dir`). ``delegates`` are the clients (by
key name) whose requests may name the operator they speak for (the ground's
command ingest, the stored-command sequencer). A deploy driver's old
``keys_dir`` key, when given, names the run's key directory instead (relative
to the working directory, as it always was); giving both is refused, so a run
has one key directory.

A config that passes can start: every value is in the range its process runs
with (floats finite, windows ordered, policies complete, directories not files,
ports 1..65535, each bound address bound by one process). What depends on the
machine is checked for the processes that start on this one: with no
``hosts:`` that is every process, so each address a process binds must be one
this machine has (any ``127.x.x.x`` on Linux; others by a bind probe). With
``hosts:`` the machine is named (``here=``, or :meth:`Config.processes_on` when
a tool starts one host's processes), since each host of a multi-machine config
has only its own address.
"""

from __future__ import annotations

import copy
import importlib.resources
import ipaddress
import math
import os
import re
import hashlib
import socket
import stat
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from framework.kinds import KINDS, REQUIRED, Field
from framework.errors import ConfigError

__all__ = ["Config", "load_config", "validate_config", "check_mapping", "parse_endpoint", "free_loopback_ports",
           "config_dir", "find_config", "address_is_here", "LOCAL_HOST", "ALL_INTERFACES", "EVERY_HOST"]

_ENDPOINT_RE = re.compile(r"^(tcp|udp)://(127\.0\.0\.1|localhost|\*|[\w.-]+):(\d{1,5})\Z|^ipc://.+\Z")
_IPC_RELATIVE_RE = re.compile(r"^ipc://([A-Za-z0-9][A-Za-z0-9_.-]{0,31})\Z")
_SUN_PATH_MAX = 107  # bytes of a Unix socket path (sockaddr_un.sun_path less its NUL)
IPC_DIR = "ipc"
"""The run's private socket directory, under its output directory (:func:`ipc_directory`)."""
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")  # also a log file's and a shm ring's name: kept short
_HOST_ADDRESS_RE = re.compile(r"^[\w.-]+\Z")
_TOP_KEYS = ("version", "hosts", "endpoints", "bus", "security", "processes")
SECURITY_KEYS: dict[str, Field] = {
    "keys_dir": Field(str, "keys", path="dir", relative_to="out", min_len=1,
                      doc="the run's CURVE keys (service, one per process, operator) and authorized/"),
    "curve": Field(bool, True, doc="every command port takes only CURVE clients with an authorised key"),
    "delegates": Field(list, ["ingest", "sequencer"], item=Field(str, pattern=r"[a-z][a-z0-9_]{0,63}"),
                       unique=True, doc="clients (key names) whose requests may name the operator they act for"),
}
"""The top-level ``security`` section: one key directory per run."""
_LEGACY_KEYS_DIR = "keys_dir"  # a deploy driver's own key directory, before the run had one

LOCAL_HOST = "local"
"""The one host of a config that declares no ``hosts:``; its address is not checked."""
ALL_INTERFACES = "0.0.0.0"
"""What ``*`` in an endpoint means to a socket that binds it."""
EVERY_HOST = "*"
"""``here=EVERY_HOST``: every host of the config starts on this machine (``pdh demo``, ``pdh run`` without
``--host``)."""


@dataclass(frozen=True)
class Config:
    """A validated configuration: endpoints resolved, defaults filled in."""

    file: str
    endpoints: dict[str, str]
    bus: dict[str, Any]
    processes: dict[str, dict[str, Any]]
    raw: dict[str, Any] = field(repr=False)
    hosts: dict[str, str | None] = field(default_factory=lambda: {LOCAL_HOST: None})
    ipc_dir: Path | None = None
    security: dict[str, Any] = field(default_factory=lambda: {"keys_dir": "keys", "curve": True,
                                                               "delegates": ["ingest", "sequencer"]})

    def keys_dir(self, out_dir: str | Path) -> Path:
        """The run's key directory: ``security.keys_dir``, relative to the run's output directory unless
        absolute (every process and tool of a run finds the same one)."""
        path = Path(self.security["keys_dir"])
        return path if path.is_absolute() else Path(out_dir) / path

    def endpoint(self, process: str, role: str) -> str:
        """The address a process uses for one of its endpoint roles (``ipc://NAME`` as written until
        :meth:`for_run` resolved it)."""
        return self.endpoints[self.processes[process]["endpoints"][role]]

    def for_run(self, out_dir: str | Path) -> "Config":
        """This config for the run whose output directory is ``out_dir``: every ``ipc://NAME`` endpoint
        becomes a socket in the run's private ipc directory (:func:`ipc_directory`, created 0700 and
        checked to be this user's alone). Every process of a run and every tool that reaches it resolve
        the same names to the same sockets. A config without such endpoints comes back unchanged."""
        names = {n: m.group(1) for n, a in self.endpoints.items() if (m := _IPC_RELATIVE_RE.match(a))}
        if not names:
            return self
        directory = ipc_directory(out_dir, max(len(v) for v in names.values()))
        endpoints = {n: f"ipc://{directory / names[n]}" if n in names else a for n, a in self.endpoints.items()}
        return replace(self, endpoints=endpoints, ipc_dir=directory)

    def process_names(self) -> list[str]:
        return list(self.processes)

    def processes_of_kind(self, kind: str) -> list[str]:
        return [n for n, p in self.processes.items() if p["kind"] == kind]

    def processes_on(self, host: str) -> list[str]:
        """The processes that run on ``host``, which the tools start on this machine (``pdh run --host``,
        the supervisor): an unknown host, or one whose processes bind an address this machine does not
        have, is a ConfigError naming the known hosts or the key."""
        if host not in self.hosts:
            raise ConfigError(self.file, "hosts", f"a host named '{host}', one of {sorted(self.hosts)}", host)
        self.check_here(host)
        return [n for n, p in self.processes.items() if p["host"] == host]

    def check_here(self, host: str = EVERY_HOST) -> None:
        """ConfigError unless every address the processes of ``host`` (default: of every host) bind is one
        this machine has: called where a tool is about to start them here."""
        hosts = set(self.hosts) if host == EVERY_HOST else {host}
        _check_binds_here(self.file, self.processes, self.endpoints, self.hosts, hosts)

    def busy_ports(self, host: str = EVERY_HOST) -> list[str]:
        """The tcp/udp addresses the processes of ``host`` (default: of every host) bind that something on
        this machine holds now, each said with its endpoint and process: checked before a run starts, so a
        second run names the busy port instead of crash-looping on "Address already in use"."""
        hosts = set(self.hosts) if host == EVERY_HOST else {host}
        busy: list[str] = []
        for pname, role, ref in _bound(self.processes):
            address = self.endpoints[ref]
            if self.processes[pname]["host"] not in hosts or address.startswith("ipc://"):
                continue
            reason = _bind_refused(address)
            if reason:
                busy.append(f"{address} (endpoints.{ref}, bound by {pname} as {role}) is in use: {reason}")
        return busy

    def binder(self, endpoint: str) -> str | None:
        """The process that binds the named endpoint (its kind lists the role in ``binds``), if any."""
        for name, p in self.processes.items():
            spec = KINDS[p["kind"]]
            if any(ref == endpoint and role in spec.binds for role, ref in p["endpoints"].items()):
                return name
        return None

    def reach(self, process: str, role: str) -> str:
        """The address a client elsewhere (a tool, an operator) connects to for a process's endpoint:
        as configured, with ``*`` (bound on every interface) replaced by the address of the process's host."""
        address = self.endpoint(process, role)
        if _IPC_RELATIVE_RE.match(address):
            raise ConfigError(self.file, f"processes.{process}.endpoints.{role}",
                              "the run's output directory (its private ipc directory holds this socket: "
                              "give the run's --out)", address)
        if address.startswith("ipc://"):
            return address
        scheme, host, port = _split(address)
        if host != "*":
            return address
        host_address = self.hosts.get(self.processes[process]["host"])
        if host_address is None:
            raise ConfigError(self.file, f"processes.{process}.endpoints.{role}",
                              f"an address to connect to (the host '{self.processes[process]['host']}' "
                              "has no address in hosts:)", address)
        return f"{scheme}://{host_address}:{port}"


def ipc_directory(out_dir: str | Path, longest_name: int = 32) -> Path:
    """The run's private socket directory, created mode 0700 if missing: ``OUT/ipc``, or, when a socket
    path there would not fit a Unix socket address, ``lunar-pdh-<uid>-<digest of OUT>`` under
    ``$XDG_RUNTIME_DIR`` (else the temp directory). Either way the same for every process and tool of
    the run. ConfigError if it exists but is not a directory this user alone owns and can enter (it may
    have been made by someone else to listen in)."""
    out = Path(os.path.abspath(out_dir))
    directory = out / IPC_DIR
    if len(os.fsencode(directory)) + 1 + longest_name > _SUN_PATH_MAX:
        base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
        digest = hashlib.sha256(os.fsencode(out)).hexdigest()[:16]
        directory = base / f"lunar-pdh-{os.geteuid()}-{digest}"
    _private_dir(directory)
    return directory


def _private_dir(directory: Path) -> None:
    """Make ``directory`` (0700) or check that the one there is this user's alone (then 0700)."""
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        directory.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(directory)
    except OSError as exc:
        raise ConfigError(str(directory), "<ipc directory>", "a directory this user can create", str(exc)) from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise ConfigError(str(directory), "<ipc directory>", "a directory of this user (not a link, not another "
                          "user's)", f"owner uid {st.st_uid}, mode {stat.filemode(st.st_mode)}")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(directory, 0o700)


def _split(address: str) -> tuple[str, str, int]:
    """``udp://host:port`` -> ``("udp", host, port)``, the host as written."""
    scheme, rest = address.split("://", 1)
    host, port = rest.rsplit(":", 1)
    return scheme, host, int(port)


def parse_endpoint(address: str) -> tuple[str, str, int]:
    """Split ``udp://host:port`` into ``("udp", host, port)``, the host as sockets take it: ``*``
    (every interface, for a socket that binds) is ``0.0.0.0``. The config never lets a connecting
    role name ``*``, so a connecting caller never sees it."""
    scheme, host, port = _split(address)
    return scheme, ALL_INTERFACES if host == "*" else host, port


def _on_this_machine(host: str) -> bool:
    return host in ("localhost", "*") or host.startswith("127.")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def address_is_here(host: str) -> bool:
    """Whether a socket on this machine can bind ``host``: ``*``, ``localhost``, every ``127.x.x.x``
    (the loopback on Linux), an interface name (ZeroMQ binds ``tcp://eth0:port``), else a bind probe."""
    if host in ("*", "localhost") or _is_loopback(host):
        return True
    try:
        if host in {name for _, name in socket.if_nameindex()}:
            return True
    except OSError:
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
        return True
    except OSError:  # EADDRNOTAVAIL, or a name that does not resolve
        return False


def _bind_refused(address: str) -> str:
    """'' if a socket could bind ``address`` now, else why not. TCP probes with SO_REUSEADDR as ZeroMQ
    binds (a port left in TIME_WAIT is free to it; one with a listener is not)."""
    scheme, host, port = parse_endpoint(address)
    kind = socket.SOCK_STREAM if scheme == "tcp" else socket.SOCK_DGRAM
    try:
        family = socket.getaddrinfo(host, port, type=kind)[0][0]
        with socket.socket(family, kind) as probe:
            if kind == socket.SOCK_STREAM:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        return exc.strerror or str(exc)
    return ""


def free_loopback_ports(endpoints: dict[str, str]) -> dict[str, str]:
    """Every tcp/udp endpoint on this machine (``127.x.x.x``, ``localhost`` or ``*``) moved to a port
    that is free now, same scheme and host.

    Endpoints that shared a scheme and port share the new one too (one bound at ``*``, reached at a
    host's address); port 0 always gets a port of its own. Every probe socket stays bound until all
    ports are chosen, so no two endpoints get the same port by accident."""
    out = {}
    groups: dict[tuple[str, int], set[str]] = {}
    for addr in endpoints.values():
        if isinstance(addr, str) and "://" in addr and not addr.startswith("ipc://"):
            scheme, host, port = _split(addr)
            groups.setdefault((scheme, port), set()).add(host)
    chosen: dict[tuple[str, int], int] = {}
    held: list[socket.socket] = []
    try:
        for name, addr in endpoints.items():
            if not isinstance(addr, str) or addr.startswith("ipc://") or "://" not in addr:
                out[name] = addr
                continue
            scheme, host, port = _split(addr)
            if not _on_this_machine(host):
                out[name] = addr
                continue
            key = (scheme, port)
            if port == 0 or key not in chosen:
                hosts = groups[key]
                probe_host = ALL_INTERFACES if "*" in hosts or len(hosts) > 1 else parse_endpoint(addr)[1]
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if scheme == "udp" else socket.SOCK_STREAM)
                held.append(s)
                s.bind(("127.0.0.1" if probe_host == "localhost" else probe_host, 0))
                chosen[key] = s.getsockname()[1]
            out[name] = f"{scheme}://{host}:{chosen[key]}"
    finally:
        for s in held:
            s.close()
    return out


def config_dir() -> Path:
    """The ``configs/`` folder shipped with the distribution (the package ``configs``): the default
    configs, camera and mechanism profiles, relays and scenarios, found the same way in a source
    tree, an editable install and an installed wheel."""
    return Path(str(importlib.resources.files("configs")))


def find_config(ref: str | Path) -> Path:
    """A config file: ``ref`` as a path if it exists, else the config of that name shipped in
    :func:`config_dir` (``demo``, ``multihost.yaml`` or ``configs/multihost.yaml`` all name one),
    so ``pdh demo --config configs/multihost.yaml`` works from any directory. A ref that is neither
    is returned unchanged, for :func:`load_config` to name in its error."""
    path = Path(ref)
    if path.exists():
        return path
    parts = path.parts[1:] if path.parts[:1] == ("configs",) else path.parts
    if parts and not path.is_absolute():
        shipped = config_dir().joinpath(*parts)
        for candidate in (shipped, shipped.with_name(shipped.name + ".yaml")):
            if candidate.is_file():
                return candidate
    return path


def load_config(path: str | Path, here: str | None = None, out_dir: str | Path | None = None) -> Config:
    """Read a YAML config file and validate it (``here``, ``out_dir``: as :func:`validate_config`);
    raise ConfigError on the first fault."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(file, "<file>", "a readable YAML file", str(exc)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(file, "<file>", "valid YAML", str(exc).replace("\n", " ")) from None
    return validate_config(data, file, here=here, out_dir=out_dir)


def _type_name(t: type | tuple[type, ...]) -> str:
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    return t.__name__


def _check_value(file: str, key: str, spec: Field, value: Any, out_dir: Path | None = None) -> Any:
    t = spec.type
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and t is not bool:
        raise ConfigError(file, key, _type_name(t), value)
    if not isinstance(value, t):
        raise ConfigError(file, key, _type_name(t), value)
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError(file, key, "a number (not NaN)", value)
    if isinstance(value, float) and spec.finite and math.isinf(value):
        raise ConfigError(file, key, "a finite number", value)
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(file, key, f"one of {list(spec.choices)}", value)
    if spec.min is not None and value < spec.min:
        raise ConfigError(file, key, f"a value >= {spec.min}", value)
    if spec.max is not None and value > spec.max:
        raise ConfigError(file, key, f"a value <= {spec.max}", value)
    _check_size(file, key, spec, value)
    if spec.item is not None:
        value = [_check_value(file, f"{key}[{i}]", spec.item, v, out_dir) for i, v in enumerate(value)]
    if spec.unique:
        twice = [v for i, v in enumerate(value) if v in value[:i]]
        if twice:
            raise ConfigError(file, key, "no item twice", twice[0])
    if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
        raise ConfigError(file, key, f"a string matching {spec.pattern}", value)
    if spec.keys is not None:
        value = check_mapping(file, key, spec.keys, value, out_dir)
    if spec.path is not None:
        _check_path(file, key, spec, value, out_dir)
    if spec.check is not None:
        spec.check(file, key, value)
    return value


def _check_size(file: str, key: str, spec: Field, value: Any) -> None:
    """``min_len``/``max_len`` of a list, mapping or string (an empty priority list is no policy)."""
    what = "characters" if isinstance(value, str) else "items"
    if spec.min_len is not None and len(value) < spec.min_len:
        raise ConfigError(file, key, f"at least {spec.min_len} {what}", value)
    if spec.max_len is not None and len(value) > spec.max_len:
        raise ConfigError(file, key, f"at most {spec.max_len} {what}", value)


def _check_path(file: str, key: str, spec: Field, value: str, out_dir: Path | None) -> None:
    """A ``path="dir"`` key names a directory the process can make or use, a ``path="file"`` key a file
    it can write: not the other kind, under a writable directory. A relative path is checked where its
    base is known (the working directory; the output directory when the caller gives it)."""
    if "\0" in value:
        raise ConfigError(file, key, "a path without NUL characters", value)
    if not value:  # the process's own default place
        return
    path = Path(value)
    if not path.is_absolute():
        base = {"cwd": Path.cwd(), "out": out_dir}.get(spec.relative_to or "")
        if base is None:
            return
        path = Path(base) / path
    kind = "a directory" if spec.path == "dir" else "a file"
    try:
        existing = path
        while not os.path.lexists(existing):
            existing = existing.parent
        if existing == path and path.exists():
            if (spec.path == "dir") != path.is_dir():
                other = "a directory" if path.is_dir() else "a file"
                raise ConfigError(file, key, f"{kind} ({path} is {other})", value)
            if not os.access(path, os.W_OK | (os.X_OK if spec.path == "dir" else 0)):
                raise ConfigError(file, key, f"{kind} this user can write ({path} is not writable)", value)
            return
        if not existing.is_dir():
            raise ConfigError(file, key, f"{kind} under a directory ({existing} is not a directory)", value)
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(file, key, f"{kind} this user can make ({existing} is not writable)", value)
    except OSError as exc:
        raise ConfigError(file, key, f"{kind} this user can reach", f"{value}: {exc.strerror}") from None


def check_mapping(file: str, prefix: str, specs: dict[str, Field], data: Any,
                  out_dir: Path | None = None) -> dict[str, Any]:
    """``data`` checked against ``specs`` (unknown keys refused, defaults filled in); ``out_dir``, when
    known, lets relative output paths be checked too."""
    if not isinstance(data, dict):
        raise ConfigError(file, prefix, "a mapping", data)
    out: dict[str, Any] = {}
    for k in data:
        if k not in specs:
            raise ConfigError(file, f"{prefix}.{k}", f"one of the known keys {sorted(specs)}", "unknown key")
    for k, spec in specs.items():
        key = f"{prefix}.{k}"
        if k not in data:
            if spec.default is REQUIRED:
                raise ConfigError(file, key, f"a {_type_name(spec.type)} (required, missing)")
            out[k] = copy.deepcopy(spec.default)
            if spec.keys is not None:  # fill the nested defaults too
                out[k] = check_mapping(file, key, spec.keys, out[k], out_dir)
            if spec.path is not None and isinstance(out[k], str):  # a default path can meet a file too
                _check_path(file, key, spec, out[k], out_dir)
            continue
        out[k] = _check_value(file, key, spec, data[k], out_dir)
    return out


def validate_config(data: Any, file: str = "<config>", here: str | None = None,
                    out_dir: str | Path | None = None) -> Config:
    """Validate a parsed config mapping; see the module docstring for the schema.

    ``here`` names the host whose processes start on this machine (:data:`EVERY_HOST`: all of them):
    their bound addresses must be this machine's. Left out, that is every process of a config without
    ``hosts:`` and none of one with (each host's machine checks its own, see :meth:`Config.check_here`).
    ``out_dir``, when known, is where relative output paths (``store_dir``, ...) are checked."""
    if not isinstance(data, dict):
        raise ConfigError(file, "<top>", "a mapping with version, endpoints, bus, processes", data)
    for k in data:
        if k not in _TOP_KEYS:
            raise ConfigError(file, k, f"one of {', '.join(_TOP_KEYS)}", "unknown key")
    if data.get("version") != 1:
        raise ConfigError(file, "version", "1", data.get("version"))
    hosts = _check_hosts(file, data.get("hosts"))

    endpoints = data.get("endpoints")
    if not isinstance(endpoints, dict) or not endpoints:
        raise ConfigError(file, "endpoints", "a non-empty mapping of name to address", endpoints)
    for name, addr in endpoints.items():
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigError(file, f"endpoints.{name}", "a lower_snake_case name", name)
        if not isinstance(addr, str) or not _ENDPOINT_RE.match(addr):
            raise ConfigError(
                file, f"endpoints.{name}", "an address like tcp://127.0.0.1:5550, udp://127.0.0.1:5560 or ipc:///path", addr
            )
        if addr.startswith("ipc://") and not addr.startswith("ipc:///") and not _IPC_RELATIVE_RE.match(addr):
            raise ConfigError(file, f"endpoints.{name}", "ipc://NAME (a plain name of up to 32 characters: a "
                              "socket in the run's private ipc directory) or ipc:///absolute/path", addr)
        if not addr.startswith("ipc://") and not 1 <= _split(addr)[2] <= 65535:
            raise ConfigError(file, f"endpoints.{name}", "a port in 1..65535", addr)
    seen: dict[str, str] = {}
    for name, addr in endpoints.items():
        if addr in seen:
            raise ConfigError(file, f"endpoints.{name}", f"an address not already used by endpoints.{seen[addr]}", addr)
        seen[addr] = name

    bus = check_mapping(
        file,
        "bus",
        {
            "sndhwm": Field(int, 1000, min=1),
            "rcvhwm": Field(int, 1000, min=1),
        },
        data.get("bus", {}),
    )

    procs = data.get("processes")
    if not isinstance(procs, dict) or not procs:
        raise ConfigError(file, "processes", "a non-empty mapping of process name to settings", procs)
    processes: dict[str, dict[str, Any]] = {}
    left_out: dict[str, set[str]] = {}
    for pname, pdata in procs.items():
        prefix = f"processes.{pname}"
        if not isinstance(pname, str) or not _NAME_RE.match(pname):
            raise ConfigError(file, prefix, "a lower_snake_case process name", pname)
        if not isinstance(pdata, dict):
            raise ConfigError(file, prefix, "a mapping", pdata)
        kind = pdata.get("kind")
        if kind not in KINDS:
            raise ConfigError(file, f"{prefix}.kind", f"one of {sorted(KINDS)}", kind)
        spec = KINDS[kind]
        eps = pdata.get("endpoints")
        if not isinstance(eps, dict):
            raise ConfigError(file, f"{prefix}.endpoints", f"a mapping of the roles {list(spec.endpoints)}", eps)
        for role in eps:
            if role not in spec.endpoints:
                raise ConfigError(file, f"{prefix}.endpoints.{role}", f"one of the roles {list(spec.endpoints)}", "unknown role")
        for role, declared in spec.endpoints.items():
            scheme, optional = declared.rstrip("?"), declared.endswith("?")
            if role not in eps:
                if optional:
                    continue
                raise ConfigError(file, f"{prefix}.endpoints.{role}", f"the name of a {scheme} endpoint (required, missing)")
            ref = eps[role]
            if ref not in endpoints:
                raise ConfigError(file, f"{prefix}.endpoints.{role}", f"one of the endpoints {sorted(endpoints)}", ref)
            if endpoints[ref].split("://", 1)[0] not in scheme.split("|"):
                raise ConfigError(file, f"{prefix}.endpoints.{role}", f"a {scheme.replace('|', ' or ')} endpoint",
                                  endpoints[ref])
        host = pdata.get("host", next(iter(hosts)) if len(hosts) == 1 else None)  # one host: it
        if not isinstance(host, str) or host not in hosts:
            raise ConfigError(file, f"{prefix}.host", f"one of the hosts {sorted(hosts)}",
                              "missing" if host is None else host)
        rest = {k: v for k, v in pdata.items() if k not in ("kind", "host", "endpoints")}
        left_out[pname] = {k for k, f in spec.keys.items() if f.derive is not None and k not in rest}
        checked = check_mapping(file, prefix, spec.keys, rest, None if out_dir is None else Path(out_dir))
        checked["kind"] = kind
        checked["host"] = host
        checked["endpoints"] = dict(eps)
        processes[pname] = checked
    for pname, keys in left_out.items():  # wiring from the other processes, once all are checked
        for key in keys:
            derive = KINDS[processes[pname]["kind"]].keys[key].derive
            assert derive is not None
            processes[pname][key] = derive(pname, processes)
    for pname, checked in processes.items():
        _check_kind(file, pname, checked)
        _check_endpoint_refs(file, pname, checked, endpoints)
        _check_placement(file, pname, checked, endpoints, hosts)
    _check_bound_once(file, processes, endpoints)
    _check_ipc_hosts(file, processes, endpoints)
    security = _check_security(file, data.get("security"), processes, None if out_dir is None else Path(out_dir))
    if here is not None and here != EVERY_HOST and here not in hosts:
        raise ConfigError(file, "hosts", f"a host named '{here}', one of {sorted(hosts)}", here)
    here_hosts = set(hosts) if here == EVERY_HOST else {here} if here else set(hosts) & {LOCAL_HOST}
    _check_binds_here(file, processes, endpoints, hosts, here_hosts)
    return Config(file=file, endpoints=dict(endpoints), bus=bus, processes=processes, raw=data, hosts=hosts,
                  security=security)


def _check_security(file: str, data: Any, processes: dict[str, dict[str, Any]],
                    out_dir: Path | None) -> dict[str, Any]:
    """The ``security`` section, defaults filled in. A deploy driver's old ``keys_dir`` (relative to the
    working directory) names the run's key directory when the section does not; two different ones, or
    one beside ``security.keys_dir``, are refused: a run has one key directory."""
    given = {} if data is None else data
    security = check_mapping(file, "security", SECURITY_KEYS, given, out_dir)
    legacy = {pname: str(Path(p[_LEGACY_KEYS_DIR]).absolute()) for pname, p in processes.items()
              if p["kind"] == "drivers.deploy" and p.get(_LEGACY_KEYS_DIR)}
    if not legacy:
        return security
    first, path = next(iter(legacy.items()))
    if isinstance(given, dict) and "keys_dir" in given:
        raise ConfigError(file, f"processes.{first}.{_LEGACY_KEYS_DIR}", "no key directory of its own beside "
                          "security.keys_dir (one key directory per run: leave this key out)", path)
    for pname, other in legacy.items():
        if other != path:
            raise ConfigError(file, f"processes.{pname}.{_LEGACY_KEYS_DIR}", f"the key directory of "
                              f"processes.{first} ({path}): one key directory per run", other)
    return {**security, "keys_dir": path}


def _check_hosts(file: str, data: Any) -> dict[str, str | None]:
    """``hosts:`` (name -> address of that machine); left out, the config is one host, ``local``."""
    if data is None:
        return {LOCAL_HOST: None}
    if not isinstance(data, dict) or not data:
        raise ConfigError(file, "hosts", "a non-empty mapping of host name to its address", data)
    for name, address in data.items():
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigError(file, f"hosts.{name}", "a lower_snake_case host name", name)
        if not isinstance(address, str) or address == "*" or not _HOST_ADDRESS_RE.match(address):
            raise ConfigError(file, f"hosts.{name}", "the host's address, like 127.0.0.2 or lander.local", address)
    return dict(data)


def _check_kind(file: str, pname: str, checked: dict[str, Any]) -> None:
    """The kind's own check across its keys; a key of this file it names gets the process's prefix."""
    check = KINDS[checked["kind"]].check
    if check is None:
        return
    try:
        check(file, checked)
    except ConfigError as exc:
        if exc.file != file or exc.key.startswith("processes."):
            raise
        raise ConfigError(file, f"processes.{pname}.{exc.key}", exc.expected, exc.got) from None


def _check_endpoint_refs(file: str, pname: str, checked: dict[str, Any], endpoints: dict[str, str]) -> None:
    """Keys that name endpoints (``endpoint_refs``) name configured endpoints of their scheme."""
    for key, fspec in KINDS[checked["kind"]].keys.items():
        if not fspec.endpoint_refs:
            continue
        for sub, ref in checked[key].items():
            where = f"processes.{pname}.{key}.{sub}"
            if ref not in endpoints:
                raise ConfigError(file, where, f"one of the endpoints {sorted(endpoints)}", ref)
            if not endpoints[ref].startswith(tuple(f"{s}://" for s in fspec.endpoint_refs.split("|"))):
                raise ConfigError(file, where, f"a {fspec.endpoint_refs} endpoint", endpoints[ref])


def _same_host(a: str, b: str) -> bool:
    def norm(h: str) -> str:
        return "127.0.0.1" if h == "localhost" else h

    return norm(a) == norm(b)


def _check_placement(file: str, pname: str, checked: dict[str, Any], endpoints: dict[str, str],
                     hosts: dict[str, str | None]) -> None:
    """A process binds only its own host's address or ``*``; it never connects to ``*``."""
    spec = KINDS[checked["kind"]]
    host = checked["host"]
    own = hosts[host]
    uses = [(f"endpoints.{role}", ref, role in spec.binds) for role, ref in checked["endpoints"].items()]
    uses += [(f"{key}.{sub}", ref, False) for key, f in spec.keys.items() if f.endpoint_refs
             for sub, ref in checked[key].items()]
    for where, ref, binds in uses:
        address = endpoints[ref]
        if address.startswith("ipc://"):
            continue
        _, ep_host, _ = _split(address)
        if binds and own is not None and ep_host != "*" and not _same_host(ep_host, own):
            raise ConfigError(file, f"processes.{pname}.{where}",
                              f"an address of host '{host}' ({own}) or * to bind ({pname} binds {ref})", address)
        if not binds and ep_host == "*":
            raise ConfigError(file, f"processes.{pname}.{where}",
                              f"an address to connect to, not * ({pname} connects to {ref}; * is for the side "
                              "that binds: name the host's address in another endpoint)", address)


def _check_ipc_hosts(file: str, processes: dict[str, dict[str, Any]], endpoints: dict[str, str]) -> None:
    """An ipc endpoint is a file on one machine: every process that uses it runs on the same host."""
    first: dict[str, tuple[str, str]] = {}
    for pname, checked in processes.items():
        spec = KINDS[checked["kind"]]
        uses = [(f"endpoints.{role}", ref) for role, ref in checked["endpoints"].items()]
        uses += [(f"{key}.{sub}", ref) for key, f in spec.keys.items() if f.endpoint_refs
                 for sub, ref in checked[key].items()]
        for where, ref in uses:
            if not endpoints[ref].startswith("ipc://"):
                continue
            other, host = first.setdefault(ref, (pname, checked["host"])), checked["host"]
            if other[1] != host:
                raise ConfigError(file, f"processes.{pname}.{where}",
                                  f"an endpoint on host '{host}' ({ref} is ipc, a socket file on host '{other[1]}' "
                                  f"where {other[0]} uses it; across hosts use tcp)", endpoints[ref])


def _bound(processes: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(process, role, endpoint name) of every endpoint a process binds."""
    return [(pname, role, ref) for pname, p in processes.items() for role, ref in p["endpoints"].items()
            if role in KINDS[p["kind"]].binds]


def _check_bound_once(file: str, processes: dict[str, dict[str, Any]], endpoints: dict[str, str]) -> None:
    """Each address is bound by one socket: not one endpoint bound twice, nor two endpoints on one port
    where both name the same host or one binds ``*`` (the second bind would fail, again and again)."""
    seen: list[tuple[str, str]] = []
    for pname, role, ref in _bound(processes):
        address = endpoints[ref]
        for owner, other in seen:
            if _same_socket(address, other):
                raise ConfigError(file, f"processes.{pname}.endpoints.{role}",
                                  f"an address no other socket binds ({owner} binds {other})", address)
        seen.append((f"{pname}.endpoints.{role}", address))


def _same_socket(a: str, b: str) -> bool:
    if a == b:
        return True
    if a.startswith("ipc://") or b.startswith("ipc://"):
        return False
    (sa, ha, pa), (sb, hb, pb) = _split(a), _split(b)
    wild = {"*", ALL_INTERFACES}
    return sa == sb and pa == pb and (_same_host(ha, hb) or ha in wild or hb in wild)


def _check_binds_here(file: str, processes: dict[str, dict[str, Any]], endpoints: dict[str, str],
                      hosts: dict[str, str | None], here: set[str]) -> None:
    """Every tcp/udp address a process of a host in ``here`` binds is one this machine has."""
    for pname, role, ref in _bound(processes):
        if processes[pname]["host"] not in here or endpoints[ref].startswith("ipc://"):
            continue
        _, address, _ = _split(endpoints[ref])
        if not address_is_here(address):
            host = processes[pname]["host"]
            raise ConfigError(file, f"processes.{pname}.endpoints.{role}",
                              f"an address this machine has, or * ({pname} binds {ref} here; host "
                              f"'{host}' is {hosts.get(host) or 'this machine'})", endpoints[ref])
