"""One way to build a paho-mqtt 2.x client from the settings' ``mqtt://`` URL.

Devices speak MQTT 5; the worker's own connections speak MQTT 3.1.1 (:data:`WORKER_PROTOCOL`),
and all rely on paho's automatic reconnect with exponential backoff; credentials and TLS come
from the URL (``mqtts://user:password@host:port``).
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from edgelens.errors import ConfigError
from edgelens.settings import MqttTlsSettings

KEEPALIVE_S = 10  # the broker declares a silent client gone after 1.5x this
# paho reads an MQTT 5 publish's properties into an object of their own, about half the
# Python time a received message costs, so the worker, which receives every device's
# messages (and a flood's), connects without them. Its shared subscription works the same:
# mosquitto (like EMQX, HiveMQ and VerneMQ) takes $share/ from 3.1.1 clients.
WORKER_PROTOCOL = mqtt.MQTTv311


def broker_address(mqtt_url: str) -> tuple[str, int]:
    url = urlsplit(mqtt_url)
    if url.scheme not in ("mqtt", "mqtts") or not url.hostname:
        raise ConfigError(f"MQTT URL must look like mqtt://host:port, got {mqtt_url!r}")
    try:
        port = url.port
    except ValueError as exc:
        raise ConfigError(f"invalid port in {mqtt_url!r}") from exc
    return url.hostname, port or (8883 if url.scheme == "mqtts" else 1883)


def broker_label(mqtt_url: str) -> str:
    """``host:port`` of the broker, as log lines name it (no scheme, no credentials)."""
    host, port = broker_address(mqtt_url)
    return f"{host}:{port}"


def make_client(
    mqtt_url: str,
    *,
    client_id: str,
    tls: MqttTlsSettings | None = None,
    reconnect_min_s: float = 1.0,
    reconnect_max_s: float = 30.0,
    username_suffix: str = "",
    protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5,
) -> mqtt.Client:
    """A client for ``mqtt_url``'s broker and account (its user name with
    ``username_suffix``: a worker's second account has the same password), speaking
    ``protocol``."""
    broker_address(mqtt_url)  # fail early on a malformed URL
    url = urlsplit(mqtt_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    if url.username:
        client.username_pw_set(
            unquote(url.username) + username_suffix, unquote(url.password or "") or None
        )
    if url.scheme == "mqtts":
        tls = tls or MqttTlsSettings()
        if (tls.cert_file is None) != (tls.key_file is None):
            raise ConfigError("mqtt_tls: a client certificate needs its key, and the other way")
        try:
            client.tls_set(
                ca_certs=_path(tls.ca_file),
                certfile=_path(tls.cert_file),
                keyfile=_path(tls.key_file),
            )
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ConfigError(f"cannot set up TLS for {mqtt_url}: {exc}") from exc
    # paho annotates the delays as int but computes with them as numbers.
    client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)  # type: ignore[arg-type]
    client.on_socket_open = _send_at_once
    return client


def _send_at_once(client: mqtt.Client, userdata: object, sock: socket.socket) -> None:
    """TCP_NODELAY on the connection: paho leaves Nagle's algorithm on, which holds a small
    publish back while an earlier one is unacknowledged, up to the peer's delayed ACK."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def connect_async(client: mqtt.Client, mqtt_url: str) -> None:
    """Start the network thread; connecting (and reconnecting) happens in the background,
    so a process starts even while the broker is down."""
    host, port = broker_address(mqtt_url)
    try:
        client.connect_async(host, port, keepalive=KEEPALIVE_S)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot use MQTT broker {host}:{port}: {exc}") from exc
    client.loop_start()


def _path(path: Path | None) -> str | None:
    return str(path) if path is not None else None
