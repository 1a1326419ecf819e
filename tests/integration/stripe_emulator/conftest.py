"""A real emulator process on a free port, plus a tiny webhook receiver standing in for the portal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from app.config import PROJECT_ROOT
from tests.support import free_port, wait_until

WEBHOOK_SECRET = "whsec_emulator_tests_0123456789abcdef"


@dataclass
class Delivery:
    body: bytes
    signature: str
    status: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    # Thin (v2) event notifications, POSTed to /webhooks/stripe/thin and always answered 200.
    thin_deliveries: list[Delivery] = field(default_factory=list)
    # Events for which this returns True are answered 500 the first time they arrive.
    fail_first: Callable[[dict[str, Any]], bool] = lambda event: False
    _seen: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def status_for(self, event: dict[str, Any]) -> int:
        with self.lock:
            first = event["id"] not in self._seen
            self._seen.add(event["id"])
        return 500 if first and self.fail_first(event) else 200

    def events(self, status: int | None = 200) -> list[dict[str, Any]]:
        with self.lock:
            return [d.event for d in self.deliveries if status is None or d.status == status]

    def wait_for_event(
        self,
        type_: str,
        match: Callable[[dict[str, Any]], bool] = lambda obj: True,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for event in self.events():
                if event["type"] == type_ and match(event["data"]["object"]):
                    return event
            return None

        return wait_until(found, timeout, f"webhook {type_}")


def _start_receiver() -> tuple[Receiver, ThreadingHTTPServer]:
    port = free_port()
    receiver = Receiver(url=f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = 404
            if self.path == "/webhooks/stripe/thin":
                with receiver.lock:
                    receiver.thin_deliveries.append(
                        Delivery(body, self.headers.get("Stripe-Signature", ""), 200)
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == "/webhooks/stripe":
                status = receiver.status_for(json.loads(body))
            with receiver.lock:
                receiver.deliveries.append(
                    Delivery(body, self.headers.get("Stripe-Signature", ""), status)
                )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver, server


@dataclass
class EmulatorProcess:
    url: str
    var_dir: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.stripe_emulator"],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.var_dir / "emulator.log", "ab"),  # noqa: SIM115
        )

        def healthy() -> bool:
            assert self.process is not None and self.process.poll() is None, (
                self.var_dir / "emulator.log"
            ).read_text()
            try:
                return httpx.get(f"{self.url}/_emulator/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 20, "the emulator to answer")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def make_emulator(tmp: Path, receiver_url: str) -> EmulatorProcess:
    port = free_port()
    env = {
        **os.environ,
        "VAR_DIR": str(tmp),
        "STRIPE_EMULATOR_PORT": str(port),
        "PUBLIC_URL": receiver_url,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_EMULATOR_RETRY_SECONDS": "0.2",
        "STRIPE_EMULATOR_TICK_SECONDS": "0.2",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("STRIPE_SECRET_KEY", None)
    env.pop("STRIPE_EMULATOR_PUBLIC_URL", None)
    return EmulatorProcess(f"http://127.0.0.1:{port}", tmp, port, env)


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    receiver, server = _start_receiver()
    yield receiver
    server.shutdown()


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[str]:
    process = make_emulator(tmp_path_factory.mktemp("stripe-emulator"), receiver.url)
    process.start()
    yield process.url
    process.stop()


@pytest.fixture(scope="session")
def client(emulator: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        "sk_test_emulator_tests",
        base_addresses={"api": emulator},
        max_network_retries=0,
    )
