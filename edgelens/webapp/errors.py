"""Errors as the asker reads them: a page in the app's own look for a browser on a page,
JSON (``{"detail": ...}``) for the JSON API and other clients.

A browser asks with ``Accept: text/html``; the API's paths (``/api/``) always answer JSON.
Messages on pages are plain words: a bad address names the part that is wrong, never the
pattern it failed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgelens.errors import (
    CsrfError,
    DeviceAuthError,
    ItemNotFoundError,
    LastPhotoError,
    ModelNotFoundError,
    NoRolloutError,
    NotSignedInError,
    RedisUnavailableError,
    RequestTooLargeError,
    TooManyStreamsError,
    UploadRejectedError,
    UploadTooLargeError,
)
from edgelens.webapp.schemas import ErrorOut
from edgelens.webapp.templating import templates

logger = logging.getLogger(__name__)

Handler = Callable[[Request, Exception], Awaitable[Response]]

# What each status means to the person reading the page.
TITLES = {
    400: "That request is not valid",
    403: "That is not allowed",
    404: "Not found",
    405: "That is not allowed here",
    409: "That cannot be done",
    413: "That file is too large",
    422: "Something in that request is not valid",
    429: "Too busy right now",
    500: "Something went wrong on our side",
    503: "The live data is unavailable",
}
_PLAIN = {"Not Found": "There is no page at this address."}


def install(app: FastAPI) -> None:
    """Every error handler of the app."""
    for error, status_code in (
        (RedisUnavailableError, 503),
        (ItemNotFoundError, 404),
        (ModelNotFoundError, 404),
        (LastPhotoError, 409),
        (NoRolloutError, 409),
        (UploadTooLargeError, 413),
        (UploadRejectedError, 422),
        (CsrfError, 403),
    ):
        app.add_exception_handler(error, answer(status_code))
    app.add_exception_handler(TooManyStreamsError, _too_many_streams)
    app.add_exception_handler(NotSignedInError, _sign_in_first)
    app.add_exception_handler(DeviceAuthError, _device_credentials_first)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected)


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", ""
    )


def error_response(
    request: Request, status_code: int, detail: str, headers: dict[str, str] | None = None
) -> Response:
    """The error as a page for a browser, as JSON otherwise."""
    if wants_html(request):
        return templates.TemplateResponse(
            request,
            "error.html",
            {
                "status_code": status_code,
                "title": TITLES.get(status_code, "That did not work"),
                "detail": _PLAIN.get(detail, detail),
            },
            status_code=status_code,
            headers=headers,
        )
    return JSONResponse(
        ErrorOut(detail=detail).model_dump(), status_code=status_code, headers=headers
    )


def answer(status_code: int) -> Handler:
    """A handler answering the error's message with ``status_code``."""

    async def handler(request: Request, exc: Exception) -> Response:
        logger.warning("%s %s → %d: %s", request.method, request.url.path, status_code, exc)
        return error_response(request, status_code, str(exc))

    return handler


async def _too_many_streams(request: Request, exc: Exception) -> Response:
    """429 with Retry-After: the page says why and asks again after that long."""
    assert isinstance(exc, TooManyStreamsError)
    logger.info("%s %s → 429: %s", request.method, request.url.path, exc)
    return error_response(request, 429, str(exc), {"Retry-After": str(exc.retry_after_s)})


async def _device_credentials_first(request: Request, exc: Exception) -> Response:
    """401 asking for HTTP Basic credentials: a device's broker account."""
    logger.warning("%s %s → 401: %s", request.method, request.url.path, exc)
    return error_response(request, 401, str(exc), {"WWW-Authenticate": 'Basic realm="devices"'})


async def _sign_in_first(request: Request, exc: Exception) -> Response:
    """Browsers go to the sign-in page (and come back); API clients get 401."""
    if "text/html" in request.headers.get("accept", ""):
        back = request.url.path if request.method == "GET" else "/catalog"
        return RedirectResponse(f"/login?next={quote(back)}", status_code=303)
    return JSONResponse(ErrorOut(detail=str(exc)).model_dump(), status_code=401)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(request, exc.status_code, str(exc.detail), exc.headers)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    """A page names what is wrong in plain words; the API keeps FastAPI's detail list."""
    assert isinstance(exc, RequestValidationError)
    if not wants_html(request):
        return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
    where = {"path": "address", "query": "address", "body": "form"}
    parts = sorted(
        {
            f"the {str(error['loc'][-1]).replace('_', ' ')} in the "
            f"{where.get(str(error['loc'][0]), 'request')}"
            for error in exc.errors()
            if error.get("loc")
        }
    )
    detail = f"{', '.join(parts).capitalize() or 'The request'} is not valid."
    return error_response(request, 422, detail)


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.error("%s %s → 500", request.method, request.url.path, exc_info=exc)
    return error_response(request, 500, "The error is logged; please try again.")


class BodyLimitMiddleware:
    """Refuses a request body past ``max_bytes`` with a 413 the asker can read: a page in the
    app's look for a browser, JSON otherwise (FastAPI's own limit answers plain text, from
    outside every handler). Pure ASGI, inside the session so the page knows who is signed
    in; a body announced too large is refused before a byte of it is read."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, router: Router) -> None:
        self.app = app
        self._max = max_bytes
        self._router = router  # the page's links are made before routing has set it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        announced = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if announced.isdigit() and int(announced) > self._max:
            await self._refuse(scope, receive, send)
            return
        received, started = 0, False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self._max:
                    raise RequestTooLargeError
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except Exception as exc:
            if started or not _caused_by_size(exc):
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("router", self._router)
        request = Request(scope, receive)
        logger.warning("%s %s → 413: body past %d bytes", request.method, scope["path"], self._max)
        detail = f"the request is larger than {self._max} bytes"
        await error_response(request, 413, detail)(scope, receive, send)


def _caused_by_size(exc: BaseException) -> bool:
    if isinstance(exc, RequestTooLargeError):
        return True
    grouped = getattr(exc, "exceptions", None)  # an exception group (Python 3.11+, anyio)
    if isinstance(grouped, tuple):
        return any(_caused_by_size(inner) for inner in grouped)
    return _caused_by_size(exc.__cause__) if exc.__cause__ is not None else False
