"""On demand, beside stage 7: a candidate's ink measured again against the paper right round it, for a
candidate the model is unsure of; and in stage 5, a piece by a step of the light measured against the
inkless surface itself (``lag_of_the_background``).

Stage 3 measures ink against the frame's background: the ink channel with the strokes closed away, then
smoothed over a sixth of the frame, so that the paper's noise and a page's texture do not make ink. Where
the light steps (a hard shadow's rim across a digit, glare, the page's edge beside the first digit of a
line), that smooth background lags behind the step: on its bright side it stays too dark, and there a
stroke reads weaker than it is. Part of the digit falls under the threshold, and a 9 whose loop lost its
left side reads as a 7, an 8 as a 3.

Here the paper is taken from the candidate's box and a margin round it, with the strokes closed away by a
disc a few strokes wide and nothing smoothed: such a closing follows a step of the light to within a few
px. The ink is what of that measure the candidate's own ink touches (not a neighbour's), at half the
strength of the candidate's strong ink or more: one pen wrote the digit. The pipeline reads the candidate
both ways and keeps the surer reading.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from device.normalize import stroke_width
from device.segment.data import CROP_PAD, InkImage, Piece, Segment, WorkImage
from device.segment.paper import ink_surface, paper_level, paper_step, reached_from
from device.segment.stats import percentile

# The margin round the box that the paper is measured in (of the candidate's height): the closing needs
# paper beside a stroke at the box's side, and a stroke the threshold lost may reach well past the box (a
# loop's whole side). Measured on the four seeds' pages, 0.3 found 6 digits fewer.
MARGIN = 0.5
# The closing's disc, in strokes of the candidate: wide enough that no stroke survives it, narrow enough to
# follow a step of the light.
DISC_STROKES = 3.0
# Ink counts from this share of the candidate's strong ink (the 90th percentile of its own pixels): one pen
# wrote the digit. Measured on the four seeds' pages: 0.4, 0.5, 0.6 and 0.7 found 32, 37, 41 and 41 digits
# more (with a margin of 0.3).
INK_SHARE = 0.6
# The paper is measured at a size where the digit is at most this tall (px): fine enough to follow a step
# of the light, and the cost stays bounded for a digit written large.
PAPER_HEIGHT = 48


def paper_round(region: np.ndarray, stroke: float, height: int) -> np.ndarray:
    """The paper of ``region`` (float32) under strokes ``stroke`` px wide of a digit ``height`` px tall:
    closed by a disc of ``DISC_STROKES`` strokes, at a size where the digit is at most ``PAPER_HEIGHT`` px
    tall (a closing's cost grows with its disc's area: a digit written large, with a thick pen, took
    100 ms at full size), and scaled back."""
    scale = min(1.0, PAPER_HEIGHT / max(1, height))
    rows, cols = region.shape
    small = region
    if scale < 1:
        size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
        small = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
    disc = max(5, 2 * round(DISC_STROKES * max(1.0, stroke * scale) / 2) + 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (disc, disc))
    closed = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    return closed if scale == 1 else cv2.resize(closed, (cols, rows), interpolation=cv2.INTER_LINEAR)


def ink_against_the_paper_round_it(segment: Segment) -> Segment | None:
    """The candidate with its ink measured against the paper round it (see the module's text), its box
    grown or shrunk to that ink; None for a candidate that carries no ``surroundings``, or has no ink."""
    around = segment.surroundings
    if around is None or not segment.ink.any():
        return None
    work, (x, y) = around.work, around.origin
    h, w = segment.ink.shape
    rows, cols = work.grey.shape
    margin = max(3, round(MARGIN * h))
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(cols, x + w + margin), min(rows, y + h + margin)
    region = ink_surface(work, around.dark, slice(y0, y1), slice(x0, x1)).astype(np.float32)
    paper = paper_round(region, stroke_width(segment.ink), h)
    strength = np.clip((paper - region) / np.maximum(paper, 24.0), 0.0, 1.0)
    own = np.zeros(region.shape, bool)
    own[y - y0 : y - y0 + h, x - x0 : x - x0 + w] = segment.ink > 0
    level = percentile(strength[own], 90)
    if level <= 0:
        return None
    inked = strength > INK_SHARE * level
    kept = reached_from(inked, own & inked)
    found = cv2.boundingRect(kept.view(np.uint8))
    if found[2] == 0:
        return None
    bx, by, bw, bh = found
    if bx == 0 or by == 0 or bx + bw >= region.shape[1] or by + bh >= region.shape[0]:
        # Ink that runs on to the margin's side is no digit's alone: a rule, a texture, the neighbours.
        return None
    # The ink's box, and its crop with the padding a crop has, within the region.
    cx0, cy0 = max(0, bx - CROP_PAD), max(0, by - CROP_PAD)
    cx1, cy1 = min(region.shape[1], bx + bw + CROP_PAD), min(region.shape[0], by + bh + CROP_PAD)
    crop = np.where(kept, strength, 0.0)[cy0:cy1, cx0:cx1] / level
    box = work.to_frame(x0 + bx, y0 + by, bw, bh, segment.box.line)
    ink = (np.clip(crop, 0.0, 1.0) * 255).astype(np.uint8)
    return replace(segment, box=box, ink=ink, cuttable=None, surroundings=None)


# A piece is by a step of the light where the frame's inkless surface (``paper_level``'s closing, at a
# quarter of the working size) changes by this share of the brighter between points 8 px apart, within 8 px
# of its box. Across a page's writing it changes by 0.01-0.06; across a hard shadow's rim by 0.2-0.45.
STEP_OF_THE_LIGHT = 0.1
# Where the light steps, the frame's smoothed background lags behind the step, and on its dark side a band
# of paper reads as faint "ink" along it (a wedge, sharp on the step's side, fading away from it). Against
# the inkless surface itself, which follows the step, that band is no ink: under this share of the piece's
# own pixels pass the traced threshold there (``ink_mask``'s 0.75 of it). A digit's strokes are closed away
# in that surface: of 66 pieces by a step on 30 shadow pages, one kept none of its pixels (such a band), the
# next fewest 0.34 of them, most 0.7 or more.
LAG_INKED = 0.25


def by_a_step_of_the_light(piece: Piece, closed: np.ndarray, reach: int = 8) -> bool:
    """Whether the light steps by ``STEP_OF_THE_LIGHT`` or more within ``reach`` px of the piece's box
    (``closed``: the inkless surface at a quarter of the working size)."""
    x0, y0 = max(0, piece.x - reach) // 4, max(0, piece.y - reach) // 4
    x1, y1 = (piece.x + piece.w + reach) // 4 + 1, (piece.y + piece.h + reach) // 4 + 1
    return paper_step(closed[y0:y1, x0:x1]) >= STEP_OF_THE_LIGHT


def lag_of_the_background(
    piece: Piece, ink: InkImage, labels: np.ndarray, work: WorkImage, min_h: float
) -> bool:
    """A piece by a step of the light that is no ink against the inkless surface, unsmoothed: the frame's
    background lagging behind the step (see ``LAG_INKED``), not a mark. Dark ink only (the inkless surface
    is the ink channel's)."""
    _level, closed, _disc = paper_level(work)
    if not by_a_step_of_the_light(piece, closed):
        return False
    rows, cols = slice(piece.y, piece.y + piece.h), slice(piece.x, piece.x + piece.w)
    # The surface at the working size (as ``smoothed_back`` scales it, unsmoothed), once a frame.
    if "inkless" not in work.known:
        height, width = work.ink_source.shape
        work.known["inkless"] = cv2.resize(closed, (width, height), interpolation=cv2.INTER_LINEAR)
    surface = work.known["inkless"][rows, cols].astype(np.float32)
    own = piece.pixels_in(labels[rows, cols])
    against = (surface - work.ink_source[rows, cols]) / np.maximum(surface, 24.0)
    inked = own & (against > 0.75 * ink.threshold[rows, cols])
    if not own.any() or np.count_nonzero(inked) >= LAG_INKED * np.count_nonzero(own):
        return False
    # A digit glued to the band (written by the step) is still ink there, whole: a stroke as tall as a
    # small digit is no lag.
    _count, _labels, stats, _ = cv2.connectedComponentsWithStats(inked.view(np.uint8), connectivity=8)
    return not (stats[1:, cv2.CC_STAT_HEIGHT] >= min_h).any()
