"""The downlink's operator commands: reorder, drop, ask for telemetry again, ask imaging for a region.

:func:`handlers` gives one handler per command of :data:`fsw.downlink.interface.INTERFACE`
(NOOP and RESET_COUNTERS are the command server's own); the process registers them with
:func:`framework.bus.commands.register_table`, which checks every command's arguments
against the table (types, ranges) before its handler runs. Each handler then checks what
the table cannot say (an id, or a camera and counter; the time range in order; the
product on board) and raises CommandRejected naming what is wrong. ``SEND_REGION`` is
forwarded to the imaging core's ``MAKE_ROI`` (the ``links.imaging_command`` endpoint);
the ROI it makes arrives flagged ``requested`` and goes in the 'requested' class.

The handlers act on the I/O-free :class:`~fsw.downlink.forwarder.Forwarder`; this module
imports nothing of :mod:`fsw.downlink.process`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from framework.bus.commands import Handler
from framework.errors import CommandRejected, StoreError
from fsw.imaging.product import product_id

if TYPE_CHECKING:
    from fsw.downlink.forwarder import Forwarder

__all__ = ["handlers"]


def _id(args: dict[str, Any], kind: str = "full") -> str:
    pid = args.get("id")
    if isinstance(pid, str) and pid:
        return pid
    cam, counter = args.get("camera"), args.get("counter")
    if isinstance(cam, str) and isinstance(counter, int) and not isinstance(counter, bool):
        return product_id(cam, counter, kind)
    raise CommandRejected(f"give 'id', or 'camera' and 'counter'; got {sorted(args)}")


def handlers(fwd: "Forwarder") -> dict[str, Handler]:
    """The downlink's handlers by command name, bound to ``fwd`` (read when a command arrives)."""

    def request(kind: str) -> Handler:
        def handler(args: dict[str, Any]) -> dict[str, Any]:
            pid = _id(args, kind)
            try:
                p = fwd.store.request(pid)
            except StoreError as exc:
                raise CommandRejected(str(exc)) from None
            # the store has no indexed rank yet: one O(n) pass over the sending order, shared by event and reply
            position = fwd.store.ids().index(pid)
            fwd.events.emit("product_requested", {"id": pid, "queue_position": position})
            return {"id": p.id, "class": p.cls, "queue_position": position}
        return handler

    def drop(args: dict[str, Any]) -> dict[str, Any]:
        pid = _id(args)
        if pid not in fwd.store:
            raise CommandRejected(f"product {pid} is not on board")
        fwd.tx.abort(pid, "dropped by operator")
        fwd.store.drop(pid)
        fwd.events.emit("product_dropped", {"id": pid, "reason": "operator"})
        return {"id": pid, "dropped": True}

    def playback(args: dict[str, Any]) -> dict[str, Any]:
        t0, t1 = args["t_start"], args["t_end"]
        if t1 < t0:
            raise CommandRejected(f"t_end {t1} is before t_start {t0}")
        if fwd.recorder is None:
            raise CommandRejected("telemetry recording is off in this configuration")
        seg = fwd.recorder.playback(t0, t1)
        if seg is None:
            raise CommandRejected(f"no recorded telemetry between {t0} and {t1}")
        try:
            fwd.store_segment(seg)
        except StoreError as exc:
            raise CommandRejected(str(exc)) from None
        return {"id": seg.id, "records": len(seg.records), "t0": seg.t0, "t1": seg.t1}

    def region(args: dict[str, Any]) -> dict[str, Any]:
        if fwd.imaging is None:
            raise CommandRejected("no links.imaging_command endpoint: send MAKE_ROI to the imaging core directly")
        cid = fwd.forward_region({k: args[k] for k in ("camera", "counter", "region") if k in args})
        return {"forwarded": "MAKE_ROI", "to": "imaging", "request": cid}

    def status(args: dict[str, Any]) -> dict[str, Any]:
        return {"by_class": fwd.store.depth_by_class(), "bytes": fwd.store.total_bytes(),
                "quota_bytes": fwd.store.quota_bytes, "in_flight": fwd.tx.in_flight(),
                "contact": fwd.tx.contact.relay if fwd.tx.contact else None}

    return {"STORE_LIST": lambda args: {"ids": fwd.store.ids()}, "STORE_STATUS": status,
            "SEND_FULL": request("full"), "SEND_PRODUCT": request("full"), "DROP": drop,
            "TLM_PLAYBACK": playback, "SEND_REGION": region}
