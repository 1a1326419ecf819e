"""The transaction rule's one helper: a service action that fails leaves its session clean.

Services own their transactions (docs/architecture.md, "Transactions"): an action commits what
it changed before it returns, and when it raises, `rolls_back_on_error` rolls back whatever it
had begun, so the caller (a controller rendering an error page, a job moving on) can use the
session again without touching it.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession


class HasSession(Protocol):
    session: AsyncSession


S = TypeVar("S", bound=HasSession)
P = ParamSpec("P")
R = TypeVar("R")


def rolls_back_on_error(
    method: Callable[Concatenate[S, P], Awaitable[R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(self, *args, **kwargs)
        except Exception:
            await self.session.rollback()
            raise

    functools.update_wrapper(run, method)
    return run
