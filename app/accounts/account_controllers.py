"""The account pages: a forgotten password, the links sent by email, and /account (email,
password, sessions). HTML forms that work without JavaScript; the rules are in
app/accounts/flows.py (docs/accounts.md)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from msgspec import Struct

from app.accounts.controllers import safe_next
from app.accounts.flows import AccountFlows, LinkRefused
from app.accounts.guards import logged_in_user, requires_user
from app.accounts.password_confirm import Refusal, confirm_with_password
from app.accounts.sessions import renew_session, session_value
from app.accounts.throttle import LoginThrottle
from app.accounts.tokens import Purpose
from app.accounts.user_sessions import SessionRegistry, login_key
from app.accounts.verification import verification_page
from app.lib.errors import DomainError
from app.web.forms import Form, form_page, throttled_form
from app.web.responses import PAGE_HEADERS

ACCOUNT = "/account"
# A link's page: its token is in the URL, so no Referer carries it elsewhere; never cached.
LINK_HEADERS = {**PAGE_HEADERS, "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


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


def _refused(refused: LinkRefused) -> Template:
    return Template(
        "accounts/link_refused.html",
        context={"message": refused.message},
        status_code=refused.status_code,
        headers=dict(LINK_HEADERS),
    )


def _after_link(request: Request[Any, Any, Any]) -> str:
    """Where a confirmed link leads: the account page for a browser that is logged in (public
    routes are not authenticated, so the session says), else the login."""
    return ACCOUNT if session_value(request, "user_id") else "/login"


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
            context = {"form": form, "error": "Enter your email address."}
            return form_page("accounts/forgot.html", context, status_code=422)
        address = login_throttle.address(request.scope)
        throttled = await login_throttle.email_link_attempt("reset", data.email, address)
        if throttled is not None:
            return throttled_form("accounts/forgot.html", {"form": form}, throttled)
        sent = await account_flows.request_password_reset(data.email)
        return form_page("accounts/forgot.html", {"form": form, "sent": sent})

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
            return form_page(
                "accounts/reset.html",
                {"token": token, "error": exc.message},
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
        retry_after: int | None = None,
        **context: Any,
    ) -> Template:
        user = logged_in_user(request)
        sessions = await user_sessions.active(user.id, login_key(request))
        return form_page(
            "accounts/account.html",
            {"account": user, "sessions": sessions, "forms": {}, **context},
            status_code=status_code,
            retry_after=retry_after,
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
        user = logged_in_user(request)
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

    async def _refused(
        self,
        request: Request[Any, Any, Any],
        user_sessions: SessionRegistry,
        section: str,
        refusal: Refusal,
        forms: dict[str, Any] | None = None,
    ) -> Template:
        """The page again, the refusal's message in `section` (and what was typed)."""
        return await self._page(
            request,
            user_sessions,
            status_code=refusal.status_code,
            retry_after=refusal.retry_after,
            forms=forms or {},
            errors={section: refusal.message},
        )

    @post("/email")
    async def change_email(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[EmailChangeForm, Form],
        account_flows: NamedDependency[AccountFlows],
        user_sessions: NamedDependency[SessionRegistry],
        login_throttle: NamedDependency[LoginThrottle],
    ) -> Template | Redirect:
        user = logged_in_user(request)
        new_email = await confirm_with_password(
            login_throttle,
            request.scope,
            user,
            lambda: account_flows.request_email_change(user.id, data.current_password, data.email),
            wrong_login_field="current_password",
            link_purpose="email_change",
        )
        if isinstance(new_email, Refusal):
            forms = {"email": {"email": data.email}}
            return await self._refused(request, user_sessions, "email", new_email, forms)
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
        user = logged_in_user(request)
        ended = await confirm_with_password(
            login_throttle,
            request.scope,
            user,
            lambda: account_flows.change_password(
                user.id,
                data.current_password,
                data.new_password,
                keep_session_key=login_key(request),
            ),
            wrong_login_field="current_password",
        )
        if isinstance(ended, Refusal):
            return await self._refused(request, user_sessions, "password", ended)
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
        user = logged_in_user(request)
        if session_id == user.session_id:  # this very browser: a logout
            await user_sessions.close(login_key(request))
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
        user = logged_in_user(request)
        ended = await user_sessions.revoke_all(user.id, except_key=login_key(request))
        flash(
            request,
            f"Logged out everywhere else ({ended} session{'s' if ended != 1 else ''}).",
            category="success",
        )
        return Redirect(ACCOUNT, status_code=303)
