"""Demo data for `billing-portal seed-demo`: idempotent, prints the logins."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.repository import UserRepository
from app.accounts.service import AccountService, SignupInput
from app.catalog.models import Catalog

DEMO_USERS = [
    ("user", "demo@example.com", "demo-password", "Demo User"),
    ("user", "pat@example.com", "demo-password", "Pat Example"),
]
DEMO_ADMIN = ("admin", "admin@example.com", "admin-password")


async def seed(session: AsyncSession, catalog: Catalog) -> list[tuple[str, str, str]]:
    accounts = AccountService(session, catalog)
    users = UserRepository(session)
    for _role, email, password, name in DEMO_USERS:
        if await users.by_email(email) is None:
            await accounts.signup(
                SignupInput(email=email, password=password, name=name, verified=True)
            )
    _role, email, password = DEMO_ADMIN
    if await users.by_email(email) is None:
        await accounts.ensure_admin(email, password)
    return [(role, email, password) for role, email, password, _ in DEMO_USERS] + [DEMO_ADMIN]
