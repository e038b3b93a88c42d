"""Stage 5, last: a digit at either end of a line of writing, lost where the line meets the page's edge.

A line is often written from a page's very edge. There the stages see the paper worst: the paper found to
the pixel stops short where a shadow dims the page's border, and a tile holding the page's edge takes a
threshold from the step down to the desk (the background estimate lags behind it). The first digit of
such a line is lost, or only a sliver of it is kept, while its neighbours, a digit's width further in, are
read. So beside the first and the last digit of each line, where the paper found ends, the ink is looked
at again, measured against the line's own: the same pen wrote the whole line. What is found there is
offered like any candidate (the checks of a stretch of a line, an edge or the surroundings, then the
model), so a desk's mark that gets this far is still read as "not a digit".
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from device.segment.data import InkImage, Piece, SegmentSettings
from device.segment.stats import percentile

# The look reaches this many of the digit's heights beyond it: a digit's width and the gap before it...
REACH = 1.3
# ...and this share of its height above and below it (a line wanders).
WANDER = 0.3
# Only where the paper found covers less than this share of the look: where it covers it, the paper goes
# on past the line's end, and nothing was lost to its edge.
PAPER_GOES_ON = 0.9
# Ink counts at this share of the digit's own strength (``Piece.peak``): one pen, one line.
LINE_INK = 0.5
# What is found is as tall as a digit of the line (this share of its height, either way), at least this
# share as wide as tall (a thinner stroke beside a page's edge is the edge's own rim or a sliver of a
# digit, and a lone "1" is left as it was), and no wider than this share of its height.
TALL = (0.6, 1.4)
WIDE = (0.3, 1.2)
# A digit is written on paper: round it, the ink strength varies as the paper's noise does (up to 3 times
# as much where a shadow's gradient crosses it), and by less than the least contrast ink has
# (``SegmentSettings.min_contrast``: 0.02-0.05 round the digits of the benchmark's edge pages); round a
# desk's or a wall's grain by 3-5 times the noise, 0.1-0.17. (The noise is taken as at least
# ``QUIET_NOISE``: a page drawn without any has none.)
QUIET_AROUND, QUIET_NOISE = 4.0, 0.005
# The ring round a piece that tells (px out from its ink: 2 to 5).
RING = (3, 11)


class LineEnd(NamedTuple):
    """A piece found beyond a line's end, and the pieces kept before that it holds (a sliver of it)."""

    piece: Piece
    takes: frozenset[int]  # id() of those pieces


def beyond_the_line_ends(
    kept: list[Piece], ink: InkImage, labels: np.ndarray, settings: SegmentSettings
) -> list[LineEnd]:
    """The digits beside the first and the last digit of each line of ``kept`` that the stages lost where
    the line meets the page's edge. Each is written into ``labels`` (in place) under a label of its own."""
    quiet = min(QUIET_AROUND * max(ink.noise, QUIET_NOISE), settings.min_contrast)
    found: list[LineEnd] = []
    for digit in kept:
        if digit.h < 0.5 * digit.w or digit.peak <= 0:
            continue  # a flat piece, or one with no ink past its threshold: no line to measure against
        level = None
        for side in (-1, 1):
            # The paper first: it rules out all but the few digits by the page's edge, before the digits
            # level with this one are sought among all those kept.
            look = _the_look(digit, side, labels.shape)
            x0, y0, x1, y1 = look
            if x1 - x0 < WIDE[0] * digit.h or ink.paper[y0:y1, x0:x1].mean() >= PAPER_GOES_ON:
                continue
            if level is None:
                level = _level_with(digit, kept)
            if not any((other.x - digit.x) * side < 0 for other in level):
                continue  # nothing written on the other side: no end of a line
            there = [p for p in level if p.x < x1 and p.x + p.w > x0]
            if any(p.h >= TALL[0] * digit.h and p.w >= WIDE[0] * p.h for p in there):
                continue  # a digit is there already
            found += _digits_in_the_look(digit, look, side, there, ink, labels, quiet)
    return found


def _level_with(digit: Piece, pieces: list[Piece]) -> list[Piece]:
    """The other pieces level with ``digit``: their heights overlap by half the smaller."""
    return [
        other
        for other in pieces
        if other is not digit
        and min(digit.y + digit.h, other.y + other.h) - max(digit.y, other.y) >= 0.5 * min(digit.h, other.h)
    ]


def _the_look(digit: Piece, side: int, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Where to look beyond ``digit`` on ``side`` (-1: before it, 1: after it): x0, y0, x1, y1."""
    h, w = shape[:2]
    reach = int(REACH * digit.h)
    if side < 0:
        x0, x1 = max(0, digit.x - reach), digit.x
    else:
        x0, x1 = digit.x + digit.w, min(w, digit.x + digit.w + reach)
    return x0, max(0, int(digit.y - WANDER * digit.h)), x1, min(h, int(digit.y + (1 + WANDER) * digit.h))


def _digits_in_the_look(
    digit: Piece,
    look: tuple[int, int, int, int],
    side: int,
    there: list[Piece],
    ink: InkImage,
    labels: np.ndarray,
    quiet: float,
) -> list[LineEnd]:
    """The pieces of ink in ``look`` as strong as ``digit``'s (``LINE_INK``), as large as a digit of its
    line, clear of the look's far side (the surroundings beyond the page come in from there), with the
    strength round them spread by no more than ``quiet`` (paper, not grain), clear of ``digit`` and of the
    pieces ``there`` but for those they hold whole (a sliver of the same digit, which they take in), and
    mostly ink that no piece of the stages holds (those were judged already)."""
    x0, y0, x1, y1 = look
    strength = ink.ink[y0:y1, x0:x1]
    strong = (strength > LINE_INK * digit.peak).view(np.uint8)
    strong = cv2.morphologyEx(strong, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    count, blobs, stats, _ = cv2.connectedComponentsWithStats(strong, connectivity=8)
    inner, outer = (cv2.getStructuringElement(cv2.MORPH_RECT, (size, size)) for size in RING)
    taken = labels[y0:y1, x0:x1]  # a view: the pieces found are written in place
    found = []
    for blob in range(1, count):
        bx, by, bw, bh, _area = (int(v) for v in stats[blob])
        far = bx == 0 if side < 0 else bx + bw == x1 - x0
        if far or by == 0 or by + bh == y1 - y0:
            continue  # it runs on out of the look: the surroundings, a rule, a shadow's rim
        if not (TALL[0] * digit.h <= bh <= TALL[1] * digit.h and WIDE[0] * bh <= bw <= WIDE[1] * bh):
            continue
        ink_of = (blobs == blob).view(np.uint8)
        ring = (cv2.dilate(ink_of, outer) > 0) & (cv2.dilate(ink_of, inner) == 0)
        if ring.any() and np.std(strength[ring]) > quiet:
            continue  # the surroundings' grain, not paper
        box = Piece(x0 + bx, y0 + by, bw, bh, frozenset(), 0)
        held = [p for p in there if _within(p, box)]
        if any(_near(p, box) for p in (digit, *there) if p not in held):
            continue  # it cuts through or touches a piece kept: a part of that digit, not one of its own
        own = ink_of.view(bool) & (taken == 0)
        if np.count_nonzero(own) < 0.5 * (np.count_nonzero(ink_of) - sum(p.area for p in held)):
            continue
        label = int(labels.max()) + 1
        if label > np.iinfo(labels.dtype).max:
            break
        taken[own] = label
        piece = Piece(
            box.x,
            box.y,
            bw,
            bh,
            frozenset((label,)).union(*(p.labels for p in held)),
            int(np.count_nonzero(own)) + sum(p.area for p in held),
            peak=percentile(strength[ink_of.view(bool)], 90),
        )
        found.append(LineEnd(piece, frozenset(id(p) for p in held)))
    return found


def _within(inner: Piece, outer: Piece, margin: int = 2) -> bool:
    return (
        inner.x >= outer.x - margin
        and inner.y >= outer.y - margin
        and inner.x + inner.w <= outer.x + outer.w + margin
        and inner.y + inner.h <= outer.y + outer.h + margin
    )


def _near(a: Piece, b: Piece, margin: int = 2) -> bool:
    """The boxes overlap, or come within ``margin`` px of each other."""
    return (
        a.x < b.x + b.w + margin
        and b.x < a.x + a.w + margin
        and a.y < b.y + b.h + margin
        and b.y < a.y + a.h + margin
    )
