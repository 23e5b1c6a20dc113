"""What pdh demo and pdh cmd say while and after they run (issue 14 item 4): the same `confirmed`
in the progress line and the summary, a recovered CFDP transfer shown as recovered, a FAIL that
always says why, and a command followed through accepted to completed with progress between."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

from framework.bus.message import Header, Message
from pdh.monitor import RunState


def _evt(src: str, name: str, **fields: Any) -> Message:
    return Message(f"evt.{src}", Header(src, 0, 0.0, "event", {"name": name, **fields}))


def _product(pid: str, kind: str = "full") -> Message:
    return Message(f"product.{kind}", Header("imaging", 0, 0.0, "product", {"id": pid, "camera": "cam",
                                                                            "counter": 1}))


def test_confirmed_in_the_progress_line_counts_products_as_the_summary_does() -> None:
    from pdh.demo import _row

    state = RunState()
    for m in (_product("cam-1-full"), _evt("downlink", "product_confirmed", id="cam-1-full"),
              _evt("downlink", "product_confirmed", id="tm-0001")):  # a telemetry segment, not a product
        state.feed(m, 0.0, 0.0)
    config = SimpleNamespace(processes_of_kind=lambda kind: [])
    sup = SimpleNamespace(alive=lambda: {}, children={})
    row = _row(state, config, sup, 0.0)  # type: ignore[arg-type]
    assert row["confirmed"] == len(state.confirmed & set(state.made)) == 1


def test_a_failed_transfer_whose_product_was_confirmed_later_is_shown_recovered() -> None:
    from pdh.demo import event_lines

    state = RunState()
    for m in (_evt("downlink", "transaction_failed", id="cam-1-full", severity="warning", reason="inactivity"),
              _evt("ground", "transfer_failed", file="cam-1-full", severity="warning", condition="inactivity"),
              _evt("downlink", "transaction_failed", id="cam-2-full", severity="warning", reason="inactivity"),
              _evt("downlink", "product_confirmed", id="cam-1-full")):
        state.feed(m, 0.0, 0.0)
    assert state.transfers_recovered() == {"downlink: transaction_failed": (1, 1), "ground: transfer_failed": (1, 0)}
    lines = "\n".join(event_lines(state))
    assert "1 x downlink: transaction_failed" in lines  # cam-2 is still a failure
    assert "recovered" in lines and "ground: transfer_failed (sent again" in lines
    assert "x ground: transfer_failed\n" not in lines + "\n"  # not counted among the failures


def test_every_fail_says_why() -> None:
    from pdh.demo import failure_reasons

    assert failure_reasons({}, "", ["interrupted by SIGTERM"]) == ["interrupted by SIGTERM"]
    assert failure_reasons({"processes_given_up": {"cam": "process_crashed: OSError: busy"}}, "", []) == [
        "cam was given up: process_crashed: OSError: busy"]
    assert "pcap" in failure_reasons({"pcap_problems": ["truncated"]}, "", [])[0]
    assert "bus messages lost" in failure_reasons({"products_made_per_imaging_tlm": 3, "products_made": 2}, "", [])[0]
    assert failure_reasons({}, "", []) != []  # never an empty reason


def test_cmd_prints_accepted_at_once_then_progress_then_completed() -> None:
    import zmq

    from framework.bus.commands import CommandClient, CommandServer, Deferred
    from pdh.cli_command import follow_command

    ctx = zmq.Context()
    server = CommandServer(ctx, "inproc://follow")
    client = CommandClient(ctx, "inproc://follow")
    held: list[Deferred] = []
    server.register("SLOW", lambda args: held.append(Deferred()) or held[-1])
    lines: list[str] = []
    notes: list[str] = []
    stop = threading.Event()

    def serve() -> None:  # the service's loop: finishes the work once the client has said it is waiting
        while not stop.is_set():
            server.poll(20)
            if held and not held[0].done and len(notes) >= 2:
                held[0].complete({"done": True})

    t = threading.Thread(target=serve)
    t.start()
    try:
        replies = follow_command(client, "SLOW", {}, timeout_s=10, wait_s=60, say=lines.append, note=notes.append,
                                 every_s=0.05)
    finally:
        stop.set()
        t.join(timeout=10)
        client.close()
        server.close()
        ctx.destroy(linger=0)
    assert [r.status for r in replies] == ["accepted", "completed"]
    assert lines[0].startswith("accepted") and lines[-1].startswith("completed") and "done" in lines[-1]
    assert notes and all("still working" in n for n in notes)
