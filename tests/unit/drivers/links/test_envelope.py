"""The device envelope has one owner (drivers/links/envelope.py) that both device protocols use."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from drivers.camera import protocol as camera
from drivers.deploy import protocol as deploy
from drivers.links import envelope as env
from drivers.links import messages as family

ROOT = Path(__file__).resolve().parents[4]


def module_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("value", [True, -1, 1 << 16, 1.0, "1", None])
def test_check_uint_refuses_what_does_not_fit_the_field(value: object) -> None:
    with pytest.raises(env.EncodeError, match="16-bit unsigned"):
        env.check_uint("code", value, 16)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), True, "1.0", None])
def test_check_float_refuses_what_is_not_a_finite_number(value: object) -> None:
    with pytest.raises(env.EncodeError, match="finite"):
        env.check_float("gain", value)  # type: ignore[arg-type]


def test_a_packed_header_parses_back_and_a_corrupt_one_is_refused() -> None:
    head = env.pack_header(0x42, 7, 3)
    assert len(head) == env.HEADER_LEN and head.startswith(env.SYNC)
    assert env.parse_header(head, 10) == (0x42, 7, 3)
    with pytest.raises(env.LengthError) as too_long:
        env.parse_header(head, 2)
    assert (too_long.value.seq, too_long.value.msg_type) == (7, 0x42)
    with pytest.raises(env.HeaderCrcError):
        env.parse_header(head[:8] + b"\x08" + head[9:], 10)


def test_both_device_protocols_use_the_one_envelope_and_the_family_messages() -> None:
    for name in ("SYNC", "VERSION", "WireError", "EncodeError", "CrcError", "HeaderCrcError", "SyncLostError",
                 "TruncatedError", "UnsupportedVersion", "LengthError", "UnknownMessageType", "MalformedPayload"):
        assert getattr(camera, name) is getattr(env, name) is getattr(deploy, name), name
    for name in ("Ping", "StatusRequest", "Ack", "Nak", "Code"):
        assert getattr(camera, name) is getattr(family, name) is getattr(deploy, name), name
    for code in ("PING", "STATUS", "ACK", "NAK"):
        assert getattr(camera.MsgType, code) == getattr(deploy.MsgType, code) == getattr(family.FamilyType, code)


def test_argument_checks_have_one_owner() -> None:
    for module in (camera, deploy):
        assert not hasattr(module, "_check_uint") and not hasattr(module, "_check_float")


def test_the_deploy_driver_borrows_nothing_from_the_camera() -> None:
    for path in sorted((ROOT / "drivers" / "deploy").glob("*.py")):
        assert not any(m.startswith("drivers.camera") for m in module_imports(path)), path.name


def test_the_camera_codec_does_not_import_its_stream_decoder() -> None:
    assert "drivers.camera.decoder" not in module_imports(ROOT / "drivers" / "camera" / "protocol.py")
    assert not hasattr(camera, "StreamDecoder")


def test_an_ack_is_the_same_bytes_from_either_protocol() -> None:
    ack = family.Ack(ref_seq=9, code=family.Code.OK, reason="ok", seq=3)
    assert camera.encode(ack) == deploy.encode(ack)
    assert deploy.StreamDecoder().feed(camera.encode(ack)) == [ack]
