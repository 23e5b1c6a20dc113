"""The data a scenario's HTML page is drawn from: telemetry series, thumbnails and the page's inputs.

Its own module so that :mod:`pdh.scenario.evidence` (which gathers them from a run) and
:mod:`pdh.scenario.page` (which draws them) both import it and neither imports the other's insides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Series", "Thumbnail", "PageInputs"]


@dataclass(frozen=True)
class Series:
    """One telemetry channel of one process over the run: (seconds from the timeline start, value)."""

    process: str
    channel: str
    points: tuple[tuple[float, float], ...]

    @property
    def constant(self) -> bool:
        return len({v for _, v in self.points}) <= 1

    @property
    def label(self) -> str:
        return f"{self.process} {self.channel}"


@dataclass(frozen=True)
class Thumbnail:
    """A thumbnail the ground received, ready to embed."""

    id: str
    camera: str
    counter: Any
    data_uri: str
    shape: tuple[int, ...]


@dataclass
class PageInputs:
    """Everything one run's page shows (the report, and what :func:`pdh.scenario.evidence.page_inputs` found)."""

    report: dict[str, Any]
    series: list[Series] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    events_total: int = 0
    topics: dict[str, int] = field(default_factory=dict)
    thumbnails: list[Thumbnail] = field(default_factory=list)
    thumbnails_total: int = 0
    tails: dict[str, Any] = field(default_factory=dict)
    description: str = ""
