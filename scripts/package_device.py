"""Build the device bundle: a device-only wheel, the model, config, systemd unit, install.sh.

``edgelens package device --out DIR`` runs this (so does ``python scripts/package_device.py``).
The wheel holds only what a camera needs (``device/``, the shared ``wire/`` format, the
featurizer runtime, settings and the CLI's config/model/device groups): no cloud, web,
catalog, search or export code, and no torch. onnxruntime is not one of its requirements,
because ``install.sh`` picks the build that matches the machine (onnxruntime-gpu for the
Jetson's JetPack, onnxruntime elsewhere); OpenCV is the ``[opencv]`` extra, left out on a
Jetson whose own OpenCV has GStreamer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "device"
DIST_NAME = "edgelens-device"

# What the device wheel ships, relative to the edgelens package. Everything else
# (cloud, webapp, catalog, search, models/export, evaluation, demo) stays out.
DEVICE_MODULES = (
    "__init__.py",
    "errors.py",
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
REQUIREMENTS = (
    "numpy>=1.24",
    "pydantic>=2.6",
    "pydantic-settings>=2.3",
    "typer>=0.12",
    "rich>=13",
    "tomli>=2; python_version < '3.11'",
    "paho-mqtt>=2.0,<3",
)
OPENCV = "opencv-python-headless>=4.8"

logger = logging.getLogger("package_device")


def build_bundle(out_dir: Path, *, models_dir: Path, precision: str, archive: bool = False) -> Path:
    """Write the bundle directory (and, with ``archive``, a .tar.gz next to it); return it."""
    sys.path.insert(0, str(REPO))
    from edgelens import __version__
    from edgelens.featurizer.manifest import artefact_paths, load_manifest

    manifest = load_manifest(models_dir, precision)  # fails clearly if not exported
    bundle = out_dir / f"{DIST_NAME}-{__version__}-{precision}"
    if bundle.exists():
        shutil.rmtree(bundle)
    for sub in ("wheels", "models", "config", "systemd"):
        (bundle / sub).mkdir(parents=True)

    wheel = _build_wheel(__version__, bundle / "wheels")
    onnx_path, manifest_path = artefact_paths(models_dir, precision)
    for path in (onnx_path, manifest_path):
        shutil.copy2(path, bundle / "models" / path.name)
    shutil.copy2(TEMPLATES / "device.toml.in", bundle / "config")
    shutil.copy2(TEMPLATES / "edgelens-device.service", bundle / "systemd")
    shutil.copy2(TEMPLATES / "Dockerfile.l4t", bundle)
    shutil.copy2(TEMPLATES / "install.sh", bundle)
    (bundle / "install.sh").chmod(0o755)
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    (bundle / "bundle.json").write_text(
        json.dumps(
            {
                "name": DIST_NAME,
                "version": __version__,
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


def _build_wheel(version: str, wheel_dir: Path) -> Path:
    """Stage the device modules with their own pyproject and let pip build the wheel."""
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        package = staging / "edgelens"
        for relative in DEVICE_MODULES:
            source = REPO / "edgelens" / relative
            target = package / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, target)
        (staging / "pyproject.toml").write_text(_pyproject(version))
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


def _pyproject(version: str) -> str:
    requirements = ",\n".join(f"    {json.dumps(r)}" for r in REQUIREMENTS)
    return f"""[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "{DIST_NAME}"
version = "{version}"
description = "edgelens device part: camera frames to vectors over MQTT."
requires-python = ">=3.10"
license = "Apache-2.0"
dependencies = [
{requirements},
]

[project.optional-dependencies]
opencv = [{json.dumps(OPENCV)}]

[project.scripts]
edgelens = "edgelens.cli.main:app"

[tool.setuptools.packages.find]
include = ["edgelens*"]
"""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--models-dir", type=Path, default=REPO / "data" / "models")
    parser.add_argument("--precision", default="fp16", choices=("fp32", "fp16", "int8"))
    parser.add_argument("--archive", action="store_true", help="also write a .tar.gz")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build_bundle(
        args.out, models_dir=args.models_dir, precision=args.precision, archive=args.archive
    )


if __name__ == "__main__":
    main()
