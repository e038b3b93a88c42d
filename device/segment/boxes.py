"""Printed boxes: the cells of a form or a score sheet, one digit written in each.

A box's sides are too short to pass for rules (a page's lines run across much of it), and a digit written
in a box joins it, touching a side, or is merged with it as a piece it overlaps: the candidate is then the
box, which the model calls no digit, or one digit read with a frame round it. A box encloses a cell of
paper larger than the digit written in it: a hole in the piece's ink, at least a small digit tall,
reaching into three corners of its own box at least, three of whose sides are nearly level or upright
(``LEVEL``), straight along most of their length (``STRAIGHT``; the digit may touch a side here and there)
and thin (``THIN`` of the cell): a digit's loop is round or pointed, or drawn with a thicker stroke. Such a
cell's four sides are taken out of the ink (``without_boxes``; the fourth where its outermost points are,
a digit pressing on it), each followed along its line as far as the ink runs on (into the boxes beside
it, sharing their sides: a row of boxes, a table), and what is written in the box is found again as pieces
of its own.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from device.segment.data import Piece

Segment = tuple[float, float, float, float]  # x0, y0, x1, y1


class BoxSide(NamedTuple):
    """A side of a printed box: a segment (px), and how wide the printed line is."""

    x0: int
    y0: int
    x1: int
    y1: int
    width: int


# A cell's side is straight where, along this share of it at least, the cell's paper ends within 1.5 px of
# the line through its outermost points (a digit written in the box may touch a side along the rest).
STRAIGHT = 0.8
# More cells than this in one piece is squared paper, not a form: its lines are rules (and looking at each
# cell would cost a frame's time).
MOST_CELLS = 60
# A box's side is nearly level or upright: a form is photographed nearly square (tan 10 degrees).
LEVEL = 0.18
# A printed line is at most this share of its cell's height wide (a digit's stroke is a fifth of its loop
# or more; a printed line, blurred and traced, a sixth of a small cell).
THIN = 0.2
# How far round a piece the rules taken out are looked at for a box's top or bottom (px): a printed line's
# width and its blurred edge.
REACH = 4
# A side of a box found as part of the rules is inked no more than this many times as strongly as they are
# (printed alike); a written 1 on a ruled page is inked two times as strongly or more.
PRINTED = 1.5


def box_sides(
    pieces: list[Piece], labels: np.ndarray, min_h: float, removed: np.ndarray | None = None
) -> list[BoxSide]:
    """The sides of the printed boxes among ``pieces`` (in the label image's px; see the module's text).
    Only pieces at least 1.5 times ``min_h`` tall are looked at: a box holds a digit and a margin round it.

    ``removed``: the rules taken out of the ink (uint8 0/1), where there were any. A row of boxes printed in
    a straight line has its top and bottom found as rules, where they run on far enough, and its cells
    go with them: each is left open at the top or the bottom, its sides standing, joined to a digit
    pressing on them. A piece is looked at with the rules taken out within ``REACH`` px round its box, as
    its own ink: they close such a cell again."""
    sides = []
    rows, cols = labels.shape
    for piece in pieces:
        if piece.h < 1.5 * min_h or piece.w < 0.5 * piece.h:
            continue
        x0, y0 = piece.x, piece.y
        x1, y1 = piece.x + piece.w, piece.y + piece.h
        if removed is not None:
            x0, y0, x1, y1 = (
                max(0, x0 - REACH),
                max(0, y0 - REACH),
                min(cols, x1 + REACH),
                min(rows, y1 + REACH),
            )
        own = piece.pixels_in(labels[y0:y1, x0:x1])
        if removed is not None:
            own |= removed[y0:y1, x0:x1] > 0
        _count, holes, stats, _ = cv2.connectedComponentsWithStats((~own).view(np.uint8), connectivity=4)
        h, w = own.shape
        left, top, widths, heights = (stats[:, k] for k in range(4))
        enclosed = (left > 0) & (top > 0) & (left + widths < w) & (top + heights < h)
        cells = enclosed & (heights >= min_h) & (widths >= 0.5 * min_h)
        cells[0] = False
        if np.count_nonzero(cells) > MOST_CELLS:
            continue  # squared paper, whose lines are rules
        offset = (x0, y0, x0, y0)
        for k in np.flatnonzero(cells):
            x, y, cw, ch = (int(v) for v in stats[k, :4])
            cell = holes[y : y + ch, x : x + cw] == k
            # A box's cell reaches into the corners of its own box, three of them at least (a digit may
            # sit in the fourth); a digit's loop, round or pointed, does not.
            inset = max(1, min(ch, cw) // 8)
            if cell[[inset, inset, -1 - inset, -1 - inset], [inset, -1 - inset, inset, -1 - inset]].sum() < 3:
                continue
            frame = cell_frame(cell, own, (x, y))
            if frame is not None:
                sides += [
                    BoxSide(*(int(v) for v in np.add(followed(side, own, width), offset)), width + 2)
                    for side, width in frame
                ]
    return sides


def framed(piece: Piece, labels: np.ndarray, band: int = 3) -> bool:
    """Whether two opposite sides of the piece's box are inked along 60 % of their length or more (within
    ``band`` px of it): a box round a digit, or a row of boxes; a quick look before ``box_sides``, which
    most digits fail (a 7's bar inks the top, but nothing inks the bottom as well)."""
    own = piece.pixels_in(labels[piece.y : piece.y + piece.h, piece.x : piece.x + piece.w])
    top, bottom = own[:band].any(axis=0).mean(), own[-band:].any(axis=0).mean()
    left, right = own[:, :band].any(axis=1).mean(), own[:, -band:].any(axis=1).mean()
    return min(top, bottom) >= 0.6 or min(left, right) >= 0.6


def cell_frame(cell: np.ndarray, own: np.ndarray, at: tuple[int, int]) -> list[tuple[Segment, int]] | None:
    """The four sides of a hole in a piece's ink (``cell``: the hole in its box, at ``at`` in ``own``) as
    segments along the middle of the printed line beyond each, with the line's width; None where fewer than
    three of them are straight, thin and nearly level or upright (the hole is no box's cell). A digit
    written in the box may press along one side: that side is taken where its outermost points are."""
    ch, cw = cell.shape
    x, y = at
    h, w = own.shape
    size = max(ch, cw)
    # Each side looked at as the top one, the cell and the ink turned so, and its segment turned back.
    views = (
        (cell, own, x, y, lambda c, r: (c, r)),
        (cell[::-1], own[::-1], x, h - y - ch, lambda c, r: (c, h - 1 - r)),
        (cell.T, own.T, y, x, lambda c, r: (r, c)),
        (cell.T[::-1], own.T[::-1], y, w - x - cw, lambda c, r: (w - 1 - r, c)),
    )
    sides = []
    for turned_cell, turned_own, left, top, back in views:
        side = top_side(turned_cell, turned_own, left, top, size)
        if side is None:
            return None
        sides.append((side, back))
    printed = [side for side, _ in sides if side.printed]
    if len(printed) < 3:
        return None
    width = int(np.median([side.width for side in printed]))
    frame = []
    for side, back in sides:
        line_width = side.width if side.printed else width
        middle = (line_width + 1) / 2  # beyond the cell's paper, to the middle of the printed line
        c0, r0, c1, r1 = side.start[0], side.start[1] - middle, side.end[0], side.end[1] - middle
        frame.append(((*back(c0, r0), *back(c1, r1)), line_width))
    return frame


class TopSide(NamedTuple):
    """A cell's top side: where the cell's paper starts at its two ends (on the line through the outermost
    points of each half), how wide the ink above it is, and whether that is a printed line."""

    start: tuple[float, float]
    end: tuple[float, float]
    width: int
    printed: bool


def top_side(cell: np.ndarray, own: np.ndarray, x: int, y: int, size: int) -> TopSide | None:
    """The top side of a cell (``cell``, at (``x``, ``y``) in ``own``); printed where the cell's paper starts
    on a straight line along ``STRAIGHT`` of it, nearly level (within ``LEVEL``), with a run of ink above it
    no wider than ``THIN`` of ``size``. None for a cell too narrow to have one."""
    along = np.flatnonzero(cell.any(axis=0))
    if len(along) < 2:
        return None
    depth = cell[:, along].argmax(axis=0)  # where the cell's paper starts, down each column
    # The line through the outermost point of each half (a side may be turned a little).
    half = len(along) // 2
    i0, i1 = int(np.argmin(depth[:half])), half + int(np.argmin(depth[half:]))
    slope = (depth[i1] - depth[i0]) / max(int(along[i1] - along[i0]), 1)
    line = depth[i0] + slope * (along - along[i0])
    on_line = np.abs(depth - line) <= 1.5
    # The width of the ink above the paper, where the paper starts on the line.
    reach = max(3, int(THIN * size) + 2)
    rows = (y + depth - 1)[:, None] - np.arange(reach)[None, :]
    ink = (rows >= 0) & own[np.maximum(rows, 0), (x + along)[:, None]]
    runs = np.cumprod(ink, axis=1).sum(axis=1)
    width = int(np.median(runs[on_line])) if on_line.any() else 0
    printed = on_line.mean() >= STRAIGHT and abs(slope) <= LEVEL and 1 <= width <= THIN * size
    return TopSide((x + along[0], y + line[0]), (x + along[-1], y + line[-1]), width, bool(printed))


def followed(segment: Segment, own: np.ndarray, width: int, gap: int = 3) -> tuple[int, int, int, int]:
    """A segment of a line in ``own`` extended at both ends along its line as far as ink lies on it (within
    half its ``width``), across gaps of up to ``gap`` px."""
    h, w = own.shape
    x0, y0, x1, y1 = (float(v) for v in segment)
    length = max(np.hypot(x1 - x0, y1 - y0), 1.0)
    dx, dy = (x1 - x0) / length, (y1 - y0) / length
    reach = width // 2

    def inked(t: float) -> bool | None:
        x, y = x0 + dx * t, y0 + dy * t
        if not (0 <= x < w and 0 <= y < h):
            return None  # off the piece's box
        for k in range(-reach, reach + 1):
            xi, yi = round(x - dy * k), round(y + dx * k)
            if 0 <= xi < w and 0 <= yi < h and own[yi, xi]:
                return True
        return False

    ends = []
    for start, step in ((0.0, -1.0), (length, 1.0)):
        t, last, missed = start, start, 0
        while missed <= gap:
            t += step
            found = inked(t)
            if found is None:
                break
            if found:
                last, missed = t, 0
            else:
                missed += 1
        ends.append(last)
    return (
        round(x0 + dx * ends[0]),
        round(y0 + dy * ends[0]),
        round(x0 + dx * ends[1]),
        round(y0 + dy * ends[1]),
    )


def without_boxes(mask: np.ndarray, sides: list[BoxSide]) -> np.ndarray:
    """The ink mask with the boxes' sides taken out (where a digit touches a side, it loses as much of its
    stroke as the side is wide)."""
    cleaned = mask.copy()
    for side in sides:
        cv2.line(cleaned, (side.x0, side.y0), (side.x1, side.y1), 0, side.width)
    return cleaned


def side_between_rules(
    piece: Piece, strength: np.ndarray, labels: np.ndarray, rules: np.ndarray, reach: int = 3
) -> bool:
    """A thin upright piece whose ends both meet rules taken out (within ``reach`` px of its top and of its
    bottom) and whose ink is no stronger than theirs (``PRINTED`` of it): a side of a long row of boxes,
    whose top and bottom were found as rules, not a 1 (written, it is far more strongly inked than the
    printed lines it touches).

    Thin and upright once the ink along the rules is set aside: where a rule is taken out, stubs of the
    box's top and bottom that lay beside it are left on the side's ends (printed lines blur and tilt, so
    a rule's band misses their edges), and they make the piece as wide as the box."""
    if piece.h < 1.5 * piece.w:
        return False
    h, w = rules.shape
    cols = slice(max(0, piece.x - piece.w), min(w, piece.x + 2 * piece.w))
    # Within ``reach`` px of either end, the end's own rows too: where the rule was taken out, the strokes
    # that crossed it are bridged again, and a side that met it runs on into its band.
    above = (slice(max(0, piece.y - reach), piece.y + reach), cols)
    below = (slice(piece.y + piece.h - reach, min(h, piece.y + piece.h + reach)), cols)
    if not (rules[above].any() and rules[below].any()):
        return False
    box = (slice(piece.y, piece.y + piece.h), slice(piece.x, piece.x + piece.w))
    inked = piece.pixels_in(labels[box])
    if piece.h < 3 * piece.w and not thin_between_its_ends(inked, rules, piece, reach):
        return False
    # The two lines' cores compared, px by px along each: a printed line blurs to a lower peak the thinner
    # it is, and its blurred edge is most of its px.
    printed = printed_strength(piece, strength, rules, reach)
    return printed > 0 and float(np.median(core_by_row(inked, strength[box]))) <= PRINTED * printed


def core_by_row(inked: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """The strongest ink of each row that holds any (``inked``: where it is; a merged piece may gap in a
    row, which then has none): an upright line's core, row by row."""
    return np.where(inked, strength, 0).max(axis=1)[inked.any(axis=1)]


def printed_strength(piece: Piece, strength: np.ndarray, rules: np.ndarray, reach: int) -> float:
    """How strongly the rules taken out at a piece's two ends are printed: the median, over the columns beside
    the piece (as far as it is wide either side, 6 px at least), of the strongest rule px in each column from
    ``reach`` px inside either end to ``2 * reach`` px beyond it (a rule's band lies round its core, so a
    piece bridged into it stops a few px short of the core). Where a written stroke crossed a rule, its ink
    was taken out with the rule's: the piece's own columns are left out. 0 where no rule lies beside."""
    h, w = rules.shape
    wide = max(piece.w, 6)
    ends = (
        slice(max(0, piece.y - 2 * reach), piece.y + reach),
        slice(piece.y + piece.h - reach, min(h, piece.y + piece.h + 2 * reach)),
    )
    peaks = [
        np.where(rules[rows, cols] > 0, strength[rows, cols], 0).max(axis=0, initial=0.0)
        for rows in ends
        for cols in (
            slice(max(0, piece.x - wide), piece.x),
            slice(piece.x + piece.w, min(w, piece.x + piece.w + wide)),
        )
    ]
    peaks = np.concatenate(peaks)
    peaks = peaks[peaks > 0]
    return float(np.median(peaks)) if peaks.size else 0.0


def thin_between_its_ends(inked: np.ndarray, rules: np.ndarray, piece: Piece, reach: int) -> bool:
    """Whether a piece's ink (``inked``, in its box), less what lies within ``reach`` px above or below the
    rules taken out, is at least three times as tall as it is wide: an upright stroke with stubs along the
    rules at its ends."""
    h = rules.shape[0]
    top, bottom = max(0, piece.y - reach), min(h, piece.y + piece.h + reach)
    near = rules[top:bottom, piece.x : piece.x + piece.w]
    near = cv2.dilate(near.view(np.uint8), np.ones((2 * reach + 1, 1), np.uint8)) > 0
    rows, cols = np.nonzero(inked & ~near[piece.y - top : piece.y - top + piece.h])
    if rows.size == 0:
        return False
    return bool(np.ptp(rows) + 1 >= 3 * (np.ptp(cols) + 1))


# A side joined to a digit runs down its piece's edge, inked along this share of the piece's height at
# least in every column of it (a written stroke along a piece's edge slants or bends away before that).
DOWN_THE_EDGE = 0.85
# ...its first column among the outermost this many of the piece's box.
EDGE_STUBS = 6


def sides_pressed_on(
    pieces: list[Piece],
    strength: np.ndarray,
    labels: np.ndarray,
    rules: np.ndarray,
    min_h: float,
    reach: int = 3,
) -> list[BoxSide]:
    """The sides of a row of boxes, whose top and bottom were found as rules, that a digit written in a
    box presses on: the piece is the digit and the side, and the box is no cell for ``box_sides`` (its
    other side, which the digit does not touch, is a piece of its own). Read whole, the digit with the
    side along it reads unsurely; cut, the side reads as a sure 1.

    Such a side runs down the piece's left or right edge (see :func:`side_down_the_edge`), between rules
    taken out (within ``reach`` px of the piece's top and bottom). A piece with one down each edge is a
    box round its digit, whole: ``box_sides``' or the pipeline's to take off."""
    sides = []
    h = rules.shape[0]
    for piece in pieces:
        if piece.h < 1.5 * min_h or piece.w < 0.3 * piece.h:
            continue  # no box holding a digit, or a side alone (side_between_rules' to judge)
        cols = slice(piece.x, piece.x + piece.w)
        above = (slice(max(0, piece.y - reach), piece.y + reach), cols)
        below = (slice(piece.y + piece.h - reach, min(h, piece.y + piece.h + reach)), cols)
        if not (rules[above].any() and rules[below].any()):
            continue
        box = (slice(piece.y, piece.y + piece.h), cols)
        inked = piece.pixels_in(labels[box])
        printed = printed_strength(piece, strength, rules, reach)
        if printed == 0:
            continue  # no rule beside the piece to weigh a side against
        strong = PRINTED * printed
        left = side_down_the_edge(inked, strength[box], strong)
        right = side_down_the_edge(inked[:, ::-1], strength[box][:, ::-1], strong)
        if left and right:
            continue
        for columns, first in ((left, 0), (right, piece.w - right)):
            if columns:
                x = piece.x + first + (columns - 1) // 2
                sides.append(BoxSide(x, piece.y - reach, x, piece.y + piece.h + reach, columns + 2))
    return sides


def side_down_the_edge(inked: np.ndarray, strength: np.ndarray, strong: float) -> int:
    """How many columns from the left of a piece's box (``inked``: its ink there) a printed line down its edge
    takes; 0 where there is none. Every column of the line is inked along ``DOWN_THE_EDGE`` of the height, the
    first among the outermost ``EDGE_STUBS`` (the line's blurred edge is inked along less, and stubs of the
    box's top and bottom may run on beyond it), and it is no wider than ``THIN`` of the height, nor more
    strongly inked than ``strong``: a 1 written against a digit is inked two times as strongly as a printed
    line or more, and seldom runs so straight."""
    down = inked.mean(axis=0) >= DOWN_THE_EDGE
    if not down[:EDGE_STUBS].any():
        return 0
    start = int(np.argmax(down[:EDGE_STUBS]))
    run = down[start:]
    columns = start + (int(np.argmin(run)) if not run.all() else len(run))
    if columns > max(1, int(THIN * inked.shape[0])):
        return 0
    return (
        columns if float(np.median(core_by_row(inked[:, :columns], strength[:, :columns]))) <= strong else 0
    )
