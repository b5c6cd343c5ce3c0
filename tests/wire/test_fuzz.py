"""Fuzzing the decoder and the worker's message handler with generated messages.

CI runs a few thousand messages (EDGELENS_FUZZ_EXAMPLES raises it); the long run of
100,000+ is ``benchmarks/fuzz_messages.py``, whose figures are in docs/benchmarks.md.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgelens.cloud.worker import Worker
from edgelens.errors import WireFormatError
from edgelens.testing.strategies import payloads, topics
from edgelens.wire.features import FeatureMessage, decode

EXAMPLES = int(os.environ.get("EDGELENS_FUZZ_EXAMPLES", "2000"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(payload=payloads(("model-a", "model-b"), 16))
def test_decoder_accepts_or_raises_wire_format_error_only(payload: bytes):
    try:
        message = decode(payload)
    except WireFormatError:
        return
    assert isinstance(message, FeatureMessage)
    assert message.embedding.dtype.name == "float32" and message.dim == len(message.embedding)


@pytest.fixture
def fuzzed_worker(live_settings):
    """A real worker on the sample catalog, driven directly (no MQTT in between)."""
    worker = Worker(live_settings)
    yield worker
    worker.stop()


def test_worker_survives_fuzzed_messages_and_accounts_for_each(fuzzed_worker, featurizer):
    outcomes = Counter()

    @FUZZ
    @given(data=st.data())
    def drive(data: st.DataObject) -> None:
        topic = data.draw(topics())
        payload = data.draw(payloads((featurizer.model_id, "efficientnet-lite0-x"), 1280))
        before = fuzzed_worker.stats.snapshot()
        fuzzed_worker.handle_message(topic, payload)  # must never raise
        after = fuzzed_worker.stats.snapshot()
        changed = {k for k in after if after[k] != before.get(k) and k != "push_us"}
        outcomes.update(changed)
        first = {k for k in changed if not k.startswith("confirm")}
        assert len(first) == 1, f"one counted first outcome per message, got {changed}"
        # stage two, where a view went to it: one outcome of its own
        assert len(changed - first) <= 1 or changed - first == {"confirm_queued", "confirmed"}

    drive()
    assert "errors_unexpected" not in outcomes
    assert sum(outcomes.values()) >= EXAMPLES
    assert outcomes["matched"] > 0 and outcomes["rejected_malformed"] > 0
