"""Stage 5: connected pieces of ink, merged into candidates, and the filters that tell a digit from what
only looks like one (relative to the other candidates, and to the lines and edges around it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from device.segment.data import FoundPieces, InkImage, InkInBoxes, Piece, SegmentSettings
from device.segment.paper import label_type
from device.segment.stats import median, percentile


def find_pieces(mask: np.ndarray, settings: SegmentSettings, min_extent: float = 0.0) -> FoundPieces:
    """Connected components of the mask, the ``max_pieces`` largest, and the label image; ``cut_short``
    when the cap left out pieces large enough to be kept. ``min_extent``: pieces neither as wide nor as
    tall as this (px) are left out as well."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=label_type(mask))
    if count <= 1:
        return FoundPieces([], labels)
    h, w = mask.shape
    min_h = max(6.0, 0.5 * settings.min_height * min(h, w))
    min_area = max(4, int(min_h * min_h * 0.02))
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(-areas) + 1
    if min_extent:
        extent = np.maximum(stats[order, cv2.CC_STAT_WIDTH], stats[order, cv2.CC_STAT_HEIGHT])
        order = order[extent >= min_extent]
    pieces = [
        Piece(*map(int, stats[i, :4]), frozenset((int(i),)), int(stats[i, 4]))
        for i in order[: settings.max_pieces]
    ]
    cut_short = bool(np.count_nonzero(areas >= min_area) > settings.max_pieces)
    return FoundPieces([p for p in pieces if p.area >= min_area], labels, cut_short)


def merge_pieces(pieces: list[Piece], typical_h: float) -> list[Piece]:
    """Merge pieces of one digit (a 5's flag, a 4 or 7 written in two strokes).

    Two pieces merge when they overlap horizontally by half the narrower one, or are one thin upright
    stroke broken by faint ink (``one_stroke_broken``), and their union is no taller than a digit;
    stacked digits of two lines form a union far taller than one digit, so they stay apart.
    A long flat piece (an underline, a paper edge, what is left of a rule) joins nothing: it would swallow
    every digit above it.
    A sweep over pieces sorted by x compares only pieces whose columns overlap.
    """
    merged = True
    while merged:
        merged = False
        pieces.sort(key=lambda p: p.x)
        result: list[Piece] = []
        for piece in pieces:
            for i in range(len(result) - 1, max(-1, len(result) - 16), -1):
                other = result[i]
                overlap = min(other.x + other.w, piece.x + piece.w) - max(other.x, piece.x)
                top = min(other.y, piece.y)
                bottom = max(other.y + other.h, piece.y + piece.h)
                if (
                    (overlap >= 0.5 * min(other.w, piece.w) or one_stroke_broken(other, piece))
                    and bottom - top <= 1.3 * typical_h
                    and not (other.is_stroke_line(typical_h) or piece.is_stroke_line(typical_h))
                ):
                    result[i] = other.union(piece)
                    merged = True
                    break
            else:
                result.append(piece)
        pieces = result
    return pieces


# A thin upright stroke broken where its ink was faint for a moment: the two parts' facing ends are at
# most this many px apart, up and down and side to side (a printed line or a 1 on a slant moves a px or
# two sideways over its gap).
BROKEN_GAP = 8


def one_stroke_broken(a: Piece, b: Piece) -> bool:
    """Whether two thin upright pieces, one above the other, continue one stroke across a short gap: a
    box's side or a 1 whose ink was too faint in a stretch. Thin pieces side by side overlap too little
    for the merge when the stroke slants."""
    if not (a.h >= 3 * a.w and b.h >= 3 * b.w):
        return False
    upper, lower = (a, b) if a.y <= b.y else (b, a)
    gap = lower.y - (upper.y + upper.h)
    shift = abs((lower.x + lower.w / 2) - (upper.x + upper.w / 2))
    return 0 <= gap <= BROKEN_GAP and shift <= BROKEN_GAP


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
    return percentile(np.hypot(gx, gy), 95)


def fill(piece: Piece, before_rules: np.ndarray | None) -> float:
    """How much of the piece's box is ink: of the piece itself, or of the mask before rules were removed
    (a solid blot cut into slabs by the rules crossing it is still solid)."""
    own = piece.area / max(piece.w * piece.h, 1)
    if before_rules is None:
        return own
    box = before_rules[piece.y : piece.y + piece.h, piece.x : piece.x + piece.w]
    return max(own, float(box.mean()) if box.size else 0.0)


def typical_height(pieces: list[Piece], min_h: float) -> float:
    """The height of a whole digit among the pieces: the upper quartile, since pieces of broken digits
    (a stroke cut by a removed rule, a 4 in two strokes) are shorter than the digits they belong to."""
    tall = [p.h for p in pieces if p.h >= min_h]
    return percentile(np.array(tall), 75) if tall else min_h


def keep_digits(
    pieces: list[Piece],
    ink: InkInBoxes,
    settings: SegmentSettings,
    before_rules: np.ndarray | None = None,
    no_digit: Callable[[Piece], bool] | None = None,
) -> list[Piece]:
    """Drop what cannot be a digit or a group of touching digits: too small or large for the frame, too
    flat, solid blotches, off the paper, faint or soft-edged marks, what ``no_digit`` knows for no digit,
    and marks much smaller or fainter than the other candidates.

    ``no_digit`` (the line and edge checks) goes before the comparison with the other candidates: the
    dark rim of a shadow or of the frame's corner is as dark as it gets, and kept until then it would set
    the contrast bar for faint digits elsewhere on the page."""
    h, w = ink.paper.shape
    min_h = max(8.0, settings.min_height * min(h, w))
    sized = [
        p
        for p in pieces
        if min_h <= p.h <= settings.max_height * h
        and p.w <= settings.max_height * w
        and p.w <= settings.max_split_aspect * p.h
        and not (p.w > 0.35 * p.h and fill(p, before_rules) > settings.max_fill)
        and ink.paper[p.y + p.h // 2, p.x + p.w // 2]
    ]
    # More candidates than a page of writing holds means clutter: the largest are measured, the rest
    # dropped, so a cluttered frame costs about what a full page does.
    sized = sorted(sized, key=lambda p: -p.area)[: settings.max_candidates]
    candidates = []
    for p in sized:
        rows, cols = slice(p.y, p.y + p.h), slice(p.x, p.x + p.w)
        crop = ink.strength(rows, cols)
        on = crop[crop > ink.threshold_in(rows, cols)]
        p.peak = percentile(on, 90) if on.size else 0.0
        p.edge = edge_sharpness(crop)
        candidates.append(p)
    candidates = sharp_enough(candidates, ink.noise, settings)
    if no_digit is not None:
        candidates = [p for p in candidates if not no_digit(p)]
    if not candidates:
        return []
    typical_h = median([min(p.h, p.w / 0.6) for p in candidates])
    # The contrast bar is set by digit-sized candidates: a mark far larger than the writing (a hand or a
    # dark object at the page's edge, a shadow) is as dark as it gets and would hide every real digit.
    strongest = max((p.peak for p in candidates if p.h <= 2 * typical_h), default=0.0)
    return [
        p
        for p in candidates
        if p.h >= settings.relative_height * typical_h and p.peak >= settings.relative_contrast * strongest
    ]


# Ink this strong (of the paper's brightness) is a pen's, whose strokes' edges are as sharp as ``min_edge``
# asks. On a page whose darkest mark is fainter (pencil, a washed-out camera) the bar is lowered in step: an
# edge's steepness scales with its ink's contrast.
PEN_INK = 0.4
# Where the bar is lowered, a stroke's edge must still be steep for its own ink: across it the ink rises by
# this share of its strength per px at least. The grain of a desk beside a faint page, or a shadow's soft
# rim, rises slowly for the little contrast it has.
STEEP = 0.25


def sharp_enough(candidates: Sequence[Piece], noise: float, settings: SegmentSettings) -> list[Piece]:
    """The candidates whose edges (``edge``, see ``edge_sharpness``) are a stroke's: as sharp as
    ``min_edge``, lowered on a page whose darkest candidate is fainter than a pen (``PEN_INK``) for those
    whose edges are ``STEEP`` for their own ink (``peak``); well above the noise (``min_edge_snr`` times it)
    either way."""
    darkest = max((p.peak for p in candidates), default=PEN_INK)
    floor = settings.min_edge_snr * noise
    lowered = max(settings.min_edge * min(1.0, darkest / PEN_INK), floor)
    return [
        p
        for p in candidates
        if p.edge >= max(settings.min_edge, floor) or (p.edge >= lowered and p.edge >= STEEP * p.peak)
    ]


# How far (px, at the far end of the look beyond a piece) its axis is turned to find the line it is a
# stretch of: the few px that a short stretch's quantized pixels can point off the line.
LINE_SEARCH = 4
_LINE_SEARCH_OFFSETS = (-LINE_SEARCH / 2, LINE_SEARCH / 2, -LINE_SEARCH, LINE_SEARCH)
# The axis is turned only where something darker than the paper lies within a few px of it along this
# share of the first third of the way at least: a line the axis points past does, while beyond a written
# "1" there is bare paper from the start.
TURN_WHERE_FOUND = 0.5
_NEAR_OFFSETS = np.array([-8, -3, -2, -1, 0, 1, 2, 3, 8], np.float32)
_SIDE_OFFSETS = np.array([5, -5], np.float32)  # the paper beside a line
# A stroke more than this many times as strongly inked as the line it lies on, and clearly past the
# threshold (this many times it), is writing over that line.
WRITING_OVER_A_LINE = 2.0
WRITING_PAST_THRESHOLD = 1.5


def _row_middles(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The middle x of each row of ``mask`` that holds any of it, as (x, y) points (float32, in the mask's
    own coordinates), and each such row's extent (px from its first pixel to its last)."""
    rows = np.flatnonzero(mask.any(axis=1))
    held = mask[rows]
    first = held.argmax(axis=1)
    last = mask.shape[1] - 1 - held[:, ::-1].argmax(axis=1)
    middles = np.stack([(first + last) / 2, rows], axis=1).astype(np.float32)
    return middles, last - first + 1


@dataclass(frozen=True)
class StrokeAxis:
    """The straight axis of a thin piece: through (x0, y0), the centre of its rows' middles, in the
    direction (vx, vy), the piece running from ``start`` to ``end`` along it (px); how strongly it is inked
    (its median ink) and against what threshold (the median there)."""

    x0: float
    y0: float
    vx: float
    vy: float
    start: float
    end: float
    level: float
    threshold: float
    # The share of the way beyond it in which a line must be found (see ``stroke_axis``).
    needed_share: float

    @property
    def length(self) -> float:
        return self.end - self.start


# The fewest rows a crossing line's stub takes on a stretch of a rule (a 1-px line blurred over 3 rows).
MIN_STUB_ROWS = 3


def stroke_axis(piece: Piece, ink: InkImage, labels: np.ndarray) -> StrokeAxis | None:
    """The axis of a thin, straight piece; None for a piece that is no thin straight stroke.

    The axis runs through the middle of each row (each column, lying) no wider than the stroke usually is,
    and the piece is thin where those middles lie in a narrow band: a stub of a crossing line left on a
    stretch of a rule widens its box, and would turn a fit of all its pixels by degrees."""
    box = labels[piece.y : piece.y + piece.h, piece.x : piece.x + piece.w]
    own = piece.pixels_in(box)
    upright = piece.h >= piece.w
    middles, extents = _row_middles(own if upright else own.T)
    middles += (piece.x, piece.y) if upright else (piece.y, piece.x)
    stroke = median(extents)
    narrow = extents <= 2 * stroke + 1
    middles = middles[narrow]
    if np.ptp(middles[:, 0]) + stroke > 0.4 * (piece.h if upright else piece.w):
        return None  # not a thin stroke
    # A crossing line's stub is as thick as that line is blurred: 3 rows or more, on a line a pixel wide too.
    if np.count_nonzero(~narrow) > max(MIN_STUB_ROWS, 1.5 * stroke + 1):
        return None  # more wide rows than a crossing line's stub is thick: a 9's loop, a hook
    ys, xs = np.nonzero(own)
    if len(xs) < 5:
        return None
    if not upright:
        middles = np.ascontiguousarray(middles[:, ::-1])
    vx, vy, x0, y0 = (float(v) for v in cv2.fitLine(middles, cv2.DIST_L2, 0, 0.01, 0.01).ravel())
    ys, xs = ys + piece.y, xs + piece.x
    along = (xs - x0) * vx + (ys - y0) * vy
    across = (middles[:, 0] - x0) * -vy + (middles[:, 1] - y0) * vx
    start, end = float(along.min()), float(along.max())
    if end - start < 8 or float(np.std(across)) > 0.12 * (end - start):
        return None  # curved: a written stroke
    level = median(ink.ink[ys, xs])
    threshold = median(ink.threshold[ys, xs])
    return StrokeAxis(x0, y0, vx, vy, start, end, level, threshold, _needed_share(piece))


def _needed_share(piece: Piece) -> float:
    """The share of the way beyond a piece in which its line must be found."""
    # Most of the way beyond it, not all of it: a faint line under a shadow or past a smudge is lost in
    # places, while beyond a written "1" the paper is bare nearly all the way. A piece thin only once a stub
    # is set aside has a digit's shape too (a "7" with a short bar): in a dense column of such digits the
    # strokes above and below it lie on its axis for much of the way, so its line must run on nearly all of
    # it.
    return 0.6 if piece.w <= 0.4 * piece.h or piece.h <= 0.4 * piece.w else 0.8


@dataclass(frozen=True)
class LineLook:
    """What a look along an axis beyond a stroke found: whether the line runs on (``runs``); whether any
    side could tell (the frame may end too soon on both); the least share, on a side, of the first third
    of the way where ink lies within a few px of the axis; and whether the stroke is writing over the line
    it lies on."""

    runs: bool
    told: bool
    near_share: float
    writing_over: bool


def line_runs_on(axis: StrokeAxis, vx: float, vy: float, ink: InkImage) -> LineLook:
    """Look for a line running on beyond both ends of the stroke, along its axis turned to (vx, vy), for
    twice its length (as far as the frame goes).

    On the axis (the line may wander by a pixel) against the paper a few px to either side: a rule is
    darker than the paper beside it all along, however faint it is against the threshold. The edge of a
    dark band (a page's border, a shadow) runs on too, as a step: darker on one side, bare paper on the
    other, the axis between the two."""
    h, w = ink.ink.shape
    margin = max(0.03, 2.0 * ink.noise)
    reach = 2 * axis.length

    def ink_on_axis(steps: np.ndarray) -> np.ndarray:
        """The strongest ink within a px of the points ``steps`` along the axis (it may wander by one)."""
        x = np.clip(np.round(axis.x0 + steps * vx).astype(int), 1, w - 2)
        y = np.clip(np.round(axis.y0 + steps * vy).astype(int), 1, h - 2)
        return np.max([ink.ink[y + dy, x + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)

    def ink_across(steps: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """The ink at the points ``steps`` along, each of ``offsets`` px aside (offsets x steps)."""
        x = np.clip(np.round(axis.x0 + steps * vx - offsets[:, None] * vy).astype(int), 0, w - 1)
        y = np.clip(np.round(axis.y0 + steps * vy + offsets[:, None] * vx).astype(int), 0, h - 1)
        return ink.ink[y, x]

    sides, near_shares, writing_over = [], [], False
    for steps in (
        np.arange(axis.end + 3, axis.end + 3 + reach),
        np.arange(axis.start - 3, axis.start - 3 - reach, -1),  # from the piece outwards, both
    ):
        sx, sy = axis.x0 + steps * vx, axis.y0 + steps * vy
        steps = steps[(sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)]
        if len(steps) < axis.length:  # the frame ends here: this side cannot tell
            continue
        on_axis = ink_on_axis(steps)
        left, right = ink_across(steps, _SIDE_OFFSETS)
        bare, dark = np.minimum(left, right), np.maximum(left, right)
        rule = on_axis > dark + margin
        step = (on_axis > bare + margin) & (dark > bare + 2 * margin)
        # A step's dark side stays one side (bold digits in a column put ink left and right by turns).
        left_dark = left > right
        mostly_left = np.count_nonzero(step & left_dark) * 2 >= np.count_nonzero(step)
        step &= left_dark if mostly_left else ~left_dark
        found = rule | step
        # Near the piece, anything darker than the paper a little way off the axis: a line the axis points
        # a few degrees past is still found there (see ``part_of_a_longer_line``).
        first = steps[: max(1, len(steps) // 3)]
        across = ink_across(first, _NEAR_OFFSETS)  # one gather: -8, -3 ... 3, 8 px aside
        beside = np.minimum(across[0], across[-1])
        near_shares.append(float(np.mean(across[1:-1].max(axis=0) > beside + margin)))
        # A stroke far bolder than the printed line it lies on, and clearly past the threshold, is writing
        # over the line (a "1" on a grid line); a stretch of a rule is about as dark as the rest of it, or
        # only just past the threshold. (Not for a step: its axis lies on the soft rim of the dark side.)
        found_count, rule_count = np.count_nonzero(found), np.count_nonzero(rule)
        if found_count and rule_count >= found_count / 2:
            writing_over |= axis.level > max(
                WRITING_OVER_A_LINE * median(on_axis[rule]), WRITING_PAST_THRESHOLD * axis.threshold
            )
        runs_on = float(np.mean(found)) >= axis.needed_share
        if not runs_on:
            # A page's rules end at its edge, and beyond it a line is neither seen nor missed: where the
            # paper ends before the line could be told (a grid line's last stretch, cut off from the rest by
            # a crossing), and the line runs on as far as the paper goes, this side cannot tell either.
            px = np.clip(np.round(axis.x0 + steps * vx).astype(int), 0, w - 1)
            py = np.clip(np.round(axis.y0 + steps * vy).astype(int), 0, h - 1)
            on_paper = np.minimum.accumulate(ink.paper[py, px])
            paper_length = int(np.count_nonzero(on_paper))
            if paper_length < axis.length and (
                not paper_length or float(np.mean(found[:paper_length])) >= axis.needed_share
            ):
                continue
        sides.append(runs_on)
    # Both ways (as far as the frame goes): a stretch of a rule between two crossings has the rule on both
    # sides, while a column of "1"s (written one under the other, never quite on one straight axis) does
    # not run on straight for twice a digit's length in both directions.
    runs = bool(sides) and all(sides) and not writing_over
    return LineLook(runs, bool(sides), min(near_shares, default=1.0), writing_over)


def part_of_a_longer_line(
    piece: Piece, ink: InkImage, labels: np.ndarray, rules: Sequence[tuple[int, int, int, int]] = ()
) -> bool:
    """A straight, thin piece whose line runs on well beyond it: a stretch of a rule, a margin or a grid
    line cut into pieces by the lines crossing it (or too faint to be found whole), not a "1".

    Along the piece's axis (``stroke_axis``; turned a little, as the axis of a short stretch is uncertain),
    for twice the piece's length beyond each of its ends (those inside the frame), nearly all the way is
    darker than the paper beside it (a rule is often fainter than writing and than the threshold), and the
    piece is not writing over that line (``line_runs_on``). Where the page's ``rules`` were found, also
    along the rules nearest the piece (see ``along_a_rule``).
    A written "1" ends where the pen lifted: paper lies beyond both of its ends.
    """
    axis = stroke_axis(piece, ink, labels)
    if axis is None:
        return along_a_rule(piece, ink, labels, rules)
    look = line_runs_on(axis, axis.vx, axis.vy, ink)
    if look.runs or not look.told or look.writing_over:
        return look.runs
    if look.near_share < TURN_WHERE_FOUND:
        return along_a_rule(piece, ink, labels, rules)
    # The piece's pixels give its axis only roughly: a short stretch of a line two px wide, its pixels
    # quantized, can point a few degrees off the line, which at twice its length on is px away from it.
    # So the axis is also turned about its centre, by up to ``LINE_SEARCH`` px at the far end.
    far = max(axis.end, -axis.start) + 3 + 2 * axis.length
    for offset in _LINE_SEARCH_OFFSETS:
        turn = np.arctan2(offset, far)
        c, s = float(np.cos(turn)), float(np.sin(turn))
        if line_runs_on(axis, axis.vx * c - axis.vy * s, axis.vx * s + axis.vy * c, ink).runs:
            return True
    return along_a_rule(piece, ink, labels, rules)


# Rules within this angle of each other are one family (a ruling; a grid has two): the lens and the page's
# tilt turn a family's lines by a few degrees across the frame, never by this much.
RULE_FAMILY_DEGREES = 10.0


def nearest_rule_directions(rules: Sequence[tuple[int, int, int, int]], x: float, y: float) -> list[tuple]:
    """For each family of parallel rules, the direction (vx, vy) of its rule that passes nearest the point
    (x, y): the direction the page's lines run in there, perspective included."""
    lines = np.asarray(rules, np.float32).reshape(-1, 4)
    dx, dy = lines[:, 2] - lines[:, 0], lines[:, 3] - lines[:, 1]
    lengths = np.hypot(dx, dy)
    lines, dx, dy, lengths = lines[lengths >= 1], dx[lengths >= 1], dy[lengths >= 1], lengths[lengths >= 1]
    vx, vy = dx / lengths, dy / lengths
    distance = np.abs((x - lines[:, 0]) * -vy + (y - lines[:, 1]) * vx)
    directions: list[tuple] = []
    left = np.ones(len(lines), bool)
    while left.any():
        nearest = int(np.flatnonzero(left)[np.argmin(distance[left])])
        directions.append((float(vx[nearest]), float(vy[nearest])))
        left &= np.abs(vx * vx[nearest] + vy * vy[nearest]) < np.cos(np.radians(RULE_FAMILY_DEGREES))
    return directions


def along_a_rule(
    piece: Piece, ink: InkImage, labels: np.ndarray, rules: Sequence[tuple[int, int, int, int]]
) -> bool:
    """A thin piece lying along the page's rules where it is, whose line runs on beyond it both ways
    (``line_runs_on``, not written over): a stretch of one of those rules.

    Its own axis can miss the line: a stretch between two crossings a few px long, a stub of each crossing
    line left on it, has no straight axis of its own, or one turned by more than a short stretch's
    uncertainty. Printed lines run in the page's few directions, known from the rules found on it; a
    written "1" along them still has paper beyond its ends."""
    if not len(rules):
        return False
    box = labels[piece.y : piece.y + piece.h, piece.x : piece.x + piece.w]
    ys, xs = np.nonzero(piece.pixels_in(box))
    if len(xs) < 5:
        return False
    xs, ys = xs + piece.x, ys + piece.y
    x0, y0 = float(xs.mean()), float(ys.mean())
    level = median(ink.ink[ys, xs])
    threshold = median(ink.threshold[ys, xs])
    needed_share = _needed_share(piece)
    for vx, vy in nearest_rule_directions(rules, x0, y0):
        along = (xs - x0) * vx + (ys - y0) * vy
        across = (xs - x0) * -vy + (ys - y0) * vx
        start, end = float(along.min()), float(along.max())
        # Thin across the rule's direction: a line with a stub's width beside it, not a digit's.
        if end - start < 8 or np.ptp(across) + 1 > max(7.0, 0.5 * (end - start)):
            continue
        axis = StrokeAxis(x0, y0, vx, vy, start, end, level, threshold, needed_share)
        if line_runs_on(axis, vx, vy, ink).runs:
            return True
    return False


_DISC_3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
_DISC_9 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
_DISC_11 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11))
_DISC_25 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (25, 25))


def inside_a_dark_area(piece: Piece, ink: InkImage, labels: np.ndarray, rules: np.ndarray) -> bool:
    """Much of the ring around the piece (2 to 5 px out) is inked nearly as strongly as the piece itself:
    it is the rim of a larger dark area (the dark side of a hard shadow's edge, where the background
    estimate lags behind the step), not a pen stroke, which stands out of the paper all round. Ink of the
    rules the piece crosses does not count, nor does the piece's own."""
    h, w = labels.shape
    pad = 6
    x0, y0 = max(0, piece.x - pad), max(0, piece.y - pad)
    x1, y1 = min(w, piece.x + piece.w + pad), min(h, piece.y + piece.h + pad)
    box = labels[y0:y1, x0:x1]
    own = piece.pixels_in(box).astype(np.uint8)
    near = cv2.dilate(own, _DISC_3)
    far = cv2.dilate(own, _DISC_11)
    ring = (far > near) & (rules[y0:y1, x0:x1] == 0)
    if not ring.any():
        return False
    crop = ink.ink[y0:y1, x0:x1]
    level = median(crop[own > 0][::3])  # every third pixel is plenty for a median
    return float(np.mean(crop[ring] > 0.6 * level)) > 0.4


def along_the_frame_side(piece: Piece, labels: np.ndarray, reach: int = 4) -> bool:
    """A long, thin piece pressed against the frame's side (within ``reach`` px of it) for half its length
    or more: the edge of a page, a shadow or the lens's dark corner, cut off by the frame, not a "1" (a
    digit that the frame cuts meets its side for a stroke's width, not along it)."""
    h, w = labels.shape
    own = list(piece.labels)
    rows, cols = slice(piece.y, piece.y + piece.h), slice(piece.x, piece.x + piece.w)
    sides = []
    if piece.h >= 1.5 * piece.w:  # upright: the left and right sides
        sides += [(labels[rows, :reach], 1, piece.x < reach)]
        sides += [(labels[rows, w - reach :], 1, piece.x + piece.w > w - reach)]
    if piece.w >= 1.5 * piece.h:  # lying: the top and the bottom
        sides += [(labels[:reach, cols], 0, piece.y < reach)]
        sides += [(labels[h - reach :, cols], 0, piece.y + piece.h > h - reach)]
    return any(touches and np.isin(strip, own).any(axis=axis).mean() >= 0.5 for strip, axis, touches in sides)


def in_line_with(piece: Piece, digits: Sequence[Piece]) -> bool:
    """The piece stands in a line of ``digits``: beside one of them (no more than its height away), level
    with it (their heights overlap by half the smaller) and about as tall (0.6 to 1.6 times)."""
    for digit in digits:
        overlap = min(piece.y + piece.h, digit.y + digit.h) - max(piece.y, digit.y)
        gap = max(digit.x - (piece.x + piece.w), piece.x - (digit.x + digit.w))
        if (
            overlap >= 0.5 * min(piece.h, digit.h)
            and 0.6 * digit.h <= piece.h <= 1.6 * digit.h
            and gap <= digit.h
        ):
            return True
    return False


# A line of the waiting pieces' own (see ``grow_the_lines``): this many pieces at least.
A_LINE_OF_ITS_OWN = 3
# ...within this many digit heights above or below the digits, where a page's next line is written.
NEXT_LINE = 2.5


def grow_the_lines(digits: Sequence[Piece], waiting: Sequence[Piece], shape: tuple[int, int]) -> list[Piece]:
    """The ``digits``, and those of the ``waiting`` pieces that stand in a line of them (``in_line_with``),
    one by one: a piece taken in brings in its neighbour further along the line.

    A whole line written from the page's edge may have no digit among ``digits`` to stand in: then
    ``A_LINE_OF_ITS_OWN`` waiting pieces or more in a line of one another make one, where they stand as a
    page's next line does (within ``NEXT_LINE`` digit heights above or below the digits, starting from near
    their left side, no further right than their right side, and reaching past their left side), each as
    tall as the digits (0.6 to 1.6 times their median), and one of them at least half as wide as tall (a
    line of texture beside the page is grain, strokes alike).

    A waiting piece against the frame's side (``shape``) is never taken in: the texture beside the page
    runs along the frame's side, and a strip of desk that the frame's edge cuts is no line written, even
    where one piece of it passed for a digit."""
    waiting = [p for p in waiting if not against_the_frame(p, shape)]
    digits, waiting = _grown(digits, waiting)
    if not digits:
        return digits
    height = median([d.h for d in digits])
    top = min(d.y for d in digits) - NEXT_LINE * height
    bottom = max(d.y + d.h for d in digits) + NEXT_LINE * height
    left, right = min(d.x for d in digits), max(d.x + d.w for d in digits)
    placed = [
        p
        for p in waiting
        if 0.6 * height <= p.h <= 1.6 * height
        and top <= p.y
        and p.y + p.h <= bottom
        and left - 2 * height <= p.x <= right
    ]
    for first in placed:
        line, _rest = _grown([first], [p for p in placed if p is not first])
        if (
            len(line) >= A_LINE_OF_ITS_OWN
            and any(p.w >= 0.5 * p.h for p in line)
            and max(p.x + p.w for p in line) >= left
        ):
            return grow_the_lines(digits + line, [p for p in waiting if not any(p is q for q in line)], shape)
    return digits


def against_the_frame(piece: Piece, shape: tuple[int, int]) -> bool:
    """The piece's box comes within a px of the frame's side (``shape``: the frame's rows and columns)."""
    rows, cols = shape
    return piece.x <= 1 or piece.y <= 1 or piece.x + piece.w >= cols - 1 or piece.y + piece.h >= rows - 1


def _grown(line: Sequence[Piece], pieces: Sequence[Piece]) -> tuple[list[Piece], list[Piece]]:
    """``line`` and those of ``pieces`` that stand in a line of it, one by one; and the pieces left."""
    line, rest = list(line), list(pieces)
    while found := [p for p in rest if in_line_with(p, line)]:
        line += found
        rest = [p for p in rest if not any(p is f for f in found)]
    return line, rest


def centre_on(paper: np.ndarray, piece: Piece) -> bool:
    """The piece's centre is on ``paper``."""
    return bool(paper[piece.y + piece.h // 2, piece.x + piece.w // 2])


# A digit is written on paper: at least half of the ring round it (4 to 12 px out) is paper. Among the
# candidates kept on hard-scene pages, 99 % have under a fifth of the ring off the paper (the ring of a digit
# at the page's edge reaches past it), at most 0.57; bits of a desk's or a wall's grain left between the
# texture found beside the page have more than half.
SURROUNDED_BY_PAPER = 0.5


def paper_around(piece: Piece, paper: np.ndarray, labels: np.ndarray) -> float:
    """The share of the ring round the piece (4 to 12 px out from its ink) that is ``paper``; the ring's part
    outside the frame does not count (1.0 for a piece with no ring in the frame)."""
    h, w = labels.shape
    pad = 12
    x0, y0 = max(0, piece.x - pad), max(0, piece.y - pad)
    x1, y1 = min(w, piece.x + piece.w + pad), min(h, piece.y + piece.h + pad)
    around = paper[y0:y1, x0:x1]
    if around.all():  # most candidates: on the paper all round, no ring to draw
        return 1.0
    own = piece.pixels_in(labels[y0:y1, x0:x1]).view(np.uint8)
    ring = cv2.dilate(own, _DISC_25) > cv2.dilate(own, _DISC_9)
    return float(around[ring].mean()) if ring.any() else 1.0
