"""MAKE_LOSSY pick=best: the held frame of the camera with the best grade score, never a guess."""

from __future__ import annotations

import collections
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from framework.errors import CommandRejected
from fsw.imaging.commands import handlers
from fsw.imaging.frame import Frame
from fsw.imaging.interface import INTERFACE


def _frame(counter: int) -> Frame:
    px = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * (counter + 1)) % 4096
    return Frame("cam", counter, px, 12, "mono", 1000, 1.0, 20.0, 1.0e9 + counter, 0)


def _core(scores: dict[int, float]) -> tuple[SimpleNamespace, list[Any]]:
    made: list[Any] = []
    recent = {"cam": collections.deque((_frame(c), {"score": s}) for c, s in scores.items())}

    def recent_frame(cam: str, counter: int | None) -> Any:
        return next((h for h in reversed(recent[cam]) if counter is None or h[0].counter == counter), None)

    core = SimpleNamespace(cameras=["cam"], recent=recent, recent_frame=recent_frame, codec="zstd",
                           emit=lambda p, requested=False: made.append(p))
    return core, made


def _lossy(core: Any, **args: Any) -> dict[str, Any]:
    checked = INTERFACE.validate_args("MAKE_LOSSY", {"camera": "cam", "budget_bytes": 2000, **args})
    return handlers(core)["MAKE_LOSSY"](checked)


def test_pick_best_takes_the_held_frame_with_the_highest_score() -> None:
    core, made = _core({10: 0.2, 11: 0.9, 12: 0.5})
    _lossy(core, pick="best")
    assert made[-1].counter == 11


def test_pick_best_takes_the_newest_of_equal_scores_and_newest_is_the_default() -> None:
    core, made = _core({10: 0.7, 11: 0.7, 12: 0.1})
    _lossy(core, pick="best")
    assert made[-1].counter == 11
    _lossy(core, pick="newest")
    _lossy(core)
    assert [p.counter for p in made[-2:]] == [12, 12]


def test_pick_best_with_a_counter_or_with_nothing_held_is_rejected() -> None:
    core, _ = _core({10: 0.5})
    with pytest.raises(CommandRejected, match="not both"):
        _lossy(core, pick="best", counter=10)
    empty, _ = _core({})
    with pytest.raises(CommandRejected, match="not held"):
        _lossy(empty, pick="best")


def test_pick_is_one_of_newest_or_best() -> None:
    with pytest.raises(CommandRejected, match="must be one of"):
        INTERFACE.validate_args("MAKE_LOSSY", {"camera": "cam", "budget_bytes": 2000, "pick": "sharpest"})
