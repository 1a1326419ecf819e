"""What a form sent is quoted back in a message only in part: a field can hold anything."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from app.lib.errors import quoted
from tests.integration.stripe.conftest import Emulator, flashes, login_new_user, post_form


def test_quoted_cuts_long_values() -> None:
    assert quoted("pro") == "'pro'"
    long = quoted("x" * 100_000)
    assert len(long) == 40 and long.endswith("…")


async def test_an_unknown_plan_is_named_but_not_echoed_in_full(
    client: AsyncTestClient[Litestar], emulator: Emulator
) -> None:
    await login_new_user(client, "echo@example.com")
    response = await post_form(
        client, "/billing/checkout", {"plan": "y" * 100_000, "interval": "month"}
    )
    page = await client.get(response.headers["location"])
    [message] = [text for text in flashes(page.text) if "Unknown plan" in text]
    assert len(message) < 80, message
    assert len(page.text) < 50_000
