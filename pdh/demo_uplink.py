"""The demo's uplink check: one command issued at the ground while no relay sees the lander.

Issue 13's promise, shown in every ``pdh demo``: a command the operator gives
outside a contact waits in the ground's queue, leaves when the next lander
window opens, crosses the relay (light time, loss, corruption, the pcap), is
authenticated by the ingest and acts on board, and its verification stages
come back to the ground as TM. :class:`DemoUplink` waits for a gap in the
contact plan, queues ``PING`` to the camera driver through the ground's command
port (as ``pdh uplink`` does), then follows the command's stages with
``QUEUE_LIST`` until it ends. :meth:`DemoUplink.summary` says what happened and
whether it held: sent only after the window opened, received no earlier than
one light time after that, completed.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from framework.bus.auth import operator_client
from framework.config import Config
from link.contacts import ContactPlan, load_plan

__all__ = ["DemoUplink", "FINAL_STAGES"]

FINAL_STAGES = ("completed", "failed", "rejected", "not_delivered", "cancelled")
_POLL_S = 0.5
_CALL_TIMEOUT_S = 3.0


def _stages(entry: dict[str, Any]) -> list[tuple[str, float]]:
    """The command's stages as (name, wall time), in the order the ground recorded them."""
    out = []
    for s in entry.get("stages") or []:
        if isinstance(s, dict) and isinstance(s.get("stage"), str) and isinstance(s.get("t"), (int, float)):
            out.append((s["stage"], float(s["t"])))
    return out


class DemoUplink:
    """Queue one command outside a window, follow it to its end. ``step`` is called from the demo's loop."""

    def __init__(self, zctx: Any, config: Config, out: Any, target: str, cmd: str,
                 args: dict[str, Any] | None = None, clock: Callable[[], float] = time.time) -> None:
        grounds = config.processes_of_kind("ground.station")
        self.ground = next((g for g in grounds if "command" in config.processes[g]["endpoints"]), None)
        self.target, self.cmd, self.args = target, cmd, args or {}
        self.clock = clock
        self.plan: ContactPlan | None = load_plan(config.processes[self.ground]) if self.ground else None
        self.client = operator_client(zctx, config, out, self.ground) if self.ground else None
        self.state = "idle" if self.client is not None else "absent"
        self.id: int | None = None
        self.queued_at: float | None = None
        self.window_at: float | None = None
        self.entry: dict[str, Any] = {}
        self.notes: list[str] = []
        self._next_poll = 0.0

    @property
    def done(self) -> bool:
        return self.state in ("done", "absent", "error")

    def step(self, ground_up: bool) -> None:
        now = self.clock()
        if self.state == "idle" and ground_up and self.plan is not None and not self.plan.is_open(now):
            self._queue(now)
        elif self.state == "waiting" and now >= self._next_poll:
            self._next_poll = now + _POLL_S
            self._poll()

    def _queue(self, now: float) -> None:
        assert self.client is not None and self.plan is not None
        replies = self.client.call("UPLINK", {"target": self.target, "cmd": self.cmd,
                                              "args_json": json.dumps(self.args)}, timeout_s=_CALL_TIMEOUT_S)
        last = replies[-1] if replies else None
        if last is None:
            return  # the ground is not answering yet: asked again in the next gap
        if last.status != "completed" or not isinstance(last.result, dict):
            self.state = "error"
            self.notes.append(f"UPLINK {last.status}: {last.reason}")
            return
        self.id = int(last.result["id"])
        self.queued_at = now
        self.window_at = self.plan.next_open(now)
        self.state = "waiting"

    def _poll(self) -> None:
        assert self.client is not None
        replies = self.client.call("QUEUE_LIST", {"id": self.id, "all": True}, timeout_s=_CALL_TIMEOUT_S)
        if not replies or replies[-1].status != "completed" or not isinstance(replies[-1].result, dict):
            return  # asked again at the next poll
        for entry in replies[-1].result.get("commands") or []:
            if isinstance(entry, dict) and entry.get("id") == self.id:
                self.entry = entry
                if entry.get("state") in FINAL_STAGES:
                    self.state = "done"

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def summary(self) -> dict[str, Any]:
        """What the demo prints and judges: the stages with their times relative to the window."""
        stages = _stages(self.entry)
        first = {}
        for name, t in stages:
            first.setdefault(name.split("#")[0], t)
        latency_s = max((r.latency_ms for r in self.plan.relays), default=0.0) / 1000.0 if self.plan else 0.0
        min_latency_s = min((r.latency_ms for r in self.plan.relays), default=0.0) / 1000.0 if self.plan else 0.0
        w = self.window_at
        sent, received = first.get("sent"), first.get("received")
        problems = []
        if self.state == "absent":
            problems.append("no ground station with a command port in the config")
        elif self.state != "done":
            problems.append(f"the command did not finish ({self.state}; stages {[n for n, _ in stages]})")
        elif self.entry.get("state") != "completed":
            problems.append(f"the command ended {self.entry.get('state')}")
        if w is not None and sent is not None and sent < w:
            problems.append(f"sent {w - sent:.2f} s before the window opened")
        if w is not None and received is not None and received < w + min_latency_s:
            problems.append("received on board sooner than one light time after the window opened")
        return {
            "uplink_command": f"{self.target} {self.cmd}",
            "uplink_state": self.entry.get("state", self.state),
            "uplink_queued_outside_window": self.queued_at is not None and w is not None and w > self.queued_at,
            "uplink_wait_for_window_s": None if w is None or self.queued_at is None else round(w - self.queued_at, 2),
            "uplink_stages": [f"{n}@{t - w:+.2f}s" if w is not None else n for n, t in stages],
            "uplink_light_time_s": round(latency_s, 2),
            "uplink_problems": problems + self.notes,
            "uplink_ok": not problems and not self.notes,
        }
