"""Where a model rollout stands, for the dashboard, and an admin finishing it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from edgelens.errors import NoRolloutError
from edgelens.webapp.services.live import reachable
from edgelens.wire.names import ROLLOUT_KEY
from edgelens.wire.rollout import Rollout
from edgelens.wire.status import RecordedStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RolloutProgress:
    """A rollout and how many devices run its new model already."""

    rollout: Rollout
    switched: int  # devices that report the new model
    devices: int  # devices the fleet has
    problems: dict[str, str]  # device id → why it still runs another model


async def rollout_progress(
    *, redis: Redis, devices: list[RecordedStatus]
) -> RolloutProgress | None:
    """The newest rollout (under way or finished), against the devices' statuses."""
    with reachable(redis):
        rollout = Rollout.from_redis(await redis.hgetall(ROLLOUT_KEY))
    if rollout is None:
        return None
    return RolloutProgress(
        rollout,
        switched=sum(device.model_id == rollout.to_model for device in devices),
        devices=len(devices),
        problems={d.device_id: d.model_problem for d in devices if d.model_problem},
    )


async def rollout_under_way(*, redis: Redis) -> Rollout | None:
    """The rollout under way, if one is (not finished by the fleet or an admin)."""
    with reachable(redis):
        rollout = Rollout.from_redis(await redis.hgetall(ROLLOUT_KEY))
    return rollout if rollout is not None and rollout.finished_at is None else None


async def finish_rollout(*, redis: Redis, user: str) -> Rollout:
    """The rollout under way marked finished by ``user``: the workers stop answering the
    old model (its devices' vectors are refused from then on, saying why)."""
    with reachable(redis):
        rollout = Rollout.from_redis(await redis.hgetall(ROLLOUT_KEY))
        if rollout is None or rollout.finished_at is not None:
            raise NoRolloutError("no model rollout is under way")
        finished = {"finished_at": str(time.time()), "finished_by": user}
        await redis.hset(ROLLOUT_KEY, mapping=finished)
    logger.info("rollout of model %s finished by %s", rollout.to_model, user)
    return rollout
