"""Emulator settings: the portal's Settings plus a few emulator-only environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from app.config import Settings

API_VERSION = "2026-10-28.endive"  # the stripe SDK's pinned version


@dataclass(frozen=True)
class EmulatorOptions:
    db_path: Path
    port: int
    base_url: str
    webhook_url: str
    thin_webhook_url: str  # where thin (v2) event notifications go
    webhook_secret: str
    retry_seconds: float
    tick_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings, db_path: Path | None = None) -> EmulatorOptions:
        port = settings.stripe_emulator_port
        base_url = os.environ.get("STRIPE_EMULATOR_PUBLIC_URL") or f"http://127.0.0.1:{port}"
        return cls(
            db_path=db_path or settings.var_dir / "stripe-emulator.db",
            port=port,
            base_url=base_url.rstrip("/"),
            webhook_url=settings.public_url.rstrip("/") + "/webhooks/stripe",
            thin_webhook_url=os.environ.get("STRIPE_EMULATOR_THIN_EVENTS_URL")
            or settings.public_url.rstrip("/") + "/webhooks/stripe/thin",
            webhook_secret=settings.stripe_webhook_secret,
            retry_seconds=float(os.environ.get("STRIPE_EMULATOR_RETRY_SECONDS") or 5),
            tick_seconds=float(os.environ.get("STRIPE_EMULATOR_TICK_SECONDS") or 1),
        )
