"""Stage 4: ruled and grid lines, printed boxes and edges taken out of the ink, and the texture beside
the page that tiles are too coarse to see."""

from __future__ import annotations

import cv2
import numpy as np

from device.segment.data import InkImage, SegmentSettings
from device.segment.paper import label_type, reached_from
from device.segment.stats import median


def paper_extent(paper: np.ndarray) -> tuple[int, int]:
    """Width and height of the box around the paper (the frame's, when there is none)."""
    rows, cols = np.flatnonzero(paper.any(axis=1)), np.flatnonzero(paper.any(axis=0))
    if not len(rows):
        return paper.shape[1], paper.shape[0]
    return int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def find_rules(
    mask: np.ndarray,
    settings: SegmentSettings,
    extent: tuple[int, int] | None = None,
    lines_only: bool = False,
) -> list[tuple[int, int, int, int]]:
    """Long straight strokes that are not writing: (x0, y0, x1, y1) segments. ``lines_only``: no edges of an
    inked area (a shadow's rim), for a ``mask`` of faint ink.

    Found with a probabilistic Hough transform (any angle, dashed or faint lines too). A segment counts
    as a rule when it spans most of the frame (a margin line, a paper or shadow edge), or when it is long
    and has a parallel partner of its own length at some distance (ruled and squared paper, a printed
    grid): a single long stroke, a "1" written large, has neither.
    """
    h, w = mask.shape
    # Lengths are measured against the writing surface (``extent``, its width and height; the frame by
    # default): the lines of a page that fills a third of the frame are a third as long.
    surface_w, surface_h = extent or (w, h)
    size = max(surface_w, surface_h)
    # At half resolution: rules are long, and the transform's cost grows with the ink it is given.
    half = cv2.resize(mask, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    length = max(15, int(settings.rule_length * size) // 2)
    found = cv2.HoughLinesP(half, 1, np.pi / 180, threshold=length // 2, minLineLength=length, maxLineGap=5)
    if found is None:
        return []
    segments = found.reshape(-1, 4)[:1000].astype(np.float32) * 2
    # The frame's own border (a webcam's dark rim, a vignette) is no line on the page: taken for one, it
    # would be the partner of any long stroke and set the spacing of a family of evenly spaced rules.
    at_border = np.zeros(len(segments), bool)
    for axis, limit in ((0, w - 1), (1, h - 1)):
        ends = segments[:, [axis, axis + 2]]
        at_border |= np.all(ends <= 3, axis=1) | np.all(ends >= limit - 3, axis=1)
    segments = segments[~at_border]
    if not len(segments):
        return []
    dx, dy = segments[:, 2] - segments[:, 0], segments[:, 3] - segments[:, 1]
    lengths = np.hypot(dx, dy)
    angles = np.arctan2(dy, dx) % np.pi
    spans = np.where(np.abs(np.cos(angles)) >= np.sqrt(0.5), surface_w, surface_h)  # extent along the line
    mid_x, mid_y = (segments[:, 0] + segments[:, 2]) / 2, (segments[:, 1] + segments[:, 3]) / 2
    # Perpendicular distance between the middles of each pair of segments, and whether they are parallel.
    normal_x, normal_y = -np.sin(angles), np.cos(angles)
    apart = np.abs(
        (mid_x[None, :] - mid_x[:, None]) * normal_x[:, None]
        + (mid_y[None, :] - mid_y[:, None]) * normal_y[:, None]
    )
    turn = np.abs(angles[None, :] - angles[:, None])
    parallel = np.minimum(turn, np.pi - turn) < np.radians(3)
    # A partner has paper between the two: two edges of one thick stroke (a large "1") are parallel too.
    candidates = np.argwhere(parallel & (apart > max(12.0, 0.02 * size)))
    between_x = np.clip(((mid_x[candidates[:, 0]] + mid_x[candidates[:, 1]]) / 2).astype(int), 0, w - 1)
    between_y = np.clip(((mid_y[candidates[:, 0]] + mid_y[candidates[:, 1]]) / 2).astype(int), 0, h - 1)
    separate = mask[between_y, between_x] == 0
    partner = np.zeros(len(segments), bool)
    partner[candidates[separate, 0]] = True
    # Partners must be long as well: the two sides of a boxy "0" written large are parallel too, but a
    # ruled or squared page's lines run across much of the frame.
    is_rule = (lengths >= 0.8 * spans) | (partner & (lengths >= 0.35 * size))
    # A margin or a page's edge is often found in pieces (broken where it is faint, or bent a little by
    # the lens): pieces on one straight line that together run across most of the surface are one rule.
    for i in np.flatnonzero(~is_rule & (lengths >= 0.2 * spans)):
        pieces = segments[parallel[i] & (apart[i] <= 3.0)]
        extent, covered = _span(pieces, (mid_x[i], mid_y[i]), angles[i])
        is_rule[i] = extent >= 0.8 * spans[i] and covered >= 0.6 * extent
    # A margin crosses every line of a ruled page at right angles: a long straight stroke that crosses
    # three rules or more at a steep angle is a rule too (without a partner, and on a page whose extent is
    # not known, it may span less of the surface than a rule must).
    long_strokes = np.flatnonzero(~is_rule & (lengths >= 0.35 * size))
    if is_rule.any() and len(long_strokes):
        is_rule[long_strokes] = _crosses_rules(
            segments[long_strokes], angles[long_strokes], segments[is_rule], angles[is_rule]
        )
    # A rule is a thin line: a pen stroke written large (a close-up of one digit) is long, straight and
    # parallel to another too, but far thicker.
    thickness = np.zeros(len(segments), np.float32)
    if is_rule.any():
        thickness[is_rule] = _thickness(segments[is_rule], mask, size)
        is_rule &= thickness <= RULE_THICKNESS * size
    # Looked for in faint ink, the dark side of a step (a hard shadow's rim, where the background estimate
    # lags behind the step) is a band of ink along it: a line between that ink and the bare side would cut
    # the band into pieces that no later stage knows for a rim. Only lines are wanted there. Beside a line
    # of a ruled or squared page (one with a partner) is looked at beyond its own half width: seen close
    # and soft, such a line is 10-15 px wide in faint ink, and 6 px from a segment along one of its edges
    # is still the line itself. A shadow's rim has no partner.
    if lines_only and is_rule.any():
        beside = np.where(partner, np.maximum(SIDE_OFFSET, np.ceil(thickness / 2) + 3), SIDE_OFFSET)
        is_rule[is_rule] = ~_one_sided(segments[is_rule], mask, beside[is_rule])
    # A rule runs on across the page: extend it to the frame's edges, so the short pieces of it that
    # the transform missed (between two crossings, near the edge) go too. The transform's angle is coarse
    # (a degree, at half resolution): extended across the page it can drift off the line by several px,
    # so the line fitted again to the ink along the segment is extended too. Both are kept: a line bent a
    # little by the lens is followed by the several segments found along it, not by any one straight line.
    rules = []
    for segment_, length_ in zip(segments[is_rule], lengths[is_rule], strict=True):
        x0, y0, x1, y1 = segment_
        own = ((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / length_, (y1 - y0) / length_)
        rules += [_extended(own, mask.shape), _extended(_fitted(segment_, mask), mask.shape)]
    return rules


ALL_BUT = 0.8  # a margin crosses this share of the rules passing it at least (some are found in pieces)


def _crosses_rules(
    strokes: np.ndarray, stroke_angles: np.ndarray, rules: np.ndarray, rule_angles: np.ndarray, least: int = 3
) -> np.ndarray:
    """Whether each stroke (a segment) crosses at least ``least`` of the ``rules`` (segments) at 60 degrees
    or more, and nearly all (``ALL_BUT``) of those that pass its line."""
    crosses = np.zeros(len(strokes), bool)
    for i, ((x0, y0, x1, y1), angle) in enumerate(zip(strokes, stroke_angles, strict=True)):
        turn = np.abs(rule_angles - angle)
        steep = np.minimum(turn, np.pi - turn) >= np.radians(60)
        if steep.sum() < least:
            continue
        ax0, ay0, ax1, ay1 = (rules[steep, k] for k in range(4))
        # Where the two segments' lines meet, as a share of the way along each (0 to 1: on both segments).
        dx, dy, ex, ey = x1 - x0, y1 - y0, ax1 - ax0, ay1 - ay0
        denominator = dx * ey - dy * ex
        meet = np.abs(denominator) > 1e-6
        denominator = np.where(meet, denominator, 1.0)
        along_stroke = ((ax0 - x0) * ey - (ay0 - y0) * ex) / denominator
        along_rule = ((ax0 - x0) * dy - (ay0 - y0) * dx) / denominator
        passing = meet & (along_rule >= 0) & (along_rule <= 1)  # the rules that pass the stroke's line
        crossed = np.count_nonzero(passing & (along_stroke >= 0) & (along_stroke <= 1))
        # A margin crosses all of them; a "1" written across a few lines has more above or below it.
        crosses[i] = crossed >= max(least, ALL_BUT * np.count_nonzero(passing))
    return crosses


def _middle_points(segments: np.ndarray, count: int = 24) -> tuple[np.ndarray, ...]:
    """``count`` points along the middle 80 % of each segment (x and y, shape (segments, count)) and each
    segment's unit normal (x and y, shape (segments, 1))."""
    along = np.linspace(0.1, 0.9, count, dtype=np.float32)
    x0, y0, x1, y1 = (segments[:, k : k + 1] for k in range(4))
    length = np.maximum(np.hypot(x1 - x0, y1 - y0), 1e-6)
    return x0 + (x1 - x0) * along, y0 + (y1 - y0) * along, -(y1 - y0) / length, (x1 - x0) / length


SIDE_OFFSET = 6  # px beside a line where the paper is looked for (see ``_one_sided``)


def _one_sided(
    segments: np.ndarray, mask: np.ndarray, offset: np.ndarray | float = SIDE_OFFSET
) -> np.ndarray:
    """Whether each segment is the edge of an inked area rather than a line: ``offset`` px (one for all, or
    one for each segment) to one side of its middle 80 %, ink half the way or more, and clearly more than
    on the other side (a line has bare paper on both sides, but for the lines and writing crossing it)."""
    h, w = mask.shape
    px, py, nx, ny = _middle_points(segments)
    offset = np.broadcast_to(np.asarray(offset, np.float32), (len(segments),))[:, None]
    shares = []
    for side in (offset, -offset):
        xs = np.clip(np.rint(px + nx * side).astype(np.intp), 0, w - 1)
        ys = np.clip(np.rint(py + ny * side).astype(np.intp), 0, h - 1)
        shares.append((mask[ys, xs] > 0).mean(axis=1))
    more, less = np.maximum(*shares), np.minimum(*shares)
    return (more >= 0.5) & (more >= less + 0.25)


RULE_THICKNESS = 0.02  # the thickest ink a rule leaves, as a fraction of the surface's longer side


def _thickness(segments: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    """How thick the ink of each segment is: the median, over the points along its middle 80 % that are
    ink, of the unbroken run of ink across it through that point (px; at most a twentieth of the surface
    either side). Writing crossing a rule thickens it only where it crosses; a pen stroke is thick all
    along; neighbouring rules, with paper between, do not count."""
    reach = max(10, round(0.05 * size))
    across = np.arange(-reach, reach + 1, dtype=np.float32)
    px, py, nx, ny = _middle_points(segments)
    # Beyond the frame is no ink: a border of paper round the mask, as wide as the reach, and points
    # further out taken at its rim, so every point is looked up at once, with no test of its own.
    framed = np.pad(mask > 0, reach)
    h, w = framed.shape
    xs = np.clip(np.rint(px[..., None] + nx[..., None] * across) + reach, 0, w - 1).astype(np.int32)
    ys = np.clip(np.rint(py[..., None] + ny[..., None] * across) + reach, 0, h - 1).astype(np.int32)
    ink = framed.ravel()[ys * w + xs]
    # The run through the middle: the ink unbroken from the middle outwards, on each side (up to the
    # first paper px: where none is, the whole reach).
    ahead, behind = _unbroken(ink[..., reach:]), _unbroken(ink[..., reach::-1])
    runs = np.where(ink[..., reach], ahead + behind - 1, 0)
    # The median of the points on ink (a point where the segment passes just beside its ink says
    # nothing): sorted, the zeros come first.
    runs.sort(axis=1)
    counted = np.count_nonzero(runs, axis=1)
    first = runs.shape[1] - counted
    rows = np.arange(len(runs))
    middle = (
        runs[rows, first + (counted - 1) // 2]
        + runs[rows, np.minimum(first + counted // 2, runs.shape[1] - 1)]
    ) / 2
    return np.where(counted > 0, middle, 0.0)


def _unbroken(ink: np.ndarray) -> np.ndarray:
    """How many of the first values along the last axis are true before the first false one."""
    return np.where(ink.all(axis=-1), ink.shape[-1], np.argmin(ink, axis=-1))


def _span(pieces: np.ndarray, point: tuple[float, float], angle: float) -> tuple[float, float]:
    """How far the segments ``pieces``, lying on one line through ``point`` at ``angle``, reach along it
    from end to end, and how much of that they cover (overlaps counted once)."""
    ux, uy = np.cos(angle), np.sin(angle)
    ends = np.stack(
        [
            (pieces[:, 0] - point[0]) * ux + (pieces[:, 1] - point[1]) * uy,
            (pieces[:, 2] - point[0]) * ux + (pieces[:, 3] - point[1]) * uy,
        ]
    )
    lows, highs = ends.min(axis=0), ends.max(axis=0)
    covered, reached = 0.0, -np.inf
    for low, high in sorted(zip(lows.tolist(), highs.tolist(), strict=True)):
        covered += max(0.0, high - max(low, reached))
        reached = max(reached, high)
    return float(highs.max() - lows.min()), covered


def _extended(line: tuple[float, float, float, float], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """A line given by a point and its direction, as a segment from far before to far past the frame."""
    x, y, ux, uy = line
    reach = 2.0 * max(shape)
    return int(x - reach * ux), int(y - reach * uy), int(x + reach * ux), int(y + reach * uy)


def _fitted(segment: np.ndarray, mask: np.ndarray, pad: int = 3) -> tuple[float, float, float, float]:
    """A point on the line and its direction, fitted (least squares) to the ink within ``pad`` px of the
    segment; the segment's own when too little ink is there. Lines crossing it add ink on both of its
    sides alike, so they hardly tilt the fit."""
    x0, y0, x1, y1 = (float(v) for v in segment)
    length = max(np.hypot(x1 - x0, y1 - y0), 1e-6)
    own = ((x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / length, (y1 - y0) / length)
    h, w = mask.shape
    left, top = max(0, int(min(x0, x1)) - pad), max(0, int(min(y0, y1)) - pad)
    right, bottom = min(w, int(max(x0, x1)) + pad + 1), min(h, int(max(y0, y1)) + pad + 1)
    if right <= left or bottom <= top:
        return own
    near = np.zeros((bottom - top, right - left), np.uint8)
    cv2.line(near, (int(x0) - left, int(y0) - top), (int(x1) - left, int(y1) - top), 1, 2 * pad + 1)
    ys, xs = np.nonzero(near & mask[top:bottom, left:right])
    if len(xs) < 0.5 * length:
        return own
    points = np.stack([xs + left, ys + top], axis=1).astype(np.float32)
    vx, vy, cx, cy = (float(v) for v in cv2.fitLine(points, cv2.DIST_L2, 0, 0.01, 0.01).ravel())
    return cx, cy, vx, vy


def evenly_spaced_rules(
    mask: np.ndarray, rules: list[tuple[int, int, int, int]], support: float = 0.3
) -> list[tuple[int, int, int, int]]:
    """The lines of a ruled or squared page that were not found (too faint under a shadow, broken by the
    writing on them): a page's lines are evenly spaced, so where three or more parallel rules were found,
    every line at their spacing, across the frame, that is inked along ``support`` of its way is a rule
    too. Writing crosses such a line for a digit's width, never for a third of the frame."""
    if len(rules) < 3:
        return []
    lines = np.asarray(rules, np.float64)
    angles = np.arctan2(lines[:, 3] - lines[:, 1], lines[:, 2] - lines[:, 0]) % np.pi
    mid_x, mid_y = (lines[:, 0] + lines[:, 2]) / 2, (lines[:, 1] + lines[:, 3]) / 2
    ink_y, ink_x = np.nonzero(mask)
    added: list[tuple[int, int, int, int]] = []
    unused = np.ones(len(lines), bool)
    for first in range(len(lines)):
        if not unused[first]:
            continue
        turn = (angles - angles[first] + np.pi / 2) % np.pi - np.pi / 2  # signed, in (-90, 90] degrees
        family = unused & (np.abs(turn) < np.radians(2))
        unused &= ~family
        if family.sum() < 3:
            continue
        theta = angles[first] + float(np.mean(turn[family]))
        offsets = np.sort(-mid_x[family] * np.sin(theta) + mid_y[family] * np.cos(theta))
        distinct = offsets[np.concatenate([[True], np.diff(offsets) > 3.0])]
        gaps = np.diff(distinct)
        if len(gaps) < 2:
            continue
        spacing = median(gaps)
        spacing = median(gaps / np.maximum(np.round(gaps / spacing), 1))
        if spacing < 8:
            continue
        first_offset, shares = _inked_shares(ink_y, ink_x, mask.shape, theta)
        start = distinct[0] - np.floor((distinct[0] - first_offset) / spacing) * spacing
        for offset in np.arange(start, first_offset + len(shares), spacing):
            if np.min(np.abs(distinct - offset)) < 0.3 * spacing:
                continue
            # Where the line really is (spacing drifts a little across a page seen at an angle), against
            # the middle between two lines, inked only where lines cross it.
            nearby = offset + np.arange(-round(0.25 * spacing), round(0.25 * spacing) + 1)
            found = _at(shares, nearby - first_offset)
            best = nearby[int(np.argmax(found))]
            if (
                found.max() >= support
                and found.max() >= 2 * _at(shares, best + spacing / 2 - first_offset) + 0.1
            ):
                normal = (-np.sin(theta), np.cos(theta))
                line = (best * normal[0], best * normal[1], np.cos(theta), np.sin(theta))
                added.append(_extended(line, mask.shape))
    return added


def _at(values: np.ndarray, positions) -> np.ndarray:
    """``values`` at the nearest whole ``positions``; 0 beyond its ends."""
    index = np.rint(np.asarray(positions)).astype(int)
    return np.where((index >= 0) & (index < len(values)), values[np.clip(index, 0, len(values) - 1)], 0.0)


def _inked_shares(
    ink_y: np.ndarray, ink_x: np.ndarray, shape: tuple[int, int], theta: float
) -> tuple[float, np.ndarray]:
    """For each line at angle ``theta``, 1 px apart across the frame: the share of its way through the frame
    (in 2 px steps) that has ink within a px of it. Returns the offset of the first line (along the
    lines' normal, from the frame's corner) and the shares, all at once from the ink's coordinates."""
    h, w = shape
    ux, uy, nx, ny = np.cos(theta), np.sin(theta), -np.sin(theta), np.cos(theta)
    corners_x, corners_y = np.array([0, w, 0, w]), np.array([0, 0, h, h])
    normal, along = corners_x * nx + corners_y * ny, corners_x * ux + corners_y * uy
    first, first_along = float(normal.min()), float(along.min())
    count, steps = int(normal.max() - first) + 1, int((along.max() - first_along) / 2) + 1
    occupied = np.zeros((count + 2, steps), bool)
    rows = np.clip(np.rint(ink_x * nx + ink_y * ny - first).astype(int), 0, count - 1) + 1
    occupied[rows, ((ink_x * ux + ink_y * uy - first_along) / 2).astype(int)] = True
    covered = (occupied[:-2] | occupied[1:-1] | occupied[2:]).sum(axis=1)
    # Each line's length inside the frame: where its points offset * n + t * u have 0 <= x < w, 0 <= y < h.
    offsets = first + np.arange(count)
    low, high = np.full(count, -np.inf), np.full(count, np.inf)
    for start, size, along_part in ((offsets * nx, w, ux), (offsets * ny, h, uy)):
        if abs(along_part) < 1e-9:
            outside = (start < 0) | (start >= size)
            high[outside] = -np.inf
            continue
        ends = np.sort(np.stack([-start / along_part, (size - start) / along_part]), axis=0)
        low, high = np.maximum(low, ends[0]), np.minimum(high, ends[1])
    length = np.maximum(high - low, 0) / 2
    return first, np.where(length >= 10, covered / np.maximum(length, 1), 0.0)


def rule_fragments(
    mask: np.ndarray, rules: list, settings: SegmentSettings, extent: tuple[int, int] | None = None
) -> list[tuple[int, int, int, int]]:
    """Shorter straight pieces running exactly along the rules found (within 1.5 degrees) and at least half
    a rule long: the parts of a faint or shadowed grid line too broken to be found whole. A digit's stroke
    is rarely that long, that straight and that parallel to the paper's own lines."""
    h, w = mask.shape
    size = max(extent or (w, h))
    half = cv2.resize(mask, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    length = max(10, int(settings.rule_length * size) // 4)  # half a rule, half resolution
    # Angles half a degree apart, though it costs twice the time of whole degrees on a squared page: at
    # whole degrees, fewer fragments are found along the middle and the edges of a thick line seen close,
    # and more of it stays (of a squared page's 7-px lines, 6.5 % of the ink against 1.6 %).
    found = cv2.HoughLinesP(half, 1, np.pi / 360, threshold=length // 2, minLineLength=length, maxLineGap=2)
    if found is None:
        return []
    segments = found.reshape(-1, 4)[:1000].astype(np.float32) * 2
    rule_angles = np.array([np.arctan2(y1 - y0, x1 - x0) % np.pi for x0, y0, x1, y1 in rules])
    angles = np.arctan2(segments[:, 3] - segments[:, 1], segments[:, 2] - segments[:, 0]) % np.pi
    turn = np.abs(angles[:, None] - rule_angles[None, :])
    along = (np.minimum(turn, np.pi - turn) < np.radians(1.5)).any(axis=1)
    fragments = segments[along]
    # ...and thin, as a rule is: straight lines fit inside a bold digit's solid ink at any angle, and cut
    # out, a band of them splits it beyond what the bridging across a line restores.
    if len(fragments):
        fragments = fragments[_thickness(fragments, mask, size) <= RULE_THICKNESS * size]
    return [tuple(int(v) for v in seg) for seg in fragments]


def page_rules(
    mask: np.ndarray,
    settings: SegmentSettings,
    extent: tuple[int, int] | None = None,
    faint: np.ndarray | None = None,
) -> list[tuple[int, int, int, int]]:
    """The page's rules as lines across the frame: those :func:`find_rules` finds (in ``faint`` where
    given, see ``faint_ink``; else in the ink ``mask``), the evenly spaced ones between them and the
    fragments along them."""
    rules = find_rules(mask if faint is None else faint, settings, extent, lines_only=faint is not None)
    if not rules:
        return []
    rules += evenly_spaced_rules(mask, rules)
    rules += rule_fragments(mask, rules, settings, extent)
    return rules


def remove_rules(
    mask: np.ndarray,
    settings: SegmentSettings,
    extent: tuple[int, int] | None = None,
    strength: np.ndarray | None = None,
    faint: np.ndarray | None = None,
    rules: list[tuple[int, int, int, int]] | None = None,
) -> np.ndarray:
    """Take the rules (see :func:`page_rules`; ``rules`` where they were found already) out of a binary
    ink mask and bridge the strokes they crossed: a stroke that crossed the line continues on both sides
    of it, so a digit written over a line stays in one piece. The rules are looked for in ``faint`` where
    given (the ink under its threshold too, see ``faint_ink``: light printed lines are whole there), else
    in the mask itself.

    With the ink's ``strength``, what is written *along* a rule stays too: printed lines are fainter than
    a pen (a grid is printed light so that writing stands out), so on a rule, ink clearly stronger than
    the rule's own is writing (the bar of a 7 or a 5 on a grid line, which no bridge across the line
    would restore)."""
    if rules is None:
        rules = page_rules(mask, settings, extent, faint)
    if not rules:
        return mask
    band = np.zeros_like(mask)
    for x0, y0, x1, y1 in rules:
        cv2.line(band, (x0, y0), (x1, y1), 1, 3)  # thick lines give several parallel segments: all drawn
    band &= mask
    if strength is not None and band.any():
        band[written_on_rules(band, mask, strength)] = 0
    cleaned = mask & (1 - band)
    bridged = cv2.morphologyEx(
        cleaned, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (13, 13))
    )
    return cleaned | (bridged & band)


def written_on_rules(
    band: np.ndarray, mask: np.ndarray, strength: np.ndarray, window: int = 61
) -> np.ndarray:
    """The ink on the rules (``band``) that is writing, not the rule (bool).

    Writing is clearly stronger than the rule's own ink (1.5 times, and 0.15 more): the rule's level is
    its mean strength on the band within ``window`` px, so a shadowed or fainter stretch of a line sets
    its own. In that mean no px counts for more than writing would have to be on the band's typical
    stretch (its median): the writing along a rule (the flat top of a 3, the bar of a 7 or a 2, a row of
    them on one grid line) is no part of the rule's level, and uncapped it raised the level it had to
    beat until the strokes went with the rule (on 150 squared pages, 34 digits in 1,256). It must also
    join ink off the rules (the rest of the digit): a stretch of a line that is darker for a while (a
    thicker print, a crossing) touches no writing and stays a rule.
    """
    if not band.any():
        return np.zeros(band.shape, bool)
    typical = median(strength[band > 0])
    rule_ink = np.minimum(strength, max(1.5 * typical, typical + 0.15))
    on_band = band.astype(np.float32)
    level = cv2.blur(rule_ink * on_band, (window, window)) / np.maximum(
        cv2.blur(on_band, (window, window)), 1e-6
    )
    strong = (strength > np.maximum(1.5 * level, level + 0.15)) & (band > 0)
    off_rules = mask & (1 - band)
    return strong & reached_from(off_rules | strong, off_rules > 0)


def textured_surroundings(ink: InkImage, rules: np.ndarray) -> np.ndarray:
    """Texture around the page that a 64-px tile is too coarse to see: a strip of desk or wall between the
    page's edge and the frame's, inside a tile that is mostly page (bool, at the working size). ``rules``
    are the pixels of the rules found: a ruled or squared page is busy with lines, not texture.

    Texture is busy everywhere (its local spread stands well above the paper's noise) and it reaches the
    surroundings found tile by tile, or runs along the frame's edge; the paper around a digit is quiet,
    so a digit written on the page is never reached. Thin busy lines (rules, a digit's strokes) are
    opened away first, so nothing spreads along a ruled line into the digits it crosses.
    """
    # At half resolution, without the rules.
    signed = np.where(rules[::2, ::2] > 0, 0.0, ink.ink[::2, ::2])
    noise = ink.noise
    mean = cv2.blur(signed, (9, 9))
    spread = np.sqrt(np.maximum(cv2.blur(signed * signed, (9, 9)) - mean * mean, 0))
    # Bare paper's spread here is about 0.6 of its noise (the ink map is clipped at zero), so twice the
    # noise is over three times the paper's own: a faint stucco or a fine weave is busy too. The opening is
    # wider than the band a line leaves in a 9-px window, so neither a faint rule nor the page's own edge
    # carries the texture along it into the digits it meets.
    busy = (spread > max(0.03, 2.0 * noise)).astype(np.uint8)
    busy = cv2.morphologyEx(busy, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11)))
    h, w = ink.ink.shape
    if not busy.any():  # nothing busy once thin lines are opened away (a clean page): no texture
        return np.zeros((h, w), bool)
    seeds = ~ink.paper[::2, ::2]
    # Where the page's edge is known to a few pixels, texture outside it does not spread across it into
    # the digits written beside it (the spread's window would otherwise join the two).
    if ink.page_edge is not None:
        busy[ink.page_edge[: busy.shape[0], : busy.shape[1]]] = 0
    count, labels = cv2.connectedComponents(busy, connectivity=8, ltype=label_type(busy))
    reached = np.zeros(count, bool)
    reached[labels[seeds & (busy > 0)]] = True
    # Texture beside the page runs along much of one of the frame's sides (in pieces, where its grain was
    # taken for rules); a digit at the edge (cut off by it, or just touching it) meets it for a digit's
    # width only. What the tiles missed there is a strip narrower than a tile; a block of writing that runs
    # on beyond the frame's side (rows of boxes, filled in, whose busy halos join) reaches far into it.
    for inward in (labels, labels[::-1], labels.T, labels.T[::-1]):
        side = inward[0]
        if np.count_nonzero(side) >= 0.4 * len(side):
            for k in np.unique(side[side > 0]):
                if strip_along_the_side(inward, k):
                    reached[k] = True
    reached[0] = False
    if not reached.any():
        return np.zeros((h, w), bool)
    # The opening leaves small gaps in the texture where its grain is thin for a moment; a gap is no paper.
    texture = cv2.morphologyEx(np.take(reached.view(np.uint8), labels), cv2.MORPH_CLOSE, _DISC_5)
    return cv2.resize(texture, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


_DISC_5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
# How far into the frame (half-resolution px) a strip of texture beside the page reaches along half of it
# at least: the tiles (64 px at the working size, 32 here) find a wider one themselves, with some to spare.
STRIP_DEPTH = 48


# A block of writing is busy along its strokes and quiet for a few px between them (the paper inside a
# box's cell, between two rows): gaps up to this long (half-resolution px) down a column are part of it.
_QUIET_GAP = np.ones((15, 1), np.uint8)


def strip_along_the_side(inward: np.ndarray, label: int) -> bool:
    """Whether the component ``label`` of a label image, where it meets the image's first row, reaches no
    more than ``STRIP_DEPTH`` px down from it along half of that stretch at least (``inward``: the labels
    turned so that the frame's side in question is row 0), across quiet gaps of up to 15 px (``_QUIET_GAP``)
    down each column."""
    columns = np.flatnonzero(inward[0] == label)
    own = (inward[: STRIP_DEPTH + 1, columns] == label).view(np.uint8)
    depth = cv2.morphologyEx(own, cv2.MORPH_CLOSE, _QUIET_GAP).all(axis=0)
    return bool(np.count_nonzero(depth) <= 0.5 * len(columns))
