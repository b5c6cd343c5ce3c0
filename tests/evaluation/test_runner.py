import numpy as np

from edgelens.evaluation.runner import Miss, Query, metrics_of, misses_of

_PIXELS = np.zeros((4, 4, 3), np.uint8)


def _query(item_id: str, origin: str, also_in_view: frozenset[str] = frozenset()) -> Query:
    return Query(item_id, _PIXELS, origin, also_in_view)


def test_misses_name_each_query_not_answered_first_with_what_beat_it():
    rankings = [
        (_query("mug", "q/mug/1.jpg"), ["mug", "cup", "bowl", "vase", "jar"]),
        (_query("cup", "q/cup/1.jpg"), ["mug", "bowl", "vase", "jar", "cup"]),
        (_query("bowl", "q/bowl/1.jpg"), ["mug", "bowl", "cup", "vase", "jar"]),
    ]
    assert misses_of(rankings) == (
        Miss("q/cup/1.jpg", "cup", 5, ("mug", "bowl", "vase")),
        Miss("q/bowl/1.jpg", "bowl", 2, ("mug",)),
    )
    assert len(misses_of(rankings)) == round((1 - metrics_of(rankings).top1) * len(rankings))


def test_misses_judged_without_the_items_in_view_when_those_are_ignored():
    in_clutter = _query("cup", "clutter 1", frozenset({"mug"}))
    rankings = [(in_clutter, ["mug", "cup", "bowl"])]
    assert misses_of(rankings) == (Miss("clutter 1", "cup", 2, ("mug",)),)
    assert misses_of(rankings, ignore_in_view=True) == ()
