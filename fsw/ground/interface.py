"""The ground station's interface, as data: events and telemetry channels."""

from __future__ import annotations

__all__ = ["COMMANDS", "EVENTS", "TELEMETRY"]

COMMANDS: dict[str, dict] = {}  # the ground station takes no commands yet (no command endpoint in its kind)

EVENTS = {
    "product_received": {"id": 0x0401, "severity": "info",
                         "doc": "a product arrived: id, product_kind, crc32c, ok (decoded and written bit-exact); 'kind' is a reserved bus header key"},
    "product_failed": {"id": 0x0402, "severity": "error",
                       "doc": "a received file did not decode; reason given, raw file kept"},
    "transfer_failed": {"id": 0x0403, "severity": "warning", "doc": "a CFDP transaction ended without the file"},
    "datagram_rejected": {"id": 0x0404, "severity": "warning",
                          "doc": "a radio datagram was not a Space Packet with a CFDP PDU (rate-limited, with count)"},
    "telemetry_received": {"id": 0x0405, "severity": "info",
                           "doc": "a housekeeping or event segment arrived: id, segment_kind, records, new_records, t0, t1"},
    "telemetry_failed": {"id": 0x0406, "severity": "error", "doc": "a telemetry segment did not decode"},
}

TELEMETRY = {
    "products_received": {"unit": "count"},
    "products_failed": {"unit": "count"},
    "products_duplicate": {"unit": "count", "doc": "a product id written before arrived again"},
    "transfers_failed": {"unit": "count"},
    "packets_received": {"unit": "count"},
    "bytes_received": {"unit": "bytes"},
    "datagrams_rejected": {"unit": "count"},
    "packets_sent": {"unit": "count"},
    "active_transactions": {"unit": "count"},
    "decode_queue": {"unit": "count", "doc": "received files waiting to be decoded"},
    "receive_rate_bps": {"unit": "bit/s"},
    "telemetry_records": {"unit": "count", "doc": "new housekeeping and event records stored"},
    "telemetry_segments": {"unit": "count"},
    "recovered_files": {"unit": "count", "doc": "confirmed files decoded after a restart"},
    "partial_files_removed": {"unit": "count", "doc": "incomplete transfers removed after a restart"},
    "contact": {"unit": "", "doc": "relay in contact, or empty"},
    "cfdp_file_bytes_new": {"unit": "bytes", "doc": "product bytes received for the first time (goodput)"},
    "cfdp_file_bytes_repeat": {"unit": "bytes",
                               "doc": "file data bytes that arrived again for a transaction already holding them "
                                      "(retransmissions, and resends after a crash of either end)"},
    "transfers_resumed": {"unit": "count", "doc": "open transactions resumed from the journal at start"},
    "cfdp_transfers_resumed": {"unit": "count"},
    "cfdp_resumed_bytes": {"unit": "bytes", "doc": "bytes already held by the transactions resumed at start"},
    "cfdp_checkpoints": {"unit": "count", "doc": "journal checkpoints (file fsync'd, then held ranges committed)"},
    "cfdp_journal_errors": {"unit": "count", "doc": "journal writes or rows that failed (only costs resends)"},
}
