"""Scenario runner: a YAML timeline of commands, faults and expectations against real processes.

``model`` is a scenario's steps as data, ``spec`` parses a scenario file into it, ``expect``
matches bus messages, ``adapters`` speaks each emulator's control port, ``engine`` runs the
timeline on an injected clock, ``runner`` is the I/O adapter (supervisor, bus, command
clients), ``report`` prints and serialises the outcome. docs/scenarios.md describes the file.
"""

__all__ = ["adapters", "engine", "expect", "model", "report", "runner", "spec"]
