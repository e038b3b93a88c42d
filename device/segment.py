"""Frame -> digit boxes in reading order, each with its ink crop ready for normalization.

Greyscale -> blur -> ink map against the local paper brightness (handles uneven light and shadows; the
polarity, dark ink on paper or chalk on a board, is detected) -> threshold above the noise -> close small
gaps -> connected components -> merge the pieces of one digit -> filters on size, aspect, fill, contrast and
the frame border -> lines by vertical overlap, each read left to right.

Pure functions on numpy arrays; no state.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device.errors import FrameError
from device.reading import Box


@dataclass(frozen=True)
class SegmentSettings:
    """Tuning of the segmentation; sizes are fractions of the frame unless they say px."""

    polarity: str = "auto"  # "auto", "dark" (ink on paper) or "light" (chalk on a board)
    work_size: int = 800  # longer side the frame is reduced to before segmenting (px)
    min_contrast: float = 0.15  # ink must be this much darker (relative) than the paper around it
    min_height: float = 0.03  # digit height, fraction of the frame's shorter side
    max_height: float = 0.95
    max_aspect: float = 1.5  # width / height
    max_fill: float = 0.8  # ink pixels / box area, for boxes wider than a "1"
    relative_height: float = 0.45  # a digit is at least this fraction of the typical digit height
    relative_contrast: float = 0.35  # ...and at least this fraction as dark as the darkest digit
    min_edge: float = 0.07  # strokes have sharp edges: ink contrast change per px (smooth blotches don't)
    min_edge_snr: float = 2.5  # ...and those edges stand well above the frame's noise
    border: int = 2  # boxes touching the frame within this many px are paper edges or cut-off digits
    roi: tuple[float, float, float, float] | None = None  # x, y, w, h as fractions of the frame


@dataclass(frozen=True)
class Segment:
    """One digit found in a frame: its box (frame px, with its line number) and its ink crop (uint8)."""

    box: Box
    ink: np.ndarray


def to_grey(frame) -> np.ndarray:
    """Validate a frame and return it as 2-D uint8 grey; raise FrameError for anything unusable."""
    if frame is None:
        raise FrameError("frame is None")
    frame = np.asarray(frame)
    if frame.size == 0 or frame.ndim not in (2, 3):
        raise FrameError(f"frame has shape {frame.shape}, expected (H, W) or (H, W, 3|4)")
    if frame.shape[0] < 16 or frame.shape[1] < 16:
        raise FrameError(f"frame of {frame.shape[1]}x{frame.shape[0]} px is too small (16x16 at least)")
    if frame.dtype != np.uint8:
        if frame.dtype == np.uint16:
            frame = (frame >> 8).astype(np.uint8)
        elif np.issubdtype(frame.dtype, np.floating) and np.isfinite(frame).all() and frame.max() <= 1.0:
            frame = (np.clip(frame, 0, 1) * 255).astype(np.uint8)
        else:
            raise FrameError(f"frame dtype {frame.dtype} is not supported (uint8, uint16 or float in [0, 1])")
    if frame.ndim == 3:
        channels = frame.shape[2]
        if channels == 1:
            return np.ascontiguousarray(frame[:, :, 0])
        if channels == 3:
            return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if channels == 4:
            return cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
        raise FrameError(f"frame has {channels} channels, expected 1, 3 or 4")
    return frame


def dark_ink(grey: np.ndarray) -> bool:
    """Guess the polarity from the local contrast: strokes are thin, sparse and far from the local mean.

    Dark ink on paper makes a long tail of pixels much darker than their surroundings, chalk on a board a
    long tail of brighter ones. Comparing with the local (not global) mean ignores vignetting and shadows.
    """
    small = grey[::2, ::2].astype(np.float32)
    k = max(3, (min(small.shape) // 8) | 1)
    deviation = small - cv2.blur(small, (k, k))
    low, high = np.percentile(deviation[::2, ::2], (0.5, 99.5))
    return -low >= high


def ink_map(grey: np.ndarray, dark: bool) -> np.ndarray:
    """Relative ink strength in [0, 1]: how much darker (or lighter, for chalk) than the local background.

    The background is a morphological closing of a reduced copy with a kernel wider than any stroke, so
    ink is removed and shading kept; dividing by it makes the measure independent of the light level.
    """
    paper = grey if dark else 255 - grey
    h, w = paper.shape
    small = cv2.resize(paper, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    k = max(3, (min(small.shape) // 6) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    background = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    background = cv2.blur(background, (k, k))
    background = cv2.resize(background, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    ink = (background - paper.astype(np.float32)) / np.maximum(background, 24.0)
    return np.clip(ink, 0.0, 1.0)


def edge_sharpness(crop_ink: np.ndarray, size: int = 32) -> float:
    """How abruptly ink starts, measured at a fixed digit size (so big or small digits compare fairly).

    The 95th percentile of the ink gradient per px once the crop is scaled to ``size`` px tall: pen
    strokes jump from paper to ink in a px or two, shadows and paper texture fade in over many.
    """
    h, w = crop_ink.shape
    scale = size / max(h, 1)
    if scale < 1:
        crop_ink = cv2.resize(crop_ink, (max(3, round(w * scale)), size), interpolation=cv2.INTER_AREA)
    gx = cv2.Sobel(crop_ink, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(crop_ink, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    return float(np.percentile(np.hypot(gx, gy), 95))


def _merge_pieces(boxes: list[list[int]], typical_h: float) -> list[list[int]]:
    """Merge components that are parts of one digit (a 5's flag, a 4 or 7 written in two strokes).

    Two boxes merge when they overlap horizontally by half the narrower one and their union is no taller
    than a digit; stacked digits of two lines form a union far taller than one digit, so they stay apart.
    """
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                overlap = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
                top, bottom = min(a[1], b[1]), max(a[1] + a[3], b[1] + b[3])
                if overlap >= 0.5 * min(a[2], b[2]) and bottom - top <= 1.3 * typical_h:
                    x0, x1 = min(a[0], b[0]), max(a[0] + a[2], b[0] + b[2])
                    boxes[i] = [x0, top, x1 - x0, bottom - top, a[4] | b[4]]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def reading_order(boxes: list[Box]) -> list[Box]:
    """Group boxes into lines by vertical overlap, lines top to bottom, each left to right."""
    lines: list[list[Box]] = []
    for box in sorted(boxes, key=lambda b: b.y + b.h / 2):
        for line in lines:
            top = min(b.y for b in line)
            bottom = max(b.y + b.h for b in line)
            overlap = min(bottom, box.y + box.h) - max(top, box.y)
            if overlap >= 0.5 * min(box.h, bottom - top):
                line.append(box)
                break
        else:
            lines.append([box])
    lines.sort(key=lambda line: np.mean([b.y + b.h / 2 for b in line]))
    ordered = []
    for number, line in enumerate(lines):
        ordered += [Box(b.x, b.y, b.w, b.h, number) for b in sorted(line, key=lambda b: b.x)]
    return ordered


def segment(frame, settings: SegmentSettings = SegmentSettings()) -> list[Segment]:
    """Find the digits in a frame. Returns them in reading order with their ink crops (white on black)."""
    grey = to_grey(frame)
    offset_x = offset_y = 0
    if settings.roi is not None:
        fx, fy, fw, fh = settings.roi
        H, W = grey.shape
        offset_x, offset_y = int(fx * W), int(fy * H)
        grey = grey[offset_y : offset_y + max(16, int(fh * H)), offset_x : offset_x + max(16, int(fw * W))]
    H, W = grey.shape
    scale = min(1.0, settings.work_size / max(H, W))
    work = (
        cv2.resize(grey, (round(W * scale), round(H * scale)), interpolation=cv2.INTER_AREA)
        if scale < 1
        else grey
    )
    h, w = work.shape
    work = cv2.GaussianBlur(work, (3, 3), 0)

    dark = dark_ink(work) if settings.polarity == "auto" else settings.polarity == "dark"
    ink = ink_map(work, dark)
    # Threshold above the noise floor (robust sigma from the median absolute deviation).
    sample = ink[::4, ::4]
    noise = 1.4826 * float(np.median(np.abs(sample - np.median(sample))))
    threshold = max(settings.min_contrast, 5.0 * noise)
    mask = (ink > threshold).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return []

    min_h = max(8.0, settings.min_height * min(h, w))
    min_area = max(4, int(min_h * min_h * 0.02))
    # Candidate pieces: [x, y, w, h, the component labels it is made of]
    pieces = [[*map(int, stats[i, :4]), frozenset((i,))] for i in range(1, count) if stats[i, 4] >= min_area]
    if not pieces:
        return []
    tall = [p[3] for p in pieces if p[3] >= min_h]
    typical_h = float(np.median(tall)) if tall else min_h
    pieces = _merge_pieces(pieces, typical_h)

    candidates = []
    for x, y, bw, bh, labelbits in pieces:
        area = sum(int(stats[i, 4]) for i in labelbits)
        if bh < min_h or bh > settings.max_height * h or bw > settings.max_height * w:
            continue
        if (
            x <= settings.border
            or y <= settings.border
            or x + bw >= w - settings.border
            or y + bh >= h - settings.border
        ):
            continue
        if bw > settings.max_aspect * bh:
            continue
        if bw > 0.35 * bh and area > settings.max_fill * bw * bh:
            continue
        candidates.append((x, y, bw, bh, labelbits))
    if not candidates:
        return []
    # Peak ink of each candidate, to drop faint marks (show-through from the back of the page, smudges).
    # Edge sharpness tells pen strokes from shadows, paper texture and out-of-focus smudges.
    peak, edge = {}, {}
    for x, y, bw, bh, labelbits in candidates:
        crop_ink = ink[y : y + bh, x : x + bw]
        on = crop_ink[crop_ink > threshold]
        peak[labelbits] = float(np.percentile(on, 90)) if on.size else 0.0
        edge[labelbits] = edge_sharpness(crop_ink)
    min_edge = max(settings.min_edge, settings.min_edge_snr * noise)
    candidates = [c for c in candidates if edge[c[4]] >= min_edge]
    if not candidates:
        return []
    typical_h = float(np.median([c[3] for c in candidates]))
    strongest = max(peak[c[4]] for c in candidates)
    kept = [
        c
        for c in candidates
        if c[3] >= settings.relative_height * typical_h
        and peak[c[4]] >= settings.relative_contrast * strongest
    ]

    segments = []
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    by_box = {}
    for x, y, bw, bh, labelbits in kept:
        pad = 2
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(w, x + bw + pad), min(h, y + bh + pad)
        own = np.isin(labels[y0:y1, x0:x1], list(labelbits))
        # Grow the mask by a pixel so the soft edge of the strokes (below threshold) keeps its grey levels.
        own = cv2.dilate(own.astype(np.uint8), grow).astype(bool)
        crop = np.where(own, ink[y0:y1, x0:x1], 0.0)
        level = peak[labelbits] or 1.0
        crop_u8 = (np.clip(crop / level, 0.0, 1.0) * 255).astype(np.uint8)
        box = Box(
            round(x / scale) + offset_x,
            round(y / scale) + offset_y,
            max(1, round(bw / scale)),
            max(1, round(bh / scale)),
        )
        by_box[box] = crop_u8
    for box in reading_order(list(by_box)):
        segments.append(Segment(box, by_box[Box(box.x, box.y, box.w, box.h)]))
    return segments
