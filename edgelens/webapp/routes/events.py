"""Server push: SSE streams fed by Redis pub/sub, each opened with a snapshot."""

from __future__ import annotations

from fastapi import APIRouter
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from edgelens.webapp.deps import DeviceId, RedisDep
from edgelens.webapp.schemas import REDIS_UNAVAILABLE
from edgelens.webapp.services import live

router = APIRouter(prefix="/api", tags=["events"], responses=REDIS_UNAVAILABLE)


def _stream(description: str) -> dict[int | str, dict[str, object]]:
    return {200: {"content": {"text/event-stream": {}}, "description": description}}


@router.get(
    "/devices/events",
    name="devices_events",
    responses=_stream("`status` events: a device's status JSON, every device's first."),
)
async def devices_events(redis: RedisDep) -> EventSourceResponse:
    """Live device statuses for the dashboard."""
    return _respond(await live.devices_feed(redis=redis))


@router.get(
    "/devices/{device_id}/events",
    name="device_events",
    responses=_stream(
        "Unnamed events: a MatchRecord JSON, the latest one first; "
        "`status` events: the device's status JSON."
    ),
)
async def device_events(device_id: DeviceId, redis: RedisDep) -> EventSourceResponse:
    """Live match records and status of one device."""
    return _respond(await live.device_feed(redis=redis, device_id=device_id))


def _respond(feed: live.Feed) -> EventSourceResponse:
    # The background task also runs for HEAD, where the event generator never starts.
    return EventSourceResponse(feed.events(), background=BackgroundTask(feed.close))
