"""One way to build a paho-mqtt 2.x client from the settings' ``mqtt://`` URL.

Both the device and the worker use MQTT 5 (shared subscriptions, clean
session semantics) and automatic reconnect with exponential backoff.
"""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from pydantic import AnyUrl

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30


def make_client(url: AnyUrl, *, client_id: str) -> mqtt.Client:
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
    )
    if url.scheme == "mqtts":
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    if url.username:
        client.username_pw_set(url.username, url.password)
    client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
    return client


def connect_async(client: mqtt.Client, url: AnyUrl, *, keepalive: int = 15) -> None:
    """Start the network thread; connecting (and reconnecting) happens in the background,
    so a process starts even while the broker is down."""
    client.connect_async(url.host or "127.0.0.1", url.port or 1883, keepalive=keepalive)
    client.loop_start()
