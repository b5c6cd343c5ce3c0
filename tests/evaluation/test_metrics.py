import pytest

from edgelens.evaluation.metrics import RetrievalMetrics


def test_metrics_from_ranks():
    metrics = RetrievalMetrics.from_ranks([1, 2, 6, 11, 0])
    assert metrics.queries == 5
    assert metrics.top1 == pytest.approx(1 / 5)
    assert metrics.top5 == pytest.approx(2 / 5)
    assert metrics.recall_at_10 == pytest.approx(3 / 5)
    assert metrics.map == pytest.approx((1 + 1 / 2 + 1 / 6 + 1 / 11 + 0) / 5)


def test_no_queries_is_an_error():
    with pytest.raises(ValueError):
        RetrievalMetrics.from_ranks([])
