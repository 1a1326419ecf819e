"""A team page action refused by the service: flashed, back to the team page; a member the URL
names that is not there stays a 404 (app/organizations/controllers.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from litestar.response import Redirect

from app.lib.errors import Conflict, NotFound
from app.organizations.controllers import TEAM_PAGE, _act, _attempt


def request() -> Any:
    return SimpleNamespace(session={})


async def raising(exc: Exception) -> None:
    raise exc


async def answer() -> str:
    return "invited"


async def test_a_done_action_returns_its_result_and_flashes_nothing() -> None:
    req = request()
    assert await _attempt(req, answer()) == "invited"
    assert req.session == {}


async def test_a_refusal_is_flashed_and_leads_to_the_team_page() -> None:
    req = request()
    back = await _attempt(req, raising(Conflict("Already a member.")))
    assert isinstance(back, Redirect) and back.status_code == 303
    assert back.url == TEAM_PAGE
    assert req.session["_messages"] == [{"message": "Already a member.", "category": "error"}]


async def test_not_found_is_flashed_unless_it_is_the_404() -> None:
    req = request()
    assert isinstance(await _attempt(req, raising(NotFound("No such member."))), Redirect)
    with pytest.raises(NotFound):
        await _attempt(req, raising(NotFound("No such member.")), not_found_is_404=True)
    with pytest.raises(NotFound):
        await _act(req, raising(NotFound("No such member.")), "Removed.")
    assert len(req.session["_messages"]) == 1


async def test_an_action_on_a_member_says_so_when_done() -> None:
    req = request()
    done = await _act(req, answer(), "The member was removed.")
    assert done.url == TEAM_PAGE
    assert req.session["_messages"] == [
        {"message": "The member was removed.", "category": "success"}
    ]
