"""Requests on their way to the usage writer.

A usage request spends most of its time in the web stack (reading and decoding its body,
validating) before it puts its operations on the writer's queue. Under load, while the writer
gathers a transaction, dozens of such requests are a few event-loop turns away from joining
it. Counting them lets the writer wait exactly as long as requests already under way need to
arrive, and no longer when there are none: the idea behind PostgreSQL's `commit_delay` with
`commit_siblings`, without the fixed delay.
"""

from __future__ import annotations

from contextvars import ContextVar


class _Ticket:
    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = True


class Arrivals:
    """How many requests of this process will put operations on the writer's queue soon."""

    def __init__(self) -> None:
        self.pending = 0
        self._ticket: ContextVar[_Ticket | None] = ContextVar("usage_arrival", default=None)

    def expect(self) -> _Ticket:
        """Count the current request (its task and what it awaits) until it `arrived()` or
        `done()`."""
        ticket = _Ticket()
        self.pending += 1
        self._ticket.set(ticket)
        return ticket

    def arrived(self) -> None:
        """The current request's operations are on the queue (no-op for uncounted callers)."""
        ticket = self._ticket.get()
        if ticket is not None and ticket.open:
            ticket.open = False
            self.pending -= 1

    def done(self, ticket: _Ticket) -> None:
        """The request ended, whether or not it reached the queue (a 4xx, a disconnect)."""
        if ticket.open:
            ticket.open = False
            self.pending -= 1


# One per process, like the writer's queue: the count is only a hint for how long to gather,
# so requests of several apps in one process (tests) sharing it cost at most a few loop turns.
ARRIVALS = Arrivals()
