"""Stage 6: reading order that follows the writing."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from device.reading import Box
from device.segment.stats import median


@dataclass(frozen=True)
class Layout:
    """The boxes' places as arrays, and which box may follow which in a line (all pairs at once: their
    number is bounded by the segmenter's cap on pieces)."""

    x: np.ndarray
    w: np.ndarray
    h: np.ndarray
    cx: np.ndarray
    cy: np.ndarray
    size: np.ndarray  # the taller of each pair's heights
    dx: np.ndarray  # the gap from each box's right side to each other box's left side
    ahead: np.ndarray  # the second box of the pair may follow the first in a line

    @classmethod
    def of(cls, boxes: list[Box]) -> Layout:
        x = np.array([b.x for b in boxes], np.float32)
        w = np.array([b.w for b in boxes], np.float32)
        h = np.array([b.h for b in boxes], np.float32)
        cx, cy = x + w / 2, np.array([b.y for b in boxes], np.float32) + h / 2
        size = np.maximum(h[:, None], h[None, :])
        dx = x[None, :] - (x + w)[:, None]
        narrower = np.minimum(w[:, None], w[None, :])
        ahead = (cx[None, :] > cx[:, None]) & (dx <= 2.5 * size) & (dx >= -0.5 * narrower)
        return cls(x, w, h, cx, cy, size, dx, ahead)


def reading_order(boxes: list[Box]) -> list[Box]:
    """Read rows top to bottom where the boxes' heights fall clearly into rows (see
    :func:`rows_by_height`); otherwise chain each box to its nearest neighbour in the writing direction and
    read the chains top to bottom.

    A box's right neighbour starts to its right, not too far (a few digit heights), and not too far up or
    down (most of a digit height: slanted, curved and loosely written lines stay one chain; the line
    below does not join). Each box takes at most one left and one right neighbour, nearest first.

    Heights are measured along the writing's slope (see :func:`writing_slope`), which straightens a line
    written on a rising diagonal. A slope read from a few loosely placed digits may be noise, though (a
    digit written a little high beside one written a little low): where reading the boxes level gives
    fewer lines than reading them along the slope, they are read level.
    """
    if not boxes:
        return []
    lines, _slope = lines_and_slope(Layout.of(boxes))
    return _numbered(boxes, lines)


def lines_and_slope(layout: Layout) -> tuple[list[list[int]], float]:
    """The lines (see :func:`lines_along`) along the writing's slope, and that slope; read level (slope 0)
    where that gives fewer lines."""
    slope = writing_slope(layout)
    lines = lines_along(layout, slope)
    if slope:
        level = lines_along(layout, 0.0)
        if len(level) < len(lines):
            return level, 0.0
    return lines, slope


def writing_angle(boxes: list[Box], least: float = 0.0) -> float:
    """The angle of the writing's lines (degrees, OpenCV's sense: a crop turned by it is levelled with its
    line) from the slope they are read along (see :func:`reading_order`); 0 for fewer than two boxes, and
    where it is under ``least`` degrees either way.

    Reading the lines, to check the slope, costs several times measuring it; a slope already under
    ``least`` is never checked (the check can only level it), which is every frame of level writing."""
    if len(boxes) < 2:
        return 0.0
    layout = Layout.of(boxes)
    if abs(np.degrees(np.arctan(writing_slope(layout)))) < least:
        return 0.0
    angle = float(np.degrees(np.arctan(lines_and_slope(layout)[1])))
    return angle if abs(angle) >= least else 0.0


def writing_slope(layout: Layout) -> float:
    """The median rise from each box to its nearest neighbour ahead (one at most 0.6 of the taller's
    height higher or lower), clipped to +-0.5."""
    cx, cy, dx = layout.cx, layout.cy, layout.dx
    dy = cy[None, :] - cy[:, None]
    near = layout.ahead & (np.abs(dy) <= 0.6 * layout.size)
    slopes = []
    for i in range(len(cx)):
        js = np.flatnonzero(near[i])
        if len(js):
            j = js[np.argmin(dx[i, js])]
            slopes.append(dy[i, j] / max(cx[j] - cx[i], 1.0))
    return float(np.clip(median(slopes), -0.5, 0.5)) if slopes else 0.0


def lines_along(layout: Layout, slope: float) -> list[list[int]]:
    """The lines (box indices, in reading order) with heights measured along ``slope``: rows where they
    are clear, else chains."""
    x, w, h, cx, cy, size, dx = layout.x, layout.w, layout.h, layout.cx, layout.cy, layout.size, layout.dx
    n = len(x)
    level = cy - slope * cx
    rows = rows_by_height(level, h, x, w)
    if rows is None and slope:
        rows = rows_by_height(cy, h, x, w)  # a slope read from loosely placed digits may be no slope
    if rows is not None:
        return [sorted(row, key=lambda k: cx[k]) for row in rows]
    dy = np.abs(level[None, :] - level[:, None])
    allowed = layout.ahead & (dy <= 0.6 * size)
    cost = np.maximum(dx, 0) + 2.0 * dy
    pairs = np.argwhere(allowed)
    links = sorted(zip(cost[allowed].tolist(), pairs[:, 0].tolist(), pairs[:, 1].tolist(), strict=True))
    right, left = [-1] * n, [-1] * n
    for _cost, i, j in links:
        if right[i] == -1 and left[j] == -1:
            right[i], left[j] = j, i
    chains = []
    for start in range(n):
        if left[start] != -1:
            continue
        chain, k = [], start
        while k != -1:
            chain.append(k)
            k = right[k]
        chains.append(chain)
    # Widely spaced digits of one line (a scattered layout, a date with gaps) form separate chains: join
    # each chain to the nearest chain wholly to its right at the same height, nearest pairs first. A chain
    # only ever joins one to its right, so no cycle can form.
    ends = np.array([chain[-1] for chain in chains])
    starts = np.array([chain[0] for chain in chains])
    gap = x[starts][None, :] - (x[ends] + w[ends])[:, None]
    # At the same height: the one's end and the other's start, or the two chains as a whole (their median
    # heights: a digit written a little high or low at a chain's end is no line's end bending away).
    middles = np.array([median(level[chain]) for chain in chains])
    tolerance = 0.5 * np.maximum(h[ends][:, None], h[starts][None, :])
    level_with = (np.abs(level[starts][None, :] - level[ends][:, None]) <= tolerance) | (
        np.abs(middles[None, :] - middles[:, None]) <= tolerance
    )
    beside = (gap > -0.5 * np.minimum(w[ends][:, None], w[starts][None, :])) & level_with
    np.fill_diagonal(beside, False)
    follower, leader = [-1] * len(chains), [-1] * len(chains)
    for a, b in np.argwhere(beside)[np.argsort(gap[beside], kind="stable")]:
        if follower[a] == -1 and leader[b] == -1:
            follower[a], leader[b] = int(b), int(a)
    joined = []
    for first in range(len(chains)):
        if leader[first] != -1:
            continue
        chain, k = [], first
        while k != -1:
            chain += chains[k]
            k = follower[k]
        joined.append(chain)
    chains = joined
    # Lines top to bottom by where they start, along the slope.
    chains.sort(key=lambda chain: (level[chain[0]], cx[chain[0]]))
    return chains


def rows_by_height(level: np.ndarray, h: np.ndarray, x: np.ndarray, w: np.ndarray) -> list[list[int]] | None:
    """The lines as rows of boxes at one height (``level``: each box's middle, along the writing's slope),
    where the heights fall clearly into rows; None where they do not.

    Rows are split where the heights, in order, leave a gap of half a digit's height or more, and the split
    is clear when the narrowest gap between rows is 1.3 times the widest within one, every row holds two
    boxes or more, rows lie one below another (each shares half its width with the next), and no two boxes
    of a row stand one above the other (overlapping by half the narrower's width). Digits written loosely
    (a scattered layout, a sheet held up to a webcam) wander up and down within their row, and a nearest
    neighbour may then lie in the row above or below; their rows, taken as a whole, still stand apart.
    A curved line, or lines that interleave, give no clear split: the chains follow them instead.
    """
    order = np.argsort(level, kind="stable")
    gaps = np.diff(level[order])
    if not len(gaps):
        return None
    between = gaps >= 0.5 * median(h)
    if not between.any() or between.all():
        return None  # one row (the chains read it as well), or no two boxes share one
    if gaps[between].min() < 1.3 * gaps[~between].max():
        return None
    rows = [part.tolist() for part in np.split(order, np.flatnonzero(between) + 1)]
    if min(len(row) for row in rows) < 2:
        return None  # a box alone at its height: more likely a line's end bending away than a row
    if _side_by_side(rows, x, w) or any(_one_above_another(row, x, w) for row in rows):
        return None
    return rows


def _side_by_side(rows: list[list[int]], x: np.ndarray, w: np.ndarray) -> bool:
    """Two rows, one after the other, share less than half the narrower's width: the two ends of one
    slanted line, not rows one below another."""
    starts = [float(x[row].min()) for row in rows]
    ends = [float((x[row] + w[row]).max()) for row in rows]
    for a, b in itertools.pairwise(range(len(rows))):
        shared = min(ends[a], ends[b]) - max(starts[a], starts[b])
        if shared < 0.5 * min(ends[a] - starts[a], ends[b] - starts[b]):
            return True
    return False


def _one_above_another(row: list[int], x: np.ndarray, w: np.ndarray) -> bool:
    """Two boxes of the row overlap by half the narrower's width: two lines, not one."""
    left, right = x[row], x[row] + w[row]
    overlap = np.minimum(right[:, None], right[None, :]) - np.maximum(left[:, None], left[None, :])
    np.fill_diagonal(overlap, 0)
    return bool((overlap >= 0.5 * np.minimum(w[row][:, None], w[row][None, :])).any())


def _numbered(boxes: list[Box], lines: list[list[int]]) -> list[Box]:
    """The boxes line by line, each with its line's number."""
    return [
        Box(boxes[k].x, boxes[k].y, boxes[k].w, boxes[k].h, number)
        for number, line in enumerate(lines)
        for k in line
    ]
