"""Corrections and extra photos, as evaluation catalogs: what the device page's correction
and an item's added photos do, without a browser.

A correction makes the view a device sent with a wrongly answered frame a photo of the
right item, cropped to the item (:mod:`edgelens.webapp.services.corrections`), and a view
the workers remember (:mod:`edgelens.cloud.recall`); here each wrongly answered query does
so, its view coded and decoded as on the wire, so re-answering the same queries (or new
ones) measures what the product then does.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

import numpy as np

from edgelens.catalog.isolate import item_region
from edgelens.catalog.models import MAX_PHOTOS, CatalogItem, PhotoOrigin
from edgelens.cloud.recall import view_rows
from edgelens.evaluation.runner import VIEW_SENT, CatalogPhoto, Ranked, sent_queries
from edgelens.featurizer.runtime import Featurizer
from edgelens.search.recall import RecalledViews
from edgelens.wire.records import Decision


def answered_wrongly(rankings: Sequence[Ranked]) -> list[Ranked]:
    """The answers a person at the shelf would correct: another item first, or "no match"
    for an item of the catalog."""
    return [
        r
        for r in rankings
        if r.decision is Decision.NO_MATCH or not r.ranked or r.ranked[0] != r.query.item_id
    ]


def correction_photos(
    featurizer: Featurizer,
    photos: Sequence[CatalogPhoto],
    rankings: Sequence[Ranked],
    *,
    isolate: bool = True,
) -> list[CatalogPhoto]:
    """One new photo per wrongly answered query: its view as the device sends it, cropped
    to the item as a correction crops it (``isolate``; False: the whole view), given to its
    own item, while the item has room (MAX_PHOTOS, as the catalog allows)."""
    items = {p.item.item_id: p.item for p in photos}
    held = Counter(p.item.item_id for p in photos)
    added = []
    wrong = [r.query for r in answered_wrongly(rankings)]
    for sent in sent_queries(featurizer, wrong, sends=VIEW_SENT):
        item_id = sent.query.item_id
        if sent.view is None or held[item_id] >= MAX_PHOTOS:
            continue
        held[item_id] += 1
        added.append(
            added_photo(items[item_id], sent.view, origin=PhotoOrigin.CORRECTION, isolate=isolate)
        )
    return added


def corrected_views(
    featurizer: Featurizer,
    photos: Sequence[CatalogPhoto],
    rankings: Sequence[Ranked],
    *,
    worker_model: Featurizer | None = None,
) -> RecalledViews:
    """What the workers remember of the corrections of the wrongly answered queries: each
    one's vectors as the device sent them, and its view featurized by the worker's model
    (default: the device's) as :class:`edgelens.cloud.recall.CorrectedViews` does; with
    its own item."""
    items = {p.item.item_id: p.item for p in photos}
    embed = (worker_model or featurizer).embed
    wrong = [r.query for r in answered_wrongly(rankings)]
    views = [
        (np.stack(sent.vectors), view_rows(embed, sent.view), items[sent.query.item_id])
        for sent in sent_queries(featurizer, wrong, sends=VIEW_SENT)
        if sent.view is not None
    ]
    return RecalledViews.of(views, featurizer.dim)


def added_photo(
    item: CatalogItem,
    image: np.ndarray,
    *,
    origin: PhotoOrigin,
    isolate: bool = True,
) -> CatalogPhoto:
    """``image`` as a photo added to ``item`` one by one (the item page, a correction):
    cropped to the item as the web app crops it (``isolate``), hashed from its pixels."""
    if isolate:
        image = item_region(image)
    sha256 = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
    return CatalogPhoto(item, sha256, image, origin)
