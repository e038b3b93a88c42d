"""Camera-like frames made from digit images: paper, uneven light, shadows, perspective, blur and noise.

The host's synthetic camera: ``host.negatives`` photographs its "not a digit" drawings with it, and the
tests, the benchmarks (``tools/``) and the demo video render their pages with it. Digits are 28x28
white-on-black images (MNIST test digits in the tests); they are scaled up, given a random ink thickness and
printed as dark ink onto the paper, lines of them, then the whole page is photographed. It never runs on the
device.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Scene:
    """A rendered frame and what is written on it (lines joined by one space)."""

    frame: np.ndarray
    text: str
    boxes: list[tuple[int, int, int, int]]
    # Which digit inked each pixel of the frame: k for the k-th digit of ``text`` (from 1, spaces not
    # counted), 0 for none. Where a scene keeps it (``tools.scenes``), a reading can be checked digit by
    # digit: lost, merged with a neighbour, or misread.
    digit_map: np.ndarray | None = None


def paper(rng: np.random.Generator, width: int, height: int, texture: float = 1.0) -> np.ndarray:
    """Grey paper (float 0-255) with a texture, a lighting gradient and maybe a soft shadow."""
    base = rng.uniform(150, 235)
    low = cv2.resize(
        rng.normal(0, 1, (height // 40 + 2, width // 40 + 2)).astype(np.float32),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    fine = rng.normal(0, 1, (height, width)).astype(np.float32)
    page = base + texture * (6 * low + 2 * cv2.GaussianBlur(fine, (0, 0), 1.0))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * (xx / width - 0.5) + np.sin(angle) * (yy / height - 0.5)
    page *= 1 + rng.uniform(0.15, 0.45) * ramp  # light falls off across the page
    if rng.random() < 0.5:  # the shadow of a hand or the camera
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.3, 0.7) * max(width, height)
        distance = np.hypot(xx - cx, yy - cy)
        page *= 1 - rng.uniform(0.2, 0.45) * np.clip((radius - distance) / (0.25 * radius), 0, 1)
    return page


def ink_alpha(digit: np.ndarray, height: int, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 digit scaled to ``height`` px as ink coverage in [0, 1], with a random pen thickness."""
    scale = height / 20.0  # MNIST digits are 20 px tall inside their 28 px field
    size = max(8, round(28 * scale))
    alpha = cv2.resize(digit.astype(np.float32) / 255.0, (size, size), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.5:  # a broader pen
        k = max(1, round(abs(rng.normal(0, 0.06)) * height))
        alpha = cv2.dilate(alpha, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    else:  # a finer pen, never so fine that strokes vanish
        k = round(abs(rng.normal(0, 0.03)) * height)
        if k > 1:
            thinner = cv2.erode(alpha, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
            if (thinner > 0.5).sum() > 0.35 * (alpha > 0.5).sum():
                alpha = thinner
    return np.clip(alpha * 1.3, 0, 1)


def render(
    digits: list[list[np.ndarray]],
    labels: list[list[int]],
    rng: np.random.Generator,
    width: int = 640,
    height: int = 480,
    digit_height: float | None = None,
    perspective: float = 0.04,
    blur: float = 1.0,
    noise: float = 4.0,
    jpeg: bool = True,
) -> Scene:
    """Print lines of digits on paper and photograph it. ``digits[line][i]`` are 28x28 uint8 images."""
    page = paper(rng, width, height)
    n_lines = len(digits)
    longest = max((len(line) for line in digits), default=1)
    if digit_height is None:
        digit_height = min(0.7 * height / max(n_lines, 1) / 1.5, 0.8 * width / max(longest, 1) / 1.3)
        digit_height *= rng.uniform(0.6, 1.0)
    ink_level = rng.uniform(10, 70)
    boxes, lines_text = [], []
    top = (height - n_lines * digit_height * 1.5) / 2 + digit_height * 0.25
    for line_index, (line, line_labels) in enumerate(zip(digits, labels, strict=True)):
        alphas = [ink_alpha(digit, round(digit_height * rng.uniform(0.9, 1.1)), rng) for digit in line]
        extents = [np.flatnonzero(a.max(axis=0) > 0.05) for a in alphas]
        widths = [int(e[-1] - e[0] + 1) if len(e) else 0 for e in extents]
        gaps = rng.uniform(0.25, 0.6, len(line)) * digit_height  # writers leave a gap between digits
        x = (width - sum(widths) - sum(gaps[:-1])) / 2
        y0 = top + line_index * digit_height * 1.5
        text = ""
        for alpha, extent, w, gap, label in zip(alphas, extents, widths, gaps, line_labels, strict=True):
            size = alpha.shape[0]
            px = int(x - (extent[0] if len(extent) else 0))
            py = int(y0 + rng.uniform(-0.08, 0.08) * digit_height - size * 4 / 28)
            x0, y0c = max(px, 0), max(py, 0)
            x1, y1 = min(px + size, width), min(py + size, height)
            a = alpha[y0c - py : y1 - py, x0 - px : x1 - px]
            region = page[y0c:y1, x0:x1]
            page[y0c:y1, x0:x1] = region * (1 - a) + ink_level * a
            ys, xs = np.nonzero(a > 0.3)
            if len(xs):
                boxes.append(
                    (
                        x0 + int(xs.min()),
                        y0c + int(ys.min()),
                        int(xs.max() - xs.min() + 1),
                        int(ys.max() - ys.min() + 1),
                    )
                )
            text += str(label)
            x += w + gap
        lines_text.append(text)
    frame = photograph(page, rng, perspective, blur, noise, jpeg)
    return Scene(frame, " ".join(t for t in lines_text if t), boxes)


def camera_tilt(rng: np.random.Generator, width: int, height: int, perspective: float) -> np.ndarray | None:
    """The perspective of a camera a little off square: each corner of the frame moved by up to
    ``perspective`` of its size (a 3x3 matrix; None for none, and then nothing is drawn from ``rng``)."""
    if not perspective:
        return None
    src = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    jitter = rng.uniform(-perspective, perspective, (4, 2)) * [width, height]
    return cv2.getPerspectiveTransform(src, (src + jitter).astype(np.float32))


def photograph(
    page: np.ndarray,
    rng: np.random.Generator,
    perspective: float = 0.04,
    blur: float = 1.0,
    noise: float = 4.0,
    jpeg: bool = True,
) -> np.ndarray:
    """Slight perspective, focus blur, sensor noise, colour cast and JPEG: a BGR uint8 camera frame."""
    height, width = page.shape
    matrix = camera_tilt(rng, width, height, perspective)
    if matrix is not None:
        page = cv2.warpPerspective(page, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
    sigma = rng.uniform(0.3, blur) if blur else 0
    if sigma:
        page = cv2.GaussianBlur(page, (0, 0), sigma)
    page = page + rng.normal(0, noise, page.shape)
    tint = rng.uniform(0.9, 1.1, 3)
    frame = np.clip(page[..., None] * tint, 0, 255).astype(np.uint8)
    if jpeg:
        _ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(rng.uniform(60, 95))])
        frame = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return frame


def blank(rng: np.random.Generator, width: int = 640, height: int = 480, ruled: bool = False) -> np.ndarray:
    """Paper with nothing written on it (optionally ruled with faint lines), photographed."""
    page = paper(rng, width, height, texture=rng.uniform(1, 3))
    if ruled:
        spacing = rng.uniform(25, 45)
        for y in np.arange(spacing, height, spacing):
            cv2.line(page, (0, int(y)), (width, int(y)), float(page.mean() * 0.75), 1)
    return photograph(page, rng)
