"""A report's date range from two `YYYY-MM-DD` inputs: both days included, UTC days."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from app.lib.errors import ValidationFailed

MAX_DAYS = 366


@dataclass(frozen=True)
class DateRange:
    first: date
    last: date  # included

    @property
    def start(self) -> datetime:
        return datetime(self.first.year, self.first.month, self.first.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The moment after the range: midnight UTC after its last day."""
        after = self.last + timedelta(days=1)
        return datetime(after.year, after.month, after.day, tzinfo=UTC)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def query(self) -> str:
        return f"from={self.first.isoformat()}&to={self.last.isoformat()}"


def _day(text: str, field: str, label: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValidationFailed(
            f"The {label} date must be a date like 2026-01-31.", code="invalid_date", field=field
        ) from None


def parse_range(
    first_text: str,
    last_text: str,
    *,
    default: DateRange,
    max_days: int = MAX_DAYS,
) -> DateRange:
    """The range the inputs name (an empty input takes `default`'s day); 422 `invalid_date`
    for a date that is not one, `invalid_range` when `to` is before `from` or the range is
    longer than `max_days` days."""
    first = _day(first_text, "from", "from") if first_text.strip() else default.first
    last = _day(last_text, "to", "to") if last_text.strip() else default.last
    if last < first:
        raise ValidationFailed(
            "The to date must be on or after the from date.", code="invalid_range", field="to"
        )
    chosen = DateRange(first, last)
    if chosen.days > max_days:
        raise ValidationFailed(
            f"Choose a range of at most {max_days} days (this one has {chosen.days}).",
            code="invalid_range",
            field="to",
        )
    return chosen
