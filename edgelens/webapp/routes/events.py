"""Server push: SSE streams fed by the process's one Redis subscription, each opened with a
snapshot; each visitor, and the process, may hold only so many at once."""

from __future__ import annotations

from fastapi import APIRouter
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from edgelens.webapp.deps import ClientAddress, DeviceId, LiveDep, RedisDep
from edgelens.webapp.schemas import REDIS_UNAVAILABLE, ErrorOut
from edgelens.webapp.services import live

TOO_MANY_STREAMS: dict[int | str, dict[str, object]] = {
    429: {
        "model": ErrorOut,
        "description": "Too many live views open from the address, or in all; "
        "the Retry-After header says when to ask again.",
    }
}
router = APIRouter(
    prefix="/api", tags=["events"], responses={**REDIS_UNAVAILABLE, **TOO_MANY_STREAMS}
)


def _stream(description: str) -> dict[int | str, dict[str, object]]:
    return {200: {"content": {"text/event-stream": {}}, "description": description}}


@router.get(
    "/devices/events",
    name="devices_events",
    responses=_stream("`status` events: a device's status JSON, every device's first."),
)
async def devices_events(
    hub: LiveDep, redis: RedisDep, client: ClientAddress
) -> EventSourceResponse:
    """Live device statuses for the dashboard."""
    return _respond(await live.devices_feed(hub=hub, redis=redis, client=client))


@router.get(
    "/devices/{device_id}/events",
    name="device_events",
    responses=_stream(
        "Unnamed events: a MatchRecord JSON, the latest one first; "
        "`status` events: the device's status JSON."
    ),
)
async def device_events(
    device_id: DeviceId, hub: LiveDep, redis: RedisDep, client: ClientAddress
) -> EventSourceResponse:
    """Live match records and status of one device."""
    return _respond(
        await live.device_feed(hub=hub, redis=redis, client=client, device_id=device_id)
    )


def _respond(feed: live.Feed) -> EventSourceResponse:
    # The generator frees the stream's slot when it ends; the background task also where
    # it never starts (a client gone before the first byte).
    return EventSourceResponse(feed.events(), background=BackgroundTask(feed.close))
