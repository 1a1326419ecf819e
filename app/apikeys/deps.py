"""How the API keys domain's services are built (see app/composition.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.apikeys.service import ApiKeyService


def provide_api_key_service(db_session: AsyncSession) -> ApiKeyService:
    return ApiKeyService(db_session)
