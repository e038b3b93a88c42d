"""Digits in a style MNIST lacks, as a camera would see them: written with a thick marker as the segments of
a seven-segment display (boxy, straight strokes, square corners). Used by the custom-data round trip."""

from __future__ import annotations

import cv2
import numpy as np

from host.synthetic import paper, photograph

# Segment ends in a unit box (x, y in 0..1): boxy digits drawn like a seven-segment display.
SEGMENTS = {
    "a": [(0.0, 0.0), (1.0, 0.0)],
    "b": [(1.0, 0.0), (1.0, 0.5)],
    "c": [(1.0, 0.5), (1.0, 1.0)],
    "d": [(0.0, 1.0), (1.0, 1.0)],
    "e": [(0.0, 0.5), (0.0, 1.0)],
    "f": [(0.0, 0.0), (0.0, 0.5)],
    "g": [(0.0, 0.5), (1.0, 0.5)],
}
LIT = {
    0: "abcdef",
    1: "bc",
    2: "abged",
    3: "abgcd",
    4: "fgbc",
    5: "afgcd",
    6: "afgedc",
    7: "abc",
    8: "abcdefg",
    9: "abcdfg",
}
STYLES = {label: [SEGMENTS[s] for s in lit] for label, lit in LIT.items()}


def styled_page(label: int, rng: np.random.Generator, width: int = 320, height: int = 240) -> np.ndarray:
    """One digit in one of the styles above, thick marker, on a camera-like page."""
    page = paper(rng, width, height)
    h = rng.uniform(0.4, 0.6) * height
    w = h * rng.uniform(0.45, 0.6)
    x0, y0 = (width - w) / 2 + rng.uniform(-20, 20), (height - h) / 2 + rng.uniform(-15, 15)
    thickness = max(3, round(h * rng.uniform(0.08, 0.14)))
    angle = np.deg2rad(rng.uniform(-8, 8))
    ink = rng.uniform(10, 60)
    for stroke in STYLES[label]:
        points = []
        for x, y in stroke:
            x, y = x + rng.normal(0, 0.02), y + rng.normal(0, 0.02)
            dx, dy = (x - 0.5) * w, (y - 0.5) * h
            points.append(
                (
                    x0 + w / 2 + dx * np.cos(angle) - dy * np.sin(angle),
                    y0 + h / 2 + dx * np.sin(angle) + dy * np.cos(angle),
                )
            )
        cv2.polylines(page, [np.round(points).astype(np.int32)], False, float(ink), thickness, cv2.LINE_AA)
    return photograph(page, rng, perspective=0.02, blur=0.8, noise=3.0)
