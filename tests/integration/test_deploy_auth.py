"""The deploy driver's CURVE command port against a revoked operator and a flood of unknown keys.

A key removed from ``authorized/`` is refused on its next command over the connection it already has;
a thousand random keys make a handful of ``auth_refused`` events (rate-limited over all keys), not one
each, and the driver keeps no table per key.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import zmq

from framework.bus.auth import AUTHORIZED_DIR, generate_keypair
from framework.bus.commands import CommandClient, CurveClientKeys
from tests.integration.test_deploy_chain import MECH, Rig

pytestmark = pytest.mark.integration


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, "holddown_release", 20.0)
    try:
        yield r.start()
    finally:
        r.close()


def statuses(replies: list[Any]) -> list[str]:
    return [x.status for x in replies]


def test_a_revoked_key_is_refused_on_its_next_command_over_its_open_connection(rig: Rig) -> None:
    assert statuses(rig.op.call("ARM", {"mechanism": MECH}, 5)) == ["accepted", "completed"]
    assert statuses(rig.op.call("DISARM", {"mechanism": MECH}, 5)) == ["accepted", "completed"]
    (rig.keys / AUTHORIZED_DIR / "operator.key").unlink()  # revoked; the connection stays up
    again = rig.op.call("ARM", {"mechanism": MECH}, 5)
    assert statuses(again) == ["rejected"] and "allow-list" in again[0].reason
    fire = rig.op.call("FIRE", {"mechanism": MECH}, 5)
    assert statuses(fire) == ["rejected"]
    for harmless in ("STATUS", "NOOP", "RESET_COUNTERS"):  # every command, not only the hazardous ones
        refused = rig.op.call(harmless, {}, 5)
        assert statuses(refused) == ["rejected"] and "allow-list" in refused[0].reason, harmless
    other = rig.client(rig.other)  # a key still on the list goes on working
    assert statuses(other.call("ARM", {"mechanism": MECH}, 5)) == ["accepted", "completed"]
    assert statuses(other.call("DISARM", {"mechanism": MECH}, 5)) == ["accepted", "completed"]
    assert rig.truth()["state"] == "stowed"


def test_a_flood_of_unknown_keys_makes_a_few_refusal_events_not_one_per_key(rig: Rig, tmp_path: Path) -> None:
    n_keys = 300
    clients = []
    try:
        for i in range(n_keys):
            public, secret = zmq.curve_keypair()
            c = CommandClient(rig.ctx, rig.ep["cmd"], CurveClientKeys(public, secret, rig.service.public))
            c.sock.setsockopt(zmq.SNDTIMEO, 0)
            clients.append(c)
        start = time.monotonic()
        rig.drain(3.0)
        elapsed = time.monotonic() - start
    finally:
        for c in clients:
            c.close()
    refused = [e for e in rig.events if e["name"] == "auth_refused"]
    health = [t for t in rig.tlm if t.get("kind") == "health" or "auth_refused" in t]
    assert refused, "the refusals are reported"
    assert len(refused) <= elapsed + 3, f"{len(refused)} auth_refused events for {n_keys} keys in {elapsed:.1f} s"
    assert sum(e["count"] for e in refused) >= len(refused)
    assert max(t.get("auth_refused", 0) for t in health) >= n_keys // 2, "every refusal is counted"
    assert statuses(rig.op.call("NOOP", {}, 5)) == ["accepted", "completed"]
