"""Clocks and DTN time.

Protocol code never reads the OS clock: it is handed ``now`` (seconds on a monotonic timeline) and
``dtn_ms`` (milliseconds since 2000-01-01T00:00:00Z, RFC 9171 §4.2.6) by whoever drives it. A
``Clock`` supplies both. ``SystemClock`` is the one place that reads the OS clock.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

#: Seconds from the UNIX epoch to the DTN epoch, 2000-01-01T00:00:00Z (POSIX arithmetic, no leap seconds).
DTN_EPOCH_UNIX_S = 946_684_800
DTN_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def unix_s_to_dtn_ms(unix_s: float) -> int:
    """UNIX seconds → DTN milliseconds."""
    return round((unix_s - DTN_EPOCH_UNIX_S) * 1000)


def dtn_ms_to_unix_s(dtn_ms: int) -> float:
    """DTN milliseconds → UNIX seconds."""
    return dtn_ms / 1000 + DTN_EPOCH_UNIX_S


def datetime_to_dtn_ms(when: datetime) -> int:
    """An aware datetime (naive ones are taken as UTC) → DTN milliseconds."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - DTN_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def dtn_ms_to_datetime(dtn_ms: int) -> datetime:
    """DTN milliseconds → aware UTC datetime."""
    return datetime.fromtimestamp(dtn_ms_to_unix_s(dtn_ms), tz=UTC)


def parse_utc(text: str) -> datetime:
    """ISO 8601 text (``2031-05-12T00:00Z``, ``2031-05-12 00:00:00+00:00``) → aware datetime; naive = UTC."""
    cleaned = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        when = datetime.fromisoformat(cleaned)
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class Clock(Protocol):
    """Source of time for a node: a monotonic timeline and DTN time."""

    def now(self) -> float:
        """Seconds on a monotonic timeline (only differences are meaningful)."""
        ...

    def dtn_ms(self) -> int:
        """Milliseconds since 2000-01-01T00:00:00Z."""
        ...


class SystemClock:
    """The OS clock: ``time.monotonic()`` and ``time.time()``."""

    def now(self) -> float:
        return time.monotonic()

    def dtn_ms(self) -> int:
        return unix_s_to_dtn_ms(time.time())


class ScaledClock:
    """Real time running ``rate`` times faster from ``epoch`` (DTN ms), for accelerated live runs.

    Every node of a testbed given the same ``rate``, ``epoch`` and ``start_unix_s`` agrees on DTN time.
    """

    def __init__(self, rate: float, epoch_dtn_ms: int, *, start_unix_s: float | None = None) -> None:
        if rate <= 0:
            raise ValueError(f"clock rate must be positive, got {rate}")
        self.rate = rate
        self.epoch_dtn_ms = epoch_dtn_ms
        self._start_unix_s = time.time() if start_unix_s is None else start_unix_s
        self._start_mono = time.monotonic() - (time.time() - self._start_unix_s)

    def now(self) -> float:
        return (time.monotonic() - self._start_mono) * self.rate

    def dtn_ms(self) -> int:
        return self.epoch_dtn_ms + round(self.now() * 1000)


class VirtualClock:
    """A clock that moves only when told to: forward, never backward. For the simulator and tests."""

    def __init__(self, start_s: float = 0.0, epoch_dtn_ms: int = 789_004_800_000) -> None:
        self._now = float(start_s)
        self.epoch_dtn_ms = epoch_dtn_ms

    def now(self) -> float:
        return self._now

    def dtn_ms(self) -> int:
        return self.epoch_dtn_ms + round(self._now * 1000)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a virtual clock never goes backwards (advance by {seconds})")
        self._now += seconds

    def jump_to(self, when_s: float) -> None:
        if when_s < self._now:
            raise ValueError(f"a virtual clock never goes backwards ({when_s} < {self._now})")
        self._now = float(when_s)
