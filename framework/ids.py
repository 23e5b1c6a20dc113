"""Component id bases, in one place (as F' sets instance id bases in its topology file).

Each component's interface table numbers its events and telemetry channels from 1
within its own range; :meth:`framework.interface.Interface.build` adds the base
named here, so an event id or channel id is unique across the whole system and
says which component raised it (``0x0304`` is the downlink's 4th event). A range
holds 255 ids. The names are interface-table names, not modules: the framework
still imports no component.
"""

from __future__ import annotations

__all__ = ["ID_BASES", "ID_RANGE"]

ID_RANGE = 0x100

ID_BASES: dict[str, int] = {
    "camera": 0x0100,           # drivers/camera
    "imaging": 0x0200,          # fsw/imaging
    "downlink": 0x0300,         # fsw/downlink
    "ground": 0x0400,           # ground/ (the station)
    "deploy": 0x0500,           # drivers/deploy
    "broker": 0x0600,           # fsw/broker
    "relay_emulator": 0x0700,   # hil/relay
    "camera_emulator": 0x0800,  # hil/camera
    "deploy_emulator": 0x0900,  # hil/deploy
    "ingest": 0x0A00,           # fsw/ingest (ground commands in: SDLS check, dispatch)
    "sequencer": 0x0B00,        # fsw/sequencer (stored command sequences)
    "console": 0x0C00,          # ground/console (the operator's web console)
}
