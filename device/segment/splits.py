"""Stage 7, on demand: a candidate's own ink crop, and the ways to read it as several digits (touching side
by side, or one above another), made when the model is unsure of it whole."""

from __future__ import annotations

import itertools
from dataclasses import replace

import cv2
import numpy as np

from device.segment.data import CROP_PAD, InkInBoxes, Piece, Segment, SegmentSettings, WorkImage

ROUND_3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
ROUND_5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


def crop_ink(piece: Piece, ink: InkInBoxes, labels: np.ndarray) -> np.ndarray:
    """The piece's own ink (not its neighbours'), scaled so its strokes reach full strength (uint8)."""
    h, w = labels.shape
    x0, y0 = max(0, piece.x - CROP_PAD), max(0, piece.y - CROP_PAD)
    x1, y1 = min(w, piece.x + piece.w + CROP_PAD), min(h, piece.y + piece.h + CROP_PAD)
    own = piece.pixels_in(labels[y0:y1, x0:x1])
    # Grow the mask by a pixel so the soft edge of the strokes (below threshold) keeps its grey levels.
    own = cv2.dilate(own.astype(np.uint8), ROUND_3).astype(bool)
    crop = np.where(own, ink.strength(slice(y0, y1), slice(x0, x1)), 0.0)
    level = piece.peak or 1.0
    return (np.clip(crop / level, 0.0, 1.0) * 255).astype(np.uint8)


def ink_profile(crop: np.ndarray, axis: int = 0) -> np.ndarray:
    """The ink of each column (``axis=0``) or row (``axis=1``), smoothed over 3."""
    return np.convolve(crop.astype(np.float32).sum(axis=axis), np.ones(3, np.float32) / 3, mode="same")


def _trimmed(piece: np.ndarray, x: int, y: int, work: WorkImage) -> Segment | None:
    """A part's ink (its crop's own pixels; ``x, y`` the crop's place in the working image) trimmed to
    what it inks, as a Segment; None when it inks less than two rows."""
    rows, cols = np.flatnonzero(piece.max(axis=1) > 0), np.flatnonzero(piece.max(axis=0) > 0)
    if len(rows) < 2 or not len(cols):
        return None
    piece = piece[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    px, py = x + int(cols[0]), y + int(rows[0])
    return Segment(work.to_frame(px, py, piece.shape[1], piece.shape[0]), piece)


def split_columns(crop: np.ndarray, parts: int) -> list[int] | None:
    """Where to cut a crop of ``parts`` touching digits: the column of least ink near each expected cut."""
    profile = ink_profile(crop)
    w = len(profile)
    cuts = []
    for k in range(1, parts):
        expected = k * w / parts
        lo, hi = int(expected - 0.3 * w / parts), int(expected + 0.3 * w / parts) + 1
        lo, hi = max(1, lo), min(w - 1, hi)
        if hi <= lo:
            return None
        cuts.append(lo + int(np.argmin(profile[lo:hi])))
    return cuts


def valley_columns(crop: np.ndarray, min_gap: int, limit: int = 6) -> list[int]:
    """Columns where touching digits may meet: local minima of the ink profile (few inked columns where one
    digit's stroke touches the next), at least ``min_gap`` px from the sides and from each other, the
    ``limit`` lowest."""
    profile = ink_profile(crop)
    w = len(profile)
    inner = np.arange(min_gap, w - min_gap)
    if not len(inner):
        return []
    lower = np.minimum(profile[inner - 1], profile[inner + 1])
    minima = inner[(profile[inner] <= lower) & (profile[inner] < 0.6 * profile.max())]
    chosen: list[int] = []
    for column in minima[np.argsort(profile[minima], kind="stable")]:
        # The middle of a flat valley (a bridge several px long), not its first column.
        level = profile[column] * 1.05 + 1e-6
        left, right = int(column), int(column)
        while left > min_gap and profile[left - 1] <= level:
            left -= 1
        while right < w - 1 - min_gap and profile[right + 1] <= level:
            right += 1
        column = (left + right) // 2
        if all(abs(column - c) >= min_gap for c in chosen):
            chosen.append(column)
        if len(chosen) == limit:
            break
    return sorted(chosen)


def seams(
    crop: np.ndarray, columns: list[int], reach: int, step: float = 0.05, pull: float = 0.01
) -> dict[int, np.ndarray]:
    """For each cut column, the path from the crop's top to its bottom that crosses the least ink within
    ``reach`` px of that column, moving at most a pixel sideways a row: the column of the path in each
    row (the part on its right starts there). A px sideways costs ``step`` (a twentieth of a px of full
    ink), and each row costs ``pull`` per px away from the column: the path bends round a stroke rather
    than cut through it, but does not wander off along a gap for a px of ink saved.

    Touching digits often overlap too (a 0's right side beside a 6's left side, the bottom of a 2 under
    the next digit): no straight cut separates them, but a path curving through the gap between them
    does. Where the digits only touch, the path runs straight through the valley, as a column cut would.
    All paths are found at once, a row at a time.
    """
    h, w = crop.shape
    if not columns:
        return {}
    cost = crop.astype(np.float32) / 255.0
    offsets = np.arange(-reach, reach + 1)
    windows = np.clip(np.asarray(columns)[:, None] + offsets[None, :], 0, w - 1)  # (cuts, 2 reach + 1)
    ink = cost[:, windows]  # (h, cuts, width)
    ink[:, np.diff(windows, axis=1, prepend=-1) == 0] = np.inf  # a window clipped at a side
    ink += pull * np.abs(offsets)
    # Forward: the least cost of a path from the top to each position of each row. The totals carry a
    # column of infinity at both sides, so each row is a few whole-array operations.
    cuts, width = ink.shape[1:]
    totals = np.full((h, cuts, width + 2), np.inf, np.float32)
    totals[0, :, 1:-1] = ink[0]
    sideways = np.empty((cuts, width), np.float32)
    for y in range(1, h):
        above = totals[y - 1]
        np.minimum(above[:, :-2], above[:, 2:], out=sideways)
        sideways += step
        np.minimum(sideways, above[:, 1:-1], out=sideways)
        np.add(ink[y], sideways, out=totals[y, :, 1:-1])
    # Back: from the cheapest end (ties: nearest the column), each row's predecessor is the cheapest of the
    # three above it, counting the step sideways.
    position = np.argmin(totals[-1, :, 1:-1] + 1e-4 * np.abs(offsets)[None, :], axis=1)
    positions = np.empty((h, cuts), np.intp)
    positions[-1] = position
    # Each cut's row of totals, one after another: the three above ``position`` (padded) are at
    # ``start + position`` and the two after it.
    rows = totals.reshape(h, -1)
    start = np.arange(cuts)[:, None] * (width + 2) + np.arange(3)[None, :]
    costs = np.array([step, 0.0, step])
    for y in range(h - 1, 0, -1):
        position = position + np.argmin(rows[y - 1][start + position[:, None]] + costs, axis=1) - 1
        positions[y - 1] = position
    paths = windows[np.arange(cuts), positions]
    return {column: paths[:, k] for k, column in enumerate(columns)}


# A candidate at least this wide for its height may be two digits squeezed side by side (a "1" beside a
# digit, two narrow digits written close); narrower, it is one digit unless a "1" touches it by a point.
PAIR_ASPECT = 0.85
# Under 1.1 times as wide as tall a candidate is most likely one wide digit (a 0, 2 or 8): read as two
# digits side by side, each part must be about as tall as the candidate, or a digit's own tail or stroke
# would be read as a digit of its own.
SQUARE_ASPECT, SQUARE_PART_HEIGHT = 1.1, 0.75
MAX_SPLIT_PARTS = 8  # the most touching digits one candidate is read as
ONE_WIDTH = 0.15  # a written "1" is 0.1-0.2 as wide as tall: valleys may lie this close (of the height)


def point_valleys(crop: np.ndarray, narrowest: int) -> list[int]:
    """The columns (at most two, ``narrowest`` px or more from the sides and apart) where a candidate's ink
    all but vanishes: a "1" touching its neighbour by a single point ("11", "17", "19" written close)."""
    profile = ink_profile(crop)
    return [v for v in valley_columns(crop, narrowest, limit=2) if profile[v] < 0.15 * profile.max()]


def narrowest_part(height: int) -> int:
    """The narrowest part a candidate ``height`` px tall is cut into: a "1", a tenth of the height."""
    return max(2, round(0.1 * height))


def propose_splits(
    crop: np.ndarray,
    box: tuple[int, int, int, int],
    work: WorkImage,
    settings,
    cut_the_middle: bool = False,
) -> tuple:
    """Alternative readings of a wide candidate as 2 to ``MAX_SPLIT_PARTS`` touching digits (each a tuple
    of Segments).

    Over-segment, then let recognition decide: every combination of the candidate cut columns (the valleys
    of the ink profile, and cuts at even spacing for digits that touch along a whole stroke) that gives
    parts of a plausible digit width is offered, cut straight down and cut along curved paths (for digits
    that overlap). A part shared by several combinations is one Segment, so the pipeline classifies it
    once. A candidate narrower than two digits side by side is cut only where its ink all but vanishes
    between two parts (:func:`point_valleys`), or, when the pipeline asks (``cut_the_middle``), along the
    least-ink path from its middle.
    """
    x, y, w, h = box
    aspect = w / max(h, 1)
    width = crop.shape[1]
    # A "1" is narrow: a part may be a tenth of the height wide; no digit is much wider than it is tall.
    narrowest, widest = narrowest_part(h), round(1.3 * h)
    if aspect < 0.5:
        return ()
    squeezed = PAIR_ASPECT <= aspect < SQUARE_ASPECT  # one wide digit, or two squeezed side by side
    if aspect < PAIR_ASPECT:
        # One digit, unless a "1" touches its neighbour by a single point: then the ink profile almost
        # vanishes between them ("11", "17", "19" written close).
        valleys = point_valleys(crop, narrowest)
        counts = [2]
        cut_sets: list[tuple[int, ...]] = [(v,) for v in valleys]
        # Two slanted "1"s (or a "1" and a "4") written close overlap in their columns, so the profile has
        # no valley between them. Such a candidate is also cut along the least-ink path from its middle,
        # which runs down the gap between the strokes, but only when the pipeline asks: an unsure single
        # digit (a squeezed 7) cut in two reads as two confident digits too often (see
        # device.pipeline.may_hide_a_one).
        even_sets: list[tuple[int, ...]] = [(round(width / 2),)] if cut_the_middle else []
    else:
        # As many digits as fit: no fewer than digits as wide as tall (two, however squeezed), no more than
        # narrow ones (a 0 is about half as wide as tall; a group of 1s is narrower still, and its valleys
        # cut it anyway).
        counts = list(
            range(max(2, int(aspect / SQUARE_ASPECT)), min(MAX_SPLIT_PARTS, int(np.ceil(aspect / 0.45))) + 1)
        )
        cut_sets = []
        for parts in counts:
            cuts = split_columns(crop, parts)
            if cuts is not None:
                cut_sets.append(tuple(cuts))
        # Where digits overlap, the ink profile peaks (two digits' strokes in the same columns) instead of
        # dipping: curved cuts also start from even spacing, and find the gap themselves.
        # Two squeezed into a square are cut straight only: curved cuts gave them nothing more on the
        # benchmarks, and such candidates are common (most are one wide digit), so curves would cost much.
        even_sets = (
            [] if squeezed else [tuple(round(k * width / parts) for k in range(1, parts)) for parts in counts]
        )
        # Valleys as close as a "1" is wide: a 1 written between two digits, touching both, leaves a valley
        # on either side of it, and both must be offered.
        valleys = valley_columns(crop, max(narrowest, round(ONE_WIDTH * h)), limit=8)
    for count in range(1, min(len(valleys), max(counts, default=2) - 1) + 1):
        cut_sets += itertools.combinations(valleys, count)
    cut_sets = list(dict.fromkeys(cut_sets))  # in order, each once
    # Each cut both straight down its column and curved round the strokes beside it (see ``seams``): the
    # classifier decides which parts read better.
    height = crop.shape[0]
    columns = [] if squeezed else sorted({c for cuts in cut_sets + even_sets for c in cuts})
    curved = seams(crop, columns, reach=max(2, round(0.25 * h)))
    bends = {c: bool(np.any(path != c)) for c, path in curved.items()}
    ways = [(cuts, False) for cuts in cut_sets]
    # A curved cut that runs straight down its column anyway gives the straight reading again: left out.
    ways += [
        (cuts, True)
        for cuts in dict.fromkeys(cut_sets + even_sets)
        if curved and (cuts not in cut_sets or any(bends[c] for c in cuts))
    ]
    paths = {(c, False): np.full(height, c, np.intp) for cuts in cut_sets for c in cuts}
    paths.update({(c, True): path for c, path in curved.items()})
    for side in (0, width):
        paths[(side, False)] = paths[(side, True)] = np.full(height, side, np.intp)
    parts: dict[tuple[tuple[int, bool], tuple[int, bool]], Segment | None] = {}
    same_ink: dict[tuple, Segment] = {}  # a part cut alike by several paths is one Segment

    def part(left: tuple[int, bool], right: tuple[int, bool]) -> Segment | None:
        if (left, right) not in parts:
            first, last = int(paths[left].min()), int(paths[right].max())  # the columns it can reach
            columns = np.arange(first, last)[None, :]
            between = (columns >= paths[left][:, None]) & (columns < paths[right][:, None])
            cut = (
                _trimmed(np.where(between, crop[:, first:last], 0), x + first, y, work)
                if last > first
                else None
            )
            parts[(left, right)] = cut and same_ink.setdefault((cut.box, cut.ink.tobytes()), cut)
        return parts[(left, right)]

    splits: dict[tuple[int, ...], tuple[Segment, ...]] = {}  # each reading once
    for cuts, curve in ways:
        bounds = [0, *cuts, width]
        if any(not narrowest <= right - left <= widest for left, right in itertools.pairwise(bounds)):
            continue
        segments = tuple(part((left, curve), (right, curve)) for left, right in itertools.pairwise(bounds))
        if all(segments) and (
            not squeezed or all(s.ink.shape[0] >= SQUARE_PART_HEIGHT * height for s in segments)
        ):
            splits.setdefault(tuple(id(s) for s in segments), segments)
    return tuple(splits.values())


# A row of the middle third with under this share of the median row's ink is a neck: 33 of the 10,000
# MNIST test digits have one (2s, 3s and 5s with a thin diagonal or bar; at 0.4, 279). Measured against the
# fullest row instead, a 4 with a long stem under a long bar has one (its bar's row is many strokes wide).
NECK_SHARE = 0.3


def has_a_neck(crop: np.ndarray) -> bool:
    """Whether the crop's ink all but vanishes across a row of its middle third: two digits of two lines,
    one above the other, that touch by a point (a single digit's strokes cross its middle in full, most
    rows of it twice)."""
    height = crop.shape[0]
    low, high = round(height / 3), round(2 * height / 3) + 1
    if high - low < 2:
        return False
    profile = ink_profile(crop, axis=1)
    # The median from a sort: this is asked of nearly every candidate, and np.median alone cost 13 us.
    ordered = np.sort(profile)
    median = (ordered[(height - 1) // 2] + ordered[height // 2]) / 2
    return bool(profile[low:high].min() < NECK_SHARE * median)


def propose_stacked(crop: np.ndarray, box: tuple[int, int, int, int], work: WorkImage) -> tuple:
    """Readings of a candidate as tall as two digits as one digit above another: two lines written close
    (or a curled page's lines running together) whose digits touch. Cut across at the least-inked row in
    its middle third, straight and along the least-ink path (a seam on the transposed crop), top part first.
    The pipeline puts the parts in reading order with the rest."""
    x, y = box[:2]
    height, width = crop.shape
    profile = ink_profile(crop, axis=1)
    low, high = round(height / 3), round(2 * height / 3) + 1
    if high - low < 2:
        return ()
    row = low + int(np.argmin(profile[low:high]))
    curved = seams(np.ascontiguousarray(crop.T), [row], reach=max(2, round(0.15 * height)))[row]
    rows = np.arange(height)[:, None]
    readings: dict[tuple, tuple[Segment, ...]] = {}
    for path in (np.full(width, row, np.intp), curved):
        above = rows < path[None, :]
        parts = (
            _trimmed(np.where(above, crop, 0), x, y, work),
            _trimmed(np.where(above, 0, crop), x, y, work),
        )
        if all(parts):
            readings.setdefault(tuple((p.box, p.ink.tobytes()) for p in parts), parts)
    return tuple(readings.values())


# The pen's ink is this share of a candidate's strong ink or more (its crop is scaled so that the 90th
# percentile of its ink is full strength): one pen wrote the digits, as ``ink_against_the_paper_round_it``
# takes it. A form's boxes, a grid or a ruling are printed lighter than that so that writing stands out
# (``written_on_rules`` takes the same view of a page's rules).
PEN_SHARE = 0.6
# A form is photographed nearly square: its printed lines are nearly level or upright (tan 10 degrees, as
# ``device.segment.boxes`` takes its boxes' sides).
LEVEL = 0.18
# A part of the pen's ink under this share of the tallest part's height is a fleck (a corner of a printed
# box, dark where two lines cross), not a digit.
FLECK = 0.4


def propose_pen_strokes(crop: np.ndarray, box: tuple[int, int, int, int], work: WorkImage) -> tuple:
    """A candidate read as its pen's strokes alone, without the fainter ink that joins them: digits written
    in a row of printed boxes (a form, a score sheet), whose sides join them into one piece that the model
    calls no digit. Its ink of ``PEN_SHARE`` or more, in groups sharing columns (one digit's strokes), each
    a part, left to right. Offered only where the fainter ink, away from the pen's strokes, holds a printed
    line as long as the candidate is tall (see ``printed_line``): a digit written faint or soft has fainter
    stretches too, and its pen's ink alone is its broken strokes; and not where only one part is left, the
    candidate's own height (the candidate read whole again).

    Fainter ink is dropped, not cut round: where a digit crosses a box's side, the side goes and the digit
    stays whole."""
    x, y = box[:2]
    inked = crop > 0
    pen = crop >= round(PEN_SHARE * 255)
    if not pen.any():
        return ()
    # The fainter ink, away from the pen's strokes and their soft edges, must be printed lines: most
    # candidates asked about have none, and are let go before their strokes are grouped.
    fainter = inked & ~cv2.dilate(pen.view(np.uint8), ROUND_5).view(bool)
    if not printed_line(fainter, crop.shape[0]):
        return ()
    _count, _labels, stats, _ = cv2.connectedComponentsWithStats(pen.view(np.uint8), connectivity=8)
    groups: list[list[int]] = []  # left, top, right, bottom
    for left, top, width, height, _area in sorted(stats[1:].tolist()):
        right, bottom = left + width, top + height
        last = groups[-1] if groups else None
        if last and min(last[2], right) - max(last[0], left) >= 0.5 * min(last[2] - last[0], width):
            last[:] = [min(last[0], left), min(last[1], top), max(last[2], right), max(last[3], bottom)]
        else:
            groups.append([left, top, right, bottom])
    tallest = max(bottom - top for _l, top, _r, bottom in groups)
    groups = [g for g in groups if g[3] - g[1] >= FLECK * tallest]
    if len(groups) == 1 and groups[0][3] - groups[0][1] >= 0.9 * crop.shape[0]:
        return ()
    # Each part keeps the soft edge of its strokes (a px round the pen's ink), as ``crop_ink`` keeps it.
    kept = cv2.dilate(pen.view(np.uint8), ROUND_3).view(bool)
    parts = []
    rows, cols = crop.shape
    for left, top, right, bottom in groups:
        near = slice(max(0, top - 1), min(rows, bottom + 1)), slice(max(0, left - 1), min(cols, right + 1))
        ink = np.where(kept[near], crop[near], 0).astype(np.uint8)
        part = _trimmed(ink, x + near[1].start, y + near[0].start, work)
        if part is None:
            return ()
        parts.append(part)
    return (tuple(parts),)


def printed_line(ink: np.ndarray, length: int) -> bool:
    """Whether ``ink`` (bool) holds a straight line at least ``length`` px long, nearly level or upright
    (``LEVEL``), across gaps of up to a quarter of that (where the digits written on it crossed it): a
    printed box's side, top or bottom. A digit's own strokes are curved, or slanted, or shorter than the
    digit is tall."""
    found = cv2.HoughLinesP(
        ink.view(np.uint8),
        1,
        np.pi / 180,
        threshold=max(2, length // 2),
        minLineLength=length,
        maxLineGap=max(2, length // 4),
    )
    if found is None:
        return False
    x0, y0, x1, y1 = found.reshape(-1, 4).T
    dx, dy = np.abs(x1 - x0), np.abs(y1 - y0)
    return bool((np.minimum(dx, dy) <= LEVEL * np.maximum(dx, dy)).any())


def split_readings(
    candidate: Segment, settings: SegmentSettings, cut_the_middle: bool = False, across_only: bool = False
) -> tuple[tuple[Segment, ...], ...]:
    """The ways to read a candidate as several digits (:func:`propose_splits` side by side,
    :func:`propose_stacked` one above another; none where it is not :class:`Cuttable`), each part on the
    candidate's line (``cut_the_middle``: a narrow candidate is cut from its middle too, see
    :func:`propose_splits`;
    ``across_only``: one above another only, for a candidate with a neck that the model reads whole, but
    not surely). A part that several readings share stays one Segment, so it is classified once.

    Made only when asked: most candidates are single digits the model is sure of, and cutting them would
    be wasted work (the pipeline asks for the candidates it is unsure of whole)."""
    cut = candidate.cuttable
    if cut is None:
        return ()
    if across_only:
        readings = propose_stacked(cut.core, cut.box, cut.work)
    else:  # side by side (none for a candidate under half as wide as tall), and one above another
        readings = propose_splits(cut.core, cut.box, cut.work, settings, cut_the_middle)
        readings += propose_pen_strokes(cut.core, cut.box, cut.work)
        if cut.may_be_two_lines:
            readings += propose_stacked(cut.core, cut.box, cut.work)
    on_line: dict[int, Segment] = {}
    line = candidate.box.line

    def on_the_line(part: Segment) -> Segment:
        return on_line.setdefault(id(part), replace(part, box=replace(part.box, line=line)))

    return tuple(tuple(on_the_line(part) for part in reading) for reading in readings)
