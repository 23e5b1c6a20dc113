"""`pdh cmd imaging MAKE_LOSSY ...` (issue 14 item 4): the imaging core answers `accepted` at once and
`completed` when the encoding is done, so the operator sees the command taken while it works, never
"no reply" for a command that ran."""

from __future__ import annotations

import collections
import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from fsw.imaging.frame import Frame


def _frame(counter: int) -> Frame:
    px = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * (counter + 1)) % 4096
    return Frame("cam", counter, px, 12, "mono", 1000, 1.0, 20.0, 1.0e9 + counter, 0)


def test_make_lossy_is_accepted_before_its_encoding_ends_then_completed(monkeypatch: pytest.MonkeyPatch) -> None:
    import zmq

    import fsw.imaging.commands as commands
    from framework.bus.commands import CommandClient, CommandServer, register_table
    from fsw.imaging.interface import INTERFACE
    from pdh.cli_command import follow_command

    gate = threading.Event()  # the encoding waits until the operator has seen "accepted"
    real = commands.make_lossy

    def slow_lossy(*a: Any, **k: Any) -> Any:
        gate.wait(timeout=10)
        return real(*a, **k)

    monkeypatch.setattr(commands, "make_lossy", slow_lossy)
    made: list[Any] = []
    recent = {"cam": collections.deque([(_frame(7), {"score": 0.5})])}
    work = commands.CommandWork()
    core = SimpleNamespace(cameras=["cam"], recent=recent, codec="zstd", command_work=work,
                           recent_frame=lambda cam, n: recent[cam][-1] if n in (None, 7) else None,
                           emit=lambda p, requested=False: made.append(p))
    ctx = zmq.Context()
    server = CommandServer(ctx, "inproc://imaging-deferred", interface=INTERFACE)
    register_table(server, INTERFACE, commands.handlers(core))  # type: ignore[arg-type]
    client = CommandClient(ctx, "inproc://imaging-deferred")
    stop = threading.Event()

    def loop() -> None:  # the imaging process's turn: commands in, finished work answered
        while not stop.is_set():
            server.poll(10)
            work.finish()

    t = threading.Thread(target=loop)
    t.start()
    seen: list[tuple[str, bool]] = []

    def say(line: str) -> None:
        seen.append((line.split()[0], gate.is_set()))
        gate.set()

    try:
        replies = follow_command(client, "MAKE_LOSSY", {"camera": "cam", "counter": 7, "budget_bytes": 1650},
                                 timeout_s=5, wait_s=30, say=say, note=lambda _l: None)
    finally:
        gate.set()
        stop.set()
        t.join(timeout=10)
        work.close()
        client.close()
        server.close()
        ctx.destroy(linger=0)
    assert [r.status for r in replies] == ["accepted", "completed"]
    assert seen[0] == ("accepted", False)  # seen while the encoding was still waiting
    assert replies[-1].result["id"] == made[-1].id and made[-1].counter == 7


def test_a_product_that_cannot_be_made_fails_after_acceptance_naming_why() -> None:
    import fsw.imaging.commands as commands
    from framework.bus.commands import Deferred
    from framework.errors import ProductError

    work = commands.CommandWork()

    def fails() -> Any:
        raise ProductError("budget too small for this frame")

    deferred = work.submit(fails, lambda p: {})
    assert isinstance(deferred, Deferred)
    replies: list[dict[str, Any]] = []
    deferred._bind(SimpleNamespace(_reply=lambda ident, body: replies.append(body), _on_event=lambda n, f: None),
                   b"x", 1, "MAKE_LOSSY")  # type: ignore[arg-type]
    work.close()
    assert replies == [{"id": 1, "status": "failed", "reason": "budget too small for this frame", "result": None}]
