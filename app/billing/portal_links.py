"""Signed, short-lived, single-use login links into /billing (Lago's `portal_url`).

A token is `base64url(payload).base64url(hmac_sha256(secret, payload))`, the payload naming the
customer (its public id), a random nonce and an expiry. Nothing is stored when a link is issued;
redeeming it claims the nonce in a shared store (Redis or files, so several app processes agree),
which makes a second use fail.

Opening a link (GET) only checks it and shows a page that submits itself (POST); the POST
redeems it. Link previews and scanners fetch a URL without running its page's script or
submitting its form, so they no longer use up a link before its person does.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from datetime import datetime

from litestar.stores.base import StorageObject, Store
from litestar.stores.file import FileStore
from litestar.stores.redis import RedisStore
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.service import AccountService
from app.customers.models import Customer
from app.customers.service import CustomerService
from app.lib.clock import utcnow
from app.lib.errors import Forbidden, NotFound

PORTAL_TTL_SECONDS = 300
STORE_NAME = "portal_tokens"
_CONTEXT = b"billing-portal/portal-link/v1:"
_MAX_TOKEN = 512
_memory_lock = asyncio.Lock()


class PortalLinkInvalid(Forbidden):
    code = "portal_link_invalid"


@dataclass(frozen=True)
class PortalClaim:
    customer_public_id: str
    nonce: str
    expires_at: int
    member_id: int | None = None  # the member to log in (else the customer's creator)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    # Only the encoding we issue: the last character also carries bits the decoder drops, so
    # several spellings decode alike; a link is accepted exactly as it was sent out.
    if _b64(data) != text:
        raise ValueError("not canonical base64")
    return data


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), _CONTEXT + payload, hashlib.sha256).digest()


def sign(
    secret: str,
    customer_public_id: str,
    now: datetime,
    ttl: int = PORTAL_TTL_SECONDS,
    member_id: int | None = None,
) -> str:
    claim: dict[str, str | int] = {
        "c": customer_public_id,
        "n": secrets.token_urlsafe(16),
        "e": int(now.timestamp()) + ttl,
    }
    if member_id is not None:
        claim["m"] = member_id
    payload = json.dumps(claim, separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def verify(secret: str, token: str, now: datetime) -> PortalClaim:
    """The claim of a genuine, unexpired token; PortalLinkInvalid otherwise."""
    try:
        if len(token) > _MAX_TOKEN:
            raise ValueError("too long")
        raw_payload, raw_mac = token.split(".")
        payload, mac = _unb64(raw_payload), _unb64(raw_mac)
        if not hmac.compare_digest(mac, _mac(secret, payload)):
            raise ValueError("bad signature")
        data = json.loads(payload)
        member = data.get("m")
        claim = PortalClaim(
            str(data["c"]), str(data["n"]), int(data["e"]), None if member is None else int(member)
        )
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise PortalLinkInvalid(
            "This billing link is not valid. Ask the app you came from for a new one."
        ) from None
    if claim.expires_at <= int(now.timestamp()):
        raise PortalLinkInvalid(
            "This billing link has expired. Links work for 5 minutes; ask the app you came from "
            "for a new one."
        )
    return claim


async def claim_once(store: Store, key: str, ttl: int) -> bool:
    """Mark `key` used; True for the first caller only, across processes sharing the store."""
    ttl = max(1, ttl)
    if isinstance(store, RedisStore):
        return bool(await store._redis.set(store._make_key(key), b"used", ex=ttl, nx=True))
    if isinstance(store, FileStore):
        return await asyncio.to_thread(_claim_file, store, key, ttl)
    async with _memory_lock:  # a process-local store (MemoryStore): a lock makes it atomic
        if await store.exists(key):
            return False
        await store.set(key, b"used", expires_in=ttl)
        return True


def _claim_file(store: FileStore, key: str, ttl: int) -> bool:
    # A hard link to a finished temp file is an atomic create-if-absent on POSIX file systems.
    # A marker outlives its token (ttl > the token's remaining life), so an existing marker
    # always means "used".
    directory = str(store.path)
    os.makedirs(directory, exist_ok=True)
    if secrets.randbelow(100) == 0:
        _sweep(directory)
    target = str(store._path_from_key(key))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".claim.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(StorageObject.new(data=b"used", expires_in=ttl).to_bytes())
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _sweep(directory: str) -> None:
    """Remove markers of tokens that expired long ago (best effort)."""
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            with contextlib.suppress(OSError, ValueError, TypeError):
                with open(entry.path, "rb") as handle:
                    stored = StorageObject.from_bytes(handle.read())
                if stored.expired:
                    os.unlink(entry.path)


_USED = (
    "This billing link was already used. Links work once; ask the app you came from for a new one."
)


async def check(store: Store, secret: str, token: str, now: datetime) -> PortalClaim:
    """Verify the token without using it up; PortalLinkInvalid when forged, expired or used."""
    claim = verify(secret, token, now)
    if await store.exists(f"portal:{claim.nonce}"):
        raise PortalLinkInvalid(_USED)
    return claim


async def redeem(store: Store, secret: str, token: str, now: datetime) -> PortalClaim:
    """Verify the token and use it up; PortalLinkInvalid when forged, expired or used."""
    claim = verify(secret, token, now)
    ttl = claim.expires_at - int(now.timestamp()) + 60
    if not await claim_once(store, f"portal:{claim.nonce}", ttl):
        raise PortalLinkInvalid(_USED)
    return claim


class PortalLinkService:
    """Issues portal URLs for the API and turns a redeemed token into a login (owns its commit)."""

    def __init__(
        self,
        session: AsyncSession,
        customers: CustomerService,
        store: Store,
        secret: str,
        public_url: str,
    ) -> None:
        self.session = session
        self.customers = customers
        self.store = store
        self.secret = secret
        self.public_url = public_url.rstrip("/")
        self.accounts = AccountService(session, customers.catalog)

    async def issue(
        self, external_id: str, now: datetime | None = None, member: str | None = None
    ) -> str:
        """A link for the customer's creator (or first owner), or for `member` (an email of
        one of its members) when given."""
        customer = await self.customers.get(external_id)  # NotFound → 404
        member_id = None
        if member is not None:
            user = await self.accounts.users.by_email(member.strip())
            member_id = user.id if user is not None else None
            if member_id is None or not await self.customers.is_member(customer.id, member_id):
                raise NotFound(
                    f"{member} is not a member of this customer.", code="member_not_found"
                )
            await self._check_user_not_admin(member_id)
        else:
            await self._check_not_admin(customer)
        token = sign(self.secret, customer.public_id, now or utcnow(), member_id=member_id)
        return f"{self.public_url}/portal/{token}"

    async def check(self, token: str, now: datetime | None = None) -> None:
        """PortalLinkInvalid (or Forbidden) unless the link would log someone in now; the link
        stays unused."""
        claim = await check(self.store, self.secret, token, now or utcnow())
        await self._customer(claim)

    async def login(self, token: str, now: datetime | None = None) -> tuple[int, int]:
        """The ids of the user to log in and of the organization to show: the member the link
        names, else the customer's creator while a member (else its first owner), else a new
        password-less user who owns it."""
        claim = await redeem(self.store, self.secret, token, now or utcnow())
        customer = await self._customer(claim)
        if claim.member_id is not None:
            if not await self.customers.is_member(customer.id, claim.member_id):
                raise PortalLinkInvalid("This billing link names someone who is not a member.")
            await self._check_user_not_admin(claim.member_id)
            return claim.member_id, customer.id
        owner = await self.customers.default_member(customer)
        if owner is not None:
            return owner, customer.id
        if customer.user_id is not None:  # its creator left and nobody else belongs to it
            raise PortalLinkInvalid("This billing account has no members to log in.")
        try:
            email = customer.email or ""
            if not email or len(email) > 254 or await self.accounts.email_taken(email):
                email = f"customer-{customer.public_id}@portal.invalid"
            user = await self.accounts.add_passwordless_user(email, (customer.name or "")[:120])
            customer.user_id = user.id
            await self.customers.add_owner(customer, user.id)
            await self.session.commit()
        except IntegrityError:  # a concurrent first login linked a user first
            await self.session.rollback()
            await self.session.refresh(customer)
            if customer.user_id is None:
                raise
        assert customer.user_id is not None
        return customer.user_id, customer.id

    async def _customer(self, claim: PortalClaim) -> Customer:
        customer = await self.customers.by_public_id(claim.customer_public_id)
        if customer is None or customer.deleted_at is not None:  # its user deleted it
            raise PortalLinkInvalid("This billing link is for an account that no longer exists.")
        await self._check_not_admin(customer)
        return customer

    async def _check_not_admin(self, customer: Customer) -> None:
        if customer.user_id is None:
            return
        await self._check_user_not_admin(customer.user_id)

    async def _check_user_not_admin(self, user_id: int) -> None:
        user = await self.accounts.get(user_id)
        if user is not None and user.is_admin:
            raise Forbidden(
                "Portal links cannot log in an administrator.", code="portal_link_forbidden"
            )
