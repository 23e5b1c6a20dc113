"""The verdict counts every frame of the manifest: at the ground bit-exact, thumbnail-only by policy, or named
by an event; a frame that is none of these fails the run, named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from framework.crc import pixels_crc32c
from ground.ledger import Ledger
from pdh.verify import Naming, account_frames, ground_events, read_manifest


def _px(n: int) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 4096, (8, 12), dtype=np.uint16)


def _run(tmp_path: Path, frames: int = 4, spoilt: tuple[int, ...] = ()) -> tuple[Path, Path]:
    """OUT with a manifest of ``frames`` frames of camera nav, each at the ground (full PNG and thumbnail)."""
    out = tmp_path / "out"
    (out / "hil").mkdir(parents=True)
    ground = out / "ground"
    ground.mkdir()
    lines = []
    for n in range(frames):
        rec: dict[str, Any] = {"camera": "nav", "counter": n, "shape": [8, 12], "crc32c": pixels_crc32c(_px(n))}
        if n in spoilt:
            rec["fault"] = "corrupt"
        lines.append(json.dumps(rec))
        cv2.imwrite(str(ground / f"nav-{n:08d}-full.png"), _px(n))
        cv2.imwrite(str(ground / f"nav-{n:08d}-thumbnail.png"), np.zeros((4, 6), np.uint8))
    (out / "hil" / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return out, ground


def _judge(out: Path, ground: Path, events: list[tuple[str, dict[str, Any]]] = (),
           src_camera: dict[str, str] | None = None) -> Any:
    naming = Naming()
    for src, f in events:
        naming.add(src, f, src_camera)
    return account_frames(read_manifest(out / "hil" / "manifest.jsonl"), ground, naming)


def test_every_frame_at_the_ground_passes(tmp_path: Path) -> None:
    out, ground = _run(tmp_path)
    check = _judge(out, ground)
    assert check.ok and len(check.at_ground) == 4 and check.failure() == ""


def test_a_lost_frame_that_no_event_names_fails_the_run_and_is_named(tmp_path: Path) -> None:
    out, ground = _run(tmp_path)
    (ground / "nav-00000002-full.png").unlink()
    (ground / "nav-00000003-full.png").unlink()
    (ground / "nav-00000003-thumbnail.png").unlink()
    check = _judge(out, ground)
    assert not check.ok
    assert check.missing == {"nav/2": ["full"], "nav/3": ["full", "thumbnail"]}
    assert "nav/2 (full)" in check.failure() and "nav/3 (full+thumbnail)" in check.failure()


def test_frames_named_by_events_are_accounted_for(tmp_path: Path) -> None:
    out, ground = _run(tmp_path, frames=8)
    for n in (1, 2, 3, 5, 6, 7):
        (ground / f"nav-{n:08d}-full.png").unlink()
        if n != 3:
            (ground / f"nav-{n:08d}-thumbnail.png").unlink()
    events = [
        ("imaging", {"name": "frames_lost", "camera": "nav", "ranges": [[1, 2]], "reason": "not_received",
                     "products": ["full", "thumbnail"]}),
        ("imaging", {"name": "frames_thumbnail_only", "camera": "nav", "counters": [3], "reason": "rule"}),
        ("navcam_driver", {"name": "frame_counter_gap", "counter": 6, "previous": 4, "missing": 1}),
        ("downlink", {"name": "product_evicted", "id": "nav-00000006-full"}),
        ("downlink", {"name": "product_evicted", "id": "nav-00000006-thumbnail"}),
        ("imaging", {"name": "product_failed", "camera": "nav", "counter": 7, "products": ["full", "thumbnail"]}),
        ("imaging", {"name": "frame_rejected", "camera": "nav", "counter": 0}),  # not a naming event
    ]
    check = _judge(out, ground, events, {"navcam_driver": "nav"})
    assert check.ok, check.failure()
    assert check.thumbnail_only == ["nav/3"]
    assert sorted(check.named) == ["nav/1", "nav/2", "nav/5", "nav/6", "nav/7"]
    assert check.named["nav/5"] == ["navcam_driver: frame_counter_gap"]
    assert check.at_ground == ["nav/0", "nav/4"]


def test_an_event_naming_only_the_full_frame_leaves_the_thumbnail_expected(tmp_path: Path) -> None:
    out, ground = _run(tmp_path, frames=2)
    (ground / "nav-00000001-full.png").unlink()
    (ground / "nav-00000001-thumbnail.png").unlink()
    events = [("imaging", {"name": "frames_lost", "camera": "nav", "ranges": [[1, 1]], "products": ["full"]})]
    check = _judge(out, ground, events)
    assert check.missing == {"nav/1": ["thumbnail"]}


def test_a_full_frame_at_the_ground_that_is_not_the_cameras_fails_even_when_named(tmp_path: Path) -> None:
    out, ground = _run(tmp_path, frames=2)
    cv2.imwrite(str(ground / "nav-00000001-full.png"), _px(99))
    events = [("imaging", {"name": "frames_lost", "camera": "nav", "ranges": [[1, 1]]})]
    check = _judge(out, ground, events)
    assert not check.ok and check.mismatched == ["nav/1"]


def test_frames_the_emulator_spoilt_are_not_expected_and_an_empty_manifest_fails(tmp_path: Path) -> None:
    out, ground = _run(tmp_path, frames=3, spoilt=(1,))
    (ground / "nav-00000001-full.png").unlink()
    check = _judge(out, ground)
    assert check.ok and check.spoilt == ["nav/1"]
    empty, g2 = _run(tmp_path / "e", frames=0)
    assert not _judge(empty, g2).ok


def test_malformed_naming_events_name_nothing(tmp_path: Path) -> None:
    out, ground = _run(tmp_path, frames=2)
    (ground / "nav-00000001-full.png").unlink()
    naming = Naming()
    for f in ({"name": "frames_lost", "camera": "nav", "ranges": [[1]]}, {"name": "frames_lost", "ranges": [[1, 1]]},
              {"name": "frames_lost", "camera": 5, "counter": 1}, {"name": "product_evicted", "id": "garbage"},
              {"name": "frames_lost", "camera": "nav", "counters": ["1", True]}, {"name": 3}):
        naming.add("imaging", f)
    assert not account_frames(read_manifest(out / "hil" / "manifest.jsonl"), ground, naming).ok


def test_the_grounds_ledger_gives_back_the_landers_events(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.add_telemetry([[1.0, "evt.imaging", "imaging", {"name": "frames_lost", "camera": "nav", "ranges": [[3, 4]]}],
                          [2.0, "tlm.imaging", "imaging", {"frames_in": 3}]])
    ledger.close()
    assert ground_events(tmp_path / "ledger.sqlite") == [
        ("imaging", {"name": "frames_lost", "camera": "nav", "ranges": [[3, 4]]})]
    assert ground_events(tmp_path / "absent.sqlite") == []
