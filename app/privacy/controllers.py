"""/account/delete (a confirm page that says what happens, then the deletion) and the data
export downloads (/account/export.json, /account/export/<kind>.csv)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Stream, Template
from msgspec import Struct

from app.accounts.guards import logged_in_user, requires_user
from app.accounts.password_confirm import Refusal, confirm_with_password
from app.accounts.sessions import renew_session
from app.accounts.throttle import LoginThrottle
from app.lib.clock import utcnow
from app.lib.errors import NotFound
from app.privacy.deletion import AccountDeletion
from app.privacy.export import KINDS, DataExport
from app.web.downloads import download
from app.web.forms import Form, form_page

DELETE_PAGE = "privacy/delete.html"


class DeleteForm(Struct):
    password: str = ""
    code: str = ""
    mode: str = ""


class AccountDataController(Controller):
    path = "/account"
    guards = [requires_user]
    include_in_schema = False

    @get("/delete")
    async def delete_page(
        self, request: Request[Any, Any, Any], account_deletion: NamedDependency[AccountDeletion]
    ) -> Template:
        user = logged_in_user(request)
        preview = await account_deletion.preview(user.id)
        return form_page(DELETE_PAGE, {"preview": preview, "form": {}})

    @post("/delete")
    async def delete_account(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[DeleteForm, Form],
        account_deletion: NamedDependency[AccountDeletion],
        login_throttle: NamedDependency[LoginThrottle],
    ) -> Template | Redirect:
        user = logged_in_user(request)
        deleted = await confirm_with_password(
            login_throttle,
            request.scope,
            user,
            lambda: account_deletion.delete(user.id, data.password, data.code, data.mode),
            wrong_login_field="password",
            wrong_code_field="code",
        )
        if isinstance(deleted, Refusal):
            context = {
                "preview": await account_deletion.preview(user.id),
                "form": {"mode": data.mode},
                "error": deleted.message,
                "error_field": deleted.field,
            }
            return form_page(
                DELETE_PAGE,
                context,
                status_code=deleted.status_code,
                retry_after=deleted.retry_after,
            )
        renew_session(request, {})  # this browser too: the account is gone
        ends = [
            f"{plan} ended now" if end is None else f"{plan} ends on {end:%Y-%m-%d}"
            for plan, end in deleted.ended
        ]
        message = f"Your account {deleted.email} is deleted."
        if ends:
            message += " Your subscription: " + "; ".join(ends) + "."
        flash(request, message, category="info")
        return Redirect("/login", status_code=303)

    @get("/export.json")
    async def export_json(
        self, request: Request[Any, Any, Any], data_export: NamedDependency[DataExport]
    ) -> Stream:
        user = logged_in_user(request)
        name = f"my-data-{utcnow():%Y-%m-%d}.json"
        return download(data_export.json_chunks(user.id), name, "application/json")

    @get("/export/{filename:str}")
    async def export_csv(
        self,
        request: Request[Any, Any, Any],
        filename: FromPath[str],
        data_export: NamedDependency[DataExport],
    ) -> Stream:
        """`/account/export/<kind>.csv`, kind: profile, usage, invoices or credits."""
        user = logged_in_user(request)
        kind = filename.removesuffix(".csv")
        if not filename.endswith(".csv") or kind not in KINDS:
            raise NotFound("There is no such export.")
        name = f"my-data-{kind}-{utcnow():%Y-%m-%d}.csv"
        return download(data_export.csv_chunks(user.id, kind), name)
