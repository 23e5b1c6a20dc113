"""The relay contact plan: when each relay satellite joins the lander to the ground, at what rate. Pure.

Each relay flies a simple periodic orbit. Within one period (orbit seconds)
it sees the lander during ``lander_windows_s`` and the ground during
``ground_windows_s``; it relays bent-pipe, so the lander reaches the ground
through it only while both are in view (the intersection). Orbit time runs
``time_scale`` times faster than the wall clock, from ``epoch_s`` (Unix time),
so a 2-hour orbit can play in 20 s and every process that reads the same plan
agrees on the windows without talking to the others (a DTN contact plan).

When two relays are in contact at once, the first listed carries the traffic.
The per-pass data rate cycles through ``rate_bps`` (a number or a list, one per
orbit). :func:`load_plan` reads the plan from process settings, optionally from
a schedule file (``relays_file``); an empty relay list means one relay that is
always in contact at the process's ``rate_bps``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from framework.errors import ConfigError
from framework.kinds import Field

__all__ = ["CONTACT_PLAN_KEYS", "Burst", "Relay", "Contact", "ContactPlan", "ContactClock", "PlanOverrides",
           "load_plan", "plan_from_mapping", "check_relays", "check_relays_file"]

_Windows = tuple[tuple[float, float], ...]




@dataclass(frozen=True)
class Burst:
    """Gilbert-Elliott burst loss: enter the bad state with ``enter`` per packet, leave with ``leave``;
    a packet in the bad state is lost with probability ``loss``. Mean loss = loss * enter / (enter + leave)."""

    enter: float = 0.0
    leave: float = 1.0
    loss: float = 0.0

    @property
    def mean_loss(self) -> float:
        return 0.0 if self.enter <= 0 else self.loss * self.enter / (self.enter + self.leave)


@dataclass(frozen=True)
class Relay:
    name: str
    period_s: float
    lander_windows_s: _Windows
    ground_windows_s: _Windows
    rate_bps: tuple[float, ...]
    latency_ms: float
    loss: float = 0.0
    corrupt: float = 0.0
    burst: Burst = field(default_factory=Burst)

    def windows(self) -> _Windows:
        """Contact windows (lander and ground both in view) within one period, in orbit seconds."""
        out = []
        for a0, a1 in self.lander_windows_s:
            for b0, b1 in self.ground_windows_s:
                lo, hi = max(a0, b0), min(a1, b1)
                if hi > lo:
                    out.append((lo, hi))
        return tuple(sorted(out))


@dataclass(frozen=True)
class Contact:
    """An open contact at some moment: which relay, which pass, its rate, and when it closes (wall s)."""

    relay: str
    index: int
    pass_number: int
    rate_bps: float
    latency_ms: float
    opened_at: float
    closes_at: float


@dataclass(frozen=True)
class ContactPlan:
    relays: tuple[Relay, ...]
    time_scale: float = 1.0
    epoch_s: float = 0.0

    @property
    def always_open(self) -> bool:
        return all(r.windows() == ((0.0, r.period_s),) for r in self.relays)

    def _orbit_time(self, t_wall: float) -> float:
        return (t_wall - self.epoch_s) * self.time_scale

    def _wall(self, t_orbit: float) -> float:
        return t_orbit / self.time_scale + self.epoch_s

    def contact(self, t_wall: float, exclude: frozenset[str] = frozenset()) -> Contact | None:
        """The contact open at wall time ``t_wall`` (the first listed relay wins, skipping the relays named in
        ``exclude``), or None."""
        t = self._orbit_time(t_wall)
        for i, r in enumerate(self.relays):
            if r.name in exclude:
                continue
            orbit = math.floor(t / r.period_s)
            phase = t - orbit * r.period_s
            for lo, hi in r.windows():
                if lo <= phase < hi:
                    start, end = orbit * r.period_s + lo, orbit * r.period_s + hi
                    if hi >= r.period_s:  # runs into the next period's first window, if that starts at 0
                        end += max((w[1] for w in r.windows() if w[0] <= 0.0), default=0.0)
                    return Contact(r.name, i, orbit, r.rate_bps[orbit % len(r.rate_bps)], r.latency_ms,
                                   self._wall(start), self._wall(end))
        return None

    def is_open(self, t_wall: float) -> bool:
        return self.contact(t_wall) is not None

    def next_open(self, t_wall: float, horizon_s: float | None = None) -> float | None:
        """Wall time at which the next contact opens (``t_wall`` itself if one is open), or None."""
        if self.is_open(t_wall):
            return t_wall
        t = self._orbit_time(t_wall)
        best = math.inf
        for r in self.relays:
            orbit = math.floor(t / r.period_s)
            for k in (0, 1):
                for lo, _hi in r.windows():
                    start = (orbit + k) * r.period_s + lo
                    if start > t:
                        best = min(best, start)
        if not math.isfinite(best):
            return None
        wall = self._wall(best)
        return wall if horizon_s is None or wall - t_wall <= horizon_s else None

    def open_seconds(self, t0: float, t1: float, step_s: float = 0.01) -> float:
        """Wall seconds of open contact between ``t0`` and ``t1`` (sampled every ``step_s``)."""
        n = max(1, int((t1 - t0) / step_s))
        return sum(step_s for k in range(n) if self.is_open(t0 + (k + 0.5) * step_s))


class PlanOverrides:
    """A plan as a test bench bends it: windows forced open or closed until a time, relays out until a time,
    and a clock offset. Pure: times are passed in (wall seconds, the plan's own clock before the offset).

    The plan every process reads stays the truth of the mission; this layer is the bench's, for the relay
    emulator only (its control port): an unplanned outage (a window closed), a window that opens early, a
    relay lost for a while, or the relay's clock stepped away from the lander's and the ground's. It answers
    :meth:`contact`, :meth:`is_open` and :meth:`next_open` like :class:`ContactPlan`; an expired override
    no longer counts and is forgotten by :meth:`expire`.
    """

    def __init__(self, plan: ContactPlan) -> None:
        self.plan = plan
        self.forced: tuple[str, float, str | None, float] | None = None  # (open|closed, until, relay, since)
        self.out: dict[str, float] = {}  # relay name -> out until (wall s)
        self.offset_s = 0.0

    @property
    def relays(self) -> tuple[Relay, ...]:
        return self.plan.relays

    @property
    def time_scale(self) -> float:
        return self.plan.time_scale

    def relay_index(self, name: str) -> int:
        """The index of relay ``name``; KeyError naming the relays there are."""
        for i, r in enumerate(self.plan.relays):
            if r.name == name:
                return i
        raise KeyError(f"no relay {name!r} in the plan (relays: {[r.name for r in self.plan.relays]})")

    def force(self, state: str, now: float, duration_s: float | None, relay: str | None = None) -> None:
        """Force the window ``open`` (through ``relay``, default the first) or ``closed`` from ``now`` for
        ``duration_s`` (None: until cleared)."""
        if state not in ("open", "closed"):
            raise ValueError(f"state must be open or closed, not {state!r}")
        if relay is not None:
            self.relay_index(relay)
        until = math.inf if duration_s is None else now + duration_s
        self.forced = (state, until, relay, now)

    def take_out(self, relay: str, now: float, duration_s: float | None) -> None:
        """Relay ``relay`` carries nothing from ``now`` for ``duration_s`` (None: until put back)."""
        self.relay_index(relay)
        self.out[relay] = math.inf if duration_s is None else now + duration_s

    def put_back(self, relay: str) -> None:
        self.relay_index(relay)
        self.out.pop(relay, None)

    def step_clock(self, seconds: float) -> None:
        """Step this end's clock by ``seconds`` (cumulative): the plan is read at ``t + offset``."""
        self.offset_s += seconds

    def clear(self) -> None:
        self.forced = None
        self.out.clear()
        self.offset_s = 0.0

    def expire(self, now: float) -> None:
        if self.forced is not None and now >= self.forced[1]:
            self.forced = None
        for name in [n for n, until in self.out.items() if now >= until]:
            del self.out[name]

    def state(self, now: float) -> dict[str, Any]:
        """The overrides in force at ``now`` (for a status reply and the log)."""
        self.expire(now)
        forced = None
        if self.forced is not None:
            state, until, relay, _ = self.forced
            forced = {"state": state, "relay": relay, "remaining_s": None if math.isinf(until) else until - now}
        return {"forced": forced, "out": {n: None if math.isinf(u) else u - now for n, u in self.out.items()},
                "clock_offset_s": self.offset_s}

    def contact(self, t_wall: float) -> Contact | None:
        self.expire(t_wall)
        t = t_wall + self.offset_s
        out = frozenset(self.out)
        if self.forced is not None:
            state, until, relay, since = self.forced
            if state == "closed":
                return None
            planned = self.plan.contact(t, out)
            if planned is not None and (relay is None or planned.relay == relay):
                return planned
            name = relay or next((r.name for r in self.plan.relays if r.name not in out), self.plan.relays[0].name)
            i = self.relay_index(name)
            r = self.plan.relays[i]
            orbit = math.floor((t - self.plan.epoch_s) * self.plan.time_scale / r.period_s)
            return Contact(r.name, i, orbit, r.rate_bps[orbit % len(r.rate_bps)], r.latency_ms, since, until)
        return self.plan.contact(t, out)

    def is_open(self, t_wall: float) -> bool:
        return self.contact(t_wall) is not None


class ContactClock:
    """A clock that runs only while a contact is open: timers on it pause through outages."""

    def __init__(self, plan: ContactPlan, wall: Any) -> None:
        self.plan = plan
        self.wall = wall
        self._last = wall()
        self._open_s = 0.0

    def __call__(self) -> float:
        now = self.wall()
        if now > self._last and self.plan.is_open(now):
            self._open_s += now - self._last
        self._last = max(self._last, now)
        return self._open_s


def _windows(raw: Any, file: str, key: str, period: float) -> _Windows:
    """Windows within one period, each start before its end, in order and not overlapping (a window
    list that could mean two things is refused); left out, the whole period."""
    if raw is None:
        return ((0.0, period),)
    if not isinstance(raw, list) or not raw or not all(isinstance(w, list) and len(w) == 2 for w in raw):
        raise ConfigError(file, key, "a non-empty list of [start_s, end_s] pairs (leave it out: always in view)",
                          raw)
    out: list[tuple[float, float]] = []
    for i, (a, b) in enumerate(raw):
        if not (_is_number(a) and _is_number(b) and 0 <= a < b <= period):
            raise ConfigError(file, f"{key}[{i}]", f"[start_s, end_s] with 0 <= start < end <= period_s ({period})",
                              [a, b])
        if out and a < out[-1][1]:
            raise ConfigError(file, f"{key}[{i}]", f"a window starting at or after the previous one's end "
                                                   f"({out[-1][1]:g} s)", [a, b])
        out.append((float(a), float(b)))
    return tuple(out)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _number(d: dict[str, Any], key: str, file: str, prefix: str, default: float, lo: float, hi: float) -> float:
    v = d.get(key, default)
    if not _is_number(v) or not lo <= v <= hi:
        raise ConfigError(file, f"{prefix}{key}", f"a number in [{lo:g}, {hi:g}]", v)
    return float(v)


_RELAY_KEYS = {"name", "period_s", "lander_windows_s", "ground_windows_s", "rate_bps", "latency_ms", "loss",
               "corrupt", "burst"}


def _relay(raw: Any, file: str, prefix: str, default_rate: float, default_latency_ms: float) -> Relay:
    """One relay of the plan; ``prefix`` (``relays[0].``) leads every key a ConfigError names."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise ConfigError(file, prefix.rstrip("."), "a mapping with a name", raw)
    unknown = set(raw) - _RELAY_KEYS
    if unknown:
        raise ConfigError(file, f"{prefix}{sorted(unknown)[0]}", f"one of {sorted(_RELAY_KEYS)}", "unknown key")
    period = _number(raw, "period_s", file, prefix, 7200.0, 1e-3, 1e9)
    rates = raw.get("rate_bps", default_rate)
    rates = rates if isinstance(rates, list) else [rates]
    if not rates or not all(_is_number(x) and 1000 <= x <= 1e12 for x in rates):
        raise ConfigError(file, f"{prefix}rate_bps", "a rate in [1000, 1e12] bit/s or a non-empty list of them "
                                                     "(one per pass)", raw.get("rate_bps"))
    b = raw.get("burst", {}) or {}
    if not isinstance(b, dict) or set(b) - {"enter", "leave", "loss"}:
        raise ConfigError(file, f"{prefix}burst", "a mapping {enter, leave, loss}", b)
    bp = f"{prefix}burst."
    burst = Burst(_number(b, "enter", file, bp, 0.0, 0.0, 1.0), _number(b, "leave", file, bp, 1.0, 1e-6, 1.0),
                  _number(b, "loss", file, bp, 0.0, 0.0, 1.0))
    return Relay(raw["name"], period, _windows(raw.get("lander_windows_s"), file, f"{prefix}lander_windows_s", period),
                 _windows(raw.get("ground_windows_s"), file, f"{prefix}ground_windows_s", period),
                 tuple(float(x) for x in rates),
                 _number(raw, "latency_ms", file, prefix, default_latency_ms, 0.0, 60_000.0),
                 _number(raw, "loss", file, prefix, 0.0, 0.0, 0.95),
                 _number(raw, "corrupt", file, prefix, 0.0, 0.0, 0.5), burst)


def _relays(raw: Any, file: str, key: str, default_rate: float, default_latency_ms: float) -> tuple[Relay, ...]:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise ConfigError(file, key, "a list of relay mappings", raw)
    relays = tuple(_relay(r, file, f"{key}[{i}].", default_rate, default_latency_ms) for i, r in enumerate(raw))
    names = [r.name for r in relays]
    if len(set(names)) != len(names):
        raise ConfigError(file, key, "unique relay names", names)
    return relays


def plan_from_mapping(data: dict[str, Any], where: str, default_rate: float = 8e6,
                      default_latency_ms: float = 50.0, prefix: str = "") -> ContactPlan:
    """A plan from ``{time_scale, epoch_s, relays: [...]}``; ConfigError naming the file ``where`` and the
    key (after ``prefix``) that is wrong."""
    relays = _relays(data.get("relays"), where, f"{prefix}relays", default_rate, default_latency_ms)
    if not relays:
        relays = (Relay("relay", 1.0, ((0.0, 1.0),), ((0.0, 1.0),), (float(default_rate),), default_latency_ms),)
    return ContactPlan(relays, _number(data, "time_scale", where, prefix, 1.0, 1e-6, 1e9),
                       _number(data, "epoch_s", where, prefix, 0.0, 0.0, 1e12))


def _read_schedule(path: str, file: str, key: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise ConfigError(file, key, "a readable YAML schedule file", f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(path, "<top>", "a mapping with time_scale, epoch_s, relays", data)
    return data


def check_relays(file: str, key: str, value: Any) -> None:
    """The ``relays`` key's check (CONTACT_PLAN_KEYS): every relay as :func:`load_plan` will read it, so
    a plan a process cannot start with is refused by ``pdh check-config``."""
    _relays(value, file, key, 8e6, 50.0)


def check_relays_file(file: str, key: str, value: Any) -> None:
    """The ``relays_file`` key's check: the schedule file (relative to the working directory, as the
    processes read it) is there and holds a valid plan."""
    if value:
        plan_from_mapping(_read_schedule(value, file, key), value)


def load_plan(settings: dict[str, Any], where: str = "<config>") -> ContactPlan:
    """The plan a process's settings name: ``relays_file`` if set, else its inline keys."""
    rate = float(settings.get("rate_bps", 8e6))
    latency = float(settings.get("latency_ms", 50.0))
    path = settings.get("relays_file") or ""
    if path:
        return plan_from_mapping(_read_schedule(path, where, "relays_file"), path, rate, latency)
    return plan_from_mapping({k: settings[k] for k in ("relays", "time_scale", "epoch_s") if k in settings},
                             where, rate, latency)


CONTACT_PLAN_KEYS: dict[str, Field] = {
    # the plan's keys in a process config (downlink, ground, relay): one schema for every end, checked
    # as the processes will read it
    "relays": Field(list, [], check=check_relays,
                    doc="relay satellites: name, period_s, lander_windows_s, ground_windows_s, rate_bps "
                        "(one or a list per pass), latency_ms, loss, corrupt, burst {enter, leave, loss}; "
                        "empty: one relay always in contact (link/contacts.py)"),
    "time_scale": Field(float, 1.0, min=1e-6, max=1e9, doc="orbit seconds per wall second"),
    "epoch_s": Field(float, 0.0, min=0.0, max=1e12, doc="Unix time at which orbit time is zero"),
    "relays_file": Field(str, "", check=check_relays_file,
                         doc="a schedule file {time_scale, epoch_s, relays}; overrides the inline keys"),
}
