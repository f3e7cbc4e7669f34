from datetime import UTC, datetime

import pytest

from dtn.clock import (
    ScaledClock,
    SystemClock,
    VirtualClock,
    datetime_to_dtn_ms,
    dtn_ms_to_datetime,
    parse_utc,
    unix_s_to_dtn_ms,
)


def test_dtn_epoch_conversions() -> None:
    assert unix_s_to_dtn_ms(946_684_800) == 0
    assert datetime_to_dtn_ms(datetime(2025, 1, 1, tzinfo=UTC)) == 789_004_800_000
    assert dtn_ms_to_datetime(789_004_800_000) == datetime(2025, 1, 1, tzinfo=UTC)
    assert datetime_to_dtn_ms(parse_utc("2025-01-01T00:00:01.5Z")) == 789_004_801_500


def test_virtual_clock_moves_forward_only() -> None:
    clock = VirtualClock(start_s=10.0, epoch_dtn_ms=1000)
    assert clock.now() == 10.0 and clock.dtn_ms() == 11_000
    clock.advance(2.5)
    assert clock.now() == 12.5
    clock.jump_to(20)
    assert clock.dtn_ms() == 21_000
    with pytest.raises(ValueError):
        clock.jump_to(19.9)
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_system_and_scaled_clock_are_monotonic() -> None:
    sysclock = SystemClock()
    a = sysclock.now()
    assert sysclock.now() >= a
    assert sysclock.dtn_ms() > 789_004_800_000
    scaled = ScaledClock(60.0, epoch_dtn_ms=5_000)
    first = scaled.dtn_ms()
    assert first >= 5_000 and scaled.dtn_ms() >= first
    with pytest.raises(ValueError):
        ScaledClock(0, 0)


def test_parse_utc_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_utc("yesterday")
