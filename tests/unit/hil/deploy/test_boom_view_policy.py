"""BoomViewPolicy: when the mechanism emulator sends the camera scene a new boom angle (fake clock)."""

from __future__ import annotations

from hil.deploy.view import BoomViewPolicy


def _run(policy: BoomViewPolicy, samples: list[tuple[float, float, bool]], link_up: bool = True) -> list[float]:
    sent: list[float] = []
    for now, angle, moving in samples:
        deg = policy.due(now, angle, moving)
        if deg is not None and link_up:
            policy.sent(now, deg)
            sent.append(deg)
    return sent


def test_first_angle_is_sent_at_once() -> None:
    assert _run(BoomViewPolicy(), [(0.0, 0.0, False)]) == [0.0]


def test_small_moves_are_not_sent_while_moving() -> None:
    p = BoomViewPolicy()
    samples = [(0.0, 0.0, True)] + [(0.2 + 0.2 * i, 0.1 * (i + 1), True) for i in range(4)]
    assert _run(p, samples) == [0.0]


def test_a_swing_is_sent_at_most_ten_times_a_second() -> None:
    p = BoomViewPolicy()
    # 1 s of a boom swinging 90 deg, sampled at 200 Hz
    samples = [(i / 200, 90.0 * i / 200, True) for i in range(201)]
    sent = _run(p, samples)
    assert 2 <= len(sent) <= 11
    assert all(b - a > 0.5 for a, b in zip(sent, sent[1:]))


def test_rest_angle_is_sent_exactly_even_below_the_step() -> None:
    p = BoomViewPolicy()
    sent = _run(p, [(0.0, 47.0, True), (0.5, 47.3, True), (1.0, 47.3, False)])
    assert sent == [47.0, 47.3]


def test_unchanged_angle_is_refreshed_for_a_restarted_camera() -> None:
    p = BoomViewPolicy(refresh_s=2.0)
    sent = _run(p, [(0.0, 90.0, False), (1.0, 90.0, False), (2.5, 90.0, False), (3.0, 90.0, False)])
    assert sent == [90.0, 90.0]


def test_update_the_link_could_not_send_is_retried_at_the_next_allowed_moment() -> None:
    p = BoomViewPolicy()
    assert _run(p, [(0.0, 30.0, True)], link_up=False) == []
    assert p.due(0.05, 30.0, True) is None  # rate limit holds for tries too
    assert _run(p, [(0.2, 30.0, True)]) == [30.0]


def test_angle_outside_the_scene_range_is_clamped() -> None:
    assert _run(BoomViewPolicy(), [(0.0, 200.0, False)]) == [180.0]
    assert _run(BoomViewPolicy(), [(0.0, -3.0, False)]) == [0.0]
