"""One date format everywhere (issue 21, item 4): `date` and `datetime`, the same filters in
pages and emails, with relative times in a `<time>` element that carries the exact one."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from app.config import PROJECT_ROOT
from app.lib.jinja import format_date, format_datetime, relative_time
from app.notifications.service import email_environment

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_date_and_datetime_formats() -> None:
    moment = datetime(2026, 12, 18, 14, 5, 59, tzinfo=UTC)
    assert format_date(moment) == "Dec 18, 2026"
    assert format_datetime(moment) == "Dec 18, 2026, 14:05 UTC"
    assert format_date(date(2026, 1, 2)) == "Jan 2, 2026"
    assert format_datetime(date(2026, 1, 2)) == "Jan 2, 2026"
    assert format_date(None) == format_datetime(None) == "—"


def test_naive_times_are_utc_and_aware_ones_are_shown_in_utc() -> None:
    assert format_datetime(datetime(2026, 12, 18, 14, 5)) == "Dec 18, 2026, 14:05 UTC"
    paris = datetime(2026, 12, 19, 0, 30, tzinfo=UTC).astimezone()
    assert format_datetime(paris) == "Dec 19, 2026, 00:30 UTC"


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=10), "just now"),
        (timedelta(minutes=5), "in 5 minutes"),
        (-timedelta(minutes=1), "1 minute ago"),
        (-timedelta(hours=2), "2 hours ago"),
        (timedelta(hours=23), "tomorrow"),
        (-timedelta(days=1), "yesterday"),
        (timedelta(days=3), "in 3 days"),
        (-timedelta(days=30), "30 days ago"),
        (timedelta(days=90), "in 3 months"),
        (-timedelta(days=800), "2 years ago"),
    ],
)
def test_relative_time(delta: timedelta, text: str) -> None:
    assert relative_time(NOW + delta, NOW) == text


def test_relative_time_of_a_day() -> None:
    assert relative_time(date(2026, 12, 4), NOW) == "today"
    assert relative_time(date(2026, 12, 7), NOW) == "in 3 days"


def test_relative_form_is_a_time_element_with_the_exact_time() -> None:
    moment = datetime.now(UTC) + timedelta(days=3, minutes=1)
    html = format_datetime(moment, relative=True)
    exact = format_datetime(moment)
    assert html == (
        f'<time datetime="{moment.replace(microsecond=0).isoformat()}" title="{exact}">'
        "in 3 days</time>"
    )
    assert format_date(moment, relative=True).endswith('">in 3 days</time>')


def test_emails_use_the_same_format() -> None:
    env = email_environment()
    when = datetime(2026, 12, 18, 14, 5, tzinfo=UTC)
    assert env.from_string("{{ w | date }} / {{ w | datetime }}").render(w=when) == (
        "Dec 18, 2026 / Dec 18, 2026, 14:05 UTC"
    )


def test_no_template_formats_a_date_its_own_way() -> None:
    """The filters take no format string: `date('%Y-%m-%d')` and `strftime` are the ad-hoc
    ways the pages used before (ISO timestamps wrapping in admin tables)."""
    offenders = []
    for path in sorted(Path(PROJECT_ROOT / "templates").rglob("*")):
        if path.suffix not in (".html", ".txt"):
            continue
        text = path.read_text()
        visible = re.sub(r'datetime="[^"]*"', "", text)  # a <time> attribute may be ISO
        if re.search(r"\|\s*date(time)?\s*\(\s*['\"]|strftime\(|isoformat\(\)", visible):
            offenders.append(str(path.relative_to(PROJECT_ROOT)))
    assert offenders == []
