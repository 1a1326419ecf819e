"""The daily schedule (app/lib/schedule.py): pure functions of `now`, no waiting."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest

from app.lib.schedule import due_day, next_run, parse_time_of_day

AT_2 = time(2, 0, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_parse_time_of_day() -> None:
    assert parse_time_of_day(None, AT_2) == AT_2
    assert parse_time_of_day("", AT_2) == AT_2
    assert parse_time_of_day("02:00", None) == AT_2
    assert parse_time_of_day(" 7:05 ", None) == time(7, 5, tzinfo=UTC)
    assert parse_time_of_day("23:59", None) == time(23, 59, tzinfo=UTC)
    for off in ("off", "OFF", "none", "disabled", "false", "0"):
        assert parse_time_of_day(off, AT_2) is None
    for bad in ("24:00", "2", "02:60", "2am", "02:00:00", "-1:00"):
        with pytest.raises(ValueError, match="RECONCILE_AT must be HH:MM"):
            parse_time_of_day(bad, AT_2, "RECONCILE_AT")


def test_reconcile_at_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from app.config import Settings

    monkeypatch.setenv("VAR_DIR", str(tmp_path))  # generated secrets go there
    monkeypatch.delenv("RECONCILE_AT", raising=False)
    assert Settings.from_env().reconcile_at == AT_2  # the default: 02:00 UTC
    monkeypatch.setenv("RECONCILE_AT", "off")
    assert Settings.from_env().reconcile_at is None
    monkeypatch.setenv("RECONCILE_AT", "3:30")
    assert Settings.from_env().reconcile_at == time(3, 30, tzinfo=UTC)
    monkeypatch.setenv("RECONCILE_AT", "3 am")
    with pytest.raises(ValueError, match="RECONCILE_AT"):
        Settings.from_env()


def test_next_run_today_when_ahead_else_tomorrow() -> None:
    assert next_run(utc(2026, 12, 4, 1, 59, 59), AT_2) == utc(2026, 12, 4, 2, 0)
    # At the run time itself the next one is tomorrow's (this one is due now).
    assert next_run(utc(2026, 12, 4, 2, 0), AT_2) == utc(2026, 12, 5, 2, 0)
    assert next_run(utc(2026, 12, 4, 18, 7), AT_2) == utc(2026, 12, 5, 2, 0)


def test_next_run_across_the_day_month_and_year_boundaries() -> None:
    assert next_run(utc(2026, 12, 31, 23, 59, 59), AT_2) == utc(2027, 1, 1, 2, 0)
    assert next_run(utc(2027, 2, 28, 3, 0), AT_2) == utc(2027, 3, 1, 2, 0)
    assert next_run(utc(2028, 2, 28, 3, 0), AT_2) == utc(2028, 2, 29, 2, 0)  # leap year
    midnight = time(0, 0, tzinfo=UTC)
    assert next_run(utc(2026, 12, 4, 23, 59, 59, 999999), midnight) == utc(2026, 12, 5)
    assert next_run(utc(2026, 12, 5), midnight) == utc(2026, 12, 6)
    late = time(23, 59, tzinfo=UTC)
    assert next_run(utc(2026, 12, 4, 0, 0), late) == utc(2026, 12, 4, 23, 59)


def test_utc_has_no_daylight_saving() -> None:
    """Every run is 24 hours after the previous one, through Europe's and America's DST
    changes (UTC does not move), and a local-time `now` is read as the same instant."""
    now = utc(2026, 3, 1, 2, 0)
    for _ in range(366):
        following = next_run(now, AT_2)
        assert following - now == timedelta(hours=24)
        now = following
    new_york = timezone(timedelta(hours=-5))
    # 21:30 in New York on the 3rd is 02:30 UTC on the 4th: today's (the 4th's) run is due.
    local = datetime(2026, 12, 3, 21, 30, tzinfo=new_york)
    assert due_day(local, AT_2) == date(2026, 12, 4)
    assert next_run(local, AT_2) == utc(2026, 12, 5, 2, 0)


def test_due_day() -> None:
    assert due_day(utc(2026, 12, 4, 1, 59), AT_2) is None
    assert due_day(utc(2026, 12, 4, 2, 0), AT_2) == date(2026, 12, 4)
    # Later the same day it is still today's (a process started after 02:00 runs it then).
    assert due_day(utc(2026, 12, 4, 23, 59), AT_2) == date(2026, 12, 4)
    assert due_day(utc(2026, 12, 5, 0, 0), AT_2) is None  # a new day: not yet
