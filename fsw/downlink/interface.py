"""The downlink service's interface, as data: commands, events, telemetry channels (format: :mod:`framework.interface`).

Every command's arguments are checked against this table before its handler
runs (:mod:`fsw.downlink.commands`); every event the service publishes takes
its id and severity from here.
"""

from __future__ import annotations

from framework.interface import Arg, ChannelSpec, CommandSpec, EventSpec, Interface
from framework.kinds import Field, KindSpec
from link.contacts import CONTACT_PLAN_KEYS
from fsw.downlink.policy import CLASSES

__all__ = ["KIND", "INTERFACE", "COMMANDS", "EVENTS", "TELEMETRY"]

_COUNTER_MAX = 2**64 - 1
# SEND_FULL and DROP name a product by 'id', or by 'camera' and 'counter' (the handler wants one of the two).
_BY_ID_OR_FRAME = (Arg("id", str, required=False), Arg("camera", str, required=False),
                   Arg("counter", int, 0, _COUNTER_MAX, required=False))

INTERFACE = Interface.build(
    "downlink",
    commands=(
        CommandSpec(0x0301, "STORE_LIST", doc="ids of the stored items, in sending order"),
        CommandSpec(0x0302, "STORE_STATUS", doc="queue depth per class, bytes, quota, in flight, contact"),
        CommandSpec(0x0303, "SEND_FULL", _BY_ID_OR_FRAME,
                    doc="move a stored product (by id, or the full frame of camera+counter) to the 'requested' class"),
        CommandSpec(0x0304, "SEND_PRODUCT", (Arg("id", str),), doc="the same for any stored product id"),
        CommandSpec(0x0305, "DROP", _BY_ID_OR_FRAME,
                    doc="abandon a product's transfer (if in flight) and delete it from the store"),
        CommandSpec(0x0306, "TLM_PLAYBACK", (Arg("t_start", float, unit="s"), Arg("t_end", float, unit="s")),
                    doc="queue the archived housekeeping of [t_start, t_end] (Unix s) again, in time order"),
        CommandSpec(0x0307, "SEND_REGION",
                    (Arg("camera", str), Arg("counter", int, 0, _COUNTER_MAX, required=False),
                     Arg("region", list, unit="[x, y, width, height] px")),
                    doc="forward MAKE_ROI to the imaging core (links.imaging_command); the ROI arrives requested"),
    ),
    events=(
        EventSpec(0x01, "product_stored", "info", "a product is on disk (fsync'd): id, product_kind, bytes, class"),
        EventSpec(0x02, "product_confirmed", "info", "the ground confirmed an item; it is deleted"),
        EventSpec(0x03, "product_rejected", "warning", "a products message was malformed or not storable"),
        EventSpec(0x04, "transaction_failed", "warning",
                  "a CFDP transaction ended without delivery; the product stays stored and is sent again"),
        EventSpec(0x05, "datagram_rejected", "warning",
                  "a radio datagram was neither a CFDP PDU in a Space Packet nor a TC packet (of at most "
                  "MAX_TC_BYTES), or came from another sender than the relay (rate-limited, with count)"),
        EventSpec(0x06, "store_recovered", "warning", "opening the store cleaned crash leftovers"),
        EventSpec(0x07, "product_discarded", "error", "a stored product could not be read; dropped"),
        EventSpec(0x0A, "product_evicted", "warning",
                  "the store was over quota: id, product_kind, class, score, bytes (policy.py)"),
        EventSpec(0x0B, "product_requested", "info", "an operator request moved a product up"),
        EventSpec(0x0C, "product_dropped", "info", "an operator dropped a product"),
        EventSpec(0x0D, "segment_rejected", "warning",
                  "a telemetry segment could not be stored (store full; rate-limited)"),
        EventSpec(0x0E, "reencode_failed", "warning",
                  "a re-encoding was not bit-exact or the product did not decode; the original stays"),
        EventSpec(0x0F, "region_request_done", "info", "imaging made the forwarded ROI"),
        EventSpec(0x10, "region_request_failed", "warning", "imaging refused the forwarded ROI"),
        EventSpec(0x30, "pdu_refused", "warning",
                  "a PDU from the ground that fits no transaction it names (a Finished not awaited, a NAK "
                  "outside the file): refused, nothing acted on (rate-limited, with count)"),
        EventSpec(0x11, "progress_not_recorded", "warning",
                  "a transaction's sending progress could not be recorded (rate-limited); "
                  "a crash would then resend more"),
        EventSpec(0x12, "store_unavailable", "error",
                  "the store refused a write (disk full, read-only, failing): op, reason, what is held; products "
                  "are not taken meanwhile (back-pressure) and everything is tried again (rate-limited, with count)"),
        EventSpec(0x13, "store_available", "info", "the store takes writes again and everything held is written"),
        EventSpec(0x14, "product_corrupt", "error",
                  "a payload's CRC-32C differs from the index's, or one without a CRC does not decode (found_by: "
                  "scrub, before_send, ground_refusal); taken off the store; remake says whether imaging was "
                  "asked to make it again"),
        EventSpec(0x15, "product_refused", "warning",
                  "the ground refused a file (Finished: filestore rejection or checksum failure); the lander's "
                  "copy matches its CRC and is kept: sent again after retry_in_s, or (sent_again false: it does "
                  "not decode on board either) kept as 'refused' until an operator requests or drops it"),
        EventSpec(0x16, "index_rebuilt", "warning",
                  "index.sqlite was damaged or missing: set aside and rebuilt from the payload files' own metadata"),
        EventSpec(0x17, "store_set_aside", "error",
                  "the store could not be rebuilt: moved aside whole (moved_to) and a fresh one started"),
        EventSpec(0x18, "scrub_done", "info", "the start-up scrub read every payload back: checked, bytes, corrupt"),
        EventSpec(0x19, "tm_dropped", "warning",
                  "a bus message did not become a TM packet: its source has no APID in the dictionary, or its "
                  "fields cannot be encoded (src, topic, reason; rate-limited, with count)"),
        EventSpec(0x1A, "tc_dropped", "warning",
                  "a TC packet from the relay was not handed to command ingest (no uplink endpoint, or ingest "
                  "is not taking packets now); the ground sends it again (rate-limited, with count)"),
    ),
    telemetry=(
        ChannelSpec(0x01, "products_stored", "count", int, doc="products stored since start"),
        ChannelSpec(0x02, "products_confirmed", "count", int, doc="items confirmed by the ground since start"),
        ChannelSpec(0x03, "products_rejected", "count", int),
        ChannelSpec(0x04, "products_evicted", "count", int),
        ChannelSpec(0x05, "segments_stored", "count", int, doc="telemetry and event segments stored"),
        ChannelSpec(0x06, "segments_rejected", "count", int),
        ChannelSpec(0x07, "queue_depth", "count", int, doc="stored, not yet confirmed"),
        ChannelSpec(0x08, "queue_alert", "count", int),
        ChannelSpec(0x09, "queue_thumbnail", "count", int),
        ChannelSpec(0x0A, "queue_telemetry", "count", int),
        ChannelSpec(0x0B, "queue_requested", "count", int),
        ChannelSpec(0x0C, "queue_playback", "count", int),
        ChannelSpec(0x0D, "queue_rest", "count", int),
        ChannelSpec(0x0E, "store_bytes", "bytes", int),
        ChannelSpec(0x0F, "store_fill", "fraction", float, 0.0, 0.9, doc="store bytes / quota"),
        ChannelSpec(0x10, "in_flight", "", str, doc="ids of the items in flight, comma-separated"),
        ChannelSpec(0x11, "bytes_in_flight", "bytes", int),
        ChannelSpec(0x12, "oldest_unconfirmed_s", "s", float, doc="age of the oldest stored product"),
        ChannelSpec(0x13, "contact", "", str, doc="relay in contact, or empty"),
        ChannelSpec(0x14, "contact_rate_bps", "bit/s", float),
        ChannelSpec(0x15, "contacts", "count", int, doc="passes seen since start"),
        ChannelSpec(0x16, "bytes_sent", "bytes", int, doc="Space Packet bytes sent to the relay"),
        ChannelSpec(0x17, "packets_sent", "count", int),
        ChannelSpec(0x18, "packets_received", "count", int),
        ChannelSpec(0x19, "datagrams_rejected", "count", int),
        ChannelSpec(0x1A, "transactions_failed", "count", int),
        ChannelSpec(0x1B, "retransmit_requests", "count", int, doc="NAK PDUs received"),
        ChannelSpec(0x1C, "file_bytes_sent", "bytes", int,
                    doc="file data bytes sent (first copies, retransmissions, resends)"),
        ChannelSpec(0x1D, "transactions_resumed", "count", int,
                    doc="transactions in flight at the last crash or stop, taken up again at start"),
        ChannelSpec(0x1E, "resume_skipped_bytes", "bytes", int,
                    doc="file data of resumed transactions not sent again (recorded as sent)"),
        ChannelSpec(0x1F, "send_rate_bps", "bit/s", int, doc="bytes sent in the last health period, as a rate"),
        ChannelSpec(0x20, "reencoded", "count", int),
        ChannelSpec(0x21, "reencode_bytes_saved", "bytes", int),
        ChannelSpec(0x22, "reencode_backlog", "count", int, doc="lossless products not yet re-encoded"),
        ChannelSpec(0x23, "reencode_failed", "count", int),
        ChannelSpec(0x24, "reencode_not_smaller", "count", int),
        ChannelSpec(0x60, "reencode_skipped_leaving", "count", int,
                    doc="times an item was found about to leave: too short a wait for any setting that gains"),
        ChannelSpec(0x61, "reencode_lost_race", "count", int,
                    doc="re-encodings done too late: the item had gone in flight or been confirmed"),
        ChannelSpec(0x62, "reencode_cpu_s", "s", float, doc="CPU seconds the re-encoding worker has used"),
        ChannelSpec(0x25, "tlm_records", "count", int),
        ChannelSpec(0x26, "tlm_segments", "count", int),
        ChannelSpec(0x27, "tlm_archived_bytes", "bytes", int),
        ChannelSpec(0x28, "tlm_archive_evicted", "count", int),
        ChannelSpec(0x29, "store_ok", "", int, low=1, doc="1 while the store takes writes, 0 while it refuses"),
        ChannelSpec(0x2A, "store_faults", "count", int, doc="store operations the disk refused"),
        ChannelSpec(0x2B, "products_held", "count", int,
                    doc="products taken but not stored yet (the products port is not read meanwhile)"),
        ChannelSpec(0x2C, "confirmations_held", "count", int, doc="ground confirmations not recorded yet"),
        ChannelSpec(0x2D, "segments_held", "count", int, doc="telemetry segments not stored yet"),
        ChannelSpec(0x2E, "products_corrupt", "count", int, high=0, doc="payloads found not to match their CRC"),
        ChannelSpec(0x2F, "products_refused", "count", int, doc="files the ground refused (kept on board)"),
        ChannelSpec(0x30, "scrub_checked", "count", int, doc="payloads the start-up scrub has read back"),
        ChannelSpec(0x31, "scrub_pending", "count", int, doc="payloads the start-up scrub has still to read"),
        ChannelSpec(0x32, "tlm_archive_errors", "count", int, doc="telemetry archive writes the disk refused"),
        ChannelSpec(0x40, "datagrams_refused", "count", int, doc="radio datagrams from a sender other than the relay"),
        ChannelSpec(0x41, "finished_refused", "count", int, doc="Finished PDUs for no transaction awaiting one"),
        ChannelSpec(0x42, "naks_refused", "count", int, doc="NAK PDUs asking for bytes outside the file"),
        ChannelSpec(0x43, "tc_forwarded", "count", int, doc="TC packets from the relay handed to command ingest"),
        ChannelSpec(0x44, "tc_dropped", "count", int, doc="TC packets ingest did not take (it was not reading)"),
        ChannelSpec(0x45, "tm_realtime_packets", "count", int, doc="TM packets sent realtime during contacts"),
        ChannelSpec(0x46, "tm_realtime_bytes", "bytes", int, doc="bytes of the realtime TM datagrams"),
        ChannelSpec(0x47, "tm_unknown_source", "count", int,
                    doc="bus messages from a source without an APID (not recorded, not sent)"),
        ChannelSpec(0x48, "tm_unencodable", "count", int, doc="bus messages whose fields no TM packet carries"),
        ChannelSpec(0x4A, "coded_transactions", "count", int, doc="transactions sent coded (fec.enabled)"),
        ChannelSpec(0x4B, "coded_naks_measured", "count", int,
                    doc="NAKs of coded transactions sent before the ground had the EOF: measured, not answered"),
        ChannelSpec(0x4C, "coded_resend_symbols", "count", int,
                    doc="symbols resent after a coded transaction's EOF (the deficit and its loss margin)"),
        ChannelSpec(0x4D, "coded_naks_answered_in_full", "count", int,
                    doc="NAKs of a ground that held enough symbols yet asked (its decode failed its CRC)"),
        ChannelSpec(0x4E, "fec_loss_estimate", "fraction", float, doc="the link loss the next coding plans for"),
        ChannelSpec(0x4F, "fec_started_fitting", "count", int,
                    doc="items started ahead of the policy's choice, which could not leave before the window closed"),
        ChannelSpec(0x50, "fec_spool_errors", "count", int, doc="coded files that could not be written (sent plain)"),
        ChannelSpec(0x49, "tm_realtime_dropped", "count", int,
                    doc="realtime TM packets not sent (queue full, or the contact closed first); recorded anyway"),
    ),
)

COMMANDS = INTERFACE.commands
EVENTS = INTERFACE.events
TELEMETRY = INTERFACE.telemetry

KIND = KindSpec(
    interface=INTERFACE,
    name="fsw.downlink",
    entry="fsw.downlink.process:run",
    endpoints={"bus_pub": "tcp|ipc", "products": "tcp|ipc", "radio": "udp", "relay": "udp", "command": "tcp|ipc",
               "uplink": "ipc|tcp?"},
    binds=("products", "radio", "command"),
    keys={
        "store_dir": Field(str, "store", path="dir", doc="relative to the output directory"),
        "entity_id": Field(int, 1, min=1, max=65535),
        "ground_entity_id": Field(int, 2, min=1, max=65535),
        "rate_bps": Field(float, 8_000_000.0, min=1000.0, doc="send rate when the plan has no relays"),
        "max_packet_len": Field(int, 4096, min=256, max=65000),
        "ack_timer_s": Field(float, 1.0, min=0.01),
        "nak_timer_s": Field(float, 1.0, min=0.01),
        "inactivity_s": Field(float, 30.0, min=0.1, doc="counted in open-contact time only"),
        "max_in_flight": Field(int, 4, min=1, max=64, doc="CFDP transactions at once: the next product starts "
                                                         "while the last one's tail is recovered"),
        "quota_bytes": Field(int, 2_000_000_000, min=10_000, doc="store size; beyond it the eviction policy runs"),
        "priority": Field(list, list(CLASSES), item=Field(str, choices=CLASSES), unique=True, min_len=len(CLASSES),
                          doc="every downlink class once, first sends first (fsw/downlink/policy.py)"),
        "age_weight_per_h": Field(float, 0.1, min=0.0, doc="'rest' goes by grade + weight * age in hours"),
        "telemetry": Field(dict, {}, keys={
            "enabled": Field(bool, True),
            "topics": Field(list, ["tlm.", "evt.", "vrf."], item=Field(str),
                            doc="bus topics recorded and sent as TM packets (housekeeping, events, verification)"),
            "exclude_sources": Field(list, [], item=Field(str),
                                     doc="bus sources that are not on the lander (e.g. the ground)"),
            "segment_s": Field(float, 2.0, min=0.05, doc="housekeeping batched into one file per period"),
            "alert_flush_s": Field(float, 0.5, min=0.01),
            "archive_dir": Field(str, "tlm_archive", path="dir", relative_to=None, doc="relative to store_dir"),
            "archive_bytes": Field(int, 200_000_000, min=10_000, doc="recorded telemetry kept for re-requests"),
        }),
        "reencode": Field(dict, {}, keys={
            "enabled": Field(bool, True),
            "codec": Field(str, "table", choices=("table", "jpegxl", "jpegls", "png", "aec", "zstd"),
                           doc="table: per product, the smallest setting of the measured table "
                               "(fsw/imaging/codec_table.py) that fits its wait; a codec: that one, with params"),
            "params": Field(dict, {}, doc="the named codec's parameters (not used with table)"),
            "nice": Field(int, 19, min=0, max=19, doc="the worker also runs SCHED_IDLE: only on idle CPU"),
        }),
        "fec": Field(dict, {}, keys={
            "enabled": Field(bool, False, doc="send each item as a coded transaction: RaptorQ source and repair "
                                              "symbols (link/fec.py), NAKs only for a shortfall"),
            "initial_loss": Field(float, 0.02, min=0.0, max=0.6,
                                  doc="the loss estimate before the ground's NAKs have measured it (low: an "
                                      "early product coded short costs a round trip, one coded long costs goodput)"),
        }),
        "links": Field(dict, {}, endpoint_refs="tcp|ipc",
                       doc="optional: bus_sub (telemetry recording), imaging_command (SEND_REGION forwarding)"),
        **CONTACT_PLAN_KEYS,
    },
    doc="Store and forward: products on disk, out by priority as CFDP class 2 over CCSDS.",
)
