"""Passwords, session keys and CSRF tokens for the dashboard.

Passwords are hashed with scrypt (memory-hard, in the standard library) under a random
salt; the stored form names its parameters so they can be raised later without
invalidating older hashes. The session itself is Starlette's signed cookie
(itsdangerous); it carries the signed-in admin's name and the CSRF token that every
form posts back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time

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


class LoginThrottle:
    """Failed sign-ins per client address: after ``max_failures`` within ``window_s`` the
    address waits until the oldest of them leaves the window; a success clears it. Kept
    in memory per process (a proxy's rate limit is the first line; this is the second)."""

    MAX_ADDRESSES = 10_000

    def __init__(self, *, max_failures: int = 5, window_s: float = 300.0) -> None:
        self._max = max_failures
        self._window_s = window_s
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str, now: float | None = None) -> float:
        """Seconds this address must wait before trying again; 0 when it may try now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = self._recent(address, now)
            if len(recent) < self._max:
                return 0.0
            return recent[0] + self._window_s - now

    def failed(self, address: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = self._recent(address, now)
            if len(self._failures) >= self.MAX_ADDRESSES and address not in self._failures:
                self._failures.pop(next(iter(self._failures)))
            self._failures[address] = [*recent, now]

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)

    def _recent(self, address: str, now: float) -> list[float]:
        """The address's failures still in the window; an address with none is forgotten,
        so checking addresses never grows the table (only failures do, up to the bound)."""
        times = [t for t in self._failures.get(address, ()) if t > now - self._window_s]
        if times:
            self._failures[address] = times
        else:
            self._failures.pop(address, None)
        return times
