"""A real-view set: genuine second photographs of real objects and scenes, from PyPI.

The synthetic and clutter sets are generated; only real photos show what a real second
capture does (another viewpoint, other light, the object among others, a stereo partner).
The OpenCV sources that PyPI serves (the ``opencv-python`` sdist) ship such pairs in
``samples/data``: a biscuit box and a shot of it among other things, the graffiti and aerial
viewpoint pairs, a street at two exposures, stereo pairs, consecutive frames, and thirteen
stereo pairs of one chessboard held in thirteen poses, which are near-duplicates of each
other. The first photo of each pair is a catalog item, the second its query; the
scikit-image sample photos join the catalog as distractors (with the motorcycle stereo
pair), so the set is 22 real queries against 41 items.

The same archive also ships ordinary photographs (fruit, a street, a circuit board, a
squirrel...): :data:`BACKGROUNDS` are kept as clutter that is *not* in the catalog, for
item-in-clutter views of things placed among other things rather than among other catalog
items.

The archive is downloaded once, checked against its sha256, and only those images are
kept: nothing is redistributed with this repository.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgelens.errors import EdgelensError
from edgelens.evaluation.runner import Query, folder_photos, folder_queries
from edgelens.evaluation.sample_photos import load_motorcycle_right_view, write_sample_catalog

logger = logging.getLogger(__name__)

OPENCV_SDIST_URL = (
    "https://files.pythonhosted.org/packages/4a/e7/"
    "b70a2d9ab205110d715906fc8ec83fbb00404aeb3a37a0654fdb68eb0c8c/opencv-python-4.10.0.84.tar.gz"
)
OPENCV_SDIST_SHA256 = "72d234e4582e9658ffea8e9cae5b63d488ad06994ef12d81dc303b17472f3526"
SAMPLES_PREFIX = "opencv-python-4.10.0.84/opencv/samples/data/"
SET_VERSION = 2


class RealViewsUnavailableError(EdgelensError):
    """The real-view archive could not be downloaded, verified or read."""


@dataclass(frozen=True)
class RealPair:
    """One catalog photo and its real second view(s), as named in OpenCV's samples/data."""

    item_id: str
    catalog_file: str
    query_files: tuple[str, ...]
    group: str  # "objects and scenes" or "near-duplicates"


_CHESSBOARD_POSES = ("01", "02", "03", "04", "05", "06", "07", "08", "09", "11", "12", "13", "14")

REAL_PAIRS: tuple[RealPair, ...] = (
    RealPair("box", "box.png", ("box_in_scene.png",), "objects and scenes"),
    RealPair("books", "left.jpg", ("right.jpg",), "objects and scenes"),
    RealPair("graffiti", "graf1.png", ("graf3.png",), "objects and scenes"),
    RealPair("aerial", "aero1.jpg", ("aero3.jpg",), "objects and scenes"),
    RealPair("street", "leuvenA.jpg", ("leuvenB.jpg",), "objects and scenes"),
    RealPair("aloe", "aloeL.jpg", ("aloeR.jpg",), "objects and scenes"),
    RealPair("basketball", "basketball1.png", ("basketball2.png",), "objects and scenes"),
    RealPair("rubberwhale", "rubberwhale1.png", ("rubberwhale2.png",), "objects and scenes"),
    *(
        RealPair(f"chessboard{pose}", f"left{pose}.jpg", (f"right{pose}.jpg",), "near-duplicates")
        for pose in _CHESSBOARD_POSES
    ),
)
MOTORCYCLE_GROUP = "objects and scenes"  # scikit-image's stereo pair, already in the catalog
# Photographs, none of them a catalog item of either set (drawings left out).
BACKGROUNDS: tuple[str, ...] = (
    "apple.jpg",
    "baboon.jpg",
    "board.jpg",
    "building.jpg",
    "butterfly.jpg",
    "cards.png",
    "chicky_512.png",
    "fruits.jpg",
    "home.jpg",
    "lena.jpg",
    "messi5.jpg",
    "orange.jpg",
    "pca_test1.jpg",
    "smarties.png",
    "squirrel_cls.jpg",
    "starry_night.jpg",
    "stuff.jpg",
)


@dataclass(frozen=True)
class RealViewSet:
    """Where the set lies: ``catalog/<item_id>.<ext>`` and ``queries/<item_id>/*``."""

    root: Path

    @property
    def catalog_dir(self) -> Path:
        return self.root / "catalog"

    @property
    def queries_dir(self) -> Path:
        return self.root / "queries"

    @property
    def backgrounds_dir(self) -> Path:
        return self.root / "backgrounds"

    def backgrounds(self) -> list[np.ndarray]:
        """The clutter photos, decoded (BGR)."""
        return folder_photos(self.backgrounds_dir)

    def groups(self) -> dict[str, str]:
        """Item id → group, for the items that have queries."""
        return json.loads((self.root / "set.json").read_text())["groups"]


def fetch_real_views(
    directory: Path, *, url: str = OPENCV_SDIST_URL, sha256: str = OPENCV_SDIST_SHA256
) -> RealViewSet:
    """The set under ``directory``, downloaded and written on first use, reused after."""
    real_set = RealViewSet(directory)
    marker = directory / "set.json"
    if marker.exists() and json.loads(marker.read_text()).get("version") == SET_VERSION:
        return real_set
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "opencv-python.tar.gz"
        _download(url, archive, sha256)
        staging = directory.with_name(directory.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            _write_set(archive, staging)
            shutil.rmtree(directory, ignore_errors=True)
            staging.rename(directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # left only by a failure
    logger.info("real-view set written", extra={"path": str(directory)})
    return real_set


def _download(url: str, target: Path, sha256: str) -> None:
    logger.info("downloading the real-view archive", extra={"url": url})
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=120) as response, target.open("wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise RealViewsUnavailableError(f"cannot download {url}: {exc}") from exc
    if digest.hexdigest() != sha256:
        raise RealViewsUnavailableError(
            f"{url} has sha256 {digest.hexdigest()}, expected {sha256}: not the pinned archive"
        )


def _write_set(archive: Path, staging: Path) -> None:
    """Extract the pair images and lay out catalog/, queries/ and set.json in ``staging``."""
    wanted = {pair.catalog_file for pair in REAL_PAIRS} | set(BACKGROUNDS)
    wanted |= {name for pair in REAL_PAIRS for name in pair.query_files}
    extracted = staging / "extracted"
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = member.name.removeprefix(SAMPLES_PREFIX)
                if member.name.startswith(SAMPLES_PREFIX) and name in wanted:
                    member.name = name
                    tar.extract(member, extracted, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise RealViewsUnavailableError(f"cannot read {archive}: {exc}") from exc
    missing = sorted(wanted - {p.name for p in extracted.iterdir()})
    if missing:
        raise RealViewsUnavailableError(f"the archive lacks {missing}")

    catalog, queries = staging / "catalog", staging / "queries"
    write_sample_catalog(catalog)  # the distractors, and the motorcycle's left view
    (catalog / "catalog.json").unlink()  # the folder itself is the catalog: <item_id>.<ext>
    (queries / "motorcycle").mkdir(parents=True)
    cv2.imwrite(str(queries / "motorcycle" / "right.png"), load_motorcycle_right_view())
    for pair in REAL_PAIRS:
        source = extracted / pair.catalog_file
        shutil.copyfile(source, catalog / f"{pair.item_id}{source.suffix}")
        (queries / pair.item_id).mkdir()
        for name in pair.query_files:
            shutil.copyfile(extracted / name, queries / pair.item_id / name)
    (staging / "backgrounds").mkdir()
    for name in BACKGROUNDS:
        shutil.copyfile(extracted / name, staging / "backgrounds" / name)
    shutil.rmtree(extracted)
    groups = {pair.item_id: pair.group for pair in REAL_PAIRS} | {"motorcycle": MOTORCYCLE_GROUP}
    (staging / "set.json").write_text(
        json.dumps({"version": SET_VERSION, "source": OPENCV_SDIST_URL, "groups": groups}) + "\n"
    )


def real_view_query_sets(real_set: RealViewSet) -> dict[str, list[Query]]:
    """All real queries, then each group on its own (the groups ask different things)."""
    queries = folder_queries(real_set.queries_dir)
    groups = real_set.groups()
    sets = {"real views": queries}
    for group in sorted(set(groups.values())):
        sets[f"real views: {group}"] = [q for q in queries if groups.get(q.item_id) == group]
    return sets
