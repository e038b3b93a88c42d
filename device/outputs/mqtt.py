"""``mqtt`` output: readings to an MQTT broker, with Home Assistant MQTT discovery.

Topics under ``base_topic`` (default ``digit-reader/<hostname>``):

- ``<base>/state``: the reading's text, retained;
- ``<base>/attributes``: JSON (digits with confidences and boxes, lowest confidence, fps, frames, latency,
  the model's sha256, time of the reading, plausibility flags, stalled, paused), retained;
- ``<base>/availability``: ``online`` / ``offline``, retained; the broker publishes ``offline`` by itself
  (last will) when the process dies or the network goes;
- ``<base>/stalled``: ``ON`` / ``OFF`` (no frame for ``stall_seconds``), retained;
- ``<base>/command``: ``read`` (publish the current reading now), ``pause`` / ``resume`` (stop / restart
  publishing readings; the reader itself goes on).

Home Assistant discovery configs go to ``<prefix>/<component>/<node_id>/<object_id>/config`` (retained) on
every connect and when Home Assistant announces itself on ``<prefix>/status``.

The camera loop never waits for the broker: ``show()`` puts messages in a bounded queue (when it is full the
oldest message is dropped and counted) and a sender thread publishes them while connected. paho-mqtt's own
network thread connects, reconnects with exponential back-off (1 s up to ``reconnect_max_seconds``) and
keeps the connection alive. Works with paho-mqtt 1.6 (Debian / Raspberry Pi OS ``python3-paho-mqtt``) and
2.x (PyPI): only the client's creation and the callbacks' arguments differ.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import threading
import time
from collections import deque
from datetime import datetime, timezone
from urllib.parse import urlsplit

import device
from device.errors import ConfigError
from device.events import FrameEvent, LoopStats
from device.outputs import ClosedOnExit

log = logging.getLogger(__name__)

ONLINE, OFFLINE = "online", "offline"
FLUSH_SECONDS = 3.0  # how long close() waits for queued messages to reach the broker


def node_id() -> str:
    """This machine's name as Home Assistant accepts it in a discovery topic (``[a-zA-Z0-9_-]``)."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", socket.gethostname().split(".")[0]) or "reader"


def parse_url(url: str) -> tuple[str, int, bool]:
    """``mqtt://HOST[:PORT]`` / ``mqtts://HOST[:PORT]`` -> (host, port, tls)."""
    from device.config import mqtt_url_problem

    problem = mqtt_url_problem(url)
    if problem:
        raise ConfigError(f"output.mqtt.url = {url!r}: {problem}")
    parts = urlsplit(url)
    tls = parts.scheme == "mqtts"
    return parts.hostname, parts.port or (8883 if tls else 1883), tls


def make_client(client_id: str):
    """A paho client with version-2 callbacks on paho 2.x, the only kind on 1.6; MQTT 3.1.1 either way."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise ConfigError(
            "output mqtt: needs paho-mqtt (apt install python3-paho-mqtt, or pip install paho-mqtt)"
        ) from None
    api = getattr(mqtt, "CallbackAPIVersion", None)
    if api is not None:  # paho-mqtt >= 2.0
        return mqtt.Client(api.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    return mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311)


def _code(rc) -> int:
    """A CONNACK / disconnect code as an int: paho 1.6 passes ints, 2.x ``ReasonCode`` objects."""
    return int(getattr(rc, "value", rc) or 0)


class Topics:
    """The topic layout of one reader."""

    def __init__(self, base: str, prefix: str, node: str):
        self.base, self.prefix, self.node = base, prefix, node
        self.state = f"{base}/state"
        self.attributes = f"{base}/attributes"
        self.availability = f"{base}/availability"
        self.stalled = f"{base}/stalled"
        self.command = f"{base}/command"
        self.ha_status = f"{prefix}/status"

    @classmethod
    def from_config(cls, config) -> Topics:
        node = node_id()
        return cls(config.base_topic or f"digit-reader/{node}", config.discovery_prefix, node)


def discovery(topics: Topics, model_info: dict | None = None) -> list[tuple[str, dict]]:
    """Home Assistant discovery messages: (config topic, payload) for each entity of this reader."""
    node = topics.node
    device_block = {
        "identifiers": [f"digit-reader-{node}"],
        "name": f"digit-reader {node}",
        "manufacturer": "digit-reader",
        "model": "handwritten digit reader",
        "sw_version": device.__version__,
    }
    common = {
        "availability_topic": topics.availability,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "device": device_block,
    }
    attributes = {"state_topic": topics.attributes}
    entities = [
        (
            "sensor",
            "reading",
            {
                "name": "Reading",
                "state_topic": topics.state,
                "json_attributes_topic": topics.attributes,
                "icon": "mdi:numeric",
            },
        ),
        (
            "sensor",
            "confidence",
            {
                **attributes,
                "name": "Confidence",
                "value_template": "{{ value_json.confidence }}",
                "state_class": "measurement",
                "icon": "mdi:check-decagram",
            },
        ),
        (
            "sensor",
            "fps",
            {
                **attributes,
                "name": "Frame rate",
                "value_template": "{{ value_json.fps }}",
                "unit_of_measurement": "fps",
                "state_class": "measurement",
                "entity_category": "diagnostic",
            },
        ),
        (
            "sensor",
            "latency",
            {
                **attributes,
                "name": "Latency",
                "value_template": "{{ value_json.latency_ms }}",
                "unit_of_measurement": "ms",
                "device_class": "duration",
                "state_class": "measurement",
                "entity_category": "diagnostic",
            },
        ),
        (
            "binary_sensor",
            "stalled",
            {
                "name": "Camera stalled",
                "state_topic": topics.stalled,
                "payload_on": "ON",
                "payload_off": "OFF",
                "device_class": "problem",
            },
        ),
    ]
    return [
        (
            f"{topics.prefix}/{component}/{node}/{object_id}/config",
            {**payload, **common, "unique_id": f"digit-reader-{node}-{object_id}"},
        )
        for component, object_id, payload in entities
    ]


def read_password(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(
            f"output.mqtt.password_file = {path!r}: cannot read it ({exc.strerror or exc})"
        ) from None


def configure(client, config, tls: bool) -> None:
    """Credentials and TLS from ``[output.mqtt]`` (the password is read from its file, never logged)."""
    if config.username:
        password = read_password(config.password_file) if config.password_file else None
        client.username_pw_set(config.username, password)
    elif config.password_file:
        raise ConfigError(f"output.mqtt.password_file = {config.password_file!r}: needs output.mqtt.username")
    if tls:
        try:
            client.tls_set(
                ca_certs=config.ca_file or None,
                certfile=config.cert_file or None,
                keyfile=config.key_file or None,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError(
                f"output.mqtt: cannot use ca_file {config.ca_file!r} / cert_file {config.cert_file!r} "
                f"({getattr(exc, 'strerror', None) or exc})"
            ) from None
    elif config.ca_file or config.cert_file:
        raise ConfigError(f"output.mqtt.url = {config.url!r}: use mqtts:// with ca_file / cert_file")


def build(section, context) -> MqttOutput:
    return MqttOutput(section, context.model_info, context.health)


class MqttOutput(ClosedOnExit):
    """Publishes readings; ``show()`` only queues. See the module docstring for the topics."""

    def __init__(self, config, model_info: dict | None = None, health=None):
        if not config.url:
            raise ConfigError("output.mqtt.url = '': set [output.mqtt] url or --mqtt-url mqtt://HOST:PORT")
        self.config = config
        self.host, self.port, tls = parse_url(config.url)
        self.topics = Topics.from_config(config)
        self.model_info = model_info or {}
        self.qos = config.qos
        self.client_id = config.client_id or f"digit-reader-{self.topics.node}"
        self.connected = False
        self.paused = False
        self.stalled = False
        self.dropped = 0
        self.published = 0
        self._queue: deque[tuple[str, str, bool]] = deque()
        self._cond = threading.Condition()
        self._resync = False
        self._closed = threading.Event()
        self._reading = None
        self._reading_time = None
        self._stats = LoopStats()
        self._outage_logged = False
        self._drop_logged = False
        client = make_client(self.client_id)
        configure(client, config, tls)
        client.will_set(self.topics.availability, OFFLINE, qos=self.qos, retain=True)
        client.reconnect_delay_set(1, max(1, int(config.reconnect_max_seconds)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        self.client = client
        self.where = f"{'mqtts' if tls else 'mqtt'}://{self.host}:{self.port}"
        client.connect_async(self.host, self.port, config.keepalive)
        client.loop_start()
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-send", daemon=True)
        self._sender.start()
        if health is not None:
            health.mqtt = self
            health.listeners.append(self.set_stalled)
        log.info("mqtt: publishing to %s under %s as %s", self.where, self.topics.base, self.client_id)

    @property
    def queued(self) -> int:
        return len(self._queue)

    # --- paho's network thread ---
    def _on_connect(self, client, userdata, flags, rc, properties=None) -> None:
        code = _code(rc)
        if code != 0:
            import paho.mqtt.client as mqtt

            log.warning("mqtt: %s refused the connection: %s", self.where, mqtt.connack_string(code))
            return
        client.subscribe(self.topics.command, qos=1)
        if self.config.discovery:
            client.subscribe(self.topics.ha_status, qos=1)
        log.info("mqtt: connected to %s", self.where)
        with self._cond:
            self.connected = True
            self._resync = True
            self._outage_logged = self._drop_logged = False
            self._cond.notify_all()

    def _on_disconnect(self, client, userdata, *rest) -> None:
        code = _code(rest[0] if len(rest) == 1 else rest[1])  # 1.6: (rc); 2.x: (flags, rc, properties)
        with self._cond:
            was = self.connected
            self.connected = False
        if was and not self._closed.is_set():
            log.warning("mqtt: connection to %s lost (code %d); reconnecting with back-off", self.where, code)

    def _on_connect_fail(self, client, userdata) -> None:
        if not self._outage_logged:
            self._outage_logged = True
            log.warning(
                "mqtt: cannot reach %s; retrying with back-off (at most %g s apart)",
                self.where,
                self.config.reconnect_max_seconds,
            )

    def _on_message(self, client, userdata, message) -> None:
        payload = message.payload.decode("utf-8", "replace").strip()
        if message.topic == self.topics.ha_status:
            if payload == "online":  # Home Assistant (re)started: announce the entities again
                with self._cond:
                    self._resync = True
                    self._cond.notify_all()
            return
        command = payload.lower()
        if command == "read":
            log.info("mqtt: command read")
            self._enqueue(self._snapshot(), force=True)
        elif command in ("pause", "resume"):
            log.info("mqtt: command %s", command)
            self.paused = command == "pause"
            self._enqueue(self._snapshot(state=not self.paused), force=True)
        else:
            log.warning("mqtt: unknown command %r on %s (read, pause, resume)", payload[:40], message.topic)

    # --- the camera loop: cheap, never blocks on the network ---
    def show(self, event: FrameEvent) -> None:
        reading = event.reading
        with self._cond:
            self._stats = event.stats
            if not reading.changed:
                if self._reading is None:
                    self._reading = reading
                return
            self._reading = reading
            self._reading_time = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if not self.paused:
            self._enqueue(self._snapshot())

    def set_stalled(self, stalled: bool) -> None:
        """Called by ``device.health.Health`` when the camera stalls or comes back."""
        self.stalled = stalled
        self._enqueue([(self.topics.stalled, "ON" if stalled else "OFF", True)], force=True)

    def close(self) -> None:
        if self._closed.is_set():
            return
        deadline = time.monotonic() + FLUSH_SECONDS  # e.g. --once: let the reading reach the broker
        with self._cond:
            while (self._queue or self._resync) and time.monotonic() < deadline:
                self._cond.wait(0.05)
        self._closed.set()
        with self._cond:
            self._cond.notify_all()
        self._sender.join(timeout=5)
        try:
            if self.connected:
                info = self.client.publish(self.topics.availability, OFFLINE, qos=self.qos, retain=True)
                info.wait_for_publish(timeout=2) if self.qos else None
            self.client.disconnect()
        except (RuntimeError, ValueError, OSError) as exc:
            log.debug("mqtt: closing: %s", exc)
        self.client.loop_stop()

    # --- messages ---
    def attributes(self) -> dict:
        with self._cond:
            reading, stats, when = self._reading, self._stats, self._reading_time
        digits = reading.digits if reading is not None else ()
        extra = reading.extra if reading is not None else {}
        stage_ms = stats.stage_ms
        return {
            "text": reading.text if reading is not None else "",
            "digits": [d.as_dict() for d in digits],
            "confidence": round(min(d.confidence for d in digits), 4) if digits else None,
            "fps": round(stats.fps, 2),
            "frames": stats.frames,
            "latency_ms": round(sum(stage_ms.values()), 2),
            "stage_ms": {k: round(v, 3) for k, v in stage_ms.items()},
            "model": self.model_info.get("name"),
            "model_sha256": self.model_info.get("sha256"),
            "time": when,
            "implausible": bool(extra.get("implausible", False)),
            "reason": extra.get("reason"),
            "rejected": extra.get("rejected"),
            "stalled": self.stalled,
            "paused": self.paused,
        }

    def _snapshot(self, state: bool = True) -> list[tuple[str, str, bool]]:
        """The current reading as messages: state (when there is one) and attributes."""
        messages = []
        if state and self._reading is not None:
            messages.append((self.topics.state, self._reading.text, True))
        messages.append((self.topics.attributes, json.dumps(self.attributes()), True))
        return messages

    def _enqueue(self, messages, force: bool = False) -> None:
        with self._cond:
            for message in messages:
                if len(self._queue) >= self.config.queue_size:
                    self._queue.popleft()
                    self.dropped += 1
                    if not self._drop_logged:
                        self._drop_logged = True
                        log.warning(
                            "mqtt: queue full (%d messages): dropping the oldest", self.config.queue_size
                        )
                self._queue.append(message)
            self._cond.notify_all()

    def _publish(self, topic: str, payload: str, retain: bool) -> bool:
        info = self.client.publish(topic, payload, qos=self.qos, retain=retain)
        if info.rc != 0:
            return False
        self.published += 1
        return True

    def _send_loop(self) -> None:
        heartbeat = self.config.heartbeat_seconds
        next_beat = time.monotonic() + heartbeat if heartbeat > 0 else None
        while not self._closed.is_set():
            with self._cond:
                timeout = 1.0 if next_beat is None else max(min(next_beat - time.monotonic(), 1.0), 0.0)
                if not (self.connected and (self._resync or self._queue)):
                    self._cond.wait(timeout)
                if self._closed.is_set():
                    break
                connected, resync = self.connected, self._resync
                self._resync = False
            if next_beat is not None and time.monotonic() >= next_beat:
                next_beat = time.monotonic() + heartbeat
                if connected and not self.paused and self._reading is not None:
                    self._enqueue(self._snapshot())
            if not connected:
                continue
            try:
                if resync and not self._announce():
                    with self._cond:
                        self._resync = True
                    continue
                if not self._drain():
                    self._closed.wait(0.2)  # the connection went meanwhile: on_disconnect follows
            except Exception:  # a bug here must not end publishing for good
                log.exception("mqtt: publishing failed")
                self._closed.wait(1.0)

    def _announce(self) -> bool:
        """After (re)connecting: online, discovery, then the queue, then the current state."""
        messages = [(self.topics.availability, ONLINE, True)]
        if self.config.discovery:
            messages += [(t, json.dumps(p), True) for t, p in discovery(self.topics, self.model_info)]
        messages.append((self.topics.stalled, "ON" if self.stalled else "OFF", True))
        for message in messages:
            if not self._publish(*message):
                return False
        if not self._drain():
            return False
        if self._reading is not None:
            for message in self._snapshot(state=not self.paused):
                if not self._publish(*message):
                    return False
        return True

    def _drain(self) -> bool:
        while True:
            with self._cond:
                if not self._queue or not self.connected:
                    return not self._queue
                message = self._queue.popleft()
            if not self._publish(*message):
                with self._cond:
                    self._queue.appendleft(message)
                return False


def forget(config, timeout: float = 10.0) -> int:
    """Remove this reader's Home Assistant entities (empty retained discovery configs) and retained topics."""
    if not config.url:
        raise ConfigError("output.mqtt.url = '': set [output.mqtt] url or --mqtt-url mqtt://HOST:PORT")
    host, port, tls = parse_url(config.url)
    topics = Topics.from_config(config)
    client = make_client(config.client_id or f"digit-reader-{topics.node}")
    configure(client, config, tls)
    connected = threading.Event()
    refused: list[int] = []

    def on_connect(client, userdata, flags, rc, properties=None):
        code = _code(rc)
        (refused.append(code) if code else connected.set())

    client.on_connect = on_connect
    try:
        client.connect(host, port, config.keepalive)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"output.mqtt.url = {config.url!r}: cannot reach the broker ({exc})") from None
    client.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while not connected.is_set() and not refused and time.monotonic() < deadline:
            connected.wait(0.1)
        if not connected.is_set():
            import paho.mqtt.client as mqtt

            why = mqtt.connack_string(refused[0]) if refused else "no answer"
            raise ConfigError(f"output.mqtt.url = {config.url!r}: the broker did not accept us ({why})")
        emptied = [t for t, _ in discovery(topics)]
        emptied += [topics.state, topics.attributes, topics.stalled, topics.availability]
        infos = [client.publish(t, b"", qos=1, retain=True) for t in emptied]
        for info in infos:
            info.wait_for_publish(timeout=max(deadline - time.monotonic(), 0.1))
        log.info("mqtt: removed %d Home Assistant entities of %s", len(emptied) - 4, topics.node)
        client.disconnect()
        return len(emptied) - 4
    finally:
        client.loop_stop()
