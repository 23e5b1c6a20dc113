"""The downlink's operator commands: reorder, drop, ask for telemetry again, ask imaging for a region.

Every command's arguments are checked against
:data:`fsw.downlink.interface.INTERFACE` (types, ranges) before its handler
runs; each handler then checks what the table cannot say (an id, or a camera
and counter; the time range in order; the product on board) and raises
CommandRejected naming what is wrong. ``SEND_REGION`` is forwarded to the
imaging core's ``MAKE_ROI`` (the ``links.imaging_command`` endpoint); the ROI
it makes arrives flagged ``requested`` and goes in the 'requested' class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fsw.downlink.interface import INTERFACE
from framework.errors import CommandRejected, StoreError
from fsw.imaging.product import product_id

if TYPE_CHECKING:
    from fsw.downlink.process import DownlinkService

__all__ = ["register_requests"]


def _id(args: dict[str, Any], kind: str = "full") -> str:
    pid = args.get("id")
    if isinstance(pid, str) and pid:
        return pid
    cam, counter = args.get("camera"), args.get("counter")
    if isinstance(cam, str) and isinstance(counter, int) and not isinstance(counter, bool):
        return product_id(cam, counter, kind)
    raise CommandRejected(f"give 'id', or 'camera' and 'counter'; got {sorted(args)}")


def register_requests(svc: "DownlinkService") -> None:
    server = svc.commands

    def request(kind: str) -> Any:
        def handler(args: dict[str, Any]) -> dict[str, Any]:
            pid = _id(args, kind)
            try:
                p = svc.store.request(pid)
            except StoreError as exc:
                raise CommandRejected(str(exc)) from None
            svc.event("product_requested", {"id": pid, "queue_position": svc.store.ids().index(pid)})
            return {"id": p.id, "class": p.cls, "queue_position": svc.store.ids().index(pid)}
        return handler

    def drop(args: dict[str, Any]) -> dict[str, Any]:
        pid = _id(args)
        if pid not in svc.store:
            raise CommandRejected(f"product {pid} is not on board")
        svc.tx.abort(pid, "dropped by operator")
        svc.store.drop(pid)
        svc.event("product_dropped", {"id": pid, "reason": "operator"})
        return {"id": pid, "dropped": True}

    def playback(args: dict[str, Any]) -> dict[str, Any]:
        t0, t1 = args["t_start"], args["t_end"]
        if t1 < t0:
            raise CommandRejected(f"t_end {t1} is before t_start {t0}")
        if svc.recorder is None:
            raise CommandRejected("telemetry recording is off in this configuration")
        seg = svc.recorder.playback(t0, t1)
        if seg is None:
            raise CommandRejected(f"no recorded telemetry between {t0} and {t1}")
        try:
            svc.store_segment(seg)
        except StoreError as exc:
            raise CommandRejected(str(exc)) from None
        return {"id": seg.id, "records": len(seg.records), "t0": seg.t0, "t1": seg.t1}

    def region(args: dict[str, Any]) -> dict[str, Any]:
        if svc.imaging is None:
            raise CommandRejected("no links.imaging_command endpoint: send MAKE_ROI to the imaging core directly")
        fwd = {k: args[k] for k in ("camera", "counter", "region") if k in args}
        cid = svc.imaging.send("MAKE_ROI", fwd)
        svc.forwarded[cid] = fwd
        return {"forwarded": "MAKE_ROI", "to": "imaging", "request": cid}

    def status(args: dict[str, Any]) -> dict[str, Any]:
        return {"by_class": svc.store.depth_by_class(), "bytes": svc.store.total_bytes(),
                "quota_bytes": svc.store.quota_bytes, "in_flight": svc.tx.in_flight(),
                "contact": svc.tx.contact.relay if svc.tx.contact else None}

    handlers = {"STORE_LIST": lambda args: {"ids": svc.store.ids()}, "STORE_STATUS": status,
                "SEND_FULL": request("full"), "SEND_PRODUCT": request("full"), "DROP": drop,
                "TLM_PLAYBACK": playback, "SEND_REGION": region}
    for name, handler in handlers.items():
        server.register(name, INTERFACE.checked(name, handler))
