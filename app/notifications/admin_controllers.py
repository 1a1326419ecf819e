"""`/admin/billing/outbox`: every email the portal sent or will send (admins only).

With `SMTP_URL` unset the emails are only logged, so this page is where a demo shows them.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, MediaType, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Template

from app.accounts.guards import requires_admin
from app.notifications.models import STATUSES
from app.notifications.service import PAGE_SIZE, NotificationService
from app.web.responses import page
from app.web.security_headers import EMAIL_PREVIEW_HEADERS

PageParam = Annotated[str, QueryParameter(name="page")]


class OutboxAdminController(Controller):
    path = "/admin/billing/outbox"
    guards = [requires_admin]
    include_in_schema = False

    @get("/")
    async def index(
        self,
        request: Request[Any, Any, Any],
        notification_service: NamedDependency[NotificationService],
        status: FromQuery[str] = "",
        page_number: PageParam = "1",
    ) -> Template:
        status = status if status in STATUSES else ""
        number = int(page_number) if page_number.isdigit() and int(page_number) > 0 else 1
        rows = await notification_service.outbox(status, number)
        context = {
            "emails": rows[:PAGE_SIZE],
            "has_next": len(rows) > PAGE_SIZE,
            "page_number": number,
            "status": status,
            "statuses": STATUSES,
            "counts": await notification_service.outbox_counts(),
            "smtp_configured": bool(request.app.state.settings.smtp_url),
        }
        return page(request, "admin/outbox.html", context)

    @get("/{message_id:int}")
    async def detail(
        self,
        request: Request[Any, Any, Any],
        notification_service: NamedDependency[NotificationService],
        message_id: FromPath[int],
    ) -> Template:
        message = await notification_service.message(message_id)
        return page(request, "admin/outbox_message.html", {"message": message})

    @get("/{message_id:int}/html", media_type=MediaType.HTML)
    async def html_body(
        self, notification_service: NamedDependency[NotificationService], message_id: FromPath[int]
    ) -> Response[str]:
        """The email's HTML alone, for the frame on the detail page."""
        message = await notification_service.message(message_id)
        headers = {**EMAIL_PREVIEW_HEADERS, "Cache-Control": "no-store"}
        return Response(message.html_body, media_type=MediaType.HTML, headers=headers)
