"""The MQTT side of a device: feature messages out, a retained status the cloud can trust."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt

from edgelens.lifecycle import Lifecycle
from edgelens.settings import MqttTlsSettings, redact_urls
from edgelens.wire.features import FeatureMessage, WireDtype, encode
from edgelens.wire.mqtt import broker_label, connect_async, make_client
from edgelens.wire.names import features_topic, status_topic
from edgelens.wire.status import MAX_CAMERA_CHARS, DeviceState, DeviceStatus

logger = logging.getLogger(__name__)

# How long a status waits for the broker's acknowledgement before the connection it went
# out on is closed (a clean stop, a renewal after a model swap).
STATUS_ACK_TIMEOUT_S = 2.0

# What a listener gets for each message on the topics it listens to: the topic, the payload,
# and whether the broker sent it as a retained message (at subscribe time).
Listener = Callable[[str, bytes, bool], None]

# The keys a status may carry: the worker refuses a status with any other (its schema
# forbids extras), so a health figure the schema does not know yet stays on the device.
STATUS_KEYS = frozenset(DeviceStatus.model_fields)


class FeaturePublisher(Lifecycle):
    """Publishes feature messages and keeps ``edgelens/<device>/status`` true.

    Features go out with QoS 0: the newest frame is the only one worth having,
    and QoS 0 never queues retransmits of stale frames ahead of new ones. For the
    same reason, while the broker is unreachable only the newest vector is held (and
    sent on reconnect); the older ones are dropped and counted, not queued. The status
    is retained: "online" on every (re)connect,
    "offline" on a clean stop and, as the last will, when the device vanishes; it names
    the model the device runs and, when it could not switch to one it was offered, why.
    ``connect_async`` lets the device start while the broker is still down. The same
    connection can listen to a few topics (:meth:`listen`: the model offers).
    """

    def __init__(
        self,
        *,
        mqtt_url: str,
        device_id: str,
        model_id: str,
        provider: str,
        wire_dtype: WireDtype,
        reconnect_initial_s: float,
        reconnect_max_s: float,
        tls: MqttTlsSettings | None = None,
        sends_views: bool = True,
    ) -> None:
        self.device_id = device_id
        self.model_id = model_id
        self.provider = provider
        self.wire_dtype = wire_dtype
        self.sends_views = sends_views
        self.published = 0
        self.unsent = 0  # frames dropped because the broker was unreachable
        self._mqtt_url = mqtt_url
        self.broker = broker_label(mqtt_url)  # as log lines name it
        self._features_topic = features_topic(device_id)
        self._status_topic = status_topic(device_id)
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._unsent_this_outage = 0
        self._outage_logged = False
        self._held: bytes | None = None  # the newest vector offered while disconnected
        self._closing = False
        self._renewing = False  # set_model's reconnect under way
        self._status_sent: mqtt.MQTTMessageInfo | None = None  # the newest status published
        self._health: dict[str, float | int | str] = {}
        self._model_problem: str | None = None
        self._listen_topics: tuple[str, ...] = ()
        self._listener: Listener | None = None
        self._client = self._make_client(mqtt_url, reconnect_initial_s, reconnect_max_s, tls)

    def start(self) -> None:
        """Connect in the background; reconnects are paho's, with backoff."""
        connect_async(self._client, self._mqtt_url)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def publish(self, message: FeatureMessage) -> bool:
        """Send one frame's vector; False when the broker is away. Then the newest vector
        is held and sent on reconnect, and the one it replaces is dropped and counted."""
        payload = encode(message, self.wire_dtype)
        if self._connected.is_set():
            info = self._client.publish(self._features_topic, payload, qos=0)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self.published += 1
                return True
        with self._lock:
            if self._held is not None:
                self.unsent += 1
                self._unsent_this_outage += 1
            self._held = payload
            first_of_outage = not self._outage_logged
            self._outage_logged = True
        if first_of_outage:
            logger.warning(
                "broker %s unreachable: holding the newest vector, dropping older ones",
                self.broker,
            )
        return False

    def update_health(self, health: dict[str, float | int | str], *, publish: bool = True) -> None:
        """Carry these health figures (FPS, stage times, counters) in every status from now
        on, those the status schema knows; with ``publish``, send the retained "online"
        status with them at once."""
        with self._lock:
            self._health = {k: v for k, v in health.items() if k in STATUS_KEYS}
        if publish:
            self._publish_online()

    def set_model(self, model_id: str, provider: str) -> None:
        """The model the device runs from now on: its id goes into every status and the
        last will from now on, and the retained status says so at once.

        The broker fixes a will when a connection opens, so a live connection is renewed:
        a clean disconnect (the broker drops the old will unpublished), then a connect
        that registers the new one and publishes "online" with the new model. Without it,
        a device that vanished after a swap would be recorded offline on its old model.
        """
        with self._lock:
            self.model_id = model_id
            self.provider = provider
            renew = self._connected.is_set() and not self._closing
            if renew:
                self._renewing = True
                self._outage_logged = True  # a renewal is no outage: nothing to warn of
        self._client.will_set(self._status_topic, self._status("offline"), qos=1, retain=True)
        if not renew:
            return  # the next connection registers the new will
        # paho would resend an unacknowledged status on the new connection, after the new
        # one: the retained status would name the old model again.
        self._wait_status_acknowledged()
        self._client.disconnect()
        self._client.loop_stop()  # paho's thread ends after a disconnect asked for
        with self._lock:
            self._renewing = False
            closing = self._closing
        if not closing:
            connect_async(self._client, self._mqtt_url)

    def set_model_problem(self, problem: str | None) -> None:
        """Why the device does not run the model it was offered (None: it does); carried
        in every status from now on as ``model_problem`` (shortened to what a status
        holds, a URL's password left out), and published at once."""
        if problem is not None:
            problem = redact_urls(problem)[:MAX_CAMERA_CHARS]
        with self._lock:
            changed = problem != self._model_problem
            self._model_problem = problem
        if changed:
            self._publish_online()

    def listen(self, topics: Sequence[str], listener: Listener) -> None:
        """Subscribe to ``topics`` (QoS 1, one SUBSCRIBE in this order) on this connection,
        now if connected and again on every reconnect, so their retained messages arrive
        each time; ``listener`` gets every message, in paho's network thread, and must
        return at once."""
        with self._lock:
            self._listen_topics = tuple(topics)
            self._listener = listener
        self._client.on_message = self._on_message
        if self._connected.is_set():
            self._subscribe(self._client)

    def close(self) -> None:
        """Publish the retained "offline" status, then disconnect cleanly (no will)."""
        with self._lock:
            self._closing = True
        if self._connected.is_set():
            self._send_status(self._client, "offline")
            self._wait_status_acknowledged()
        self._client.disconnect()
        self._client.loop_stop()
        with self._lock:
            if self._held is not None:  # never got out
                self.unsent += 1
                self._held = None
        logger.info(
            "device %s offline: %d frame(s) published, %d dropped while disconnected",
            self.device_id,
            self.published,
            self.unsent,
        )

    def _make_client(
        self,
        mqtt_url: str,
        reconnect_initial_s: float,
        reconnect_max_s: float,
        tls: MqttTlsSettings | None,
    ) -> mqtt.Client:
        client = make_client(
            mqtt_url,
            client_id=f"edgelens-device-{self.device_id}",
            tls=tls,
            reconnect_min_s=reconnect_initial_s,
            reconnect_max_s=reconnect_max_s,
        )
        # The will is registered before connecting: the broker holds it from the start.
        client.will_set(self._status_topic, self._status("offline"), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        return client

    def _publish_online(self) -> None:
        """The retained "online" status now, unless the broker is away (the next connect
        sends it) or the device is going offline (it would undo the "offline")."""
        with self._lock:
            closing = self._closing
        if not closing and self._connected.is_set():
            self._send_status(self._client, "online")

    def _send_status(self, client: mqtt.Client, state: DeviceState) -> None:
        """Publish the retained status (QoS 1), remembered until acknowledged."""
        info = client.publish(self._status_topic, self._status(state), qos=1, retain=True)
        with self._lock:
            self._status_sent = info

    def _wait_status_acknowledged(self) -> None:
        with self._lock:
            info = self._status_sent
        if info is not None and info.rc == mqtt.MQTT_ERR_SUCCESS:
            info.wait_for_publish(STATUS_ACK_TIMEOUT_S)

    def _subscribe(self, client: mqtt.Client) -> None:
        with self._lock:
            topics = self._listen_topics
        if topics:
            client.subscribe([(topic, mqtt.SubscribeOptions(qos=1)) for topic in topics])

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            listener, topics = self._listener, self._listen_topics
        if listener is None or message.topic not in topics:
            return
        try:
            listener(message.topic, message.payload, bool(message.retain))
        except Exception:  # an escaped exception would end paho's network thread
            logger.exception("message on %s not handled", message.topic)

    def _status(self, state: DeviceState) -> str:
        with self._lock:
            health = dict(self._health)
            model_id, provider, problem = self.model_id, self.provider, self._model_problem
        status = DeviceStatus.model_validate(
            {
                **health,
                "state": state,
                "device_id": self.device_id,
                "model_id": model_id,
                "model_problem": problem,
                "provider": provider,
                "wire_dtype": self.wire_dtype.name.lower(),
                "sends_views": self.sends_views,
                "ts": time.time(),
            }
        )
        return status.model_dump_json(exclude_none=True)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        if reason_code.is_failure:
            logger.warning("broker %s refused the connection: %s", self.broker, reason_code)
            return
        self._send_status(client, "online")
        self._subscribe(client)  # no session outlives a connection: subscribe each time
        with self._lock:
            dropped, self._unsent_this_outage = self._unsent_this_outage, 0
            held, self._held = self._held, None
            self._outage_logged = False
        if (
            held is not None
            and client.publish(self._features_topic, held).rc == mqtt.MQTT_ERR_SUCCESS
        ):
            self.published += 1
        logger.info(
            "connected to %s as %s%s",
            self.broker,
            self.device_id,
            f" ({dropped} frame(s) dropped while away, the newest sent now)" if dropped else "",
        )
        self._connected.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        logger.debug("cannot reach broker %s yet; paho retries with backoff", self.broker)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        self._connected.clear()
        with self._lock:
            quiet = self._closing or self._renewing
        if not quiet:
            logger.warning(
                "lost broker %s (%s); reconnecting with backoff", self.broker, reason_code
            )
