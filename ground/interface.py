"""The ground station's interface, as data: commands, events, telemetry channels (format: :mod:`framework.interface`).

Every event the station publishes takes its id and severity from here;
``product_received`` is published as "error" when the product did not decode.
The command port is optional (a config may give the station none); with one,
the station takes the operator's commands for the lander (UPLINK, into the queue
of :mod:`ground.uplink`) and the queue's own (QUEUE_LIST, QUEUE_MOVE, QUEUE_CANCEL).
"""

from __future__ import annotations

from framework.interface import Arg, ChannelSpec, CommandSpec, EventSpec, Interface
from framework.kinds import Field, KindSpec
from link.contacts import CONTACT_PLAN_KEYS

__all__ = ["KIND", "INTERFACE", "COMMANDS", "EVENTS", "TELEMETRY"]

INTERFACE = Interface.build(
    "ground",
    commands=(
        CommandSpec(0x10, "UPLINK", (Arg("target", str), Arg("cmd", str), Arg("args_json", str, required=False),
                                     Arg("spi", int, min=1, max=65535, required=False)),
                    doc="queue a command for a lander process (checked against its table and the SA now); "
                        "result: {id}. args_json: a JSON object (default {}); spi: default uplink_spi"),
        CommandSpec(0x11, "QUEUE_LIST", (Arg("id", int, min=1, required=False), Arg("all", bool, required=False)),
                    doc="the queued commands (in flight, then waiting, in order; all: also the last finished), "
                        "each with id, target, cmd, args, state, attempts, seq, stages [{stage, t, detail}]; "
                        "id: that one command"),
        CommandSpec(0x12, "QUEUE_MOVE", (Arg("id", int, min=1), Arg("position", int, min=0)),
                    doc="move a waiting command to a position among the waiting ones (0: next to go)"),
        CommandSpec(0x13, "QUEUE_CANCEL", (Arg("id", int, min=1),),
                    doc="cancel a command that has not been signed or sent"),
    ),
    events=(
        EventSpec(0x01, "product_received", "info",
                  "a product arrived: id, product_kind, crc32c, ok (decoded and written bit-exact); "
                  "'kind' is a reserved bus header key"),
        EventSpec(0x02, "product_failed", "error", "a received file did not decode; reason given, raw file kept"),
        EventSpec(0x03, "transfer_failed", "warning", "a CFDP transaction ended without the file"),
        EventSpec(0x04, "datagram_rejected", "warning",
                  "a radio datagram was neither a Space Packet with a CFDP PDU nor whole TM packets "
                  "(rate-limited, with count)"),
        EventSpec(0x05, "telemetry_received", "info",
                  "a telemetry segment (TM packets) arrived: id, segment_kind, records (packets), new_records, "
                  "rejected, t0, t1"),
        EventSpec(0x06, "telemetry_failed", "error", "a telemetry segment did not decode"),
        EventSpec(0x07, "command_stage", "info",
                  "a queued command reached a stage: id, target, cmd, stage (queued, sent#n, received, accepted, "
                  "rejected, completed, failed, duplicate, not_delivered, cancelled), reason; rejected is a "
                  "warning, failed and not_delivered errors"),
        EventSpec(0x08, "uplink_unavailable", "error",
                  "the command at the head of the queue cannot be signed (SA disabled, key missing): id, spi, "
                  "reason (rate-limited; it stays queued)"),
        EventSpec(0x09, "verification_unmatched", "warning",
                  "a verification packet for no command this ground sent: spi, tc_seq, stage (rate-limited)"),
        EventSpec(0x0A, "tm_rejected", "warning",
                  "a TM packet with a good PEC that did not decode (an APID or table unknown here): source, "
                  "reason, bytes (rate-limited)"),
        EventSpec(0x0B, "archive_failed", "warning",
                  "the archive refused a write (a PostgreSQL server gone, a full disk): what, reason "
                  "(rate-limited; telemetry, products and commands catch up from the ledger later)"),
        EventSpec(0x0C, "tm_corrupt", "warning",
                  "a TM packet damaged on the link (its PEC, a CRC-16, does not match; or the rest of a datagram "
                  "after a damaged length): nothing of it stored; source, reason, bytes (rate-limited)"),
        EventSpec(0x30, "pdu_refused", "warning",
                  "a PDU from the lander whose sizes cannot belong to its transaction (a file size above the "
                  "limit, file data past the file's end): refused before anything is written (rate-limited)"),
    ),
    telemetry=(
        ChannelSpec(0x01, "products_received", "count", int),
        ChannelSpec(0x02, "products_failed", "count", int),
        ChannelSpec(0x03, "products_duplicate", "count", int, doc="a product id written before arrived again"),
        ChannelSpec(0x04, "transfers_failed", "count", int),
        ChannelSpec(0x05, "packets_received", "count", int),
        ChannelSpec(0x06, "bytes_received", "bytes", int),
        ChannelSpec(0x07, "datagrams_rejected", "count", int),
        ChannelSpec(0x08, "packets_sent", "count", int),
        ChannelSpec(0x09, "active_transactions", "count", int),
        ChannelSpec(0x0A, "decode_queue", "count", int, doc="received files waiting to be decoded"),
        ChannelSpec(0x0B, "receive_rate_bps", "bit/s", int),
        ChannelSpec(0x0C, "telemetry_records", "count", int, doc="new TM packets stored from segments"),
        ChannelSpec(0x0D, "telemetry_segments", "count", int),
        ChannelSpec(0x0E, "recovered_files", "count", int, doc="confirmed files decoded after a restart"),
        ChannelSpec(0x0F, "partial_files_removed", "count", int, doc="incomplete transfers removed after a restart"),
        ChannelSpec(0x10, "contact", "", str, doc="relay in contact, or empty"),
        ChannelSpec(0x11, "cfdp_file_bytes_new", "bytes", int,
                    doc="product bytes received for the first time (goodput)"),
        ChannelSpec(0x12, "cfdp_file_bytes_repeat", "bytes", int,
                    doc="file data bytes that arrived again for a transaction already holding them "
                        "(retransmissions, and resends after a crash of either end)"),
        ChannelSpec(0x13, "transfers_resumed", "count", int,
                    doc="open transactions resumed from the journal at start"),
        ChannelSpec(0x14, "cfdp_transfers_resumed", "count", int),
        ChannelSpec(0x15, "cfdp_resumed_bytes", "bytes", int,
                    doc="bytes already held by the transactions resumed at start"),
        ChannelSpec(0x16, "cfdp_checkpoints", "count", int,
                    doc="journal checkpoints (file fsync'd, then held ranges committed)"),
        ChannelSpec(0x17, "cfdp_journal_errors", "count", int,
                    doc="journal writes or rows that failed (only costs resends)"),
        ChannelSpec(0x18, "cfdp_pdus_in", "count", int, doc="CFDP PDUs taken in by the receiving entity"),
        ChannelSpec(0x19, "cfdp_pdus_out", "count", int, doc="CFDP PDUs sent back (ACK, NAK, Finished)"),
        ChannelSpec(0x1A, "cfdp_pdus_late", "count", int,
                    doc="PDUs of a transaction already finished here (an EOF is answered again)"),
        ChannelSpec(0x1B, "cfdp_pdus_rejected", "count", int, doc="PDUs the CFDP handler refused"),
        ChannelSpec(0x1C, "cfdp_naks_suppressed", "count", int,
                    doc="metadata NAKs held back: one per NAK timer while a transaction waits for its Metadata"),
        ChannelSpec(0x1D, "cfdp_transactions_started", "count", int),
        ChannelSpec(0x1E, "cfdp_transactions_abandoned", "count", int, high=0),
        ChannelSpec(0x1F, "cfdp_checksum_failures", "count", int, high=0,
                    doc="files whose CRC-32 did not match the EOF checksum (not delivered; the sender resends)"),
        ChannelSpec(0x20, "cfdp_handler_errors", "count", int, high=0),
        ChannelSpec(0x21, "tm_packets", "count", int, doc="TM packets taken in (realtime and from segments)"),
        ChannelSpec(0x22, "tm_packets_new", "count", int, doc="TM packets stored (not seen before)"),
        ChannelSpec(0x23, "tm_rejected", "count", int, high=0,
                    doc="TM packets with a good PEC that did not decode (an APID or table unknown here)"),
        ChannelSpec(0x30, "tm_corrupt", "count", int,
                    doc="TM packets damaged on the link (PEC mismatch, or a datagram's rest after a damaged "
                        "length): counted, nothing stored"),
        ChannelSpec(0x24, "tm_parameters", "count", int, doc="housekeeping values stored"),
        ChannelSpec(0x25, "tm_events", "count", int, doc="lander events stored"),
        ChannelSpec(0x26, "tm_verifications", "count", int, doc="command verification packets stored"),
        ChannelSpec(0x27, "uplink_enqueued", "count", int),
        ChannelSpec(0x28, "uplink_waiting", "count", int, doc="commands queued, not yet signed"),
        ChannelSpec(0x29, "uplink_in_flight", "count", int, doc="commands signed, not yet verified received"),
        ChannelSpec(0x2A, "uplink_datagrams_sent", "count", int),
        ChannelSpec(0x2B, "uplink_resent", "count", int, doc="the same bytes sent again (no verification in time)"),
        ChannelSpec(0x2C, "uplink_not_delivered", "count", int, high=0),
        ChannelSpec(0x2D, "uplink_sign_errors", "count", int, high=0),
        ChannelSpec(0x2E, "verifications_matched", "count", int),
        ChannelSpec(0x2F, "verifications_unmatched", "count", int, high=0),
        ChannelSpec(0x42, "archive_writes", "count", int, doc="writes into the archive (ground.archive)"),
        ChannelSpec(0x43, "archive_errors", "count", int, high=0, doc="archive writes that failed"),
        ChannelSpec(0x41, "datagrams_refused", "count", int, doc="radio datagrams from a sender other than the relay"),
        ChannelSpec(0x44, "cfdp_fec_transactions", "count", int, doc="coded transactions (link/fec.py) started"),
        ChannelSpec(0x45, "cfdp_fec_decoded", "count", int,
                    doc="coded transactions completed by their decode (the missing symbols filled, no NAK needed)"),
        ChannelSpec(0x46, "cfdp_fec_fill_bytes", "bytes", int, doc="coded-file bytes the decodes filled"),
        ChannelSpec(0x47, "cfdp_fec_parity_bytes", "bytes", int,
                    doc="repair symbol bytes received (never counted as goodput)"),
        ChannelSpec(0x48, "cfdp_fec_decode_mismatch", "count", int, high=0,
                    doc="decodes whose rebuilt coded file failed the EOF's checksum (plain NAKs fetched the rest)"),
        ChannelSpec(0x49, "cfdp_fec_errors", "count", int,
                    doc="coded-transfer names or symbols that could not be right (counted, not used)"),
        ChannelSpec(0x40, "cfdp_pdus_refused", "count", int, high=0,
                    doc="PDUs refused for sizes or offsets outside their transaction's file"),
    ),
)

COMMANDS = INTERFACE.commands
EVENTS = INTERFACE.events
TELEMETRY = INTERFACE.telemetry

KIND = KindSpec(
    interface=INTERFACE,
    name="ground.station",
    entry="ground.process:run",
    endpoints={"radio": "udp", "relay": "udp", "bus_pub": "tcp|ipc", "command": "tcp|ipc?"},
    binds=("radio", "command"),
    keys={
        "entity_id": Field(int, 2, min=1, max=65535),
        "lander_entity_id": Field(int, 1, min=1, max=65535),
        "out_subdir": Field(str, "ground", path="dir", doc="relative to the output directory"),
        "max_packet_len": Field(int, 4096, min=256, max=65000),
        "ack_timer_s": Field(float, 1.0, min=0.01),
        "nak_timer_s": Field(float, 1.0, min=0.01),
        "inactivity_s": Field(float, 30.0, min=0.1, doc="counted in open-contact time only"),
        **CONTACT_PLAN_KEYS,
        "sa_file": Field(str, "configs/sa.yaml", min_len=1,
                         doc="the uplink's security associations (a path, or a config shipped in configs/; the "
                             "same table as the ingest's)"),
        "uplink_spi": Field(int, 1, min=1, max=65535, doc="the SA a command goes under when UPLINK names none"),
        "uplink_max_attempts": Field(int, 5, min=1, max=100,
                                     doc="transmissions of a command's bytes before it is not_delivered"),
        "uplink_retry_s": Field(float, 0.0, min=0.0, max=86400.0,
                                doc="open-contact seconds to wait for 'received' before sending the same bytes "
                                    "again; 0: twice the longest light time plus uplink_retry_margin_s"),
        "uplink_retry_margin_s": Field(float, 2.0, min=0.0, max=3600.0),
        "uplink_guard_s": Field(float, 0.5, min=0.0, max=3600.0,
                                doc="a command is sent only if the contact stays open its light time plus this"),
        "archive": Field(dict, {}, keys={
            "url": Field(str, "sqlite:///archive.sqlite", pattern=r"(sqlite|postgres|postgresql)://.+",
                         doc="where operators' queries read what the ground holds (docs/archive.md): "
                             "sqlite:///FILE (relative to the output directory), sqlite:////ABSOLUTE, "
                             "or postgresql://user@host:port/db"),
        }),
    },
    doc="Ground station: reassembles and decodes products, writes images and sidecars.",
)
