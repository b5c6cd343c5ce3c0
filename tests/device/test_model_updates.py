"""A running device switches to the model it is offered: real mosquitto, a real HTTP(S)
model server in a thread (HTTP Basic with the device's broker account), real models."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import os
import signal
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import AnyUrl, ValidationError
from typer.testing import CliRunner

from edgelens.cli.main import app as cli_app
from edgelens.demo.servers import MosquittoServer, free_port
from edgelens.device import model_updates
from edgelens.device.loop import DeviceLoop
from edgelens.device.model_updates import OFFERED_DIR, ModelUpdates
from edgelens.featurizer.manifest import ModelManifest, artefact_paths
from edgelens.featurizer.runtime import Featurizer
from edgelens.samples.photos import load_photo
from edgelens.settings import DeviceSettings, Settings
from edgelens.testing.live import MqttRecorder
from edgelens.wire.features import FeatureMessage, decode
from edgelens.wire.names import FLEET_MODEL_TOPIC, features_topic, model_topic, status_topic
from edgelens.wire.rollout import ModelOffer
from edgelens.wire.status import DeviceStatus

REPO = Path(__file__).resolve().parents[2]
DEVICE = "cam-r"
PASSWORD = "device-secret"


def _wait_until(condition: Callable[[], object], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@dataclass
class Model:
    manifest: ModelManifest
    manifest_bytes: bytes
    onnx: bytes

    @property
    def model_id(self) -> str:
        return self.manifest.model_id

    def offer(self) -> ModelOffer:
        return ModelOffer(self.model_id, self.manifest.precision, self.manifest.pooling)


@pytest.fixture(scope="module")
def models(models_dir: Path) -> dict[str, Model]:
    """The exported models as the web app serves them: ModelManifest.to_dict() and bytes."""
    found = {}
    for precision in ("fp32", "fp16", "int8"):
        onnx_path, manifest_path = artefact_paths(models_dir, precision)
        manifest = ModelManifest.load(manifest_path)
        found[precision] = Model(
            manifest, json.dumps(manifest.to_dict()).encode(), onnx_path.read_bytes()
        )
    return found


@dataclass
class ModelServer:
    """``GET /models/<id>/manifest`` and ``/models/<id>/onnx`` behind HTTP Basic, as the
    web app serves them; what it serves and who it lets in can be changed by a test."""

    models: dict[str, tuple[bytes, bytes]]
    user: str = DEVICE
    password: str = PASSWORD
    port: int = 0
    tls: ssl.SSLContext | None = None
    redirect: bool = False
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                expected = base64.b64encode(f"{server.user}:{server.password}".encode())
                if self.headers.get("Authorization") != f"Basic {expected.decode()}":
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="edgelens"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if server.redirect:
                    self.send_response(302)
                    self.send_header("Location", "http://elsewhere.invalid/model")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                parts = self.path.split("/")
                files = server.models.get(parts[2]) if len(parts) == 4 else None
                if files is None or parts[3] not in ("manifest", "onnx"):
                    self.send_error(404)
                    return
                body = files[0] if parts[3] == "manifest" else files[1]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if self.tls is not None:
            self._httpd.socket = self.tls.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def serve(self, model: Model, *, manifest: bytes | None = None, onnx: bytes | None = None):
        self.models[model.model_id] = (manifest or model.manifest_bytes, onnx or model.onnx)

    def downloads(self) -> list[str]:
        return [path.rsplit("/", 1)[-1] for path in self.requests]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def model_server(models) -> Iterator[ModelServer]:
    server = ModelServer({})
    for model in models.values():
        server.serve(model)
    yield server
    server.close()


class Broker(MqttRecorder):
    """A plain paho client: offers models (retained, as the worker does) and records
    everything under the device's topics."""

    def __init__(self, server: MosquittoServer) -> None:
        super().__init__(server.port, f"edgelens/{DEVICE}/#")

    def offer(self, topic: str, offer: ModelOffer | None) -> None:
        """Offer a model on ``topic``, retained; None takes the retained offer back."""
        payload = offer.to_json() if offer is not None else b""
        self.client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)

    def statuses(self) -> list[dict]:
        return [json.loads(p) for p in self.payloads(status_topic(DEVICE))]

    def status(self) -> dict:
        return self.statuses()[-1] if self.statuses() else {}

    def features(self) -> list[FeatureMessage]:
        return [decode(p) for p in self.payloads(features_topic(DEVICE))]


@pytest.fixture
def broker(mosquitto_server) -> Iterator[Broker]:
    client = Broker(mosquitto_server)
    yield client
    client.close()


@pytest.fixture(scope="module")
def shelf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A folder holding one photo: looped, a camera that keeps looking at one item."""
    folder = tmp_path_factory.mktemp("shelf")
    image = cv2.resize(load_photo("coffee"), (320, 240))
    cv2.imwrite(str(folder / "coffee.png"), image)
    return folder, cv2.imread(str(folder / "coffee.png"))


@dataclass
class Device:
    loop: DeviceLoop
    updates: ModelUpdates
    thread: threading.Thread

    def stop(self) -> None:
        self.loop.stop.set()
        self.thread.join(10)
        self.updates.close()
        assert not self.thread.is_alive()


@pytest.fixture
def start_device(
    settings: Settings, mosquitto_server, shelf, featurizer
) -> Iterator[Callable[..., Device]]:
    """Starts a looping device running the FP32 model, with its model updates as `edgelens
    device run` wires them; stopped after the test."""
    started: list[Device] = []

    def start(server_url: str | None, *, password: str = PASSWORD) -> Device:
        mqtt_url = mosquitto_server.url.replace("mqtt://", f"mqtt://{DEVICE}:{password}@")
        device = DeviceSettings(
            device_id=DEVICE,
            source=str(shelf[0]),
            loop=True,
            fps_cap=10,
            gating=False,
            send_view=False,
            status_interval_s=0.2,
            model_server_url=server_url,
        )
        loop = DeviceLoop(device=device, featurizer=featurizer, mqtt_url=mqtt_url)
        updates = ModelUpdates.for_loop(
            loop, settings.model_copy(update={"mqtt_url": AnyUrl(mqtt_url)})
        )
        updates.start()
        thread = threading.Thread(target=loop.run)
        thread.start()
        started.append(Device(loop, updates, thread))
        return started[-1]

    yield start
    for device in started:
        device.stop()


def _runs(broker: Broker, model_id: str) -> Callable[[], bool]:
    """Whether the device's status says it runs ``model_id`` with nothing amiss, and a
    frame of that model went out."""

    def check() -> bool:
        status = broker.status()
        return (
            status.get("model_id") == model_id
            and "model_problem" not in status
            and any(m.model_id == model_id for m in broker.features())
        )

    return check


def _offered_folders(settings: Settings) -> list[str]:
    folder = settings.data_dir / OFFERED_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_a_retained_fleet_offer_switches_the_running_device_and_a_restart_keeps_it(
    start_device, broker, model_server, models, featurizers, shelf, settings
):
    fp32, int8 = models["fp32"], models["int8"]
    broker.offer(FLEET_MODEL_TOPIC, int8.offer())  # before the device connects: retained
    device = start_device(model_server.url)
    _wait_until(_runs(broker, int8.model_id))
    _wait_until(lambda: sum(m.model_id == int8.model_id for m in broker.features()) >= 3)
    device.stop()

    messages = broker.features()
    ids = [m.model_id for m in messages]
    # never a restart: one run, its seqs go on, the FP32 frames (if any) all before
    assert [m.seq for m in messages] == sorted(m.seq for m in messages)
    assert ids == sorted(ids, key=lambda model_id: model_id == int8.model_id)
    assert set(ids) <= {fp32.model_id, int8.model_id}
    # the INT8 frames carry the INT8 model's vectors (not the FP32's, labelled anew)
    image = shelf[1]
    expected = {p: featurizers[p].embed([image])[0] for p in ("fp32", "int8")}
    for message in messages:
        precision = "int8" if message.model_id == int8.model_id else "fp32"
        np.testing.assert_allclose(message.embedding, expected[precision], atol=4e-3)
    assert np.abs(expected["int8"] - expected["fp32"]).max() > 1e-2
    statuses = broker.statuses()
    for status in statuses:
        DeviceStatus.model_validate(status)  # what the worker accepts
    assert statuses[-1]["state"] == "offline" and statuses[-1]["model_id"] == int8.model_id
    assert model_server.downloads() == ["manifest", "onnx"]
    assert device.updates.downloads == 1 and device.updates.switched == 1
    assert _offered_folders(settings) == [int8.model_id]  # no staging folder left
    stored = settings.data_dir / OFFERED_DIR / int8.model_id
    assert (stored / "model.onnx").read_bytes() == int8.onnx

    # Started again on its FP32 model, it takes the offered one from disk, checked.
    again = start_device(model_server.url)
    _wait_until(lambda: again.updates.switched == 1)
    _wait_until(lambda: again.loop.model_id == int8.model_id)
    assert model_server.downloads() == ["manifest", "onnx"] and again.updates.downloads == 0


def test_the_devices_own_offer_wins_over_the_fleets_until_taken_back(
    start_device, broker, model_server, models
):
    fp16, int8 = models["fp16"], models["int8"]
    broker.offer(FLEET_MODEL_TOPIC, fp16.offer())
    broker.offer(model_topic(DEVICE), int8.offer())
    device = start_device(model_server.url)
    _wait_until(_runs(broker, int8.model_id))
    # Its own offer arrives first (subscribed first), so the fleet's is never fetched.
    assert f"/models/{fp16.model_id}/manifest" not in model_server.requests
    assert device.loop.model_id == int8.model_id

    broker.offer(model_topic(DEVICE), None)  # the admin takes it back: the fleet's counts
    _wait_until(_runs(broker, fp16.model_id))
    _wait_until(lambda: [m.model_id for m in broker.features()[-3:]] == [fp16.model_id] * 3)


def _wrong_sha256(server: ModelServer, model: Model, monkeypatch) -> None:
    manifest = json.loads(model.manifest_bytes)
    manifest["onnx_sha256"] = "0" * 64
    server.serve(model, manifest=json.dumps(manifest).encode())


def _not_a_model(server: ModelServer, model: Model, monkeypatch) -> None:
    garbage = b"not an onnx graph" * 100
    manifest = json.loads(model.manifest_bytes)
    manifest["onnx_sha256"] = hashlib.sha256(garbage).hexdigest()
    server.serve(model, manifest=json.dumps(manifest).encode(), onnx=garbage)


def _another_models_manifest(server: ModelServer, model: Model, monkeypatch) -> None:
    other = json.loads(model.manifest_bytes)
    other["model_id"] = "efficientnet-lite0-rgem-int8-000000000000"
    server.serve(model, manifest=json.dumps(other).encode())


def _too_big(server: ModelServer, model: Model, monkeypatch) -> None:
    monkeypatch.setattr(model_updates, "MAX_ONNX_BYTES", len(model.onnx) - 1)


def _wrong_password(server: ModelServer, model: Model, monkeypatch) -> None:
    server.password = "not-the-device's"


def _redirected(server: ModelServer, model: Model, monkeypatch) -> None:
    server.redirect = True


def _not_there(server: ModelServer, model: Model, monkeypatch) -> None:
    del server.models[model.model_id]


FAILURES = [
    (_wrong_sha256, "sha256 of the ONNX file differs from the manifest"),
    (_wrong_password, "refused the device's credentials (HTTP 401)"),
    (_not_there, "does not have it (HTTP 404)"),
    (_redirected, "redirects are not followed"),
    (_another_models_manifest, "the manifest is for another model"),
    (_not_a_model, "the ONNX file does not load"),
    (_too_big, "the ONNX file is larger than"),
    (None, "can't reach the model server"),  # nothing listens at the URL
]


@pytest.mark.parametrize(
    ("spoil", "said"), FAILURES, ids=[getattr(s, "__name__", "_no_server")[1:] for s, _ in FAILURES]
)
def test_an_offer_that_fails_leaves_the_old_model_running_and_says_why(
    start_device, broker, model_server, models, settings, monkeypatch, spoil, said
):
    fp32, int8 = models["fp32"], models["int8"]
    if spoil is None:
        url = f"http://127.0.0.1:{free_port()}"
    else:
        spoil(model_server, int8, monkeypatch)
        url = model_server.url
    device = start_device(url)
    _wait_until(lambda: broker.features())
    broker.offer(FLEET_MODEL_TOPIC, int8.offer())  # while it runs
    _wait_until(lambda: "model_problem" in broker.status())
    status = broker.status()
    assert status["model_problem"].startswith(f"can't run {int8.model_id}: ")
    assert said in status["model_problem"], status["model_problem"]
    assert status["model_id"] == fp32.model_id and status["state"] == "online"
    DeviceStatus.model_validate(status)
    # The loop keeps publishing FP32 frames, and the status keeps saying why.
    sent = len(broker.features())
    _wait_until(lambda: len(broker.features()) >= sent + 3)
    assert {m.model_id for m in broker.features()} == {fp32.model_id}
    refreshed = len(broker.statuses())
    _wait_until(lambda: len(broker.statuses()) >= refreshed + 2)
    assert said in broker.status()["model_problem"]
    assert device.loop.model_id == fp32.model_id and device.updates.failed == 1
    assert _offered_folders(settings) == []  # nothing half-written kept


def test_an_offer_of_the_running_model_downloads_nothing_and_clears_the_problem(
    start_device, broker, model_server, models
):
    fp32, int8 = models["fp32"], models["int8"]
    model_server.password = "rotated"
    device = start_device(model_server.url)
    broker.offer(FLEET_MODEL_TOPIC, int8.offer())
    _wait_until(lambda: "model_problem" in broker.status())
    asked = list(model_server.requests)
    assert asked == [f"/models/{int8.model_id}/manifest"]

    broker.offer(model_topic(DEVICE), fp32.offer())  # an admin keeps this device on FP32
    _wait_until(lambda: device.updates.handled == 2)
    _wait_until(lambda: "model_problem" not in broker.status())
    assert model_server.requests == asked and device.updates.downloads == 0
    assert broker.status()["model_id"] == fp32.model_id == device.loop.model_id


def test_a_server_away_is_tried_again_until_the_model_comes(
    start_device, broker, models, monkeypatch
):
    monkeypatch.setattr(model_updates, "RETRY_INITIAL_S", 0.2)
    port = free_port()
    device = start_device(f"http://127.0.0.1:{port}")
    broker.offer(FLEET_MODEL_TOPIC, models["int8"].offer())
    _wait_until(lambda: "can't reach the model server" in broker.status().get("model_problem", ""))
    server = ModelServer({}, port=port)
    try:
        server.serve(models["int8"])
        _wait_until(_runs(broker, models["int8"].model_id))
    finally:
        server.close()
    assert device.updates.failed >= 1 and device.updates.switched == 1


def test_with_rollouts_off_the_device_keeps_its_model_and_says_so_once(
    start_device, broker, models, caplog
):
    caplog.set_level(logging.INFO, logger="edgelens.device")
    device = start_device(None)
    for precision in ("int8", "fp16"):
        broker.offer(FLEET_MODEL_TOPIC, models[precision].offer())
    _wait_until(lambda: device.updates.handled >= 1 and "model_problem" in broker.status())
    _wait_until(lambda: models["fp16"].model_id in broker.status()["model_problem"])
    assert "rollouts are off" in broker.status()["model_problem"]
    assert caplog.text.count("model rollouts are off on this device") == 1
    assert device.loop.model_id == models["fp32"].model_id


class _Target:
    """A stand-in for the loop: what the updates tell it."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.problems: list[str | None] = []
        self.swapped: list[Featurizer] = []

    def swap_featurizer(self, featurizer: Featurizer) -> None:
        self.swapped.append(featurizer)

    def set_model_problem(self, problem: str | None) -> None:
        self.problems.append(problem)

    def listen(self, topics: Sequence[str], listener: object) -> None:
        assert list(topics) == [model_topic(DEVICE), FLEET_MODEL_TOPIC]


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ca = tmp_path_factory.mktemp("pki") / "ca"
    subprocess.run(
        ["bash", str(REPO / "scripts" / "make_ca.sh"), str(ca)], check=True, capture_output=True
    )
    return ca


@pytest.mark.parametrize("trusted", [True, False], ids=["mqtt_tls.ca_file", "system CAs"])
def test_https_checks_the_server_against_the_brokers_ca(
    models, local_ca, tmp_path, caplog, trusted
):
    caplog.set_level(logging.INFO, logger="edgelens.device")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(local_ca / "server.crt", local_ca / "server.key")
    server = ModelServer({}, tls=context)
    server.serve(models["int8"])
    target = _Target(models["fp32"].model_id)
    updates = ModelUpdates(
        target=target,
        device_id=DEVICE,
        server_url=server.url + "/",
        mqtt_url=f"mqtts://{DEVICE}:{PASSWORD}@127.0.0.1:8883",
        folder=tmp_path / "offered",
        load=functools.partial(Featurizer, providers=["cpu"]),
        ca_file=local_ca / "ca.crt" if trusted else None,
    )
    try:
        with updates:
            updates.hear(FLEET_MODEL_TOPIC, models["int8"].offer().to_json(), True)
            _wait_until(lambda: updates.handled == 1)
    finally:
        server.close()
    if trusted:
        assert [f.model_id for f in target.swapped] == [models["int8"].model_id]
        assert target.problems == [None]
    else:
        assert target.swapped == []
        (problem,) = target.problems
        assert "can't reach the model server" in problem and "CERTIFICATE_VERIFY_FAILED" in problem
    assert "model updates stopped: 1 offer(s)" in caplog.text


def test_offers_that_are_no_offers_are_ignored(tmp_path, caplog):
    target = _Target("model-a")
    updates = ModelUpdates(
        target=target,
        device_id=DEVICE,
        server_url=None,
        mqtt_url="mqtt://127.0.0.1:1883",
        folder=tmp_path,
        load=functools.partial(Featurizer, providers=["cpu"]),
    )
    with updates:
        for payload in (b"{", b'{"model_id": "x"}', b"\xff" * 5000):
            updates.hear(FLEET_MODEL_TOPIC, payload, True)
        updates.hear("edgelens/other/model", ModelOffer("b", "int8", "rgem").to_json(), True)
        updates.hear(FLEET_MODEL_TOPIC, ModelOffer("model-a", "fp32", "rgem").to_json(), True)
        _wait_until(lambda: updates.handled == 1)
    assert caplog.text.count("model offer on edgelens/_fleet/model ignored") == 3
    assert target.problems == [None] and target.swapped == []


def test_the_model_server_setting_takes_a_web_address_without_credentials():
    assert DeviceSettings().model_server_url is None
    for url in ("https://shop.lan", "https://shop.lan:8443/edgelens/", "http://127.0.0.1:8000"):
        assert DeviceSettings(model_server_url=url).model_server_url == url
    for url in ("ftp://shop.lan", "https://user:pw@shop.lan", "shop.lan", "https://"):
        with pytest.raises(ValidationError, match="model_server_url"):
            DeviceSettings(model_server_url=url)


def test_cli_device_run_switches_to_the_offered_model(
    settings, mosquitto_server, broker, model_server, models, shelf, monkeypatch
):
    """`edgelens device run` wires the updates in: a retained offer switches it."""
    int8 = models["int8"]
    mqtt_url = mosquitto_server.url.replace("mqtt://", f"mqtt://{DEVICE}:{PASSWORD}@")
    monkeypatch.setenv("EDGELENS_MQTT_URL", mqtt_url)
    monkeypatch.setenv("EDGELENS_DEVICE__MODEL_SERVER_URL", model_server.url)
    monkeypatch.setenv("EDGELENS_DEVICE__GATING", "false")
    broker.offer(FLEET_MODEL_TOPIC, int8.offer())

    def terminate_once_switched() -> None:
        _wait_until(_runs(broker, int8.model_id))
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_once_switched)
    killer.start()
    command = ["device", "run", "--source", str(shelf[0]), "--device-id", DEVICE, "--loop"]
    result = CliRunner().invoke(cli_app, command, catch_exceptions=False)
    killer.join()
    assert result.exit_code == 0, result.output
    _wait_until(lambda: broker.status().get("state") == "offline")
    assert broker.status()["model_id"] == int8.model_id
    assert (settings.data_dir / OFFERED_DIR / int8.model_id / "model.onnx").is_file()
