"""A sequencer engine on a fake clock and a real state file, as the unit tests drive it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drivers.camera.interface import INTERFACE as CAMERA_TABLE
from fsw.imaging.interface import INTERFACE as IMAGING_TABLE
from fsw.sequencer.interface import INTERFACE as SEQUENCER_TABLE
from fsw.sequencer.sequences import Dispatch, Sequencer
from fsw.sequencer.statefile import StateFile
from fsw.sequencer.steps import step_checker
from link.contacts import ContactPlan

CHECK = step_checker({"navcam_driver": CAMERA_TABLE, "imaging": IMAGING_TABLE, "sequencer": SEQUENCER_TABLE,
                      "quiet": CAMERA_TABLE},
                     commandable={"navcam_driver", "imaging", "sequencer"}, own_name="sequencer")
T0 = 1_800_000_000.0


def rel_step(after_s: float, count: int = 1) -> dict[str, Any]:
    return {"rel": after_s, "target": "navcam_driver", "cmd": "CAPTURE_BURST", "args": {"count": count}}


class Board:
    """An engine, its state file and the events it emitted; :meth:`reopen` is the process after a SIGKILL."""

    def __init__(self, path: Path, plan: ContactPlan | None = None, late_after_s: float = 5.0,
                 reply_timeout_s: float = 30.0) -> None:
        self.path, self.plan = path, plan
        self.late_after_s, self.reply_timeout_s = late_after_s, reply_timeout_s
        self.events: list[tuple[str, dict[str, Any], str | None]] = []
        self.file = StateFile(path)
        self.core = self._engine()

    def _engine(self) -> Sequencer:
        return Sequencer(CHECK, self.plan, self.file.save, self.emit, self.late_after_s, self.reply_timeout_s)

    def emit(self, name: str, fields: dict[str, Any] | None = None, severity: str | None = None) -> None:
        self.events.append((name, dict(fields or {}), severity))

    def named(self, name: str) -> list[dict[str, Any]]:
        return [f for n, f, _ in self.events if n == name]

    def reopen(self, now: float) -> "Board":
        """A new life from the state file alone (nothing of the old engine's memory survives)."""
        fresh = Board.__new__(Board)
        fresh.path, fresh.plan = self.path, self.plan
        fresh.late_after_s, fresh.reply_timeout_s = self.late_after_s, self.reply_timeout_s
        fresh.events, fresh.file = [], StateFile(self.path)
        fresh.core = fresh._engine()
        data = fresh.file.load()
        if data is not None:
            fresh.core.restore(data, now)
        return fresh

    def complete_all(self, sent: list[Dispatch], now: float) -> None:
        for d in sent:
            self.core.record(d.sequence, d.run, d.index, "accepted", "", now)
            self.core.record(d.sequence, d.run, d.index, "completed", "", now)
