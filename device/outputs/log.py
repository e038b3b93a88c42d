"""``log`` output: one JSON line on stdout per reading change (diagnostics go to stderr via logging)."""

from __future__ import annotations

import contextlib
import json
import sys

from device.errors import OutputError
from device.events import FrameEvent
from device.outputs import ClosedOnExit


def build(_section, _context) -> JsonLinesOutput:
    return JsonLinesOutput()


class JsonLinesOutput(ClosedOnExit):
    """Writes ``{"event": "reading", "text": ..., "digits": [...], "fps": ...}`` when the reading changes."""

    def __init__(self, stream=None, every_frame: bool = False):
        self.stream = stream or sys.stdout
        self.every_frame = every_frame

    def show(self, event: FrameEvent) -> None:
        if not (event.reading.changed or self.every_frame):
            return
        line = {
            "event": "reading",
            **event.reading.as_dict(),
            "frame": event.stats.frames,
            "fps": round(event.stats.fps, 1),
        }
        write_line(self.stream, json.dumps(line, allow_nan=False))

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):  # already closed, or the failure was reported
            self.stream.flush()


def write_line(stream, line: str) -> None:
    """Write and flush one line; a closed pipe stays BrokenPipeError (a quiet end), anything else
    (a full disk) becomes a one-line OutputError."""
    try:
        stream.write(line + "\n")
        stream.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write to stdout ({exc.strerror or exc})") from None
