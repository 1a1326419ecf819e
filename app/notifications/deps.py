"""How the notifications domain's services are built (see app/composition.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog.models import Catalog
from app.config import Settings
from app.notifications.service import NotificationService


def provide_notification_service(
    db_session: AsyncSession, settings: Settings, catalog: Catalog
) -> NotificationService:
    return NotificationService(db_session, settings.public_url, catalog)
