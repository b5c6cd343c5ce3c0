"""The views people corrected, as a worker remembers them for its model.

The catalog keeps each correction's view as the device sent it (a JPEG) and the frame's
vectors. The worker remembers a corrected view by both: the frame's vectors, which the
next frames of that view resemble (stage one), when its index may search them (its own
model, or one measured to agree with it); and the view featurized with its own model as
stage two featurizes a view, once per correction. It answers from them through
:mod:`edgelens.search.recall`. Its catalog follower refreshes
them whenever the catalog changes (a correction, an undo, an item edited or removed), so
a correction counts from the next frame on, in every worker.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from edgelens.catalog.store import CatalogStore
from edgelens.cloud.answer import EmbedImages
from edgelens.errors import ImageDecodeError, WireFormatError
from edgelens.featurizer.focus import decode_focus_view, focus_views
from edgelens.search.recall import RecalledViews
from edgelens.wire.features import decode

logger = logging.getLogger(__name__)


class CorrectedViews:
    """``corrected()`` → the :class:`RecalledViews` of the newest ``capacity`` standing
    corrections that kept a view, for an index of ``models``' vectors; :meth:`refresh`
    reads the catalog again when it changed."""

    def __init__(
        self,
        store: CatalogStore,
        *,
        embed: EmbedImages,
        models: frozenset[str],
        dim: int,
        capacity: int,
    ) -> None:
        self._store = store
        self._embed = embed
        self._models = models  # whose vectors this worker's index searches
        self._capacity = capacity
        self._dim = dim
        self._views = RecalledViews.empty(dim)
        # correction id → its place in the views: their matrix is the only copy of its rows
        self._held: dict[int, int] = {}
        self._version: int | None = None
        self._lock = threading.Lock()  # one refresh at a time

    def __call__(self) -> RecalledViews:
        return self._views

    def refresh(self) -> None:
        """Remember the corrections standing now, when the catalog changed since the last
        look; a view is featurized once, when first seen."""
        with self._lock:
            version = self._store.version  # before the read: a change during it is seen next
            if version == self._version:
                return
            standing = self._store.corrected_views(self._capacity)
            rows = {cid: self._views.rows_of(n) for cid, n in self._held.items()}
            new = [cid for cid, _ in standing if cid not in rows]
            for cid, (jpeg, vectors) in self._store.correction_views(new).items():
                rows[cid] = self._remembered(cid, jpeg, vectors)
            kept = [(cid, item) for cid, item in standing if cid in rows]
            self._views = RecalledViews.of([(*rows[cid], item) for cid, item in kept], self._dim)
            self._held = {cid: n for n, (cid, _) in enumerate(kept)}
            self._version = version
            if new:
                logger.info("%d corrected views remembered (%d new)", len(kept), len(new))

    def _remembered(
        self, correction_id: int, jpeg: bytes, vectors: bytes | None
    ) -> tuple[np.ndarray, np.ndarray]:
        sent = seen = np.zeros((0, self._dim), np.float32)
        try:
            seen = view_rows(self._embed, decode_focus_view(jpeg))
        except ImageDecodeError as exc:
            logger.warning("correction %d: its view is not remembered: %s", correction_id, exc)
        if vectors is not None:
            try:
                message = decode(vectors)
            except WireFormatError as exc:
                logger.warning("correction %d: its vectors are unreadable: %s", correction_id, exc)
            else:
                if message.model_id in self._models and message.dim == self._dim:
                    sent = np.stack(message.views)
        return sent, seen


def view_rows(embed: EmbedImages, view: np.ndarray) -> np.ndarray:
    """The vector rows a corrected view is remembered by: those stage two searches for it
    (:func:`focus_views`, with the worker's model). A grey view (the first devices'),
    which stage two does not featurize either, is an ImageDecodeError."""
    if view.ndim != 3:
        raise ImageDecodeError("a grey view is not featurized")
    return np.asarray(embed(focus_views(view)), dtype=np.float32)
