"""The command ingest's interface, as data: its commands, events and telemetry channels
(format: :mod:`framework.interface`) and its process kind (format: :mod:`framework.kinds`).

The ingest is the lander's one entry point for ground commands (cFS CI's place):
telecommand packets arrive on its ``uplink`` PULL socket (the downlink pushes every
TC space packet its radio reads), are authenticated (:mod:`link.sdls`), decoded
against the target's table (:mod:`link.tmtc`, :mod:`link.dictionary`) and
dispatched to the target's command port. Each command's verification stages go out
on the bus as ``vrf.<ingest>`` messages (docs/uplink.md). Its own commands manage
the security associations; none of them ever shows key material.
"""

from __future__ import annotations

from framework.interface import Arg, ChannelSpec, CommandSpec, EventSpec, Interface
from framework.kinds import Field, KindSpec

__all__ = ["KIND", "INTERFACE", "REJECT_REASONS", "FAIL_REASONS"]

REJECT_REASONS = ("malformed", "unknown_spi", "disabled_spi", "bad_mac", "replay", "out_of_window",
                  "not_durable", "unknown_target", "bad_command", "bad_args", "no_command_port", "busy")
"""Why a TC packet is refused before anything acts: the SDLS check's reasons (:mod:`link.sdls`), then
the ingest's own (a target it cannot reach or decode for, a full dispatch table). Each has a health
counter ``rejected_<reason>``."""
FAIL_REASONS = ("timeout", "not_sent")
"""Why an authenticated, dispatched command ends ``failed`` without the target saying so: no answer in
time, or its command port not taking commands. Each has a health counter ``failed_<reason>``."""

_SPI = (Arg("spi", int, min=1, max=0xFFFF),)

INTERFACE = Interface.build(
    "ingest",
    commands=(
        CommandSpec(0x10, "SA_STATUS", doc="Every security association: SPI, algorithm, key id (a name, never "
                                           "the key), operator, window, enabled, last sequence number."),
        CommandSpec(0x11, "SA_ENABLE", _SPI, doc="Take commands under this SPI again (kept across restarts)."),
        CommandSpec(0x12, "SA_DISABLE", _SPI,
                    doc="Refuse every command under this SPI (kept across restarts); refused if it is the last "
                    "enabled one, which would lock the ground out for good."),
    ),
    events=(
        EventSpec(1, "tc_rejected", "warning",
                  "A telecommand was refused and nothing acted: reason (malformed, unknown_spi, disabled_spi, "
                  "bad_mac, replay, out_of_window, not_durable, unknown_target, bad_command, bad_args, no_command_port, busy), "
                  "detail; rate-limited per reason (count)."),
        EventSpec(2, "tc_failed", "warning",
                  "A dispatched command ended failed without the target's verdict: reason (timeout, not_sent); "
                  "rate-limited (count)."),
        EventSpec(3, "tc_duplicate", "info",
                  "A retransmission of a command already received (valid MAC, its sequence number known): "
                  "re-reported, not acted on again; rate-limited (count)."),
        EventSpec(4, "sa_changed", "warning", "A security association was enabled or disabled: spi, enabled."),
        EventSpec(5, "sa_key_missing", "error",
                  "A security association's key file is missing or unreadable: the SA is taken as disabled "
                  "(its commands refused, disabled_spi) until the key is there (looked for every few seconds)."),
        EventSpec(6, "dispatch_late_reply", "info",
                  "A target answered after its command had timed out (failed was already reported); rate-limited."),
        EventSpec(7, "sa_state_damaged", "error",
                  "The file of SA enables and disables made by command cannot be read: the SA file's enables "
                  "stand until the next SA_ENABLE/SA_DISABLE rewrites it."),
        EventSpec(8, "sa_key_loaded", "info",
                  "A key that was missing is there now: its SA takes commands as the SA file and the operators' "
                  "enables say (spi, key_id, enabled)."),
    ),
    telemetry=(
        ChannelSpec(0x01, "tc_received", "count", int, doc="packets read from the uplink socket"),
        ChannelSpec(0x02, "tc_authenticated", "count", int, doc="passed the SDLS check; sequence number durable"),
        ChannelSpec(0x03, "tc_dispatched", "count", int, doc="sent to the target's command port"),
        ChannelSpec(0x04, "tc_accepted", "count", int, doc="the target accepted"),
        ChannelSpec(0x05, "tc_rejected", "count", int, doc="refused, by the ingest or the target (all reasons)"),
        ChannelSpec(0x06, "tc_completed", "count", int),
        ChannelSpec(0x07, "tc_failed", "count", int, doc="failed at the target, or no answer in time"),
        ChannelSpec(0x08, "tc_duplicates", "count", int, doc="retransmissions answered without acting"),
        ChannelSpec(0x09, "tc_pending", "count", int, doc="dispatched commands awaiting their final reply"),
        *(ChannelSpec(0x10 + i, f"rejected_{r}", "count", int, doc=f"refused: {r}")
          for i, r in enumerate(REJECT_REASONS)),
        ChannelSpec(0x20, "rejected_by_target", "count", int, doc="the target's command port refused"),
        *(ChannelSpec(0x21 + i, f"failed_{r}", "count", int, doc=f"failed: {r}") for i, r in enumerate(FAIL_REASONS)),
        ChannelSpec(0x28, "sa_last_seq", "", dict, doc="each SPI's last accepted sequence number"),
        ChannelSpec(0x29, "sa_enabled", "count", int, doc="security associations taking commands"),
    ),
)

KIND = KindSpec(
    interface=INTERFACE,
    name="fsw.ingest",
    entry="fsw.ingest.process:run",
    endpoints={"uplink": "tcp|ipc", "bus_pub": "tcp|ipc", "command": "tcp|ipc?"},
    binds=("uplink", "command"),
    keys={
        "sa_file": Field(str, "configs/sa.yaml", min_len=1,
                         doc="the security-association table (a path, or a config shipped in configs/)"),
        "state_dir": Field(str, "ingest", path="dir", relative_to="out", min_len=1,
                           doc="sequence numbers and SA enables, written durably (fsync) before a command acts"),
        "reply_timeout_s": Field(float, 5.0, min=0.05, max=3600.0,
                                 doc="a target that has not accepted or rejected by then: failed (timeout)"),
        "completion_timeout_s": Field(float, 900.0, min=0.05, max=86400.0,
                                      doc="an accepted command with no completed/failed by then: failed (timeout)"),
        "max_pending": Field(int, 64, min=1, max=4096,
                             doc="dispatched commands awaiting replies at once; beyond it, rejected (busy)"),
    },
    doc="Command ingest: authenticated TC packets from the uplink (SDLS), dispatched to command ports; "
        "verification stages on the bus.",
)
