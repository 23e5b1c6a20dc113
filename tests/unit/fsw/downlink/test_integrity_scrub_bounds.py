"""The start-up scrub's turn ends at a byte bound or a file bound, whichever comes first: many small payloads
do not make one turn open them all, and large ones do not make it read them all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import fsw.downlink.scrub as scrub_module
from fsw.downlink.integrity import SCRUB_FILES_PER_STEP
from tests.unit.fsw.downlink.chain import make_forwarder, make_product, products_message
from tests.unit.link.fakes import Bus, Radio

N = 11


class CountingOpen:
    """``open`` as the scrub module sees it, counting the payloads it opens."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.n += 1
        return open(*args, **kwargs)


@pytest.fixture
def restarted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A downlink restarted over N small stored payloads (its scrub started, not stepped), and the counter
    of the files its scrub opens."""
    fwd = make_forwarder(tmp_path, Bus(), Radio())
    for i in range(1, N + 1):
        fwd.take_product(products_message(make_product(i, side=12)))
    fwd.store.close()
    bus = Bus()
    fwd = make_forwarder(tmp_path, bus, Radio())
    opened = CountingOpen()
    monkeypatch.setattr(scrub_module, "open", opened, raising=False)
    yield fwd, bus, opened
    fwd.store.close()


def opened_per_step(fwd: Any, opened: CountingOpen, **bounds: int) -> list[int]:
    """Step the scrub to its end; the files each step opened."""
    per_step = []
    while fwd.sample()["scrub_pending"]:
        before = opened.n
        fwd.integrity.scrub_step(**bounds)
        per_step.append(opened.n - before)
        assert len(per_step) <= N, "the scrub does not advance"
    return per_step


def test_many_small_payloads_are_opened_at_most_max_files_per_step(restarted: Any) -> None:
    fwd, bus, opened = restarted
    per_step = opened_per_step(fwd, opened, budget_bytes=1 << 30, max_files=3)  # the byte bound never binds
    assert per_step == [3, 3, 3, 2]
    (done,) = [e for e in bus.events if e["name"] == "scrub_done"]
    assert done["checked"] == N and done["corrupt"] == 0 and done["bytes"] == fwd.store.total_bytes()


def test_the_byte_bound_still_ends_a_step_first_when_it_binds_first(restarted: Any) -> None:
    fwd, _, opened = restarted
    size = max(item.size for item in fwd.store.items())
    per_step = opened_per_step(fwd, opened, budget_bytes=size * 2, max_files=5)
    # about two payloads' bytes per step (and the start of a third): never the five files the file bound allows
    assert max(per_step) <= 3 and sum(per_step) == N


def test_by_default_a_step_opens_at_most_the_file_bound(restarted: Any) -> None:
    fwd, _, opened = restarted
    assert SCRUB_FILES_PER_STEP >= N  # so here one default step checks them all, each opened once
    assert opened_per_step(fwd, opened) == [N]
