"""The MQTT client every part builds (edgelens.wire.mqtt), against a real mosquitto."""

from __future__ import annotations

import socket

import pytest

from edgelens.errors import ConfigError
from edgelens.testing.live import wait_for
from edgelens.wire.mqtt import broker_address, connect_async, make_client


def test_a_client_sends_each_publish_at_once(mosquitto_server):
    """Nagle's algorithm is off on the connection (paho leaves it on)."""
    client = make_client(mosquitto_server.url, client_id="nodelay")
    connect_async(client, mosquitto_server.url)
    try:
        wait_for(client.is_connected)
        sock = client.socket()
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.parametrize("url", ["http://host:1883", "mqtt://", "mqtt://host:99999"])
def test_a_malformed_broker_url_is_a_config_error(url):
    with pytest.raises(ConfigError):
        broker_address(url)
