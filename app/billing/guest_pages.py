"""The demo's guest pages (`/try`, shown while DEMO_MODE is on): a visitor without an account
gets a guest customer (plan `guest`, 5 AI requests that never reset), kept in a signed cookie,
runs fake AI requests against it, and signs up with the guest token, which carries the usage
over to the new account (app.metering.guests)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template

from app.accounts.guards import current_user
from app.accounts.guest_claim import GUEST_COOKIE
from app.accounts.throttle import LoginThrottle
from app.billing.views import TRY_METER, fake_answer, run_fake_request
from app.catalog.models import Catalog
from app.customers.models import Customer
from app.customers.service import CustomerInput, CustomerService
from app.customers.statuses import CONVERTED, GUEST_PLAN
from app.lib.errors import Conflict, DomainError, NotFound
from app.lib.signing import sign, unsign
from app.metering.guests import GuestService
from app.metering.service import MeteringService
from app.web.responses import redirect

_PURPOSE = "guest"
_COOKIE_SECONDS = 30 * 24 * 3600


class GuestPages:
    """The /try page's service; also signup's `guest_claim` (app.accounts.guest_claim)."""

    def __init__(
        self,
        catalog: Catalog,
        customers: CustomerService,
        metering: MeteringService,
        guests: GuestService,
        secret: str,
        demo_mode: bool,
    ) -> None:
        self.catalog = catalog
        self.customers = customers
        self.metering = metering
        self.guests = guests
        self.secret = secret
        self.demo_mode = demo_mode

    def token(self, customer: Customer) -> str:
        return sign(customer.external_id, self.secret, _PURPOSE)

    async def guest(self, token: str | None) -> Customer | None:
        """The guest a signed token names, while it is still a guest."""
        external_id = unsign(token, self.secret, _PURPOSE)
        if external_id is None:
            return None
        try:
            customer = await self.customers.get(external_id)
        except NotFound:
            return None
        subscription = await self.customers.subscription(customer)
        if subscription.plan_slug != GUEST_PLAN or subscription.status == CONVERTED:
            return None
        return customer

    async def start(self) -> Customer:
        """A new guest customer with an anonymous external id (committed)."""
        customer, _ = await self.customers.upsert(
            CustomerInput(external_id=f"guest_{uuid.uuid4().hex}", plan=GUEST_PLAN)
        )
        return customer

    async def counter(self, customer: Customer | None) -> tuple[int, int]:
        """(used, included) of the demo meter; a visitor without a guest yet has used none."""
        if customer is not None:
            for balance in await self.metering.balances_for(customer):
                if balance.code == TRY_METER:
                    return balance.used, balance.limit or 0
        plan = self.catalog.plan(GUEST_PLAN)
        quota = plan.quotas.get(TRY_METER) if plan is not None else None
        return 0, (quota.included or 0) if quota is not None else 0

    async def run(self, customer: Customer) -> tuple[bool, str]:
        if not await run_fake_request(self.metering, customer.external_id):
            return False, "You have used your free requests. Sign up to keep going."
        # The write committed on the writer's connection: a fresh snapshot for the counter.
        await self.customers.session.commit()
        return True, f"The fake AI answered: “{fake_answer()}” (1 AI request used)."

    async def claim(self, token: str, user_id: int) -> tuple[bool, str]:
        """Signup with a guest token: the guest's usage and credits go to the new account."""
        external_id = unsign(token, self.secret, _PURPOSE)
        target = await self.customers.for_user(user_id)
        if external_id is None or target is None:
            return False, "The guest link was not valid, so nothing was carried over."
        try:
            done = await self.guests.convert(external_id, target.external_id)
        except Conflict:
            return False, "Your guest usage was already carried over to an account."
        except DomainError:
            return False, "The guest link was not valid, so nothing was carried over."
        used = done.usage.get(TRY_METER, 0)
        return True, f"Your {used} AI request{'s' if used != 1 else ''} as a guest carried over."


def _guest_cookie(value: str | None) -> Cookie:
    return Cookie(
        key=GUEST_COOKIE,
        value=value or "",
        max_age=_COOKIE_SECONDS if value else 0,
        path="/",
        httponly=True,
        samesite="lax",
    )


class TryController(Controller):
    path = "/try"
    include_in_schema = False
    opt = {"public": True}  # for visitors without an account

    @get("/")
    async def try_page(
        self, request: Request[Any, Any, Any], guest_pages: NamedDependency[GuestPages]
    ) -> Template | Redirect:
        if not guest_pages.demo_mode:
            raise NotFound("The demo is only available in demo mode.")
        if current_user(request) is not None:
            return Redirect("/billing", status_code=303)
        token = request.cookies.get(GUEST_COOKIE)
        guest = await guest_pages.guest(token)
        used, limit = await guest_pages.counter(guest)
        response = Template(
            "billing/try.html",
            context={
                "used": used,
                "limit": limit,
                "used_up": used >= limit,
                "guest_token": token if guest is not None else None,
            },
        )
        if token and guest is None:  # converted or unknown: start afresh
            response.cookies.append(_guest_cookie(None))
        return response

    @post("/")
    async def run(
        self,
        request: Request[Any, Any, Any],
        guest_pages: NamedDependency[GuestPages],
        login_throttle: NamedDependency[LoginThrottle],
    ) -> Redirect:
        """Run one fake AI request as the visitor's guest (made on the first run)."""
        if not guest_pages.demo_mode:
            raise NotFound("The demo is only available in demo mode.")
        if current_user(request) is not None:
            return Redirect("/billing", status_code=303)
        guest = await guest_pages.guest(request.cookies.get(GUEST_COOKIE))
        if guest is None:
            throttled = await login_throttle.guest_attempt(login_throttle.address(request.scope))
            if throttled is not None:
                flash(request, throttled.message, category="error")
                return redirect(request, "/try")
            guest = await guest_pages.start()
        ok, message = await guest_pages.run(guest)
        flash(request, message, category="success" if ok else "error")
        response = redirect(request, "/try")
        response.cookies.append(_guest_cookie(guest_pages.token(guest)))
        return response
