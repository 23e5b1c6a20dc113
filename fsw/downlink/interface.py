"""The downlink service's interface, as data: commands, events, telemetry channels."""

from __future__ import annotations

__all__ = ["COMMANDS", "EVENTS", "TELEMETRY"]

COMMANDS = {
    "NOOP": {"opcode": 0x0000, "args": {}, "doc": "answer with the software version"},
    "RESET_COUNTERS": {"opcode": 0x0001, "args": {}, "doc": "zero command and error counters"},
    "STORE_LIST": {"opcode": 0x0301, "args": {}, "doc": "ids of the stored items, in sending order"},
    "STORE_STATUS": {"opcode": 0x0302, "args": {}, "doc": "queue depth per class, bytes, quota, in flight, contact"},
    "SEND_FULL": {"opcode": 0x0303, "args": {"id": "str", "camera": "str", "counter": "int"},
                  "doc": "move a stored product (by id, or the full frame of camera+counter) to the "
                         "'requested' class"},
    "SEND_PRODUCT": {"opcode": 0x0304, "args": {"id": "str"}, "doc": "the same for any stored product id"},
    "DROP": {"opcode": 0x0305, "args": {"id": "str", "camera": "str", "counter": "int"},
             "doc": "abandon a product's transfer (if in flight) and delete it from the store"},
    "TLM_PLAYBACK": {"opcode": 0x0306, "args": {"t_start": "float s", "t_end": "float s"},
                     "doc": "queue the archived housekeeping of [t_start, t_end] again, in time order"},
    "SEND_REGION": {"opcode": 0x0307, "args": {"camera": "str", "counter": "int", "region": "[x, y, w, h]"},
                    "doc": "forward MAKE_ROI to the imaging core (links.imaging_command); the ROI arrives "
                           "requested"},
}

EVENTS = {
    "product_stored": {"id": 0x0301, "severity": "info",
                       "doc": "a product is on disk (fsync'd): id, product_kind, bytes, class"},
    "product_confirmed": {"id": 0x0302, "severity": "info", "doc": "the ground confirmed an item; it is deleted"},
    "product_rejected": {"id": 0x0303, "severity": "warning", "doc": "a products message was malformed or not storable"},
    "transaction_failed": {"id": 0x0304, "severity": "warning", "doc": "a CFDP transaction ended without delivery; "
                                                                       "the product stays stored and is sent again"},
    "datagram_rejected": {"id": 0x0305, "severity": "warning", "doc": "a radio datagram was not a Space Packet "
                                                                      "with a CFDP PDU (rate-limited, with count)"},
    "store_recovered": {"id": 0x0306, "severity": "warning", "doc": "opening the store cleaned crash leftovers"},
    "product_discarded": {"id": 0x0307, "severity": "error", "doc": "a stored product could not be read; dropped"},
    "command_rejected": {"id": 0x0308, "severity": "warning", "doc": "a command was refused"},
    "command_failed": {"id": 0x0309, "severity": "warning", "doc": "an accepted command failed"},
    "product_evicted": {"id": 0x030A, "severity": "warning",
                        "doc": "the store was over quota: id, product_kind, class, score, bytes (policy.py)"},
    "product_requested": {"id": 0x030B, "severity": "info", "doc": "an operator request moved a product up"},
    "product_dropped": {"id": 0x030C, "severity": "info", "doc": "an operator dropped a product"},
    "segment_rejected": {"id": 0x030D, "severity": "warning",
                         "doc": "a telemetry segment could not be stored (store full; rate-limited)"},
    "reencode_failed": {"id": 0x030E, "severity": "warning",
                        "doc": "a re-encoding was not bit-exact or the product did not decode; the original stays"},
    "region_request_done": {"id": 0x030F, "severity": "info", "doc": "imaging made the forwarded ROI"},
    "region_request_failed": {"id": 0x0310, "severity": "warning", "doc": "imaging refused the forwarded ROI"},
    "progress_not_recorded": {"id": 0x0311, "severity": "warning",
                              "doc": "a transaction's sending progress could not be recorded (rate-limited); "
                                     "a crash would then resend more"},
}

TELEMETRY = {
    "products_stored": {"unit": "count", "doc": "products stored since start"},
    "products_confirmed": {"unit": "count", "doc": "items confirmed by the ground since start"},
    "products_rejected": {"unit": "count"},
    "products_evicted": {"unit": "count"},
    "segments_stored": {"unit": "count", "doc": "telemetry and event segments stored"},
    "segments_rejected": {"unit": "count"},
    "queue_depth": {"unit": "count", "doc": "stored, not yet confirmed"},
    "queue_alert": {"unit": "count"}, "queue_thumbnail": {"unit": "count"}, "queue_telemetry": {"unit": "count"},
    "queue_requested": {"unit": "count"}, "queue_playback": {"unit": "count"}, "queue_rest": {"unit": "count"},
    "store_bytes": {"unit": "bytes"},
    "store_fill": {"unit": "fraction", "limits": [0.0, 0.9], "doc": "store bytes / quota"},
    "in_flight": {"unit": "", "doc": "ids of the items in flight, comma-separated"},
    "bytes_in_flight": {"unit": "bytes"},
    "oldest_unconfirmed_s": {"unit": "s", "doc": "age of the oldest stored product"},
    "contact": {"unit": "", "doc": "relay in contact, or empty"},
    "contact_rate_bps": {"unit": "bit/s"},
    "contacts": {"unit": "count", "doc": "passes seen since start"},
    "bytes_sent": {"unit": "bytes", "doc": "Space Packet bytes sent to the relay"},
    "packets_sent": {"unit": "count"},
    "packets_received": {"unit": "count"},
    "datagrams_rejected": {"unit": "count"},
    "transactions_failed": {"unit": "count"},
    "retransmit_requests": {"unit": "count", "doc": "NAK PDUs received"},
    "file_bytes_sent": {"unit": "bytes", "doc": "file data bytes sent (first copies, retransmissions, resends)"},
    "transactions_resumed": {"unit": "count",
                             "doc": "transactions in flight at the last crash or stop, taken up again at start"},
    "resume_skipped_bytes": {"unit": "bytes",
                             "doc": "file data of resumed transactions not sent again (recorded as sent)"},
    "send_rate_bps": {"unit": "bit/s", "doc": "bytes sent in the last health period, as a rate"},
    "reencoded": {"unit": "count"}, "reencode_bytes_saved": {"unit": "bytes"},
    "reencode_backlog": {"unit": "count", "doc": "lossless products not yet re-encoded"},
    "reencode_failed": {"unit": "count"}, "reencode_not_smaller": {"unit": "count"},
    "tlm_records": {"unit": "count"}, "tlm_segments": {"unit": "count"}, "tlm_archived_bytes": {"unit": "bytes"},
    "tlm_archive_evicted": {"unit": "count"},
    "commands_accepted": {"unit": "count"},
    "commands_rejected": {"unit": "count"},
}
