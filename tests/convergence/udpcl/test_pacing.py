"""udpcl/pacing.py: the token bucket that paces senders, on virtual time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtn.convergence.udpcl.pacing import TokenBucket


def test_burst_goes_at_once_then_the_rate_holds() -> None:
    bucket = TokenBucket(1000.0, burst_bytes=1500, now=0.0)
    assert bucket.reserve(1000, 0.0) == 0.0
    assert bucket.reserve(500, 0.0) == 0.0
    assert bucket.reserve(500, 0.0) == pytest.approx(0.5)  # 500 bytes of debt at 1000 B/s
    assert bucket.reserve(1000, 0.0) == pytest.approx(1.5)  # queued behind the previous one
    # sent at 1.5 s: the bucket is empty again, so the next 100 bytes wait 0.1 s
    assert bucket.reserve(100, 1.5) == pytest.approx(0.1)


def test_idle_time_refills_only_up_to_the_burst() -> None:
    bucket = TokenBucket(100.0, burst_bytes=200, now=0.0)
    assert bucket.reserve(200, 0.0) == 0.0
    assert bucket.reserve(200, 1000.0) == 0.0  # a long idle period gives 200 bytes, not 100,000
    assert bucket.reserve(1, 1000.0) == pytest.approx(0.01)


def test_zero_burst_is_pure_serialisation_delay() -> None:
    bucket = TokenBucket(1000.0, burst_bytes=0, now=10.0)
    assert bucket.reserve(250, 10.0) == pytest.approx(0.25)
    assert bucket.reserve(250, 10.25) == pytest.approx(0.25)


def test_larger_than_burst_datagram_waits_for_its_excess() -> None:
    bucket = TokenBucket(1000.0, burst_bytes=100, now=0.0)
    assert bucket.reserve(1100, 0.0) == pytest.approx(1.0)


def test_rate_change_keeps_debt() -> None:
    bucket = TokenBucket(1000.0, burst_bytes=0, now=0.0)
    assert bucket.reserve(1000, 0.0) == pytest.approx(1.0)
    bucket.set_rate(500.0, 0.0)
    assert bucket.rate_bytes_per_s == 500.0
    assert bucket.reserve(0, 0.0) == pytest.approx(2.0)  # 1000 bytes of debt at the new rate


def test_time_going_backwards_is_ignored() -> None:
    bucket = TokenBucket(1000.0, burst_bytes=0, now=5.0)
    assert bucket.reserve(100, 4.0) == pytest.approx(0.1)


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (float("inf"), 1), (1.0, -1), (1.0, float("nan"))])
def test_bad_parameters(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst_bytes=burst, now=0.0)


@given(
    rate=st.floats(min_value=10.0, max_value=1e7),
    burst=st.integers(min_value=0, max_value=70_000),
    sends=st.lists(
        st.tuples(st.integers(min_value=0, max_value=65_507), st.floats(min_value=0.0, max_value=5.0)),
        min_size=1,
        max_size=40,
    ),
)
def test_a_paced_sender_never_beats_the_rate(rate: float, burst: int, sends: list[tuple[int, float]]) -> None:
    """A sender that reserves when it has a datagram (after the previous one left) and waits the answer:
    whatever leaves in any window [s_i, s_j] after datagram i is at most burst + rate * (s_j - s_i)."""
    bucket = TokenBucket(rate, burst_bytes=burst, now=0.0)
    now = 0.0
    sent: list[tuple[float, int]] = []
    for size, gap in sends:
        now += gap
        now += bucket.reserve(size, now)
        sent.append((now, size))
    for i in range(len(sent)):
        window = 0
        for j in range(i + 1, len(sent)):
            window += sent[j][1]
            assert window <= burst + rate * (sent[j][0] - sent[i][0]) + 1e-6 * (1 + window)


@given(
    rate=st.floats(min_value=10.0, max_value=1e7),
    sizes=st.lists(st.integers(min_value=1, max_value=65_507), min_size=1, max_size=40),
)
def test_back_to_back_reservations_queue_up_exactly(rate: float, sizes: list[int]) -> None:
    """Reservations made at one instant (no burst) leave at the cumulative serialisation times, in order."""
    bucket = TokenBucket(rate, burst_bytes=0, now=0.0)
    total = 0
    last = -1.0
    for size in sizes:
        total += size
        delay = bucket.reserve(size, 0.0)
        assert delay == pytest.approx(total / rate)
        assert delay > last
        last = delay
