"""A full disk under the downlink: it never dies of it, holds what it cannot store, and recovers by itself.

The disk fills for real, without root: each scenario runs in a child process whose file-size limit
(RLIMIT_FSIZE, :class:`tests.unit.fsw.downlink.chain.FileSizeLimit`) is lowered and raised again, so
every write that would extend a file fails in the kernel, in SQLite's own I/O as in Python's. (A small
tmpfs or loop device needs privileges; a limit on one process needs none, and can be lifted again,
which is "space returns".) The ground the child talks to is in the same process: it is given nothing
to write while the disk is full (an outage), and the Finished PDUs it sent before wait to be delivered.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).parents[4]

_PRELUDE = """
import json, sys, time
from pathlib import Path
from tests.unit.fsw.downlink.chain import FileSizeLimit, Ground, hk_packet, make_forwarder, make_product, products_message
from tests.unit.link.fakes import Bus, Radio
out = Path(sys.argv[1])
disk = FileSizeLimit()
bus, radio = Bus(), Radio()
"""


def run_child(tmp_path: Path, body: str) -> dict[str, Any]:
    """Run ``body`` (after the prelude) in a child process; its last stdout line is JSON."""
    script = _PRELUDE + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=REPO, capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def test_a_full_disk_during_a_pass_holds_products_and_confirmations_and_all_goes_when_space_returns(
        tmp_path: Path) -> None:
    got = run_child(tmp_path, """
        fwd = make_forwarder(out, bus, radio, record_telemetry=True,
                             telemetry={"segment_s": 0.05, "alert_flush_s": 0.01})
        ground = Ground(out / "ground")
        a, b, c = (make_product(i, side=96) for i in (1, 2, 3))
        fwd.take_product(products_message(a))
        fwd.take_product(products_message(c))
        # A reaches the ground; its EOF ACK and Finished wait
        assert ground.run(fwd, radio, lambda: any(a.id in n for n in ground.names), deliver=False)
        ground.listening = False
        disk.full()
        fwd.take_product(products_message(b))          # cannot be stored now
        fwd.recorder.add(hk_packet(time.time(), {"frames_in": 1}), False, time.monotonic())
        time.sleep(0.1)
        for _ in range(30):                            # the Finished arrives; C would start; telemetry is due
            ground.exchange(fwd, radio)
            fwd.flush_telemetry()
            time.sleep(0.01)
        during = {"events": bus.names(), "health": fwd.sample(), "accepting": fwd.accepting_products(),
                  "stored": sorted(fwd.store.ids())}
        disk.free()
        ground.listening = True
        def drained():
            fwd.flush_telemetry()
            return len(fwd.store) == 0 and fwd.accepting_products() and not fwd.backlog.segments
        done = ground.run(fwd, radio, drained, timeout_s=30)
        after = {"events": bus.names(), "health": fwd.sample(), "done": done, "ground": ground.names,
                 "confirmed": [e["id"] for e in bus.events if e["name"] == "product_confirmed"]}
        print(json.dumps({"during": during, "after": after, "ids": [a.id, b.id, c.id]}, default=str))
    """)
    during, after, ids = got["during"], got["after"], got["ids"]
    assert "store_unavailable" in during["events"]
    assert during["health"]["store_ok"] == 0 and during["accepting"] is False
    assert during["health"]["products_held"] == 1 and during["health"]["confirmations_held"] == 1
    assert during["health"]["tlm_archive_errors"] >= 1 and during["health"]["segments_held"] >= 1
    for name in ("product_rejected", "product_discarded", "segment_rejected"):
        assert name not in after["events"], after["events"]
    assert after["done"] and "store_available" in after["events"] and after["health"]["store_ok"] == 1
    received = sorted(n.split("-", 1)[1].rsplit(".", 1)[0] for n in after["ground"] if n.endswith(".prod"))
    assert received == sorted(ids)  # each exactly once: A's confirmation was kept, not sent again
    assert sorted(after["confirmed"]) == sorted(set(after["confirmed"])) and set(ids) <= set(after["confirmed"])
    assert any(n.endswith(".tlm") for n in after["ground"])  # the telemetry recorded while full went down too


def test_a_restart_on_a_full_disk_comes_up_resumes_and_reports_instead_of_crashing(tmp_path: Path) -> None:
    got = run_child(tmp_path, """
        from fsw.downlink.store import ProductStore
        a = make_product(1, side=96)
        fwd = make_forwarder(out, bus, radio)
        fwd.take_product(products_message(a))
        ground = Ground(out / "ground")
        ground.listening = False   # the pass is cut: the transaction stays open
        ground.run(fwd, radio, lambda: fwd.store.open_transactions() != [], timeout_s=5)
        assert fwd.store.open_transactions(), "a transaction in flight"
        fwd.store.close()
        disk.full()
        bus2, radio2 = Bus(), Radio()
        fwd = make_forwarder(out, bus2, radio2)      # a restart while the disk is full
        for _ in range(5):
            fwd.step(lambda: False)
        during = {"events": bus2.names(), "health": fwd.sample()}
        disk.free()
        ground.listening = True
        done = ground.run(fwd, radio2, lambda: fwd.store.ready and len(fwd.store) == 0, timeout_s=30)
        print(json.dumps({"during": during, "done": done, "events": bus2.names(), "ground": ground.names}))
    """)
    assert "store_unavailable" in got["during"]["events"] and got["during"]["health"]["store_ok"] == 0
    assert got["done"] and "store_available" in got["events"] and "product_confirmed" in got["events"]
    assert len(got["ground"]) == 1
