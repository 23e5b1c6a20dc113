"""Load and validate a lunar-pdh configuration file.

One YAML file names every endpoint and every process (``configs/demo.yaml``).
It is validated completely at start: the first wrong, missing or unknown key
raises :class:`~framework.errors.ConfigError` naming the file, the key and what was
expected, before any process starts.

Schema of a file::

    version: 1
    endpoints: {name: "tcp://127.0.0.1:PORT" | "udp://127.0.0.1:PORT" | "ipc:///path"}
    bus: {sndhwm: int, rcvhwm: int}
    processes:
      <name>: {kind: <kind>, endpoints: {<role>: <endpoint name>}, ...kind's keys}

Each kind declares its endpoint roles and keys as data in :mod:`framework.kinds`.
"""

from __future__ import annotations

import copy
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from framework.kinds import KINDS, REQUIRED, Field
from framework.errors import ConfigError

__all__ = ["Config", "load_config", "validate_config", "check_mapping", "parse_endpoint", "free_loopback_ports"]

_ENDPOINT_RE = re.compile(r"^(tcp|udp)://(127\.0\.0\.1|localhost|\*|[\w.-]+):(\d{1,5})$|^ipc://.+$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Config:
    """A validated configuration: endpoints resolved, defaults filled in."""

    file: str
    endpoints: dict[str, str]
    bus: dict[str, Any]
    processes: dict[str, dict[str, Any]]
    raw: dict[str, Any] = field(repr=False)

    def endpoint(self, process: str, role: str) -> str:
        """The address a process uses for one of its endpoint roles."""
        return self.endpoints[self.processes[process]["endpoints"][role]]

    def process_names(self) -> list[str]:
        return list(self.processes)

    def processes_of_kind(self, kind: str) -> list[str]:
        return [n for n, p in self.processes.items() if p["kind"] == kind]


def parse_endpoint(address: str) -> tuple[str, str, int]:
    """Split ``udp://host:port`` into ``("udp", host, port)``."""
    scheme, rest = address.split("://", 1)
    host, port = rest.rsplit(":", 1)
    return scheme, host, int(port)


def free_loopback_ports(endpoints: dict[str, str]) -> dict[str, str]:
    """Every tcp/udp endpoint on the loopback moved to a port that is free now (same scheme).

    Every probe socket stays bound until all ports are chosen, so no two endpoints get the same port."""
    out = {}
    held: list[socket.socket] = []
    try:
        for name, addr in endpoints.items():
            if not isinstance(addr, str) or addr.startswith("ipc://") or "://" not in addr:
                out[name] = addr
                continue
            scheme, host, _port = parse_endpoint(addr)
            if host not in ("127.0.0.1", "localhost"):
                out[name] = addr
                continue
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if scheme == "udp" else socket.SOCK_STREAM)
            held.append(s)
            s.bind(("127.0.0.1", 0))
            out[name] = f"{scheme}://127.0.0.1:{s.getsockname()[1]}"
    finally:
        for s in held:
            s.close()
    return out


def load_config(path: str | Path) -> Config:
    """Read a YAML config file and validate it; raise ConfigError on the first fault."""
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
    return validate_config(data, file)


def _type_name(t: type | tuple[type, ...]) -> str:
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    return t.__name__


def _check_value(file: str, key: str, spec: Field, value: Any) -> Any:
    t = spec.type
    if t is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and t is not bool:
        raise ConfigError(file, key, _type_name(t), value)
    if not isinstance(value, t):
        raise ConfigError(file, key, _type_name(t), value)
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(file, key, f"one of {list(spec.choices)}", value)
    if spec.min is not None and value < spec.min:
        raise ConfigError(file, key, f"a value >= {spec.min}", value)
    if spec.max is not None and value > spec.max:
        raise ConfigError(file, key, f"a value <= {spec.max}", value)
    if spec.keys is not None:
        value = check_mapping(file, key, spec.keys, value)
    return value


def check_mapping(file: str, prefix: str, specs: dict[str, Field], data: Any) -> dict[str, Any]:
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
                out[k] = check_mapping(file, key, spec.keys, out[k])
            continue
        out[k] = _check_value(file, key, spec, data[k])
    return out


def validate_config(data: Any, file: str = "<config>") -> Config:
    """Validate a parsed config mapping; see the module docstring for the schema."""
    if not isinstance(data, dict):
        raise ConfigError(file, "<top>", "a mapping with version, endpoints, bus, processes", data)
    for k in data:
        if k not in ("version", "endpoints", "bus", "processes"):
            raise ConfigError(file, k, "one of version, endpoints, bus, processes", "unknown key")
    if data.get("version") != 1:
        raise ConfigError(file, "version", "1", data.get("version"))

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
        rest = {k: v for k, v in pdata.items() if k not in ("kind", "endpoints")}
        checked = check_mapping(file, prefix, spec.keys, rest)
        for key, fspec in spec.keys.items():
            if fspec.endpoint_refs:
                for sub, ref in checked[key].items():
                    if ref not in endpoints:
                        raise ConfigError(file, f"{prefix}.{key}.{sub}", f"one of the endpoints {sorted(endpoints)}", ref)
                    if not endpoints[ref].startswith(fspec.endpoint_refs):
                        raise ConfigError(file, f"{prefix}.{key}.{sub}", f"a {fspec.endpoint_refs} endpoint",
                                          endpoints[ref])
        checked["kind"] = kind
        checked["endpoints"] = dict(eps)
        processes[pname] = checked
    return Config(file=file, endpoints=dict(endpoints), bus=bus, processes=processes, raw=data)
