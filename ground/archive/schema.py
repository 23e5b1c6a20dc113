"""The archive's tables: one schema, the same text on SQLite and PostgreSQL (types both engines take).

Times are wall-clock seconds (``DOUBLE PRECISION``); lists and maps are compact JSON in ``TEXT``.
Every table has a natural key, so each writer inserts with ``ON CONFLICT`` and writing the same thing
again (a replay from the ledger after a crash, a segment that repeats realtime packets) changes nothing.

- ``products``: one row per product written at the ground (camera, counter, capture time, kind, grade =
  the on-board grades' ``score``, CRC-32C, the PNG's path, the PDS4 label's path for full frames).
- ``tm_packets``: every TM packet taken in, by ``(apid, seq_count, t)``: sequence-count gaps per APID.
- ``parameters``: housekeeping values, numbers in ``value_num``, anything else in ``value_text``.
- ``events``: the lander's events (from TM packets, ``n`` = the packet's ``apid << 14 | seq_count``)
  and the ground's own (``origin`` ground, ``n`` counts per source).
- ``commands`` / ``command_stages``: the uplink queue's commands and every stage each went through.
- ``transfers``: CFDP transactions as the ground saw them: state, file size, held ranges, NAKs sent and
  the ranges the last NAK asked for (by state, and by opening time for the newest ones).
- ``contacts``: each contact-plan pass as it opened and closed at the ground.
- ``marks``: how far the archive has replayed each source of the station (the ledger's TM packets).
"""

from __future__ import annotations

__all__ = ["STATEMENTS", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1

_T = "DOUBLE PRECISION"

STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS archive_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"""CREATE TABLE IF NOT EXISTS products (id TEXT PRIMARY KEY, kind TEXT NOT NULL, camera TEXT NOT NULL,
        counter BIGINT NOT NULL, t_capture {_T} NOT NULL, t_received {_T} NOT NULL, grade {_T},
        codec TEXT NOT NULL, crc32c BIGINT NOT NULL, bytes BIGINT NOT NULL, width INTEGER, height INTEGER,
        bit_depth INTEGER, path TEXT NOT NULL, label TEXT, grades TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS products_by_camera ON products (camera, t_capture)",
    "CREATE INDEX IF NOT EXISTS products_by_frame ON products (camera, counter, kind)",
    f"""CREATE TABLE IF NOT EXISTS tm_packets (apid INTEGER NOT NULL, seq_count INTEGER NOT NULL, t {_T} NOT NULL,
        source TEXT NOT NULL, packet_type INTEGER NOT NULL, t_received {_T} NOT NULL,
        PRIMARY KEY (apid, seq_count, t))""",
    "CREATE INDEX IF NOT EXISTS tm_packets_by_source ON tm_packets (source, packet_type, t)",
    f"""CREATE TABLE IF NOT EXISTS parameters (source TEXT NOT NULL, channel TEXT NOT NULL, t {_T} NOT NULL,
        value_num {_T}, value_text TEXT, PRIMARY KEY (source, channel, t))""",
    f"""CREATE TABLE IF NOT EXISTS events (source TEXT NOT NULL, t {_T} NOT NULL, n BIGINT NOT NULL,
        name TEXT NOT NULL, event_id INTEGER, severity TEXT NOT NULL, origin TEXT NOT NULL, fields TEXT NOT NULL,
        PRIMARY KEY (source, t, n))""",
    "CREATE INDEX IF NOT EXISTS events_by_severity ON events (severity, t)",
    "CREATE INDEX IF NOT EXISTS events_by_name ON events (name, t)",
    f"""CREATE TABLE IF NOT EXISTS commands (id BIGINT PRIMARY KEY, target TEXT NOT NULL, cmd TEXT NOT NULL,
        args TEXT NOT NULL, spi INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL, seq BIGINT,
        t_queued {_T} NOT NULL, t_updated {_T} NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS command_stages (id BIGINT NOT NULL, n INTEGER NOT NULL, stage TEXT NOT NULL,
        t {_T} NOT NULL, detail TEXT NOT NULL, PRIMARY KEY (id, n))""",
    f"""CREATE TABLE IF NOT EXISTS transfers (source_entity INTEGER NOT NULL, seq BIGINT NOT NULL,
        name TEXT NOT NULL, file_size BIGINT, state TEXT NOT NULL, condition TEXT NOT NULL, held TEXT NOT NULL,
        held_bytes BIGINT NOT NULL, eof INTEGER NOT NULL, naks INTEGER NOT NULL, nak_ranges TEXT NOT NULL,
        t_opened {_T} NOT NULL, t_updated {_T} NOT NULL, t_closed {_T}, PRIMARY KEY (source_entity, seq))""",
    "CREATE INDEX IF NOT EXISTS transfers_by_state ON transfers (state, t_opened)",
    "CREATE INDEX IF NOT EXISTS transfers_by_time ON transfers (t_opened, source_entity, seq)",
    f"""CREATE TABLE IF NOT EXISTS contacts (relay TEXT NOT NULL, t_open {_T} NOT NULL, pass_number BIGINT NOT NULL,
        t_close_planned {_T} NOT NULL, t_closed {_T}, rate_bps {_T} NOT NULL, PRIMARY KEY (relay, t_open))""",
    "CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
)
