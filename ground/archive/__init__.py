"""The ground's archive: what reached the ground, for operators to query (docs/archive.md).

One schema and one set of queries for SQLite (the default, embedded, no set-up) and PostgreSQL
(``postgresql://`` URLs, psycopg 3). The station writes into it (:mod:`ground.archive.feed`); the CLI
(``pdh missing``, ``pdh products``) and the web console read it through :class:`Archive`.
"""

from ground.archive.db import open_db, redact
from ground.archive.feed import ArchiveFeed, ArchivingJournal
from ground.archive.missing import Missing
from ground.archive.queries import SEVERITIES
from ground.archive.records import ProductRecord, Result, ranges_text
from ground.archive.store import DEFAULT_URL, Archive

__all__ = ["Archive", "ArchiveFeed", "ArchivingJournal", "DEFAULT_URL", "Missing", "ProductRecord", "Result",
           "SEVERITIES", "open_db", "ranges_text", "redact"]
