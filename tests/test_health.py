"""Health: /metrics in the Prometheus text format (parsed with prometheus_client's parser), the stall watch,
/healthz, and the web server's token rules for /metrics."""

from __future__ import annotations

import importlib.util
import urllib.error
import urllib.request

import pytest

from device.events import FrameEvent, LoopStats
from device.health import Health
from device.outputs.web import WebOutput
from device.reading import Box, Digit, Reading
from tests.conftest import requires
from tests.sshd import free_port

pytestmark = requires(
    importlib.util.find_spec("prometheus_client") is None and "prometheus-client (pip or apt)"
)


class Clock:
    def __init__(self):
        self.now = 50.0

    def __call__(self):
        return self.now


class Result:
    def __init__(self, timings):
        self.timings = timings
        self.digits = ()


def samples(text: str) -> dict:
    from prometheus_client import parser

    out = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + (
                "{" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items())) + "}" if s.labels else ""
            )
            out[key] = s.value
    return out


def frame(health: Health, n: int, reading: Reading, timings=None, cluttered: int = 0) -> None:
    result = Result(timings or {"segment": 0.004, "classify": 0.02})
    health.show(FrameEvent(reading, None, result, LoopStats(frames=n, cluttered_frames=cluttered, fps=9.5)))


def test_metrics_parse_and_count():
    health = Health(stall_seconds=0, clock=Clock())  # no watch thread
    seven = Reading((Digit(7, 0.9, Box(0, 0, 5, 5)),), changed=True)
    frame(health, 1, seven)
    frame(health, 2, Reading(seven.digits), {"segment": 3.0, "classify": 0.001})
    frame(health, 3, Reading(seven.digits, changed=True, extra={"implausible": True}), cluttered=2)
    values = samples(health.metrics())
    assert values["digit_reader_frames_total"] == 3
    assert values["digit_reader_cluttered_frames_total"] == 2
    assert values["digit_reader_readings_total"] == 1
    assert values["digit_reader_implausible_readings_total"] == 1
    assert values["digit_reader_fps"] == 9.5
    assert values["digit_reader_stage_seconds_count{stage=segment}"] == 3
    assert values["digit_reader_stage_seconds_bucket{le=0.005,stage=segment}"] == 2
    assert values["digit_reader_stage_seconds_bucket{le=+Inf,stage=segment}"] == 3  # 3 s: past every bucket
    assert values["digit_reader_stage_seconds_sum{stage=segment}"] == pytest.approx(3.008)
    buckets = [
        v for k, v in values.items() if k.startswith("digit_reader_stage_seconds_bucket") and "classify" in k
    ]
    assert buckets == sorted(buckets)  # cumulative
    assert values["process_resident_memory_bytes"] > 0
    assert "digit_reader_mqtt_connected" not in values  # no MQTT output: no MQTT metrics


def test_stall_is_flagged_logged_and_cleared(caplog):
    clock = Clock()
    health = Health(stall_seconds=20, clock=clock)
    health.close()  # drive check() by hand with the fake clock
    seen = []
    health.listeners.append(seen.append)
    frame(health, 1, Reading())
    clock.now += 19
    assert health.check() is False and health.healthz()[0] is True
    clock.now += 2
    assert health.check() is True and seen == [True]
    assert health.healthz() == (False, "stalled: no frame for 21 s\n")
    assert "camera stalled: no frame processed for 21 s" in caplog.text
    assert samples(health.metrics())["digit_reader_stalled"] == 1
    assert health.check() is True and seen == [True]  # told once
    frame(health, 2, Reading())
    assert seen == [True, False] and health.healthz()[0] is True
    assert samples(health.metrics())["digit_reader_seconds_since_last_frame"] == 0


def test_metrics_route_follows_the_token_rules():
    health = Health(stall_seconds=0)
    web = WebOutput(f"127.0.0.1:{free_port()}", token="tok")
    web.health = health
    base = f"http://127.0.0.1:{web.address[1]}"
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/metrics", timeout=5)
        assert err.value.code == 401
        request = urllib.request.Request(f"{base}/metrics", headers={"Authorization": "Bearer tok"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert "digit_reader_frames_total" in samples(response.read().decode())
    finally:
        web.close()
