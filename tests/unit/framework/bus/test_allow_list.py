"""The CURVE allow-list answers from its files as they are now: a removed or replaced key stops
being allowed at once, without a new handshake."""

from __future__ import annotations

import shutil
from pathlib import Path

from framework.bus.auth import AUTHORIZED_DIR, AllowList, authorize, generate_keypair


def test_a_key_removed_from_the_allow_list_is_refused_at_once(tmp_path: Path) -> None:
    alice = generate_keypair(tmp_path, "alice")
    bob = generate_keypair(tmp_path, "bob")
    authorize(tmp_path, tmp_path / "alice.key")
    authorize(tmp_path, tmp_path / "bob.key")
    allow = AllowList(tmp_path / AUTHORIZED_DIR)
    assert allow.name_of(alice.public) == "alice" and allow.name_of(bob.public_text) == "bob"
    (tmp_path / AUTHORIZED_DIR / "alice.key").unlink()
    assert allow.name_of(alice.public) is None
    assert allow.name_of(bob.public) == "bob"


def test_a_key_file_rewritten_in_place_allows_only_its_new_key(tmp_path: Path) -> None:
    alice = generate_keypair(tmp_path, "alice")
    mallory = generate_keypair(tmp_path / "other", "alice")
    cert = authorize(tmp_path, tmp_path / "alice.key")
    allow = AllowList(tmp_path / AUTHORIZED_DIR)
    assert allow.name_of(alice.public) == "alice"
    shutil.copyfile(tmp_path / "other" / "alice.key", cert)  # same name, same size, same directory entry
    assert allow.name_of(alice.public) is None
    assert allow.name_of(mallory.public) == "alice"


def test_a_stray_file_allows_nobody_and_a_missing_directory_allows_nobody(tmp_path: Path) -> None:
    allow = AllowList(tmp_path / "nowhere")
    assert len(allow) == 0 and allow.name_of("x" * 40) is None
    (tmp_path / "nowhere").mkdir()
    (tmp_path / "nowhere" / "junk.key").write_text("not a certificate")
    assert allow.name_of("x" * 40) is None
