"""How a scenario speaks to each emulator kind's control port. Pure: names and argument shapes only.

Every emulator's control port is a command ROUTER (framework/bus/commands.py), but each kind
names its commands its own way: the mechanism emulator takes ``INJECT {fault, ...}``
(hil/deploy/process.py), the camera emulator ``inject_fault {fault, ...}``
(hil/camera/process.py). A scenario's ``inject`` step names a fault and its parameters;
the adapter for the target's kind turns it into that kind's control command, after
checking the fault name against the emulator's own fault table. The fault ``clear``
clears every fault on any kind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["ControlAdapter", "ADAPTERS", "adapter_for", "CLEAR"]

CLEAR = "clear"


def _deploy_faults() -> tuple[str, ...]:
    from hil.deploy.mechanism import FAULTS

    return tuple(FAULTS)


def _camera_faults() -> tuple[str, ...]:
    from hil.camera.faults import FAULTS

    return tuple(FAULTS)


@dataclass(frozen=True)
class ControlAdapter:
    """One emulator kind's control vocabulary."""

    kind: str
    inject_cmd: str
    clear_cmd: str
    faults: Callable[[], tuple[str, ...]]
    role: str = "control"

    def known_faults(self) -> tuple[str, ...]:
        return (*self.faults(), CLEAR)

    def request(self, fault: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The control command and arguments that inject ``fault`` with ``params``."""
        if fault == CLEAR:
            return self.clear_cmd, {}
        return self.inject_cmd, {"fault": fault, **params}


ADAPTERS: dict[str, ControlAdapter] = {
    "hil.deploy": ControlAdapter("hil.deploy", "INJECT", "CLEAR_FAULTS", _deploy_faults),
    "hil.camera": ControlAdapter("hil.camera", "inject_fault", "clear_faults", _camera_faults),
}


def adapter_for(kind: str) -> ControlAdapter | None:
    return ADAPTERS.get(kind)
