"""The JSON API: devices and their latest match records, straight from Redis."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from edgelens.webapp.deps import DeviceId, RedisDep
from edgelens.webapp.schemas import REDIS_UNAVAILABLE
from edgelens.webapp.services import live
from edgelens.wire.records import MatchRecord
from edgelens.wire.status import RecordedStatus

router = APIRouter(prefix="/api", tags=["devices"], responses=REDIS_UNAVAILABLE)


@router.get("/devices")
async def list_devices(redis: RedisDep) -> list[RecordedStatus]:
    """Every device that has reported, with its online/offline state."""
    return await live.list_devices(redis=redis)


@router.get("/devices/{device_id}/matches")
async def list_matches(
    device_id: DeviceId,
    redis: RedisDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many records.")] = 10,
) -> list[MatchRecord]:
    """The device's latest match records, newest first (empty for an unknown device)."""
    return await live.recent_records(redis=redis, device_id=device_id, limit=limit)
