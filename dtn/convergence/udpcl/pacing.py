"""Sender pacing, pure: a token bucket in bytes that says how long to hold each datagram.

RFC 9171 §7.2 asks the CL to rate-limit; ION sleeps after each datagram so that the average matches the
contact's rate, HDTN runs a token bucket. ``TokenBucket`` lets a sender go into debt: ``reserve(size, now)``
charges the datagram at once and returns how long to wait before sending it, so reservations made back to
back queue up behind each other and the long-run rate never exceeds ``rate_bytes_per_s``. ``burst_bytes`` is
what may leave at once after an idle period.
"""

from __future__ import annotations

import math


class TokenBucket:
    """Token bucket with debt. Time is whatever monotonic seconds the caller passes as ``now``."""

    __slots__ = ("_rate", "_burst", "_tokens", "_last")

    def __init__(self, rate_bytes_per_s: float, *, burst_bytes: float, now: float) -> None:
        if not (rate_bytes_per_s > 0 and math.isfinite(rate_bytes_per_s)):
            raise ValueError(f"rate_bytes_per_s must be a positive number, not {rate_bytes_per_s!r}")
        if not (burst_bytes >= 0 and math.isfinite(burst_bytes)):
            raise ValueError(f"burst_bytes must be a non-negative number, not {burst_bytes!r}")
        self._rate = float(rate_bytes_per_s)
        self._burst = float(burst_bytes)
        self._tokens = float(burst_bytes)
        self._last = now

    @property
    def rate_bytes_per_s(self) -> float:
        return self._rate

    @property
    def burst_bytes(self) -> float:
        return self._burst

    def _refill(self, now: float) -> None:
        if now > self._last:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
            self._last = now

    def reserve(self, size_bytes: int, now: float) -> float:
        """Charge ``size_bytes`` now; returns the seconds to wait (>= 0) before the datagram may leave."""
        if size_bytes < 0:
            raise ValueError("size_bytes must not be negative")
        self._refill(now)
        self._tokens -= size_bytes
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate

    def set_rate(self, rate_bytes_per_s: float, now: float) -> None:
        """Change the rate (a new contact); what was already reserved keeps the old rate's accounting."""
        if not (rate_bytes_per_s > 0 and math.isfinite(rate_bytes_per_s)):
            raise ValueError(f"rate_bytes_per_s must be a positive number, not {rate_bytes_per_s!r}")
        self._refill(now)
        self._rate = float(rate_bytes_per_s)
