"""Saving and loading the approximate index: round trip, atomic writes, model-id refusal."""

import numpy as np
import pytest

from edgelens.catalog.models import CatalogItem
from edgelens.errors import ModelMismatchError, SearchError
from edgelens.search.base import SearchFilter
from edgelens.search.persist import load_index, save_index
from edgelens.testing.vectors import build, clustered


@pytest.fixture
def changed_index():
    """An index that went through removals and a multi-vector upsert (free slots, reuse)."""
    ann, _, queries = build(n=2000, seed=7)
    ann.remove([f"item-{i}" for i in range(0, 2000, 7)])
    views = clustered(3, np.random.default_rng(8))
    ann.upsert([CatalogItem("shirt", "Shirt", None, "EUR", False, "abc", "ab/c.jpg")], [views])
    return ann, queries, views


def test_round_trip_answers_like_the_saved_index(changed_index, tmp_path):
    ann, queries, views = changed_index
    path = tmp_path / "index" / "ann.npz"
    save_index(ann, path, catalog_version="v42")
    loaded = load_index(path, model_id="model-a")
    assert loaded.catalog_version == "v42"
    restored = loaded.index
    assert len(restored) == len(ann) and restored.vector_count == ann.vector_count
    assert "item-7" not in restored and "shirt" in restored
    assert restored.projection.version == ann.projection.version
    flt = SearchFilter(min_price=10, max_price=50, available_only=True)
    for q in queries[:10]:
        assert restored.search(q, k=10) == ann.search(q, k=10)
        assert restored.search(q, k=10, filters=flt) == ann.search(q, k=10, filters=flt)
    top = restored.search(views[2], k=1)[0]
    assert (top.item_id, top.price, top.available) == ("shirt", None, False)
    restored.upsert([CatalogItem("new", "New", 1.0, "EUR", True, "", "")], [queries[0]])
    restored.remove(["shirt"])
    assert restored.search(queries[0], k=1)[0].item_id == "new"
    assert "shirt" not in restored


def test_save_replaces_atomically_and_leaves_no_temporary_file(changed_index, tmp_path):
    ann, _, _ = changed_index
    path = tmp_path / "ann.npz"
    save_index(ann, path, catalog_version="v1")
    ann.remove(["item-1"])
    save_index(ann, path, catalog_version="v2")
    assert [p.name for p in tmp_path.iterdir()] == ["ann.npz"]
    loaded = load_index(path, model_id="model-a")
    assert loaded.catalog_version == "v2" and "item-1" not in loaded.index


def test_index_of_another_model_or_a_corrupt_file_is_refused(changed_index, tmp_path):
    ann, _, _ = changed_index
    path = tmp_path / "ann.npz"
    save_index(ann, path, catalog_version="v1")
    with pytest.raises(ModelMismatchError, match="model-a"):
        load_index(path, model_id="model-b")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(SearchError):
        load_index(path, model_id="model-a")
    with pytest.raises(SearchError):
        load_index(tmp_path / "missing.npz", model_id="model-a")
