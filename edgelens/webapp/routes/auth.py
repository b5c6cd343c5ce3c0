"""Signing in and out of the dashboard (admins are created with `edgelens web add-admin`)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from edgelens.webapp.deps import AccountsDep, ClientAddress, csrf_token
from edgelens.webapp.security import new_csrf_token
from edgelens.webapp.templating import templates

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return _page(request, next_url=next)


@router.post("/login")
def login(
    request: Request,
    accounts: AccountsDep,
    address: ClientAddress,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form()] = "/",
) -> Response:
    throttle = request.app.state.login_throttle
    # Reserved before the password is checked: concurrent guesses cannot all slip in.
    wait_s = throttle.reserve(account=username, address=address)
    if wait_s > 0:
        logger.warning("sign-in for %r from %s refused: too many failures", username, address)
        page = _page(
            request,
            next_url=next,
            error=f"Too many failed sign-ins: try again in {wait_s:.0f} s.",
            status_code=429,
        )
        page.headers["Retry-After"] = str(max(1, round(wait_s)))
        return page
    if not accounts.authenticate(username=username, password=password):
        logger.warning("failed sign-in for %r from %s", username, address)
        return _page(request, next_url=next, error="Wrong name or password.", status_code=401)
    throttle.succeeded(account=username, address=address)
    # A fresh CSRF token with the new privilege: one seen before signing in is worthless.
    # The session version lets signing out (anywhere) or a new password end this session.
    request.session.clear()
    request.session.update(
        user=username,
        csrf=new_csrf_token(),
        session_version=accounts.session_version(username),
    )
    logger.info("%s signed in from %s", username, address)
    return RedirectResponse(_local(next), status_code=303)


@router.post("/logout")
def logout(request: Request, accounts: AccountsDep) -> RedirectResponse:
    """Ends every session of this admin, not only this browser's: a copy of the cookie
    made before is refused from now on."""
    user = request.session["user"]  # the guard lets only signed-in admins post here
    accounts.end_sessions(user)
    request.session.clear()
    logger.info("%s signed out", user)
    return RedirectResponse("/", status_code=303)


def _page(
    request: Request, *, next_url: str, error: str | None = None, status_code: int = 200
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "login.html",
        {"next": _local(next_url), "error": error, "csrf": csrf_token(request)},
        status_code=status_code,
    )


def _local(url: str) -> str:
    """Only paths of this site: a ``next`` pointing elsewhere would be an open redirect."""
    return url if url.startswith("/") and not url.startswith("//") else "/"
