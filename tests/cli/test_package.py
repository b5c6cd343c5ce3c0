"""The device bundle: built by the CLI, installed into a clean venv by its install.sh,
then run there against a real mosquitto until a match reaches a real Redis."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import tarfile
import time
import zipfile
from pathlib import Path

import cv2
import pytest
import redis
from packaging.requirements import Requirement
from typer.testing import CliRunner

from edgelens.cli.main import app as cli_app
from edgelens.cloud.worker import Worker
from edgelens.samples.photos import load_photo
from edgelens.samples.views import camera_views
from edgelens.wire.names import matches_key
from edgelens.wire.records import MatchRecord

# What must never reach a device: other parts of edgelens and their heavy packages.
NOT_ON_DEVICE = ("cloud", "webapp", "catalog", "search", "models", "evaluation", "demo")
SERVER_PACKAGES = ("fastapi", "uvicorn", "redis", "faiss-cpu", "torch", "onnx", "scikit-image")


@pytest.fixture(scope="module")
def bundle(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    env = {"EDGELENS_MODELS_DIR": str(models_dir), "EDGELENS_DATA_DIR": str(out / "data")}
    result = CliRunner().invoke(
        cli_app, ["package", "device", "--out", str(out), "--archive"], env=env
    )
    assert result.exit_code == 0, result.output
    return Path(result.output.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def installed(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle installed into a fresh prefix, as a person would on a device."""
    prefix = tmp_path_factory.mktemp("opt") / "edgelens"
    subprocess.run(
        [
            str(bundle / "install.sh"),
            "--prefix",
            str(prefix),
            "--device-id",
            "bundle-cam",
            "--broker",
            "mqtt://broker.invalid:1883",
            "--username",
            "bundle-cam",
            "--password-file",
            "-",
            "--model-server",
            "https://shop-server.invalid",
            "--no-service",
        ],
        input="s3cret&/\n",
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("EDGELENS_")},
    )
    return prefix


def test_bundle_holds_the_device_part_only_and_checksums_match(bundle: Path):
    meta = json.loads((bundle / "bundle.json").read_text())
    for relative, digest in meta["sha256"].items():
        assert hashlib.sha256((bundle / relative).read_bytes()).hexdigest() == digest
    manifest = json.loads((bundle / "models" / "efficientnet-lite0-rgem-fp16.json").read_text())
    assert manifest["model_id"] == meta["model_id"] and meta["precision"] == "fp16"
    assert (bundle / "models" / manifest["onnx_file"]).is_file()
    for name in ("install.sh", "Dockerfile.l4t", "systemd/edgelens-device.service"):
        assert (bundle / name).is_file()
    assert os.access(bundle / "install.sh", os.X_OK)

    with zipfile.ZipFile(bundle / "wheels" / meta["wheel"]) as wheel:
        names = wheel.namelist()
        metadata = wheel.read(next(n for n in names if n.endswith("METADATA"))).decode()
    packages = {n.split("/")[1] for n in names if n.startswith("edgelens/") and n.count("/") > 1}
    assert packages == {"cli", "device", "featurizer", "wire"}
    assert not [n for n in names if any(f"edgelens/{part}" in n for part in NOT_ON_DEVICE)]
    assert "edgelens/cli/cloud.py" not in names and "edgelens/cli/package.py" not in names
    assert not [n for n in names if n.startswith("edgelens/broker")]
    requires = {
        str(Requirement(line.removeprefix("Requires-Dist:")))
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    }
    assert requires == _declared_for_the_device()
    assert not [line for line in requires if any(p in line for p in ("torch", "fastapi", "redis"))]
    assert not [line for line in requires if "onnxruntime" in line], "install.sh picks it"

    with tarfile.open(bundle.parent / f"{bundle.name}.tar.gz") as tar:
        archived = {m.name for m in tar.getmembers() if m.isfile()}
    assert f"{bundle.name}/bundle.json" in archived
    assert {f"{bundle.name}/{relative}" for relative in meta["sha256"]} <= archived


def _declared_for_the_device() -> set[str]:
    """What edgelens's own metadata says a device needs, written as the device wheel must say
    it: the base requirements and the [device] extra's, the [featurizer] extra's OpenCV as
    the wheel's [opencv] extra and its onnxruntime left to install.sh."""
    declared = [Requirement(line) for line in importlib.metadata.requires("edgelens") or []]

    def extra(name: str) -> list[Requirement]:
        return [r for r in declared if str(r.marker) == f'extra == "{name}"']

    base = {str(r) for r in declared if r.marker is None or "extra" not in str(r.marker)}
    device = {f"{r.name}{r.specifier}" for r in extra("device") if r.name != "edgelens"}
    assert [r.extras for r in extra("device") if r.name == "edgelens"] == [{"featurizer"}]
    featurizer = {r.name: r for r in extra("featurizer")}
    assert set(featurizer) == {"opencv-python-headless", "onnxruntime"}
    opencv = featurizer["opencv-python-headless"]
    assert base and any(r.startswith("paho-mqtt") for r in device)
    return base | device | {f'{opencv.name}{opencv.specifier}; extra == "opencv"'}


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        (None, "onnxruntime: onnxruntime from PyPI"),
        ("# R36 (release), REVISION: 4.0, GCID: 1, BOARD: generic", "jp6/cu126"),
        ("# R36 (release), REVISION: 3.0, GCID: 1, BOARD: generic", "jp6/cu122"),
    ],
)
def test_install_picks_onnxruntime_for_the_jetpack(bundle: Path, tmp_path: Path, release, expected):
    marker = tmp_path / "nv_tegra_release"
    if release:
        marker.write_text(release + "\n")
    env = {**os.environ, "EDGELENS_TEGRA_RELEASE": str(marker)}
    detect = [str(bundle / "install.sh"), "--detect"]
    if release:  # JetPack 6's wheels are on no default index: the script says which it needs
        refused = subprocess.run(detect, env=env, capture_output=True, text=True)
        assert refused.returncode == 1 and "--ort-index" in refused.stderr, refused.stderr
        assert expected in refused.stderr
        detect += ["--ort-index", "https://mirror.example/jetson"]
    result = subprocess.run(detect, env=env, capture_output=True, text=True, check=True)
    assert expected in result.stdout
    assert ("platform: jetson jetpack=6" in result.stdout) == bool(release)
    if release:
        assert "from https://mirror.example/jetson" in result.stdout


def test_install_refuses_jetpack_5_without_a_wheel(bundle: Path, tmp_path: Path):
    marker = tmp_path / "nv_tegra_release"
    marker.write_text("# R35 (release), REVISION: 4.1, GCID: 1\n")
    env = {**os.environ, "EDGELENS_TEGRA_RELEASE": str(marker)}
    refused = subprocess.run(
        [str(bundle / "install.sh"), "--detect"], env=env, capture_output=True, text=True
    )
    assert refused.returncode == 1 and "--ort-wheel" in refused.stderr
    given = subprocess.run(
        [str(bundle / "install.sh"), "--detect", "--ort-wheel", "/wheels/ort.whl"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "onnxruntime: wheel /wheels/ort.whl" in given.stdout


def _install(script: Path, *args: str, password: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(script), "--no-service", *args],
        input=password,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("EDGELENS_")},
    )


@pytest.mark.parametrize(
    ("broker", "message"),
    [
        ([], "no broker address: pass --broker"),
        (["--broker", ""], "no broker address: pass --broker"),
        (["--broker"], "--broker needs a value"),
        (["--broker", "http://broker.example"], "--broker must look like mqtts://host:8883"),
        (["--broker", "broker.example:mqtt"], "--broker must look like mqtts://host:8883"),
    ],
    ids=["absent", "empty", "no-value", "http", "bad-port"],
)
def test_install_refuses_without_a_broker_address_before_installing(
    bundle: Path, tmp_path: Path, broker, message
):
    """No silent 127.0.0.1: a device told nothing would look for a broker on itself."""
    prefix = tmp_path / "opt"
    refused = _install(bundle / "install.sh", "--prefix", str(prefix), *broker)
    assert refused.returncode == 1
    assert message in refused.stderr
    assert not prefix.exists(), "nothing installed"


@pytest.mark.parametrize(
    ("broker", "shown"),
    [
        ("127.0.0.1", "mqtt://127.0.0.1:1883"),
        ("10.0.0.7:1884", "mqtt://10.0.0.7:1884"),
        ("mqtts://broker.example", "mqtts://broker.example:8883"),
    ],
)
def test_install_takes_a_broker_address_given_on_purpose(
    bundle: Path, tmp_path: Path, broker, shown
):
    """A bare address is plain MQTT; the broker is said without the password. (The script
    alone, without the bundle's wheel, stops right after: nothing is installed.)"""
    script = tmp_path / "install.sh"
    shutil.copy2(bundle / "install.sh", script)
    prefix = tmp_path / "opt"
    args = ["--prefix", str(prefix), "--broker", broker, "--username", "cam", "--password-file"]
    run = _install(script, *args, "-", password="pa55word\n")
    assert f"==> broker: {shown}\n" in run.stdout
    assert "pa55word" not in run.stdout + run.stderr
    assert run.returncode == 1 and "no edgelens_device wheel" in run.stderr
    assert not prefix.exists()


def test_installed_bundle_has_no_server_parts_and_a_private_config(installed: Path):
    python = installed / "venv" / "bin" / "python"
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    present = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"edgelens-device", "onnxruntime", "paho-mqtt"} <= present
    assert not present & set(SERVER_PACKAGES)
    for module in ("webapp", "edgelens.webapp", "edgelens.cloud"):
        # Run outside the source tree, whose edgelens/ would otherwise shadow the install.
        probe = subprocess.run(
            [str(python), "-c", f"import {module}"], capture_output=True, cwd=installed
        )
        assert probe.returncode == 1 and b"ModuleNotFoundError" in probe.stderr

    enroll = subprocess.run(
        [str(installed / "venv" / "bin" / "edgelens"), "device", "enroll", "cam-x"],
        capture_output=True,
        text=True,
        cwd=installed,
        env={k: v for k, v in os.environ.items() if not k.startswith("EDGELENS_")},
    )
    assert enroll.returncode == 1 and "enroll on the broker host" in enroll.stdout + enroll.stderr

    config = installed / "etc" / "device.toml"
    assert config.stat().st_mode & 0o077 == 0, "the config holds the MQTT password"
    text = config.read_text()
    assert 'mqtt_url = "mqtt://bundle-cam:s3cret%26%2F@broker.invalid:1883"' in text
    assert 'device_id = "bundle-cam"' in text and 'precision = "fp16"' in text
    assert 'model_server_url = "https://shop-server.invalid"' in text


def test_installed_device_loop_gets_a_match_into_redis(
    bundle: Path, installed: Path, live_settings, tmp_path
):
    """The installed CLI plays a video of the coffee cup against the real broker; the
    worker (FP32 catalog) takes its FP16 vectors and pushes the match into Redis."""
    video = tmp_path / "coffee.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for view in camera_views(load_photo("coffee"), count=10, seed=5):
        writer.write(cv2.resize(view, (640, 480)))
    writer.release()

    worker = Worker(live_settings)
    worker.start()
    rdb = redis.Redis.from_url(str(live_settings.redis_url))
    try:
        assert worker.subscribed.wait(10)
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGELENS_")}
        env.update(
            EDGELENS_CONFIG=str(installed / "etc" / "device.toml"),
            EDGELENS_MQTT_URL=str(live_settings.mqtt_url),  # the environment overrides the file
            EDGELENS_FEATURIZER__PROVIDERS='["cpu"]',
        )
        run = subprocess.run(
            [str(installed / "venv" / "bin" / "edgelens"), "device", "run", "--source", str(video)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stderr
        assert "device bundle-cam: captured 10" in run.stdout
        deadline = time.monotonic() + 10
        while not rdb.llen(matches_key("bundle-cam")) and time.monotonic() < deadline:
            time.sleep(0.05)
        raw = rdb.lrange(matches_key("bundle-cam"), 0, -1)
    finally:
        rdb.close()
        worker.stop()
    records = [MatchRecord.from_json(r) for r in raw]
    assert records, "no match reached Redis"
    assert {r.model_id for r in records} == {
        json.loads((bundle / "bundle.json").read_text())["model_id"]
    }
    assert all(r.matches[0].item_id == "coffee" for r in records)
