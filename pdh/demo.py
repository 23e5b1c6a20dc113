"""``pdh demo``: run the whole chain on emulated hardware, then prove it bit-exact.

Phases: start every process of the config (every host's, on this machine);
capture for ``duration_s``; tell every camera driver to stop streaming; wait
until every product made has been confirmed by the ground (or the drain time
runs out); stop every process; check each full-frame PNG at the ground against
the emulator's manifest and every packet of the relay's pcap; print and write
the summary. Progress comes from every bus of the config: the lander's broker
carries the flight side, the ground's broker the ground station.

The verdict counts every frame of the emulator's manifest (:func:`judge_frames`):
each must be at the ground bit-exact (or its thumbnail, where the policy kept only
that), or be named by an event (received by the ground from the lander, or heard on
a bus during the run) saying why not. A frame that is neither fails the run, named.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from framework.config import Config, validate_config
from pdh.monitor import BusWatch, RunState
from pdh.supervisor import Interrupted, Supervisor, catch_stop_signals
from pdh.verify import PcapCheck, judge_frames, read_manifest, verify_ground, verify_pcap
from framework.bus.auth import operator_client
from pdh.demo_uplink import DemoUplink

__all__ = ["run_demo", "prepare_config", "judge_frames"]  # judge_frames: pdh.verify's, the verdict

# Run output this command owns and clears at the start of a run (imaging: the imaging core's frame journal).
# The uplink check: one command queued at the ground outside a contact (pdh.demo_uplink); it must act on board
# after the next window opens plus light time, and its verification stages must come back.
_UPLINK_TARGET, _UPLINK_CMD = "navcam_driver", "PING"
_UPLINK_AFTER_S = 5.0  # the ground's command port is up by then; the command waits for the next gap after it
_OWNED = ["hil", "link", "ground", "logs", "store", "imaging", "summary.json", "config.yaml", "supervisor.json"]


def prepare_config(src: Path, out: Path, loss: float | None) -> tuple[Config, Path]:
    """Validate the config, apply overrides, and write the run's own copy to OUT/config.yaml."""
    raw = yaml.safe_load(src.read_text())
    validate_config(raw, str(src))
    if loss is not None:
        for p in raw["processes"].values():
            if p.get("kind") == "hil.relay":
                p["loss"] = loss
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return validate_config(raw, str(src)).for_run(out), path  # ipc://NAME: sockets of this run's ipc directory


class _View:
    """Live progress: a rich table in a terminal, a plain line every few seconds otherwise."""

    def __init__(self, live: bool) -> None:
        self.live = None
        self._last_plain = 0.0
        if live:
            from rich.live import Live

            self.live = Live(refresh_per_second=4, transient=False)
            self.live.start()

    def show(self, phase: str, row: dict[str, Any]) -> None:
        if self.live is not None:
            from rich.table import Table

            t = Table(title=f"lunar-pdh demo: {phase}", show_header=False)
            for k, v in row.items():
                t.add_row(k, str(v))
            self.live.update(t)
        elif time.monotonic() - self._last_plain >= 3.0:
            self._last_plain = time.monotonic()
            print(f"[{phase}] " + "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def _row(state: RunState, config: Config, sup: Supervisor, t0: float) -> dict[str, Any]:
    drivers = config.processes_of_kind("drivers.camera")
    downlinks = config.processes_of_kind("fsw.downlink")
    return {
        "elapsed_s": round(time.monotonic() - t0, 1),
        "frames_captured": state.sum_tlm("frames_good", drivers),
        "products_made": len(state.made),
        "stored": len(state.stored),
        "bytes_sent": state.sum_tlm("bytes_sent", downlinks),
        "confirmed": len(state.confirmed & set(state.made)),  # products, as the summary's products_confirmed
        "at_ground": len(state.received_ok),
        "processes_up": f"{sum(sup.alive().values())}/{len(sup.children)}",
        "restarts": sum(max(0, c.starts - 1) for c in sup.children.values()),
    }


def _reported(notes: list[str], name: str, fields: dict[str, Any]) -> None:
    """A supervisor report: kept for the summary; a process given up is said on screen at once, with why."""
    notes.append(f"{name} {fields}")
    if name == "process_gave_up":
        print(f"{fields['process']}: given up after {fields['restarts']} restarts; last error: "
              f"{fields['last_error']}", file=sys.stderr, flush=True)


def event_lines(state: RunState) -> list[str]:
    """The summary's warning and error events, counted; a CFDP transfer that failed and whose product was
    sent again and confirmed is counted as recovered, not among the failures."""
    recovered = state.transfers_recovered()
    lines = []
    for key, n in sorted(state.warning_counts.items()):
        r = recovered.get(key, (0, 0))[0]
        if n - r > 0:
            lines.append(f"  {'events':30s} {n - r} x {key}")
        if r:
            lines.append(f"  {'recovered':30s} {r} x {key} (sent again and confirmed)")
    return lines


def failure_reasons(summary: dict[str, Any], frames_failure: str, notes: list[str]) -> list[str]:
    """Why a run failed, each reason said (the verdict line never ends in "see above" alone)."""
    reasons = [n for n in notes if n.startswith("interrupted by")]
    reasons += [f"{p} was given up: {err}" for p, err in summary.get("processes_given_up", {}).items()]
    if frames_failure:
        reasons.append(frames_failure)
    for key, what in (("full_frames_mismatched", "full frames differ from the camera's"),
                      ("full_frames_not_in_manifest", "full frames the camera never sent"),
                      ("pcap_problems", "the relay's pcap has problems"),
                      ("uplink_problems", "the uplink check failed")):
        if summary.get(key):
            reasons.append(f"{what}: {summary[key]}")
    made_tlm, made = summary.get("products_made_per_imaging_tlm", 0), summary.get("products_made", 0)
    if made_tlm > made:
        reasons.append(f"imaging reports {made_tlm} products made, the demo saw {made} (bus messages lost?)")
    if summary.get("uplink_command") and not summary.get("pcap_ccsds_tc"):
        reasons.append("no TC packet in the relay's pcap (the uplinked command never crossed the link)")
    reasons += [n for n in notes if n.startswith("drain_timeout")]
    if not reasons:
        reasons.append("; ".join(notes[-3:]) or "no reason recorded (see summary.json)")
    return reasons


class OutRefused(Exception):
    """``--out`` cannot hold this run: not a directory, not writable, or holding a run (without ``--force``)."""


_KEPT = ("keys",)  # what --out may hold without --force: a key directory made beforehand (pdh keys)


def prepare_out(out: Path, force: bool) -> None:
    """Make ``out`` ready for a run, or raise OutRefused saying why: a previous run there is cleared only
    with ``force`` (never silently), and only what this command owns (:data:`_OWNED`)."""
    if out.exists() and not out.is_dir():
        raise OutRefused(f"--out {out}: not a directory (it is a file); give a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".pdh-write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutRefused(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    held = sorted(p.name for p in out.iterdir() if p.name not in _KEPT)
    if held and not force:
        raise OutRefused(f"--out {out}: not empty (holds {', '.join(held[:6])}{' ...' if len(held) > 6 else ''}); "
                         "give an empty or new directory, or --force to clear the last run's output there")
    for name in _OWNED:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def run_demo(config_path: Path, out: Path, duration_s: float, loss: float | None, drain_s: float,
             live: bool | None = None, force: bool = False) -> int:
    try:
        prepare_out(out, force)
    except OutRefused as exc:
        print(exc, file=sys.stderr)
        return 2
    config, run_cfg = prepare_config(config_path, out, loss)
    config.check_here()  # the demo starts every host's processes here: each bind address must be this machine's
    live = sys.stdout.isatty() if live is None else live
    notes: list[str] = []
    sup = Supervisor(config, run_cfg, out, on_report=lambda n, f: _reported(notes, n, f))
    busy = sup.busy_ports()
    if busy:  # another run (or anything else) holds them: nothing is started, the busy ones are named
        print(f"{config_path}: cannot start, {len(busy)} port(s) in use (another demo or run?):", file=sys.stderr)
        for line in busy:
            print(f"  {line}", file=sys.stderr)
        return 2
    brokers = config.processes_of_kind("bus.broker")
    if not brokers:
        print(f"{config_path}: no bus.broker process; the demo needs one", file=sys.stderr)
        return 2
    import zmq

    zctx = zmq.Context()
    buses = BusWatch(zctx, config, ["tlm.", "evt.", "product."])
    state = RunState()
    view = _View(live)
    t0 = time.monotonic()
    phase = "capture"
    stop_sent_at: float | None = None
    interrupted = False
    uplink: DemoUplink | None = None
    restore_signals = catch_stop_signals()  # SIGTERM and SIGHUP stop the children as Ctrl-C does
    try:
        sup.start()
        uplink = DemoUplink(zctx, config, out, _UPLINK_TARGET, _UPLINK_CMD) if _UPLINK_TARGET in config.processes else None
        while True:
            for msg in buses.drain(timeout_ms=100):
                state.feed(msg, time.monotonic(), t0)
            sup.watch()
            now = time.monotonic()
            if uplink is not None and not uplink.done:
                uplink.step(ground_up=now - t0 >= _UPLINK_AFTER_S)
            if phase == "capture" and now - t0 >= duration_s:
                phase = "drain"
                stop_sent_at = now
                _stop_streaming(zctx, config, notes, out)
            if phase == "drain":
                assert stop_sent_at is not None
                if (now - stop_sent_at > 3.0 and state.drained() and _imaging_idle(state, config)
                        and (uplink is None or uplink.done)):
                    break
                if now - stop_sent_at > drain_s:
                    notes.append(f"drain_timeout after {drain_s:.0f} s")
                    break
            view.show(phase, _row(state, config, sup, t0))
    except Interrupted as exc:
        interrupted = True
        notes.append(f"interrupted by {exc.signame}" + (" (Ctrl-C)" if exc.signame == "SIGINT" else ""))
    finally:
        view.close()
        if uplink is not None:
            notes.extend(uplink.notes)
            uplink.close()
        sup.stop()
        restore_signals()
        buses.close()
        zctx.destroy(linger=0)
    return _summarise(out, config, state, sup, t0, duration_s, loss, notes, interrupted,
                      uplink.summary() if uplink is not None else {})


def _verify_pcaps(path: Path) -> PcapCheck:
    """:func:`verify_pcap` over the relay's capture and the files it rotated out (relay.pcap.1, ...), summed."""
    total = verify_pcap(path)
    for rotated in sorted(path.parent.glob(f"{path.name}.[0-9]*")):
        part = verify_pcap(rotated)
        total.packets += part.packets
        total.ccsds_cfdp += part.ccsds_cfdp
        total.ccsds_tm += part.ccsds_tm
        total.ccsds_tc += part.ccsds_tc
        total.bad += [f"{rotated.name}: {b}" for b in part.bad]
    return total


def _stop_streaming(zctx: Any, config: Config, notes: list[str], out: Path) -> None:
    for drv in config.processes_of_kind("drivers.camera"):
        client = operator_client(zctx, config, out, drv)  # the run's operator key (made at run start)
        replies = client.call("STREAM_STOP", {}, timeout_s=5.0)
        client.close()
        final = replies[-1].status if replies else "no reply"
        if final != "completed":
            notes.append(f"STREAM_STOP to {drv}: {final} {replies[-1].reason if replies else ''}")


def _imaging_idle(state: RunState, config: Config) -> bool:
    drivers = config.processes_of_kind("drivers.camera")
    cores = config.processes_of_kind("fsw.imaging")
    frames = state.sum_tlm("frames_good", drivers)
    seen = state.sum_tlm("frames_in", cores)
    pending = state.sum_tlm("products_pending", cores) + state.sum_tlm("products_unacked", cores)
    return seen >= frames and pending == 0 and state.sum_tlm("reports_unechoed", cores) == 0


def _link_figures(config: Config, relays: list[str]) -> dict[str, Any]:
    """The relay link as configured: extra random loss, and each relay's rate, light time and mean loss."""
    if not relays:
        return {"extra_loss": None, "relays": []}
    settings = config.processes[relays[0]]
    out: list[str] = []
    try:
        from link.contacts import load_plan

        for r in load_plan(settings).relays:
            rates = "/".join(f"{x / 1e6:g}" for x in r.rate_bps)
            out.append(f"{r.name}: {rates} Mbit/s, {r.latency_ms:g} ms, burst loss {r.burst.mean_loss:.1%}, "
                       f"corrupt {r.corrupt:.2%}")
    except Exception as exc:  # the summary must not fail over a description
        out.append(f"(contact plan unreadable: {exc})")
    return {"extra_loss": settings.get("loss"), "relays": out}


def _thumbnail_order(ledger_path: Path) -> dict[str, int]:
    if not ledger_path.exists():
        return {}
    try:
        from ground.ledger import Ledger

        ledger = Ledger(ledger_path)
        try:
            return ledger.thumbnails_first()
        finally:
            ledger.close()
    except Exception:  # a summary line, not a verdict
        return {}


def _summarise(out: Path, config: Config, state: RunState, sup: Supervisor, t0: float, duration_s: float,
               loss: float | None, notes: list[str], interrupted: bool, uplink: dict[str, Any]) -> int:
    manifest = read_manifest(out / "hil" / "manifest.jsonl")
    ground_dirs = [out / config.processes[g]["out_subdir"] for g in config.processes_of_kind("ground.station")]
    full = state.full_made()
    check = verify_ground(ground_dirs[0] if ground_dirs else out / "ground", manifest, full)
    frames = judge_frames(out, config, state.naming)
    relays = config.processes_of_kind("hil.relay")
    pcap = _verify_pcaps(out / config.processes[relays[0]]["pcap"]) if relays else None
    cores = config.processes_of_kind("fsw.imaging")
    made_by_tlm = state.sum_tlm("products_made", cores)
    link = _link_figures(config, relays)
    order = _thumbnail_order(ground_dirs[0] / "ledger.sqlite") if ground_dirs else {}
    images = {pid for pid in state.made}
    summary = {
        "ok": False,
        "duration_s": duration_s,
        "wall_s": round(time.monotonic() - t0, 1),
        "loss": link["extra_loss"],
        "relays": link["relays"],
        "frames_in_manifest": len(manifest),
        "frames_captured": state.sum_tlm("frames_good", config.processes_of_kind("drivers.camera")),
        "products_made": len(state.made),
        "products_made_per_imaging_tlm": made_by_tlm,
        "full_frames_made": len(full),
        "full_frames_bit_exact": len(check.exact),
        "full_frames_missing": check.missing,
        "full_frames_mismatched": check.mismatched,
        "full_frames_not_in_manifest": check.not_in_manifest,
        "thumbnails_at_ground": sum(1 for p in state.received_ok if p.endswith("-thumbnail")),
        "products_confirmed": len(state.confirmed & images),
        "telemetry_segments_confirmed": len(state.confirmed - images),
        "frames_with_thumbnail_and_full": order.get("frames_with_both"),
        "thumbnail_before_full": order.get("thumbnail_first"),
        "products_at_ground": len(state.received_ok),
        "first_thumbnail_at_ground_s": None if state.first_thumbnail_s is None else round(state.first_thumbnail_s, 2),
        "first_full_at_ground_s": None if state.first_full_s is None else round(state.first_full_s, 2),
        "bytes_sent": state.sum_tlm("bytes_sent", config.processes_of_kind("fsw.downlink")),
        "pcap_packets": pcap.packets if pcap else 0,
        "pcap_ccsds_cfdp": pcap.ccsds_cfdp if pcap else 0,
        "pcap_ccsds_tm": pcap.ccsds_tm if pcap else 0,
        "pcap_ccsds_tc": pcap.ccsds_tc if pcap else 0,
        **uplink,
        "pcap_problems": pcap.bad if pcap else ["no relay"],
        **frames.summary(),
        "process_restarts": {n: c.starts - 1 for n, c in sup.children.items() if c.starts > 1},
        "processes_given_up": sup.given_up(),
        "transactions_recovered": {k: r for k, (r, _) in state.transfers_recovered().items() if r},
        "warning_counts": state.warning_counts,
        "warnings": state.warnings[-20:],
        "notes": notes[-20:],
        "interrupted": interrupted,
    }
    # Every frame the camera sent counts (not only those seen being made); a full frame at the ground must
    # be the camera's, and every one the demo saw made must be the manifest's.
    summary["ok"] = (frames.ok and not check.mismatched and not check.not_in_manifest
                     and (pcap is None or pcap.ok) and not interrupted and made_by_tlm <= len(state.made)
                     and uplink.get("uplink_ok", True) and (not uplink or pcap is None or pcap.ccsds_tc > 0)
                     and not sup.given_up())
    summary["failure"] = [] if summary["ok"] else failure_reasons(summary, frames.failure(), notes)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print()
    print("lunar-pdh demo summary")
    for k in ("wall_s", "loss", "relays", "frames_in_manifest", "frames_captured", "frames_at_ground",
              "frames_thumbnail_only", "frames_named", "products_made",
              "full_frames_made", "full_frames_bit_exact", "thumbnails_at_ground", "products_confirmed",
              "telemetry_segments_confirmed", "thumbnail_before_full", "frames_with_thumbnail_and_full",
              "first_thumbnail_at_ground_s", "first_full_at_ground_s", "bytes_sent", "pcap_packets",
              "pcap_ccsds_cfdp", "pcap_ccsds_tm", "pcap_ccsds_tc", "uplink_command", "uplink_state",
              "uplink_wait_for_window_s", "uplink_light_time_s", "uplink_stages"):
        if k in summary:
            print(f"  {k:30s} {summary[k]}")
    for k in ("frames_unaccounted", "frames_mismatched", "frames_named_examples", "full_frames_missing",
              "full_frames_mismatched", "full_frames_not_in_manifest", "pcap_problems", "process_restarts",
              "processes_given_up", "uplink_problems", "transactions_recovered"):
        if summary.get(k):
            print(f"  {k:30s} {summary[k]}")
    for line in event_lines(state):
        print(line)
    verdict = ("PASS: every frame of the manifest at the ground bit-exact or named by an event" if summary["ok"]
               else f"FAIL: {'; '.join(summary['failure'])}")
    print(f"  {'result':30s} {verdict}")
    print(f"  output in {out}/ (summary.json, ground/, hil/manifest.jsonl, link/relay.pcap, logs/)")
    return 0 if summary["ok"] else 1
