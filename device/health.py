"""Health of a running reader: counters and latency histograms for ``/metrics``, and stall detection.

``Health`` is an output (the loop calls ``show()`` for every processed frame, first of all outputs), so the
loop itself needs no change. A small thread watches the time since the last processed frame: after
``stall_seconds`` without one it logs a line, sets ``stalled`` and tells its listeners (the MQTT output's
binary sensor); the web server's ``/healthz`` answers 503 and ``/metrics`` shows ``digit_reader_stalled 1``.
All of that happens before systemd's watchdog (``WatchdogSec``) restarts the service, so the user learns why.

``/metrics`` is written in the Prometheus text exposition format (version 0.0.4) by hand: a dozen lines of
code instead of a dependency on the Pi; the tests parse it with ``prometheus_client``'s own parser.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from device.events import FrameEvent
from device.outputs import ClosedOnExit

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Per-stage latency buckets, seconds: a Pi 4 spends 1-30 ms per stage.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
THERMAL = "/sys/class/thermal/thermal_zone0/temp"
THROTTLED = "/sys/devices/platform/soc/soc:firmware/get_throttled"


class Histogram:
    def __init__(self):
        self.counts = [0] * len(BUCKETS)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(BUCKETS):
            if value <= bound:
                self.counts[i] += 1
                break
        self.total += 1
        self.sum += value


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Health(ClosedOnExit):
    """Counters of the run plus the stall watch. Thread-safe: the loop writes, HTTP/MQTT threads read."""

    def __init__(self, stall_seconds: float = 20.0, clock: Callable[[], float] = time.monotonic):
        self.stall_seconds = stall_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self.started = clock()
        self.last_frame = None
        self.frames = 0
        self.bad_frames = 0
        self.cluttered_frames = 0
        self.reopens = 0
        self.fps = 0.0
        self.readings = 0
        self.implausible = 0
        self.text = ""
        self.stages: dict[str, Histogram] = {}
        self.stalled = False
        self.listeners: list[Callable[[bool], None]] = []
        self.mqtt = None  # the MQTT output, when one runs: connection state and queue for /metrics
        self._closed = threading.Event()
        self._thread = None
        if stall_seconds > 0:
            self._thread = threading.Thread(target=self._watch, name="stall-watch", daemon=True)
            self._thread.start()

    # --- the loop ---
    def show(self, event: FrameEvent) -> None:
        reading, stats = event.reading, event.stats
        with self._lock:
            self.last_frame = self.clock()
            self.frames = stats.frames
            self.bad_frames = stats.bad_frames
            self.cluttered_frames = stats.cluttered_frames
            self.reopens = stats.reopens
            self.fps = stats.fps
            for stage, seconds in (getattr(event.result, "timings", None) or {}).items():
                self.stages.setdefault(stage, Histogram()).observe(seconds)
            if reading.changed:
                if reading.extra.get("implausible"):
                    self.implausible += 1
                else:
                    self.readings += 1
            self.text = reading.text
            was_stalled = self.stalled
            self.stalled = False
        if was_stalled:
            log.info("camera delivers frames again")
            self._tell(False)

    def close(self) -> None:
        self._closed.set()

    # --- the stall watch ---
    def seconds_since_frame(self) -> float:
        with self._lock:
            since = self.last_frame if self.last_frame is not None else self.started
        return max(self.clock() - since, 0.0)

    def _watch(self) -> None:
        interval = min(max(self.stall_seconds / 5, 0.05), 1.0)
        while not self._closed.wait(interval):
            self.check()

    def check(self) -> bool:
        """Update ``stalled`` from the time since the last frame; returns it."""
        since = self.seconds_since_frame()
        with self._lock:
            newly = since >= self.stall_seconds > 0 and not self.stalled
            if newly:
                self.stalled = True
            stalled = self.stalled
        if newly:
            log.warning("camera stalled: no frame processed for %.0f s", since)
            self._tell(True)
        return stalled

    def _tell(self, stalled: bool) -> None:
        for listener in list(self.listeners):
            try:
                listener(stalled)
            except Exception:  # a listener's bug must not end the watch
                log.exception("stall listener failed")

    # --- /healthz and /metrics ---
    def healthz(self) -> tuple[bool, str]:
        """(healthy, message) for /healthz; with stall detection off, the web preview's 10 s rule."""
        if self.stall_seconds > 0 and self.check():
            return False, f"stalled: no frame for {self.seconds_since_frame():.0f} s\n"
        if self.stall_seconds <= 0 and self.seconds_since_frame() >= 10:
            return False, "no frame in 10 s\n"
        return True, "ok\n"

    def metrics(self) -> str:
        """The Prometheus text exposition of the run."""
        since = self.seconds_since_frame()
        with self._lock:
            lines: list[str] = []

            def metric(name, kind, help_text, samples):
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} {kind}")
                for suffix, labels, value in samples:
                    shown = ",".join(f'{k}="{_label(str(v))}"' for k, v in labels.items())
                    lines.append(f"{name}{suffix}{{{shown}}} {value}" if shown else f"{name}{suffix} {value}")

            metric("digit_reader_frames_total", "counter", "Frames processed.", [("", {}, self.frames)])
            metric(
                "digit_reader_bad_frames_total",
                "counter",
                "Frames dropped because they could not be processed.",
                [("", {}, self.bad_frames)],
            )
            metric(
                "digit_reader_cluttered_frames_total",
                "counter",
                "Frames whose segmentation was cut short: more pieces of ink than its cap (texture, noise).",
                [("", {}, self.cluttered_frames)],
            )
            metric(
                "digit_reader_source_reopens_total", "counter", "Camera reopens.", [("", {}, self.reopens)]
            )
            metric(
                "digit_reader_fps", "gauge", "Frames processed per second.", [("", {}, round(self.fps, 3))]
            )
            metric(
                "digit_reader_readings_total",
                "counter",
                "Stable readings reported.",
                [("", {}, self.readings)],
            )
            metric(
                "digit_reader_implausible_readings_total",
                "counter",
                "Readings rejected by the plausibility rules.",
                [("", {}, self.implausible)],
            )
            metric(
                "digit_reader_seconds_since_last_frame",
                "gauge",
                "Seconds since a frame was last processed.",
                [("", {}, round(since, 3))],
            )
            metric(
                "digit_reader_stalled",
                "gauge",
                "1 while no frame was processed for stall_seconds.",
                [("", {}, int(self.stalled))],
            )
            samples = []
            for stage, h in sorted(self.stages.items()):
                running = 0
                for bound, count in zip(BUCKETS, h.counts, strict=True):
                    running += count
                    samples.append(("_bucket", {"stage": stage, "le": repr(bound)}, running))
                samples.append(("_bucket", {"stage": stage, "le": "+Inf"}, h.total))
                samples.append(("_sum", {"stage": stage}, repr(h.sum)))
                samples.append(("_count", {"stage": stage}, h.total))
            metric("digit_reader_stage_seconds", "histogram", "Time per frame in each stage.", samples)
        mqtt = self.mqtt
        if mqtt is not None:
            metric(
                "digit_reader_mqtt_connected",
                "gauge",
                "1 while connected to the broker.",
                [("", {}, int(mqtt.connected))],
            )
            metric(
                "digit_reader_mqtt_queued_messages",
                "gauge",
                "Messages waiting for the broker.",
                [("", {}, mqtt.queued)],
            )
            metric(
                "digit_reader_mqtt_dropped_messages_total",
                "counter",
                "Messages dropped because the queue was full (oldest first).",
                [("", {}, mqtt.dropped)],
            )
        statm = _read("/proc/self/statm")
        if statm:
            rss = int(statm.split()[1]) * os.sysconf("SC_PAGE_SIZE")
            metric(
                "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", [("", {}, rss)]
            )
        temp = _read(THERMAL)
        if temp and temp.lstrip("-").isdigit():
            metric(
                "digit_reader_soc_temperature_celsius",
                "gauge",
                "SoC temperature.",
                [("", {}, int(temp) / 1000)],
            )
        throttled = _read(THROTTLED)
        if throttled:
            try:
                flags = int(throttled, 16)
            except ValueError:
                flags = None
            if flags is not None:
                metric(
                    "digit_reader_throttled_flags",
                    "gauge",
                    "Raspberry Pi firmware throttling flags (vcgencmd get_throttled).",
                    [("", {}, flags)],
                )
        return "\n".join(lines) + "\n"
