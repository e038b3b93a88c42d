"""Frame -> digit candidates in reading order, each with its ink crop ready for normalization.

The stages, each a function on numpy arrays:

1. ``prepare``: validate the frame, bring it to the working size (reduced to ``work_size``; a frame
   smaller than 640 px enlarged to it, the size the stages' px are set for: ``working_scale``); the ink
   channel is the darkest colour channel (coloured pens are dark in at least one channel, paper is bright
   in all).
2. ``find_polarity``: dark ink on paper unless thin bright strokes clearly dominate (chalk on a board).
3. ``find_ink``: ink strength against the local paper brightness, where the paper is (bright and smooth:
   desks, walls, sweaters and the frame's black bars are not paper; near the page's edge it is found to
   the pixel), and a threshold above the noise of each region of the paper, so a textured area raises only
   its own threshold.
4. ``remove_rules``: long straight strokes (ruled and grid lines, printed boxes, paper and shadow edges;
   found whole, in pieces, or where evenly spaced lines should be; looked for in the ink at half its
   threshold, where a light printed grid is whole) are taken out of the ink mask, and the strokes they
   crossed are bridged again; writing along a rule stays. The printed boxes of a form (``box_sides``: cells of
   paper framed by straight, thin sides) are taken out too, and what is written in them found again on its
   own; so is a side a digit presses on, in a row whose top and bottom were taken as rules
   (``sides_pressed_on``). ``textured_surroundings`` then takes from the paper what a tile is too coarse to
   see: texture beside the page's edge.
5. ``find_pieces`` -> ``merge_pieces`` -> ``keep_digits``: connected components (a bounded number), the
   pieces of one digit merged (a 5's flag, a 4 in two strokes), then filters: fill, edge sharpness (pen
   strokes have sharp edges, shadows do not); a stretch of a longer line or edge, a mark pressed along
   the frame's side and the rim of a hard shadow are no digits (a stretch of a rule is looked for along
   its own axis and along the page's rules where it lies); and last, relative to the candidates left:
   height and contrast. A piece amid what is no paper (its centre, or half the ring round it: grain left
   between the texture found beside the page) is no digit, unless it stands in a line of the digits kept
   (``in_line_with``: a digit written a few px from the page's edge, which that texture took in), or in a
   line of its own where a page's next line stands (``grow_the_lines``: a whole line written from that
   edge). Last,
   beside the first and the last digit of each line, where the paper found ends, the ink is looked at
   again against that digit's own (``beyond_the_line_ends``): a line written from the page's very edge
   loses its first digit to the threshold or the shade there.
6. ``reading_order``: where the candidates' heights fall clearly into rows (loosely written rows whose
   digits wander up and down), the rows; otherwise each candidate is chained to its neighbour in the
   writing direction (tolerant of slanted and curved lines), and the chains are read top to bottom.
7. ``split_readings``, on demand: a candidate wider than one digit may be touching digits, one as tall as
   two lines one digit above another. Each candidate carries what its cuts are made from (``Cuttable``);
   the pipeline asks for the cuts of those the model is unsure of whole (``propose_splits``: at the valleys
   of its ink profile and at even spacing, straight and curved round overlapping strokes;
   ``propose_stacked``, for a candidate as tall as two lines or with a neck, where its ink all but vanishes
   across its middle (``has_a_neck``): that one even when the model reads it whole, though not surely;
   ``propose_pen_strokes``, for digits joined by fainter printed lines, a form's boxes round them: the
   pen's ink alone), and the classifier decides which reading is more confident.

A plain page (a sheet filling the frame, smoothly lit, nothing printed on it: ``plain``) takes a short
way from 1 to 6: the ink measured as in 3 without looking for the paper's edge or texture, no rules to
remove, the pieces found, merged and kept as in 5 without the line and edge checks. Cheap measures tell
such a page, and any frame that fails one takes the stages in full (``plain_page``, ``scene_pieces``).

Pure functions; no state. The cost is bounded on any frame: a capped number of pieces, no pairwise loop
over all of them. A frame whose clutter passes the cap is cut short, and says so (``segment_frame``), so the
service counts it.

The modules: ``data`` (the settings and the records the stages pass), ``paper`` (stages 1-3), ``rules``
and ``boxes`` (4), ``pieces`` (5, with the filters that tell a digit from a stretch of a line or an
edge), ``line_ends`` (the end of 5), ``order`` (6), ``splits`` (7), ``local_paper`` and ``sides`` (beside
7: a candidate the model is unsure of, its ink measured again against the paper round it, or without the
printed lines along its sides), ``joins`` (beside 7: two candidates the model is unsure of, one above the
other, joined as one digit broken across its middle) and ``plain`` (the short way); this module runs
stages 1-6 in turn and re-exports every step.
"""

from __future__ import annotations

from dataclasses import replace

from device.reading import Box
from device.segment.boxes import box_sides, side_between_rules, sides_pressed_on, without_boxes
from device.segment.data import (
    CROP_PAD,
    Cuttable,
    FoundPieces,
    InkImage,
    KeptPieces,
    Piece,
    Segment,
    Segmentation,
    SegmentSettings,
    Surroundings,
    WorkImage,
)
from device.segment.joins import broken_in_two, joined
from device.segment.line_ends import beyond_the_line_ends
from device.segment.local_paper import ink_against_the_paper_round_it, lag_of_the_background
from device.segment.order import reading_order
from device.segment.paper import (
    background_of,
    bays_of_the_page,
    dark_ink,
    faint_ink,
    find_ink,
    find_polarity,
    ink_map,
    ink_mask,
    ink_surface,
    paper_level,
    paper_to_the_edge,
    prepare,
    to_grey,
    working_scale,
    writing_at_the_frame_side,
)
from device.segment.pieces import (
    SURROUNDED_BY_PAPER,
    along_the_frame_side,
    centre_on,
    edge_sharpness,
    fill,
    find_pieces,
    grow_the_lines,
    in_line_with,
    inside_a_dark_area,
    keep_digits,
    merge_pieces,
    nearest_rule_directions,
    paper_around,
    part_of_a_longer_line,
    typical_height,
)
from device.segment.plain import plain_ink, plain_page
from device.segment.rules import (
    evenly_spaced_rules,
    find_rules,
    page_rules,
    paper_extent,
    remove_rules,
    rule_fragments,
    textured_surroundings,
    written_on_rules,
)
from device.segment.sides import without_straight_sides
from device.segment.splits import (
    MAX_SPLIT_PARTS,
    crop_ink,
    has_a_neck,
    printed_line,
    propose_pen_strokes,
    propose_splits,
    propose_stacked,
    seams,
    split_columns,
    split_readings,
    valley_columns,
)
from device.segment.stats import median, percentile, percentiles, robust_sigma

__all__ = [
    "MAX_SPLIT_PARTS",
    "Cuttable",
    "FoundPieces",
    "InkImage",
    "KeptPieces",
    "Piece",
    "Segment",
    "SegmentSettings",
    "Segmentation",
    "Surroundings",
    "WorkImage",
    "along_the_frame_side",
    "background_of",
    "bays_of_the_page",
    "beyond_the_line_ends",
    "box_sides",
    "broken_in_two",
    "candidates_in_order",
    "centre_on",
    "crop_ink",
    "dark_ink",
    "edge_sharpness",
    "evenly_spaced_rules",
    "faint_ink",
    "fill",
    "find_ink",
    "find_pieces",
    "find_polarity",
    "find_rules",
    "grow_the_lines",
    "has_a_neck",
    "in_line_with",
    "ink_against_the_paper_round_it",
    "ink_map",
    "ink_mask",
    "ink_surface",
    "inside_a_dark_area",
    "joined",
    "keep_digits",
    "lag_of_the_background",
    "median",
    "merge_pieces",
    "page_rules",
    "paper_around",
    "paper_extent",
    "paper_level",
    "paper_to_the_edge",
    "part_of_a_longer_line",
    "percentile",
    "percentiles",
    "plain_ink",
    "plain_page",
    "prepare",
    "printed_line",
    "propose_pen_strokes",
    "propose_splits",
    "propose_stacked",
    "reading_order",
    "remove_rules",
    "robust_sigma",
    "rule_fragments",
    "scene_pieces",
    "seams",
    "segment",
    "segment_frame",
    "side_between_rules",
    "sides_pressed_on",
    "split_columns",
    "split_readings",
    "textured_surroundings",
    "to_grey",
    "typical_height",
    "valley_columns",
    "without_boxes",
    "without_straight_sides",
    "working_scale",
    "writing_at_the_frame_side",
    "written_on_rules",
]


# How much taller than the writing's median a candidate is before it may be two digits stacked: a single
# digit is rarely that much taller than the others (height varies by about a fifth within handwriting).
STACKED = 1.4


def segment(frame, settings: SegmentSettings = SegmentSettings()) -> list[Segment]:
    """Find the digit candidates in a frame, in reading order, with their ink crops (white on black)."""
    return segment_frame(frame, settings).segments


def segment_frame(frame, settings: SegmentSettings = SegmentSettings()) -> Segmentation:
    """:func:`segment`, and whether the frame was cut short (more pieces of ink than the cap).

    A plain page (a sheet filling the frame, smoothly lit, nothing printed on it) takes the short way
    (:func:`plain_page`), any other frame stages 3-5 in full (:func:`scene_pieces`)."""
    work = prepare(frame, settings)
    kept = None
    if settings.plain_pages and settings.polarity != "light":
        kept = plain_page(work, settings)
    if kept is None:
        kept = scene_pieces(work, settings)
    return Segmentation(candidates_in_order(kept, work), kept.cut_short)


def scene_pieces(work: WorkImage, settings: SegmentSettings) -> KeptPieces:
    """Stages 2-5 in full: polarity, the paper and its ink, rules taken out, pieces found, merged and
    kept (a digit, not a stretch of a line, an edge or the surroundings)."""
    dark = find_polarity(work, settings)
    ink = find_ink(work, dark, settings)
    inked = ink_mask(ink)
    lines = page_rules(inked, settings, paper_extent(ink.paper), faint_ink(ink))
    mask = remove_rules(inked, settings, strength=ink.ink, rules=lines)
    h, w = mask.shape
    min_h = max(8.0, settings.min_height * min(h, w))
    pieces, labels, cut_short = find_pieces(mask, settings)
    # Rules in one direction only (a ruled page, or the long rows of a form's boxes), not a squared page's
    # grid, whose squares are no boxes.
    one_family = bool(lines) and len(nearest_rule_directions(lines, w / 2, h / 2)) == 1
    # The printed boxes of a form: their sides out, as the rules are, and what is written in them found
    # again on its own.
    sides = box_sides(pieces, labels, min_h, removed=(inked & ~mask) if one_family else None)
    if lines:
        sides += sides_pressed_on(pieces, ink.ink, labels, inked & ~mask, min_h)
    if sides:
        mask = without_boxes(mask, sides)
        pieces, labels, cut_short = find_pieces(mask, settings)
    rules = inked & ~mask
    on_the_page = ink
    ink = replace(ink, paper=ink.paper & ~textured_surroundings(ink, rules))
    if not pieces:
        return KeptPieces([], ink, labels, cut_short, dark)
    # A piece as tall or as wide as the frame (the rim of a desk round a sheet that nearly fills it) is no
    # digit; left in, it would set the typical height and swallow every digit it surrounds when merged.
    pieces = [p for p in pieces if p.h <= settings.max_height * h and p.w <= settings.max_height * w]
    pieces = merge_pieces(pieces, typical_height(pieces, min_h))

    def no_digit(piece: Piece) -> bool:
        """A stretch of a line, the edge of something the frame cuts off, the rim of a dark area, a side of
        a row of boxes whose top and bottom were taken for rules, the background lagging behind a step of
        the light."""
        return (
            part_of_a_longer_line(piece, ink, labels, lines)
            or along_the_frame_side(piece, labels)
            or inside_a_dark_area(piece, ink, labels, rules)
            # On any page: it looks only at the rules at the piece's two ends, which a second family (a
            # margin, a table's column, rows of boxes printed at other slants) leaves as they are.
            or side_between_rules(piece, ink.ink, labels, rules)
            or (dark and lag_of_the_background(piece, ink, labels, work, min_h))
        )

    def in_the_surroundings(piece: Piece) -> bool:
        """Amid what is no paper: its centre, or half of the ring round it (a desk's grain in a gap of the
        texture found beside the page; a digit is written on paper, which surrounds most of it)."""
        return not centre_on(ink.paper, piece) or paper_around(piece, ink.paper, labels) < SURROUNDED_BY_PAPER

    kept = keep_digits(pieces, ink, settings, inked, lambda p: no_digit(p) or in_the_surroundings(p))
    # The texture found beside the page's edge takes the paper a few px into the page, and with it a digit
    # written that close to the edge. Such a piece still counts where it stands in a line of the digits
    # kept (or of those it brings back, one by one): texture beside a page is not level with the writing
    # and as tall as its digits.
    reached = [p for p in pieces if centre_on(on_the_page.paper, p) and in_the_surroundings(p)]
    if kept and reached:
        checked = {id(p) for p in kept}  # the digits kept passed the line and edge checks already
        also = keep_digits(
            reached + kept, on_the_page, settings, inked, lambda p: id(p) not in checked and no_digit(p)
        )
        kept = grow_the_lines(kept, [p for p in also if id(p) not in checked], labels.shape)
    if kept and not on_the_page.paper.all():
        # Where a line meets the page's edge, its first or last digit (see ``beyond_the_line_ends``),
        # checked as every candidate is: sharp-edged, no stretch of a line, no edge, no rim.
        min_edge = max(settings.min_edge, settings.min_edge_snr * on_the_page.noise)
        for end in beyond_the_line_ends(kept, on_the_page, labels, settings):
            piece = end.piece
            piece.edge = edge_sharpness(
                on_the_page.ink[piece.y : piece.y + piece.h, piece.x : piece.x + piece.w]
            )
            if piece.edge >= min_edge and not no_digit(piece):
                kept = [p for p in kept if id(p) not in end.takes] + [piece]
    return KeptPieces(kept, ink, labels, cut_short, dark)


def candidates_in_order(kept: KeptPieces, work: WorkImage) -> list[Segment]:
    """The pieces kept as candidates in reading order, each with its ink crop and what its cuts are made
    from.

    A candidate 1.4 times as tall as the writing (``STACKED``), no wider than a digit: maybe two digits one
    above the other (two lines written close, the second maybe smaller; on a slant or a curve, the two
    side by side a little too). Only offered: the model decides."""
    heights = [piece.h for piece in kept.pieces if piece.h >= 0.5 * piece.w]
    typical_h = median(heights) if heights else 0.0
    by_box: dict[Box, Segment] = {}
    for piece in kept.pieces:
        crop = crop_ink(piece, kept.ink, kept.labels)
        box = work.to_frame(piece.x, piece.y, piece.w, piece.h)
        # Crops carry their padding; cuts are made in the piece's own columns.
        pad_x, pad_y = piece.x - max(0, piece.x - CROP_PAD), piece.y - max(0, piece.y - CROP_PAD)
        core = crop[pad_y : pad_y + piece.h, pad_x : pad_x + piece.w]
        place = (piece.x, piece.y, piece.w, piece.h)
        tall = len(heights) >= 3 and piece.h >= STACKED * typical_h and piece.w <= 1.3 * typical_h
        necked = 0.25 * piece.h <= piece.w <= 1.25 * piece.h and has_a_neck(core)
        cuttable = None
        if piece.w >= 0.5 * piece.h or tall or necked:
            cuttable = Cuttable(core, place, work, stacked=tall, necked=necked)
        around = Surroundings(work, kept.dark, (piece.x - pad_x, piece.y - pad_y))
        by_box[box] = Segment(box, crop, cuttable, around)
    ordered = reading_order(list(by_box))
    return [replace(by_box[Box(b.x, b.y, b.w, b.h)], box=b) for b in ordered]
