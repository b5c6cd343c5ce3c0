"""Corrections as an evaluation catalog: the views of wrongly answered queries become
photos of their items, and the same views are then answered right."""

from __future__ import annotations

import hashlib

from edgelens.catalog.models import MAX_PHOTOS, CatalogItem, PhotoOrigin
from edgelens.evaluation.corrections import answered_wrongly, corrected_views, correction_photos
from edgelens.evaluation.runner import (
    VIEW_SENT,
    CatalogCache,
    CatalogPhoto,
    Query,
    System,
    rank_queries,
    synthetic_queries,
    system_answerer,
)
from edgelens.samples.photos import load_photo
from edgelens.samples.views import camera_views
from edgelens.settings import Settings

NAMES = ("coffee", "rocket", "chelsea", "clock", "camera", "page")


def _photo(item_id: str, image) -> CatalogPhoto:
    item = CatalogItem(item_id, item_id, None, "EUR", True, "", "")
    return CatalogPhoto(item, hashlib.sha256(image.tobytes()).hexdigest(), image)


def _answer(system, photos, queries):
    answerer = system_answerer(system, photos, CatalogCache())
    return rank_queries(system.featurizer, answerer, queries, sends=VIEW_SENT), answerer


def test_the_views_of_wrong_answers_become_photos_the_answer_does_not_search(featurizer):
    """The print item's catalog photo is a stand-in (another picture): views of the print are
    answered wrongly; corrected once each, their views become photos of the print that
    neither the index nor verification searches (the remembered view does the work): the
    answers stay as they were, and the index's rows too."""
    system = System.product("edgelens", featurizer, Settings())
    photos = [_photo(name, load_photo(name)) for name in NAMES]
    photos.append(_photo("print", load_photo("moon")))  # a stand-in: another picture
    prints = [
        Query("print", view, f"print:{n}")
        for n, view in enumerate(camera_views(load_photo("astronaut"), 3, seed=4))
    ]
    others = synthetic_queries({name: load_photo(name) for name in NAMES}, 1, seed=5)
    before, answerer = _answer(system, photos, prints + others)
    wrong = answered_wrongly(before)
    assert {r.query.item_id for r in wrong} == {"print"} and len(wrong) == 3

    added = correction_photos(featurizer, photos, before)
    assert [p.item.item_id for p in added] == ["print"] * 3
    assert all(p.origin is PhotoOrigin.CORRECTION for p in added)
    after, corrected = _answer(system, photos + added, prints + others)
    assert [r.ranked for r in after] == [r.ranked for r in before]
    assert corrected.index.vector_count == answerer.index.vector_count
    verified = system_answerer(system, photos + added, CatalogCache(), corrections_verified=True)
    baseline = rank_queries(featurizer, verified, prints, sends=VIEW_SENT)
    assert answered_wrongly(baseline) == [], "verified, as before, they confirm the print"


def test_an_item_takes_no_more_photos_than_the_catalog_allows(featurizer):
    system = System.product("edgelens", featurizer, Settings())
    photos = [_photo(name, load_photo(name)) for name in NAMES[:2]]
    photos.append(_photo("print", load_photo("moon")))
    views = camera_views(load_photo("astronaut"), MAX_PHOTOS + 2, seed=6)
    queries = [Query("print", view, f"print:{n}") for n, view in enumerate(views)]
    before, _ = _answer(system, photos, queries)
    assert len(answered_wrongly(before)) == MAX_PHOTOS + 2
    assert len(correction_photos(featurizer, photos, before)) == MAX_PHOTOS - 1


def test_remembered_views_alone_answer_the_same_views_as_corrected(featurizer):
    """Without any photo added, the views the workers remember answer the corrected views
    right, and the other items' views as before."""
    system = System.product("edgelens", featurizer, Settings())
    photos = [_photo(name, load_photo(name)) for name in NAMES]
    photos.append(_photo("print", load_photo("moon")))
    views = camera_views(load_photo("astronaut"), 3, seed=4)
    prints = [Query("print", view, f"print:{n}") for n, view in enumerate(views)]
    others = synthetic_queries({name: load_photo(name) for name in NAMES}, 1, seed=5)
    before, _ = _answer(system, photos, prints + others)
    assert len(answered_wrongly(before)) == 3
    remembered = corrected_views(featurizer, photos, before)
    assert len(remembered) == 3 * 3, "the frame's vector, and the view's two (stage two's)"
    assert {item.item_id for item in remembered.every.items} == {"print"}
    answerer = system_answerer(system, photos, CatalogCache(), corrected=remembered)
    after = rank_queries(featurizer, answerer, prints + others, sends=VIEW_SENT)
    assert answered_wrongly(after) == []
