"""Camera wire messages: the logical model, one frozen dataclass per message type.

No bytes here: :mod:`drivers.camera.protocol` encodes and decodes them.
Every message carries ``seq``, the sender's sequence number (0 until the
sender assigns one). ``docs/wire-protocol.md`` gives each payload layout.
PING, STATUS, ACK, NAK and the NAK codes are the protocol family's, owned by
:mod:`drivers.links.messages` and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from drivers.links.messages import Ack, Code, FamilyType, Nak, Ping, StatusRequest

__all__ = [
    "PATTERNS", "MsgType", "Code", "STATE_FLAGS",
    "Ping", "StatusRequest", "SetExposure", "SetGain", "Capture", "StreamStart", "StreamStop",
    "CaptureBurst", "SetWindow", "SetBinning", "PowerCycle", "SelfTest",
    "Ack", "Nak", "StatusReply", "Frame", "Message", "COMMAND_TYPES", "REPLY_TYPES", "bytes_per_pixel",
]

PATTERNS = ("mono", "RGGB", "BGGR", "GRBG", "GBRG")


class MsgType(FamilyType):
    """Message type codes: commands below 0x80, replies and data from 0x80 (PING, STATUS, ACK and NAK
    are the family's, inherited)."""

    SET_EXPOSURE = 0x03
    SET_GAIN = 0x04
    CAPTURE = 0x05
    STREAM_START = 0x06
    STREAM_STOP = 0x07
    CAPTURE_BURST = 0x08
    SET_WINDOW = 0x09
    SET_BINNING = 0x0A
    POWER_CYCLE = 0x0B
    SELF_TEST = 0x0C
    STATUS_REPLY = 0x82
    FRAME = 0x90


# Bits of StatusReply.flags.
STATE_FLAGS = {"over_temperature": 0x01, "defects_found": 0x02}


@dataclass(frozen=True, kw_only=True)
class SetExposure:
    exposure_us: int
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class SetGain:
    gain: float
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class Capture:
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class StreamStart:
    rate_hz: float
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class StreamStop:
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class CaptureBurst:
    """Capture ``count`` frames back to back, as fast as exposure plus readout allow."""

    count: int
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class SetWindow:
    """Read out only the region x, y, width, height (sensor pixels); all zero means the full sensor."""

    x: int
    y: int
    width: int
    height: int
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class SetBinning:
    """Sum ``factor`` x ``factor`` pixels into one (1 = off)."""

    factor: int
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class PowerCycle:
    """Switch the camera off and on: it drops the link, boots, and comes back with default settings."""

    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class SelfTest:
    """Dark frame and test pattern check; ACK if sound, NAK SELF_TEST_FAILED naming what failed."""

    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class StatusReply:
    ref_seq: int
    temp_c: float
    exposure_us: int
    gain: float
    frames_sent: int
    streaming: bool
    rate_hz: float = 0.0
    window_x: int = 0
    window_y: int = 0
    width: int = 0  # the frame size now read out (after window and binning)
    height: int = 0
    binning: int = 1
    flags: int = 0  # STATE_FLAGS
    boot_count: int = 0
    seq: int = 0


@dataclass(frozen=True, kw_only=True)
class Frame:
    """One image: metadata plus raw little-endian pixels (row-major, height x width)."""

    camera: str
    counter: int
    width: int
    height: int
    bit_depth: int
    pattern: str
    exposure_us: int
    gain: float
    temp_c: float
    t_capture: float
    pixels: bytes | bytearray | memoryview
    seq: int = 0
    # CRC-32C of ``pixels`` when the decoder already computed it (in the same pass that checked the message
    # CRC); None otherwise. Not part of the wire format and not compared.
    pixels_crc32c: int | None = field(default=None, compare=False, repr=False)

    @property
    def dtype(self) -> str:
        return "uint8" if self.bit_depth <= 8 else "uint16"


Message = Union[Ping, StatusRequest, SetExposure, SetGain, Capture, StreamStart, StreamStop, CaptureBurst,
                SetWindow, SetBinning, PowerCycle, SelfTest, Ack, Nak, StatusReply, Frame]
COMMAND_TYPES = (Ping, StatusRequest, SetExposure, SetGain, Capture, StreamStart, StreamStop, CaptureBurst,
                 SetWindow, SetBinning, PowerCycle, SelfTest)
REPLY_TYPES = (Ack, Nak, StatusReply)


def bytes_per_pixel(bit_depth: int) -> int:
    return 1 if bit_depth <= 8 else 2
