"""The real-view set: fetched once from the pinned archive, laid out as `edgelens eval` reads it."""

import hashlib
import io
import json
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.sources import collect_sources
from edgelens.evaluation.real_views import (
    BACKGROUNDS,
    REAL_PAIRS,
    SAMPLES_PREFIX,
    RealViewsUnavailableError,
    fetch_real_views,
    real_view_query_sets,
)
from edgelens.evaluation.runner import System, evaluate_systems, load_catalog
from edgelens.evaluation.sample_photos import SAMPLE_PHOTOS


def _fake_archive(path: Path, *, skip: str | None = None) -> str:
    """A tar.gz laid out like the OpenCV sdist, each pair image a small distinct picture."""
    names = {p.catalog_file for p in REAL_PAIRS} | {n for p in REAL_PAIRS for n in p.query_files}
    names |= set(BACKGROUNDS)
    with tarfile.open(path, "w:gz") as tar:
        for n, name in enumerate(sorted(names - {skip})):
            image = np.full((48, 64, 3), n * 3, np.uint8)
            ok, encoded = cv2.imencode(Path(name).suffix, image)
            assert ok
            member = tarfile.TarInfo(SAMPLES_PREFIX + name)
            member.size = len(encoded)
            tar.addfile(member, io.BytesIO(encoded.tobytes()))
        decoy = tarfile.TarInfo("opencv-python-4.10.0.84/setup.py")  # not a pair: left out
        tar.addfile(decoy, io.BytesIO(b""))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_writes_catalog_queries_and_groups(tmp_path):
    archive = tmp_path / "sdist.tar.gz"
    sha256 = _fake_archive(archive)
    real_set = fetch_real_views(tmp_path / "real", url=archive.as_uri(), sha256=sha256)

    catalog = {p.stem for p in real_set.catalog_dir.iterdir()}
    assert catalog == {p.item_id for p in REAL_PAIRS} | {p.item_id for p in SAMPLE_PHOTOS}
    queried = {p.parent.name for p in real_set.queries_dir.glob("*/*")}
    assert queried == {p.item_id for p in REAL_PAIRS} | {"motorcycle"}
    assert set(real_set.groups()) == queried
    assert {p.name for p in real_set.backgrounds_dir.iterdir()} == set(BACKGROUNDS)
    assert len(real_set.backgrounds()) == len(BACKGROUNDS)
    assert not (tmp_path / "real.partial").exists()

    sets = real_view_query_sets(real_set)
    assert len(sets["real views"]) == len(REAL_PAIRS) + 1
    assert sum(len(q) for name, q in sets.items() if name != "real views") == len(
        sets["real views"]
    )

    archive.unlink()  # a second call reuses what was written, without the archive
    assert fetch_real_views(tmp_path / "real", url=archive.as_uri(), sha256=sha256) == real_set


def test_an_archive_that_is_not_the_pinned_one_is_refused(tmp_path):
    archive = tmp_path / "sdist.tar.gz"
    _fake_archive(archive)
    with pytest.raises(RealViewsUnavailableError, match="expected"):
        fetch_real_views(tmp_path / "real", url=archive.as_uri(), sha256="0" * 64)
    assert not (tmp_path / "real").exists()


def test_an_archive_missing_a_pair_image_is_refused(tmp_path):
    archive = tmp_path / "sdist.tar.gz"
    sha256 = _fake_archive(archive, skip="box_in_scene.png")
    with pytest.raises(RealViewsUnavailableError, match=r"box_in_scene\.png"):
        fetch_real_views(tmp_path / "real", url=archive.as_uri(), sha256=sha256)
    assert not (tmp_path / "real").exists() and not (tmp_path / "real.partial").exists()


def test_an_unreachable_archive_says_so(tmp_path):
    with pytest.raises(RealViewsUnavailableError, match="cannot download"):
        fetch_real_views(tmp_path / "real", url=(tmp_path / "absent.tar.gz").as_uri(), sha256="")


def test_the_real_set_has_a_readable_catalog_photo_for_every_query(real_views):
    photos = load_catalog(collect_sources([real_views.catalog_dir]))
    assert len(photos) == len(REAL_PAIRS) + len(SAMPLE_PHOTOS)
    queries = real_view_query_sets(real_views)["real views"]
    assert {q.item_id for q in queries} <= {p.item.item_id for p in photos}
    assert all(q.image_bgr.ndim == 3 and min(q.image_bgr.shape[:2]) >= 200 for q in queries)
    backgrounds = real_views.backgrounds()
    assert len(backgrounds) == len(BACKGROUNDS)
    assert all(min(b.shape[:2]) >= 190 for b in backgrounds)
    source = json.loads((real_views.root / "set.json").read_text())["source"]
    assert source.endswith("opencv-python-4.10.0.84.tar.gz")


def test_verification_finds_more_real_second_views_first(featurizer, real_views):
    photos = load_catalog(collect_sources([real_views.catalog_dir]))
    queries = real_view_query_sets(real_views)
    systems = [
        System("vectors", featurizer, CatalogRecipe(), focus=True),
        System("verified", featurizer, CatalogRecipe(), focus=True, verify=True),
    ]
    results = {
        (r.system, r.set_name): r.metrics for r in evaluate_systems(systems, photos, queries)
    }
    for name in queries:  # each group and the whole set: never worse, better overall
        assert results["verified", name].top1 >= results["vectors", name].top1
    assert results["verified", "real views"].top1 > results["vectors", "real views"].top1
