"""The always-on loop: read a frame, process it, vote, drive the outputs, until told to stop.

Frames are dropped rather than queued (a camera hands out its newest frame; a bad frame is counted and
skipped), a failing camera is reopened with exponential back-off, and crash recovery is left to systemd.
The watchdog is pinged only after a frame has really been processed, so a stuck camera gets the service
restarted.

Each frame is processed on one worker thread while the loop waits for it: any exception a frame raises
counts it as bad (it never ends the service), a frame slower than ``frame_timeout`` is abandoned (its result
thrown away) and counted as slow, and while a frame is being worked on the watchdog is still pinged, but
only for ``STUCK_FACTOR * frame_timeout``: a frame stuck longer than that gets the service restarted.
A stop request is answered at once, even in the middle of a slow frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from device.errors import FrameError, SourceError
from device.events import FrameEvent, LoopStats
from device.notify import Notifier
from device.outputs import Output, QuitRequested

if TYPE_CHECKING:
    from device.sources import FrameSource

log = logging.getLogger(__name__)

STUCK_FACTOR = 6  # a frame still running after this many frame_timeouts: stop pinging, let systemd restart


@dataclass
class LoopCounters:
    """The counters of a run, kept by the loop; outputs see a frozen :class:`LoopStats` of them."""

    frames: int = 0
    bad_frames: int = 0
    reopens: int = 0
    slow_frames: int = 0
    cluttered_frames: int = 0
    fps: float = 0.0
    started: float = field(default_factory=time.monotonic)
    stage_seconds: dict = field(default_factory=dict)

    def snapshot(self) -> LoopStats:
        per_frame = 1000 / max(self.frames, 1)
        return LoopStats(
            frames=self.frames,
            bad_frames=self.bad_frames,
            reopens=self.reopens,
            slow_frames=self.slow_frames,
            cluttered_frames=self.cluttered_frames,
            fps=self.fps,
            uptime=time.monotonic() - self.started,
            stage_ms=MappingProxyType({k: v * per_frame for k, v in self.stage_seconds.items()}),
        )


class _FrameWorker:
    """One daemon thread that runs ``process(frame)``; the loop hands it a frame and waits with a deadline."""

    def __init__(self, process: Callable):
        self._process = process
        self._cond = threading.Condition()
        self._frame = None
        self._pending = False
        self.busy = False
        self.result = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="frame", daemon=True)
        self._thread.start()

    def submit(self, frame) -> None:
        with self._cond:
            self._frame, self._pending, self.busy = frame, True, True
            self.result, self.error = None, None
            self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        """True once the frame is done (its result or error is set)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self.busy, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending)
                frame, self._pending = self._frame, False
            result, error = None, None
            try:
                result = self._process(frame)
            except BaseException as exc:  # handed to the loop, which counts the frame as bad
                error = exc
            with self._cond:
                self.result, self.error, self.busy = result, error, False
                self._frame = None
                self._cond.notify_all()


class ReaderLoop:
    """Runs source -> pipeline -> decider -> outputs. Everything is injected; nothing is global.

    The outputs belong to whoever opened them (device-run's ExitStack): the loop shows them every frame and
    never closes them. The source is opened (and reopened, and closed) by the loop itself."""

    def __init__(
        self,
        pipeline,
        decider,
        outputs: list[Output],
        *,
        stop: threading.Event | None = None,
        notifier: Notifier | None = None,
        max_frames: int = 0,
        reopen_max_seconds: float = 30.0,
        stats_seconds: float = 60.0,
        frame_timeout: float = 10.0,
    ):
        self.pipeline = pipeline
        self.decider = decider
        self.outputs = outputs
        self.stop = stop or threading.Event()
        self.notifier = notifier or Notifier({})
        self.max_frames = max_frames
        self.reopen_max_seconds = reopen_max_seconds
        self.stats_seconds = stats_seconds
        self.frame_timeout = frame_timeout
        self.stats = LoopCounters()
        self.last_result = None
        self._worker: _FrameWorker | None = None
        self._frame_errors_logged = 0

    def _process(self, frame):
        """The frame's result, or None when it was bad, slow (abandoned) or the loop was told to stop."""
        if self._worker is None:
            self._worker = _FrameWorker(self.pipeline.process)
        worker = self._worker
        started = time.monotonic()
        worker.submit(frame)
        abandoned = False
        step = min(0.5, self.frame_timeout / 4)
        while not worker.wait(step):
            elapsed = time.monotonic() - started
            if self.stop.is_set():
                return None
            if not abandoned and elapsed > self.frame_timeout:
                abandoned = True
                self.stats.slow_frames += 1
                log.warning(
                    "a frame has taken %.1f s (frame_timeout %.1f s): abandoned, %d slow so far",
                    elapsed,
                    self.frame_timeout,
                    self.stats.slow_frames,
                )
            if elapsed < STUCK_FACTOR * self.frame_timeout:
                self.notifier.watchdog()  # alive and working on a frame; past the limit: let systemd act
        if abandoned:
            return None
        if worker.error is not None:
            self.stats.bad_frames += 1
            error = worker.error
            if isinstance(error, FrameError):
                log.debug("bad frame skipped: %s", error)
            elif isinstance(error, Exception):
                # A bug on some input (e.g. in segmentation): count it, never die of it; log a few.
                self._frame_errors_logged += 1
                if self._frame_errors_logged <= 3:
                    shape = getattr(frame, "shape", None)
                    dtype = getattr(frame, "dtype", None)
                    log.warning(
                        "frame %s %s failed (%s: %s); counted as bad",
                        shape,
                        dtype,
                        type(error).__name__,
                        (str(error).strip().splitlines() or [""])[-1][:200],
                    )
            else:
                raise error  # KeyboardInterrupt, SystemExit: not the frame's fault
            return None
        return worker.result

    def _reopen(self, source, error: Exception, open_source: Callable[[], FrameSource]):
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
                source = open_source()
                self.stats.reopens += 1
                log.info("source reopened")
                return source
            except SourceError as exc:
                error = exc
                delay = min(delay * 2, self.reopen_max_seconds)
        return source

    def run(self, open_source: Callable[[], FrameSource]) -> LoopCounters:
        """Read from ``open_source()`` until the stop event, the end of a finite source, ``max_frames`` or a
        quit key; a failing live source is closed and ``open_source()`` called again (with back-off)."""
        source = open_source()
        last_frame_time = None
        next_stats = time.monotonic() + self.stats_seconds
        ready = False
        try:
            while not self.stop.is_set():
                try:
                    frame = source.read()
                except SourceError as exc:
                    if not getattr(source, "live", True):
                        raise  # a file or folder that fails will fail again: end the run (exit 4)
                    source = self._reopen(source, exc, open_source)
                    if source is None:
                        break
                    continue
                if frame is None:  # a finite source has ended
                    break
                result = self._process(frame)
                if result is None:
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
                self.stats.cluttered_frames += bool(getattr(result, "cut_short", False))
                for stage, seconds in result.timings.items():
                    self.stats.stage_seconds[stage] = self.stats.stage_seconds.get(stage, 0.0) + seconds
                event = FrameEvent(reading, frame, result, self.stats.snapshot())
                t_out = time.perf_counter()
                for output in self.outputs:
                    output.show(event)
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
                        "%d frames, %.1f fps, %d bad, %d slow, %d cluttered, %d reopens, reading %r",
                        self.stats.frames,
                        self.stats.fps,
                        self.stats.bad_frames,
                        self.stats.slow_frames,
                        self.stats.cluttered_frames,
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
            if source is not None:
                source.close()
        return self.stats
