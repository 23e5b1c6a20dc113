"""The downlink service's interface, as data: commands, events, telemetry channels."""

from __future__ import annotations

__all__ = ["COMMANDS", "EVENTS", "TELEMETRY"]

COMMANDS = {
    "NOOP": {"opcode": 0x0000, "args": {}, "doc": "answer with the software version"},
    "RESET_COUNTERS": {"opcode": 0x0001, "args": {}, "doc": "zero command and error counters"},
    "STORE_LIST": {"opcode": 0x0301, "args": {}, "doc": "ids of the stored products, in sending order"},
}

EVENTS = {
    "product_stored": {"id": 0x0301, "severity": "info", "doc": "a product is on disk (fsync'd): id, product_kind, bytes"},
    "product_confirmed": {"id": 0x0302, "severity": "info", "doc": "the ground confirmed a product; it is deleted"},
    "product_rejected": {"id": 0x0303, "severity": "warning", "doc": "a products message was malformed or not storable"},
    "transaction_failed": {"id": 0x0304, "severity": "warning", "doc": "a CFDP transaction ended without delivery; "
                                                                       "the product stays stored and is sent again"},
    "datagram_rejected": {"id": 0x0305, "severity": "warning", "doc": "a radio datagram was not a Space Packet "
                                                                      "with a CFDP PDU (rate-limited, with count)"},
    "store_recovered": {"id": 0x0306, "severity": "warning", "doc": "opening the store cleaned crash leftovers"},
    "product_discarded": {"id": 0x0307, "severity": "error", "doc": "a stored product could not be read; dropped"},
    "command_rejected": {"id": 0x0308, "severity": "warning", "doc": "a command was refused"},
    "command_failed": {"id": 0x0309, "severity": "warning", "doc": "an accepted command failed"},
}

TELEMETRY = {
    "products_stored": {"unit": "count", "doc": "products stored since start"},
    "products_confirmed": {"unit": "count", "doc": "products confirmed by the ground since start"},
    "products_rejected": {"unit": "count"},
    "queue_depth": {"unit": "count", "doc": "stored, not yet confirmed"},
    "store_bytes": {"unit": "bytes"},
    "bytes_sent": {"unit": "bytes", "doc": "Space Packet bytes sent to the relay"},
    "packets_sent": {"unit": "count"},
    "packets_received": {"unit": "count"},
    "datagrams_rejected": {"unit": "count"},
    "in_flight": {"unit": "", "doc": "id of the product being sent, or empty"},
    "transactions_failed": {"unit": "count"},
    "retransmit_requests": {"unit": "count", "doc": "NAK PDUs received"},
    "send_rate_bps": {"unit": "bit/s", "doc": "bytes sent in the last health period, as a rate"},
    "commands_accepted": {"unit": "count"},
    "commands_rejected": {"unit": "count"},
}
