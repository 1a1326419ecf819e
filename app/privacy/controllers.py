"""/account/delete (a confirm page that says what happens, then the deletion) and the data
export downloads (/account/export.json, /account/export/<kind>.csv)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.plugins.flash import flash
from litestar.response import Redirect, Stream, Template
from msgspec import Struct

from app.accounts.guards import current_user, requires_user
from app.accounts.sessions import renew_session
from app.accounts.throttle import LoginThrottle
from app.accounts.two_factor_controllers import CodeThrottle
from app.lib.clock import utcnow
from app.lib.errors import DomainError, NotFound
from app.privacy.deletion import AccountDeletion
from app.privacy.export import KINDS, DataExport
from app.web.downloads import download
from app.web.responses import PAGE_HEADERS

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
        user = current_user(request)
        assert user is not None
        preview = await account_deletion.preview(user.id)
        return Template(
            DELETE_PAGE,
            context={"preview": preview, "form": {}},
            headers=dict(PAGE_HEADERS),
        )

    @post("/delete")
    async def delete_account(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[DeleteForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        account_deletion: NamedDependency[AccountDeletion],
        login_throttle: NamedDependency[LoginThrottle],
    ) -> Template | Redirect:
        user = current_user(request)
        assert user is not None
        address = login_throttle.address(request.scope)
        codes = CodeThrottle(login_throttle)
        throttled = await login_throttle.check_login(user.email, address) or await codes.check(
            user.id, request.scope
        )
        try:
            if throttled is not None:
                raise DomainError(throttled.message)
            deleted = await account_deletion.delete(user.id, data.password, data.code, data.mode)
        except DomainError as exc:
            field = exc.extra.get("field")
            if throttled is None and field == "password":
                await login_throttle.login_failed(user.email, address)
            elif throttled is None and field == "code":
                await codes.failed(user.id, request.scope)
            preview = await account_deletion.preview(user.id)
            headers = dict(PAGE_HEADERS)
            if throttled is not None:
                headers["Retry-After"] = str(throttled.retry_after)
            return Template(
                DELETE_PAGE,
                context={
                    "preview": preview,
                    "form": {"mode": data.mode},
                    "error": exc.message,
                    "error_field": field,
                },
                status_code=429 if throttled else exc.status_code,
                headers=headers,
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
        user = current_user(request)
        assert user is not None
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
        user = current_user(request)
        assert user is not None
        kind = filename.removesuffix(".csv")
        if not filename.endswith(".csv") or kind not in KINDS:
            raise NotFound("There is no such export.")
        name = f"my-data-{kind}-{utcnow():%Y-%m-%d}.csv"
        return download(data_export.csv_chunks(user.id, kind), name)
