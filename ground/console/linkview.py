"""The link panel's contact windows, from the plan. No sockets.

Windows come from the same contact plan the relay, the downlink and the ground use
(:mod:`link.contacts`): the one open now and the next ones within a horizon, in wall time.
The panel's CFDP transactions come from the archive
(:meth:`ground.console.archive_view.ArchiveView.transactions`).
"""

from __future__ import annotations

from typing import Any

from link.contacts import ContactPlan

__all__ = ["windows"]

_MAX_WINDOWS = 24


def windows(plan: ContactPlan, now: float, horizon_s: float) -> dict[str, Any]:
    """The contact open now (or None) and the windows that open within ``horizon_s``, oldest first."""
    current = plan.contact(now)
    out: list[dict[str, Any]] = []
    t = now
    while len(out) < _MAX_WINDOWS:
        start = plan.next_open(t, horizon_s - (t - now))
        if start is None:
            break
        c = plan.contact(start)
        if c is None:  # a window shorter than the plan's resolution: step over it
            t = start + 1e-3
            continue
        out.append({"relay": c.relay, "pass": c.pass_number, "opens": max(c.opened_at, start), "closes": c.closes_at,
                    "rate_bps": c.rate_bps, "latency_ms": c.latency_ms})
        t = max(c.closes_at, t + 1e-3)
        if plan.always_open or t - now > horizon_s:
            break
    return {"now": now, "current": None if current is None else {
        "relay": current.relay, "pass": current.pass_number, "opened": current.opened_at,
        "closes": current.closes_at, "rate_bps": current.rate_bps, "latency_ms": current.latency_ms},
        "windows": out}
