"""framework.clock.StepClock: wall time plus the offset a bench wrote, read cheaply, never thrown off by junk."""

from __future__ import annotations

import math
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from framework.clock import MAX_OFFSET_S, StepClock, offset_path


class Fake:
    def __init__(self) -> None:
        self.wall = 1_000_000.0
        self.mono = 0.0


def clock_at(path: Path, fake: Fake, check_s: float = 0.25) -> StepClock:
    return StepClock(path, check_s=check_s, wall=lambda: fake.wall, monotonic=lambda: fake.mono)


def test_no_file_is_no_offset_and_a_written_offset_moves_the_clock(tmp_path: Path) -> None:
    fake = Fake()
    path = offset_path(tmp_path, "imaging")
    clock = clock_at(path, fake)
    assert clock() == fake.wall
    path.parent.mkdir(parents=True)
    path.write_text("3600.5\n")
    fake.mono += 1.0
    assert clock() == fake.wall + 3600.5
    path.write_text("-60\n")
    fake.mono += 1.0
    assert clock() == fake.wall - 60
    path.unlink()
    fake.mono += 1.0
    assert clock() == fake.wall


def test_the_file_is_looked_at_only_every_check_interval(tmp_path: Path) -> None:
    fake = Fake()
    path = tmp_path / "p.offset_s"
    clock = clock_at(path, fake, check_s=5.0)
    assert clock() == fake.wall
    path.write_text("10")
    fake.mono += 1.0
    assert clock() == fake.wall  # not looked at yet
    fake.mono += 5.0
    assert clock() == fake.wall + 10


@settings(max_examples=60, deadline=None)
@given(junk=st.one_of(st.binary(max_size=200), st.sampled_from([b"nan", b"inf", b"-inf", b"1e400", b"",
                                                                   str(MAX_OFFSET_S * 2).encode()])))
def test_junk_in_the_file_keeps_the_last_good_offset_and_is_counted(tmp_path_factory, junk: bytes) -> None:
    fake = Fake()
    path = tmp_path_factory.mktemp("c") / "p.offset_s"
    path.write_text("7")
    clock = clock_at(path, fake)
    assert clock() == fake.wall + 7
    path.write_bytes(junk)
    fake.mono += 1.0
    got = clock()
    assert math.isfinite(got)
    try:
        value = float(junk.decode("ascii").strip())
        fine = math.isfinite(value) and abs(value) <= MAX_OFFSET_S and len(junk) <= 64
    except (UnicodeDecodeError, ValueError):
        fine = False
    if fine:
        assert got == fake.wall + value
    else:
        assert got == fake.wall + 7 and clock.bad_reads == 1
