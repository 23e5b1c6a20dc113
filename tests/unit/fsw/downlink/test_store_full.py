"""A store full by its quota refuses by policy, typed and counted (:class:`StoreFull`, text starting with
``STORE_FULL_PREFIX``, which the imaging core reads from ``product_rejected`` to keep the frame thumbnail only),
while a thumbnail still finds room by evicting a full frame."""

from __future__ import annotations

from pathlib import Path

import pytest

from framework.errors import StoreError
from fsw.downlink.store import STORE_FULL_PREFIX, ProductStore, StoreFull
from tests.unit.fsw.downlink.test_product_store import FakeClock


def test_a_full_frame_worth_no_more_than_what_is_stored_is_refused_as_store_full_and_counted(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "s", clock=FakeClock(), quota_bytes=250)
    store.add("cam-00000001-full", "full", b"a" * 100, score=0.5)
    store.add("cam-00000002-full", "full", b"b" * 100, score=0.5)
    with pytest.raises(StoreFull) as exc:
        store.add("cam-00000003-full", "full", b"c" * 100, score=0.5)  # a tie keeps what is stored
    assert isinstance(exc.value, StoreError) and str(exc.value).startswith(STORE_FULL_PREFIX)
    assert store.refused_full == 1 and store.evicted == []
    store.add("cam-00000003-thumbnail", "thumbnail", b"t" * 60)  # a thumbnail evicts a full frame for room
    assert [v.id for v in store.evicted] == ["cam-00000001-full"]
    assert "cam-00000003-thumbnail" in store and store.refused_full == 1
    with pytest.raises(StoreError) as dup:
        store.add("cam-00000002-full", "full", b"b" * 100, score=0.5)
    assert not isinstance(dup.value, StoreFull)  # a duplicate is not the quota's answer
