"""What goes down first and what is dropped when the store is full, as data. Pure.

Every stored item belongs to one downlink class:

=============  ===========================================================
``alert``      events from the lander's processes (``evt`` files), and the products of a frame taken to
               confirm a deployment (``priority: confirmation``): the front of the queue
``thumbnail``  thumbnails
``telemetry``  housekeeping recorded while a contact is open (realtime)
``requested``  any product an operator asked for (or made on request)
``playback``   housekeeping recorded outside contacts, or asked for again
``rest``       full frames, lossy, ROI and preview products nobody asked for
=============  ===========================================================

The classes send in the order of the ``priority`` setting. Within a class the
oldest goes first (telemetry plays back in time order), except ``rest``, which
goes by grade plus ``age_weight_per_h`` times age in hours, highest first.

Eviction (store over quota): ``rest`` first, lowest grade first, then oldest;
then ``playback``, oldest first. Alerts, thumbnails, realtime telemetry and
requested products are never evicted, nor anything in flight: a product that
cannot fit then is refused (:class:`~fsw.downlink.store.StoreFull`), with an event.
A ``rest`` newcomer worth no more than every ``rest`` item stored is refused
rather than evict one of them (ties keep what is stored, which also sends first).

Both are the policy's degradation of a frame, not a loss: the frame's thumbnail
(class ``thumbnail``, never evicted) stays and goes down; the imaging core names
a frame whose full product was refused ``frames_thumbnail_only`` (reason
``store_full``), and the downlink's ``product_evicted`` names one whose full
product was evicted (:mod:`pdh.verify` counts both as thumbnail only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from framework.errors import ConfigError

__all__ = ["CLASSES", "EVICTABLE", "Policy", "class_of"]

CLASSES = ("alert", "thumbnail", "telemetry", "requested", "playback", "rest")
EVICTABLE = ("rest", "playback")  # in this order


def class_of(kind: str, requested: bool, priority: str = "") -> str:
    """The downlink class of an item of ``kind``."""
    if kind == "evt" or priority == "confirmation":
        return "alert"
    if kind == "tlm":
        return "telemetry"
    if kind == "tlm_playback":
        return "playback"
    if kind == "thumbnail":
        return "thumbnail"
    return "requested" if requested else "rest"


@dataclass(frozen=True)
class Policy:
    priority: tuple[str, ...] = CLASSES
    age_weight_per_h: float = 0.1

    @classmethod
    def from_settings(cls, priority: list[str], age_weight_per_h: float, where: str = "<config>") -> "Policy":
        if sorted(priority) != sorted(CLASSES):
            raise ConfigError(where, "priority", f"each of {list(CLASSES)} exactly once", priority)
        if not math.isfinite(float(age_weight_per_h)):
            raise ConfigError(where, "age_weight_per_h", "a finite number", age_weight_per_h)
        return cls(tuple(priority), float(age_weight_per_h))

    def rank(self, cls: str) -> int:
        """Lower sends first."""
        return self.priority.index(cls)
