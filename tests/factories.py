"""Rows made straight through the services, and logged-in clients without the login form.

For tests whose subject is not signing up or logging in: they get "a user with a customer",
"an admin", "an API key" in a few milliseconds, as the services make them (the signup and
login flows themselves are tested over HTTP in tests/integration/accounts).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from litestar import Litestar
from litestar.middleware.session.server_side import ServerSideSessionConfig
from litestar.security.session_auth import SessionAuth
from litestar.serialization import encode_json
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.auth import login_session
from app.accounts.models import UserSession
from app.accounts.service import AccountService, SignupInput
from app.accounts.user_sessions import hash_session_key, new_session_key
from app.apikeys.models import ApiKey
from app.apikeys.service import ApiKeyService, hash_key
from app.catalog.models import Catalog
from app.customers.models import Customer
from app.customers.service import CustomerInput, CustomerService
from app.db.engine import create_engine, create_session_factory

PASSWORD = "correct horse battery"
BASE_URL = "http://testserver.local"


@dataclass(frozen=True)
class UserRef:
    """A user as signup leaves them: with their customer (and its free subscription)."""

    id: int
    email: str
    password: str
    customer_id: int
    external_id: str
    public_id: str


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{secrets.token_hex(3)}@example.com"


async def make_user(
    session: AsyncSession,
    catalog: Catalog,
    email: str | None = None,
    *,
    name: str = "Ada",
    password: str = PASSWORD,
) -> UserRef:
    """A signed-up user (`AccountService.signup`: the user, their customer, the default plan)."""
    user = await AccountService(session, catalog).signup(
        SignupInput(email=email or unique_email(), password=password, name=name)
    )
    customer = await session.scalar(select(Customer).where(Customer.user_id == user.id))
    assert customer is not None
    return UserRef(
        user.id, user.email, password, customer.id, customer.external_id, customer.public_id
    )


async def make_admin(
    session: AsyncSession, catalog: Catalog, email: str | None = None, password: str = PASSWORD
) -> UserRef:
    """An admin as `billing-portal create-admin` makes one (a user without a customer)."""
    user, _ = await AccountService(session, catalog).ensure_admin(
        email or unique_email("admin"), password
    )
    return UserRef(user.id, user.email, password, 0, "", "")


async def make_api_customer(
    session: AsyncSession,
    catalog: Catalog,
    external_id: str = "cus_1",
    email: str | None = None,
    plan: str | None = None,
) -> Customer:
    """A customer as `POST /api/v1/customers` makes one (no user)."""
    customer, _ = await CustomerService(session, catalog).upsert(
        CustomerInput(
            external_id=external_id, email=email or f"{external_id}@example.com", plan=plan
        )
    )
    return customer


async def make_api_key(session: AsyncSession, name: str = "tests") -> str:
    """A new API key; its raw value (what `Authorization: Bearer` carries)."""
    _key, raw = await ApiKeyService(session).create(name)
    return raw


def api_key_in(database_url: str, name: str = "tests") -> str:
    """`make_api_key` from a synchronous test, in the database at `database_url` (a live
    server's): what `billing-portal create-api-key` does, without a process start."""

    async def make() -> str:
        async with database_session(database_url) as session:
            return await make_api_key(session, name)

    return asyncio.run(make())


def revoke_key_in(database_url: str, raw: str) -> None:
    """Revoke the key `raw` through the service from the test's own process (no server did
    it), in the database at `database_url`."""

    async def revoke() -> None:
        async with database_session(database_url) as session:
            key_id = await session.scalar(select(ApiKey.id).where(ApiKey.key_hash == hash_key(raw)))
            assert key_id is not None
            await ApiKeyService(session).revoke(key_id)

    asyncio.run(revoke())


def user_in(database_url: str, catalog: Catalog) -> UserRef:
    """`make_user` from a synchronous test, in the database at `database_url`."""

    async def make() -> UserRef:
        async with database_session(database_url) as session:
            return await make_user(session, catalog)

    return asyncio.run(make())


@asynccontextmanager
async def database_session(database_url: str) -> AsyncIterator[AsyncSession]:
    """A session on its own short-lived engine: for helpers that get only a client."""
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            yield session
    finally:
        await engine.dispose()


async def log_in(client: AsyncTestClient[Litestar], user_id: int) -> None:
    """Log `user_id` in on `client` as a login leaves it: the session `login_session` makes,
    in the app's session store under an id the store issued, carried by the session cookie,
    and its login row (`user_sessions`)."""
    key = new_session_key()
    async with database_session(client.app.state["settings"].database_url) as session:
        session.add(UserSession(user_id=user_id, key_hash=hash_session_key(key), ip="127.0.0.1"))
        await session.commit()
    config = _session_config(client.app)
    session_id = secrets.token_hex(config.session_id_bytes)
    store = config.get_store_from_app(client.app)
    await store.set(session_id, encode_json(login_session(user_id, key)), expires_in=config.max_age)
    client.cookies.set(config.key, session_id)


def _session_config(app: Litestar) -> ServerSideSessionConfig:
    """The server-side session config of the app's `SessionAuth` middleware."""
    for middleware in app.middleware:
        auth = getattr(middleware, "kwargs", {}).get("config")
        if isinstance(auth, SessionAuth) and isinstance(
            auth.session_backend_config, ServerSideSessionConfig
        ):
            return auth.session_backend_config
    raise AssertionError("the app has no server-side session auth")


async def log_in_new_user(
    client: AsyncTestClient[Litestar], email: str | None = None, *, name: str = "Ada"
) -> UserRef:
    """A new user, as signup makes them, logged in on `client` (in the app's database)."""
    async with database_session(client.app.state["settings"].database_url) as session:
        user = await make_user(session, client.app.state["catalog"], email, name=name)
    await log_in(client, user.id)
    return user


async def log_in_new_admin(client: AsyncTestClient[Litestar], email: str | None = None) -> UserRef:
    """A new admin logged in on `client`."""
    async with database_session(client.app.state["settings"].database_url) as session:
        user = await make_admin(session, client.app.state["catalog"], email)
    await log_in(client, user.id)
    return user
