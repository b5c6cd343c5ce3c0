"""Decode, validate and answer one feature message; no I/O, so it is easy to test and fuzz.

:meth:`Matcher.first` is stage one of the answer (:mod:`edgelens.cloud.answer`) for every
message; it hands back a :class:`ConfirmJob` when the message's view could still change
that answer, and :meth:`Matcher.confirm` is stage two for that job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from edgelens.cloud.answer import Answer, Answerer
from edgelens.errors import ImageDecodeError, RejectedMessage, WireFormatError
from edgelens.featurizer.focus import decode_focus_view
from edgelens.featurizer.jpeg import jpeg_header
from edgelens.search.base import VectorIndex
from edgelens.wire.features import FeatureMessage, decode, encode
from edgelens.wire.names import device_of_topic
from edgelens.wire.records import MatchRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfirmJob:
    """What stage two needs of a message whose first answer its view could change."""

    message: FeatureMessage
    received_at: float  # wall clock, when the worker received the message
    answered_at: float  # wall clock, when its first answer was made


@dataclass(frozen=True)
class FirstAnswer:
    record: MatchRecord
    confirm: ConfirmJob | None  # None: no view, or nothing it could change
    view_jpeg: bytes | None = None  # the frame's view, to keep while record.view says so
    view_vectors: bytes | None = None  # its vectors, as a message without the view, kept beside
    view_refused: str | None = None  # why the view the message came with was dropped unread


@dataclass(frozen=True)
class Matcher:
    """Answers feature messages of one model against one index."""

    answerer: Answerer
    # Other models whose vectors may search this index (FP16/INT8 derived from its FP32
    # model and measured to agree with it), and why the known others may not.
    compatible_models: frozenset[str] = frozenset()
    refusals: Mapping[str, str] = field(default_factory=dict)
    # Called with each decoded message before the search; raises RejectedMessage to refuse
    # it (the worker's replay and ordering guard, shared across model swaps).
    admit: Callable[[FeatureMessage], None] | None = None
    # Whether the views frames come with are kept (worker.views_kept_s): records say so.
    keep_views: bool = False

    @property
    def index(self) -> VectorIndex:
        return self.answerer.index

    def first(self, topic: str, payload: bytes, *, received_at: float) -> FirstAnswer:
        """Stage one. ``received_at`` (wall clock) splits the path into device→worker
        and queue wait."""
        waited_ms = (time.time() - received_at) * 1000
        started = time.perf_counter()
        message = self._decode(topic, payload)
        if self.admit is not None:
            self.admit(message)
        refused = _view_refusal(message.view_jpeg)
        if refused is not None:
            message = replace(message, view_jpeg=None)
        decoded_ms = (time.perf_counter() - started) * 1000
        answer = self.answerer.first(message.views)
        record = _record(
            message,
            answer,
            {
                "transit": round((received_at - message.captured_at) * 1000, 3),
                "queue": round(waited_ms, 3),
                "decode": round(decoded_ms, 3),
            },
            view=self.keep_views and message.view_jpeg is not None,
        )
        job = None
        if message.view_jpeg is not None and self.answerer.wants_confirmation(answer):
            job = ConfirmJob(message, received_at, time.time())
        if not record.view:
            return FirstAnswer(record, job, view_refused=refused)
        vectors = encode(replace(message, view_jpeg=None))
        return FirstAnswer(record, job, message.view_jpeg, vectors)

    def confirm(self, job: ConfirmJob) -> MatchRecord | None:
        """Stage two for ``job``; None, and said, when its view is unusable (the first
        answer stands)."""
        waited_ms = (time.time() - job.answered_at) * 1000
        started = time.perf_counter()
        view = self._view(job.message)
        if view is None:
            return None
        decoded_ms = (time.perf_counter() - started) * 1000
        answer = self.answerer.confirm(job.message.views, view)
        return _record(
            job.message,
            answer,
            {
                "transit": round((job.received_at - job.message.captured_at) * 1000, 3),
                "queue": round(waited_ms, 3),
                "decode": round(decoded_ms, 3),
            },
            view=self.keep_views,
        )

    @staticmethod
    def _view(message: FeatureMessage) -> np.ndarray | None:
        assert message.view_jpeg is not None
        try:
            return decode_focus_view(message.view_jpeg)
        except ImageDecodeError as exc:
            logger.warning(
                "first answer stands, the view is unusable: %s",
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
        index = self.answerer.index
        if message.model_id != index.model_id and message.model_id not in self.compatible_models:
            reason = self.refusals.get(
                message.model_id, f"unknown model, catalog is indexed with {index.model_id!r}"
            )
            raise RejectedMessage(
                "wrong_model", f"vector of model {message.model_id!r} not searched: {reason}"
            )
        if message.dim != index.dim:
            raise RejectedMessage("wrong_dim", f"dim {message.dim}, index has {index.dim}")
        return message


def _view_refusal(view_jpeg: bytes | None) -> str | None:
    """Why a view is dropped before it is kept or queued for stage two (None: it is
    not): anything but a small JPEG, told from its header alone
    (:func:`~edgelens.featurizer.jpeg.jpeg_header`). The frame's vectors are answered
    all the same."""
    if view_jpeg is None:
        return None
    try:
        jpeg_header(view_jpeg)
    except ImageDecodeError as exc:
        return str(exc)
    return None


def _record(
    message: FeatureMessage, answer: Answer, stages_ms: dict[str, float], *, view: bool
) -> MatchRecord:
    return MatchRecord(
        device_id=message.device_id,
        seq=message.seq,
        captured_at=message.captured_at,
        model_id=message.model_id,
        latency_ms=0.0,  # set when the record is pushed, the end of the worker's path
        matches=answer.matches,
        stages_ms={**stages_ms, **answer.stages_ms},
        stage=answer.stage,
        decision=answer.decision,
        clear=answer.clear,
        corrected=answer.recalled is not None,
        view=view,
    )
