"""How the API keys domain's services are built (see app/composition.py)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from app.apikeys.service import ApiKeyService, key_prefix
from app.config import Settings


def provide_api_key_service(db_session: AsyncSession, settings: Settings) -> ApiKeyService:
    """New keys are `bp_test_` or `bp_live_` by the Stripe mode the portal runs in."""
    return ApiKeyService(db_session, key_prefix(settings.stripe_secret_key))
