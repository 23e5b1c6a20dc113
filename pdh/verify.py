"""End-to-end checks of a run's output: every frame of the emulator manifest accounted for, and the pcap.

The verdict counts what the source sent, not what the chain produced: each frame of
``OUT/hil/manifest.jsonl`` (:func:`account_frames`) must be at the ground (its full
frame bit-exact to the manifest's CRC-32C and its thumbnail; the thumbnail alone where
the policy kept only that: :data:`POLICY_EVENTS`, the imaging core's ``frames_thumbnail_only``
for any of its reasons, such as a store full by its quota, and the downlink's
``product_evicted`` of a full product) or named by an event that says why not (:class:`Naming`,
built from the events the ground received from the lander, :func:`ground_events`, and
any the caller heard on the bus). Anything else fails, naming the frames.

Pure reading of files; used by ``pdh demo``, the scenario runner and the integration tests.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import cv2
import msgpack
import numpy as np

from framework.config import Config
from framework.crc import pixels_crc32c
from fsw.imaging.product import product_id

__all__ = ["read_manifest", "verify_ground", "verify_pcap", "GroundCheck", "PcapCheck", "Naming", "NAMING_EVENTS",
           "POLICY_EVENTS", "by_policy",
           "FramesCheck", "account_frames", "ground_events", "frame_name", "judge_frames"]

NAMING_EVENTS = frozenset({"frames_lost", "frames_thumbnail_only", "product_failed", "product_evicted",
                           "product_discarded", "frame_counter_gap"})
"""Events that name frames (or products of frames) that will not reach the ground, and why."""
POLICY_EVENTS = ("frames_thumbnail_only", "product_evicted")
"""Events by which the policy, not a loss, left a frame its thumbnail only: the capture path kept only the
thumbnail (queue full, the grade rule, falling behind its ring, the store full by its quota), or the store
evicted the full product by its quota's order (thumbnails are never evicted)."""
FRAME_PRODUCTS = frozenset({"thumbnail", "full"})
_PRODUCT_ID = re.compile(r"^(?P<camera>.+)-(?P<counter>\d+)-(?P<kind>thumbnail|full|lossy|roi|preview)$")
_MAX_LISTED = 20


def read_manifest(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """Manifest lines keyed by (camera, counter); a torn last line is skipped."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
            out[(rec["camera"], int(rec["counter"]))] = rec
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return out


@dataclass
class GroundCheck:
    expected: list[str]
    exact: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    not_in_manifest: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.expected) and len(self.exact) == len(self.expected)


def verify_ground(ground_dir: Path, manifest: dict[tuple[str, int], dict[str, Any]],
                  full_products: Iterable[tuple[str, str, int]]) -> GroundCheck:
    """Each full product (id, camera, counter) must be a PNG whose pixels match the manifest CRC-32C."""
    items = sorted(set(full_products))
    check = GroundCheck(expected=[i for i, _, _ in items])
    for pid, camera, counter in items:
        rec = manifest.get((camera, counter))
        if rec is None:
            check.not_in_manifest.append(pid)
            continue
        png = ground_dir / f"{pid}.png"
        if not png.exists():
            check.missing.append(pid)
            continue
        img = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        if img is None or list(img.shape[:2]) != list(rec["shape"][:2]):
            check.mismatched.append(pid)
            continue
        if pixels_crc32c(np.ascontiguousarray(img)) == int(rec["crc32c"]):
            check.exact.append(pid)
        else:
            check.mismatched.append(pid)
    return check


@dataclass
class PcapCheck:
    packets: int = 0
    ccsds_cfdp: int = 0
    ccsds_tm: int = 0
    ccsds_tc: int = 0
    bad: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.packets > 0 and self.ccsds_cfdp + self.ccsds_tm + self.ccsds_tc == self.packets


def _space_link_kind(payload: bytes) -> str:
    """What one relay datagram is: ``cfdp`` (a Space Packet on the CFDP APID whose data field is a CFDP PDU),
    ``tm`` (one or more TM packets with a secondary header) or ``tc`` (a TC packet); ValueError if none."""
    from spacepackets.ccsds.spacepacket import SpacePacketHeader
    from spacepackets.cfdp.pdu import PduFactory

    from link.packets import APID_CFDP
    from link.tlm_segments import decode_segment
    from link.tmtc import read_tc_header

    sph = SpacePacketHeader.unpack(payload)
    if sph.apid == APID_CFDP:
        if sph.packet_len != len(payload):
            raise ValueError(f"space packet length {sph.packet_len} != datagram {len(payload)}")
        if PduFactory.from_raw(payload[6:]) is None:
            raise ValueError("data field is not a CFDP PDU")
        return "cfdp"
    if payload[0] & 0x10:
        read_tc_header(payload)
        return "tc"
    decode_segment(payload)
    return "tm"


def verify_pcap(path: Path, max_bad: int = 5) -> PcapCheck:
    """Every UDP payload in the capture must parse as a CFDP PDU in a Space Packet, TM packets or a TC packet."""
    import dpkt

    check = PcapCheck()
    if not path.exists():
        check.bad.append("no pcap file")
        return check
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        link = reader.datalink()
        try:
            for _ts, buf in reader:
                check.packets += 1
                try:
                    ip = dpkt.ethernet.Ethernet(buf).data if link == dpkt.pcap.DLT_EN10MB else dpkt.ip.IP(buf)
                    kind = _space_link_kind(bytes(ip.data.data))
                    setattr(check, f"ccsds_{kind}", getattr(check, f"ccsds_{kind}") + 1)
                except Exception as exc:  # any parser's failure is a finding, not a crash
                    if len(check.bad) < max_bad:
                        check.bad.append(f"packet {check.packets}: {type(exc).__name__}: {exc}")
        except dpkt.NeedData:
            pass  # a capture cut short by a kill ends with a partial record
    return check


def frame_name(camera: str, counter: int) -> str:
    return f"{camera}/{counter}"


def by_policy(why: Iterable[str]) -> bool:
    """Whether the reasons :meth:`Naming.lookup` gave for a frame include one of :data:`POLICY_EVENTS`."""
    return any(f": {name}" in w for w in why for name in POLICY_EVENTS)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class Naming:
    """What the events said of frames: per camera, counter ranges with the products they name and why."""

    ranges: dict[str, list[tuple[int, int, frozenset[str], str]]] = field(default_factory=dict)
    events: int = 0

    def add(self, src: str, fields: dict[str, Any], src_camera: dict[str, str] | None = None) -> None:
        """One event from ``src``; anything that is not a naming event, or names nothing, is ignored."""
        name = fields.get("name")
        if name not in NAMING_EVENTS:
            return
        camera = fields.get("camera") if isinstance(fields.get("camera"), str) else (src_camera or {}).get(src)
        kinds = frozenset(k for k in fields.get("products", ()) if isinstance(k, str)) \
            if isinstance(fields.get("products"), list) else FRAME_PRODUCTS
        if name == "frames_thumbnail_only":
            kinds = frozenset({"full"})  # the policy keeps the thumbnail: it is still expected
        spans: list[tuple[int, int]] = []
        if isinstance(fields.get("id"), str):
            m = _PRODUCT_ID.match(fields["id"])
            if m is None:
                return
            camera, n, kinds = m["camera"], int(m["counter"]), frozenset({m["kind"]})
            spans.append((n, n))
        if name == "frame_counter_gap" and _int(fields.get("counter")) and _int(fields.get("previous")):
            spans.append((fields["previous"] + 1, fields["counter"] - 1))
        elif _int(fields.get("counter")):
            spans.append((fields["counter"], fields["counter"]))
        if isinstance(fields.get("counters"), list):
            spans += [(n, n) for n in fields["counters"] if _int(n)]
        if isinstance(fields.get("ranges"), list):
            spans += [(r[0], r[1]) for r in fields["ranges"]
                      if isinstance(r, list) and len(r) == 2 and _int(r[0]) and _int(r[1])]
        if not isinstance(camera, str) or not spans:
            return
        why = f"{src}: {name}" + (f" ({fields['reason']})" if isinstance(fields.get("reason"), str) else "")
        self.events += 1
        self.ranges.setdefault(camera, []).extend((a, b, kinds, why[:200]) for a, b in spans if a <= b)

    def lookup(self, camera: str, counter: int) -> tuple[frozenset[str], list[str]]:
        """The products of a frame the events named, and why (each event once)."""
        kinds: set[str] = set()
        why: list[str] = []
        for a, b, k, w in self.ranges.get(camera, ()):
            if a <= counter <= b:
                kinds |= k
                if w not in why:
                    why.append(w)
        return frozenset(kinds), why


@dataclass
class FramesCheck:
    """Every manifest frame, judged. ``missing`` and ``mismatched`` fail the run."""

    frames: int = 0
    spoilt: list[str] = field(default_factory=list)  # the emulator spoilt them on purpose (fault): not expected
    at_ground: list[str] = field(default_factory=list)  # full frame bit-exact and thumbnail
    thumbnail_only: list[str] = field(default_factory=list)  # the policy kept only the thumbnail, and it is there
    named: dict[str, list[str]] = field(default_factory=dict)  # frame -> the events that account for it
    mismatched: list[str] = field(default_factory=list)  # a full frame at the ground that is not the camera's
    missing: dict[str, list[str]] = field(default_factory=dict)  # frame -> products neither at ground nor named

    @property
    def ok(self) -> bool:
        return self.frames > len(self.spoilt) and not self.missing and not self.mismatched

    def summary(self) -> dict[str, Any]:
        return {"frames_in_manifest": self.frames, "frames_spoilt_by_emulator": len(self.spoilt),
                "frames_at_ground": len(self.at_ground), "frames_thumbnail_only": len(self.thumbnail_only),
                "frames_named": len(self.named), "frames_mismatched": self.mismatched[:_MAX_LISTED],
                "frames_unaccounted": {k: v for k, v in list(self.missing.items())[:_MAX_LISTED]},
                "frames_unaccounted_count": len(self.missing),
                "frames_named_examples": {k: v for k, v in list(self.named.items())[:5]}}

    def failure(self) -> str:
        """One line naming what failed (empty when ok)."""
        parts = []
        if self.missing:
            listed = ", ".join(f"{k} ({'+'.join(v)})" for k, v in list(self.missing.items())[:_MAX_LISTED])
            more = f" and {len(self.missing) - _MAX_LISTED} more" if len(self.missing) > _MAX_LISTED else ""
            parts.append(f"{len(self.missing)} frame(s) neither at the ground nor named by an event: {listed}{more}")
        if self.mismatched:
            parts.append(f"full frame(s) at the ground differ from the camera's: {', '.join(self.mismatched[:20])}")
        if self.frames <= len(self.spoilt):
            parts.append("no sound frame in the manifest")
        return "; ".join(parts)


def _full_matches(png: Path, rec: dict[str, Any]) -> bool:
    img = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    if img is None or list(img.shape[:2]) != list(rec.get("shape", [])[:2]):
        return False
    return pixels_crc32c(np.ascontiguousarray(img)) == int(rec["crc32c"])


def _at_ground(ground_dirs: list[Path], pid: str) -> Path | None:
    return next((d / f"{pid}.png" for d in ground_dirs if (d / f"{pid}.png").exists()), None)


def account_frames(manifest: dict[tuple[str, int], dict[str, Any]], ground_dirs: Path | list[Path],
                   naming: Naming) -> FramesCheck:
    """Judge every frame of the manifest: at the ground (``<id>.png`` in any of ``ground_dirs``, the full
    frame's pixels matching the manifest CRC-32C), thumbnail-only by policy, or named by an event;
    otherwise missing."""
    dirs = [ground_dirs] if isinstance(ground_dirs, Path) else list(ground_dirs)
    check = FramesCheck(frames=len(manifest))
    for (camera, counter), rec in sorted(manifest.items()):
        name = frame_name(camera, counter)
        if rec.get("fault"):
            check.spoilt.append(name)
            continue
        have: set[str] = set()
        if _at_ground(dirs, product_id(camera, counter, "thumbnail")) is not None:
            have.add("thumbnail")
        full = _at_ground(dirs, product_id(camera, counter, "full"))
        if full is not None:
            if not _full_matches(full, rec):
                check.mismatched.append(name)
                continue
            have.add("full")
        kinds, why = naming.lookup(camera, counter)
        lacking = FRAME_PRODUCTS - have - kinds
        if lacking:
            check.missing[name] = sorted(lacking)
        elif have == FRAME_PRODUCTS:
            check.at_ground.append(name)
        elif have == {"thumbnail"} and by_policy(why):
            check.thumbnail_only.append(name)
        else:
            check.named[name] = why
    return check


def ground_events(ledger_path: Path) -> list[tuple[str, dict[str, Any]]]:
    """The lander's events the ground received (its ledger's telemetry records on ``evt.*``), as
    (source, fields); nothing if the ledger is not there. Opened read-only."""
    if not ledger_path.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{ledger_path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return []
    out: list[tuple[str, dict[str, Any]]] = []
    try:
        for src, blob in db.execute("SELECT src, fields FROM telemetry WHERE topic LIKE 'evt.%' ORDER BY t"):
            try:
                fields = msgpack.unpackb(blob, raw=False)
            except Exception:  # a damaged row is skipped; the verdict reads the rest
                continue
            if isinstance(fields, dict) and isinstance(src, str):
                out.append((src, fields))
    except sqlite3.Error:
        pass
    finally:
        db.close()
    return out


def judge_frames(out: Path, config: Config, heard: Iterable[tuple[str, dict[str, Any]]] = ()) -> FramesCheck:
    """Every frame of ``OUT/hil/manifest.jsonl`` at the ground or named by an event: the events the
    ground stations received from the lander, and ``heard`` ((source, fields) of events seen on a bus)."""
    manifest = read_manifest(out / "hil" / "manifest.jsonl")
    grounds = [out / config.processes[g]["out_subdir"] for g in config.processes_of_kind("ground.station")]
    src_camera = {n: str(config.processes[n].get("camera")) for n in config.processes_of_kind("drivers.camera")}
    naming = Naming()
    for g in grounds:
        for src, fields in ground_events(g / "ledger.sqlite"):
            naming.add(src, fields, src_camera)
    for src, fields in heard:
        naming.add(src, fields, src_camera)
    return account_frames(manifest, grounds or [out / "ground"], naming)
