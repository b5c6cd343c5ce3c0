import pytest

from edgelens.evaluation.metrics import RetrievalMetrics


def test_metrics_from_ranks():
    metrics = RetrievalMetrics.from_ranks([1, 2, 6, 11, 0])
    assert metrics.queries == 5
    assert metrics.top1 == pytest.approx(1 / 5)
    assert metrics.top5 == pytest.approx(2 / 5)
    assert metrics.recall_at_10 == pytest.approx(3 / 5)
    assert metrics.map == pytest.approx((1 + 1 / 2 + 1 / 6 + 1 / 11 + 0) / 5)


def test_top1_counts_a_no_match_answer_as_wrong():
    metrics = RetrievalMetrics.from_ranks([1, 1, 2, 1], answered=[True, False, True, True])
    assert metrics.top1 == pytest.approx(2 / 4) and metrics.top1_ranked == pytest.approx(3 / 4)
    assert metrics.no_match_known == pytest.approx(1 / 4)
    assert metrics.top5 == 1.0, "the ranking itself is unchanged"


def test_no_queries_is_an_error():
    with pytest.raises(ValueError):
        RetrievalMetrics.from_ranks([])


def test_top1_interval_is_wilsons():
    half_right = RetrievalMetrics.from_ranks([1, 2] * 50)
    low, high = half_right.top1_interval()
    assert (low, high) == (pytest.approx(0.4038, abs=1e-4), pytest.approx(0.5962, abs=1e-4))


def test_top1_interval_stays_open_when_every_query_is_right_and_narrows_with_queries():
    few, many = RetrievalMetrics.from_ranks([1] * 10), RetrievalMetrics.from_ranks([1] * 100)
    assert few.top1_interval()[1] == pytest.approx(1.0)
    assert few.top1_interval()[0] < many.top1_interval()[0] < 1.0
    assert few.to_dict()["top1_interval"] == list(few.top1_interval())
