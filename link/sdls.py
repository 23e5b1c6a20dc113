"""SDLS-style authentication of telecommands: security associations, keys, MACs, anti-replay.

Modelled on CCSDS 355.0-B-2 (Space Data Link Security) authentication-only mode, applied to
Space Packets (docs/uplink.md, "TC packet"): a security header (``spi u16``, ``seq u32``) after the
primary header and a MAC trailer over everything before it: AES-256-GCM with an empty plaintext
(GMAC; nonce = ``spi u16`` + 6 zero bytes + ``seq u32``) or HMAC-SHA256.

On board, :meth:`Verifier.check` does exactly this, in this order, and raises before anything
acts: the packet parses (size, headers, known APID and SPI, SA enabled, trailer length); the MAC
matches (constant time, by ``cryptography``); ``last < seq <= last + window``; the new ``last``
is written and fsync'd (file and directory) by :class:`SequenceStore`. Only then does it return
the :class:`Verified` command. A retransmission (valid MAC, ``seq <= last``, still remembered)
raises :class:`TcDuplicate` with the outcome recorded for it, so the ground learns the command's
fate and it never acts twice.

At the ground, :class:`Signer` allocates each sequence number durably before the packet exists
(a sequence number, hence an AES-GCM nonce, is never used for two different packets, even across
a crash), and :func:`protect` appends the MAC.

Keys are files ``<keys_dir>/sdls/<key_id>.key`` (32 random bytes as 64 hex characters, mode
0600, directory 0700) written by :func:`generate_key` (``pdh keys --sdls KEY_ID``).
"""

from __future__ import annotations

import collections
import fcntl
import json
import os
import re
import secrets
import stat
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterable, Mapping

import yaml
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from framework.config import check_mapping
from framework.counters import saturating_add
from framework.errors import ConfigError, PdhError, ProtocolError
from framework.interface import CommandSpec
from framework.kinds import Field
from link.filestore import fsync_dir
from link.tmtc import (
    STAGES,
    TcHeader,
    TmtcError,
    encode_command,
    read_tc_header,
    split_tc,
    with_trailer,
)

__all__ = [
    "ALGORITHMS", "MAC_LENGTHS", "KEY_BYTES", "SEQ_MAX", "REASONS", "SDLS_DIR",
    "SecurityAssociation", "load_associations", "key_path", "load_key", "load_keys", "generate_key",
    "nonce", "compute_mac", "protect", "RECENT_PER_SPI", "SequenceStore", "SequenceStoreDamaged", "SequencesExhausted",
    "TcNotActed", "TcRejected", "TcDuplicate", "Verified", "Verifier", "Signer", "SignedCommand",
]

ALGORITHMS = ("aes-gcm", "hmac-sha256")
MAC_LENGTHS = {"aes-gcm": 16, "hmac-sha256": 32}
KEY_BYTES = 32
SEQ_MAX = 2**32 - 1
SDLS_DIR = "sdls"
REASONS = ("malformed", "unknown_spi", "disabled_spi", "bad_mac", "replay", "out_of_window", "not_durable")
"""Why a TC packet was rejected; ``not_durable``: its sequence number could not be made durable
(disk error), so it did not act."""
_KEY_ID_RE = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_OPERATOR_RE = r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}"
_HEX_KEY_RE = re.compile(r"[0-9a-fA-F]{64}")
_NONCE_PAD = bytes(6)
_STORE_FORMAT = "pdh-sdls-sequences/1"
RECENT_PER_SPI = 64
"""How many received (sequence, APID) pairs per SPI the store keeps for recognising retransmissions."""


# -- security associations ------------------------------------------------------------------
@dataclass(frozen=True)
class SecurityAssociation:
    """One SA: the SPI the packets carry, the key and algorithm of their MAC, the anti-replay window,
    whether it is in use, and the operator its commands act for (ARM/FIRE's identity)."""

    spi: int
    key_id: str
    algorithm: str = "aes-gcm"
    window: int = 64
    enabled: bool = True
    operator: str = "ops"

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"SA {self.spi}: algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if not 1 <= self.spi <= 0xFFFF:
            raise ValueError(f"SA spi {self.spi} is not within 1..65535")
        if not 1 <= self.window <= SEQ_MAX:
            raise ValueError(f"SA {self.spi}: window {self.window} is not within 1..{SEQ_MAX}")
        if not re.fullmatch(_KEY_ID_RE, self.key_id):
            raise ValueError(f"SA {self.spi}: key_id {self.key_id!r} is not a plain name")

    @property
    def mac_len(self) -> int:
        return MAC_LENGTHS[self.algorithm]


_SA_FIELDS: dict[str, Field] = {
    "spi": Field(int, min=1, max=0xFFFF, doc="security parameter index the packets carry"),
    "key_id": Field(str, pattern=_KEY_ID_RE, doc="names <keys_dir>/sdls/<key_id>.key"),
    "algorithm": Field(str, choices=ALGORITHMS),
    "window": Field(int, default=64, min=1, max=SEQ_MAX, doc="how far ahead of the last a sequence number may be"),
    "enabled": Field(bool, default=True),
    "operator": Field(str, default="ops", pattern=_OPERATOR_RE, doc="whom the SA's commands act for"),
}


def load_associations(path: str | Path) -> list[SecurityAssociation]:
    """The SA table of a YAML file (a list of mappings, docs/uplink.md): ConfigError naming the file,
    the entry and the field for anything wrong, an SPI twice included."""
    file = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(file, "<file>", "a readable security-association file", exc.strerror) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(file, "<file>", "YAML", str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    if not isinstance(data, list) or not data:
        raise ConfigError(file, "<file>", "a non-empty list of security associations", type(data).__name__)
    out: list[SecurityAssociation] = []
    seen: set[int] = set()
    for i, entry in enumerate(data):
        checked = check_mapping(file, f"[{i}]", _SA_FIELDS, entry)
        if checked["spi"] in seen:
            raise ConfigError(file, f"[{i}].spi", "an SPI no other entry has", checked["spi"])
        seen.add(checked["spi"])
        out.append(SecurityAssociation(**checked))
    return out


# -- keys -------------------------------------------------------------------------------------
def key_path(keys_dir: str | Path, key_id: str) -> Path:
    if not isinstance(key_id, str) or not re.fullmatch(_KEY_ID_RE, key_id):
        raise ConfigError(str(keys_dir), "key_id", f"a plain name matching {_KEY_ID_RE}", key_id)
    return Path(keys_dir) / SDLS_DIR / f"{key_id}.key"


def load_key(keys_dir: str | Path, key_id: str) -> bytes:
    """The 32-byte key ``key_id``; ConfigError if the file is missing, not 64 hex characters, or
    readable by anyone but its owner (a key others can read authenticates nothing)."""
    path = key_path(keys_dir, key_id)
    file = str(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise ConfigError(file, "<file>", f"an SDLS key file (pdh keys --sdls {key_id})", exc.strerror) from None
    except UnicodeDecodeError:
        raise ConfigError(file, "<file>", "64 hex characters", "non-ASCII bytes") from None
    if mode & 0o077:
        raise ConfigError(file, "<mode>", "a key only its owner can read (mode 0600)", oct(stat.S_IMODE(mode)))
    if not _HEX_KEY_RE.fullmatch(text):
        raise ConfigError(file, "<file>", "64 hex characters (32 bytes)", f"{len(text)} characters")
    return bytes.fromhex(text)


def load_keys(keys_dir: str | Path, associations: Iterable[SecurityAssociation]) -> dict[str, bytes]:
    """Every enabled SA's key by key id (a disabled SA's key may be gone: it is not read)."""
    return {sa.key_id: load_key(keys_dir, sa.key_id) for sa in associations if sa.enabled}


def _write_durably(path: Path, data: bytes, mode: int = 0o600) -> None:
    """``data`` as the whole of ``path`` or not at all: a temporary file, fsync, rename, fsync the
    directory. A crash at any point leaves the old file or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(path.parent)


def generate_key(keys_dir: str | Path, key_id: str, overwrite: bool = False) -> bytes:
    """Write a new random key ``key_id`` (mode 0600 in a 0700 directory) and return it; an existing
    key is kept and returned unless ``overwrite``."""
    path = key_path(keys_dir, key_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if path.exists() and not overwrite:
        return load_key(keys_dir, key_id)
    key = secrets.token_bytes(KEY_BYTES)
    _write_durably(path, key.hex().encode("ascii") + b"\n")
    return key


# -- MAC ----------------------------------------------------------------------------------------
def nonce(spi: int, seq: int) -> bytes:
    """The AES-GCM IV: ``spi u16`` + 6 zero bytes + ``seq u32`` (unique while sequence numbers are)."""
    return struct.pack(">H", spi) + _NONCE_PAD + struct.pack(">I", seq)


def compute_mac(authenticated: bytes, header: TcHeader, sa: SecurityAssociation, key: bytes) -> bytes:
    if sa.algorithm == "aes-gcm":
        return AESGCM(key).encrypt(nonce(header.spi, header.seq), b"", authenticated)
    h = crypto_hmac.HMAC(key, hashes.SHA256())
    h.update(authenticated)
    return h.finalize()


def _mac_matches(authenticated: bytes, mac: bytes, header: TcHeader, sa: SecurityAssociation, key: bytes) -> bool:
    """Constant-time check by ``cryptography`` (GCM tag check, ``HMAC.verify``)."""
    try:
        if sa.algorithm == "aes-gcm":
            AESGCM(key).decrypt(nonce(header.spi, header.seq), mac, authenticated)
        else:
            h = crypto_hmac.HMAC(key, hashes.SHA256())
            h.update(authenticated)
            h.verify(mac)
    except (InvalidTag, InvalidSignature):
        return False
    return True


def protect(packet_without_mac: bytes, sa: SecurityAssociation, key: bytes) -> bytes:
    """The packet with its length field counting the trailer, then the MAC over all of it
    (ProtocolError if it is not a TC packet of ``sa``'s SPI)."""
    header = read_tc_header(packet_without_mac)
    grown = with_trailer(packet_without_mac, sa.mac_len)
    if header.spi != sa.spi:
        raise TmtcError(f"packet carries SPI {header.spi}, the SA is {sa.spi}")
    return grown + compute_mac(grown, header, sa, key)


# -- durable sequence numbers -------------------------------------------------------------------
class SequenceStoreDamaged(PdhError):
    """The sequence file exists but cannot be read as one: never taken as "no sequence yet", which
    would let every old command be replayed."""

    def __init__(self, file: str, detail: str) -> None:
        self.file = file
        self.detail = detail
        super().__init__(f"{file}: damaged SDLS sequence file ({detail}); restore it or set each SA's last "
                         "sequence number by hand, never delete it")


class SequencesExhausted(PdhError):
    """An SA has used its last sequence number: it needs a new SA (SPI and key)."""


class SequenceStore:
    """The last sequence number of each SPI (and, on board, the few most recent ones received with
    their APIDs, so a retransmission after a restart is still known as one), one small JSON file
    written whole on every change (temporary file, fsync, rename, fsync of the directory): after a
    SIGKILL or power loss it holds the last value :meth:`commit` returned from, or a later one,
    never an older one. A missing file is a fresh store; a damaged one is
    :class:`SequenceStoreDamaged`, never zero."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._last, self._recent = self._read()

    # -- reading -----------------------------------------------------------------------------
    def _read(self) -> tuple[dict[int, int], dict[int, list[tuple[int, int]]]]:
        file = str(self.path)
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}, {}
        except OSError as exc:
            raise SequenceStoreDamaged(file, exc.strerror or type(exc).__name__) from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise SequenceStoreDamaged(file, "not JSON") from None
        if not isinstance(data, dict) or data.get("format") != _STORE_FORMAT or not isinstance(data.get("last"), dict):
            raise SequenceStoreDamaged(file, f"not a {_STORE_FORMAT} file")
        last = {_spi(file, spi): _number(file, spi, seq, SEQ_MAX) for spi, seq in data["last"].items()}
        recent_raw = data.get("recent", {})
        if not isinstance(recent_raw, dict):
            raise SequenceStoreDamaged(file, "'recent' is not a mapping")
        recent: dict[int, list[tuple[int, int]]] = {}
        for key, pairs in recent_raw.items():
            spi = _spi(file, key)
            if not isinstance(pairs, list) or len(pairs) > RECENT_PER_SPI:
                raise SequenceStoreDamaged(file, f"SPI {key}: recent is not a list of at most {RECENT_PER_SPI}")
            recent[spi] = []
            for pair in pairs:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise SequenceStoreDamaged(file, f"SPI {key}: recent entry {pair!r} is not [seq, apid]")
                seq, apid = _number(file, key, pair[0], last.get(spi, 0)), _number(file, key, pair[1], 0x7FF)
                recent[spi].append((seq, apid))
        return last, recent

    # -- reading what it holds -------------------------------------------------------------------
    def last(self, spi: int) -> int:
        """The last sequence number committed for ``spi`` (0: none yet)."""
        return self._last.get(spi, 0)

    def items(self) -> dict[int, int]:
        return dict(self._last)

    def recent(self) -> list[tuple[int, int, int]]:
        """``(spi, seq, apid)`` of the last commands received (at most RECENT_PER_SPI per SPI), oldest first."""
        return [(spi, seq, apid) for spi, pairs in sorted(self._recent.items()) for seq, apid in pairs]

    # -- changing it -------------------------------------------------------------------------------
    def commit(self, spi: int, seq: int, apid: int | None = None) -> None:
        """Make ``seq`` the last of ``spi`` (and, given its APID, one of the recent), durably, before
        returning. The last never goes back (ValueError: a caller's bug); an OSError leaves the store
        as it was (the file holds the old value or the new one)."""
        if not 1 <= spi <= 0xFFFF:
            raise ValueError(f"SPI {spi} is not within 1..65535")
        if not self.last(spi) < seq <= SEQ_MAX:
            raise ValueError(f"sequence number {seq} is not above the last, {self.last(spi)}, and within {SEQ_MAX}")
        last = {**self._last, spi: seq}
        recent = dict(self._recent)
        if apid is not None:
            recent[spi] = [*recent.get(spi, []), (seq, apid)][-RECENT_PER_SPI:]
        self._write(last, recent)
        self._last, self._recent = last, recent

    def advance(self, spi: int) -> int:
        """Allocate the next sequence number of ``spi`` for a sender: under an exclusive lock of the
        file, re-read, add one, commit. Two senders sharing the file never get the same number."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._last, self._recent = self._read()
            seq = self.last(spi) + 1
            if seq > SEQ_MAX:
                raise SequencesExhausted(f"SA {spi} has used every sequence number: make a new SA")
            self.commit(spi, seq)
            return seq
        finally:
            os.close(fd)  # releases the lock

    def _write(self, last: dict[int, int], recent: dict[int, list[tuple[int, int]]]) -> None:
        text = json.dumps({"format": _STORE_FORMAT, "last": {str(k): v for k, v in sorted(last.items())},
                           "recent": {str(k): [list(p) for p in v] for k, v in sorted(recent.items()) if v}},
                          separators=(",", ":"))
        if not self.path.parent.is_dir():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fsync_dir(self.path.parent.parent)
        _write_durably(self.path, text.encode("utf-8") + b"\n")


def _spi(file: str, key: Any) -> int:
    if not (isinstance(key, str) and key.isdigit() and 1 <= int(key) <= 0xFFFF):
        raise SequenceStoreDamaged(file, f"SPI {key!r} is not within 1..65535")
    return int(key)


def _number(file: str, spi: Any, value: Any, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise SequenceStoreDamaged(file, f"SPI {spi}: {value!r} is not within 0..{high}")
    return value


# -- on board -----------------------------------------------------------------------------------
class TcNotActed(ProtocolError):
    """A TC packet that must not act: rejected, or a duplicate of one that already did."""


class TcRejected(TcNotActed):
    """The packet failed a check; ``reason_code`` is one of :data:`REASONS`. ``header`` is what the
    packet claimed (when it parsed that far), for the event, not to be believed."""

    def __init__(self, reason_code: str, message: str, header: TcHeader | None = None) -> None:
        assert reason_code in REASONS, reason_code
        self.reason_code = reason_code
        self.message = message
        self.header = header
        super().__init__(f"{reason_code}: {message}")


class TcDuplicate(TcNotActed):
    """An authentic retransmission of a command already received: answered with the stage recorded
    for it (``received`` until the ingest records a later one), never acted on again."""

    def __init__(self, spi: int, seq: int, stage: str = "received", apid: int | None = None) -> None:
        self.spi = spi
        self.seq = seq
        self.stage = stage
        self.apid = apid
        super().__init__(f"duplicate of SPI {spi} sequence {seq} (stage {stage})")


@dataclass(frozen=True)
class Verified:
    """An authenticated command whose sequence number is durable: ``body`` is its command bytes
    (:func:`link.tmtc.decode_command`), ``operator`` the SA's."""

    spi: int
    seq: int
    apid: int
    operator: str
    body: bytes
    seq_count: int = 0


class Verifier:
    """The on-board check of every TC packet (see the module docstring for the order).

    ``associations``: the SA table; ``keys``: key bytes by key id (an enabled SA without a 32-byte
    key is a ConfigError at once, not at its first command); ``store``: the durable last sequence
    numbers; ``known_apids``: when given, a packet for another APID is malformed. ``memory``: how
    many recent (SPI, sequence) outcomes are kept to answer retransmissions."""

    def __init__(self, associations: Iterable[SecurityAssociation] | Mapping[int, SecurityAssociation],
                 keys: Mapping[str, bytes], store: SequenceStore, *, known_apids: Collection[int] | None = None,
                 memory: int = 256) -> None:
        sas = associations.values() if isinstance(associations, Mapping) else associations
        self.associations: dict[int, SecurityAssociation] = {}
        for sa in sas:
            if sa.spi in self.associations:
                raise ConfigError("<associations>", f"spi {sa.spi}", "an SPI no other SA has", sa.spi)
            if sa.enabled and len(keys.get(sa.key_id, b"")) != KEY_BYTES:
                raise ConfigError("<keys>", sa.key_id, f"a {KEY_BYTES}-byte key for SA {sa.spi}", "missing")
            self.associations[sa.spi] = sa
        self.keys = dict(keys)
        self.store = store
        self.known_apids = None if known_apids is None else frozenset(known_apids)
        self.memory = max(1, memory)
        self._outcomes: collections.OrderedDict[tuple[int, int], tuple[str, int]] = collections.OrderedDict()
        for spi, seq, apid in store.recent():  # received before a restart: answered as "received"
            self.record_outcome(spi, seq, "received", apid)
        self._counters: dict[str, int] = {"tc_verified": 0, "tc_duplicates": 0,
                                          **{f"tc_rejected_{r}": 0 for r in REASONS}}

    def counters(self) -> dict[str, int]:
        """``tc_verified``, ``tc_duplicates`` and ``tc_rejected_<reason>`` (saturating)."""
        return dict(self._counters)

    def _count(self, name: str) -> None:
        self._counters[name] = saturating_add(self._counters[name], 1)

    def _reject(self, reason: str, message: str, header: TcHeader | None = None) -> TcRejected:
        self._count(f"tc_rejected_{reason}")
        return TcRejected(reason, message, header)

    def check(self, packet: bytes | bytearray | memoryview) -> Verified:
        """The verified command, its sequence number durable; or TcRejected / TcDuplicate, and
        nothing changed but a counter."""
        try:
            header = read_tc_header(packet)
        except TmtcError as exc:
            raise self._reject("malformed", str(exc)) from None
        if self.known_apids is not None and header.apid not in self.known_apids:
            raise self._reject("malformed", f"no process has APID {header.apid:#x}", header)
        sa = self.associations.get(header.spi)
        if sa is None:
            raise self._reject("unknown_spi", f"SPI {header.spi} is not in the SA table", header)
        if not sa.enabled:
            raise self._reject("disabled_spi", f"SA {header.spi} is disabled", header)
        try:
            parts = split_tc(packet, sa.mac_len)
        except TmtcError as exc:
            raise self._reject("malformed", str(exc), header) from None
        if not _mac_matches(parts.authenticated, parts.mac, header, sa, self.keys[sa.key_id]):
            raise self._reject("bad_mac", f"MAC does not match (SPI {header.spi})", header)
        self._check_sequence(header, sa)
        try:
            self.store.commit(header.spi, header.seq, header.apid)
        except OSError as exc:
            raise self._reject("not_durable", f"sequence number not made durable: {exc.strerror or exc}",
                               header) from None
        self.record_outcome(header.spi, header.seq, "received", header.apid)
        self._count("tc_verified")
        return Verified(header.spi, header.seq, header.apid, sa.operator, parts.body, header.seq_count)

    def _check_sequence(self, header: TcHeader, sa: SecurityAssociation) -> None:
        last = self.store.last(header.spi)
        if header.seq <= last:
            known = self._outcomes.get((header.spi, header.seq))
            if known is not None and known[1] == header.apid:
                self._count("tc_duplicates")
                raise TcDuplicate(header.spi, header.seq, known[0], header.apid)
            raise self._reject("replay", f"sequence {header.seq} is not above the last, {last} (SPI {header.spi})",
                               header)
        if header.seq > last + sa.window:
            raise self._reject("out_of_window", f"sequence {header.seq} is beyond the window of {sa.window} after "
                               f"{last} (SPI {header.spi})", header)

    def record_outcome(self, spi: int, seq: int, stage: str, apid: int | None = None) -> None:
        """Remember the latest stage of a received command, to answer its retransmissions; the
        oldest of :attr:`memory` entries is forgotten first."""
        if stage not in STAGES:
            raise ValueError(f"stage {stage!r} is not one of {STAGES}")
        key = (spi, seq)
        known = self._outcomes.get(key)
        if apid is None:
            if known is None:
                return  # forgotten already (or never received): nothing to update
            apid = known[1]
        self._outcomes[key] = (stage, apid)
        self._outcomes.move_to_end(key)
        while len(self._outcomes) > self.memory:
            self._outcomes.popitem(last=False)

    def outcome(self, spi: int, seq: int) -> str | None:
        known = self._outcomes.get((spi, seq))
        return None if known is None else known[0]


# -- at the ground ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignedCommand:
    """A protected TC packet and what identifies it in verification telemetry."""

    spi: int
    seq: int
    apid: int
    packet: bytes


class Signer:
    """The ground side of one SA: each command gets the next sequence number, committed durably
    before its packet exists, so no number (no AES-GCM nonce) serves two packets."""

    def __init__(self, sa: SecurityAssociation, key: bytes, store: SequenceStore) -> None:
        if len(key) != KEY_BYTES:
            raise ConfigError("<keys>", sa.key_id, f"a {KEY_BYTES}-byte key", f"{len(key)} bytes")
        if not sa.enabled:
            raise ConfigError("<associations>", f"spi {sa.spi}", "an enabled SA to sign with", "disabled")
        self.sa = sa
        self.key = key
        self.store = store
        self._seq_counts: dict[int, int] = {}

    def next_seq(self) -> int:
        """Allocate the next sequence number (durable before it is returned)."""
        return self.store.advance(self.sa.spi)

    def sign(self, apid: int, command_spec: CommandSpec, args: Mapping[str, Any],
             seq_count: int | None = None) -> SignedCommand:
        """Encode (refusing what cannot be encoded before a number is spent), allocate, protect."""
        encode_command(apid, 0, self.sa.spi, 0, command_spec, args)  # refuse early, spend nothing
        count = self._seq_counts.get(apid, 0) if seq_count is None else seq_count
        self._seq_counts[apid] = (count + 1) & 0x3FFF
        seq = self.next_seq()
        packet = protect(encode_command(apid, count, self.sa.spi, seq, command_spec, args), self.sa, self.key)
        return SignedCommand(self.sa.spi, seq, apid, packet)
