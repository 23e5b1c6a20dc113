"""Stored command sequences on board (like cFS SC and F' CmdSequencer): see docs/sequences.md."""
