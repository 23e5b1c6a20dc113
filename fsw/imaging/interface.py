"""The imaging core's interface, as data: commands, events, telemetry channels."""

from __future__ import annotations

__all__ = ["COMMANDS", "EVENTS", "TELEMETRY"]

COMMANDS = {
    "NOOP": {"opcode": 0x0000, "args": {}, "doc": "answer with the software version"},
    "RESET_COUNTERS": {"opcode": 0x0001, "args": {}, "doc": "zero command and error counters"},
}

EVENTS = {
    "frame_rejected": {"id": 0x0201, "severity": "warning", "doc": "a frame failed validation; reason names why"},
    "frame_gap": {"id": 0x0202, "severity": "warning", "doc": "frame messages missing on the bus (seq gap)"},
    "product_failed": {"id": 0x0203, "severity": "error", "doc": "a product could not be made"},
    "command_rejected": {"id": 0x0204, "severity": "warning", "doc": "a command was refused"},
}

TELEMETRY = {
    "frames_in": {"unit": "count"},
    "frames_rejected": {"unit": "count"},
    "products_made": {"unit": "count"},
    "products_pending": {"unit": "count", "doc": "products made, not yet taken by the downlink"},
    "bus_gaps": {"unit": "count"},
    "last_frame_ms": {"unit": "ms", "doc": "processing time of the last frame"},
    "last_error": {"unit": ""},
}
