"""On demand, beside stage 7: two candidates one above the other, read joined as one digit broken across
its middle, for candidates the model is unsure of or calls no digit.

A thin stroke that fades for a few px (a pencil, a ballpoint running dry) or that a rule taken out crossed
where it was too faint to be bridged again breaks a digit in two: a 3 into its two arcs, an 8 into its two
loops, a 5 into its flag and its belly. Each half reads as no digit, and the digit is lost. The splits
(``splits``) are the other way round: a candidate cut into digits the model reads more surely than the whole.
Here two candidates that stand one above the other (``broken_in_two``: overlapping side to side by half the
narrower, the lower starting below the upper's middle and at most ``GAP`` of the taller's height below its
end, and ending below the upper's end; together no wider than a digit) are offered joined (``joined``), each
as it was first measured, and the pipeline reads the joined candidate and keeps it where the model is sure of
it: two halves of texture, of a rule or an operator ("=") read joined as no digit, or as an unsure one.
"""

from __future__ import annotations

import itertools

import numpy as np

from device.reading import Box
from device.segment.data import Segment, Surroundings

# The most the lower candidate starts below the upper's end, of the taller's height: a stroke faded for
# a few px, not a line of writing below.
GAP = 0.25
# At most this many candidates are looked at in pairs (the tallest): the cost stays bounded on a frame of
# clutter, where most candidates are no digit.
MOST = 24


def broken_in_two(segments: list[Segment], max_aspect: float) -> list[tuple[Segment, Segment]]:
    """The pairs of ``segments`` that may be one digit broken across its middle (see the module's text):
    the upper first, each pair once."""
    tallest = sorted(segments, key=lambda s: s.box.h, reverse=True)[:MOST]
    pairs = []
    for a, b in itertools.combinations(tallest, 2):
        upper, lower = (a, b) if a.box.y <= b.box.y else (b, a)
        u, v = upper.box, lower.box
        overlap = min(u.x + u.w, v.x + v.w) - max(u.x, v.x)
        gap = v.y - (u.y + u.h)
        union = _union(u, v)
        if (
            overlap >= 0.5 * min(u.w, v.w)
            and v.y >= u.y + u.h / 2
            and v.y + v.h > u.y + u.h  # not a mark inside the upper's lower half
            and gap <= GAP * max(u.h, v.h)
            and union.w <= max_aspect * union.h
        ):
            pairs.append((upper, lower))
    return pairs


def joined(upper: Segment, lower: Segment) -> Segment | None:
    """The two candidates as one: their ink crops laid in one crop where they lie in the working image, its
    box the box round both. None where either has no ``surroundings`` (no place in the working image)."""
    a, b = upper.surroundings, lower.surroundings
    if a is None or b is None or a.work is not b.work:
        return None
    (ax, ay), (bx, by) = a.origin, b.origin
    x0, y0 = min(ax, bx), min(ay, by)
    x1 = max(ax + upper.ink.shape[1], bx + lower.ink.shape[1])
    y1 = max(ay + upper.ink.shape[0], by + lower.ink.shape[0])
    crop = np.zeros((y1 - y0, x1 - x0), np.uint8)
    for (x, y), ink in (((ax, ay), upper.ink), ((bx, by), lower.ink)):
        place = crop[y - y0 : y - y0 + ink.shape[0], x - x0 : x - x0 + ink.shape[1]]
        np.maximum(place, ink, out=place)
    return Segment(_union(upper.box, lower.box), crop, None, Surroundings(a.work, a.dark, (x0, y0)))


def _union(a: Box, b: Box) -> Box:
    x0, y0 = min(a.x, b.x), min(a.y, b.y)
    return Box(x0, y0, max(a.x + a.w, b.x + b.w) - x0, max(a.y + a.h, b.y + b.h) - y0, a.line)
