"""Camera wire protocol: pure encode and decode of the camera's payloads, no sockets.

Every message is one envelope of the device protocol family
(:mod:`drivers.links.envelope` owns it: sync marker, version, header CRC,
sequence, length, payload, message CRC-32C, and the error classes, all
re-exported here); this module encodes and decodes the camera's payloads in
it, up to :data:`MAX_PAYLOAD_BYTES` (64 MiB). ``docs/wire-protocol.md``
describes each payload. The messages themselves are the dataclasses of
:mod:`drivers.camera.messages` (re-exported here). The stream decoder, which
turns a byte stream into messages and typed errors and resynchronises after
garbage, is :class:`drivers.camera.decoder.StreamDecoder` (it imports this
module, not the other way round).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import crc32c

from drivers.camera.messages import (
    COMMAND_TYPES, PATTERNS, REPLY_TYPES, STATE_FLAGS, Ack, Capture, CaptureBurst, Code, Frame, Message, MsgType, Nak,
    Ping, PowerCycle, SelfTest, SetBinning, SetExposure, SetGain, SetWindow, StatusReply, StatusRequest, StreamStart,
    StreamStop, bytes_per_pixel,
)
from drivers.links.envelope import (
    HEADER_LEN, OVERHEAD, SYNC, TRAILER_LEN, U32, VERSION, CrcError, EncodeError, HeaderCrcError, LengthError,
    MalformedPayload, SyncLostError, TruncatedError, UnknownMessageType, UnsupportedVersion, WireError, check_float,
    check_uint, decode_reply, encode_reply, finite, need, pack_header, text,
)
from framework.crc import crc32c_combine

__all__ = [
    "SYNC", "VERSION", "HEADER_LEN", "TRAILER_LEN", "OVERHEAD", "MAX_PAYLOAD_BYTES", "MAX_COMMAND_PAYLOAD_BYTES",
    "PATTERNS",
    "FRAME_META_LEN", "FRAME_CAMERA_LEN_AT",
    "MsgType", "Code", "STATE_FLAGS",
    "Ping", "StatusRequest", "SetExposure", "SetGain", "Capture", "StreamStart", "StreamStop",
    "CaptureBurst", "SetWindow", "SetBinning", "PowerCycle", "SelfTest",
    "Ack", "Nak", "StatusReply", "Frame", "Message", "COMMAND_TYPES", "REPLY_TYPES",
    "WireError", "EncodeError", "SyncLostError", "HeaderCrcError", "CrcError", "TruncatedError",
    "UnsupportedVersion", "LengthError", "UnknownMessageType", "MalformedPayload",
    "Encoded", "encode", "encode_parts", "decode_payload", "bytes_per_pixel",
]

MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
MAX_COMMAND_PAYLOAD_BYTES = 256
"""The longest payload a command carries (SET_WINDOW's 16 bytes, with room to spare): what the camera takes."""


# --- payload codecs ---------------------------------------------------------------------------

_EMPTY_TYPES: dict[type, int] = {
    Ping: MsgType.PING, StatusRequest: MsgType.STATUS, Capture: MsgType.CAPTURE, StreamStop: MsgType.STREAM_STOP,
    PowerCycle: MsgType.POWER_CYCLE, SelfTest: MsgType.SELF_TEST,
}
_U32_ST = struct.Struct("<I")
_F64_ST = struct.Struct("<d")
_U8_ST = struct.Struct("<B")
_WINDOW_ST = struct.Struct("<IIII")  # x, y, width, height
# ref_seq, temp_c, exposure_us, gain, frames_sent, streaming, rate_hz, window x, y, width, height, binning, flags, boots
_STATUS_ST = struct.Struct("<IdIdQBdIIIIBBI")
_FRAME_ST = struct.Struct("<QIIBBBxIddd")  # counter, w, h, bit_depth, pattern, camera len, pad, exp, gain, temp, t
_MAX_CAMERA_BYTES = 255
FRAME_META_LEN = _FRAME_ST.size
"""A FRAME payload's fixed metadata; the camera id and then the pixels follow it."""
FRAME_CAMERA_LEN_AT = 18
"""Offset in a FRAME payload of the camera id's length byte (after counter, width, height, bit depth, pattern)."""


def _encode_payload(msg: Message) -> tuple[int, list[bytes | memoryview]]:
    """The message type and the payload parts of one message."""
    t = type(msg)
    if t in _EMPTY_TYPES:
        return _EMPTY_TYPES[t], []
    if isinstance(msg, SetExposure):
        check_uint("exposure_us", msg.exposure_us, 32)
        return MsgType.SET_EXPOSURE, [_U32_ST.pack(msg.exposure_us)]
    if isinstance(msg, SetGain):
        check_float("gain", msg.gain)
        return MsgType.SET_GAIN, [_F64_ST.pack(msg.gain)]
    if isinstance(msg, StreamStart):
        check_float("rate_hz", msg.rate_hz)
        return MsgType.STREAM_START, [_F64_ST.pack(msg.rate_hz)]
    if isinstance(msg, CaptureBurst):
        check_uint("count", msg.count, 32)
        return MsgType.CAPTURE_BURST, [_U32_ST.pack(msg.count)]
    if isinstance(msg, SetWindow):
        for name in ("x", "y", "width", "height"):
            check_uint(name, getattr(msg, name), 32)
        return MsgType.SET_WINDOW, [_WINDOW_ST.pack(msg.x, msg.y, msg.width, msg.height)]
    if isinstance(msg, SetBinning):
        check_uint("factor", msg.factor, 8)
        return MsgType.SET_BINNING, [_U8_ST.pack(msg.factor)]
    if isinstance(msg, (Ack, Nak)):
        mtype, reply = encode_reply(msg)
        return mtype, list(reply)
    if isinstance(msg, StatusReply):
        return MsgType.STATUS_REPLY, [_encode_status(msg)]
    if isinstance(msg, Frame):
        return MsgType.FRAME, _encode_frame(msg)
    raise EncodeError(f"not a camera protocol message: {t.__name__}")


def _encode_status(msg: StatusReply) -> bytes:
    check_uint("ref_seq", msg.ref_seq, 32)
    check_uint("exposure_us", msg.exposure_us, 32)
    check_uint("frames_sent", msg.frames_sent, 64)
    for name in ("window_x", "window_y", "width", "height", "boot_count"):
        check_uint(name, getattr(msg, name), 32)
    check_uint("binning", msg.binning, 8)
    check_uint("flags", msg.flags, 8)
    for name in ("temp_c", "gain", "rate_hz"):
        check_float(name, getattr(msg, name))
    return _STATUS_ST.pack(msg.ref_seq, msg.temp_c, msg.exposure_us, msg.gain, msg.frames_sent,
                           1 if msg.streaming else 0, msg.rate_hz, msg.window_x, msg.window_y, msg.width,
                           msg.height, msg.binning, msg.flags, msg.boot_count)


def _encode_frame(msg: Frame) -> list[bytes | memoryview]:
    check_uint("counter", msg.counter, 64)
    check_uint("width", msg.width, 32)
    check_uint("height", msg.height, 32)
    check_uint("exposure_us", msg.exposure_us, 32)
    if msg.bit_depth not in range(1, 17):
        raise EncodeError(f"bit_depth={msg.bit_depth!r} is not 1..16")
    if msg.pattern not in PATTERNS:
        raise EncodeError(f"pattern={msg.pattern!r} is not one of {PATTERNS}")
    for name in ("gain", "temp_c", "t_capture"):
        check_float(name, getattr(msg, name))
    cam = msg.camera.encode("utf-8")
    if len(cam) > _MAX_CAMERA_BYTES:
        raise EncodeError(f"camera id is {len(cam)} bytes, more than {_MAX_CAMERA_BYTES}")
    pixels = memoryview(msg.pixels).cast("B")
    expected = msg.width * msg.height * bytes_per_pixel(msg.bit_depth)
    if pixels.nbytes != expected:
        raise EncodeError(f"pixels are {pixels.nbytes} bytes; {msg.width}x{msg.height} at "
                          f"{msg.bit_depth} bits needs {expected}")
    meta = _FRAME_ST.pack(msg.counter, msg.width, msg.height, msg.bit_depth, PATTERNS.index(msg.pattern),
                          len(cam), msg.exposure_us, msg.gain, msg.temp_c, msg.t_capture)
    return [meta, cam, pixels]


@dataclass(frozen=True)
class Encoded:
    """One message as the pieces of its envelope, for scatter-gather sending (``socket.sendmsg``).

    ``parts`` concatenated are the envelope; a FRAME's pixels are one of them,
    a view of the caller's buffer, not a copy (the caller keeps it unchanged
    until sent). ``pixels_crc32c`` is the CRC-32C of a FRAME's pixels (None
    for other messages), computed in the same pass as the message CRC.
    """

    parts: tuple[bytes | memoryview, ...]
    nbytes: int
    pixels_crc32c: int | None = None

    def tobytes(self) -> bytes:
        return b"".join(self.parts)


def encode_parts(msg: Message) -> Encoded:
    """One message as envelope pieces: header, payload parts, trailer; nothing large is copied.

    A Frame whose ``pixels_crc32c`` is set is taken at its word for its pixels' CRC (the emulator caches
    it with rendered pixels); a wrong one yields a message every receiver rejects, never a bad frame.
    """
    check_uint("seq", msg.seq, 32)
    mtype, parts = _encode_payload(msg)
    views = [memoryview(p).cast("B") for p in parts]
    length = sum(v.nbytes for v in views)
    if length > MAX_PAYLOAD_BYTES:
        raise EncodeError(f"payload is {length} bytes, more than {MAX_PAYLOAD_BYTES}")
    head = pack_header(mtype, msg.seq, length)
    crc = crc32c.crc32c(head)
    pixels_crc = None
    if mtype == MsgType.FRAME:  # [meta, camera id, pixels]: one pass over the pixels gives both CRCs
        for v in views[:-1]:
            crc = crc32c.crc32c(v, crc)
        pixels_crc = msg.pixels_crc32c if msg.pixels_crc32c is not None else crc32c.crc32c(views[-1])
        crc = crc32c_combine(crc, pixels_crc, views[-1].nbytes)
    else:
        for v in views:
            crc = crc32c.crc32c(v, crc)
    trailer = U32.pack(crc)
    return Encoded((head, *(v for v in views if v.nbytes), trailer), HEADER_LEN + length + TRAILER_LEN, pixels_crc)


def encode(msg: Message) -> bytes:
    """One message as its complete envelope bytes."""
    return encode_parts(msg).tobytes()


def _decode_frame(data: memoryview, seq: int, pixels_crc32c: int | None) -> Frame:
    mt = MsgType.FRAME
    need(data, _FRAME_ST.size, mt, seq, exact=False)
    counter, w, h, bits, pat, cam_len, exp_us, gain, temp_c, t_capture = _FRAME_ST.unpack_from(data)
    if not 1 <= bits <= 16:
        raise MalformedPayload(f"bit_depth {bits} is not 1..16", seq=seq, msg_type=mt)
    if pat >= len(PATTERNS):
        raise MalformedPayload(f"pattern code {pat} is unknown", seq=seq, msg_type=mt)
    for name, value in (("gain", gain), ("temp_c", temp_c), ("t_capture", t_capture)):
        finite(name, value, mt, seq)
    start = _FRAME_ST.size + cam_len
    need(data, start + w * h * bytes_per_pixel(bits), mt, seq)
    camera = text(data[_FRAME_ST.size:start], mt, seq)
    return Frame(camera=camera, counter=counter, width=w, height=h, bit_depth=bits, pattern=PATTERNS[pat],
                 exposure_us=exp_us, gain=gain, temp_c=temp_c, t_capture=t_capture, pixels=data[start:], seq=seq,
                 pixels_crc32c=pixels_crc32c)


def decode_payload(mtype: int, seq: int, data: memoryview, pixels_crc32c: int | None = None) -> Message:
    """Decode one payload of a known envelope; raise UnknownMessageType or MalformedPayload.

    ``pixels_crc32c``: the CRC-32C of a FRAME's pixel bytes if the caller already has it (the stream
    decoder does); it is handed on in ``Frame.pixels_crc32c``.
    """
    for cls, code in _EMPTY_TYPES.items():
        if code == mtype:
            need(data, 0, mtype, seq)
            return cls(seq=seq)
    if mtype == MsgType.SET_EXPOSURE:
        need(data, 4, mtype, seq)
        return SetExposure(exposure_us=_U32_ST.unpack_from(data)[0], seq=seq)
    if mtype == MsgType.CAPTURE_BURST:
        need(data, 4, mtype, seq)
        return CaptureBurst(count=_U32_ST.unpack_from(data)[0], seq=seq)
    if mtype == MsgType.SET_WINDOW:
        need(data, _WINDOW_ST.size, mtype, seq)
        x, y, w, h = _WINDOW_ST.unpack_from(data)
        return SetWindow(x=x, y=y, width=w, height=h, seq=seq)
    if mtype == MsgType.SET_BINNING:
        need(data, 1, mtype, seq)
        return SetBinning(factor=data[0], seq=seq)
    if mtype in (MsgType.SET_GAIN, MsgType.STREAM_START):
        need(data, 8, mtype, seq)
        value = _F64_ST.unpack_from(data)[0]
        if mtype == MsgType.SET_GAIN:
            return SetGain(gain=finite("gain", value, mtype, seq), seq=seq)
        return StreamStart(rate_hz=finite("rate_hz", value, mtype, seq), seq=seq)
    if mtype in (MsgType.ACK, MsgType.NAK):
        return decode_reply(mtype, seq, data)
    if mtype == MsgType.STATUS_REPLY:
        need(data, _STATUS_ST.size, mtype, seq)
        (ref_seq, temp_c, exp_us, gain, sent, streaming, rate_hz, wx, wy, w, h, binning, flags,
         boots) = _STATUS_ST.unpack_from(data)
        if streaming > 1:
            raise MalformedPayload(f"streaming flag {streaming} is not 0 or 1", seq=seq, msg_type=mtype)
        return StatusReply(ref_seq=ref_seq, temp_c=finite("temp_c", temp_c, mtype, seq), exposure_us=exp_us,
                           gain=finite("gain", gain, mtype, seq), frames_sent=sent, streaming=bool(streaming),
                           rate_hz=finite("rate_hz", rate_hz, mtype, seq), window_x=wx, window_y=wy, width=w,
                           height=h, binning=binning, flags=flags, boot_count=boots, seq=seq)
    if mtype == MsgType.FRAME:
        return _decode_frame(data, seq, pixels_crc32c)
    raise UnknownMessageType(f"unknown message type {mtype:#04x}", seq=seq, msg_type=mtype)

