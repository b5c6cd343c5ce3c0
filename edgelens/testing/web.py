"""The dashboard as its tests sign in to it over HTTP: the admin they make, a client whose
posts carry the CSRF token as forms do, and the sign-in through the real form."""

from __future__ import annotations

import re

import httpx

ADMIN, ADMIN_PASSWORD = "admin", "correct horse battery"
# The tests' web.max_upload_bytes: above every sample photo but hubble and retina.
UPLOAD_LIMIT = 1_000_000


class AdminClient(httpx.Client):
    """Signed in as the admin; every POST carries the session's CSRF token, as forms do."""

    csrf = ""

    def post(self, url, *, data=None, **kwargs):  # type: ignore[override]
        return super().post(url, data={"csrf_token": self.csrf, **(data or {})}, **kwargs)


def csrf_in(page: str) -> str:
    """The CSRF token a rendered form carries."""
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client: httpx.Client, username: str, password: str) -> httpx.Response:
    """Sign in through the real form: its CSRF token first, then the post."""
    token = csrf_in(client.get("/login").text)
    return client.post(
        "/login", data={"csrf_token": token, "username": username, "password": password}
    )
