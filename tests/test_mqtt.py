"""The MQTT output against a real Mosquitto broker: device-run on a video, a real paho client subscribed.

Retained state / attributes / availability, Home Assistant discovery payloads, the command topic, the last
will after SIGKILL, the broker down at start and restarted mid-run, TLS with a password file, --mqtt-forget,
and the stall path (a source that stops delivering frames) seen over MQTT, /healthz and /metrics.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from device.config import MqttConfig, from_dict
from device.errors import ConfigError
from device.outputs.mqtt import Topics, discovery, node_id
from tests.conftest import needs, scene, write_video
from tests.mosquitto import MISSING, Broker, Collector, make_certs, needs_mosquitto, needs_tls_tools
from tests.sshd import free_port

RUN = [sys.executable, "-m", "device.cli"]
NODE = node_id()
HA_REQUIRED = ("unique_id", "state_topic", "device", "name")


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def metrics(base: str) -> dict[str, float]:
    """Scrape /metrics and parse it with prometheus_client's own parser: {sample name{labels}: value}."""
    needs(importlib.util.find_spec("prometheus_client") is None and "prometheus-client (pip or apt)")
    from prometheus_client import parser

    status, text = get(f"{base}/metrics")
    assert status == 200
    values = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def wait_until(predicate, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def video(mnist_sample, tmp_path_factory):
    """A short video of "42", played at its own pace and looped by the reader."""
    path = tmp_path_factory.mktemp("mqtt-video") / "42.avi"
    write_video(path, [scene(mnist_sample, ["42"], seed=s).frame for s in (1, 2)], fps=10, count=20)
    return path


class Reader:
    """device-run as a user runs it: a config file, the video, stdout JSON lines, stderr to a file."""

    def __init__(self, folder, video, config: str, extra=()):
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "config.toml"
        self.config.write_text(config)
        self.stderr_path = folder / "stderr.log"
        self._stderr = open(self.stderr_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [*RUN, "--config", str(self.config), "--source", str(video), "--realtime", "--loop", *extra],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    def first_reading(self) -> str:
        line = self.process.stdout.readline()
        assert line, f"device-run ended: {self.stderr()}"
        return json.loads(line)["text"]

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self, kill: bool = False) -> int:
        if self.process.poll() is None:
            self.process.kill() if kill else self.process.terminate()
        code = self.process.wait(timeout=20)
        self.process.stdout.close()
        self._stderr.close()
        return code


def mqtt_config(port: int, web_port: int, scheme: str = "mqtt", **mqtt) -> str:
    lines = [
        "[output]",
        'enabled = ["log", "web", "mqtt"]',
        "[output.web]",
        f'bind = "127.0.0.1:{web_port}"',
        "[output.mqtt]",
        f'url = "{scheme}://127.0.0.1:{port}"',
        'base_topic = "test/reader"',
        'discovery_prefix = "ha-test"',
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in mqtt.items()]
    return "\n".join(lines) + "\n"


def check_discovery(retained: dict[str, str]) -> dict[str, dict]:
    """The retained discovery configs, checked against what Home Assistant's MQTT discovery requires."""
    configs = {t: json.loads(p) for t, p in retained.items() if t.startswith("ha-test/")}
    assert len(configs) == 5, sorted(configs)
    for topic, payload in configs.items():
        component, node, _object, last = re.fullmatch(
            r"ha-test/([a-z_]+)/([\w-]+)/([\w-]+)/(config)", topic
        ).groups()
        assert component in ("sensor", "binary_sensor") and node == NODE and last == "config"
        for key in HA_REQUIRED:
            assert payload.get(key), (topic, key)
        assert payload["availability_topic"] == "test/reader/availability"
        assert payload["payload_available"] == "online" and payload["payload_not_available"] == "offline"
        assert isinstance(payload["device"]["identifiers"], list) and payload["device"]["name"]
        assert payload["state_topic"].startswith("test/reader/")
        if component == "binary_sensor":
            assert payload["payload_on"] == "ON" and payload["payload_off"] == "OFF"
        if payload["state_topic"].endswith("/attributes"):
            assert "value_json." in payload["value_template"]
    unique_ids = [p["unique_id"] for p in configs.values()]
    assert len(set(unique_ids)) == 5
    assert len({json.dumps(p["device"], sort_keys=True) for p in configs.values()}) == 1  # one device
    return configs


def test_discovery_ids_are_stable_and_topics_follow_the_layout():
    topics = Topics("digit-reader/pi", "homeassistant", "pi")
    first, again = discovery(topics), discovery(Topics("digit-reader/pi", "homeassistant", "pi"))
    assert first == again  # unique ids depend on the host name only: stable across restarts
    assert {t for t, _ in first} == {
        "homeassistant/sensor/pi/reading/config",
        "homeassistant/sensor/pi/confidence/config",
        "homeassistant/sensor/pi/fps/config",
        "homeassistant/sensor/pi/latency/config",
        "homeassistant/binary_sensor/pi/stalled/config",
    }
    reading = dict(first)["homeassistant/sensor/pi/reading/config"]
    assert reading["state_topic"] == "digit-reader/pi/state"
    assert reading["json_attributes_topic"] == "digit-reader/pi/attributes"
    assert Topics.from_config(MqttConfig()).base == f"digit-reader/{NODE}"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"url": "http://broker:1883"}, "output.mqtt.url = 'http://broker:1883': must be mqtt://HOST[:PORT]"),
        ({"url": "mqtt://me:pw@broker"}, "must not hold a user or password"),
        ({"url": "mqtt://broker:99999"}, "the port must be 1-65535"),
        ({"url": "mqtt://b", "qos": 3}, "output.mqtt.qos = 3: must be between 0 and 2"),
        ({"url": "mqtt://b", "base_topic": "a/#"}, "output.mqtt.base_topic = 'a/#': must be a topic"),
        ({"url": "mqtt://b", "colour": 1}, "output.mqtt.colour: unknown key"),
        ({"url": "mqtts://b", "cert_file": "c.pem"}, "needs both cert_file and key_file"),
    ],
)
def test_bad_mqtt_config_names_key_value_and_rule(table, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        from_dict({"output": {"mqtt": table}}, "c.toml: ")


def test_mqtt_enabled_without_url_and_bad_cli_url_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match=re.escape("output.mqtt.url = '': must be set")):
        from_dict({"output": {"enabled": ["mqtt"]}})
    result = subprocess.run(
        [*RUN, "--source", str(tmp_path), "--mqtt-url", "http://x"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "device-run: --mqtt-url http://x: must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
    ]


def test_password_file_that_cannot_be_read_is_a_one_line_error(tmp_path, video):
    config = mqtt_config(free_port(), free_port(), username="u", password_file=str(tmp_path / "missing"))
    (tmp_path / "c.toml").write_text(config)
    result = subprocess.run(
        [*RUN, "--config", str(tmp_path / "c.toml"), "--source", str(video)], capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "output.mqtt.password_file = " in result.stderr and "cannot read it" in result.stderr


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    needs(MISSING)
    with Broker(tmp_path_factory.mktemp("broker")) as broker:
        yield broker


@needs_mosquitto
def test_state_attributes_discovery_commands_metrics_and_last_will(broker, video, tmp_path):
    web_port = free_port()
    reader = Reader(tmp_path, video, mqtt_config(broker.port, web_port, heartbeat_seconds=0))
    try:
        assert reader.first_reading() == "42"
        with Collector(broker.port) as seen:
            assert seen.wait_last("test/reader/state", "42"), reader.stderr()
            assert seen.wait_last("test/reader/availability", "online")
            assert seen.wait_for(lambda c: len([t for t in c.retained() if t.startswith("ha-test/")]) == 5)
            for topic in ("attributes", "stalled"):
                assert seen.wait_for(lambda c, t=topic: c.last(f"test/reader/{t}") is not None)
            with Collector(broker.port) as late:  # a client that comes later gets what the broker retained
                retained = late.retained()
            assert retained["test/reader/state"] == "42"
            assert retained["test/reader/availability"] == "online"
            assert retained["test/reader/stalled"] == "OFF"
            attributes = json.loads(retained["test/reader/attributes"])
            assert attributes["text"] == "42" and [d["digit"] for d in attributes["digits"]] == [4, 2]
            assert all(len(d["box"]) == 4 and 0 < d["confidence"] <= 1 for d in attributes["digits"])
            assert attributes["confidence"] == min(d["confidence"] for d in attributes["digits"])
            model = json.loads(get(f"http://127.0.0.1:{web_port}/api/status")[1])["model"]
            assert attributes["model_sha256"] == model["sha256"] and len(model["sha256"]) == 64
            assert attributes["frames"] > 0 and attributes["fps"] > 0 and attributes["latency_ms"] > 0
            assert attributes["time"] and attributes["implausible"] is False and attributes["paused"] is False
            configs = check_discovery(retained)
            assert dict(discovery(Topics("test/reader", "ha-test", NODE), None)).keys() == configs.keys()

            # command topic: read publishes the current reading now; pause / resume
            states = seen.count("test/reader/state")
            seen.publish("test/reader/command", "read")
            assert seen.wait_for(lambda c: c.count("test/reader/state") > states)
            assert seen.last("test/reader/state") == "42"
            seen.publish("test/reader/command", "pause")
            assert seen.wait_for(lambda c: (c.json("test/reader/attributes") or {}).get("paused") is True)
            seen.publish("test/reader/command", "resume")
            assert seen.wait_for(lambda c: (c.json("test/reader/attributes") or {}).get("paused") is False)
            seen.publish("test/reader/command", "dance")
            assert wait_until(lambda: "unknown command 'dance'" in reader.stderr())

            values = metrics(f"http://127.0.0.1:{web_port}")
            assert values["digit_reader_frames_total"] > 0
            assert values["digit_reader_mqtt_connected"] == 1
            assert values["digit_reader_readings_total"] >= 1
            assert values["digit_reader_stalled"] == 0
            assert values["digit_reader_stage_seconds_count{stage=classify}"] > 0
            assert values["process_resident_memory_bytes"] > 0

            # power loss: SIGKILL, and the broker publishes the last will
            reader.stop(kill=True)
            assert seen.wait_last("test/reader/availability", "offline")
    finally:
        reader.stop(kill=True)

    # --mqtt-forget removes the entities: empty retained discovery configs
    result = subprocess.run(
        [*RUN, "--config", str(reader.config), "--mqtt-forget"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "removed 5 Home Assistant entities"
    with Collector(broker.port) as after:
        assert not [t for t in after.retained() if t.startswith(("ha-test/", "test/reader/"))]


@needs_mosquitto
def test_broker_down_at_start_then_restarted_mid_run(video, tmp_path):
    web = f"http://127.0.0.1:{free_port()}"
    broker = Broker(tmp_path / "broker")  # a free port, nothing listening yet
    config = mqtt_config(broker.port, int(web.rsplit(":", 1)[1]), reconnect_max_seconds=2, queue_size=1)
    reader = Reader(tmp_path / "reader", video, config)
    try:
        assert reader.first_reading() == "42"  # reads without a broker
        # state + attributes in a queue of 1: the oldest is dropped and counted
        assert wait_until(lambda: metrics(web)["digit_reader_mqtt_dropped_messages_total"] >= 1)
        down = metrics(web)
        assert down["digit_reader_mqtt_connected"] == 0
        assert down["digit_reader_mqtt_queued_messages"] == 1
        assert "cannot reach mqtt://127.0.0.1" in reader.stderr()
        with broker, Collector(broker.port) as seen:
            assert seen.wait_last("test/reader/state", "42"), reader.stderr()
            assert seen.wait_last("test/reader/availability", "online")
        # the broker is gone again: the reader goes on reading
        assert wait_until(lambda: metrics(web)["digit_reader_mqtt_connected"] == 0)
        frames = metrics(web)["digit_reader_frames_total"]
        assert wait_until(lambda: metrics(web)["digit_reader_frames_total"] > frames + 10)
        # a fresh broker (no persistence): the reader reconnects and publishes its state again
        with broker, Collector(broker.port) as seen:
            assert seen.wait_last("test/reader/state", "42"), reader.stderr()
            assert seen.wait_last("test/reader/availability", "online")
            assert seen.wait_for(lambda c: len({m[0] for m in c.messages if m[0].startswith("ha-test/")}) > 4)
            assert wait_until(lambda: metrics(web)["digit_reader_mqtt_connected"] == 1)
            assert reader.stop() == 0  # a clean stop says offline itself
            assert seen.wait_last("test/reader/availability", "offline")
        assert "connection to mqtt://127.0.0.1" in reader.stderr() and "lost" in reader.stderr()
    finally:
        reader.stop(kill=True)
        broker.stop()


@needs_mosquitto
@needs_tls_tools
def test_tls_with_password_file(video, tmp_path):
    certs = make_certs(tmp_path / "certs")
    password = "pw-" + "s3cret-42"
    (tmp_path / "password").write_text(password + "\n")
    (tmp_path / "wrong").write_text("not-it\n")
    with Broker(tmp_path / "broker", certs=certs, users={"reader": password}) as broker:
        tls = {"ca_file": str(certs["ca"]), "username": "reader"}
        good = Reader(
            tmp_path / "good",
            video,
            mqtt_config(
                broker.port,
                free_port(),
                "mqtts",
                password_file=str(tmp_path / "password"),
                heartbeat_seconds=1,
                **tls,
            ),
        )
        bad = Reader(
            tmp_path / "bad",
            video,
            mqtt_config(broker.port, free_port(), "mqtts", password_file=str(tmp_path / "wrong"), **tls),
            extra=["--max-frames", "200"],
        )
        try:
            assert good.first_reading() == "42"
            with Collector(broker.port, tls_ca=certs["ca"], user="reader", password=password) as seen:
                assert seen.wait_last("test/reader/state", "42"), good.stderr()
                assert seen.wait_last("test/reader/availability", "online")
                # the heartbeat republishes the unchanged reading
                assert seen.wait_for(lambda c: c.count("test/reader/state") >= 3)
                assert {p for t, p, _ in seen.messages if t == "test/reader/state"} == {"42"}
            assert bad.first_reading() == "42"  # a refused login does not stop the reader
            assert wait_until(lambda: "refused the connection" in bad.stderr()), bad.stderr()
        finally:
            good.stop()
            bad.stop()
        assert password not in good.stderr() + bad.stderr()
        assert "not-it" not in bad.stderr()


class StallingSource:
    """Delivers prepared frames, then blocks (a camera that stops) until given more or stopped."""

    live = True
    name = "stalling"

    def __init__(self, frames):
        self.frames = list(frames)
        self.more = threading.Event()
        self.stop = threading.Event()

    def read(self):
        while not self.frames:
            if self.stop.is_set():
                return None
            if self.more.wait(0.05):
                self.more.clear()
        return self.frames.pop(0)

    def close(self):
        pass


@needs_mosquitto
def test_stall_is_reported_over_mqtt_healthz_metrics_and_the_log(broker, mnist_sample, caplog):
    from device.classify import Classifier
    from device.decide import Decider
    from device.health import Health
    from device.outputs.mqtt import MqttOutput
    from device.outputs.web import WebOutput
    from device.pipeline import FramePipeline
    from device.service import ReaderLoop
    from tests.conftest import MODEL

    frame = scene(mnist_sample, ["7"], seed=3).frame
    source = StallingSource([frame] * 5)
    health = Health(stall_seconds=0.5)
    web = WebOutput(f"127.0.0.1:{free_port()}")
    web.health = health
    base = f"http://127.0.0.1:{web.address[1]}"
    mqtt = MqttOutput(
        MqttConfig(url=f"mqtt://127.0.0.1:{broker.port}", base_topic="stall/reader", heartbeat_seconds=0),
        health=health,
    )
    stop = threading.Event()
    loop = ReaderLoop(FramePipeline(Classifier(MODEL)), Decider(), [health, web, mqtt], stop=stop)
    thread = threading.Thread(target=loop.run, args=(lambda: source,))
    with Collector(broker.port, "stall/reader/#") as seen:
        thread.start()
        try:
            assert seen.wait_last("stall/reader/state", "7")
            assert seen.wait_last("stall/reader/stalled", "ON")  # the camera stopped
            status, body = get(f"{base}/healthz")
            assert status == 503 and body.startswith("stalled")
            assert metrics(base)["digit_reader_stalled"] == 1
            assert metrics(base)["digit_reader_seconds_since_last_frame"] >= 0.5
            assert any("camera stalled: no frame processed" in r.getMessage() for r in caplog.records)
            source.frames += [frame] * 3
            source.more.set()
            assert seen.wait_last("stall/reader/stalled", "OFF")  # frames again
            assert wait_until(lambda: get(f"{base}/healthz")[0] == 200)
        finally:
            stop.set()
            source.stop.set()
            thread.join(timeout=20)
            for output in (mqtt, web, health):  # closed by their opener, the test
                output.close()
    assert not thread.is_alive()


@needs_mosquitto
def test_once_with_mqtt_url_publishes_the_reading(broker, mnist_sample, tmp_path):
    import cv2

    image = tmp_path / "305.png"
    cv2.imwrite(str(image), scene(mnist_sample, ["305"], seed=4).frame)
    url = f"mqtt://127.0.0.1:{broker.port}"
    result = subprocess.run(
        [*RUN, "--source", str(image), "--once", "--mqtt-url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "305"
    with Collector(broker.port) as seen:
        retained = seen.retained()
    assert retained[f"digit-reader/{NODE}/state"] == "305"
    assert json.loads(retained[f"digit-reader/{NODE}/attributes"])["text"] == "305"
    assert f"homeassistant/sensor/{NODE}/reading/config" in retained


@needs_mosquitto
def test_implausible_flag_and_reason_reach_the_attributes(broker):
    from device.events import FrameEvent, LoopStats
    from device.outputs.mqtt import MqttOutput
    from device.reading import Box, Digit, Reading

    output = MqttOutput(
        MqttConfig(url=f"mqtt://127.0.0.1:{broker.port}", base_topic="flag/reader", heartbeat_seconds=0)
    )
    kept = (Digit(4, 0.97, Box(0, 0, 5, 9)), Digit(5, 0.91, Box(6, 0, 5, 9)))
    flags = {"implausible": True, "reason": "went down from 45 to 12 (monotonic)", "rejected": "12"}
    with Collector(broker.port, "flag/reader/#") as seen:
        try:
            output.show(
                FrameEvent(Reading(kept, changed=True, extra=flags), None, None, LoopStats(frames=7, fps=3.0))
            )
            assert seen.wait_for(lambda c: c.json("flag/reader/attributes") is not None)
            attributes = seen.json("flag/reader/attributes")
            assert seen.last("flag/reader/state") == "45"
            assert attributes["implausible"] is True and attributes["rejected"] == "12"
            assert attributes["reason"] == "went down from 45 to 12 (monotonic)"
            assert attributes["confidence"] == 0.91 and attributes["frames"] == 7
        finally:
            output.close()


def test_forget_with_no_broker_is_a_one_line_error(tmp_path):
    port = free_port()
    result = subprocess.run(
        [*RUN, "--mqtt-url", f"mqtt://127.0.0.1:{port}", "--mqtt-forget"], capture_output=True, text=True
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(
        f"device-run: output.mqtt.url = 'mqtt://127.0.0.1:{port}': cannot reach the broker"
    )
    assert "Traceback" not in result.stderr
