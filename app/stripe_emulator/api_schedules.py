"""Subscription schedules (`/v1/subscription_schedules`)."""

from __future__ import annotations

from typing import Any

from app.stripe_emulator import schedules
from app.stripe_emulator.core import Emulator, paginate
from app.stripe_emulator.routing import ApiRequest, route


@route("POST", "/v1/subscription_schedules")
def create_schedule(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return schedules.create(emu, req.params)


@route("GET", "/v1/subscription_schedules/{id}")
def retrieve_schedule(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return emu.load(req["id"], "subscription_schedule")


@route("POST", "/v1/subscription_schedules/{id}")
def update_schedule(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    return schedules.update(emu, emu.load(req["id"], "subscription_schedule"), req.params)


@route("POST", "/v1/subscription_schedules/{id}/release")
def release_schedule(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    schedule = emu.load(req["id"], "subscription_schedule")
    return schedules.release(emu, schedule, emu.now_for(schedule))


@route("POST", "/v1/subscription_schedules/{id}/cancel")
def cancel_schedule(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    schedule = emu.load(req["id"], "subscription_schedule")
    return schedules.cancel(emu, schedule, emu.now_for(schedule))


@route("GET", "/v1/subscription_schedules")
def list_schedules(emu: Emulator, req: ApiRequest) -> dict[str, Any]:
    items = emu.store.all("subscription_schedule", req.params.get("customer") or None)
    return paginate(items, req.params, "/v1/subscription_schedules")
