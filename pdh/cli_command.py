"""``pdh cmd``'s two halves beside the parser: is the service there at all, and follow one command.

A service answers ``accepted`` (or ``rejected``) at once and ``completed`` or ``failed`` when the work
is done (:class:`framework.bus.commands.Deferred`); :func:`follow_command` prints each reply as it
comes and shows that it is still waiting in between, so a command that takes a minute is not
mistaken for one that got no reply. :func:`not_running` tells a stopped service from a silent one
before anything is sent: nothing listens on its command port (or the supervisor gave it up).
"""

from __future__ import annotations

import errno
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from framework.bus.commands import CommandClient, CommandReply
from framework.config import Config
from pdh.supervisor import read_state

__all__ = ["parse_value", "follow_command", "not_running", "PROGRESS_EVERY_S"]

PROGRESS_EVERY_S = 5.0
"""How often a line says the command is still being worked on."""
_PROBE_S = 1.0


def _probe(address: str) -> str:
    """'' if something accepts a connection at ``address`` (or we cannot tell), else why not."""
    if address.startswith("ipc://"):
        path = address[len("ipc://"):]
        if not Path(path).exists():
            return f"no socket at {path}"
        family, target = socket.AF_UNIX, path
    elif address.startswith("tcp://"):
        host, port = address[len("tcp://"):].rsplit(":", 1)
        family, target = socket.AF_INET, (host, int(port))  # type: ignore[assignment]
    else:
        return ""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(_PROBE_S)
        try:
            s.connect(target)
        except (ConnectionRefusedError, FileNotFoundError):
            return f"nothing listens at {address}"
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                return f"nothing listens at {address}"
            return ""  # unreachable, timed out: cannot tell from here
    return ""


def not_running(config: Config, out: Path, process: str) -> str:
    """Why ``process`` cannot take a command now ('' when it looks up): its command port has no listener,
    said with what the run's supervisor knows of it (given up with its last error, stopped)."""
    why = _probe(config.reach(process, "command"))
    if not why:
        return ""
    known = read_state(out).get("processes", {}).get(process, {})
    state = known.get("state")
    if state == "gave_up":
        why += f"; the supervisor gave it up: {known.get('gave_up')}"
    elif state:
        why += f"; the supervisor of {out} last saw it {state}"
    else:
        why += f" (is the run whose --out is {out} up?)"
    return f"{process} is not running: {why}"


def follow_command(client: CommandClient, cmd: str, args: dict[str, Any], timeout_s: float, wait_s: float,
                   say: Callable[[str], None] = print, note: Callable[[str], None] | None = None,
                   every_s: float = PROGRESS_EVERY_S) -> list[CommandReply]:
    """Send ``cmd`` and print each reply as it comes: ``accepted``/``rejected`` within ``timeout_s``, then
    ``completed``/``failed`` within ``wait_s`` of acceptance, a progress note every ``every_s`` in between.
    Returns the replies seen (none: the port took nothing or said nothing; last ``accepted``: no final)."""
    note = note or (lambda line: print(line, file=sys.stderr, flush=True))
    from framework.bus.commands import CommandNotSent

    try:
        cid = client.send(cmd, args)
    except CommandNotSent:
        return []
    replies: list[CommandReply] = []
    start = time.monotonic()
    deadline = start + timeout_s
    next_note = start + every_s
    while time.monotonic() < deadline:
        r = client.recv(max(0.0, min(deadline, next_note) - time.monotonic()))
        now = time.monotonic()
        if r is None or r.id != cid:
            if replies and now >= next_note:
                note(f"... {cmd} accepted {now - start:.0f} s ago, still working")
                next_note = now + every_s
            continue
        replies.append(r)
        say(f"{r.status:10s} {r.reason} {'' if r.result is None else r.result}".rstrip())
        if r.status in ("rejected", "completed", "failed"):
            break
        if r.status == "accepted":
            deadline = now + wait_s
            next_note = now + every_s
    return replies


def parse_value(v: str) -> Any:
    """A command argument from the command line: int, float, true/false, a [list] or {map} in YAML flow
    style (``region=[0,0,64,64]``), else the string itself."""
    if v[:1] in "[{":
        try:
            return yaml.safe_load(v)
        except yaml.YAMLError:
            return v
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)
