"""One frame through the stateless stages: segment -> normalize -> classify, with per-stage timings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from device.normalize import normalize_digit
from device.reading import Digit
from device.segment import Segment, SegmentSettings, segment


@dataclass
class FrameResult:
    """The digits of one frame (reading order), their normalized images, and what each stage cost (s)."""

    digits: list[Digit]
    normalized: list[np.ndarray]
    segments: list[Segment]
    timings: dict[str, float] = field(default_factory=dict)


class FramePipeline:
    """Segment a frame, normalize each digit MNIST-style and classify them all in one batch."""

    def __init__(
        self, classifier, settings: SegmentSettings = SegmentSettings(), min_confidence: float = 0.6
    ):
        self.classifier = classifier
        self.settings = settings
        self.min_confidence = min_confidence

    def process(self, frame) -> FrameResult:
        """Run one frame; raises FrameError for an unusable frame."""
        t0 = time.perf_counter()
        segments = segment(frame, self.settings)
        t1 = time.perf_counter()
        normalized = [normalize_digit(s.ink) for s in segments]
        t2 = time.perf_counter()
        results = self.classifier.classify(normalized) if normalized else []
        t3 = time.perf_counter()
        digits = [
            Digit(value if confidence >= self.min_confidence else None, confidence, s.box)
            for s, (value, confidence) in zip(segments, results, strict=True)
        ]
        timings = {"segment": t1 - t0, "normalize": t2 - t1, "classify": t3 - t2}
        return FrameResult(digits, normalized, segments, timings)
