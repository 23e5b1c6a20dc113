"""The console's HTTP side: a Starlette app over the model, the archive, the desk and the ground's command port.

What the ground holds is read through the archive (:mod:`ground.console.archive_view`, the
same :class:`ground.archive.Archive` calls ``pdh missing`` and ``pdh products`` make); what is
live (telemetry values, events as they happen, command stages) comes from the model the bus
feeds. Routes (all JSON but the page, its files, images and pixels; 503 with the reason when
the archive cannot be read):

* ``GET /`` and ``/static/*``: the page (package data, nothing from elsewhere).
* ``GET /api/state``: a snapshot to start from (telemetry with limits and history, the newest
  events, products, commands with their stages, the command catalog, the link, the archive's
  status), with the feed ``cursor``.
* ``GET /api/stream?cursor=N``: server-sent events, one per update from ``N`` on; ``event: reload``
  when the page fell further behind than the feed keeps.
* ``GET /api/link``: contact windows and the CFDP transactions with their missing ranges and NAKs.
* ``GET /api/missing``: exactly what ``pdh missing --json`` prints (:meth:`Archive.missing`).
* ``GET /api/products?camera=&kind=&since=&until=&min_grade=&max_grade=&limit=``: products by camera,
  capture time and grade; ``GET /api/products/{id}``: one, with all its grades.
* ``GET /api/events?min_severity=&source=&limit=``: the event log from the archive.
* ``GET /api/history?process=&channel=&since=&until=``: a channel's values (the lander's from the
  archive, the ground's own from the live model).
* ``GET /api/products/{id}/image``: the PNG the ground wrote; ``/preview``: the gallery's 8-bit
  picture of it (12/16-bit data stretched, :meth:`ProductShelf.preview`).
* ``GET /api/products/{id}/pixels``: the pixels, little-endian, row-major (headers ``X-Width``,
  ``X-Height``, ``X-Bytes-Per-Pixel``, ``X-Bit-Depth``): the viewer stretches them in a canvas.
* ``POST /api/command`` ``{target, cmd, args, confirm, key}``: checked by the desk (400 with the
  reason; 403 for a hazardous one without its confirmation or the operator's key), then UPLINK to
  the ground's queue (502 if the ground does not answer); answers ``{id}``.
* ``POST /api/request`` ``{camera, counter | product, region?}``: a frame request (SEND_FULL,
  SEND_PRODUCT, SEND_REGION of the downlink), sent the same way.

The ground's command port belongs to the process's loop (one thread owns the socket): the app
asks through :class:`GroundPort`, whose ``call`` is awaited here.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from framework.errors import CommandRejected
from ground.console.archive_view import ArchiveUnavailable, ArchiveView
from ground.console.desk import CommandDesk, HazardRefused, Outgoing
from ground.console.model import ConsoleModel
from ground.console.shelf import ProductShelf, safe_id

__all__ = ["GroundPort", "GroundUnreachable", "Console", "build_app", "STATIC_DIR"]

STATIC_DIR = Path(str(resources.files("ground.console") / "static"))
_STREAM_POLL_S = 0.25
_KEEPALIVE_S = 10.0
_MAX_BODY = 64 * 1024
_EVENTS_SHOWN = 500


class GroundUnreachable(RuntimeError):
    """The ground's command port did not answer (not running, or the console's key refused)."""


class GroundPort(Protocol):
    """The ground station's command port: ``call(cmd, args)`` is its result, CommandRejected with the
    ground's reason when it refused, GroundUnreachable when it did not answer."""

    def call(self, cmd: str, args: dict[str, Any]) -> Awaitable[Any]: ...


@dataclass
class Console:
    """What the routes need; the process builds one, tests build one with fakes."""

    model: ConsoleModel
    desk: CommandDesk
    archive: ArchiveView
    ground: GroundPort
    windows: Callable[[], dict[str, Any]]
    report: Callable[[str, dict[str, Any]], None] = lambda name, fields: None
    station: str = "ground"
    """The ground station's process name: its own events are in the archive (source ``station``)."""
    stopping: threading.Event = field(default_factory=threading.Event)
    clients: int = 0
    sent: int = 0
    refused: int = 0
    hazardous_refused: int = 0
    unreachable: int = 0

    async def send(self, out: Outgoing) -> int:
        """UPLINK one checked command; its queue id (recorded in the model, stages follow as events)."""
        try:
            result = await self.ground.call("UPLINK", {"target": out.target, "cmd": out.cmd,
                                                       "args_json": json.dumps(out.args)})
        except GroundUnreachable as exc:
            self.unreachable += 1
            self.report("ground_unreachable", {"cmd": out.cmd, "reason": str(exc)})
            raise
        cid = int(result["id"])
        self.sent += 1
        self.model.command(cid, out.target, out.cmd, out.args, out.hazardous)
        self.model.stage(cid, "queued", time.time(), target=out.target, cmd=out.cmd)
        self.report("command_sent", {"id": cid, "target": out.target, "cmd": out.cmd, "hazardous": out.hazardous})
        return cid

    def refuse(self, body: dict[str, Any], exc: CommandRejected) -> JSONResponse:
        hazardous = isinstance(exc, HazardRefused)
        if hazardous:
            self.hazardous_refused += 1
        else:
            self.refused += 1
        self.report("hazardous_refused" if hazardous else "command_refused",
                    {"target": str(body.get("target", "")), "cmd": str(body.get("cmd", "")), "reason": str(exc)})
        return JSONResponse({"error": str(exc), "hazardous": hazardous}, status_code=403 if hazardous else 400)

    def sample(self) -> dict[str, Any]:
        return {"clients": self.clients, "commands_sent": self.sent, "commands_refused": self.refused,
                "hazardous_refused": self.hazardous_refused, "ground_unreachable": self.unreachable}

    def __post_init__(self) -> None:
        self.shelf = ProductShelf(self.archive)

    def link(self) -> dict[str, Any]:
        """Contact windows and the archive's CFDP transactions (none, with the reason, if it cannot be read)."""
        try:
            return {**self.windows(), "transactions": self.archive.transactions(), "archive": self.archive.status()}
        except ArchiveUnavailable:
            return {**self.windows(), "transactions": [], "archive": self.archive.status()}

    def events(self, min_severity: str | None = None, source: str | None = None,
               limit: int = _EVENTS_SHOWN) -> list[dict[str, Any]]:
        """The event log: the archive's (the lander's and the station's), and the live model's events of
        the other ground processes (the archive does not keep those), newest ``limit``, oldest first."""
        try:
            kept = self.archive.events(min_severity=min_severity, source=source, limit=limit)
        except ArchiveUnavailable:
            kept = []
        level = _SEVERITY_LEVEL.get(min_severity or "info", 0)
        live = [e for e in self.model.snapshot_events() if e["origin"] == "ground" and e["process"] != self.station
                and _SEVERITY_LEVEL.get(e["severity"], 1) >= level and (not source or e["process"] == source)]
        return sorted(kept + live, key=lambda e: e["t"])[-limit:]

    def history(self, process: str, channel: str, t0: float | None, t1: float | None) -> dict[str, Any]:
        """A lander channel from the archive (all of it in the range); any other from the live model."""
        if process in self.model.lander:
            return {"points": self.archive.history(process, channel, t0, t1, self.model.history_points * 10),
                    "from": "archive"}
        points = [p for p in self.model.history(process, channel)
                  if (t0 is None or p[0] >= t0) and (t1 is None or p[0] <= t1)]
        return {"points": points, "from": "live"}


_SEVERITY_LEVEL = {"info": 0, "warning": 1, "error": 2}


def _number(q: Any, name: str) -> float | None:
    raw = q.get(name)
    if raw in (None, ""):
        return None
    try:
        return float(raw)
    except ValueError:
        raise CommandRejected(f"{name}={raw!r} is not a number") from None


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise CommandRejected(f"request body over {_MAX_BODY} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise CommandRejected(f"request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise CommandRejected("request body must be a JSON object")
    return body


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, default=str, allow_nan=False), status_code=status,
                    media_type="application/json")


def build_app(console: Console) -> Starlette:
    """The console's ASGI app."""

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    def snapshot() -> dict[str, Any]:
        snap = console.model.snapshot()
        snap["events"] = console.events()
        return {**snap, "catalog": console.desk.catalog(), "channels": console.model.channels(),
                "hazardous_enabled": console.desk.hazardous_enabled, "link": console.link()}

    async def state(request: Request) -> Response:
        return _json(await run_in_threadpool(snapshot))

    async def link(request: Request) -> Response:
        return _json(await run_in_threadpool(console.link))

    async def missing(request: Request) -> Response:
        return _json(await run_in_threadpool(console.archive.missing))

    async def products(request: Request) -> Response:
        q = request.query_params
        limit = _number(q, "limit")
        query = {"camera": q.get("camera") or None, "kind": q.get("kind") or None, "t0": _number(q, "since"),
                 "t1": _number(q, "until"), "min_grade": _number(q, "min_grade"),
                 "max_grade": _number(q, "max_grade"), "limit": None if limit is None else int(limit)}
        return _json({"products": await run_in_threadpool(lambda: console.archive.cards(**query))})

    async def product(request: Request) -> Response:
        pid = request.path_params["pid"]
        card = await run_in_threadpool(console.archive.card, pid) if safe_id(pid) else None
        return _json(card) if card is not None else _json({"error": "no such product"}, 404)

    async def events(request: Request) -> Response:
        q = request.query_params
        severity = q.get("min_severity") or None
        if severity is not None and severity not in _SEVERITY_LEVEL:
            raise CommandRejected(f"min_severity={severity!r}: expected one of {', '.join(_SEVERITY_LEVEL)}")
        limit = int(_number(q, "limit") or _EVENTS_SHOWN)
        return _json({"events": await run_in_threadpool(
            lambda: console.events(severity, q.get("source") or None, max(1, min(limit, 10 * _EVENTS_SHOWN))))})

    async def stream(request: Request) -> Response:
        try:
            cursor = int(request.query_params.get("cursor", console.model.feed.head))
        except ValueError:
            cursor = console.model.feed.head

        async def events() -> Any:
            nonlocal cursor
            console.clients += 1
            idle = 0.0
            try:
                yield "retry: 1000\n\n"
                while not console.stopping.is_set():
                    items, cursor, lost = console.model.feed.since(cursor)
                    if lost:
                        yield "event: reload\ndata: {}\n\n"
                    for item in items:
                        yield f"data: {json.dumps(item, default=str)}\n\n"
                    idle = 0.0 if items else idle + _STREAM_POLL_S
                    if idle >= _KEEPALIVE_S:
                        idle = 0.0
                        yield ": keepalive\n\n"
                    await asyncio.sleep(_STREAM_POLL_S)
            finally:
                console.clients -= 1

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def image(request: Request) -> Response:
        path = await run_in_threadpool(console.shelf.png, request.path_params["pid"])
        if path is None:
            return _json({"error": "no such product image"}, 404)
        return FileResponse(path, media_type="image/png")

    async def preview(request: Request) -> Response:
        png = await run_in_threadpool(console.shelf.preview, request.path_params["pid"])
        if png is None:
            return _json({"error": "no such product image"}, 404)
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    async def pixels(request: Request) -> Response:
        pid = request.path_params["pid"]
        card = await run_in_threadpool(console.archive.card, pid) if safe_id(pid) else None
        px = await run_in_threadpool(console.shelf.pixels, pid, (card or {}).get("bit_depth"))
        if px is None:
            return _json({"error": "no such product image"}, 404)
        return Response(px.data, media_type="application/octet-stream",
                        headers={"X-Width": str(px.width), "X-Height": str(px.height),
                                 "X-Bytes-Per-Pixel": str(px.bytes_per_pixel), "X-Bit-Depth": str(px.bit_depth),
                                 "Cache-Control": "no-store"})

    async def history(request: Request) -> Response:
        q = request.query_params
        t0, t1 = _number(q, "since"), _number(q, "until")
        return _json(await run_in_threadpool(console.history, q.get("process", ""), q.get("channel", ""), t0, t1))

    async def command(request: Request) -> Response:
        body: dict[str, Any] = {}
        try:
            body = await _body(request)
            out = console.desk.check(str(body.get("target", "")), str(body.get("cmd", "")), body.get("args") or {},
                                     confirm=body.get("confirm", ""), key=body.get("key", ""))
            return _json({"id": await console.send(out), "target": out.target, "cmd": out.cmd, "args": out.args})
        except GroundUnreachable as exc:
            return _json({"error": str(exc)}, 502)
        except CommandRejected as exc:
            return console.refuse(body, exc)

    async def request_frame(request: Request) -> Response:
        body: dict[str, Any] = {}
        try:
            body = await _body(request)
            counter = body.get("counter")
            region = body.get("region")
            out = console.desk.frame_request(str(body.get("camera", "")),
                                             counter if isinstance(counter, int) else None,
                                             body.get("product") if isinstance(body.get("product"), str) else None,
                                             region if isinstance(region, list) else None)
            return _json({"id": await console.send(out), "target": out.target, "cmd": out.cmd, "args": out.args})
        except GroundUnreachable as exc:
            return _json({"error": str(exc)}, 502)
        except CommandRejected as exc:
            return console.refuse(body, exc)

    routes = [
        Route("/", index),
        Route("/api/state", state),
        Route("/api/link", link),
        Route("/api/missing", missing),
        Route("/api/stream", stream),
        Route("/api/history", history),
        Route("/api/events", events),
        Route("/api/products", products),
        Route("/api/products/{pid}", product),
        Route("/api/products/{pid}/image", image),
        Route("/api/products/{pid}/preview", preview),
        Route("/api/products/{pid}/pixels", pixels),
        Route("/api/command", command, methods=["POST"]),
        Route("/api/request", request_frame, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={
        ArchiveUnavailable: lambda request, exc: _json({"error": str(exc)}, 503),
        CommandRejected: lambda request, exc: _json({"error": str(exc)}, 400)})
