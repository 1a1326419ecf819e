"""app/accounts/tokens.py on the database: single use (also when two requests race), expiry,
purpose, the newest link replacing the older ones, only the hash stored."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.accounts import tokens
from app.accounts.models import AccountToken
from app.accounts.tokens import Purpose, TokenState
from app.db.engine import create_session_factory, write_from_here
from app.lib import clock
from tests.factories import make_user


async def issued(engine: AsyncEngine, catalog, purpose: str = Purpose.PASSWORD_RESET) -> str:
    async with create_session_factory(engine)() as session:
        user = await make_user(session, catalog)
        await write_from_here(session)
        token, _ = await tokens.issue(session, purpose, user.id)
        await session.commit()
        return token


async def consume(engine: AsyncEngine, token: str, purpose: str = Purpose.PASSWORD_RESET):
    async with create_session_factory(engine)() as session:
        await write_from_here(session)
        row = await tokens.consume(session, purpose, token)
        await session.commit()
        return row


async def test_only_the_hash_is_stored(engine, catalog):
    token = await issued(engine, catalog)
    async with create_session_factory(engine)() as session:
        (row,) = await session.scalars(select(AccountToken))
        assert row.token_hash == tokens.hash_token(token) and token not in row.token_hash


async def test_two_requests_with_one_token_use_it_once(engine, catalog):
    token = await issued(engine, catalog)
    results = await asyncio.gather(*(consume(engine, token) for _ in range(4)))
    assert sum(row is not None for row in results) == 1
    async with create_session_factory(engine)() as session:
        assert (await tokens.find(session, Purpose.PASSWORD_RESET, token))[0] is TokenState.USED


async def test_another_purpose_or_a_late_use_gets_nothing(engine, catalog, monkeypatch):
    token = await issued(engine, catalog)
    assert await consume(engine, token, Purpose.VERIFY_EMAIL) is None
    later = clock.utcnow() + timedelta(hours=1)
    monkeypatch.setattr("app.accounts.tokens.utcnow", lambda: later)
    assert await consume(engine, token) is None
    monkeypatch.undo()
    assert await consume(engine, token) is not None


async def test_a_new_token_retires_the_unused_ones_of_its_purpose(engine, catalog):
    async with create_session_factory(engine)() as session:
        user = await make_user(session, catalog)
        await write_from_here(session)
        first, _ = await tokens.issue(session, Purpose.PASSWORD_RESET, user.id)
        other, _ = await tokens.issue(session, Purpose.VERIFY_EMAIL, user.id)
        second, _ = await tokens.issue(session, Purpose.PASSWORD_RESET, user.id, new_email=None)
        await session.commit()
    assert await consume(engine, first) is None
    assert await consume(engine, other, Purpose.VERIFY_EMAIL) is not None
    assert await consume(engine, second) is not None


async def test_a_custom_lifetime(engine, catalog, monkeypatch):
    async with create_session_factory(engine)() as session:
        user = await make_user(session, catalog)
        await write_from_here(session)
        token, row = await tokens.issue(
            session, "invitation", user.id, lifetime=timedelta(days=7), new_email="x@example.com"
        )
        await session.commit()
        assert row.new_email == "x@example.com"
    later = clock.utcnow() + timedelta(days=6)
    monkeypatch.setattr("app.accounts.tokens.utcnow", lambda: later)
    assert await consume(engine, token, "invitation") is not None
