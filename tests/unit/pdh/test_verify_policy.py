"""The verdict tells the policy from a loss: a frame whose full product the capture path gave up by policy
(falling behind its ring, the store full by its quota) or the store evicted by its quota's order, and whose
thumbnail is at the ground, counts as thumbnail only; a full product lost to a rewrite does not."""

from __future__ import annotations

from pathlib import Path

from pdh.verify import by_policy
from tests.unit.pdh.test_verify_frames import _judge, _run


def test_thumbnails_kept_by_policy_count_as_thumbnail_only_and_a_loss_does_not(tmp_path: Path) -> None:
    out, ground = _run(tmp_path, frames=5)
    for n in (1, 2, 3, 4):
        (ground / f"nav-{n:08d}-full.png").unlink()
    events = [
        ("imaging", {"name": "frames_thumbnail_only", "camera": "nav", "counters": [1], "reason": "falling_behind",
                     "seconds_left": 0.1, "seconds_needed": 0.5}),
        ("imaging", {"name": "frames_thumbnail_only", "camera": "nav", "counters": [2], "reason": "store_full",
                     "product": "nav-00000002-full"}),
        ("downlink", {"name": "product_evicted", "id": "nav-00000003-full", "reason": "store over quota"}),
        ("imaging", {"name": "frames_lost", "camera": "nav", "ranges": [[4, 4]], "reason": "shm_overwritten",
                     "products": ["full"]}),
    ]
    check = _judge(out, ground, events)
    assert check.ok, check.failure()
    assert check.at_ground == ["nav/0"]
    assert check.thumbnail_only == ["nav/1", "nav/2", "nav/3"]
    assert list(check.named) == ["nav/4"]  # named, so the run passes, but lost: not the policy's choice
    assert check.named["nav/4"] == ["imaging: frames_lost (shm_overwritten)"]


def test_by_policy_reads_the_reasons_the_naming_gives() -> None:
    assert by_policy(["imaging: frames_thumbnail_only (store_full)"])
    assert by_policy(["downlink: product_evicted (store over quota)"])
    assert not by_policy(["imaging: frames_lost (downlink_refused)", "imaging: product_failed"])
    assert not by_policy([])
