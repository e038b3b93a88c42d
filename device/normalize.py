"""Box crop -> 28x28 digit, exactly the way MNIST was built.

This module is the single definition of "what the model sees": the device uses it on camera crops and the
host uses it on custom training images, so training and serving see the same pixels.

MNIST recipe (LeCun et al.): the digit's bounding box is scaled so its longer side is 20 px, keeping the
aspect ratio, with anti-aliased grey levels; it is placed in a 28x28 field and translated so that its
centre of mass lies at the centre of the field. Digits are white (255) on black (0).
"""

from __future__ import annotations

import cv2
import numpy as np

SIZE = 28
FIT = 20
# Stroke width / longer side of the box: MNIST's median is 0.11 and its 5th percentile 0.076 (measured on
# the test set with stroke_width() below). Thin-pen camera digits are thickened up to MIN_STROKE.
MIN_STROKE = 0.09


def center_of_mass(image: np.ndarray) -> tuple[float, float]:
    """(x, y) centre of mass of a grey image's intensities; the geometric centre when it is all zero.

    Summed here, not with ``cv2.moments``: that takes an array two columns wide for a list of (x, y) points,
    so the centre of a digit scaled to two px wide (an upright "1", 4-6 px by 40-60) came out far off the
    field, and the digit was shifted out of its 28x28 image."""
    h, w = image.shape[:2]
    weights = image.astype(np.float64)
    total = weights.sum()
    if total <= 0:
        return (w - 1) / 2.0, (h - 1) / 2.0
    x = float(weights.sum(axis=0) @ np.arange(w)) / total
    return x, float(weights.sum(axis=1) @ np.arange(h)) / total


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in px of a cropped ink image: 2 * area / perimeter of the inked pixels."""
    binary = (ink > 127).astype(np.uint8)
    area = int(binary.sum())
    if area == 0:
        return 0.0
    contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * area / max(perimeter, 1.0)


def thicken_strokes(crop: np.ndarray, min_stroke: float = MIN_STROKE) -> np.ndarray:
    """Dilate a thin-pen digit until its strokes are as thick, relative to its size, as MNIST's.

    MNIST was written with a thick pen; a fine pen seen by a camera shrinks to faint hairlines at 20 px.
    Digits that are thick enough already (MNIST itself, markers) are returned unchanged.
    """
    longer = max(crop.shape)
    missing = min_stroke * longer - stroke_width(crop)
    radius = round(missing / 2)
    if radius < 1:
        return crop
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    padded = cv2.copyMakeBorder(crop, radius, radius, radius, radius, cv2.BORDER_CONSTANT, value=0)
    return cv2.dilate(padded, kernel)


def normalize_digit(ink: np.ndarray, min_stroke: float | None = MIN_STROKE) -> np.ndarray:
    """Turn an ink image of one digit into a 28x28 uint8 MNIST-style image.

    ``ink`` is a 2-D array where larger values mean more ink (white-on-black), cropped more or less
    tightly around one digit; it is cropped again to its non-zero box here, so any padding is harmless.
    Strokes thinner than ``min_stroke`` of the digit's size are thickened first (None: never).
    Returns an all-zero image for an empty crop.
    """
    if ink.ndim != 2 or ink.size == 0:
        raise ValueError(f"normalize_digit needs a non-empty 2-D ink image, got shape {ink.shape}")
    ink = np.clip(ink, 0, 255).astype(np.uint8) if ink.dtype != np.uint8 else ink
    points = cv2.findNonZero(ink)
    if points is None:
        return np.zeros((SIZE, SIZE), np.uint8)
    x, y, w, h = cv2.boundingRect(points)
    crop = ink[y : y + h, x : x + w]
    if min_stroke:
        crop = thicken_strokes(crop, min_stroke)
        h, w = crop.shape

    scale = FIT / max(w, h)
    new_w = max(1, round(w * scale))
    new_h = max(1, round(h * scale))
    # INTER_AREA averages source pixels when shrinking (anti-aliasing); tiny crops are enlarged smoothly.
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    fitted = cv2.resize(crop, (new_w, new_h), interpolation=interpolation)

    cx, cy = center_of_mass(fitted)
    # Translate so the centre of mass lands on the field's centre (pixel centres at 0..27 -> 13.5).
    # Sub-pixel shifts keep the grey levels honest; the 4 px margin absorbs the shift.
    shift = np.float32([[1, 0, (SIZE - 1) / 2.0 - cx], [0, 1, (SIZE - 1) / 2.0 - cy]])
    return cv2.warpAffine(
        fitted, shift, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def turned(ink: np.ndarray, degrees: float) -> np.ndarray:
    """An ink crop turned by ``degrees`` about its centre (counter-clockwise as seen, OpenCV's sense), on a
    square canvas as wide as its diagonal, so that no corner of it is cut off."""
    h, w = ink.shape
    side = int(np.ceil(np.hypot(h, w))) + 2
    top, left = (side - h) // 2, (side - w) // 2
    canvas = cv2.copyMakeBorder(ink, top, side - h - top, left, side - w - left, cv2.BORDER_CONSTANT, value=0)
    turn = cv2.getRotationMatrix2D(((side - 1) / 2.0, (side - 1) / 2.0), degrees, 1.0)
    return cv2.warpAffine(canvas, turn, (side, side), flags=cv2.INTER_LINEAR)


# How a digit comes out with its crop a pixel off, or the page turned a little: the views an unsure digit
# is read again from (see ``device.pipeline``).
JITTER_SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))
JITTER_TURNS = (-8.0, 8.0)  # degrees


def jittered(image: np.ndarray) -> list[np.ndarray]:
    """A 28x28 digit shifted by a pixel each way and turned a little each way (the image itself not
    included)."""
    centre = ((SIZE - 1) / 2.0, (SIZE - 1) / 2.0)
    moves = [np.float32([[1, 0, dx], [0, 1, dy]]) for dx, dy in JITTER_SHIFTS]
    moves += [cv2.getRotationMatrix2D(centre, angle, 1.0) for angle in JITTER_TURNS]
    return [cv2.warpAffine(image, move, (SIZE, SIZE)) for move in moves]


def to_model_input(digits: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Stack 28x28 uint8 digits into the float32 batch (N, 28, 28, 1) in [0, 1] the models are trained on."""
    batch = np.asarray(digits, dtype=np.float32).reshape(-1, SIZE, SIZE, 1)
    return batch / 255.0
