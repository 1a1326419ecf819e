"""Calendar arithmetic for billing periods."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

DAY = 86400


def add_interval(timestamp: int, interval: str, count: int = 1) -> int:
    moment = datetime.fromtimestamp(timestamp, UTC)
    if interval == "day":
        return int((moment + timedelta(days=count)).timestamp())
    if interval == "week":
        return int((moment + timedelta(weeks=count)).timestamp())
    months = count * (12 if interval == "year" else 1)
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())
