"""What the supervisor learns from the buses: progress of a run, folded from telemetry and events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import zmq

from framework.bus.client import Subscriber
from framework.bus.message import Message
from framework.config import Config
from pdh.verify import NAMING_EVENTS

__all__ = ["RunState", "BusWatch"]


class BusWatch:
    """Every bus of a config at once: a subscriber on each broker's XPUB (the lander's and the
    ground's, each reached at its host's address), so a run's progress and verdict see both ends."""

    def __init__(self, zctx: zmq.Context, config: Config, topics: list[str], rcvhwm: int = 10000) -> None:
        self.subs = [Subscriber(zctx, config.reach(b, "xpub"), topics, rcvhwm=rcvhwm)
                     for b in config.processes_of_kind("bus.broker")]
        self.poller = zmq.Poller()
        for sub in self.subs:
            self.poller.register(sub.sock, zmq.POLLIN)

    def drain(self, timeout_ms: int) -> list[Message]:
        """Every message waiting on any bus; waits up to ``timeout_ms`` for the first."""
        out: list[Message] = []
        if not self.poller.poll(timeout_ms):
            return out
        for sub in self.subs:
            while (msg := sub.recv(timeout_ms=0)) is not None:
                out.append(msg)
        return out

    def close(self) -> None:
        for sub in self.subs:
            sub.close()


@dataclass
class RunState:
    """Folded view of a run: fed every bus message the supervisor sees."""

    driver_kinds: set[str] = field(default_factory=set)
    tlm: dict[str, dict[str, Any]] = field(default_factory=dict)
    tlm_t: dict[str, float] = field(default_factory=dict)
    made: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # id -> (kind, camera, counter)
    stored: set[str] = field(default_factory=set)
    confirmed: set[str] = field(default_factory=set)
    received_ok: set[str] = field(default_factory=set)
    received_bad: set[str] = field(default_factory=set)
    first_thumbnail_s: float | None = None
    first_full_s: float | None = None
    warnings: list[str] = field(default_factory=list)
    warning_counts: dict[str, int] = field(default_factory=dict)  # "src: name" -> how many
    events: int = 0
    naming: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (src, fields) of events naming frames
    # CFDP transactions that ended without delivery: "src: name" -> the product ids (downlink) or file names
    # (ground) they carried; one whose product was confirmed later was recovered, not lost
    failed_transfers: dict[str, list[str]] = field(default_factory=dict)

    def feed(self, msg: Message, now: float, t0: float) -> None:
        h = msg.header
        f = h.fields
        if msg.topic.startswith("tlm."):
            self.tlm[h.src] = f
            self.tlm_t[h.src] = now
        elif msg.topic.startswith("product."):
            pid = f.get("id")
            if isinstance(pid, str):
                kind = msg.topic.split(".", 1)[1]
                self.made[pid] = (kind, str(f.get("camera")), int(f.get("counter", -1)))
        elif msg.topic.startswith("evt."):
            self.events += 1
            name = f.get("name")
            pid = f.get("id")
            if name in NAMING_EVENTS:
                self.naming.append((h.src, dict(f)))
            if name == "product_stored" and isinstance(pid, str):
                self.stored.add(pid)
            elif name == "product_confirmed" and isinstance(pid, str):
                self.confirmed.add(pid)
            elif name == "product_received" and isinstance(pid, str):
                if f.get("ok"):
                    self.received_ok.add(pid)
                    kind = f.get("product_kind")
                    if kind == "thumbnail" and self.first_thumbnail_s is None:
                        self.first_thumbnail_s = now - t0
                    if kind == "full" and self.first_full_s is None:
                        self.first_full_s = now - t0
                else:
                    self.received_bad.add(pid)
            if name in ("transaction_failed", "transfer_failed"):
                what = pid if isinstance(pid, str) else f.get("file")
                self.failed_transfers.setdefault(f"{h.src}: {name}", []).append(str(what))
            if f.get("severity") in ("warning", "error"):
                key = f"{h.src}: {name}"
                self.warning_counts[key] = self.warning_counts.get(key, 0) + 1
                self.warnings.append(f"{key} {({k: v for k, v in f.items() if k not in ('name', 'severity')})}")

    def transfers_recovered(self) -> dict[str, tuple[int, int]]:
        """Per failed-transfer event ("src: name"): (recovered, not recovered). A transaction that failed
        is recovered when the product it carried was confirmed by the ground afterwards (sent again)."""
        def recovered(what: str) -> bool:
            return what in self.confirmed or any(what.startswith(pid) for pid in self.confirmed)

        out: dict[str, tuple[int, int]] = {}
        for key, items in self.failed_transfers.items():
            n = sum(1 for w in items if recovered(w))
            out[key] = (n, len(items) - n)
        return out

    def sum_tlm(self, key: str, srcs: list[str]) -> int:
        return sum(int(self.tlm.get(s, {}).get(key, 0) or 0) for s in srcs)

    def full_made(self) -> list[tuple[str, str, int]]:
        return [(pid, cam, n) for pid, (kind, cam, n) in self.made.items() if kind == "full"]

    def drained(self) -> bool:
        ids = set(self.made)
        return bool(ids) and ids <= self.confirmed and ids <= self.received_ok
