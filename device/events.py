"""What every output is shown for each processed frame: one frozen :class:`FrameEvent`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from device.reading import Reading

if TYPE_CHECKING:
    import numpy as np

    from device.pipeline import FrameResult


@dataclass(frozen=True)
class LoopStats:
    """The loop's counters as they stood at one frame: a snapshot, so an output may keep it."""

    frames: int = 0
    bad_frames: int = 0
    reopens: int = 0
    slow_frames: int = 0
    cluttered_frames: int = 0  # segmentation cut short: more pieces of ink than its cap
    fps: float = 0.0
    uptime: float = 0.0
    stage_ms: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class FrameEvent:
    """What every output is shown for each processed frame: the (voted) reading, the camera frame, the
    pipeline's result for it (digits, crops, timings) and the loop's counters. ``frame`` and ``result`` are
    None where there is no frame to show."""

    reading: Reading
    frame: np.ndarray | None = None
    result: FrameResult | None = None
    stats: LoopStats = field(default_factory=LoopStats)
