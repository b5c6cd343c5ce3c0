"""Build the device bundle: a device-only wheel, the model, config, systemd unit, install.sh.

``edgelens package device --out DIR`` runs this. The wheel holds only what a camera needs
(``device/``, the shared ``wire/`` format, the featurizer runtime, settings and the CLI's
config/model/device groups): no cloud, web, catalog, search or export code, and no torch.
Its requirements are read from edgelens's own metadata (the base ones and the ``[device]``
extra), so pyproject.toml stays the one list of them. Two of them are not plain requirements
on a device: onnxruntime is left out, because ``install.sh`` picks the build that matches
the machine (onnxruntime-gpu for the Jetson's JetPack, onnxruntime elsewhere), and OpenCV is
the wheel's ``[opencv]`` extra, left out on a Jetson whose own OpenCV has GStreamer. The
installer, config template, unit and Dockerfile are package data in ``device_files/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata, resources
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import edgelens
from edgelens.errors import ConfigError
from edgelens.featurizer.manifest import artefact_paths, load_manifest

DIST_NAME = "edgelens-device"
DEVICE_EXTRA = "device"
PACKAGE_DIR = Path(edgelens.__file__).resolve().parent
TEMPLATES = resources.files("edgelens.bundle") / "device_files"
# Each template and the bundle folder it goes into.
BUNDLE_FILES = {
    "device.toml.in": "config",
    "edgelens-device.service": "systemd",
    "Dockerfile.l4t": ".",
    "install.sh": ".",
}

# What the device wheel ships, relative to the edgelens package. Everything else
# (cloud, webapp, catalog, search, models/export, evaluation, demo, bundle) stays out.
DEVICE_MODULES = (
    "__init__.py",
    "errors.py",
    "lifecycle.py",
    "settings.py",
    "wire",
    "featurizer",
    "device",
    "cli/__init__.py",
    "cli/main.py",
    "cli/context.py",
    "cli/config.py",
    "cli/model.py",
    "cli/device.py",
    "cli/enroll.py",  # says "enroll on the broker host" instead of failing to import
)
# Requirements the device wheel does not list: install.sh installs the build for the machine.
PICKED_BY_INSTALLER = frozenset({"onnxruntime"})
# Requirements the device wheel lists as an extra (the name of the extra) instead.
WHEEL_EXTRAS = {"opencv-python-headless": "opencv"}
# How metadata writes an extra's requirement: ``<environment> and extra == "name"``.
_EXTRA_CLAUSE = re.compile(r'^(?:(?P<environment>.+) and )?extra == "(?P<extra>[^"]+)"$')

logger = logging.getLogger(__name__)


def build_bundle(out_dir: Path, *, models_dir: Path, precision: str, archive: bool = False) -> Path:
    """Write the bundle directory (and, with ``archive``, a .tar.gz next to it); return it."""
    manifest = load_manifest(models_dir, precision)  # fails clearly if not exported
    version = edgelens.__version__
    bundle = out_dir / f"{DIST_NAME}-{version}-{precision}"
    if bundle.exists():
        shutil.rmtree(bundle)
    for sub in ("wheels", "models", "config", "systemd"):
        (bundle / sub).mkdir(parents=True)

    wheel = _build_wheel(version, bundle / "wheels")
    onnx_path, manifest_path = artefact_paths(models_dir, precision)
    for path in (onnx_path, manifest_path):
        shutil.copy2(path, bundle / "models" / path.name)
    for name, folder in BUNDLE_FILES.items():
        (bundle / folder / name).write_bytes((TEMPLATES / name).read_bytes())
    (bundle / "install.sh").chmod(0o755)
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    (bundle / "bundle.json").write_text(
        json.dumps(
            {
                "name": DIST_NAME,
                "version": version,
                "precision": precision,
                "model_id": manifest.model_id,
                "wheel": wheel.name,
                "sha256": {str(p.relative_to(bundle)): _sha256(p) for p in files},
            },
            indent=2,
        )
        + "\n"
    )
    logger.info("bundle %s: model %s, wheel %s", bundle, manifest.model_id, wheel.name)
    if archive:
        tar_path = bundle.parent / f"{bundle.name}.tar.gz"
        with tarfile.open(tar_path, "w:gz") as tar:
            tar.add(bundle, arcname=bundle.name)
        logger.info("archive %s", tar_path)
    return bundle


def device_requirements() -> tuple[list[Requirement], dict[str, list[Requirement]]]:
    """The device wheel's requirements and its extras, from edgelens's installed metadata:
    the base requirements and the ``[device]`` extra's, with ``edgelens[...]`` followed."""
    try:
        declared = metadata.requires("edgelens") or []
    except metadata.PackageNotFoundError as exc:
        raise ConfigError(
            "edgelens is not installed (pip install -e .): its metadata lists what the device needs"
        ) from exc
    by_extra: dict[str, list[Requirement]] = {}
    for line in declared:
        requirement = Requirement(line)
        extra, requirement.marker = _split_extra(requirement.marker)
        by_extra.setdefault(extra, []).append(requirement)

    required: list[Requirement] = []
    extras: dict[str, list[Requirement]] = {}
    for requirement in _follow(by_extra, ["", DEVICE_EXTRA]):
        name = canonicalize_name(requirement.name)
        if name in PICKED_BY_INSTALLER:
            continue
        if name in WHEEL_EXTRAS:
            extras.setdefault(WHEEL_EXTRAS[name], []).append(requirement)
        else:
            required.append(requirement)
    return required, extras


def _split_extra(marker: Marker | None) -> tuple[str, Marker | None]:
    """The extra a requirement belongs to ("" for the base ones) and its other conditions."""
    if marker is None:
        return "", None
    text = str(marker)
    match = _EXTRA_CLAUSE.match(text)
    if match is None:
        if re.search(r"\bextra\b", text):
            raise ConfigError(f"cannot tell which extra a requirement belongs to: {text}")
        return "", marker
    environment = match["environment"]
    return match["extra"], Marker(environment) if environment else None


def _follow(by_extra: dict[str, list[Requirement]], extras: list[str]) -> list[Requirement]:
    """The requirements of these extras, in order, each ``edgelens[...]`` replaced by its own."""
    seen: set[str] = set()
    found: list[Requirement] = []
    pending = list(extras)
    while pending:
        extra = pending.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in by_extra.get(extra, []):
            if canonicalize_name(requirement.name) == "edgelens":
                pending.extend(sorted(requirement.extras))
            else:
                found.append(requirement)
    return found


def _build_wheel(version: str, wheel_dir: Path) -> Path:
    """Stage the device modules with their own pyproject and let pip build the wheel."""
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        package = staging / "edgelens"
        for relative in DEVICE_MODULES:
            source = PACKAGE_DIR / relative
            target = package / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target)
        (staging / "pyproject.toml").write_text(_pyproject(version, *device_requirements()))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--wheel-dir",
                str(wheel_dir),
                str(staging),
            ],
            check=True,
        )
    (wheel,) = wheel_dir.glob("edgelens_device-*.whl")
    return wheel


def _pyproject(
    version: str, required: list[Requirement], extras: dict[str, list[Requirement]]
) -> str:
    def toml_list(requirements: list[Requirement]) -> str:
        return "[\n" + "".join(f"    {json.dumps(str(r))},\n" for r in requirements) + "]"

    optional = "\n".join(f"{extra} = {toml_list(reqs)}" for extra, reqs in extras.items())
    return f"""[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "{DIST_NAME}"
version = "{version}"
description = "edgelens device part: camera frames to vectors over MQTT."
requires-python = ">=3.10"
license = "Apache-2.0"
dependencies = {toml_list(required)}

[project.optional-dependencies]
{optional}

[project.scripts]
edgelens = "edgelens.cli.main:app"

[tool.setuptools.packages.find]
include = ["edgelens*"]
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
