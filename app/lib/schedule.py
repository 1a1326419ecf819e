"""Daily jobs at a time of day (UTC): when the next run is, and which day's run is due.

Pure functions of a given `now`, so a scheduler is tested without waiting (the clock is
passed in; app/lib/clock.py gives the real one). UTC has no daylight saving: every day is
24 hours long and a time of day happens exactly once.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

_HH_MM = re.compile(r"(\d{1,2}):(\d{2})")
OFF_WORDS = frozenset({"off", "none", "disabled", "false", "0"})


def parse_time_of_day(
    value: str | None, default: time | None, name: str = "the time of day"
) -> time | None:
    """`HH:MM` (UTC, 24-hour) as a time; `off` (or `none`, `disabled`, `false`, `0`) as None
    (the job is off); empty as `default`. Anything else is a ValueError naming the setting
    (`name`) and the value."""
    text = (value or "").strip().lower()
    if not text:
        return default
    if text in OFF_WORDS:
        return None
    match = _HH_MM.fullmatch(text)
    if match is None or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"{name} must be HH:MM (UTC, e.g. 02:00) or off, not {value!r}")
    return time(int(match[1]), int(match[2]), tzinfo=UTC)


def run_time(day: date, at: time) -> datetime:
    """The day's run, at `at` UTC."""
    return datetime.combine(day, at.replace(tzinfo=None), tzinfo=UTC)


def due_day(now: datetime, at: time) -> date | None:
    """The UTC day whose run is due at `now`: today once `now` reached today's `at`, else
    None (yesterday's was due yesterday; a run missed then is not made up the next day)."""
    now = now.astimezone(UTC)
    return now.date() if now >= run_time(now.date(), at) else None


def next_run(now: datetime, at: time) -> datetime:
    """The first run time strictly after `now`: today at `at` if still ahead, else tomorrow."""
    now = now.astimezone(UTC)
    today = run_time(now.date(), at)
    return today if today > now else run_time(now.date() + timedelta(days=1), at)
