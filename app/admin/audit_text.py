"""The audit log as a person reads it (issue 21, item 11): people by email, not `user_4`, and
the details as sentences, not a JSON dump.

Each action has its formatter ("Refunded $12.00 of invoice INV-0004 — reason: duplicate
payment"); the keys it does not word (or hide: internal ones) follow as "Label: value", and an
action without a formatter (one added later, or an old one) gets only that generic form, so
nothing an entry holds is lost. `audit_row` names who acted (the admin's email; "deleted
user" once the account is gone) and what was acted on (the customer's email rather than its
external id, which stays under it; "Deleted customer" after an account deletion).

Pure functions: the names of meters, plans and invoices come in `Names`, and the people as
they are now in the repository's `AuditEntryRow`, both looked up by app/admin/service.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from app.admin.commands import ACTIONS
from app.admin.models import AuditLog
from app.admin.refunds import REASON_LABELS
from app.admin.repository import AuditEntryRow
from app.apikeys.models import TEST_PREFIX
from app.lib.jinja import format_date, format_datetime
from app.lib.money import format_money
from app.lib.urls import path_segment

ADMIN = "/admin/billing"

# Words for keys whose label is not just the key with spaces.
_LABELS = {
    "grant_id": "Grant id",
    "refunds": "Refunds",
    "credit_note": "Credit note id",
    "process": "Process",
    "object": "Object",
}


@dataclass(frozen=True)
class Names:
    """Display names the details refer to by code: meters and plans (the catalog), invoices
    (Stripe invoice id → its number)."""

    meters: Mapping[str, str] = field(default_factory=dict)
    plans: Mapping[str, str] = field(default_factory=dict)
    invoices: Mapping[str, str] = field(default_factory=dict)


def describe(
    action: str, details: Mapping[str, Any] | None, names: Names | None = None
) -> list[str]:
    """The entry's details as lines: a sentence first (when the action has one), then the rest
    readably; [] when there is nothing to say."""
    details = dict(details or {})
    names = names or Names()
    formatter = _FORMATTERS.get(action)
    lines: list[str] = []
    shown: set[str] = set()
    if formatter is not None:
        sentence, used, extra = formatter(details, names)
        lines = [line for line in (sentence, *extra) if line]
        shown = used
    rest = readable({k: v for k, v in details.items() if k not in shown})
    if rest:
        lines.append(rest)
    return lines


def readable(details: Mapping[str, Any]) -> str:
    """Any details as "Label: value; Label: value" (empty values left out)."""
    parts = []
    for key, value in details.items():
        text = _value(value)
        if text:
            parts.append(f"{_label(key)}: {text}")
    return "; ".join(parts)


def _label(key: str) -> str:
    return _LABELS.get(key) or key.replace("_", " ").replace(".", " ").strip().capitalize()


def _value(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return ", ".join(t for t in (_value(v) for v in value) if t)
    if isinstance(value, dict):
        return ", ".join(f"{_label(k).lower()} {t}" for k, v in value.items() if (t := _value(v)))
    text = str(value)
    moment = _timestamp(text)
    return format_datetime(moment) if moment else text


def _timestamp(text: str) -> datetime | None:
    """An ISO timestamp written by the commands (`expires_at`, `started_at`), else None."""
    if len(text) < 19 or text[4] != "-" or "T" not in text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# One formatter per action: (sentence, keys it worded or hides, further lines).
Formatted = tuple[str, set[str], list[str]]


def _grant_credits(d: dict[str, Any], names: Names) -> Formatted:
    meter = str(d.get("meter") or "")
    text = f"Granted {_int(d.get('amount')):,} {names.meters.get(meter, meter)} credits"
    expires = _timestamp(str(d.get("expires_at") or ""))
    text += f", expiring {format_date(expires)}" if expires else ", no expiry"
    return text, {"meter", "amount", "expires_at", "transaction_id"}, []


def _plan(names: Names, slug: Any, interval: Any) -> str:
    name = names.plans.get(str(slug), str(slug or "?"))
    return f"{name} ({interval}ly)" if interval in ("month", "year") else name


def _change_plan(d: dict[str, Any], names: Names) -> Formatted:
    text = (
        f"{_plan(names, d.get('from_plan'), d.get('from_interval'))} → "
        f"{_plan(names, d.get('to_plan'), d.get('to_interval'))}, "
        + ("through Stripe" if d.get("through_stripe") else "set directly")
    )
    if d.get("result"):
        text += f" — {d['result']}"
    used = {"from_plan", "from_interval", "to_plan", "to_interval", "through_stripe", "result"}
    return text, used, []


def _result(d: dict[str, Any], _names: Names) -> Formatted:
    text = str(d.get("result") or "")
    if text and d.get("outcome") == "error":
        text = f"Failed: {text}"
    return text, {"result", "outcome"}, []


def _view_portal(d: dict[str, Any], _names: Names) -> Formatted:
    minutes = _int(d.get("minutes"))
    text = "Read-only view" + (f" for {minutes} minutes" if minutes else "")
    return text, {"read_only", "minutes"}, []


def _api_key(done: str) -> Callable[[dict[str, Any], Names], Formatted]:
    """The key's name and prefix are the entry's target; the details say its mode."""

    def formatter(d: dict[str, Any], _names: Names) -> Formatted:
        prefix = str(d.get("prefix") or "")
        mode = "Test" if prefix.startswith(TEST_PREFIX) else "Live"
        return f"{mode} key; {done}", {"name", "prefix"}, []

    return formatter


def _replay(d: dict[str, Any], _names: Names) -> Formatted:
    text = f"Status {d.get('before') or '?'} → {d.get('after') or '?'}"
    if d.get("error"):
        text += f" — error: {d['error']}"
    return text, {"type", "before", "after", "error"}, []


def _refund(what: str) -> Callable[[dict[str, Any], Names], Formatted]:
    def formatter(d: dict[str, Any], names: Names) -> Formatted:
        currency = str(d.get("currency") or "usd")
        paid = str(d.get("object") or "")
        label = (names.invoices.get(paid) or paid) if what == "invoice" else paid
        text = f"Refunded {format_money(_int(d.get('amount')), currency, cents=True)} of {what}"
        text += f" {label}" if label else ""
        reason = str(d.get("refund_reason") or "")
        if reason:
            text += f" — reason: {REASON_LABELS.get(reason, reason).lower()}"
        if d.get("credit_note_number"):
            text += f"; credit note {d['credit_note_number']}"
        used = {"object", "amount", "currency", "refund_reason", "credit_note_number", "mirror"}
        return text, used, []

    return formatter


def _reconcile_started(d: dict[str, Any], _names: Names) -> Formatted:
    return (f"Started by {d['process']}" if d.get("process") else "Started"), {"process"}, []


_RECONCILE_STATUS = {
    "ok": "No differences",
    "drift": "Differences found and repaired",
    "errors": "Finished with errors",
    "failed": "Failed",
}


def _reconcile_finished(d: dict[str, Any], _names: Names) -> Formatted:
    status = str(d.get("status") or "")
    # The counts are the entry's reason already; here the outcome and each difference.
    text = _RECONCILE_STATUS.get(status, status.capitalize() or "Finished")
    started, finished = (_timestamp(str(d.get(k) or "")) for k in ("started_at", "finished_at"))
    if started and finished:
        text += f", in {max(0, round((finished - started).total_seconds())):,} s"
    lines = [str(line) for line in d.get("drift") or []]
    lines += [f"Error: {line}" for line in d.get("errors") or []]
    used = {
        "status",
        "customers",
        "drift_count",
        "drift",
        "repaired",
        "error_count",
        "errors",
        "started_at",
        "finished_at",
    }
    return text, used, lines


_FORMATTERS: dict[str, Callable[[dict[str, Any], Names], Formatted]] = {
    "grant_credits": _grant_credits,
    "change_plan": _change_plan,
    "cancel": _result,
    "resume": _result,
    "view_portal": _view_portal,
    "api_key.create": _api_key("shown once, when it was made"),
    "api_key.revoke": _api_key("refused from then on"),
    "stripe_event.replay": _replay,
    "invoice.refund": _refund("invoice"),
    "payment.refund": _refund("credit pack payment"),
    "reconcile.started": _reconcile_started,
    "reconcile.finished": _reconcile_finished,
}


@dataclass(frozen=True)
class AuditRow:
    """One line of the audit page: the entry, and its people, target and details in words."""

    entry: AuditLog
    what: str  # the action's name ("Grant credits")
    who: str
    who_note: str  # "deleted user", "then <old email>", or ""
    target: str
    target_note: str  # the id under a name (external id, key prefix, event id), or ""
    target_url: str | None
    details: list[str]


def audit_row(row: AuditEntryRow, names: Names | None = None) -> AuditRow:
    entry = row.entry
    who, who_note = _who(entry, row.actor_now)
    target, note, url = _target(row)
    details = describe(entry.action, entry.details, names)
    what = ACTIONS.get(entry.action, entry.action)
    return AuditRow(entry, what, who, who_note, target, note, url, details)


def _who(entry: AuditLog, now: str | None) -> tuple[str, str]:
    recorded = entry.actor_email or ""
    if entry.actor_user_id is None:  # the system (daily reconcile): "system: daily reconcile"
        kind, _sep, what = recorded.partition(": ")
        return (kind.capitalize(), what) if what else (recorded or "System", "")
    if now is None:
        return recorded or "Deleted user", "deleted user" if recorded else ""
    return now, "" if now == recorded or not recorded else f"then {recorded}"


def _target(row: AuditEntryRow) -> tuple[str, str, str | None]:
    entry = row.entry
    kind, ident = entry.target_type, entry.target_id
    details = entry.details or {}
    if kind == "customer":
        url = f"{ADMIN}/customers/{path_segment(ident)}"
        if row.customer_deleted_at is not None:
            return "Deleted customer", ident, url
        label = row.customer_email or row.customer_name
        return (label, ident, url) if label else (ident, "", url)
    if kind == "api_key":
        name = details.get("name")
        label = f"API key “{name}”" if name else f"API key {ident}"
        prefix = details.get("prefix")
        return label, f"{prefix}…" if prefix else "", f"{ADMIN}/api-keys"
    if kind == "stripe_event":
        return (
            str(details.get("type") or "Stripe event"),
            ident,
            f"{ADMIN}/events/{path_segment(ident)}",
        )
    if kind == "reconcile":
        try:
            day = format_date(date.fromisoformat(ident))
        except ValueError:
            day = ident
        return "Daily reconcile", day, None
    return f"{kind.replace('_', ' ').capitalize()} {ident}", "", None
