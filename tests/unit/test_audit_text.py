"""Issue 21, item 11: the audit log in words: people by email, details as sentences."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app.admin.audit_text import Names, audit_row, describe, readable
from app.admin.commands import ACTIONS
from app.admin.models import AuditLog
from app.admin.repository import AuditEntryRow

NAMES = Names(
    meters={"ai_requests": "AI requests"},
    plans={"free": "Free", "pro": "Pro"},
    invoices={"in_123": "INV-0004"},
)


@pytest.mark.parametrize(
    ("action", "details", "lines"),
    [
        (
            "invoice.refund",
            {
                "object": "in_123",
                "amount": 1200,
                "currency": "usd",
                "refund_reason": "duplicate",
                "credit_note": "cn_1",
                "credit_note_number": "CN-0001",
                "refunds": ["re_1"],
                "mirror": "applied: invoice in_123 refunded 1200",
            },
            [
                "Refunded $12.00 of invoice INV-0004 — reason: duplicate payment; "
                "credit note CN-0001",
                "Credit note id: cn_1; Refunds: re_1",
            ],
        ),
        (
            "payment.refund",
            {"object": "cs_9", "amount": 500, "currency": "eur", "refund_reason": "fraudulent"},
            ["Refunded €5.00 of credit pack payment cs_9 — reason: fraudulent payment"],
        ),
        (
            "grant_credits",
            {
                "meter": "ai_requests",
                "amount": 1500,
                "expires_at": "2027-01-03T10:00:00+00:00",
                "grant_id": "cg_7",
                "transaction_id": "admin_x",
            },
            ["Granted 1,500 AI requests credits, expiring Jan 3, 2027", "Grant id: cg_7"],
        ),
        (
            "grant_credits",
            {"meter": "tokens", "amount": 10, "expires_at": None},
            ["Granted 10 tokens credits, no expiry"],
        ),
        (
            "change_plan",
            {
                "from_plan": "free",
                "from_interval": "month",
                "to_plan": "pro",
                "to_interval": "year",
                "through_stripe": False,
                "result": "Now on Pro (set directly).",
            },
            ["Free (monthly) → Pro (yearly), set directly — Now on Pro (set directly)."],
        ),
        ("cancel", {"result": "Stripe said no.", "outcome": "error"}, ["Failed: Stripe said no."]),
        ("view_portal", {"read_only": True, "minutes": 30}, ["Read-only view for 30 minutes"]),
        (
            "api_key.create",
            {"name": "Backend", "prefix": "bp_test_AbCdEf"},
            ["Test key; shown once, when it was made"],
        ),
        (
            "api_key.revoke",
            {"name": "Old", "prefix": "bp_live_AbCdEf"},
            ["Live key; refused from then on"],
        ),
        (
            "stripe_event.replay",
            {"type": "invoice.paid", "before": "failed", "after": "processed", "error": None},
            ["Status failed → processed"],
        ),
        (
            "reconcile.finished",
            {
                "status": "drift",
                "started_at": "2026-12-04T02:00:00+00:00",
                "finished_at": "2026-12-04T02:00:03+00:00",
                "customers": 12,
                "drift_count": 1,
                "drift": ["user_4: subscription differs from Stripe"],
                "repaired": True,
                "error_count": 0,
                "errors": [],
            },
            [
                "Differences found and repaired, in 3 s",
                "user_4: subscription differs from Stripe",
            ],
        ),
    ],
)
def test_each_action_reads_as_a_sentence(
    action: str, details: dict[str, Any], lines: list[str]
) -> None:
    assert describe(action, details, NAMES) == lines


def test_every_action_has_a_sentence() -> None:
    """A new action without one would fall back to "Label: value" pairs: add its formatter."""
    for action in ACTIONS:
        lines = describe(action, {"unused_key": 1})
        assert lines[-1] == "Unused key: 1"
        assert len(lines) == 2 or action in ("cancel", "resume"), action


def test_an_unknown_action_gets_readable_pairs_not_json() -> None:
    details = {
        "plan_slug": "pro",
        "seats": 12000,
        "notify": False,
        "at": "2026-12-18T14:05:00+00:00",
        "ids": ["a", "b"],
        "nested": {"old_value": 1},
        "empty": None,
    }
    [line] = describe("something.new", details)
    assert line == (
        "Plan slug: pro; Seats: 12,000; Notify: no; At: Dec 18, 2026, 14:05 UTC; Ids: a, b; "
        "Nested: old value 1"
    )
    assert "{" not in line and '"' not in line
    assert describe("something.new", {}) == [] and describe("grant_credits", None)
    assert readable({"a": ""}) == ""


def _entry(**fields: Any) -> AuditLog:
    values: dict[str, Any] = {
        "id": 1,
        "actor_user_id": 4,
        "actor_email": "admin@example.com",
        "action": "grant_credits",
        "target_type": "customer",
        "target_id": "user_4",
        "reason": "r",
        "details": {"meter": "tokens", "amount": 5},
        "created_at": datetime(2026, 12, 4, tzinfo=UTC),
    }
    return AuditLog(**{**values, **fields})


def test_people_are_named_by_email() -> None:
    row = audit_row(AuditEntryRow(_entry(), "ann@example.com", "Ann", None, "admin@example.com"))
    assert (row.what, row.who, row.who_note) == ("Grant credits", "admin@example.com", "")
    assert (row.target, row.target_note) == ("ann@example.com", "user_4")
    assert row.target_url == "/admin/billing/customers/user_4"


def test_gone_people_say_so() -> None:
    deleted = audit_row(AuditEntryRow(_entry(), None, None, datetime(2026, 12, 5), None))
    assert (deleted.who, deleted.who_note) == ("admin@example.com", "deleted user")
    assert (deleted.target, deleted.target_note) == ("Deleted customer", "user_4")
    renamed = audit_row(AuditEntryRow(_entry(), None, None, None, "new@example.com"))
    assert (renamed.who, renamed.who_note) == ("new@example.com", "then admin@example.com")
    assert (renamed.target, renamed.target_note) == ("user_4", "")  # no email on file


def test_other_targets_and_the_system() -> None:
    key = audit_row(
        AuditEntryRow(
            _entry(
                action="api_key.revoke",
                target_type="api_key",
                target_id="3",
                details={"name": "CI", "prefix": "bp_test_AbCdEf"},
            ),
            None,
            None,
            None,
            "admin@example.com",
        )
    )
    assert (key.target, key.target_note, key.target_url) == (
        "API key “CI”",
        "bp_test_AbCdEf…",
        "/admin/billing/api-keys",
    )
    run = audit_row(
        AuditEntryRow(
            _entry(
                actor_user_id=None,
                actor_email="system: daily reconcile",
                action="reconcile.started",
                target_type="reconcile",
                target_id="2026-12-04",
                details={"process": "web1:42"},
            ),
            None,
            None,
            None,
            None,
        )
    )
    assert (run.who, run.who_note) == ("System", "daily reconcile")
    assert (run.target, run.target_note, run.target_url) == ("Daily reconcile", "Dec 4, 2026", None)
    assert run.details == ["Started by web1:42"]
