"""Stage two's backlog alone (no servers): one job per device, a view confirmed once per
catalog change."""

from __future__ import annotations

import numpy as np

from edgelens.cloud.matcher import ConfirmJob
from edgelens.cloud.serving import ConfirmBacklog
from edgelens.wire.features import FeatureMessage


def _job(device: str, vector: list[float], seq: int = 1) -> ConfirmJob:
    embedding = np.asarray(vector, np.float32)
    embedding /= np.linalg.norm(embedding)
    message = FeatureMessage(
        device_id=device, seq=seq, captured_at=1.0, model_id="m", embedding=embedding
    )
    return ConfirmJob(message, received_at=1.0, answered_at=1.0)


def test_the_same_view_is_confirmed_once_per_catalog_change():
    backlog = ConfirmBacklog()
    assert backlog.offer(_job("cam", [1, 0]), catalog_seq=1) == "confirm_queued"
    assert backlog.take(timeout=0) is not None
    assert backlog.offer(_job("cam", [1, 0.01]), catalog_seq=1) == "confirm_same_view"
    assert backlog.offer(_job("cam", [1, 0.01]), catalog_seq=2) == "confirm_queued"
    assert backlog.offer(_job("cam", [0, 1]), catalog_seq=2) == "confirm_superseded"
    assert len(backlog) == 1


def test_the_oldest_device_goes_when_the_backlog_is_full():
    backlog = ConfirmBacklog(capacity=2)
    outcomes = [backlog.offer(_job(device, [1, 0]), catalog_seq=1) for device in "abc"]
    assert outcomes == ["confirm_queued", "confirm_queued", "confirm_dropped"]
    assert [backlog.take(timeout=0).message.device_id for _ in range(2)] == ["b", "c"]
