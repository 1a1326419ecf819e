"""Sign up, log in, log out: HTML forms that also work without JavaScript."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from msgspec import Struct

from app.accounts.auth import start_login
from app.accounts.flows import AccountFlows
from app.accounts.guards import current_user
from app.accounts.guest_claim import GUEST_COOKIE, GuestClaim
from app.accounts.second_step import begin_second_step
from app.accounts.service import LOGIN_FAILED, AccountService, SignupInput
from app.accounts.sessions import renew_session
from app.accounts.throttle import LoginThrottle
from app.accounts.two_factor import TwoFactorService
from app.accounts.user_sessions import SessionRegistry, login_key
from app.lib.errors import DomainError
from app.web.forms import Form, form_page, throttled_form

# The login and signup forms are answered without PAGE_HEADERS, as their pages are.
NO_HEADERS: dict[str, str] = {}


class LoginForm(Struct):
    email: str = ""
    password: str = ""
    next: str = ""


class SignupForm(Struct):
    email: str = ""
    password: str = ""
    name: str = ""
    next: str = ""
    # A signed guest token (the /try page's): the guest's usage carries over to the account.
    guest: str = ""


def safe_next(target: str | None, default: str = "/billing") -> str:
    """Only same-site paths; never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


class AuthController(Controller):
    include_in_schema = False

    @get("/", opt={"public": True})
    async def home(self, request: Request[Any, Any, Any]) -> Redirect:
        return Redirect("/billing" if current_user(request) else "/login")

    @get("/login")
    async def login_page(
        self, request: Request[Any, Any, Any], next: FromQuery[str] = "", email: FromQuery[str] = ""
    ) -> Template:
        form = {"email": email[:254]} if email else {}
        return Template("accounts/login.html", context={"next": safe_next(next), "form": form})

    @post("/login")
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[LoginForm, Form],
        account_service: NamedDependency[AccountService],
        login_throttle: NamedDependency[LoginThrottle],
        user_sessions: NamedDependency[SessionRegistry],
        two_factor: NamedDependency[TwoFactorService],
    ) -> Template | Redirect:
        address = login_throttle.address(request.scope)
        context: dict[str, Any] = {"next": safe_next(data.next), "form": {"email": data.email}}
        throttled = await login_throttle.check_login(data.email, address)
        if throttled is not None:
            return throttled_form("accounts/login.html", context, throttled, headers=NO_HEADERS)
        user = await account_service.authenticate(data.email, data.password)
        if user is None:
            await login_throttle.login_failed(data.email, address)
            context["error"] = LOGIN_FAILED
            return form_page("accounts/login.html", context, status_code=400, headers=NO_HEADERS)
        await login_throttle.login_succeeded(data.email, address)
        if await two_factor.is_on(user.id):  # not logged in until the code (second_step.py)
            return begin_second_step(request, user.id, safe_next(data.next))
        await start_login(request, user_sessions, user.id)
        return Redirect(safe_next(data.next), status_code=303)

    @get("/signup")
    async def signup_page(self, next: FromQuery[str] = "", guest: FromQuery[str] = "") -> Template:
        context = {"next": safe_next(next), "form": {}, "guest": guest[:512]}
        return Template("accounts/signup.html", context=context)

    @post("/signup")
    async def signup(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[SignupForm, Form],
        account_service: NamedDependency[AccountService],
        login_throttle: NamedDependency[LoginThrottle],
        user_sessions: NamedDependency[SessionRegistry],
        account_flows: NamedDependency[AccountFlows],
        guest_claim: NamedDependency[GuestClaim],
    ) -> Template | Redirect:
        address = login_throttle.address(request.scope)
        form = {"email": data.email, "name": data.name}
        # The guest token stays on the form whatever refuses it: its usage is not lost.
        context: dict[str, Any] = {
            "next": safe_next(data.next),
            "form": form,
            "guest": data.guest[:512],
        }
        throttled = await login_throttle.signup_attempt(address)
        if throttled is not None:
            return throttled_form("accounts/signup.html", context, throttled, headers=NO_HEADERS)
        try:
            user = await account_service.signup(
                SignupInput(email=data.email, password=data.password, name=data.name)
            )
        except DomainError as exc:
            field = exc.extra.get("field")
            context.update(error=exc.message, error_field=field)
            return form_page(
                "accounts/signup.html", context, status_code=exc.status_code, headers=NO_HEADERS
            )
        await start_login(request, user_sessions, user.id)
        user_id, email = user.id, user.email
        carried = None
        if data.guest:  # exactly once: a second signup with the token carries nothing
            carried = await guest_claim.claim(data.guest[:512], user_id)
        if await account_flows.send_verification(user_id):
            flash(
                request,
                f"Welcome! Your account is ready. We sent a link to {email} to confirm your email.",
                category="success",
            )
        else:
            flash(request, "Welcome! Your account is ready.", category="success")
        response = Redirect(safe_next(data.next), status_code=303)
        if carried is not None:
            flash(request, carried[1], category="success" if carried[0] else "info")
            response.delete_cookie(GUEST_COOKIE)
        return response

    @post("/logout", opt={"public": True})
    async def logout(
        self, request: Request[Any, Any, Any], user_sessions: NamedDependency[SessionRegistry]
    ) -> Redirect:
        await user_sessions.close(login_key(request))
        # A new, empty session (not none), so the goodbye message survives the redirect.
        renew_session(request, {})
        flash(request, "You are logged out.", category="info")
        return Redirect("/login", status_code=303)
