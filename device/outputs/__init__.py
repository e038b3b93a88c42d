"""Outputs: where readings go. Each has ``show(reading, frame, result, stats)`` and an idempotent ``close()``.

Several run at once; the loop calls every output for every processed frame and each decides what to do
(most act only when ``reading.changed``). Hardware and GUI libraries are imported by the output that needs
them, so the core runs with numpy + OpenCV + a TFLite runtime alone.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from device.reading import Reading


class Output(Protocol):
    """What the loop needs from an output."""

    def show(self, reading: Reading, frame: np.ndarray | None, result, stats: dict) -> None: ...

    def close(self) -> None: ...


class QuitRequested(Exception):
    """Raised by an interactive output (the window's ``q`` key) to end the loop cleanly."""
