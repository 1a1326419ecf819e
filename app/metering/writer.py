"""Group commit for metering writes: the queue and the unit of work.

Concurrent requests put their operations on a queue; one task per process takes everything
waiting and runs one unit of work for all of it: load the meter state the operations touch
(SQLite: under BEGIN IMMEDIATE; PostgreSQL: row locks taken in a fixed order), apply each
operation with the metering rules (app.metering.rules) one after another against that state,
write the rows they produced, commit, and only then answer each request. The no-overdraft
rule holds exactly as if each operation had its own transaction, while the database sees one
commit per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.catalog.models import Catalog
from app.customers.statuses import CONVERTED, GUEST_PLAN
from app.db.changes import BALANCES, Gathered, announce
from app.db.engine import SyncWork
from app.db.page_versions import VERSIONS, announced_per_customer
from app.lib.clock import utcnow
from app.lib.errors import DomainError
from app.metering import batch_repository as batch_repo
from app.metering import repository as repo
from app.metering import rules, unlocked
from app.metering.arrivals import ARRIVALS
from app.metering.cache import BalanceCache
from app.metering.ops import (
    BY_CUSTOMER,
    BY_RESERVATION,
    GrantCredits,
    GrantResult,
    Op,
    RecordUsage,
    Reserve,
    Result,
    RevokeCredits,
    RevokeResult,
)
from app.metering.state import BatchState

log = structlog.get_logger()
MAX_BATCH = 1500
# Loop turns the writer waits at most for requests under way (see app.metering.arrivals).
_MAX_GATHER_ROUNDS = 100
_RETRIES = 3
# Tries of a PostgreSQL usage batch without locks when other writes come between its read and
# its write (app.metering.unlocked), before it takes the locks.
_UNLOCKED_ATTEMPTS = 3


def load(
    conn: Connection,
    catalog: Catalog,
    ops: list[Op],
    now: datetime,
    upgrade_url: str,
    look_up_events: bool = True,
) -> BatchState:
    """The meter state `ops` touch, locked for the transaction: their customers, the
    events, reservations and grants already stored under their transaction ids (events only
    when `look_up_events`), and a slot per (customer, meter) with its running total, credit
    lots and holds. (PostgreSQL reads plain usage batches without locks: app.metering.unlocked.)"""
    state = BatchState(now, upgrade_url)
    refs = [op.customer for op in ops if isinstance(op, BY_CUSTOMER)]
    state.reservations = batch_repo.reservations_by_public_id(
        conn, [op.reservation_id for op in ops if isinstance(op, BY_RESERVATION)]
    )
    state.add_plans(
        repo.customer_plans(
            conn,
            # A subscription finds its customer (whose external id comes with the row, for
            # the owner check); a customer id given with it needs no row of its own.
            external_ids=[
                r.external_customer_id
                for r in refs
                if r.external_customer_id and not r.external_subscription_id
            ],
            subscription_ids=[
                r.external_subscription_id for r in refs if r.external_subscription_id
            ],
            customer_ids=[row.customer_id for row in state.reservations.values()],
        )
    )
    _check_guests(conn, state)
    event_keys, reserve_keys, grant_keys, slot_keys = [], [], [], set()
    for op in ops:
        plan = state.plan_for(op)
        if plan is None:
            continue
        if isinstance(op, RecordUsage):
            event_keys.append((plan.id, op.transaction_id))
            slot_keys.add((plan.id, op.meter_code))
        elif isinstance(op, Reserve):
            reserve_keys.append((plan.id, op.transaction_id))
            slot_keys.add((plan.id, op.meter_code))
        elif isinstance(op, GrantCredits):
            grant_keys.append((plan.id, op.transaction_id))
            slot_keys.add((plan.id, op.meter_code))
        elif isinstance(op, RevokeCredits):
            grant_keys.append((plan.id, op.grant_transaction_id))
            slot_keys.add((plan.id, op.meter_code))
        else:
            row = state.reservations.get(op.reservation_id)
            if row is not None:
                event_keys.append((plan.id, row.transaction_id))
                slot_keys.add((plan.id, row.meter_code))
    state.events = batch_repo.existing_events(conn, event_keys) if look_up_events else {}
    state.reservations_by_tx = batch_repo.existing_reservations_by_tx(conn, reserve_keys)
    state.grants = batch_repo.existing_grants(conn, grant_keys)
    if any(isinstance(op, RevokeCredits) for op in ops):
        state.revoked = batch_repo.revoked_amounts(conn, [g.id for g in state.grants.values()])
    # A fixed lock order across processes, so two batches never wait on each other in a cycle.
    for customer_id, meter_code in sorted(slot_keys):
        if catalog.meter(meter_code) is None:
            continue
        plan = state.plans_by_id[customer_id]
        quota, period = rules.slot_period(catalog, plan, meter_code, now)
        total, lots, expired, held = batch_repo.lock_slot(
            conn, customer_id, meter_code, period, now
        )
        rules.open_slot(state, plan, meter_code, quota, period, total, lots, expired, held)
    return state


def _check_guests(conn: Connection, state: BatchState) -> None:
    """Guests of the batch: their status read again under a shared lock of their subscription
    row, before any slot is locked. A conversion (app.metering.guests) holds that row for update
    while it moves the guest's usage, so a batch either commits before it (its usage moves) or
    sees the guest converted and refuses (`guest_converted`): never usage left behind."""
    guests = [plan.id for plan in state.plans_by_id.values() if plan.plan_slug == GUEST_PLAN]
    if not guests:
        return
    statuses = batch_repo.guest_statuses(conn, guests)
    for customer_id, status in statuses.items():
        plan = state.plans_by_id[customer_id]
        if status != plan.status:
            state.add_plans([replace(plan, status=status)])
        if status == CONVERTED:
            state.converted[customer_id] = plan.external_id


def _apply(
    conn: Connection,
    catalog: Catalog,
    ops: list[Op],
    upgrade_url: str,
    now: datetime,
    look_up_events: bool = True,
) -> list[rules.Outcome]:
    state = load(conn, catalog, ops, now, upgrade_url, look_up_events)
    outcomes = rules.apply_all(state, ops)
    if not look_up_events:
        refused = rules.refused_events(state, ops, outcomes)
        if refused and batch_repo.existing_events(conn, refused):
            raise batch_repo.TransactionIdsUsed
    batch_repo.save(conn, state)
    return outcomes


async def apply_batch(
    work: SyncWork | AsyncEngine,
    catalog: Catalog,
    ops: list[Op],
    upgrade_url: str,
    now: datetime | None = None,
) -> list[rules.Outcome]:
    """Apply `ops` in one write transaction; outcomes in the same order. Committed on return."""
    if isinstance(work, AsyncEngine):
        work = SyncWork(work)
        try:
            return await _write(work, catalog, ops, upgrade_url, now or utcnow())
        finally:
            await work.close()
    return await _write(work, catalog, ops, upgrade_url, now or utcnow())


async def _write(
    work: SyncWork, catalog: Catalog, ops: list[Op], upgrade_url: str, now: datetime
) -> list[rules.Outcome]:
    # PostgreSQL: a batch of events assumes its transaction ids are new (a round trip less);
    # the insert skips a taken one and says so, and the batch then runs again, looking them up.
    # It is written without locks when it can be (app.metering.unlocked), tried again so when
    # another write came between its read and its write, and else with locks.
    if work.engine.dialect.name == "postgresql" and all(type(op) is RecordUsage for op in ops):
        try:
            # Behind PgBouncer the batch skips the unlocked way (SyncWork.on_driver_ok).
            for _attempt in range(_UNLOCKED_ATTEMPTS if work.on_driver_ok else 0):
                try:
                    return await work.on_driver(
                        unlocked.write_batch, catalog, ops, upgrade_url, now
                    )
                except unlocked.WriteConflict:
                    continue
                except unlocked.NeedsLocks:
                    break
            return await work.write(_apply, catalog, ops, upgrade_url, now, False)
        except batch_repo.TransactionIdsUsed:
            pass
    return await work.write(_apply, catalog, ops, upgrade_url, now)


_Item = tuple[Sequence[Op], "asyncio.Future[list[Result | BaseException]]"]


def _pages_changed(
    ops: list[Op], outcomes: list[Result | BaseException], touched: set[str]
) -> None:
    """Committed: the cached pages of every customer a batch named are stale (a failed
    operation too, to be safe; one named by reservation only and failed: everyone's)."""
    named = set(touched)
    for op, outcome in zip(ops, outcomes, strict=True):
        customer = getattr(op, "customer_external_id", None)
        if isinstance(customer, str):
            named.add(customer)
        elif isinstance(outcome, BaseException):
            VERSIONS.usage_changed(None)
    for customer in named:
        VERSIONS.usage_changed(customer)


class WriteFailed(DomainError):
    """An operation of a batch request that could not be written, alone, after retries:
    nothing of it was stored, while other operations of the request were."""

    status_code = 500
    code = "internal_error"

    def __init__(self) -> None:
        super().__init__("This item could not be saved; nothing of it was recorded. Retry it.")


class UsageWriter:
    """The per-process queue in front of `apply_batch`.

    A queue item is one request's operations (one, or a batch request's many) and one future
    for all their outcomes, so a request of a hundred events costs one wake-up, not a hundred.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        catalog: Catalog,
        upgrade_url: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.work = SyncWork(engine)
        self.balances = BalanceCache()
        # Other processes' balance caches hear of this process's usage through it.
        self.usage_changes = Gathered(engine, BALANCES)
        self.catalog = catalog
        self.upgrade_url = upgrade_url
        self.clock = clock
        # One queue and task per event loop: normally there is one loop per process, but a
        # test harness (or an embedding app) may drive the app from several.
        self._runners: dict[
            asyncio.AbstractEventLoop, tuple[asyncio.Queue[_Item], asyncio.Task[None]]
        ] = {}

    async def submit(self, op: Op) -> Result:
        (outcome,) = await self._enqueue([op])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def submit_many(self, ops: Sequence[Op]) -> list[Result | DomainError]:
        """Several operations at once (a batch request): one queue item, so they share one
        transaction; each has its own outcome. An error that is not a domain error raises only
        when none of them was written (so a 5xx means nothing of the request was committed);
        otherwise the failed ones are `WriteFailed` outcomes."""
        if not ops:
            return []
        outcomes = await self._enqueue(ops)
        failures = [
            o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, DomainError)
        ]
        if not failures:
            return outcomes  # type: ignore[return-value]
        if not any(isinstance(o, Result) for o in outcomes):
            # Nothing of the request was written: one error for all of it (a 5xx).
            raise failures[0]
        # Some operations were written (each failing one was tried alone, in its own
        # transaction, and rolled back): the others are answered as they went, and a failed
        # one is a rejected item, never a 5xx for a request that was partly committed.
        return [
            WriteFailed() if isinstance(o, BaseException) and not isinstance(o, DomainError) else o
            for o in outcomes
        ]

    def _enqueue(self, ops: Sequence[Op]) -> asyncio.Future[list[Result | BaseException]]:
        ARRIVALS.arrived()
        loop = asyncio.get_running_loop()
        runner = self._runners.get(loop)
        if runner is None or runner[1].done():
            for stale in [known for known in self._runners if known.is_closed()]:
                del self._runners[stale]
            queue: asyncio.Queue[_Item] = asyncio.Queue()
            runner = (queue, loop.create_task(self._run(queue), name="usage-writer"))
            self._runners[loop] = runner
        future: asyncio.Future[list[Result | BaseException]] = loop.create_future()
        runner[0].put_nowait((ops, future))  # the queue is unbounded
        return future

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for runner_loop, (_queue, task) in list(self._runners.items()):
            if runner_loop is loop:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            elif not runner_loop.is_closed():
                runner_loop.call_soon_threadsafe(task.cancel)
        self._runners.clear()
        await self.usage_changes.close()
        await self.work.close()

    async def _run(self, queue: asyncio.Queue[_Item]) -> None:
        # This task's writes are announced per customer (`_process`), not as any page's data.
        announced_per_customer()
        while True:
            items = [await queue.get()]
            size = len(items[0][0])
            # Let the requests already under way reach the queue before committing: each
            # yield runs everything ready on the loop once. Under load that turns a stream of
            # small transactions into a few large ones (a transaction's fixed cost, loading
            # plans and totals, is most of the price of a small one). The writer yields while
            # usage requests are known to be on their way (`ARRIVALS`) or the queue still grows,
            # at most _MAX_GATHER_ROUNDS times; when idle it costs one loop iteration.
            rounds = 0
            while True:
                grew = False
                while size < MAX_BATCH and not queue.empty():
                    item = queue.get_nowait()
                    items.append(item)
                    size += len(item[0])
                    grew = True
                if size >= MAX_BATCH or rounds == _MAX_GATHER_ROUNDS:
                    break
                if rounds and not grew and not ARRIVALS.pending:
                    break
                rounds += 1
                await asyncio.sleep(0)
            live = [item for item in items if not item[1].cancelled()]
            if live:
                await self._process(live)

    async def _process(self, items: list[_Item]) -> None:
        ops = [op for ops, _ in items for op in ops]
        outcomes = await self._outcomes(ops)
        touched = {o.customer_external_id for o in outcomes if not isinstance(o, BaseException)}
        self.balances.drop(touched)
        _pages_changed(ops, outcomes, touched)
        # Other processes hear of usage within milliseconds, off this path (no I/O here); of
        # credit grants before the request is answered.
        self.usage_changes.add(touched)
        grants: set[tuple[str, str | None]] = {
            (BALANCES, o.customer_external_id)
            for o in outcomes
            if type(o) is GrantResult or type(o) is RevokeResult
        }
        if grants:
            await announce(self.engine, grants)
        start = 0
        for item_ops, future in items:
            if not future.done():
                future.set_result(outcomes[start : start + len(item_ops)])
            start += len(item_ops)

    async def _outcomes(self, ops: list[Op]) -> list[Result | BaseException]:
        """Each operation's result or error, all committed on return."""
        error: BaseException = RuntimeError("metering batch failed after retries")
        for attempt in range(_RETRIES):
            try:
                applied = await apply_batch(
                    self.work, self.catalog, ops, self.upgrade_url, self.clock()
                )
            except (
                IntegrityError,
                OperationalError,
                DBAPIError,
                batch_repo.TransactionIdsUsed,
            ) as exc:
                # A race with another process (unique key, deadlock, serialization): nothing was
                # committed, so the whole batch can run again and will see the other's writes.
                log.warning("metering batch retried", attempt=attempt + 1, error=str(exc)[:200])
                continue
            except Exception as exc:
                log.exception("metering batch failed", size=len(ops))
                error = exc
                break
            return [result if failure is None else failure for result, failure in applied]  # type: ignore[misc]
        if len(ops) > 1:
            # Isolate the operation that fails: each one alone, in its own transaction.
            outcomes: list[Result | BaseException] = []
            for op in ops:
                outcomes += await self._outcomes([op])
            return outcomes
        return [error]


__all__ = ["UsageWriter", "apply_batch"]
