"""The imaging core's interface, as data: commands, events, telemetry channels."""

from __future__ import annotations

__all__ = ["COMMANDS", "EVENTS", "TELEMETRY"]

COMMANDS = {
    "NOOP": {"opcode": 0x0000, "args": {}, "doc": "answer with the software version"},
    "RESET_COUNTERS": {"opcode": 0x0001, "args": {}, "doc": "zero command and error counters"},
    "MAKE_LOSSY": {"opcode": 0x0210, "args": {"camera": "str", "counter": "int", "budget_bytes": "int",
                                              "region": "[x, y, w, h] (optional)"},
                   "doc": "lossy product of a held frame to a byte budget (within 5 %)"},
    "MAKE_ROI": {"opcode": 0x0211, "args": {"camera": "str", "counter": "int", "region": "[x, y, w, h]"},
                 "doc": "lossless region of a held frame"},
    "MAKE_PREVIEW": {"opcode": 0x0212, "args": {"camera": "str", "counter": "int", "factor": "int"},
                     "doc": "binned lossless preview of a held frame"},
    "AE_ENABLE": {"opcode": 0x0220, "args": {"camera": "str"}, "doc": "auto-exposure on"},
    "AE_DISABLE": {"opcode": 0x0221, "args": {"camera": "str"}, "doc": "auto-exposure off"},
    "CAL_COLLECT": {"opcode": 0x0230, "args": {"camera": "str", "role": "dark|flat", "count": "int"},
                    "doc": "collect the next frames as darks or flats"},
    "CAL_BUILD": {"opcode": 0x0231, "args": {"camera": "str"}, "doc": "build and activate a calibration set"},
    "CAL_CLEAR": {"opcode": 0x0232, "args": {"camera": "str"}, "doc": "deactivate the camera's calibration"},
}

EVENTS = {
    "frame_rejected": {"id": 0x0201, "severity": "warning", "doc": "a frame failed validation; reason names why"},
    "frame_gap": {"id": 0x0202, "severity": "warning", "doc": "frame messages missing on the bus (seq gap)"},
    "product_failed": {"id": 0x0203, "severity": "error", "doc": "a product could not be made"},
    "command_rejected": {"id": 0x0204, "severity": "warning", "doc": "a command was refused"},
    "command_failed": {"id": 0x0205, "severity": "error", "doc": "an accepted command failed"},
    "frames_thumbnail_only": {"id": 0x0206, "severity": "warning",
                              "doc": "frames that kept only a thumbnail: queue full, or the grade rule"},
    "ae_command_refused": {"id": 0x0207, "severity": "warning", "doc": "the camera refused an exposure command"},
}

TELEMETRY = {
    "frames_in": {"unit": "count"},
    "frames_rejected": {"unit": "count"},
    "products_made": {"unit": "count"},
    "products_pending": {"unit": "count", "doc": "products made, not yet taken by the downlink"},
    "queue_depth": {"unit": "count", "doc": "frames waiting to be processed"},
    "oldest_waiting_s": {"unit": "s", "doc": "age of the oldest waiting frame"},
    "frames_thumbnail_only": {"unit": "count"},
    "ae_commands": {"unit": "count"},
    "bus_gaps": {"unit": "count"},
    "last_frame_ms": {"unit": "ms", "doc": "processing time of the last frame"},
    "last_error": {"unit": ""},
}
