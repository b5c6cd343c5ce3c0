"""Per-device credentials, the ACL and TLS against a real mosquitto."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from typer.testing import CliRunner

from edgelens.broker.accounts import BrokerAccounts, Credentials, password_hash
from edgelens.cli.main import app as cli_app
from edgelens.demo.servers import (
    MAX_PACKET_SIZE,
    MESSAGE_SIZE_LIMIT,
    BrokerTls,
    MosquittoServer,
    free_port,
)
from edgelens.errors import ConfigError
from edgelens.settings import MqttTlsSettings
from edgelens.testing.live import wait_for
from edgelens.wire.features import MAX_MESSAGE_BYTES
from edgelens.wire.mqtt import connect_async, make_client
from edgelens.wire.names import (
    FLEET_MODEL_TOPIC,
    STATUS_ACCOUNT_SUFFIX,
    features_topic,
    model_topic,
    status_topic,
)

REPO = Path(__file__).resolve().parents[2]


class Client:
    """A connected paho client that records what it receives and its publish acks."""

    def __init__(
        self,
        url: str,
        client_id: str,
        tls: MqttTlsSettings | None = None,
        *,
        will_topic: str | None = None,
    ) -> None:
        self.connected = threading.Event()
        self.refused: list[str] = []
        self.received: list[str] = []
        self.acks: dict[int, mqtt.ReasonCode] = {}
        self.granted: list[mqtt.ReasonCode] = []
        self.disconnects: list[str] = []
        self._client = make_client(url, client_id=client_id, tls=tls, reconnect_max_s=1)
        if will_topic is not None:
            self._client.will_set(will_topic, b'{"state": "offline"}', qos=1)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = lambda c, u, f, rc, p: self.disconnects.append(str(rc))
        self._client.on_message = lambda c, u, m: self.received.append(m.topic)
        self._client.on_publish = lambda c, u, mid, rc, p: self.acks.__setitem__(mid, rc)
        self._client.on_subscribe = lambda c, u, mid, codes, p: self.granted.extend(codes)
        connect_async(self._client, url)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refused.append(str(reason_code))
        else:
            self.connected.set()

    def publish(self, topic: str, payload: bytes = b"x") -> mqtt.ReasonCode:
        info = self._client.publish(topic, payload, qos=1)
        wait_for(lambda: info.mid in self.acks)
        return self.acks[info.mid]

    def subscribe(self, topic: str) -> mqtt.ReasonCode:
        self._client.subscribe(topic, qos=1)
        wait_for(lambda: self.granted)
        return self.granted[-1]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def accounts(tmp_path: Path) -> BrokerAccounts:
    return BrokerAccounts(password_file=tmp_path / "passwords", acl_file=tmp_path / "acl")


@pytest.fixture
def secured(accounts: BrokerAccounts):
    creds = {
        "worker": accounts.enroll_worker("worker-1"),
        "cam-a": accounts.enroll_device("cam-a"),
        "cam-b": accounts.enroll_device("cam-b"),
    }
    with MosquittoServer(
        password_file=accounts.password_file, acl_file=accounts.acl_file
    ) as broker:
        yield broker, creds


def test_password_hash_is_what_mosquitto_passwd_writes(tmp_path: Path):
    """Same salt, same password: our line equals the tool's."""
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(tmp_path / "pw"), "alice", "s3cret pass"], check=True
    )
    _, stored = (tmp_path / "pw").read_text().strip().split(":", 1)
    salt = __import__("base64").b64decode(stored.split("$")[3])
    assert password_hash("s3cret pass", salt=salt) == stored


def test_a_device_publishes_only_under_its_own_id(secured):
    broker, creds = secured
    worker = Client(creds["worker"].url(broker.url), "worker")
    cam_a = Client(creds["cam-a"].url(broker.url), "edgelens-device-cam-a")
    try:
        wait_for(lambda: worker.connected.is_set() and cam_a.connected.is_set())
        assert not worker.subscribe("$share/g/edgelens/+/features").is_failure
        cam_a.subscribe("edgelens/#")  # granted, but the ACL delivers it nothing
        assert not cam_a.publish(features_topic("cam-a")).is_failure
        denied = cam_a.publish(features_topic("cam-b"))
        assert denied.is_failure and denied.value == 135  # "Not authorized"
        assert cam_a.publish(status_topic("cam-b")).is_failure
        time.sleep(0.3)
        assert worker.received == [features_topic("cam-a")]
        assert cam_a.received == [], "devices read no features or statuses, not even their own"
        assert worker.publish(features_topic("cam-a")).is_failure, "workers only read"
    finally:
        worker.close()
        cam_a.close()


def test_a_worker_offers_models_and_each_device_reads_only_its_own_and_the_fleets(secured):
    """Model offers are retained: a device that connects later still gets them. A device
    reads its own offer and the fleet's, never another device's, and offers nothing."""
    broker, creds = secured
    worker = Client(creds["worker"].url(broker.url), "worker")
    statuses = Client(_status_account(creds["worker"]).url(broker.url), "worker-statuses")
    try:
        wait_for(lambda: worker.connected.is_set() and statuses.connected.is_set())
        for topic in (FLEET_MODEL_TOPIC, model_topic("cam-a"), model_topic("cam-b")):
            info = worker._client.publish(topic, topic.encode(), qos=1, retain=True)
            wait_for(lambda info=info: info.mid in worker.acks)
            assert not worker.acks[info.mid].is_failure, f"the worker offers on {topic}"
        assert statuses.publish(FLEET_MODEL_TOPIC).is_failure, "its status account does not"
    finally:
        worker.close()
        statuses.close()
    cam_a = Client(creds["cam-a"].url(broker.url), "edgelens-device-cam-a")
    try:
        wait_for(cam_a.connected.is_set)
        assert not cam_a.subscribe("edgelens/#").is_failure
        wait_for(lambda: len(cam_a.received) >= 2)
        time.sleep(0.3)
        assert sorted(cam_a.received) == sorted([FLEET_MODEL_TOPIC, model_topic("cam-a")])
        for topic in (model_topic("cam-a"), model_topic("cam-b"), FLEET_MODEL_TOPIC):
            assert cam_a.publish(topic).is_failure, f"a device offers nothing ({topic})"
    finally:
        cam_a.close()


def test_a_device_cannot_push_another_off_with_its_client_id(secured):
    """The client id is the account: cam-b connecting as cam-a's client id leaves cam-a
    connected, and the worker never sees cam-a's "offline" will."""
    broker, creds = secured
    worker = Client(_status_account(creds["worker"]).url(broker.url), "worker-status")
    cam_a = Client(
        creds["cam-a"].url(broker.url), "edgelens-device-cam-a", will_topic=status_topic("cam-a")
    )
    impostor = None
    try:
        wait_for(lambda: worker.connected.is_set() and cam_a.connected.is_set())
        assert not worker.subscribe("edgelens/+/status").is_failure
        impostor = Client(creds["cam-b"].url(broker.url), "edgelens-device-cam-a")
        wait_for(impostor.connected.is_set)
        time.sleep(1.0)
        assert cam_a.disconnects == [] and worker.received == []
        assert not cam_a.publish(features_topic("cam-a")).is_failure, "still connected"
        assert not impostor.publish(features_topic("cam-b")).is_failure, "as itself"
        assert impostor.publish(features_topic("cam-a")).is_failure, "and only as itself"
    finally:
        for client in (worker, cam_a, impostor):
            if client is not None:
                client.close()


def _status_account(worker: Credentials) -> Credentials:
    return Credentials(worker.username + STATUS_ACCOUNT_SUFFIX, worker.password)


def test_a_worker_reads_frames_and_statuses_on_two_accounts(secured):
    """Each of a worker's connections reads only its own kind of message: a status flood
    queues for the status connection at the broker, never for the frames'."""
    broker, creds = secured
    frames = Client(creds["worker"].url(broker.url), "worker-frames")
    statuses = Client(_status_account(creds["worker"]).url(broker.url), "worker-statuses")
    cam_a = Client(creds["cam-a"].url(broker.url), "edgelens-device-cam-a")
    try:
        wait_for(lambda: all(c.connected.is_set() for c in (frames, statuses, cam_a)))
        for reader in (frames, statuses):
            assert not reader.subscribe("edgelens/#").is_failure
        assert not cam_a.publish(features_topic("cam-a")).is_failure
        assert not cam_a.publish(status_topic("cam-a")).is_failure
        wait_for(lambda: frames.received and statuses.received)
        time.sleep(0.3)
        assert frames.received == [features_topic("cam-a")]
        assert statuses.received == [status_topic("cam-a")]
    finally:
        for client in (frames, statuses, cam_a):
            client.close()


def test_a_real_worker_answers_through_its_two_accounts(secured, live_settings, featurizer):
    from pydantic import AnyUrl

    from edgelens.cloud.worker import Worker

    broker, creds = secured
    settings = live_settings.model_copy(
        update={"mqtt_url": AnyUrl(creds["worker"].url(broker.url))}
    )
    worker = Worker(settings)
    worker.start()
    try:
        wait_for(worker.subscribed.is_set)
    finally:
        worker.stop()


def test_the_broker_drops_payloads_above_its_limit(secured):
    """A frame (QoS 0) above message_size_limit is dropped and the device stays connected;
    a packet above max_packet_size ends the connection. (On mosquitto 2.0.11 a QoS 1
    publish above message_size_limit ends the connection too.)"""
    assert MAX_MESSAGE_BYTES < MESSAGE_SIZE_LIMIT <= MAX_MESSAGE_BYTES + 4096
    assert MESSAGE_SIZE_LIMIT + 256 < MAX_PACKET_SIZE <= MESSAGE_SIZE_LIMIT + 1024, "topic room"
    broker, creds = secured
    worker = Client(creds["worker"].url(broker.url), "worker")
    cam_a = Client(creds["cam-a"].url(broker.url), "edgelens-device-cam-a")
    topic = features_topic("cam-a")

    def send(size: int) -> None:
        cam_a._client.publish(topic, bytes(size), qos=0).wait_for_publish(5)

    try:
        wait_for(lambda: worker.connected.is_set() and cam_a.connected.is_set())
        assert not worker.subscribe("$share/g/edgelens/+/features").is_failure
        send(MESSAGE_SIZE_LIMIT + 1)
        send(MESSAGE_SIZE_LIMIT)
        wait_for(lambda: worker.received)
        time.sleep(0.5)
        assert worker.received == [topic], "only the one within the limit"
        assert cam_a.disconnects == []
        send(MAX_PACKET_SIZE)
        wait_for(lambda: cam_a.disconnects)
        time.sleep(0.5)
        assert worker.received == [topic]
    finally:
        worker.close()
        cam_a.close()


def test_wrong_or_unknown_credentials_are_refused(secured):
    broker, creds = secured
    wrong = Client(creds["cam-a"].url(broker.url).replace(creds["cam-a"].password, "guess"), "w")
    anonymous = Client(broker.url, "anon")
    try:
        wait_for(lambda: wrong.refused and anonymous.refused)
        assert not wrong.connected.is_set() and not anonymous.connected.is_set()
    finally:
        wrong.close()
        anonymous.close()


def test_enroll_cli_adds_a_device_without_restarting_the_broker(secured, settings, monkeypatch):
    broker, _ = secured
    monkeypatch.setenv("EDGELENS_BROKER__PASSWORD_FILE", str(broker.password_file))
    monkeypatch.setenv("EDGELENS_BROKER__ACL_FILE", str(broker.acl_file))
    monkeypatch.setenv("EDGELENS_MQTT_URL", broker.url)
    result = CliRunner().invoke(
        cli_app, ["device", "enroll", "cam-new", "--reload-pid", str(broker.pid)]
    )
    assert result.exit_code == 0, result.output
    assert "reloaded its accounts" in result.output
    url = next(
        line.split("=", 1)[1] for line in result.output.splitlines() if "EDGELENS_MQTT_URL=" in line
    )
    pid_before = broker.pid
    device = Client(url, "edgelens-device-cam-new")
    try:
        wait_for(device.connected.is_set)
        assert not device.publish(features_topic("cam-new")).is_failure
        assert device.publish(features_topic("cam-a")).is_failure
    finally:
        device.close()
    assert broker.pid == pid_before and broker.running


def test_revoked_device_cannot_connect_after_reload(secured, settings, monkeypatch):
    broker, creds = secured
    monkeypatch.setenv("EDGELENS_BROKER__PASSWORD_FILE", str(broker.password_file))
    monkeypatch.setenv("EDGELENS_BROKER__ACL_FILE", str(broker.acl_file))
    revoke = ["device", "revoke", "cam-b", "--reload-pid", str(broker.pid)]
    result = CliRunner().invoke(cli_app, revoke)
    assert result.exit_code == 0 and "device cam-b revoked" in result.output
    again = CliRunner().invoke(cli_app, revoke)
    assert again.exit_code == 1 and "no MQTT account 'cam-b'" in again.output
    time.sleep(0.3)
    revoked = Client(creds["cam-b"].url(broker.url), "edgelens-device-cam-b")
    try:
        wait_for(lambda: revoked.refused)
    finally:
        revoked.close()


def test_bad_names_are_refused(accounts):
    with pytest.raises(ConfigError):
        accounts.enroll_device("../etc")
    with pytest.raises(ConfigError):
        accounts.enroll_worker("bad name")


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scripts/make_ca.sh's CA, broker certificate and a client certificate for cam-a."""
    ca = tmp_path_factory.mktemp("pki") / "ca"
    make_ca = ["bash", str(REPO / "scripts" / "make_ca.sh"), str(ca)]
    subprocess.run(make_ca, check=True, capture_output=True)
    subprocess.run([*make_ca, "--client", "cam-a"], check=True, capture_output=True)
    return ca


def _tls_pair(
    accounts: BrokerAccounts,
    ca: Path,
    good: MqttTlsSettings,
    bad: MqttTlsSettings,
    *,
    client_certs: bool,
) -> None:
    """A broker with a TLS listener; the device with ``good`` gets in, ``bad`` does not."""
    creds = accounts.enroll_device("cam-a")
    tls = BrokerTls(
        port=free_port(),
        ca_file=ca / "ca.crt",
        cert_file=ca / "server.crt",
        key_file=ca / "server.key",
        require_certificate=client_certs,
    )
    with MosquittoServer(
        password_file=accounts.password_file, acl_file=accounts.acl_file, tls=tls
    ) as broker:
        url = creds.url(f"mqtts://localhost:{tls.port}")
        admitted = Client(url, "edgelens-device-cam-a", good)
        refused = Client(url, "refused", bad)
        try:
            wait_for(admitted.connected.is_set)
            assert not admitted.publish(features_topic("cam-a")).is_failure
            time.sleep(1.0)
            assert not refused.connected.is_set()
        finally:
            admitted.close()
            refused.close()
        assert broker.running


def test_tls_listener_with_the_local_ca(accounts, local_ca):
    # Without ca_file the system's CAs check the broker, and they do not know the local CA.
    trusted = MqttTlsSettings(ca_file=local_ca / "ca.crt")
    _tls_pair(accounts, local_ca, trusted, MqttTlsSettings(), client_certs=False)
    with pytest.raises(ConfigError, match="needs its key"):
        make_client(
            "mqtts://localhost:8883",
            client_id="x",
            tls=MqttTlsSettings(cert_file=local_ca / "cam-a.crt"),
        )


def test_client_certificates_when_the_broker_requires_them(accounts, local_ca):
    certified = MqttTlsSettings(
        ca_file=local_ca / "ca.crt",
        cert_file=local_ca / "cam-a.crt",
        key_file=local_ca / "cam-a.key",
    )
    uncertified = MqttTlsSettings(ca_file=local_ca / "ca.crt")
    _tls_pair(accounts, local_ca, certified, uncertified, client_certs=True)


def test_a_worker_gets_two_accounts_and_loses_both(accounts):
    credentials = accounts.enroll_worker("worker-9")
    lines = accounts.password_file.read_text().splitlines()
    assert {line.split(":", 1)[0] for line in lines} == {"worker-9", "worker-9.status"}
    acl = accounts.acl_file.read_text()
    assert (
        "user worker-9\ntopic read edgelens/+/features\n"
        "topic write edgelens/+/model\ntopic write edgelens/_fleet/model\n"
    ) in acl
    assert "pattern read edgelens/%u/model\npattern read edgelens/_fleet/model\n" in acl
    assert "pattern write edgelens/%u/model" not in acl and "write edgelens/#" not in acl
    assert "user worker-9.status\ntopic read edgelens/+/status\n" in acl
    assert accounts.workers() == {"worker-9"} and credentials.username == "worker-9"
    with pytest.raises(ConfigError):
        accounts.enroll_worker("other.status")
    assert accounts.remove("worker-9")
    assert (
        accounts.password_file.read_text() == "" and "worker-9" not in accounts.acl_file.read_text()
    )


def test_the_documented_broker_limits_are_the_tested_ones(tmp_path):
    """docs/security.md's mosquitto.conf sets the limits the broker in these tests runs."""
    text = (Path(__file__).parents[2] / "docs" / "security.md").read_text()
    keys = "message_size_limit|max_packet_size|set_tcp_nodelay|max_queued_\\w+|max_inflight_\\w+"
    documented = dict(re.findall(rf"^({keys}) (\S+)", text, re.M))
    MosquittoServer(workdir=tmp_path).command()
    tested = dict(re.findall(rf"^({keys}) (\S+)$", (tmp_path / "mosquitto.conf").read_text(), re.M))
    assert documented == tested
    assert len(tested) == 6
