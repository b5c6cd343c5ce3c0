"""Decode, validate and search one feature message; no I/O, so it is easy to test and fuzz."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgelens.errors import EdgelensError, ImageDecodeError, WireFormatError
from edgelens.featurizer.focus import decode_focus_view, focus_views
from edgelens.featurizer.local_features import LocalFeatures
from edgelens.search.base import SearchFilter, VectorIndex, search_views
from edgelens.search.verify import CANDIDATES, verify_view
from edgelens.wire.features import FeatureMessage, decode
from edgelens.wire.names import device_of_topic
from edgelens.wire.records import MatchRecord

logger = logging.getLogger(__name__)


class RejectedMessage(EdgelensError):
    """A message the worker refuses; ``reason`` is a short counter label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Matcher:
    """Answers feature messages of one model against one index."""

    index: VectorIndex
    top_k: int
    filters: SearchFilter
    # Other models whose vectors may search this index (FP16/INT8 derived from its FP32
    # model and measured to agree with it), and why the known others may not.
    compatible_models: frozenset[str] = frozenset()
    refusals: Mapping[str, str] = field(default_factory=dict)
    # Called with each decoded message before the search; raises RejectedMessage to refuse
    # it (the worker's replay and ordering guard, shared across model swaps).
    admit: Callable[[FeatureMessage], None] | None = None
    # The keypoints of an item's catalog photo; None turns spatial verification off.
    local_features_of: Callable[[str], LocalFeatures | None] | None = None
    verify_candidates: int = CANDIDATES  # how many of the best the keypoints re-rank
    # The index's own model on images (a colour focus view's boxes,
    # edgelens.featurizer.focus.focus_views): one vector row each. None: not made.
    embed_view: Callable[[Sequence[np.ndarray]], np.ndarray] | None = None

    def match(
        self, topic: str, payload: bytes, *, received_at: float, verify: bool = True
    ) -> MatchRecord:
        """``received_at`` (wall clock) splits the path into device→worker and queue wait;
        ``verify`` False answers from the vectors alone (a superseded message)."""
        waited_ms = (time.time() - received_at) * 1000
        started = time.perf_counter()
        message = self._decode(topic, payload)
        if self.admit is not None:
            self.admit(message)
        # ``verify`` False (a superseded message): the vectors alone, the view left unread.
        view = self._view(message) if verify else None
        decoded = time.perf_counter()
        stages: dict[str, float] = {}
        views = message.views  # each item scores its best of the frame and its focus boxes
        if self.embed_view is not None and view is not None and view.ndim == 3:  # colour
            boxes = focus_views(view)
            if message.focus_embedding is not None:  # the device featurized the view itself
                boxes = boxes[1:]
            views += list(self.embed_view(boxes))
            stages["focus"] = round((time.perf_counter() - decoded) * 1000, 3)
        verifying = view is not None and self.local_features_of is not None
        k = max(self.top_k, self.verify_candidates) if verifying else self.top_k
        started_search = time.perf_counter()
        matches = search_views(self.index, views, k=k, filters=self.filters)
        searched = time.perf_counter()
        if verifying:
            assert view is not None and self.local_features_of is not None
            matches = verify_view(
                matches, view, self.local_features_of, candidates=self.verify_candidates
            )
            stages["verify"] = round((time.perf_counter() - searched) * 1000, 3)
        return MatchRecord(
            device_id=message.device_id,
            seq=message.seq,
            captured_at=message.captured_at,
            model_id=message.model_id,
            latency_ms=0.0,  # set when the record is pushed, the end of the worker's path
            matches=matches[: self.top_k],
            stages_ms={
                "transit": round((received_at - message.captured_at) * 1000, 3),
                "queue": round(waited_ms, 3),
                "decode": round((decoded - started) * 1000, 3),
                "search": round((searched - started_search) * 1000, 3),
                **stages,
            },
        )

    def _view(self, message: FeatureMessage) -> np.ndarray | None:
        """The message's focus view, decoded, if anything here uses it; None, and said, if
        it is unusable (the vectors were fine, so the device still gets its answer)."""
        if message.verify_jpeg is None or (
            self.local_features_of is None and self.embed_view is None
        ):
            return None
        try:
            return decode_focus_view(message.verify_jpeg)
        except ImageDecodeError as exc:
            logger.warning(
                "answered from the vectors alone: %s",
                exc,
                extra={"device_id": message.device_id, "seq": message.seq},
            )
            return None

    def _decode(self, topic: str, payload: bytes) -> FeatureMessage:
        topic_device = device_of_topic(topic)
        if topic_device is None:
            raise RejectedMessage("bad_topic", f"unexpected topic {topic!r}")
        try:
            message = decode(payload)
        except WireFormatError as exc:
            raise RejectedMessage("malformed", str(exc)) from exc
        if message.device_id != topic_device:
            raise RejectedMessage(
                "device_mismatch",
                f"message says device {message.device_id!r} on the topic of {topic_device!r}",
            )
        if (
            message.model_id != self.index.model_id
            and message.model_id not in self.compatible_models
        ):
            reason = self.refusals.get(
                message.model_id, f"unknown model, catalog is indexed with {self.index.model_id!r}"
            )
            raise RejectedMessage(
                "wrong_model", f"vector of model {message.model_id!r} not searched: {reason}"
            )
        if message.dim != self.index.dim:
            raise RejectedMessage("wrong_dim", f"dim {message.dim}, index has {self.index.dim}")
        return message
