"""Corrections from the device page: "this frame is item X" or "this is not in the catalog".

The frame's focus view (kept in Redis by the worker for ``worker.views_kept_s``) and its
vectors are kept with the correction, so the workers answer that view, seen again, as
corrected (:mod:`edgelens.cloud.recall`), "not in the catalog" included. The view also
becomes a photo of X (while X has room), cropped to the item it shows as every photo
added one by one is (:func:`edgelens.webapp.services.catalog.add_photo`): the item's page
shows it, but the answer searches the corrected view, not that photo
(:func:`edgelens.catalog.models.indexed_photos`).
Every correction is logged in the catalog (who, when, which frame, which item) and can be
undone from the item's page: its photo goes again, the log keeps both.
"""

from __future__ import annotations

import io
import logging
import time
from dataclasses import replace

from redis.asyncio import Redis
from redis.client import NEVER_DECODE
from starlette.concurrency import run_in_threadpool

from edgelens.catalog.models import ITEM_ID_PATTERN, MAX_PHOTOS, Correction, PhotoOrigin
from edgelens.catalog.store import CatalogStore
from edgelens.errors import ItemNotFoundError, ViewGoneError
from edgelens.webapp.services import catalog
from edgelens.webapp.services.live import reachable
from edgelens.wire.names import view_key, view_vectors_key

logger = logging.getLogger(__name__)


async def frame_view(*, redis: Redis, device_id: str, seq: int) -> bytes | None:
    """The focus view JPEG frame ``seq`` of the device came with, while the worker keeps it."""
    return await _kept(redis, view_key(device_id, seq))


async def _kept(redis: Redis, key: str) -> bytes | None:
    with reachable(redis):
        return await redis.execute_command("GET", key, **{NEVER_DECODE: []})


# How many items of one name a correction's field tells apart: more, and it asks for a pick.
_SAME_NAME = 20


def typed_item(*, store: CatalogStore, typed: str) -> str:
    """The item a person typed into a correction's field: its id, or its name (matched
    whole, whatever the case, when one item has it); ItemNotFoundError says what to do
    otherwise."""
    typed = typed.strip()
    if not typed:
        raise ItemNotFoundError("type or pick the item this frame shows")
    if ITEM_ID_PATTERN.match(typed):
        try:
            return store.get(typed).item_id
        except ItemNotFoundError:
            pass
    named = [
        item
        for item in store.browse(text=typed, limit=_SAME_NAME)
        if item.name.casefold() == typed.casefold()
    ]
    if len(named) == 1:
        return named[0].item_id
    if named:
        raise ItemNotFoundError(f"several items are called “{typed}”: pick one from the list")
    raise ItemNotFoundError(f"no item called “{typed}” in the catalog: pick one from the list")


async def correct(
    *,
    ingest: catalog.Ingest,
    redis: Redis,
    device_id: str,
    seq: int,
    item_id: str | None,
    user: str,
) -> Correction:
    """Record that frame ``seq`` of the device shows ``item_id`` (None: something the
    catalog does not hold), with its view for the workers to remember; for an item, the
    view becomes a photo of the item first."""
    store = ingest.store
    photo = None
    if item_id is not None:
        store.get(item_id)  # an unknown item is an ItemNotFoundError, before any work
    jpeg = await frame_view(redis=redis, device_id=device_id, seq=seq)
    vectors = await _kept(redis, view_vectors_key(device_id, seq)) if jpeg else None
    if item_id is not None and jpeg is None:
        raise ViewGoneError(
            f"the view of frame #{seq} is no longer kept: point the camera at the item "
            "again and correct the new answer"
        )
    if item_id is not None and len(held := store.photos(item_id)) < MAX_PHOTOS:
        before = {p.image_sha256 for p in held}
        photos = await run_in_threadpool(
            catalog.add_photo,
            ingest=ingest,
            item_id=item_id,
            upload=io.BytesIO(jpeg),
            filename=f"{device_id}-{seq}.jpg",
            origin=PhotoOrigin.CORRECTION,
        )
        photo = next((p.image_sha256 for p in photos if p.image_sha256 not in before), None)
    with store.transaction() as write:
        logged = write.log_correction(
            Correction(0, time.time(), user, device_id, seq, item_id, photo),
            view=jpeg,
            vectors=vectors,
        )
    logger.info(
        "correction %d by %s: %s #%d is %s",
        logged.correction_id,
        user,
        device_id,
        seq,
        item_id or "not in the catalog",
    )
    return logged


def undo(
    *,
    store: CatalogStore,
    correction_id: int,
    user: str,
    item_id: str | None = None,
    device_id: str | None = None,
) -> Correction:
    """Undo a correction (of ``item_id`` or of a frame of ``device_id`` when given: an
    ItemNotFoundError otherwise): the photo it gave its item is removed (when the item
    still has it), and the log says who undid it when. Undoing twice changes nothing."""
    correction = store.correction(correction_id)
    if item_id is not None and correction.item_id != item_id:
        raise ItemNotFoundError(f"item {item_id!r} has no correction {correction_id}")
    if device_id is not None and correction.device_id != device_id:
        raise ItemNotFoundError(f"device {device_id!r} has no correction {correction_id}")
    if correction.undone_at is not None:
        return correction
    with store.transaction() as write:
        if correction.item_id and correction.photo_sha256:
            held = {p.image_sha256 for p in write.photos(correction.item_id)}
            if correction.photo_sha256 in held:
                write.remove_photo(correction.item_id, correction.photo_sha256)
        at = time.time()
        write.mark_undone(correction_id, user=user, at=at)
    logger.info("correction %d undone by %s", correction_id, user)
    return replace(correction, undone_at=at, undone_by=user)
