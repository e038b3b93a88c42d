"""On demand, beside stage 7: a candidate's ink without the printed lines along its sides, for a candidate
the model is unsure of.

A digit written in a printed box (a form, a score sheet) often touches the box: written a little large, or
off centre. Its ink and the box's are then one piece, and where the box's sides are not found as such
(``box_sides`` needs a cell of paper the digit leaves whole; the rules may have taken its top and bottom,
leaving its upright sides joined to the digit), the candidate is the digit in its frame, which the model
calls no digit or reads unsure. The same holds for a digit touching a stretch of a rule or the margin line
the rules left. Such a printed line runs straight along the candidate's side, across most of its width or
height, thin, at its very edge: a row (or column) of the crop inked across ``COVER`` of it or more, among
the outermost ``BAND`` of the crop and no thicker than ``THICK`` of it, on ``SIDES`` of the crop's sides at
least. A digit's own stroke seldom is all of that (a 7's bar, a 5's flag and a 2's base may be; read
without them, those digits read as a 1 or unsure, and the pipeline keeps the surer reading and never lets
a new 1 appear this way).

Here each such line is taken off the crop, and what is left, but for the stubs it leaves where strokes
crossed it, is the candidate read again. The pipeline reads the candidate both ways and keeps the surer
reading.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from device.segment.data import CROP_PAD, Segment
from device.segment.stats import percentile

# A row (or column) of the crop is part of a printed line where at least this share of it is strong ink
# (``STRONG`` of the crop's full strength).
COVER = 0.75
STRONG = 96
# The line lies among the outermost rows (or columns), this share of the crop's height (or width), and
# starts within ``EDGE`` px of the crop's first inked row (its padding, and a px of blurred edge).
BAND = 0.25
EDGE = 3
# A printed line is thin: at most this share of the crop's larger side (a digit's stroke along its side, a
# 7's bar, is seldom as thin and as full at once).
THICK = 0.15
# What is left of the crop keeps the pieces at least this share of the largest: less is a stub of a stroke
# cut by the line, or of the line's blurred edge.
STUB = 0.1
# At least this many of its sides: a box's corner, or its two upright sides. One upright line alone is as
# often a written 1 touching the digit beside it (on the benchmark's touching pages, 9 such 1s were lost).
SIDES = 2
# A candidate looked at is about as wide as tall (a box holds one digit), and at least this tall (px).
ASPECT = (0.6, 1.7)
SMALLEST = 12


def side_rows(cover: np.ndarray, band: int, thick: int) -> int:
    """How many rows from the start of ``cover`` (each row's share of strong ink, outermost first) a printed
    line along that side takes, a row beyond it for its blurred edge; 0 where there is none."""
    full = np.flatnonzero(cover[:band] >= COVER)
    inked = np.flatnonzero(cover > 0)
    if not len(full) or full[0] > inked[0] + EDGE:
        return 0
    first, last = int(full[0]), int(full[-1])
    if last - first + 1 > thick or (cover[first : last + 1] < 0.5 * COVER).any():
        return 0  # too thick, or two lines (a digit's stroke beside a side)
    return last + 2


def without_straight_sides(segment: Segment) -> Segment | None:
    """The candidate with the printed lines along its sides taken off (see the module's text), its box
    shrunk to what is left; None where it has no such line, carries no ``surroundings``, or is left with
    too little ink."""
    around = segment.surroundings
    ink = segment.ink
    h, w = ink.shape
    if around is None or h < SMALLEST or not ASPECT[0] * h <= w <= ASPECT[1] * h:
        return None
    strong = ink > STRONG
    rows, cols = strong.mean(axis=1), strong.mean(axis=0)
    band_h, band_w = max(3, round(BAND * h)), max(3, round(BAND * w))
    thick = max(3, round(THICK * max(h, w)))
    top, bottom = side_rows(rows, band_h, thick), side_rows(rows[::-1], band_h, thick)
    left, right = side_rows(cols, band_w, thick), side_rows(cols[::-1], band_w, thick)
    if sum(side > 0 for side in (top, bottom, left, right)) < SIDES:
        return None
    inner = np.zeros_like(ink)
    inner[top : h - bottom, left : w - right] = ink[top : h - bottom, left : w - right]
    strong_left = (inner > STRONG).view(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(strong_left, connectivity=8)
    if count <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    pieces = np.isin(labels, np.flatnonzero(areas >= STUB * areas.max()) + 1).view(np.uint8)
    # A px round the pieces kept: the soft edge of their strokes.
    kept = np.where(cv2.dilate(pieces, np.ones((3, 3), np.uint8)) > 0, inner, 0)
    bx, by, bw, bh = cv2.boundingRect((kept > STRONG).view(np.uint8))
    if bh < 0.4 * (h - top - bottom):
        return None  # a stub, not a digit
    x0, y0 = max(0, bx - CROP_PAD), max(0, by - CROP_PAD)
    crop = kept[y0 : min(h, by + bh + CROP_PAD), x0 : min(w, bx + bw + CROP_PAD)]
    # Scaled so its strokes reach full strength again, as ``crop_ink`` scales a candidate's.
    level = percentile(crop[crop > 0], 90)
    crop = np.clip(crop.astype(np.float32) * (255.0 / level), 0, 255).astype(np.uint8)
    ox, oy = around.origin
    box = around.work.to_frame(ox + bx, oy + by, bw, bh, segment.box.line)
    return replace(segment, box=box, ink=crop, cuttable=None, surroundings=None)
