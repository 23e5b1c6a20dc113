"""The command desk: the lander's commands from their interface tables, each checked before it leaves. No I/O.

The page builds its command sender from :meth:`CommandDesk.catalog` (every lander process's
commands, with each argument's type, range, unit and choices) and checks arguments as the
operator types; the desk checks them again here with the same table
(:meth:`framework.interface.Interface.validate_args`), and the ground checks them a third time
when it queues the UPLINK. A hazardous command (``CommandSpec.hazardous``: ARM, FIRE, ...) is
refused here unless the operator typed its confirmation (the mechanism's name, or the
command's name for one without a mechanism) and presented the operator's key, which must equal
the run's operator key (``<keys_dir>/<operator>.key_secret``); with no such key configured,
every hazardous command is refused. The comparison takes constant time.

Frame requests (:meth:`CommandDesk.frame_request`) are the downlink's own commands:
``SEND_FULL`` (a thumbnail's full frame, by camera and counter), ``SEND_PRODUCT`` (a stored
product by id) and ``SEND_REGION`` (a region of a frame, made on board and sent requested).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from framework.errors import CommandRejected
from framework.interface import Arg, CommandSpec, Interface

__all__ = ["CommandDesk", "Outgoing", "HazardRefused", "operator_secret", "confirmation_word"]

_SECRET = re.compile(r'secret-key\s*=\s*"([^"]+)"')
_Z85 = re.compile(r"^[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")


class HazardRefused(CommandRejected):
    """A hazardous command without its typed confirmation or the operator's key."""


@dataclass(frozen=True)
class Outgoing:
    """A command checked here, ready for the ground's UPLINK."""

    target: str
    cmd: str
    args: dict[str, Any] = field(default_factory=dict)
    hazardous: bool = False


def operator_secret(text: str) -> str | None:
    """The operator's secret from what was presented or configured: a key file's text
    (``secret-key = "..."``) or the 40-character Z85 secret itself; None if it is neither."""
    found = _SECRET.search(text)
    value = (found.group(1) if found else text).strip()
    return value if _Z85.match(value) else None


def confirmation_word(spec: CommandSpec, args: Mapping[str, Any]) -> str:
    """What the operator must type to send a hazardous command: its mechanism's name, else the command's."""
    mechanism = args.get("mechanism")
    return mechanism if isinstance(mechanism, str) and mechanism else spec.name


def _arg(a: Arg) -> dict[str, Any]:
    return {"name": a.name, "type": a.type.__name__, "min": a.min, "max": a.max, "unit": a.unit,
            "required": a.required, "choices": list(a.choices)}


class CommandDesk:
    """``tables``: the lander processes' interface tables by process name (config order);
    ``downlink``: the downlink process that takes frame requests; ``operator_key``: the operator's
    key file text (None: hazardous commands are refused)."""

    def __init__(self, tables: Mapping[str, Interface], downlink: str | None, operator_key: str | None) -> None:
        self.tables = dict(tables)
        self.downlink = downlink
        self._secret = operator_secret(operator_key) if operator_key else None

    @property
    def hazardous_enabled(self) -> bool:
        return self._secret is not None

    def catalog(self) -> list[dict[str, Any]]:
        """Every lander process and its commands, as the page builds its sender from."""
        return [{"process": p, "component": t.component,
                 "commands": [{"name": c.name, "opcode": c.opcode, "hazardous": c.hazardous, "doc": c.doc,
                               "args": [_arg(a) for a in c.args]} for c in t.commands.values()]}
                for p, t in self.tables.items()]

    def check(self, target: str, cmd: str, args: Any, confirm: str = "", key: str = "") -> Outgoing:
        """The command checked against its target's table; CommandRejected saying why not, HazardRefused
        for a hazardous one without the typed confirmation or the operator's key."""
        table = self.tables.get(target)
        if table is None:
            raise CommandRejected(f"no lander process '{target}' (known: {sorted(self.tables)})")
        checked = table.validate_args(cmd, args if isinstance(args, Mapping) else {"": args})
        spec = table.commands[cmd]
        if spec.hazardous:
            self._guard(spec, checked, confirm, key)
        return Outgoing(target, cmd, checked, spec.hazardous)

    def _guard(self, spec: CommandSpec, args: Mapping[str, Any], confirm: str, key: str) -> None:
        word = confirmation_word(spec, args)
        if not isinstance(confirm, str) or confirm.strip() != word:
            raise HazardRefused(f"{spec.name} is hazardous: type '{word}' to confirm it")
        if self._secret is None:
            raise HazardRefused(f"{spec.name} is hazardous and this console has no operator key configured")
        presented = operator_secret(key) if isinstance(key, str) else None
        if presented is None or not hmac.compare_digest(presented.encode(), self._secret.encode()):
            raise HazardRefused(f"{spec.name} is hazardous: the operator's key was not presented or does not match")

    def frame_request(self, camera: str, counter: int | None = None, product: str | None = None,
                      region: list[int] | None = None) -> Outgoing:
        """The downlink command that brings a frame (or a region of it, or a named product) to the ground."""
        if self.downlink is None:
            raise CommandRejected("no downlink process in this config to request frames from")
        if region is not None:
            args: dict[str, Any] = {"camera": camera, "region": region}
            if counter is not None:
                args["counter"] = counter
            return self.check(self.downlink, "SEND_REGION", args)
        if product is not None:
            return self.check(self.downlink, "SEND_PRODUCT", {"id": product})
        if counter is None:
            raise CommandRejected("a full frame is named by camera and counter, or by product id")
        return self.check(self.downlink, "SEND_FULL", {"camera": camera, "counter": counter})
