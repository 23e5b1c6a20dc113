"""The TM/TC dictionary: which APID each process has, and its interface table.

One APID per process (docs/uplink.md, "APIDs"): ``(ID_BASES[component] >> 4) + i``, where ``i``
is the process's index among the config's processes with the same interface, in config order
(0..15). The lander and the ground load the same config file, so both sides derive the same
numbers without exchanging them; nothing here is written by hand.

Every process's :class:`~framework.interface.Interface` is found through its kind
(``framework.kinds.KINDS[kind].interface``); kinds without a table (none yet, but a tool-only
kind could have one) get no APID. Looking up a name or an APID the dictionary does not know
raises :class:`UnknownEntry`, a :class:`~framework.errors.ProtocolError` (an APID read off the
link is outside data) that is also a :class:`LookupError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from framework.errors import ConfigError, ProtocolError
from framework.ids import ID_BASES
from framework.interface import Interface
from framework.kinds import KINDS

__all__ = ["APIDS_PER_INTERFACE", "MAX_APID", "UnknownEntry", "Entry", "Dictionary", "apid_base"]

APIDS_PER_INTERFACE = 16
"""How many processes may share one interface table: one APID block of ``ID_RANGE >> 4``."""
MAX_APID = 0x7FE
"""The largest APID a process may get (0x7FF is the CCSDS idle packet's)."""


class UnknownEntry(ProtocolError, LookupError):
    """A process name or an APID the dictionary does not know (a packet for nobody, a typo)."""

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError's key
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Entry:
    """One process of the dictionary."""

    process: str
    apid: int
    interface: Interface
    kind: str = ""


def apid_base(interface: Interface) -> int:
    """The first APID of an interface's block: its component's id base from :data:`ID_BASES`
    shifted right by 4 (a table built in a test with its own ``id_base`` uses that)."""
    base = ID_BASES.get(interface.component, interface.id_base)
    return base >> 4


class Dictionary:
    """Processes by name and by APID, each with its interface table."""

    def __init__(self, entries: list[Entry]) -> None:
        self._by_process: dict[str, Entry] = {}
        self._by_apid: dict[int, Entry] = {}
        for entry in entries:
            if entry.process in self._by_process:
                raise ValueError(f"process '{entry.process}' appears twice in the dictionary")
            if entry.apid in self._by_apid:
                raise ValueError(f"APID {entry.apid:#x} is given to both '{self._by_apid[entry.apid].process}' "
                                 f"and '{entry.process}'")
            self._by_process[entry.process] = entry
            self._by_apid[entry.apid] = entry

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Any) -> "Dictionary":
        """The dictionary of a loaded :class:`framework.config.Config` (processes in config order)."""
        tables: list[tuple[str, Interface, str]] = []
        for name, proc in config.processes.items():
            spec = KINDS.get(proc["kind"])
            if spec is None or spec.interface is None:
                continue
            tables.append((name, spec.interface, proc["kind"]))
        return cls(_number(tables, getattr(config, "file", "<config>")))

    @classmethod
    def from_interfaces(cls, tables: Mapping[str, Interface]) -> "Dictionary":
        """The dictionary of ``{process: Interface}`` in mapping order (tests, tools without a config)."""
        return cls(_number([(name, iface, "") for name, iface in tables.items()], "<interfaces>"))

    # -- lookups -------------------------------------------------------------------------------
    def entry(self, process: str) -> Entry:
        try:
            return self._by_process[process]
        except KeyError:
            raise UnknownEntry(f"no process named {process!r} in the dictionary "
                               f"(known: {sorted(self._by_process)})") from None

    def entry_of(self, apid: int) -> Entry:
        try:
            return self._by_apid[apid]
        except (KeyError, TypeError):
            shown = f"{apid:#x}" if isinstance(apid, int) else repr(apid)
            raise UnknownEntry(f"no process has APID {shown}") from None

    def apid_of(self, process: str) -> int:
        return self.entry(process).apid

    def process_of(self, apid: int) -> str:
        return self.entry_of(apid).process

    def interface_of(self, apid: int) -> Interface:
        return self.entry_of(apid).interface

    def interface_of_process(self, process: str) -> Interface:
        return self.entry(process).interface

    def processes(self) -> list[str]:
        """Every process with an APID, in config order."""
        return list(self._by_process)

    def apids(self) -> list[int]:
        return list(self._by_apid)

    def entries(self) -> list[Entry]:
        return list(self._by_process.values())

    def __contains__(self, apid: object) -> bool:
        return apid in self._by_apid

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._by_process.values())

    def __len__(self) -> int:
        return len(self._by_process)


def _number(tables: list[tuple[str, Interface, str]], file: str) -> list[Entry]:
    """Each process's APID: its interface's block plus its index among the processes sharing it."""
    used: dict[str, int] = {}
    out: list[Entry] = []
    for name, interface, kind in tables:
        i = used.get(interface.component, 0)
        if i >= APIDS_PER_INTERFACE:
            raise ConfigError(file, f"processes.{name}",
                              f"at most {APIDS_PER_INTERFACE} processes with the '{interface.component}' "
                              "interface (one APID block)", "one more")
        used[interface.component] = i + 1
        apid = apid_base(interface) + i
        if not 0 < apid <= MAX_APID:
            raise ConfigError(file, f"processes.{name}", f"an interface whose APID block lies within 1..{MAX_APID:#x}",
                              f"{interface.component}: APID {apid:#x}")
        out.append(Entry(name, apid, interface, kind))
    return out
