"""Catalog photos as shops have them: small pack shots on white (200 px), against camera
views of the full-size item. Nothing in the pipeline (keypoints, the catalog's generated
views, the focus boxes, the decision) may quietly fail on them."""

from __future__ import annotations

import dataclasses

import pytest

from edgelens.catalog.sources import collect_sources
from edgelens.evaluation.runner import (
    VIEW_SENT,
    CatalogCache,
    System,
    load_catalog,
    rank_queries,
    synthetic_queries,
    system_answerer,
)
from edgelens.featurizer.local_features import catalog_local_features
from edgelens.samples.views import pack_shot
from edgelens.search.verify import MIN_INLIERS
from edgelens.settings import Settings
from edgelens.wire.records import Decision


@pytest.fixture(scope="module")
def photos(sample_catalog):
    return load_catalog(collect_sources([sample_catalog]))


def test_a_small_pack_shot_is_found_in_a_camera_view(featurizer, photos):
    packs = [dataclasses.replace(p, image_bgr=pack_shot(p.image_bgr)) for p in photos]
    assert max(max(p.image_bgr.shape[:2]) for p in packs) == 240
    cache = CatalogCache()
    answerer = system_answerer(System.product("edgelens", featurizer, Settings()), packs, cache)
    # A photo with enough keypoints to verify at its full size keeps enough as a pack shot
    # (a plain one, the colour wheel, has none at any size).
    textured = [p.item.item_id for p in photos if len(catalog_local_features(p.image_bgr)) >= 150]
    assert len(textured) >= 15
    held = {p.item.item_id: cache.local_features(p) for p in packs}  # extracted by photo
    assert min(len(held[item_id]) for item_id in textured) >= 10 * MIN_INLIERS
    full_size = {p.item.item_id: p.image_bgr for p in photos}
    ranked = rank_queries(
        featurizer, answerer, synthetic_queries(full_size, 1, seed=11), sends=VIEW_SENT
    )
    right = [r.ranked[0] == r.query.item_id and r.decision is Decision.MATCH for r in ranked]
    assert sum(right) >= 0.95 * len(ranked), [
        r.query.origin for r, ok in zip(ranked, right, strict=True) if not ok
    ]
