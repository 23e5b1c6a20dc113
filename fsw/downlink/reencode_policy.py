"""When the background re-encoder works, on what, and with which codec setting. Pure: figures in, decisions out.

Re-encoding pays only when the item is still waiting when it is done: the bytes it saves cross the link
later instead of the capture path's. So every decision starts from how long an item will wait:

* :func:`time_to_carry` reads the contact plan: how long from now until the link has carried so many
  bytes (the next pass's opening, each window's rate and close, windows after it).
* :func:`waits` walks the store's sending order (the items ahead of each candidate, those in flight
  first) and gives each candidate the time until its own last byte is carried: a lower bound, since
  the link never carries more than its rate.
* :func:`budget_s` turns a wait into the worker seconds one item may take: 1/SAFETY of its wait (the rest
  is margin: a pass that opens early, a slow turn), and no more than its share of the backlog's wait (the
  worker does one item at a time; the others wait too).
* :func:`choose` picks, from the measured table (:mod:`fsw.imaging.codec_table`) for the product's
  camera profile, the setting with the fewest bits per pixel whose predicted cost (decode what is stored,
  encode, decode again to prove it bit-exact; CPU seconds per Mpix from the table times the worker's
  measured ``slowdown``) fits the budget. Only the Pareto front counts (a setting both larger and slower
  than another is never the answer: JPEG XL effort 8 and 9 on the navcam's frames), only settings the
  ground decodes, and only when it saves at least :data:`MIN_GAIN` over the product's own setting. An item
  whose wait is too short for any setting that gains is *about to leave* and is not touched. When the
  budget also covers the table's second-smallest setting, both are tried and the frame keeps the smaller
  (the two best are close on average and either can win on one frame): frame by frame, never more bytes
  than the table's best alone.
* :func:`budget_in_order` is the budget when the worker takes the items in the order they leave (the one
  leaving soonest first, so the outage's first departures are done first and later ones still have the
  pass itself): the first item may take what leaves every later one its own predicted cost before its
  deadline, or, when that cannot hold for all, its equal share of the time to each later deadline.
  :func:`estimate` predicts an item's cost from what the store knows (camera, codec, size), without
  reading it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Protocol

from fsw.imaging.codec_table import TABLE
from fsw.imaging.codecs import CODECS, codec_tag

__all__ = ["Setting", "Choice", "Estimate", "Leaving", "profile_for", "settings_for", "top_two", "choose",
           "estimate", "time_to_carry", "waits", "budget_s", "budget_in_order", "TABLE_TARGET", "SAFETY", "MIN_GAIN",
           "LONG_WAIT_S", "MAX_WALK"]

TABLE_TARGET = "table"
"""The ``reencode.codec`` setting that means: choose per product from the measured table."""
SAFETY = 1.5
"""A re-encoding must be predicted to take at most 1/SAFETY of the item's wait. The prediction already uses
the worst slowdown of the worker's recent jobs (:mod:`fsw.downlink.reencoder`), so this margin covers the
plan's own error (a pass opening early, a slow turn), not the machine's load: at 2 (with the worst recent
slowdown on top) the context camera's frames after a 40 s outage got JPEG XL effort 9 where effort 10 fit."""
MIN_GAIN = 0.005
"""A setting must save at least this fraction of the bytes of the product's own setting."""
LONG_WAIT_S = 3600.0
"""Waits are worked out this far ahead; beyond it every setting fits."""
MAX_WALK = 64
"""Items walked in sending order to place the candidates: beyond them, a candidate waits at least as long
as the link takes to carry what was walked."""


@dataclass(frozen=True)
class Setting:
    """One measured lossless setting of one camera profile."""

    codec: str
    params: dict[str, Any]
    tag: str
    bits_per_px: float
    enc_s_per_mpix: float
    dec_s_per_mpix: float


@dataclass(frozen=True)
class Choice:
    """What to do with one product: a ``setting`` (and its predicted worker seconds), or None and why."""

    setting: Setting | None
    reason: str  # "" when a setting was chosen; "about_to_leave" or "no_gain" otherwise
    predicted_s: float = 0.0
    also: Setting | None = None  # tried too, the frame keeping the smaller (the table's second-smallest)

    @property
    def settings(self) -> list[Setting]:
        """What the worker encodes, the chosen setting first."""
        return [s for s in (self.setting, self.also) if s is not None]


@dataclass(frozen=True)
class Estimate:
    """An item's predicted worker seconds: at the cheapest setting that gains, and at the smallest."""

    cheapest_s: float
    best_s: float


class Leaving(Protocol):
    """An item in sending order as :func:`waits` needs it (a StoredProduct)."""

    id: str
    size: int


def _setting(row: dict[str, Any]) -> Setting:
    return Setting(row["codec"], dict(row["params"]), row["tag"], float(row["bits_per_px"]),
                   float(row["enc_s_per_mpix"]), float(row["dec_s_per_mpix"]))


def profile_for(camera: str, bit_depth: int, pattern: str, table: dict[str, Any] = TABLE) -> str:
    """The table's profile for a product: its camera's own when measured, else the one of the same pattern
    kind (mono or Bayer) with the nearest bit depth."""
    if camera in table:
        return camera
    mono = pattern in ("", "mono")
    same = [n for n, p in table.items() if (p["pattern"] in ("", "mono")) == mono] or list(table)
    return min(same, key=lambda n: abs(int(table[n]["bit_depth"]) - int(bit_depth)))


def settings_for(profile: str, table: dict[str, Any] = TABLE) -> list[Setting]:
    """The profile's settings the ground decodes, on the Pareto front (each smaller than every faster one),
    fastest first."""
    rows = [_setting(r) for r in table[profile]["rows"] if r["codec"] in CODECS and CODECS[r["codec"]].lossless]
    rows.sort(key=lambda s: (s.enc_s_per_mpix + s.dec_s_per_mpix, s.bits_per_px))
    front: list[Setting] = []
    for s in rows:
        if not front or s.bits_per_px < front[-1].bits_per_px:
            front.append(s)
    return front


def _own(profile: str, tag: str, table: dict[str, Any]) -> Setting | None:
    return next((_setting(r) for r in table[profile]["rows"] if r["tag"] == tag), None)


def _gaining(profile: str, own: Setting | None, own_tag: str, table: dict[str, Any]) -> list[Setting]:
    """Every setting the ground decodes that saves at least MIN_GAIN over the product's own, smallest first."""
    ceiling = own.bits_per_px * (1.0 - MIN_GAIN) if own else math.inf
    rows = [_setting(r) for r in table[profile]["rows"] if r["codec"] in CODECS and CODECS[r["codec"]].lossless]
    return sorted((s for s in rows if s.bits_per_px <= ceiling and s.tag != own_tag),
                  key=lambda s: (s.bits_per_px, s.enc_s_per_mpix))


def top_two(profile: str, own_tag: str, table: dict[str, Any] = TABLE) -> list[Setting]:
    """The table's two smallest settings that gain over ``own_tag``, smallest first (any of the table's
    settings, not only the Pareto front: on one frame the second may be the smaller)."""
    return _gaining(profile, _own(profile, own_tag, table), own_tag, table)[:2]


def choose(profile: str, own_tag: str, mpix: float, budget: float, slowdown: float,
           fixed: tuple[str, dict[str, Any]] | None = None, table: dict[str, Any] = TABLE) -> Choice:
    """The setting to re-encode a product of ``mpix`` Mpix stored as ``own_tag`` with, given ``budget``
    worker seconds and the worker's measured ``slowdown`` (wall seconds per table CPU second).

    ``fixed`` (codec, params): the configured target instead of the table's choice, still only when it
    fits the budget (a setting the table lacks is taken to cost what the table's slowest one does)."""
    own = _own(profile, own_tag, table)
    undo = (own.dec_s_per_mpix if own else max((s.dec_s_per_mpix for s in settings_for(profile, table)),
                                                default=0.0))

    def cost(s: Setting) -> float:
        return mpix * (undo + s.enc_s_per_mpix + s.dec_s_per_mpix) * max(slowdown, 0.0)

    if fixed is not None:
        codec, params = fixed
        tag = codec_tag(codec, params)
        if tag == own_tag:
            return Choice(None, "no_gain")
        rows = table[profile]["rows"]
        known = _own(profile, tag, table)
        slowest = max((_setting(r) for r in rows), key=lambda s: s.enc_s_per_mpix, default=None)
        ref = known or slowest
        s = Setting(codec, dict(params), tag, ref.bits_per_px if ref else 0.0,
                    ref.enc_s_per_mpix if ref else 0.0, ref.dec_s_per_mpix if ref else 0.0)
        return Choice(s, "", cost(s)) if cost(s) <= budget else Choice(None, "about_to_leave", cost(s))
    ceiling = own.bits_per_px * (1.0 - MIN_GAIN) if own else math.inf
    gaining = [s for s in settings_for(profile, table) if s.bits_per_px <= ceiling and s.tag != own_tag]
    if not gaining:
        return Choice(None, "no_gain")
    fitting = [s for s in gaining if cost(s) <= budget]
    if not fitting:
        return Choice(None, "about_to_leave", cost(gaining[0]))
    best = min(fitting, key=lambda s: (s.bits_per_px, cost(s)))
    two = top_two(profile, own_tag, table)
    if len(two) == 2 and best.tag == two[0].tag:
        both = mpix * (undo + two[0].enc_s_per_mpix + two[1].enc_s_per_mpix
                       + max(two[0].dec_s_per_mpix, two[1].dec_s_per_mpix)) * max(slowdown, 0.0)
        if both <= budget:
            return Choice(best, "", both, also=two[1])
    return Choice(best, "", cost(best))


def estimate(camera: str, own_tag: str, size_bytes: int, slowdown: float,
             table: dict[str, Any] = TABLE) -> Estimate:
    """Predicted worker seconds for a stored item from what the store knows: its camera (the profile; a
    camera the table lacks costs what the dearer profile does), its codec tag and its size (the pixels it
    holds at the table's bits per pixel for that tag; a tag the table lacks, at its fewest). ``inf`` when
    nothing gains."""
    profiles = [camera] if camera in table else list(table)
    cheapest, best = 0.0, 0.0
    for profile in profiles:
        own = _own(profile, own_tag, table)
        gaining = _gaining(profile, own, own_tag, table)
        if not gaining:
            return Estimate(math.inf, math.inf)
        bpp = own.bits_per_px if own else min(s.bits_per_px for s in gaining)
        mpix = max(0, size_bytes) * 8.0 / max(bpp, 1e-6) / 1e6
        undo = own.dec_s_per_mpix if own else max(s.dec_s_per_mpix for s in gaining)

        def cost(s: Setting) -> float:
            return mpix * (undo + s.enc_s_per_mpix + s.dec_s_per_mpix) * max(slowdown, 0.0)

        cheapest = max(cheapest, min(cost(s) for s in gaining))
        best = max(best, cost(gaining[0]))
    return Estimate(cheapest, best)


class _Plan(Protocol):
    def contact(self, t_wall: float) -> Any: ...

    def next_open(self, t_wall: float, horizon_s: float | None = None) -> float | None: ...


def time_to_carry(plan: _Plan, now: float, n_bytes: int, horizon_s: float = LONG_WAIT_S) -> float:
    """Seconds from ``now`` until the link, by the contact plan, has carried ``n_bytes`` (at each window's
    rate, from the next window to open); ``math.inf`` when that is beyond ``horizon_s``."""
    left_bits = max(0, n_bytes) * 8.0
    t = now
    for _ in range(256):  # windows; a plan of many short windows ends in the horizon first
        if t - now > horizon_s:
            return math.inf
        c = plan.contact(t)
        if c is None:
            nxt = plan.next_open(t, horizon_s - (t - now))
            if nxt is None:
                return math.inf
            t = max(nxt, t + 1e-6)
            continue
        rate = max(float(c.rate_bps), 1.0)
        span = max(0.0, float(c.closes_at) - t)
        if left_bits <= span * rate:
            out = t + left_bits / rate - now
            return out if out <= horizon_s else math.inf
        left_bits -= span * rate
        t = max(float(c.closes_at), t + 1e-6)
    return math.inf


def waits(order: Iterable[Leaving], wanted: set[str], carry: Any, max_walk: int = MAX_WALK) -> dict[str, float]:
    """Each wanted id's wait: ``carry(bytes)`` (:func:`time_to_carry` bound to a plan and a time) of the
    bytes ahead of it in ``order`` plus its own. Ids not met within ``max_walk`` items (or once ``carry``
    says the walk is already past every horizon) get the wait of what was walked, a lower bound."""
    out: dict[str, float] = {}
    ahead = 0
    walked = 0
    for item in order:
        ahead += int(item.size)
        walked += 1
        if item.id in wanted:
            out[item.id] = carry(ahead)
        if len(out) == len(wanted) or walked >= max_walk:
            break
        if math.isinf(carry(ahead)):
            break
    floor = carry(ahead)
    return {pid: out.get(pid, floor) for pid in wanted}


def budget_s(wait_s: float, backlog: int) -> float:
    """Worker seconds one item may take: 1/SAFETY of its wait, and no more than its share of it when
    ``backlog`` items wait for the worker (it does one at a time)."""
    if math.isinf(wait_s):
        return math.inf
    return max(0.0, min(wait_s / SAFETY, wait_s / max(1, backlog)))


def budget_in_order(waits_s: list[float], costs_s: list[float]) -> float:
    """Worker seconds the first of ``waits_s`` may take, the worker doing the items in the order they leave
    (``waits_s`` soonest first; ``costs_s`` each one's predicted cost at its smallest setting). At most
    1/SAFETY of its own wait; within that, what still leaves each later item its cost done by 1/SAFETY of
    its wait (an item that could not have it even alone reserves nothing). When that is less than the
    first's own cost (not every item can have its smallest setting), at least the first's equal share of
    the time to each later deadline (as :func:`budget_s` shares a backlog)."""
    first = waits_s[0] / SAFETY
    reserve = share = first
    spent = 0.0
    for k, (w, c) in enumerate(zip(waits_s[1:], costs_s[1:]), start=2):
        if math.isinf(w):
            break  # it and every later one wait past the horizon: room for all
        share = min(share, w / SAFETY / k)
        if c > w / SAFETY:
            continue
        spent += c
        reserve = min(reserve, w / SAFETY - spent)
    if reserve >= costs_s[0]:
        return reserve
    return max(0.0, reserve, share)
