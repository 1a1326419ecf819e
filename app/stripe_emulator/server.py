"""The emulator's ASGI app and its runner (`python -m app.stripe_emulator`)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from app.config import Settings

# Importing the api modules registers their routes.
from app.stripe_emulator import (  # noqa: F401
    api_account,
    api_balances,
    api_billing,
    api_catalog,
    api_platform,
    api_schedules,
    card_updates,
    charges,
    credit_notes,
    discounts,
    disputes,
    invoice_actions,
    meter_stream,
    pages,
    pausing,
    payment_intents,
    portal_configurations,
    refunds,
    scheduler,
    strict_params,
    tax_ids,
    thin_events,
    webhook_endpoints,
    webhooks,
)
from app.stripe_emulator.core import Emulator, current_request, render
from app.stripe_emulator.errors import StripeError, unrecognized
from app.stripe_emulator.forms import decode, decode_pairs
from app.stripe_emulator.options import API_VERSION, EmulatorOptions
from app.stripe_emulator.param_table import ALLOWED
from app.stripe_emulator.rendering import FAVICON, FAVICON_PATH, STYLESHEET, STYLESHEET_PATH
from app.stripe_emulator.routing import HELPERS, ApiRequest, Route, resolve
from app.stripe_emulator.store import new_id
from app.web.security_headers import page_headers

log = logging.getLogger("stripe_emulator")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Response:
    def __init__(
        self,
        status: int,
        body: bytes | str = b"",
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.body = body.encode() if isinstance(body, str) else body
        self.headers = {"content-type": content_type, **(headers or {})}

    @classmethod
    def json(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(data, indent=2), headers=headers)

    @classmethod
    def html(cls, status: int, text: str) -> Response:
        return cls(status, text, "text/html; charset=utf-8")

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(303, b"", "text/plain", {"location": location})


class EmulatorApp:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        discounts.seed(emu)
        self.page_headers = page_headers(emu.options.base_url)
        self._tasks: list[asyncio.Task[None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        response = self.handle(scope, body)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(k.encode(), v.encode()) for k, v in response.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": response.body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start_background()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop_background()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start_background(self) -> None:
        deliverer = webhooks.Deliverer(self.emu)
        self._tasks = [
            asyncio.create_task(deliverer.run()),
            asyncio.create_task(scheduler.run(self.emu)),
        ]

    async def stop_background(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # dispatch

    def handle(self, scope: Scope, body: bytes) -> Response:
        method, path = scope["method"].upper(), scope["path"]
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        query = scope.get("query_string", b"").decode()
        try:
            if path.startswith("/v1/"):
                return self.api(method, path, headers, query, body)
            if path.startswith("/v2/"):
                return self.api_v2(method, path, headers, body)
            if path.startswith("/_emulator/"):
                return self.admin(method, path, query, body)
            return self.page(method, path, body)
        except StripeError as exc:
            return Response.json(exc.status, exc.body())
        except Exception:
            log.exception("emulator error on %s %s", method, path)
            return Response.json(
                500,
                {
                    "error": {
                        "type": "api_error",
                        "message": "An unexpected error occurred in the emulator.",
                    }
                },
            )

    def api(
        self, method: str, path: str, headers: dict[str, str], query: str, body: bytes
    ) -> Response:
        request_id = new_id("req", 14)
        base_headers = {"request-id": request_id, "stripe-version": API_VERSION}
        auth_error = _check_auth(headers.get("authorization", ""))
        if auth_error:
            return Response.json(401, auth_error.body(), base_headers)
        found = resolve(method, path)
        if found is None:
            return Response.json(404, unrecognized(method, path).body(), base_headers)
        found_route, args = found
        params = decode_pairs(parse_qsl(query, keep_blank_values=True))
        if method != "GET" and body:
            params.update(decode(body))
        key = headers.get("idempotency-key") if method == "POST" else None
        fingerprint = hashlib.sha256(
            json.dumps([method, path, params], sort_keys=True).encode()
        ).hexdigest()
        if key:
            saved = self.emu.store.idempotent_response(key)
            if saved:
                if saved[0] != fingerprint:
                    error = StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters "
                        "they were first used with. Try using a key other than "
                        f"'{key}' if you meant to execute a different request.",
                        type="idempotency_error",
                    )
                    return Response.json(400, error.body(), base_headers)
                return Response(
                    saved[1],
                    saved[2],
                    headers={**base_headers, "idempotent-replayed": "true", "idempotency-key": key},
                )
        token = current_request.set((request_id, key))
        try:
            status, data = self._run(found_route, ApiRequest(method, path, params, args))
        finally:
            current_request.reset(token)
        text = json.dumps(data, indent=2)
        if key and status < 500:
            with self.emu.store.transaction():
                self.emu.store.save_idempotent_response(key, fingerprint, status, text, time.time())
        if key:
            base_headers["idempotency-key"] = key
        return Response(status, text, headers=base_headers)

    def api_v2(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        """Stripe's v2 API: JSON bodies; the meter event stream authenticates with a meter
        event session's token instead of the secret key."""
        base_headers = {"request-id": new_id("req", 14), "stripe-version": API_VERSION}
        found = resolve(method, path)
        if found is None:
            return Response.json(404, unrecognized(method, path).body(), base_headers)
        found_route, args = found
        authorization = headers.get("authorization", "")
        if found_route.template == "/v2/billing/meter_event_stream":
            token = authorization.partition(" ")[2]
            auth_error = meter_stream.check_session_token(self.emu, token.strip())
        else:
            auth_error = _check_auth(authorization)
        if auth_error:
            return Response.json(auth_error.status, auth_error.body(), base_headers)
        try:
            params = json.loads(body or b"{}") if method != "GET" else {}
        except ValueError:
            error = StripeError(400, "The request body is not valid JSON.")
            return Response.json(400, error.body(), base_headers)
        if not isinstance(params, dict):
            params = {}
        status, data = self._run(found_route, ApiRequest(method, path, params, args))
        return Response(status, json.dumps(data, indent=2), headers=base_headers)

    def _run(self, route: Route, req: ApiRequest) -> tuple[int, dict[str, Any]]:
        try:
            spec = ALLOWED.get((route.method, route.template))
            if spec is not None:
                strict_params.check(spec, req.params)
            with self.emu.store.transaction():
                result = route.handler(self.emu, req)
                expand = req.params.get("expand") or []
                if isinstance(expand, str):
                    expand = [expand]
                return 200, render(self.emu.expand(copy.deepcopy(result), expand))
        except StripeError as exc:
            return exc.status, exc.body()

    def admin(self, method: str, path: str, query: str, body: bytes) -> Response:
        params = decode(query)
        if body:
            params.update(decode(body))
        if path == "/_emulator/health":
            return Response.json(200, {"ok": True, "now": self.emu.global_now()})
        if path == "/_emulator/advance" and method == "POST":
            seconds = int(float(params.get("seconds") or 0))
            seconds += int(float(params.get("days") or 0) * 86400)
            if params.get("to"):
                seconds = int(params["to"]) - self.emu.global_now()
            if seconds < 0:
                raise StripeError(400, "The emulator's clock cannot go backwards.", param="seconds")
            return Response.json(200, {"now": scheduler.advance(self.emu, seconds)})
        if path == "/_emulator/clock":
            return Response.json(200, {"now": self.emu.global_now()})
        if path == "/_emulator/webhook_deliveries":
            return Response.json(200, {"data": self.emu.store.deliveries()})
        found = resolve(method, path, HELPERS)
        if found is None:
            raise unrecognized(method, path)
        helper, args = found
        with self.emu.store.transaction():
            result = helper.handler(self.emu, ApiRequest(method, path, params, args))
        return Response.json(200, render(result))

    def page(self, method: str, path: str, body: bytes) -> Response:
        """A hosted page (or its stylesheet), with the portal's security headers."""
        parts = [part for part in path.split("/") if part]
        form = {k: v for k, v in parse_qsl(body.decode(), keep_blank_values=True)}
        try:
            response = self._page(method, parts, form)
        except StripeError as exc:
            if exc.status != 404:
                raise
            response = Response.html(404, pages.not_found_page(exc.message))
        response.headers.update(self.page_headers)
        return response

    def _page(self, method: str, parts: list[str], form: dict[str, str]) -> Response:
        emu = self.emu
        match method, parts:
            case "GET", _ if "/" + "/".join(parts) == STYLESHEET_PATH:
                return Response(200, STYLESHEET, "text/css; charset=utf-8")
            case "GET", _ if "/" + "/".join(parts) in (FAVICON_PATH, "/favicon.ico"):
                return Response(200, FAVICON, "image/svg+xml")
            case "GET", []:
                return Response.html(200, pages.index_page())
            case "GET", ["checkout", session_id]:
                session = emu.load(session_id, "checkout.session")
                return Response.html(200, pages.checkout_page(emu, session))
            case "POST", ["checkout", session_id, "authenticate"]:
                status, html, location = pages.authenticate_checkout(
                    emu, session_id, form.get("action", "")
                )
                return Response.redirect(location) if location else Response.html(status, html)
            case "POST", ["invoice", invoice_id, "authenticate"]:
                pages.authenticate_invoice(emu, invoice_id, form.get("action", ""))
                return Response.redirect(f"/invoice/{invoice_id}")
            case "POST", ["checkout", session_id, "promotion_code"]:
                status, html, location = pages.apply_promotion_code(
                    emu, session_id, form.get("code", "")
                )
                return Response.redirect(location) if location else Response.html(status, html)
            case "POST", ["checkout", session_id]:
                status, html, location = pages.submit_checkout(emu, session_id, form)
                return Response.redirect(location) if location else Response.html(status, html)
            case "GET", ["portal", session_id, secret]:
                session = pages.portal_session(emu, session_id, secret)
                return Response.html(200, pages.portal_page(emu, session))
            case "POST", ["portal", session_id, secret, *action]:
                session = pages.portal_session(emu, session_id, secret)
                error = pages.portal_action(emu, session, action, form)
                if error:
                    return Response.html(400, pages.portal_page(emu, session, error))
                return Response.redirect(f"/portal/{session_id}/{secret}")
            case "GET", ["invoice", invoice_id]:
                invoice = emu.load(invoice_id, "invoice")
                return Response.html(200, pages.invoice_page(emu, invoice))
            case "GET", ["invoice", invoice_id, "pdf"]:
                invoice = emu.load(invoice_id, "invoice")
                return Response(200, pages.invoice_pdf(invoice), "application/pdf")
        raise unrecognized(method, "/" + "/".join(parts))


def _check_auth(header: str) -> StripeError | None:
    if not header:
        return StripeError(
            401,
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
            "or we can help at https://support.stripe.com/.",
        )
    scheme, _, key = header.partition(" ")
    if scheme.lower() == "basic":
        import base64

        key = base64.b64decode(key.strip()).decode(errors="replace").split(":")[0]
    key = key.strip()
    if not (key.startswith("sk_test_") or key.startswith("rk_test_")):
        shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else key
        return StripeError(401, f"Invalid API Key provided: {shown}")
    return None


def create_emulator_app(settings: Settings, db_path: Path | None = None) -> EmulatorApp:
    return EmulatorApp(Emulator(EmulatorOptions.from_settings(settings, db_path)))


def run(settings: Settings) -> None:
    """Serve the emulator on 127.0.0.1:settings.stripe_emulator_port until SIGINT/SIGTERM."""
    from granian.constants import Interfaces
    from granian.server.embed import Server

    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    app = create_emulator_app(settings)
    server = Server(
        app,
        address="127.0.0.1",
        port=settings.stripe_emulator_port,
        interface=Interfaces.ASGI,
        log_access=False,
    )

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stop)
        log.info(
            "Stripe emulator on http://127.0.0.1:%s, webhooks to %s",
            settings.stripe_emulator_port,
            app.emu.options.webhook_url,
        )
        await server.serve()

    asyncio.run(serve())
