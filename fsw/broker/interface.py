"""The bus broker's interface, as data: its process kind (format: :mod:`framework.kinds`)."""

from __future__ import annotations

from framework.kinds import KindSpec

__all__ = ["KIND"]

KIND = KindSpec(
    name="bus.broker",
    entry="fsw.broker.process:run",
    endpoints={"xsub": "tcp|ipc", "xpub": "tcp|ipc"},
    binds=("xsub", "xpub"),
    doc="XSUB/XPUB proxy: the software bus.",
)
