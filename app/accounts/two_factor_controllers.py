"""Two-factor login pages: the login's second step (/login/two-factor) and the settings
(/account/two-factor: turn on with a QR code, new recovery codes, turn off). HTML forms that
work without JavaScript; the rules are in app/accounts/two_factor.py and totp.py."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from msgspec import Struct

from app.accounts.auth import start_login
from app.accounts.guards import TwoFactorRequired, logged_in_user, requires_user
from app.accounts.second_step import SECOND_STEP_PATH, pending_login
from app.accounts.sessions import renew_session
from app.accounts.throttle import CodeThrottle, LoginThrottle
from app.accounts.two_factor import TwoFactorService
from app.accounts.user_sessions import SessionRegistry
from app.lib.errors import DomainError
from app.web.forms import Form, form_page, throttled_form

SETTINGS_PATH = "/account/two-factor"
SETTINGS_PAGE = "accounts/two_factor.html"
LOGIN_PAGE = "accounts/two_factor_login.html"


class CodeForm(Struct):
    code: str = ""


class DisableForm(Struct):
    password: str = ""
    code: str = ""


def two_factor_required(request: Request[Any, Any, Any], exc: TwoFactorRequired) -> Redirect:
    """An admin page refused under REQUIRE_ADMIN_2FA: to the two-factor settings."""
    flash(request, str(exc.detail), category="info")
    headers = request.app.state.get("page_headers", {})
    return Redirect(SETTINGS_PATH, status_code=303, headers=headers)


def _page(template: str, status_code: int = 200, **context: Any) -> Template:
    return form_page(template, context, status_code=status_code)


async def _settings_page(
    two_factor: TwoFactorService, user_id: int, status_code: int = 200, **context: Any
) -> Template:
    """The settings page, with the user's two-factor status (and a refused form's errors)."""
    status = await two_factor.status(user_id)
    return _page(SETTINGS_PAGE, status_code=status_code, status=status, **context)


class SecondStepController(Controller):
    """The login's second step: reachable without a login (under /login, a public path)."""

    path = SECOND_STEP_PATH
    include_in_schema = False

    @get("/")
    async def code_page(self, request: Request[Any, Any, Any]) -> Template | Redirect:
        if pending_login(request) is None:
            return _expired(request)
        return _page(LOGIN_PAGE)

    @post("/")
    async def submit_code(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[CodeForm, Form],
        two_factor: NamedDependency[TwoFactorService],
        login_throttle: NamedDependency[LoginThrottle],
        user_sessions: NamedDependency[SessionRegistry],
    ) -> Template | Redirect:
        pending = pending_login(request)
        if pending is None:
            return _expired(request)
        user_id: int = pending["user_id"]
        throttle = CodeThrottle(login_throttle)
        throttled = await throttle.check(user_id, request.scope)
        if throttled is not None:
            return throttled_form(LOGIN_PAGE, {}, throttled)
        kind = await two_factor.use_code(user_id, data.code)
        if kind is None:
            await throttle.failed(user_id, request.scope)
            error = "That code is not right, or was already used."
            return _page(LOGIN_PAGE, status_code=400, error=error)
        await throttle.succeeded(user_id, request.scope)
        org_id = pending.get("org")
        await start_login(
            request, user_sessions, user_id, org_id if isinstance(org_id, int) else None
        )
        if kind == "recovery":
            left = (await two_factor.status(user_id)).recovery_codes_left
            flash(
                request,
                f"You used a recovery code; {left} left. New ones: Account, Two-factor login.",
                category="info",
            )
        return Redirect(str(pending.get("next") or "/billing"), status_code=303)


def _expired(request: Request[Any, Any, Any]) -> Redirect:
    renew_session(request, {})
    flash(request, "Your login took too long or has ended. Log in again.", category="info")
    return Redirect("/login", status_code=303)


class TwoFactorSettingsController(Controller):
    path = SETTINGS_PATH
    guards = [requires_user]
    include_in_schema = False

    @get("/")
    async def settings_page(
        self, request: Request[Any, Any, Any], two_factor: NamedDependency[TwoFactorService]
    ) -> Template:
        user = logged_in_user(request)
        return await _settings_page(two_factor, user.id)

    @get("/summary")
    async def summary(
        self, request: Request[Any, Any, Any], two_factor: NamedDependency[TwoFactorService]
    ) -> Template:
        """The account page's section (loaded by htmx; a link without JavaScript)."""
        user = logged_in_user(request)
        status = await two_factor.status(user.id)
        return _page("accounts/_two_factor_status.html", status=status)

    @post("/setup")
    async def start_setup(
        self, request: Request[Any, Any, Any], two_factor: NamedDependency[TwoFactorService]
    ) -> Redirect:
        user = logged_in_user(request)
        try:
            await two_factor.start_enrolment(user.id, user.email)
        except DomainError as exc:
            flash(request, exc.message, category="info")
            return Redirect(SETTINGS_PATH, status_code=303)
        return Redirect(f"{SETTINGS_PATH}/setup", status_code=303)

    @get("/setup")
    async def setup_page(
        self, request: Request[Any, Any, Any], two_factor: NamedDependency[TwoFactorService]
    ) -> Template | Redirect:
        user = logged_in_user(request)
        enrolment = await two_factor.pending_enrolment(user.id, user.email)
        if enrolment is None:
            return Redirect(SETTINGS_PATH, status_code=303)
        return _page("accounts/two_factor_setup.html", enrolment=enrolment)

    @post("/confirm")
    async def confirm(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[CodeForm, Form],
        two_factor: NamedDependency[TwoFactorService],
        login_throttle: NamedDependency[LoginThrottle],
    ) -> Template | Redirect:
        user = logged_in_user(request)
        enrolment = await two_factor.pending_enrolment(user.id, user.email)
        if enrolment is None:
            return Redirect(SETTINGS_PATH, status_code=303)
        throttle = CodeThrottle(login_throttle)
        try:
            codes = await throttle.run(
                user.id, request.scope, lambda: two_factor.confirm(user.id, data.code)
            )
        except DomainError as exc:
            return _page(
                "accounts/two_factor_setup.html",
                status_code=exc.status_code,
                enrolment=enrolment,
                error=exc.message,
            )
        return _page("accounts/two_factor_codes.html", codes=codes, first=True)

    @post("/recovery-codes")
    async def new_recovery_codes(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[CodeForm, Form],
        two_factor: NamedDependency[TwoFactorService],
        login_throttle: NamedDependency[LoginThrottle],
    ) -> Template:
        user = logged_in_user(request)
        throttle = CodeThrottle(login_throttle)
        try:
            codes = await throttle.run(
                user.id, request.scope, lambda: two_factor.new_recovery_codes(user.id, data.code)
            )
        except DomainError as exc:
            errors = {"codes": exc.message}
            return await _settings_page(two_factor, user.id, exc.status_code, errors=errors)
        return _page("accounts/two_factor_codes.html", codes=codes, first=False)

    @post("/disable")
    async def disable(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[DisableForm, Form],
        two_factor: NamedDependency[TwoFactorService],
        login_throttle: NamedDependency[LoginThrottle],
    ) -> Template | Redirect:
        user = logged_in_user(request)
        throttle = CodeThrottle(login_throttle)
        try:
            await throttle.run(
                user.id,
                request.scope,
                lambda: two_factor.disable(user.id, data.password, data.code),
            )
        except DomainError as exc:
            errors = {"disable": exc.message}
            return await _settings_page(two_factor, user.id, exc.status_code, errors=errors)
        flash(request, "Two-factor login is off.", category="success")
        return Redirect(SETTINGS_PATH, status_code=303)
