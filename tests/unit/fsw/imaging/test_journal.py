"""The imaging core's journal: records survive a reopen, a torn tail is cut, a snapshot replaces the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsw.imaging.journal import Journal, JournalError


def test_committed_records_come_back_in_order_after_a_reopen(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j" / "imaging.journal")
    assert j.load() == []
    j.append({"op": "frame", "n": 1})
    j.append({"op": "stored", "id": "a"})
    j.commit()
    j.append({"op": "frame", "n": 2})  # never committed: a crash loses it
    again = Journal(tmp_path / "j" / "imaging.journal")
    assert again.load() == [{"op": "frame", "n": 1}, {"op": "stored", "id": "a"}]
    assert again.records == 2 and again.torn_bytes == 0


def test_a_torn_or_damaged_tail_is_cut_and_the_next_record_follows_the_last_sound_one(tmp_path: Path) -> None:
    path = tmp_path / "imaging.journal"
    j = Journal(path)
    for n in range(3):
        j.append({"op": "frame", "n": n})
    j.commit()
    sound = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\x10\x00\x00\x00garbage")  # half a record, as a crash mid-write leaves it
    j2 = Journal(path)
    assert [r["n"] for r in j2.load()] == [0, 1, 2]
    assert j2.torn_bytes == 11 and path.stat().st_size == sound
    j2.append({"op": "frame", "n": 3})
    j2.commit()
    data = bytearray(path.read_bytes())
    data[sound + 9] ^= 0xFF  # a flipped bit in the last record's body: its CRC fails
    path.write_bytes(bytes(data))
    assert [r["n"] for r in Journal(path).load()] == [0, 1, 2]


def test_a_rewrite_replaces_the_file_with_the_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "imaging.journal"
    j = Journal(path)
    for n in range(50):
        j.append({"op": "frame", "n": n})
    j.commit()
    j.rewrite([{"op": "last", "n": 49}])
    j.append({"op": "frame", "n": 50})
    j.commit()
    assert Journal(path).load() == [{"op": "last", "n": 49}, {"op": "frame", "n": 50}]
    assert not list(tmp_path.glob("*.tmp"))


def test_a_journal_that_cannot_be_written_raises_a_typed_error_and_keeps_the_records(tmp_path: Path) -> None:
    path = tmp_path / "imaging.journal"
    path.mkdir()  # a directory where the file should be
    j = Journal(path)
    with pytest.raises(JournalError):
        j.load()
    j.append({"op": "frame", "n": 1})
    with pytest.raises(JournalError):
        j.commit()
    assert j.pending == 1
    with pytest.raises(JournalError):
        j.rewrite([])
