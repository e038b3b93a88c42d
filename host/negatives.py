"""Generated "not a digit" crops for the digit-or-not model, cut the way the device cuts them.

A camera frame offers the model many candidates that are not one digit: paper and desk texture, pieces of
ruled and grid lines, shadow edges, arithmetic operators, letters, a digit broken in two, two digits that
touch. Each kind is drawn here as ink on a small sheet of paper, photographed with the device's synthetic
camera (blur, noise, JPEG), turned into ink with the segmenter's own ``ink_map`` and threshold, cropped like
a candidate, and normalized with the device's ``normalize_digit``: training sees exactly the pixels the Pi
sends to the model.

Everything is drawn from one seeded generator, so a seed names a set: training uses one seed, the
held-apart evaluation another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from device.normalize import normalize_digit
from device.segment import InkImage, SegmentSettings, ink_map, ink_mask, robust_sigma
from host.synthetic import paper, photograph

KINDS = ("texture", "line", "operator", "letter", "piece", "pair")

# Letters whose handwritten shapes are not digits (o/O/D ~ 0, l/I ~ 1, z/Z ~ 2, S ~ 5, b/G ~ 6, B ~ 8,
# g/q ~ 9, y ~ 4, T ~ 7 are left out: calling them "not a digit" would teach the model to reject digits).
LETTERS = "acefhkmnrtuvwxAEFHKMNRUVWXY"
FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)
CANVAS = 64  # px, the sheet a negative is drawn on before it is photographed


@dataclass(frozen=True)
class NegativeSet:
    """Normalized 28x28 negatives and the kind of each (an index into ``KINDS``)."""

    images: np.ndarray
    kinds: np.ndarray

    def __len__(self) -> int:
        return len(self.kinds)

    def without(self, kinds: tuple[str, ...]) -> NegativeSet:
        """The same crops, less those of the kinds named."""
        kept = ~np.isin(self.kinds, [KINDS.index(kind) for kind in kinds])
        return NegativeSet(self.images[kept], self.kinds[kept])


# --- drawing: each returns ink coverage in [0, 1] on a CANVAS x CANVAS sheet -------------------------------


def pen_width(rng: np.random.Generator, size: float) -> int:
    """A pen as wide, relative to what it draws, as MNIST's digits are written (their strokes are 8-16 %
    of the digit's height): negatives drawn with thinner pens would teach the model that thin strokes mean
    "not a digit", and a camera's thin-pen digits would be rejected."""
    return max(1, round(rng.uniform(0.08, 0.16) * size))


def _stroke(canvas: np.ndarray, points, thickness: int, rng: np.random.Generator) -> None:
    """A hand-drawn stroke through ``points``: jittered, anti-aliased, of the given pen width."""
    points = np.asarray(points, np.float32)
    points = points + rng.normal(0, 1.2, points.shape)
    cv2.polylines(canvas, [np.round(points * 16).astype(np.int32)], False, 255, thickness, cv2.LINE_AA, 4)


def _arc(cx, cy, rx, ry, start, stop, steps=12):
    angles = np.linspace(start, stop, steps)
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)


def draw_operator(rng: np.random.Generator) -> np.ndarray:
    """One of + - × ÷ = ( ) . as jittered pen strokes."""
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    c = CANVAS / 2
    r = rng.uniform(10, 22)
    t = pen_width(rng, 2 * r)
    op = rng.choice(list("+-x/=()."))
    if op == "/":  # a slash reads as a slanted 1: draw a division sign instead
        op = "÷"
    if op == "+":
        _stroke(canvas, [(c - r, c), (c + r, c)], t, rng)
        _stroke(canvas, [(c, c - r), (c, c + r)], t, rng)
    elif op == "-":
        _stroke(canvas, [(c - r, c), (c, c + rng.normal(0, 1)), (c + r, c)], t, rng)
    elif op == "x":
        _stroke(canvas, [(c - r, c - r), (c + r, c + r)], t, rng)
        _stroke(canvas, [(c + r, c - r), (c - r, c + r)], t, rng)
    elif op == "÷":
        _stroke(canvas, [(c - r, c), (c + r, c)], t, rng)
        for dy in (-0.6 * r, 0.6 * r):
            cv2.circle(canvas, (int(c), int(c + dy)), max(2, t), 255, -1, cv2.LINE_AA)
    elif op == "=":
        gap = rng.uniform(0.25, 0.5) * r
        _stroke(canvas, [(c - r, c - gap), (c + r, c - gap)], t, rng)
        _stroke(canvas, [(c - r, c + gap), (c + r, c + gap)], t, rng)
    elif op in "()":
        # Clearly curved: a bracket bends by at least 90 degrees, a "1" barely bends.
        sweep = rng.uniform(0.5, 0.8) * np.pi
        mid = np.pi if op == "(" else 0.0
        _stroke(canvas, _arc(c, c, 0.8 * r, 1.3 * r, mid - sweep / 2, mid + sweep / 2), t, rng)
    else:  # "."
        cv2.circle(canvas, (int(c), int(c)), int(rng.integers(2, 6)), 255, -1, cv2.LINE_AA)
    return canvas.astype(np.float32) / 255


def draw_letter(rng: np.random.Generator) -> np.ndarray:
    """A letter in a random Hershey font (print or script), pen width and slant."""
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    letter = str(rng.choice(list(LETTERS)))
    font = int(rng.choice(FONTS))
    scale = rng.uniform(1.0, 1.6)
    thickness = pen_width(rng, 22 * scale)
    (w, h), _ = cv2.getTextSize(letter, font, scale, thickness)
    origin = (int((CANVAS - w) / 2), int((CANVAS + h) / 2))
    cv2.putText(canvas, letter, origin, font, scale, 255, thickness, cv2.LINE_AA)
    return _affine(canvas.astype(np.float32) / 255, rng, rotation=15, shear=0.3)


def draw_line(rng: np.random.Generator) -> np.ndarray:
    """A piece of ruled or grid paper, a printed box corner, or a hard shadow edge."""
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    t = int(rng.integers(1, 4)) if rng.random() < 0.5 else pen_width(rng, 40)
    style = rng.choice(["rule", "cross", "corner", "tee", "box", "shadow", "rules"])
    a, b = rng.uniform(8, 24), rng.uniform(40, 56)
    if style == "rule":  # a ruled line crossing the candidate's window: a long horizontal bar
        y = rng.uniform(20, 44)
        cv2.line(canvas, (0, int(y)), (CANVAS - 1, int(y + rng.normal(0, 3))), 255, t, cv2.LINE_AA)
    elif style == "rules":  # two or three ruled lines
        for y in np.arange(rng.uniform(6, 20), CANVAS, rng.uniform(14, 24)):
            cv2.line(canvas, (0, int(y)), (CANVAS - 1, int(y)), 255, t, cv2.LINE_AA)
    elif style == "cross":  # a grid crossing
        cv2.line(canvas, (0, int(a + 10)), (CANVAS - 1, int(a + 10)), 255, t, cv2.LINE_AA)
        cv2.line(canvas, (int(b - 10), 0), (int(b - 10), CANVAS - 1), 255, t, cv2.LINE_AA)
    elif style == "corner":
        cv2.line(canvas, (int(a), int(a)), (CANVAS - 1, int(a)), 255, t, cv2.LINE_AA)
        cv2.line(canvas, (int(a), int(a)), (int(a), CANVAS - 1), 255, t, cv2.LINE_AA)
    elif style == "tee":
        cv2.line(canvas, (0, int(a)), (CANVAS - 1, int(a)), 255, t, cv2.LINE_AA)
        cv2.line(canvas, (int(b - 10), int(a)), (int(b - 10), CANVAS - 1), 255, t, cv2.LINE_AA)
    elif style == "box":  # a printed box with square corners, part of a form
        cv2.rectangle(canvas, (int(a), int(a)), (int(b + 6), int(b - 8)), 255, t, cv2.LINE_AA)
    else:  # shadow: a dark region with a curved hard edge
        yy, xx = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        bend = rng.normal(0, 0.01)
        d = np.cos(angle) * (xx - 32) + np.sin(angle) * (yy - 32) + bend * (xx - 32) ** 2
        shadow = np.clip(-d / rng.uniform(1, 4), 0, 1) * rng.uniform(0.5, 0.9)
        return _affine(shadow, rng, rotation=8, shear=0.1)
    return _affine(canvas.astype(np.float32) / 255, rng, rotation=8, shear=0.1)


def draw_texture(rng: np.random.Generator) -> np.ndarray:
    """Wood grain, weave, leather, stucco, fibre or speckle, as ink-like darkness in [0, 1]."""
    yy, xx = np.mgrid[0:CANVAS, 0:CANVAS].astype(np.float32)
    style = rng.choice(["wood", "fabric", "leather", "stucco", "fibre", "speckle"])

    def smooth_noise(cell: float) -> np.ndarray:
        size = max(2, int(CANVAS / cell) + 2)
        low = rng.normal(0, 1, (size, size)).astype(np.float32)
        return cv2.resize(low, (CANVAS, CANVAS), interpolation=cv2.INTER_CUBIC)

    if style == "wood":
        angle = rng.uniform(0, np.pi)
        u = np.cos(angle) * xx + np.sin(angle) * yy
        texture = np.sin(u * rng.uniform(0.3, 0.9) + 4 * smooth_noise(rng.uniform(8, 30)))
    elif style == "fabric":
        period = rng.uniform(3, 8)
        texture = np.sin(xx * 2 * np.pi / period) * np.sin(yy * 2 * np.pi / period)
        texture += 0.5 * smooth_noise(6)
    elif style == "leather":
        texture = -np.abs(smooth_noise(rng.uniform(4, 10))) + 0.3 * smooth_noise(2)
    elif style == "stucco":
        texture = smooth_noise(rng.uniform(2, 6)) + 0.5 * smooth_noise(rng.uniform(8, 16))
    elif style == "fibre":
        texture = cv2.GaussianBlur(rng.normal(0, 1, (CANVAS, CANVAS)).astype(np.float32), (0, 0), 0.8)
        streaks = cv2.blur(rng.normal(0, 1, (CANVAS, CANVAS)).astype(np.float32), (15, 1))
        texture += 3 * streaks
    else:
        texture = (rng.random((CANVAS, CANVAS)) < rng.uniform(0.005, 0.03)).astype(np.float32)
        texture = cv2.dilate(texture, np.ones((2, 2), np.uint8)) * 3
    texture = (texture - texture.mean()) / (texture.std() + 1e-6)
    return np.clip(texture * rng.uniform(0.15, 0.45), 0, 1)


def draw_piece(rng: np.random.Generator, digits: np.ndarray) -> np.ndarray:
    """A digit broken in two: one side of a cut through an MNIST training digit (never a thin stroke)."""
    for _ in range(20):
        digit = digits[rng.integers(len(digits))].astype(np.float32) / 255.0
        ys, xs = np.nonzero(digit > 0.3)
        if not len(xs):
            continue
        if rng.random() < 0.5:  # cut across: keep the left or the right part
            cut = int(xs.min() + rng.uniform(0.35, 0.65) * (xs.max() - xs.min()))
            piece = digit.copy()
            if rng.random() < 0.5:
                piece[:, cut:] = 0
            else:
                piece[:, :cut] = 0
        else:  # cut along: keep the top or the bottom part
            cut = int(ys.min() + rng.uniform(0.35, 0.6) * (ys.max() - ys.min()))
            piece = digit.copy()
            if rng.random() < 0.5:
                piece[cut:] = 0
            else:
                piece[:cut] = 0
        ys, xs = np.nonzero(piece > 0.3)
        if len(xs) < 0.25 * (digit > 0.3).sum():
            continue
        # A tall thin piece is a "1" (a stroke alone that is straight is a digit): not a negative.
        if (xs.max() - xs.min() + 1) < 0.45 * (ys.max() - ys.min() + 1):
            continue
        return _place(piece, rng)
    return _place(digit * 0, rng)


def draw_pair(rng: np.random.Generator, digits: np.ndarray) -> np.ndarray:
    """Two (sometimes three) MNIST training digits touching or overlapping, as in dense handwriting."""
    count = 3 if rng.random() < 0.15 else 2
    parts = [digits[rng.integers(len(digits))].astype(np.float32) / 255.0 for _ in range(count)]
    height = 28
    canvas = np.zeros((28 + 8, 28 * count + 8), np.float32)
    x = 4
    for part in parts:
        cols = np.flatnonzero(part.max(axis=0) > 0.3)
        if not len(cols):
            continue
        left, right = cols[0], cols[-1] + 1
        dy = int(rng.integers(-3, 4))
        strip = part[:, left:right]
        x1 = min(canvas.shape[1], x + strip.shape[1])
        canvas[4 + dy : 4 + dy + height, x:x1] = np.maximum(
            canvas[4 + dy : 4 + dy + height, x:x1], strip[:, : x1 - x]
        )
        # The next digit starts where this one ends, give or take: overlap (negative gap) or just touching.
        x = x1 - round(rng.uniform(0.0, 0.3) * strip.shape[1])
    return _place(canvas, rng)


def _place(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scale an ink image to fit the canvas at a random size, centred."""
    h, w = ink.shape
    scale = rng.uniform(30, 50) / max(h, w)
    ink = cv2.resize(
        ink, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_LINEAR
    )
    canvas = np.zeros((CANVAS, CANVAS), np.float32)
    h, w = ink.shape
    y0, x0 = (CANVAS - h) // 2, (CANVAS - w) // 2
    canvas[y0 : y0 + h, x0 : x0 + w] = ink
    return canvas


def _affine(canvas: np.ndarray, rng: np.random.Generator, rotation: float, shear: float) -> np.ndarray:
    angle = rng.uniform(-rotation, rotation)
    matrix = cv2.getRotationMatrix2D((CANVAS / 2, CANVAS / 2), angle, 1.0)
    matrix[0, 1] += rng.uniform(-shear, shear)
    return cv2.warpAffine(canvas, matrix, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR)


# --- through the device's eyes ------------------------------------------------------------------------


def device_crop(coverage: np.ndarray, rng: np.random.Generator, whole: bool = False) -> np.ndarray | None:
    """Print ink coverage onto paper, photograph it and cut the candidate as the segmenter would.

    Returns the normalized 28x28 image, or None when nothing stands out as ink. ``whole`` crops the whole
    inked area (textures, where the "candidate" is whatever the threshold leaves).

    The camera varies as real ones do: ink from black to a faint felt pen (a third of the paper's
    brightness darker, or less), focus from sharp to a soft webcam blur. The threshold is the segmenter's
    (``min_contrast`` or 5 sigma of the paper, traced by its own ``ink_mask``), so a crop keeps the soft
    edge of its strokes exactly as the device's crops do.
    """
    page = paper(rng, CANVAS, CANVAS)
    ink_level = float(np.median(page)) * rng.uniform(0.05, 0.7)
    page = page * (1 - coverage) + ink_level * coverage
    photo = photograph(page, rng, perspective=0, blur=rng.uniform(0.8, 2.4), noise=rng.uniform(1.0, 4.0))
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    ink = ink_map(cv2.GaussianBlur(grey, (3, 3), 0), dark=True)
    noise = robust_sigma(ink)
    threshold = max(SegmentSettings.min_contrast, 5.0 * noise)
    everywhere = np.ones(ink.shape, bool)
    mask = ink_mask(InkImage(ink, everywhere, np.full(ink.shape, threshold, np.float32), noise))
    if whole:
        # A texture candidate: a random window of what passed the threshold, as a segmenter would cut it.
        size = int(rng.integers(16, 48))
        y, x = rng.integers(0, CANVAS - size, 2)
        region = np.zeros_like(mask)
        region[y : y + size, x : x + size] = 1
        mask &= region
    else:
        mask &= (cv2.dilate(coverage, np.ones((5, 5), np.uint8)) > 0.2).astype(np.uint8)
    if mask.sum() < 6:
        return None
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    crop = np.where(mask > 0, ink, 0.0)
    on = crop[crop > threshold]
    level = float(np.percentile(on, 90)) if on.size else 1.0
    crop_u8 = (np.clip(crop / max(level, 1e-3), 0, 1) * 255).astype(np.uint8)
    normalized = normalize_digit(crop_u8)
    return normalized if normalized.any() else None


def device_digits(
    count: int, seed: int, digits: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` MNIST training digits written on paper, photographed and cut exactly as the negatives are.

    Without them the only camera-looking crops in training are negatives, and the model learns "soft,
    camera-cut strokes mean not a digit": faint felt-pen or blurred webcam digits are rejected. With them,
    the camera's look says nothing about the class; only the shape does. Returns (images, labels).
    """
    rng = np.random.default_rng(seed)
    images, kept = [], []
    while len(images) < count:
        index = int(rng.integers(len(digits)))
        coverage = _affine(_place(digits[index].astype(np.float32) / 255.0, rng), rng, 8.0, 0.15)
        image = device_crop(coverage, rng)
        if image is not None:
            images.append(image)
            kept.append(labels[index])
    return np.asarray(images, np.uint8).reshape(-1, 28, 28), np.asarray(kept, np.uint8)


# Kinds whose drawings can come out looking like a digit (half an 8 is a 3, a corner is a 7). Operators are
# not screened: the slash is drawn as a division sign, and a bracket bends by 90 degrees or more, which a
# "1" never does; screened, most brackets were left out as "digit-like" and the model read 14 % of them as 1s.
SCREENED = ("piece", "line")


def generate(
    count: int,
    seed: int,
    digits: np.ndarray,
    kinds: tuple[str, ...] = KINDS,
    looks_like_a_digit: Callable[[np.ndarray], np.ndarray] | None = None,
) -> NegativeSet:
    """``count`` negatives spread evenly over ``kinds``; ``digits`` are MNIST training images (N, 28, 28).

    ``looks_like_a_digit(images) -> bool array`` screens the kinds in ``SCREENED``: a drawing that a
    digits-only model reads as a clear digit is ambiguous, and calling it "not a digit" would teach the
    model to reject real digits, so it is drawn again.
    """
    rng = np.random.default_rng(seed)
    drawers: dict[str, Callable[[], np.ndarray]] = {
        "texture": lambda: draw_texture(rng),
        "line": lambda: draw_line(rng),
        "operator": lambda: draw_operator(rng),
        "letter": lambda: draw_letter(rng),
        "piece": lambda: draw_piece(rng, digits),
        "pair": lambda: draw_pair(rng, digits),
    }
    images, labels = [], []
    for kind in kinds:
        wanted = count // len(kinds) + (kinds.index(kind) < count % len(kinds))
        found: list[np.ndarray] = []
        for _round in range(20):
            batch = []
            for _ in range(2 * (wanted - len(found))):
                image = device_crop(drawers[kind](), rng, whole=kind == "texture")
                if image is not None:
                    batch.append(image)
            if batch and looks_like_a_digit is not None and kind in SCREENED:
                digit_like = looks_like_a_digit(np.stack(batch))
                batch = [image for image, like in zip(batch, digit_like, strict=True) if not like]
            found += batch[: wanted - len(found)]
            if len(found) >= wanted:
                break
        images += found
        labels += [KINDS.index(kind)] * len(found)
    order = rng.permutation(len(images))
    images_array = np.asarray(images, np.uint8).reshape(-1, 28, 28)[order]
    return NegativeSet(images_array, np.asarray(labels, np.uint8)[order])


def sample_grid(negatives: NegativeSet, per_kind: int = 12) -> np.ndarray:
    """A grid image (one row per kind, ``per_kind`` columns) for the README and for review."""
    rows = []
    for k in range(len(KINDS)):
        picks = negatives.images[negatives.kinds == k][:per_kind]
        row = np.zeros((30, 30 * per_kind), np.uint8)
        for i, image in enumerate(picks):
            row[1:29, 30 * i + 1 : 30 * i + 29] = image
        rows.append(row)
    return np.vstack(rows)
