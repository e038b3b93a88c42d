"""A plain page: the short way to the ink and its pieces, for a sheet that fills the frame.

A camera held over a sheet of paper, the sheet filling the frame, lit smoothly, nothing printed on it:
the common case, and the one for which most of stages 3-5 are not needed. There is no surroundings to
tell from the paper, no texture beside the page, no rule, grid or shadow edge to take out of the ink and
no stretch of one to tell from a digit. ``plain_page`` recognises such a frame from a few cheap measures,
each of which a scene that needs those stages fails:

- the paper (the surface with the ink closed away, as for ``background_of``) changes by less than
  ``PAPER_STEP`` between points 8 px apart: a hard shadow's edge, the page's edge against a desk, chalk
  on a board and ink too broad to close away all make a step;
- its darkest part is at least ``paper_brightness`` of its brightest, as ``find_ink`` asks of paper;
- every tile along the frame's sides is bare paper: a desk, a wall or a sweater round the sheet is not;
- every piece of ink at least ``rule_length`` long is a digit kept, not a rule, a grid or a line glued
  to the digits it crosses; and in faint ink (``FAINT`` of the threshold), where a light printed grid or
  ruling is nearly whole, nothing that long lies away from the writing (``faint_lines``);
- at most ``PLAIN_PIECES`` pieces of ink at least half a small digit tall (more is clutter), and no
  candidate against the frame's side (a digit the frame cuts, or something coming into view).

Where one fails, ``plain_page`` says None and the frame takes the full stages. Where all hold, the ink is
measured as ``find_ink`` measures it (the same background, a threshold above the noise of each tile of
the paper, capped at ``heavy_ink`` where a tile is inked over), traced down to 0.75 of it as
``ink_mask`` does, and its pieces are merged and kept by the same ``merge_pieces`` and ``keep_digits``.
On a plain page it reads as the full stages do but for choices on a knife's edge (a crop a grey level
lighter here and there), in a third of their time (half, counting the cuts the pipeline asks for; the
README has the comparison).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from device.segment.boxes import box_sides, framed
from device.segment.data import KeptPieces, Piece, SegmentSettings, WorkImage
from device.segment.paper import paper_level, paper_step
from device.segment.pieces import against_the_frame, find_pieces, keep_digits, merge_pieces, typical_height
from device.segment.stats import percentile, percentiles

# The most the paper's brightness changes between points 8 px apart, as a share of the brighter: soft
# shading (a lamp's fall-off, a hand's blurred shadow) changes it by up to about a tenth there; the edge
# of a hard shadow, of the page, or of a chalk stroke on a board by a quarter or more.
PAPER_STEP = 0.2
# More pieces of ink than this, each at least half a small digit tall, is clutter, not a page of writing.
PLAIN_PIECES = 60
# Tiles of 64 px, as find_ink's, measured on every 4th pixel (256 samples a tile; find_ink's every other
# pixel read the same on the benchmark and cost a third of the short way's time more).
SAMPLE = 4
TILE = 16
# Faint ink, looked at for printed lines: this share of the threshold. A light grid or ruling that passes
# 0.75 of it (the traced ink) somewhere leaves stubs and crossings on the digits; one under 0.6 of it
# seldom does (the noise would have to add a quarter). Lower, the paper's own blotchy texture joins into
# long pieces: at 0.5 on 169 of 300 camera-like frames, at 0.6 on 18.
FAINT = 0.6
ROUND_3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))


@dataclass(frozen=True)
class PlainInk:
    """A plain page's ink in grey levels (uint8: cheap to compare), turned into the relative strength
    ``find_ink`` measures only in the boxes that are looked at: a plain page is mostly paper."""

    depth: np.ndarray  # uint8: how much darker than the paper each pixel is (0 where brighter)
    level: np.ndarray  # uint8: the paper's brightness, at least 24 (as find_ink divides by)
    tile_thresholds: np.ndarray  # float32, a tile each: the threshold in grey levels
    threshold: np.ndarray  # uint8: the threshold in grey levels at each pixel
    paper: np.ndarray  # bool: all of the frame
    noise: float

    def passing(self, share: float) -> np.ndarray:
        """Where the ink passes ``share`` of its threshold (uint8 0/255). The depth is a whole number of grey
        levels, so it passes x where it passes x rounded down."""
        if share == 1.0:  # the threshold itself, scaled to the frame already
            return cv2.compare(self.depth, self.threshold, cv2.CMP_GT)
        h, w = self.depth.shape
        at = np.clip(np.floor(share * self.tile_thresholds), 0, 255).astype(np.uint8)
        return cv2.compare(self.depth, cv2.resize(at, (w, h), interpolation=cv2.INTER_LINEAR), cv2.CMP_GT)

    def strength(self, rows: slice, cols: slice) -> np.ndarray:
        return cv2.divide(self.depth[rows, cols], self.level[rows, cols], dtype=cv2.CV_32F)

    def threshold_in(self, rows: slice, cols: slice) -> np.ndarray:
        return cv2.divide(self.threshold[rows, cols], self.level[rows, cols], dtype=cv2.CV_32F)


def plain_page(work: WorkImage, settings: SegmentSettings) -> KeptPieces | None:
    """The digit candidates of a plain page, with its ink and label image; None when the frame is no
    plain page (see the module's text)."""
    ink = plain_ink(work, settings)
    if ink is None:
        return None
    # Traced down to 0.75 of the threshold, closed over a px, and only where it passes the threshold
    # somewhere, as ``ink_mask`` does (a stroke's blurred edge stays whole, the paper's noise stays out).
    traced = cv2.morphologyEx(ink.passing(0.75), cv2.MORPH_CLOSE, ROUND_3)
    h, w = traced.shape
    min_h = max(8.0, settings.min_height * min(h, w))
    found = find_pieces(traced, settings, min_extent=0.5 * min_h)
    if found.cut_short or len(found.pieces) > PLAIN_PIECES:
        return None
    passing = ink.passing(1.0)
    pieces = [p for p in found.pieces if passes_somewhere(p, passing, found.labels)]
    pieces = merge_pieces(pieces, typical_height(pieces, min_h))
    kept = keep_digits(pieces, ink, settings)
    # A form's printed boxes round the digits (a box, framed; boxes in a row or a table, wider than a digit)
    # are taken out in the full stages.
    boxed = [p for p in kept if p.w > settings.max_aspect * p.h or framed(p, found.labels)]
    if box_sides(boxed, found.labels, min_h):
        return None
    if any(against_the_frame(p, (h, w)) for p in kept):
        return None
    # A long piece of ink that is no digit kept (a rule, a grid, a line glued to the digits it crosses), or
    # long faint ink away from the writing (a light grid or ruling), needs the full stages.
    longest = settings.rule_length * max(h, w)
    kept_ids = {id(p) for p in kept}
    if any(max(p.w, p.h) >= longest and id(p) not in kept_ids for p in pieces):
        return None
    if faint_lines(ink, kept, settings):
        return None
    return KeptPieces(kept, ink, found.labels)


def passes_somewhere(piece: Piece, passing: np.ndarray, labels: np.ndarray) -> bool:
    """Whether any pixel of the piece passes the threshold (``passing``: uint8, 0 or 255). Looked at in the
    piece's own box: a page holds a few dozen pieces, a small part of the frame."""
    rows, cols = slice(piece.y, piece.y + piece.h), slice(piece.x, piece.x + piece.w)
    return bool(passing[rows, cols][piece.pixels_in(labels[rows, cols])].any())


def plain_ink(work: WorkImage, settings: SegmentSettings) -> PlainInk | None:
    """The ink of a page whose paper fills the frame smoothly lit and bare to its sides, measured as
    ``find_ink`` measures it; None for any other frame."""
    source = work.ink_source
    h, w = source.shape
    paper, closed, _disc = paper_level(work)
    if paper_step(closed) > PAPER_STEP:
        return None
    if paper.min() < settings.paper_brightness * percentile(paper[::4, ::4], 95):
        return None
    # Relative depth below the paper, as find_ink's (its "signed" ink, not clipped: the noise is measured
    # on both sides of the paper's level).
    level = cv2.max(paper, 24)
    sampled_level = level[::SAMPLE, ::SAMPLE].astype(np.float32)
    sampled = (sampled_level - source[::SAMPLE, ::SAMPLE]) / sampled_level
    tiles_y, tiles_x = max(1, sampled.shape[0] // TILE), max(1, sampled.shape[1] // TILE)
    th, tw = sampled.shape[0] // tiles_y, sampled.shape[1] // tiles_x
    tiles = sampled[: tiles_y * th, : tiles_x * tw].reshape(tiles_y, th, tiles_x, tw).swapaxes(1, 2)
    p10, p50 = np.moveaxis(percentiles(tiles.reshape(tiles_y, tiles_x, -1), (10, 50), axis=2), -1, 0)
    bare = p50 < 0.1
    rim = np.ones(bare.shape, bool)
    rim[1:-1, 1:-1] = False
    if (rim & ~bare).any():
        return None
    sigma = (p50 - p10) / 1.2816
    # Every tile counts for the noise, as in find_ink, which takes a page's inked tiles that the paper
    # encloses for paper.
    noise = percentile(sigma, 25)
    floor = max(settings.min_contrast, 5.0 * noise)
    # A tile inked over (by a large, thick digit) has a spread that is no noise: its threshold is capped
    # at heavy_ink, as find_ink caps such a tile's.
    tile_thresholds = np.maximum(floor, 5.0 * sigma)
    capped = np.minimum(tile_thresholds, max(floor, settings.heavy_ink))
    tile_thresholds = np.where(bare, tile_thresholds, capped)
    # In grey levels: times the paper's level over each tile.
    tile_level = (
        sampled_level[: tiles_y * th, : tiles_x * tw].reshape(tiles_y, th, tiles_x, tw).mean(axis=(1, 3))
    )
    grey = (tile_thresholds * tile_level).astype(np.float32)
    threshold = cv2.resize(
        np.clip(np.floor(grey), 0, 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_LINEAR
    )
    return PlainInk(cv2.subtract(paper, source), level, grey, threshold, np.ones((h, w), bool), noise)


def faint_lines(ink: PlainInk, kept: list[Piece], settings: SegmentSettings) -> bool:
    """Whether faint ink (``FAINT`` of the threshold) outside the candidates' boxes holds a piece at least
    ``rule_length`` long: a light printed grid or ruling, or a shadow's soft rim. Looked for in cells of
    4x4 px holding two px of it or more (a 1 px line crossing a cell inks 4 of its 16, half of them when
    the noise breaks it up; the paper's noise, at 3 sigma, a px in 700): that bridges the gaps the noise
    breaks a faint line into, and leaves the noise scattered."""
    faint = ink.passing(FAINT)
    for p in kept:  # the writing and its halo
        faint[max(0, p.y - 3) : p.y + p.h + 3, max(0, p.x - 3) : p.x + p.w + 3] = 0
    h, w = faint.shape
    cells = cv2.resize(faint, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    lined = cv2.compare(cells, 255 * 2 // 16 - 1, cv2.CMP_GT)
    _count, _labels, stats, _ = cv2.connectedComponentsWithStats(lined, connectivity=8, ltype=cv2.CV_16U)
    extent = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT])
    return bool((extent >= settings.rule_length * max(lined.shape)).any())
