"""What each role in an organization may do (docs/organizations.md has the table).

Roles are ordered: an owner may do everything a billing admin may, a billing admin everything a
member may. A route names the least role it needs (`requires_role`, app/organizations/guards.py).
"""

from __future__ import annotations

from app.customers.models import BILLING_ADMIN, MEMBER, OWNER, RANK, ROLES, Role
from app.lib.errors import ValidationFailed

ROLE_NAMES: dict[str, str] = {OWNER: "owner", BILLING_ADMIN: "billing admin", MEMBER: "member"}
# What a role is for, on the team page and in the invitation email.
ROLE_SUMMARIES: dict[str, str] = {
    OWNER: "everything, including the team and ownership",
    BILLING_ADMIN: "plans, checkout, cancel, payment methods, invoices, credits, billing details",
    MEMBER: "sees the plan and usage; nothing that costs money",
}
# Who to ask for what a role cannot do.
WHO_CAN: dict[str, str] = {OWNER: "an owner", BILLING_ADMIN: "an owner or a billing admin"}


def allows(role: str | None, minimum: str) -> bool:
    """True when `role` may do what needs at least `minimum`."""
    return role is not None and RANK.get(role, -1) >= RANK[minimum]


def role_name(role: str) -> str:
    return ROLE_NAMES.get(role, role)


def checked_role(raw: str, field: str = "role") -> Role:
    for role in ROLES:
        if raw == role:
            return role
    raise ValidationFailed(
        "Role must be one of owner, billing_admin or member.", code="invalid_role", field=field
    )
