"""Passwords, session keys and CSRF tokens for the dashboard.

Passwords are hashed with scrypt (memory-hard, in the standard library) under a random
salt; the stored form names its parameters so they can be raised later without
invalidating older hashes. The session itself is Starlette's signed cookie
(itsdangerous); it carries the signed-in admin's name, the account's session version
(services.accounts) and the CSRF token that every form posts back. Also here: the
headers every response carries, and the limit on sign-in attempts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgelens.errors import ConfigError
from edgelens.settings import Settings

logger = logging.getLogger(__name__)

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return "$".join(
        ["scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(digest)]
    )


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p)
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(sent: str | None, expected: str | None) -> bool:
    return bool(sent and expected) and hmac.compare_digest(str(sent), str(expected))


def session_secret(settings: Settings) -> str:
    """The key that signs session cookies: configured, read from a file, or (demo mode
    only) random for this run, which signs everyone out at each restart."""
    web = settings.web
    if web.secret_key is not None:
        return web.secret_key.get_secret_value()
    if web.secret_key_file is not None:
        try:
            key = web.secret_key_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read web.secret_key_file: {exc}") from exc
        if len(key) < 32:
            raise ConfigError("web.secret_key_file must hold at least 32 characters")
        return key
    if settings.mode == "production":
        raise ConfigError("production mode: set web.secret_key or web.secret_key_file")
    logger.warning("no web.secret_key: using a random one (demo mode); sign-ins end at restart")
    return secrets.token_urlsafe(32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# Only this site's own files run, load and receive posts; nothing may frame the pages.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)


class SecurityHeadersMiddleware:
    """Adds ``SECURITY_HEADERS`` to every HTTP response that does not set them itself.

    Pure ASGI (it only edits the response's start message), so event streams pass
    through as they are sent, unlike with ``BaseHTTPMiddleware``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class LoginThrottle:
    """Sign-in attempts per account name and per client address, so neither guessing one
    account's password from many addresses nor one address guessing across many accounts
    goes on for long.

    An attempt is reserved (counted as a failure) before its password is checked, under
    the lock that checks the limits: however many guesses arrive at once, at most the
    limit of them reach the password check. Once a key holds its limit of attempts within
    ``window_s`` it waits until the oldest leaves the window. A success clears the
    account and hands the address its attempt back. Names are counted whether or not the
    account exists, and both limits answer alike, so the answer never says which names
    are admins. Each table keeps at most ``max_keys`` keys (the least recently tried goes
    first), and a key with nothing left in the window is forgotten. In memory, per process:
    a proxy's rate limit is the first line; this is the second.
    """

    def __init__(
        self,
        *,
        per_account: int = 5,
        per_address: int = 20,
        window_s: float = 300.0,
        max_keys: int = 10_000,
    ) -> None:
        self._window_s = window_s
        self._max_keys = max_keys
        self._accounts = _Attempts(per_account)
        self._addresses = _Attempts(per_address)
        self._lock = threading.Lock()

    def reserve(self, *, account: str, address: str, now: float | None = None) -> float:
        """Count an attempt now and answer 0, or, when the account or the address is at
        its limit, count nothing and answer the seconds to wait."""
        now = time.monotonic() if now is None else now
        address = client_key(address)
        with self._lock:
            wait_s = max(
                self._accounts.wait_s(account, now, self._window_s),
                self._addresses.wait_s(address, now, self._window_s),
            )
            if wait_s > 0:
                return wait_s
            self._accounts.add(account, now, self._max_keys)
            self._addresses.add(address, now, self._max_keys)
            return 0.0

    def succeeded(self, *, account: str, address: str) -> None:
        """The reserved attempt was right: the account starts afresh, and the address
        gets this attempt back (its other failures stay, as they may be others')."""
        with self._lock:
            self._accounts.pop(account)
            self._addresses.drop_latest(client_key(address))


class _Attempts:
    """Attempt times per key, oldest first; the keys least recently tried first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._times: dict[str, list[float]] = {}

    def wait_s(self, key: str, now: float, window_s: float) -> float:
        times = [t for t in self._times.get(key, ()) if t > now - window_s]
        if not times:
            self._times.pop(key, None)
            return 0.0
        self._times[key] = times
        return times[-self.limit] + window_s - now if len(times) >= self.limit else 0.0

    def add(self, key: str, now: float, max_keys: int) -> None:
        times = self._times.pop(key, [])
        if len(self._times) >= max_keys:
            self._times.pop(next(iter(self._times)))
        self._times[key] = [*times, now]

    def pop(self, key: str) -> None:
        self._times.pop(key, None)

    def drop_latest(self, key: str) -> None:
        times = self._times.get(key)
        if times:
            times.pop()
        if not times:
            self._times.pop(key, None)


def client_key(address: str) -> str:
    """The key a client address is throttled under: an IPv6 address by its /64, the
    block one host or household is given, so rotating within it gains nothing."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
