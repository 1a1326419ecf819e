"""The account pages: a forgotten password, the links sent by email, and /account (email,
password, sessions). HTML forms that work without JavaScript; the rules are in
app/accounts/flows.py (docs/accounts.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from msgspec import Struct

from app.accounts.controllers import safe_next
from app.accounts.flows import AccountFlows, LinkRefused
from app.accounts.guards import current_user, requires_user
from app.accounts.sessions import renew_session
from app.accounts.throttle import LoginThrottle, Throttled
from app.accounts.tokens import Purpose
from app.accounts.user_sessions import SESSION_KEY, SessionRegistry
from app.accounts.verification import verification_page
from app.lib.errors import DomainError
from app.web.responses import PAGE_HEADERS

T = TypeVar("T")
ACCOUNT = "/account"
# A link's page: its token is in the URL, so no Referer carries it elsewhere; never cached.
LINK_HEADERS = {**PAGE_HEADERS, "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class ForgotForm(Struct):
    email: str = ""


class NewPasswordForm(Struct):
    password: str = ""


class EmailChangeForm(Struct):
    email: str = ""
    current_password: str = ""


class PasswordChangeForm(Struct):
    current_password: str = ""
    new_password: str = ""


class NextForm(Struct):
    next: str = ""


def _throttled(template: str, throttled: Throttled, context: dict[str, Any]) -> Template:
    return Template(
        template,
        context={**context, "error": throttled.message},
        status_code=429,
        headers={**PAGE_HEADERS, "Retry-After": str(throttled.retry_after)},
    )


def _refused(refused: LinkRefused) -> Template:
    return Template(
        "accounts/link_refused.html",
        context={"message": refused.message},
        status_code=refused.status_code,
        headers=dict(LINK_HEADERS),
    )


def _session_key(request: Request[Any, Any, Any]) -> str | None:
    session = request.scope.get("session")
    key = session.get(SESSION_KEY) if isinstance(session, dict) else None
    return key if isinstance(key, str) else None


def _after_link(request: Request[Any, Any, Any]) -> str:
    """Where a confirmed link leads: the account page for a browser that is logged in (public
    routes are not authenticated, so the session says), else the login."""
    session = request.scope.get("session")
    return ACCOUNT if isinstance(session, dict) and session.get("user_id") else "/login"


class RecoveryController(Controller):
    """Reachable without a login: the forgotten password and the links sent by email."""

    include_in_schema = False
    opt = {"public": True}

    @get("/forgot")
    async def forgot_page(self) -> Template:
        return Template("accounts/forgot.html", context={"form": {}}, headers=dict(PAGE_HEADERS))

    @post("/forgot")
    async def forgot(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[ForgotForm, Form],
        account_flows: NamedDependency[AccountFlows],
        login_throttle: NamedDependency[LoginThrottle],
    ) -> Template:
        form = {"email": data.email}
        if not data.email.strip():
            return Template(
                "accounts/forgot.html",
                context={"form": form, "error": "Enter your email address."},
                status_code=422,
                headers=dict(PAGE_HEADERS),
            )
        address = login_throttle.address(request.scope)
        throttled = await login_throttle.email_link_attempt("reset", data.email, address)
        if throttled is not None:
            return _throttled("accounts/forgot.html", throttled, {"form": form})
        sent = await account_flows.request_password_reset(data.email)
        return Template(
            "accounts/forgot.html",
            context={"form": form, "sent": sent},
            headers=dict(PAGE_HEADERS),
        )

    @get("/reset/{token:str}")
    async def reset_page(
        self, token: FromPath[str], account_flows: NamedDependency[AccountFlows]
    ) -> Template:
        try:
            await account_flows.check_reset_link(token)
        except LinkRefused as refused:
            return _refused(refused)
        return Template("accounts/reset.html", context={"token": token}, headers=LINK_HEADERS)

    @post("/reset/{token:str}")
    async def reset(
        self,
        request: Request[Any, Any, Any],
        token: FromPath[str],
        data: Annotated[NewPasswordForm, Form],
        account_flows: NamedDependency[AccountFlows],
    ) -> Template | Redirect:
        try:
            user = await account_flows.reset_password(token, data.password)
        except LinkRefused as refused:
            return _refused(refused)
        except DomainError as exc:
            return Template(
                "accounts/reset.html",
                context={"token": token, "error": exc.message},
                status_code=exc.status_code,
                headers=LINK_HEADERS,
            )
        # Every login of the user has ended, this browser's included: it logs in anew.
        renew_session(request, {})
        flash(request, "Your password is changed. Log in with it.", category="success")
        return Redirect("/login?" + urlencode({"email": user.email}), status_code=303)

    @get("/verify/{token:str}")
    async def link_page(
        self, token: FromPath[str], account_flows: NamedDependency[AccountFlows]
    ) -> Template:
        """A verification or email change link: a button confirms it (a mail scanner that
        opens the link changes nothing)."""
        try:
            purpose, email = await account_flows.link_purpose(token)
        except LinkRefused as refused:
            return _refused(refused)
        context = {"token": token, "purpose": str(purpose), "email": email}
        return Template("accounts/confirm_link.html", context=context, headers=LINK_HEADERS)

    @post("/verify/{token:str}")
    async def confirm_link(
        self,
        request: Request[Any, Any, Any],
        token: FromPath[str],
        account_flows: NamedDependency[AccountFlows],
    ) -> Template | Redirect:
        try:
            purpose, _email = await account_flows.link_purpose(token)
            if purpose is Purpose.CHANGE_EMAIL:
                changed = await account_flows.confirm_email_change(token)
                message = f"Your email address is now {changed.email}."
                if not changed.stripe_synced:
                    message += " Stripe could not be told yet; your invoices may go to the old one."
            else:
                await account_flows.verify_email(token)
                message = "Thank you: your email address is confirmed."
        except LinkRefused as refused:
            return _refused(refused)
        except DomainError as exc:
            flash(request, exc.message, category="error")
            return Redirect(_after_link(request), status_code=303)
        flash(request, message, category="success")
        return Redirect(_after_link(request), status_code=303)


class AccountController(Controller):
    """/account: the logged-in user's email, password and sessions (one template include per
    section: templates/accounts/account.html)."""

    path = ACCOUNT
    guards = [requires_user]
    include_in_schema = False

    async def _page(
        self,
        request: Request[Any, Any, Any],
        user_sessions: SessionRegistry,
        *,
        status_code: int = 200,
        **context: Any,
    ) -> Template:
        user = current_user(request)
        assert user is not None
        sessions = await user_sessions.active(user.id, _session_key(request))
        return Template(
            "accounts/account.html",
            context={"account": user, "sessions": sessions, "forms": {}, **context},
            status_code=status_code,
            headers=dict(PAGE_HEADERS),
        )

    @get("/")
    async def account_page(
        self, request: Request[Any, Any, Any], user_sessions: NamedDependency[SessionRegistry]
    ) -> Template:
        return await self._page(request, user_sessions)

    @get("/verify-required")
    async def verify_required(self, request: Request[Any, Any, Any]) -> Template:
        return verification_page(request)

    @post("/verify/resend")
    async def resend_verification(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[NextForm, Form],
        account_flows: NamedDependency[AccountFlows],
        login_throttle: NamedDependency[LoginThrottle],
    ) -> Redirect:
        user = current_user(request)
        assert user is not None
        back = safe_next(data.next, ACCOUNT)
        address = login_throttle.address(request.scope)
        throttled = await login_throttle.email_link_attempt("verify", user.email, address)
        if throttled is not None:
            flash(request, throttled.message, category="error")
        elif await account_flows.send_verification(user.id):
            flash(request, f"We sent a new link to {user.email}.", category="success")
        else:
            flash(request, "Your email address is already confirmed.", category="info")
        return Redirect(back, status_code=303)

    async def _with_current_password(
        self,
        request: Request[Any, Any, Any],
        user_sessions: SessionRegistry,
        login_throttle: LoginThrottle,
        section: str,
        action: Callable[[], Awaitable[T]],
        *,
        link_purpose: str | None = None,
        forms: dict[str, Any] | None = None,
    ) -> T | Template:
        """Run `action` (which checks the current password) under the login limits: a wrong
        current password counts as a failed login; `link_purpose` also limits the emails
        with a link it sends. A refusal re-renders the page with the message in `section`."""
        user = current_user(request)
        assert user is not None
        address = login_throttle.address(request.scope)
        throttled = await login_throttle.check_login(user.email, address)
        if throttled is None and link_purpose is not None:
            throttled = await login_throttle.email_link_attempt(link_purpose, user.email, address)
        try:
            if throttled is not None:
                raise DomainError(throttled.message)
            return await action()
        except DomainError as exc:
            if exc.extra.get("field") == "current_password":
                await login_throttle.login_failed(user.email, address)
            page = await self._page(
                request,
                user_sessions,
                status_code=429 if throttled else exc.status_code,
                forms=forms or {},
                errors={section: exc.message},
            )
            if throttled is not None:
                page.headers["Retry-After"] = str(throttled.retry_after)
            return page

    @post("/email")
    async def change_email(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[EmailChangeForm, Form],
        account_flows: NamedDependency[AccountFlows],
        user_sessions: NamedDependency[SessionRegistry],
        login_throttle: NamedDependency[LoginThrottle],
    ) -> Template | Redirect:
        user = current_user(request)
        assert user is not None
        new_email = await self._with_current_password(
            request,
            user_sessions,
            login_throttle,
            "email",
            lambda: account_flows.request_email_change(user.id, data.current_password, data.email),
            link_purpose="email_change",
            forms={"email": {"email": data.email}},
        )
        if isinstance(new_email, Template):
            return new_email
        flash(
            request,
            f"We sent a link to {new_email}: your email changes once you open it. "
            f"We also told {user.email}.",
            category="success",
        )
        return Redirect(ACCOUNT, status_code=303)

    @post("/password")
    async def change_password(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[PasswordChangeForm, Form],
        account_flows: NamedDependency[AccountFlows],
        user_sessions: NamedDependency[SessionRegistry],
        login_throttle: NamedDependency[LoginThrottle],
    ) -> Template | Redirect:
        user = current_user(request)
        assert user is not None
        ended = await self._with_current_password(
            request,
            user_sessions,
            login_throttle,
            "password",
            lambda: account_flows.change_password(
                user.id,
                data.current_password,
                data.new_password,
                keep_session_key=_session_key(request),
            ),
        )
        if isinstance(ended, Template):
            return ended
        # This login stays, under a newly issued session id.
        renew_session(request, dict(request.session))
        others = f" {ended} other session{'s' if ended != 1 else ''} logged out." if ended else ""
        flash(request, f"Your password is changed.{others}", category="success")
        return Redirect(ACCOUNT, status_code=303)

    @post("/sessions/{session_id:int}/revoke")
    async def revoke_session(
        self,
        request: Request[Any, Any, Any],
        session_id: FromPath[int],
        user_sessions: NamedDependency[SessionRegistry],
    ) -> Redirect:
        user = current_user(request)
        assert user is not None
        if session_id == user.session_id:  # this very browser: a logout
            await user_sessions.close(_session_key(request))
            renew_session(request, {})
            flash(request, "You are logged out.", category="info")
            return Redirect("/login", status_code=303)
        if await user_sessions.revoke(user.id, session_id):
            flash(request, "That session is logged out.", category="success")
        return Redirect(ACCOUNT, status_code=303)

    @post("/sessions/revoke-others")
    async def revoke_other_sessions(
        self, request: Request[Any, Any, Any], user_sessions: NamedDependency[SessionRegistry]
    ) -> Redirect:
        user = current_user(request)
        assert user is not None
        ended = await user_sessions.revoke_all(user.id, except_key=_session_key(request))
        flash(
            request,
            f"Logged out everywhere else ({ended} session{'s' if ended != 1 else ''}).",
            category="success",
        )
        return Redirect(ACCOUNT, status_code=303)
