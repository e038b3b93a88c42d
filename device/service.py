"""The always-on loop: read a frame, process it, vote, drive the outputs, until told to stop.

Frames are dropped rather than queued (a camera hands out its newest frame; a bad frame is counted and
skipped), a failing camera is reopened with exponential back-off, and crash recovery is left to systemd.
The watchdog is pinged only after a frame has really been processed, so a stuck camera gets the service
restarted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from device.errors import FrameError, SourceError
from device.notify import Notifier
from device.outputs import QuitRequested

log = logging.getLogger(__name__)


@dataclass
class LoopStats:
    """Counters of a run."""

    frames: int = 0
    bad_frames: int = 0
    reopens: int = 0
    fps: float = 0.0
    started: float = field(default_factory=time.monotonic)
    stage_seconds: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "frames": self.frames,
            "bad_frames": self.bad_frames,
            "reopens": self.reopens,
            "fps": self.fps,
            "uptime": time.monotonic() - self.started,
            "stage_ms": {k: v / max(self.frames, 1) * 1000 for k, v in self.stage_seconds.items()},
        }


class ReaderLoop:
    """Runs source -> pipeline -> decider -> outputs. Everything is injected; nothing is global."""

    def __init__(
        self,
        open_source: Callable[[], object],
        pipeline,
        decider,
        outputs: list,
        stop: threading.Event | None = None,
        notifier: Notifier | None = None,
        max_frames: int = 0,
        reopen_max_seconds: float = 30.0,
        stats_seconds: float = 60.0,
    ):
        self.open_source = open_source
        self.pipeline = pipeline
        self.decider = decider
        self.outputs = outputs
        self.stop = stop or threading.Event()
        self.notifier = notifier or Notifier({})
        self.max_frames = max_frames
        self.reopen_max_seconds = reopen_max_seconds
        self.stats_seconds = stats_seconds
        self.stats = LoopStats()
        self.last_result = None

    def _reopen(self, source, error: Exception):
        """Close a failed source and open it again, waiting longer after each failure."""
        delay = 0.5
        while not self.stop.is_set():
            log.warning("%s; reopening in %.1f s", error, delay)
            if source is not None:
                source.close()
                source = None
            if self.stop.wait(delay):
                return None
            try:
                source = self.open_source()
                self.stats.reopens += 1
                log.info("source reopened")
                return source
            except SourceError as exc:
                error = exc
                delay = min(delay * 2, self.reopen_max_seconds)
        return source

    def run(self) -> LoopStats:
        """Run until the stop event, the end of a finite source, ``max_frames`` or a quit key."""
        source = self.open_source()
        last_frame_time = None
        next_stats = time.monotonic() + self.stats_seconds
        ready = False
        try:
            while not self.stop.is_set():
                try:
                    frame = source.read()
                except SourceError as exc:
                    source = self._reopen(source, exc)
                    if source is None:
                        break
                    continue
                if frame is None:  # a finite source has ended
                    break
                try:
                    result = self.pipeline.process(frame)
                except FrameError as exc:
                    self.stats.bad_frames += 1
                    log.debug("bad frame skipped: %s", exc)
                    continue
                reading = self.decider.update(result.digits)
                self.last_result = result
                now = time.monotonic()
                if last_frame_time is not None:
                    instant = 1.0 / max(now - last_frame_time, 1e-6)
                    self.stats.fps = (
                        instant if self.stats.frames < 2 else 0.9 * self.stats.fps + 0.1 * instant
                    )
                last_frame_time = now
                self.stats.frames += 1
                for stage, seconds in result.timings.items():
                    self.stats.stage_seconds[stage] = self.stats.stage_seconds.get(stage, 0.0) + seconds
                stats = self.stats.as_dict()
                t_out = time.perf_counter()
                for output in self.outputs:
                    output.show(reading, frame, result, stats)
                self.stats.stage_seconds["outputs"] = (
                    self.stats.stage_seconds.get("outputs", 0.0) + time.perf_counter() - t_out
                )
                if not ready:
                    self.notifier.ready(f"reading {reading.text!r}")
                    ready = True
                self.notifier.watchdog()
                if reading.changed:
                    self.notifier.status(f"reading {reading.text!r}, {self.stats.fps:.1f} fps")
                if now >= next_stats:
                    next_stats = now + self.stats_seconds
                    log.info(
                        "%d frames, %.1f fps, %d bad, %d reopens, reading %r",
                        self.stats.frames,
                        self.stats.fps,
                        self.stats.bad_frames,
                        self.stats.reopens,
                        reading.text,
                    )
                    self.notifier.status(f"reading {reading.text!r}, {self.stats.fps:.1f} fps")
                if self.max_frames and self.stats.frames >= self.max_frames:
                    break
        except QuitRequested:
            log.info("quit requested")
        finally:
            self.notifier.stopping()
            for output in self.outputs:
                try:
                    output.close()
                except Exception:  # one broken output must not keep the others (or the pins) on
                    log.exception("closing output %s failed", type(output).__name__)
            if source is not None:
                source.close()
        return self.stats
