"""Forged and replayed uplink datagrams for the ``datagram`` step: what a transmitter in the relay's beam
that is not the ground could send. Pure but for reading the relay's capture (``last_uplink``).

Forms (``FORGES``):

- ``replay``: the last TC datagram the relay carried from the ground, byte for byte (a valid MAC, a
  sequence number already used);
- ``tampered``: the same with one byte of its command changed (the args of a real command altered on the way);
- ``bad_mac``: a well-formed command for ``target``/``cmd``/``args`` under a real SPI and the sequence number
  the ground would use next, MAC'd with a key that is not the SA's;
- ``unknown_spi``: the same under an SPI no SA has;
- ``garbage``: bytes that are no packet at all (the lander's radio refuses them: ``datagrams_rejected``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from link.dictionary import Dictionary, UnknownEntry
from link.sdls import MAC_LENGTHS, SecurityAssociation, protect
from link.tmtc import TmtcError, encode_command, read_tc_header

__all__ = ["FORGES", "forge", "last_uplink"]

FORGES = ("replay", "tampered", "bad_mac", "unknown_spi", "garbage")
UNKNOWN_SPI = 0xFFF0  # an SPI no shipped SA table uses
GARBAGE = b"\xde\xad\xbe\xef" * 12  # version bits 110: no Space Packet of any kind


def last_uplink(pcap: Path, lander_port: int, dictionary: Dictionary) -> bytes | None:
    """The last command the relay carried up, or None: its capture records each datagram with the address it
    goes on to (the lander's radio port for the uplink); a command is a TC packet to a process's APID (the
    ground's CFDP PDUs travel in TC packets of the file APIDs)."""
    import dpkt

    last = None
    if not pcap.exists():
        return None
    with open(pcap, "rb") as f:
        try:
            for _ts, buf in dpkt.pcap.Reader(f):
                try:
                    udp = dpkt.ip.IP(buf).data
                    payload = bytes(udp.data)
                    if udp.dport == lander_port:
                        dictionary.entry_of(read_tc_header(payload).apid)
                        last = payload
                except (dpkt.UnpackError, AttributeError, TmtcError, UnknownEntry):
                    continue
        except dpkt.NeedData:
            pass  # the relay is writing the capture as we read it
    return last


def forge(form: str, *, captured: bytes | None = None, dictionary: Dictionary | None = None, target: str = "",
          cmd: str = "", args: dict[str, Any] | None = None, spi: int = 1, algorithm: str = "aes-gcm") -> bytes:
    """The datagram of ``form``; ValueError when it cannot be made (nothing captured to replay, an unknown
    target or command)."""
    if form == "garbage":
        return GARBAGE
    if form in ("replay", "tampered"):
        if captured is None:
            raise ValueError("no uplink captured at the relay yet to replay (uplink a command first)")
        if form == "replay":
            return captured
        mac_len = MAC_LENGTHS[algorithm]
        at = len(captured) - mac_len - 1  # the command's last byte, just before the MAC
        return captured[:at] + bytes([captured[at] ^ 0x01]) + captured[at + 1:]
    if form not in ("bad_mac", "unknown_spi"):
        raise ValueError(f"form {form!r} is not one of {FORGES}")
    if dictionary is None:
        raise ValueError("a dictionary is needed to forge a command")
    try:
        interface = dictionary.interface_of_process(target)
        spec = interface.commands[cmd]
        apid = dictionary.apid_of(target)
        checked = interface.validate_args(cmd, args or {})
    except Exception as exc:  # an unknown target, command or argument: the scenario's mistake, named
        raise ValueError(f"cannot forge {target} {cmd}: {exc}") from None
    use_spi = UNKNOWN_SPI if form == "unknown_spi" else spi
    sa = SecurityAssociation(spi=use_spi, key_id="forged", algorithm=algorithm)
    # the sequence number the ground would use next: only the MAC (or the SPI) can refuse it, not anti-replay
    seq = 1 if captured is None else read_tc_header(captured).seq + 1
    packet = encode_command(apid, 0, use_spi, seq, spec, checked)
    return protect(packet, sa, os.urandom(32))
