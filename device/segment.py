"""Frame -> digit candidates in reading order, each with its ink crop ready for normalization.

The stages, each a function on numpy arrays:

1. ``prepare``: validate the frame, reduce it to the working size; the ink channel is the darkest colour
   channel (coloured pens are dark in at least one channel, paper is bright in all).
2. ``find_polarity``: dark ink on paper unless thin bright strokes clearly dominate (chalk on a board).
3. ``find_ink``: ink strength against the local paper brightness, where the paper is (bright and smooth:
   desks, walls, sweaters and the frame's black bars are not paper), and a threshold above the noise of
   each region of the paper, so a textured area raises only its own threshold.
4. ``remove_rules``: long straight strokes (ruled and grid lines, printed boxes, paper and shadow edges)
   are taken out of the ink mask, and the strokes they crossed are bridged again. ``textured_surroundings``
   then takes from the paper what a tile is too coarse to see: texture beside the page's edge.
5. ``find_pieces`` -> ``merge_pieces`` -> ``keep_digits``: connected components (a bounded number), the
   pieces of one digit merged (a 5's flag, a 4 in two strokes), then filters relative to the other
   candidates: height, contrast, fill, edge sharpness (pen strokes have sharp edges, shadows do not).
6. ``propose_splits``: a candidate wider than one digit may be touching digits; cuts at the valleys of its
   ink profile are offered as alternatives, and the classifier decides which reading is more confident.
7. ``reading_order``: each candidate is chained to its neighbour in the writing direction (tolerant of
   slanted and curved lines and scattered layouts), chains are read top to bottom.

Pure functions; no state. The cost is bounded on any frame: a capped number of pieces, no pairwise loop
over all of them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from device.errors import FrameError
from device.reading import Box


@dataclass(frozen=True)
class SegmentSettings:
    """Tuning of the segmentation; sizes are fractions of the frame unless they say px."""

    polarity: str = "auto"  # "auto", "dark" (ink on paper) or "light" (chalk on a board)
    work_size: int = 800  # longer side the frame is reduced to before segmenting (px)
    heavy_ink: float = 0.5  # the highest threshold of a tile that is paper only through its neighbours
    min_contrast: float = 0.08  # ink must be this much darker (relative) than the paper around it
    min_height: float = 0.02  # digit height, fraction of the frame's shorter side
    max_height: float = 0.98
    max_aspect: float = 1.5  # width / height of one digit; wider candidates are offered as split digits
    max_split_aspect: float = 5.0  # wider than this is not a group of digits (a line, an edge)
    max_fill: float = 0.88  # ink pixels / box area, for boxes wider than a "1"
    relative_height: float = 0.4  # a digit is at least this fraction of the typical digit height
    relative_contrast: float = 0.3  # ...and at least this fraction as dark as the darkest digit
    min_edge: float = 0.035  # strokes have sharp edges: ink contrast change per px (smooth blotches don't)
    min_edge_snr: float = 2.5  # ...and those edges stand well above the frame's noise
    paper_brightness: float = 0.4  # paper is at least this fraction as bright as the brightest paper
    edge_brightness: float = 0.85  # near the page's edge, paper is this bright against the paper beside it
    rule_length: float = 0.2  # a straight stroke this long (fraction of the longer side) is a rule
    max_pieces: int = 200  # components considered per frame (the largest), bounding the cost
    max_candidates: int = 200  # digit candidates measured per frame (the largest): a dense page's worth
    roi: tuple[float, float, float, float] | None = None  # x, y, w, h as fractions of the frame


@dataclass(frozen=True)
class Segment:
    """One candidate: its box (frame px, with its line number), its ink crop (uint8, white on black), and
    ``splits``: other ways to read it as several touching digits, each a tuple of segments."""

    box: Box
    ink: np.ndarray
    splits: tuple[tuple[Segment, ...], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class WorkImage:
    """The frame reduced to the working size, and how to map back to frame pixels."""

    grey: np.ndarray  # uint8, blurred a little
    ink_source: np.ndarray  # uint8: grey, or the darkest colour channel for dark ink
    scale: float
    offset: tuple[int, int]

    def to_frame(self, x: int, y: int, w: int, h: int, line: int = 0) -> Box:
        return Box(
            round(x / self.scale) + self.offset[0],
            round(y / self.scale) + self.offset[1],
            max(1, round(w / self.scale)),
            max(1, round(h / self.scale)),
            line,
        )


@dataclass(frozen=True)
class InkImage:
    """Ink strength in [0, 1], where the paper is, and the threshold above the noise at each pixel."""

    ink: np.ndarray  # float32
    paper: np.ndarray  # bool
    threshold: np.ndarray  # float32, per pixel
    noise: float  # robust sigma of the ink on the paper
    # Half resolution: where the page's edge is a step down to darker surroundings (texture beyond it does
    # not reach across); None where the paper was not found to the pixel.
    page_edge: np.ndarray | None = None


@dataclass
class Piece:
    """A group of connected components that may be one digit (working-image px)."""

    x: int
    y: int
    w: int
    h: int
    labels: frozenset[int]
    area: int
    peak: float = 0.0
    edge: float = 0.0

    def is_stroke_line(self, typical_h: float) -> bool:
        """Flat and wider than a digit: an underline, an edge or a rule, not part of one digit (a 5's
        flag is flat too, but no wider than a digit)."""
        return self.w > 2.5 * self.h and self.w > 1.5 * typical_h

    def union(self, other: Piece) -> Piece:
        x0, y0 = min(self.x, other.x), min(self.y, other.y)
        x1, y1 = max(self.x + self.w, other.x + other.w), max(self.y + self.h, other.y + other.h)
        return Piece(x0, y0, x1 - x0, y1 - y0, self.labels | other.labels, self.area + other.area)


# --- 1. the frame ----------------------------------------------------------------------------------------


def to_grey(frame) -> np.ndarray:
    """Validate a frame and return it as 2-D uint8 grey; raise FrameError for anything unusable."""
    return _as_uint8(frame, grey=True)


def _as_uint8(frame, grey: bool) -> np.ndarray:
    """Validate a frame; return uint8 grey (``grey``) or uint8 with its channels (1 or 3)."""
    if frame is None:
        raise FrameError("frame is None")
    frame = np.asarray(frame)
    if frame.size == 0 or frame.ndim not in (2, 3):
        raise FrameError(f"frame has shape {frame.shape}, expected (H, W) or (H, W, 3|4)")
    if frame.shape[0] < 16 or frame.shape[1] < 16:
        raise FrameError(f"frame of {frame.shape[1]}x{frame.shape[0]} px is too small (16x16 at least)")
    if max(frame.shape[:2]) > 64 * min(frame.shape[:2]):
        raise FrameError(f"frame of {frame.shape[1]}x{frame.shape[0]} px: sides differ more than 64x")
    if frame.dtype != np.uint8:
        if frame.dtype == np.uint16:
            frame = (frame >> 8).astype(np.uint8)
        elif np.issubdtype(frame.dtype, np.floating) and np.isfinite(frame).all() and frame.max() <= 1.0:
            frame = (np.clip(frame, 0, 1) * 255).astype(np.uint8)
        else:
            raise FrameError(f"frame dtype {frame.dtype} is not supported (uint8, uint16 or float in [0, 1])")
    if frame.ndim == 3:
        channels = frame.shape[2]
        if channels == 1:
            return np.ascontiguousarray(frame[:, :, 0])
        if channels not in (3, 4):
            raise FrameError(f"frame has {channels} channels, expected 1, 3 or 4")
        if grey:
            return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if channels == 3 else cv2.COLOR_BGRA2GRAY)
        return np.ascontiguousarray(frame[:, :, :3])
    return frame


def prepare(frame, settings: SegmentSettings) -> WorkImage:
    """The frame (or its region of interest) at the working size: grey, and the ink channel."""
    image = _as_uint8(frame, grey=False)
    offset_x = offset_y = 0
    if settings.roi is not None:
        fx, fy, fw, fh = settings.roi
        H, W = image.shape[:2]
        offset_x, offset_y = int(fx * W), int(fy * H)
        image = image[offset_y : offset_y + max(16, int(fh * H)), offset_x : offset_x + max(16, int(fw * W))]
    H, W = image.shape[:2]
    scale = min(1.0, settings.work_size / max(H, W))
    if scale < 1:
        size = (max(16, round(W * scale)), max(16, round(H * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    image = cv2.GaussianBlur(image, (3, 3), 0)
    if image.ndim == 3:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        blue, green, red = cv2.split(image)
        darkest = cv2.min(cv2.min(blue, green), red)
    else:
        grey = darkest = image
    return WorkImage(grey, darkest, scale, (offset_x, offset_y))


# --- 2. polarity -----------------------------------------------------------------------------------------


def dark_ink(grey: np.ndarray) -> bool:
    """Dark ink on paper, unless three independent measures all say "bright strokes on a dark board".

    (a) Thin-structure energy: a black-hat (thin dark strokes) against a top-hat (thin bright strokes) with
    a kernel a little wider than a pen stroke; large dark or bright areas (a desk, a sweater behind a
    held-up page, the frame's black bars) give neither. The 99th percentiles decide; when writing covers
    under 1 % of the frame, the 99.9th. (b) The tail of pixels far from their local mean: dark ink makes a
    long dark tail. (c) Most of a board is darker than the middle of the frame's range. Each alone is
    fooled by some scenes ((a) and (b) by a marker stroke wider than their kernels, (b) and (c) by a page
    held before a dark background); dark ink is by far the common case, so chalk is chosen only when all
    three agree.
    """
    small = grey[::2, ::2]
    k = max(3, (min(small.shape) // 40) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    blackhat = cv2.morphologyEx(small, cv2.MORPH_BLACKHAT, kernel)
    tophat = cv2.morphologyEx(small, cv2.MORPH_TOPHAT, kernel)
    thin_says_dark = True
    for percentile in (99, 99.9):
        dark, light = np.percentile(blackhat, percentile), np.percentile(tophat, percentile)
        if max(dark, light) > 4:  # grey levels: something thin stands out of the surface
            thin_says_dark = bool(dark >= light)
            break
    if thin_says_dark:
        return True
    smallf = small.astype(np.float32)
    k = max(3, (min(small.shape) // 8) | 1)
    deviation = smallf - cv2.blur(smallf, (k, k))
    low, high = np.percentile(deviation, (0.5, 99.5))
    if -low >= high:
        return True
    # (c) A board is dark: most of the frame sits in the lower half of its brightness range. A marker
    # stroke wider than both kernels fools (a) and (b) on a light page, never this.
    darkest, median, brightest = np.percentile(small, (0.1, 50, 99.9))
    return bool(median >= (darkest + brightest) / 2)


def find_polarity(work: WorkImage, settings: SegmentSettings) -> bool:
    """True for dark ink on a light surface."""
    return dark_ink(work.grey) if settings.polarity == "auto" else settings.polarity == "dark"


# --- 3. ink, paper and threshold -------------------------------------------------------------------------


def background_of(surface: np.ndarray) -> np.ndarray:
    """The surface brightness without the ink: a closing of a reduced copy with a kernel wider than any
    stroke (ink removed, shading kept), smoothed and scaled back (float32)."""
    h, w = surface.shape
    small = cv2.resize(surface, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    k = max(3, (min(small.shape) // 6) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    background = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    background = cv2.blur(background, (k, k))
    return cv2.resize(background, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def ink_map(grey: np.ndarray, dark: bool) -> np.ndarray:
    """Relative ink strength in [0, 1]: how much darker (or lighter, for chalk) than the local background.

    Dividing by the background makes the measure independent of the light level.
    """
    surface = grey if dark else 255 - grey
    background = background_of(surface)
    ink = (background - surface.astype(np.float32)) / np.maximum(background, 24.0)
    return np.clip(ink, 0.0, 1.0)


def robust_sigma(values: np.ndarray) -> float:
    """Noise level from the lower half of the values: ink only ever adds, so the spread between the 10th
    percentile and the median is the paper's own, even where strokes cover a third of the area."""
    if values.size == 0:
        return 0.0
    p10, p50 = np.percentile(values, (10, 50))
    return float(p50 - p10) / 1.2816


def paper_to_the_edge(
    surface: np.ndarray, background: np.ndarray, paper: np.ndarray, tile: int, settings: SegmentSettings
) -> tuple[np.ndarray, np.ndarray]:
    """The paper to a few pixels near its edge, where the tiles it was found in are too coarse.

    Within a tile of the tile-level edge (measured at half resolution), paper is what is nearly as bright
    as the paper beside it (``settings.edge_brightness``: a desk, a wall or a sweater is darker; a median
    leaves ink strokes out of the comparison) and as quiet as the paper's quieter quarter (wood grain or a
    weave as bright as the page is busy). Only what joins the paper found by tiles counts, and what it
    encloses (a bold stroke) is paper too. The page's very border, and the ends of the lines printed on
    it, are left out by a small erosion.
    """
    h, w = paper.shape
    core = paper[::2, ::2]
    small = np.ascontiguousarray(surface[::2, ::2])
    reach = cv2.getStructuringElement(cv2.MORPH_RECT, (tile | 1, tile | 1))
    zone = cv2.dilate(core.astype(np.uint8), reach).astype(bool) & cv2.dilate(
        (~core).astype(np.uint8), reach
    ).astype(bool)
    paper_level = cv2.dilate(np.where(core, background[::2, ::2], 0).astype(np.float32), reach)
    smooth = cv2.medianBlur(small, 7)
    bright = smooth >= settings.edge_brightness * paper_level
    grey = smooth.astype(np.float32)
    mean = cv2.blur(grey, (7, 7))
    spread = np.sqrt(np.maximum(cv2.blur(grey * grey, (7, 7)) - mean * mean, 0))
    quiet = spread < 4.0 * max(1.0, float(np.percentile(spread[core], 25)))
    grown = np.where(zone, bright & quiet, core).astype(np.uint8)
    count, labels = cv2.connectedComponents(grown, connectivity=4)
    joined = np.zeros(count, bool)
    joined[np.unique(labels[core & (grown > 0)])] = True
    joined[0] = False
    enclosed = np.pad((~joined[labels]).astype(np.uint8), 1, constant_values=1)
    cv2.floodFill(enclosed, None, (0, 0), 2)
    grown_paper = (joined[labels] | (enclosed[1:-1, 1:-1] == 1)).astype(np.uint8)
    inner = cv2.erode(grown_paper, cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))) > 0
    grown_paper = np.where(zone, inner, grown_paper > 0)
    # The edge is sure where the paper meets darker surroundings (texture as bright as the page is left to
    # textured_surroundings to find).
    square = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))
    paper_u8 = grown_paper.astype(np.uint8)
    band = (cv2.dilate(paper_u8, square) > 0) & (cv2.erode(paper_u8, square) == 0)
    dim = (zone & ~bright).astype(np.uint8)
    page_edge = band & (cv2.dilate(dim, cv2.getStructuringElement(cv2.MORPH_RECT, (13, 13))) > 0)
    full = cv2.resize(paper_u8, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return full, page_edge


def find_ink(work: WorkImage, dark: bool, settings: SegmentSettings) -> InkImage:
    """Ink strength, the paper, and a per-region threshold above the noise of that region of the paper."""
    source = work.ink_source if dark else work.grey
    surface = source if dark else 255 - source
    background = background_of(surface)
    signed = (background - surface.astype(np.float32)) / np.maximum(background, 24.0)
    ink = np.clip(signed, 0.0, 1.0)
    # The paper: as bright as paper gets in this frame, and mostly bare. A dark desk, the frame's black
    # bars, a sweater or a wooden door behind a held-up sheet are not: they are darker, or "ink" covers
    # most of them. The shaded part of a page still is (a shadow halves the light at most).
    brightest = float(np.percentile(background[::4, ::4], 95))
    bright = background >= settings.paper_brightness * brightest
    h, w = ink.shape
    # Tiles of about 64x64 px, measured on every other pixel, all at once.
    sub, sub_bright = signed[::2, ::2], bright[::2, ::2]
    tiles_y, tiles_x = max(1, sub.shape[0] // 32), max(1, sub.shape[1] // 32)
    th, tw = sub.shape[0] // tiles_y, sub.shape[1] // tiles_x

    def tiled(a: np.ndarray) -> np.ndarray:
        return a[: tiles_y * th, : tiles_x * tw].reshape(tiles_y, th, tiles_x, tw).swapaxes(1, 2)

    p10, p50 = np.percentile(tiled(sub).reshape(tiles_y, tiles_x, -1), (10, 50), axis=2)
    sigma = ((p50 - p10) / 1.2816).astype(np.float32)
    bare = (p50 < 0.1) & (tiled(sub_bright).mean(axis=(2, 3)) > 0.5)
    # A tile inked all over by a large digit, amid bare tiles, is still paper: a tile is filled in when
    # three quarters of its neighbours (those inside the frame) are bare.
    ring = np.ones((3, 3), np.float32)
    ring[1, 1] = 0
    border = {"borderType": cv2.BORDER_CONSTANT}
    bare_neighbours = cv2.filter2D(bare.astype(np.float32), -1, ring, **border)
    neighbours = cv2.filter2D(np.ones(bare.shape, np.float32), -1, ring, **border)
    filled = ~bare & (bare_neighbours >= 0.75 * neighbours - 1e-3)
    # ...and so is every inked tile the paper encloses (a digit larger than a tile): only inked tiles
    # that reach the frame's edge through other inked tiles are the surroundings.
    outside = np.pad((~bare).astype(np.uint8), 1, constant_values=1)
    cv2.floodFill(outside, None, (0, 0), 2)
    filled |= outside[1:-1, 1:-1] == 1
    bare |= filled
    if not bare.any():  # no clear paper (a close-up, a board): the whole frame is the writing surface
        bare[:] = True
    noise = float(np.percentile(sigma[bare], 25))  # the paper: the quieter part of what is bare
    paper = bright & cv2.resize(bare.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    page_edge = None
    if not bare.all():
        paper, page_edge = paper_to_the_edge(surface, background, paper, th, settings)
        # A tile along the page's edge holds some of the surroundings, whose grain is no noise of the paper
        # written on beside it: such a tile takes the paper's noise from the bare tiles around it.
        box = np.ones((3, 3), np.float32)
        bare_around = cv2.filter2D(bare.astype(np.float32), -1, box, **border)
        sigma_around = cv2.filter2D(np.where(bare, sigma, 0).astype(np.float32), -1, box, **border)
        tiles_around = cv2.filter2D(np.ones(bare.shape, np.float32), -1, box, **border)
        at_the_edge = (bare_around > 0) & (bare_around < tiles_around)
        sigma = np.where(at_the_edge, np.minimum(sigma, sigma_around / np.maximum(bare_around, 1)), sigma)
    floor = max(settings.min_contrast, 5.0 * noise)
    # Each tile of the paper gets the threshold its own noise needs (texture raises only its own). A tile
    # taken as paper only through its neighbours is inked over much of its area: by a large, thick digit,
    # or by texture at the page's edge. Its spread is not noise, so its threshold is capped at heavy_ink:
    # dark pen strokes (0.5-0.9) pass, most grain and halos do not.
    tile_thresholds = np.maximum(floor, 5.0 * sigma)
    capped = np.minimum(tile_thresholds, max(floor, settings.heavy_ink))
    tile_thresholds = np.where(filled, capped, tile_thresholds).astype(np.float32)
    threshold = cv2.resize(tile_thresholds, (w, h), interpolation=cv2.INTER_LINEAR)
    return InkImage(ink.astype(np.float32), paper, threshold, noise, page_edge)


def ink_mask(ink: InkImage, low: float = 0.75) -> np.ndarray:
    """Pixels that are ink (uint8 0/1), with hysteresis: a stroke is traced down to ``low`` times the
    threshold from wherever it passes the threshold, so a blurred or faint stroke stays whole without
    letting the paper's noise in."""
    weak = ((ink.ink > low * ink.threshold) & ink.paper).astype(np.uint8)
    weak = cv2.morphologyEx(weak, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    count, labels = cv2.connectedComponents(weak, connectivity=8)
    strong = np.zeros(count, bool)
    strong[np.unique(labels[ink.ink > ink.threshold])] = True
    strong[0] = False
    return strong[labels].astype(np.uint8)


# --- 4. ruled lines and edges ----------------------------------------------------------------------------


def paper_extent(paper: np.ndarray) -> tuple[int, int]:
    """Width and height of the box around the paper (the frame's, when there is none)."""
    rows, cols = np.flatnonzero(paper.any(axis=1)), np.flatnonzero(paper.any(axis=0))
    if not len(rows):
        return paper.shape[1], paper.shape[0]
    return int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def find_rules(
    mask: np.ndarray, settings: SegmentSettings, extent: tuple[int, int] | None = None
) -> list[tuple[int, int, int, int]]:
    """Long straight strokes that are not writing: (x0, y0, x1, y1) segments.

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
    # A rule runs on across the page: extend it to the frame's edges, so the short pieces of it that
    # the transform missed (between two crossings, near the edge) go too.
    rules = []
    for (x0, y0, x1, y1), length_ in zip(segments[is_rule], lengths[is_rule], strict=True):
        ux, uy = (x1 - x0) / length_, (y1 - y0) / length_
        reach = 2.0 * max(h, w)
        rules.append((int(x0 - reach * ux), int(y0 - reach * uy), int(x1 + reach * ux), int(y1 + reach * uy)))
    return rules


def rule_fragments(
    mask: np.ndarray, rules: list, settings: SegmentSettings, extent: tuple[int, int] | None = None
) -> list[tuple[int, int, int, int]]:
    """Shorter straight pieces running exactly along the rules found (within 1.5 degrees) and at least half
    a rule long: the parts of a faint or shadowed grid line too broken to be found whole. A digit's stroke
    is rarely that long, that straight and that parallel to the paper's own lines."""
    h, w = mask.shape
    half = cv2.resize(mask, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    length = max(10, int(settings.rule_length * max(extent or (w, h))) // 4)  # half a rule, half resolution
    found = cv2.HoughLinesP(half, 1, np.pi / 360, threshold=length // 2, minLineLength=length, maxLineGap=2)
    if found is None:
        return []
    segments = found.reshape(-1, 4)[:1000].astype(np.float32) * 2
    rule_angles = np.array([np.arctan2(y1 - y0, x1 - x0) % np.pi for x0, y0, x1, y1 in rules])
    angles = np.arctan2(segments[:, 3] - segments[:, 1], segments[:, 2] - segments[:, 0]) % np.pi
    turn = np.abs(angles[:, None] - rule_angles[None, :])
    along = (np.minimum(turn, np.pi - turn) < np.radians(1.5)).any(axis=1)
    return [tuple(int(v) for v in seg) for seg in segments[along]]


def remove_rules(
    mask: np.ndarray, settings: SegmentSettings, extent: tuple[int, int] | None = None
) -> np.ndarray:
    """Take the rules (see :func:`find_rules`) out of a binary ink mask and bridge the strokes they crossed:
    a stroke that crossed the line continues on both sides of it, so a digit written over a line stays
    in one piece."""
    rules = find_rules(mask, settings, extent)
    if not rules:
        return mask
    rules += rule_fragments(mask, rules, settings, extent)
    band = np.zeros_like(mask)
    for x0, y0, x1, y1 in rules:
        cv2.line(band, (x0, y0), (x1, y1), 1, 3)  # thick lines give several parallel segments: all drawn
    band &= mask
    cleaned = mask & (1 - band)
    bridged = cv2.morphologyEx(
        cleaned, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (13, 13))
    )
    return cleaned | (bridged & band)


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
    signed = np.where(rules > 0, 0.0, ink.ink)[::2, ::2]
    noise = ink.noise
    mean = cv2.blur(signed, (9, 9))
    spread = np.sqrt(np.maximum(cv2.blur(signed * signed, (9, 9)) - mean * mean, 0))
    # Bare paper's spread here is about 0.6 of its noise (the ink map is clipped at zero), so twice the
    # noise is over three times the paper's own: a faint stucco or a fine weave is busy too. The opening is
    # wider than the band a line leaves in a 9-px window, so neither a faint rule nor the page's own edge
    # carries the texture along it into the digits it meets.
    busy = (spread > max(0.03, 2.0 * noise)).astype(np.uint8)
    busy = cv2.morphologyEx(busy, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11)))
    seeds = ~ink.paper[::2, ::2]
    # Where the page's edge is known to a few pixels, texture outside it does not spread across it into
    # the digits written beside it (the spread's window would otherwise join the two).
    if ink.page_edge is not None:
        busy[ink.page_edge[: busy.shape[0], : busy.shape[1]]] = 0
    count, labels = cv2.connectedComponents(busy, connectivity=8)
    reached = np.zeros(count, bool)
    reached[np.unique(labels[seeds & (busy > 0)])] = True
    # Texture beside the page runs along much of one of the frame's sides (in pieces, where its grain was
    # taken for rules); a digit at the edge (cut off by it, or just touching it) meets it for a digit's
    # width only.
    for side in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        if np.count_nonzero(side) >= 0.4 * len(side):
            reached[side] = True
    reached[0] = False
    h, w = ink.ink.shape
    return cv2.resize(reached[labels].astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


# --- 5. pieces and filters -------------------------------------------------------------------------------


def find_pieces(mask: np.ndarray, settings: SegmentSettings) -> tuple[list[Piece], np.ndarray]:
    """Connected components of the mask, the ``max_pieces`` largest, and the label image."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return [], labels
    h, w = mask.shape
    min_h = max(6.0, 0.5 * settings.min_height * min(h, w))
    min_area = max(4, int(min_h * min_h * 0.02))
    areas = stats[1:, cv2.CC_STAT_AREA]
    order = np.argsort(-areas)[: settings.max_pieces] + 1
    pieces = [Piece(*map(int, stats[i, :4]), frozenset((int(i),)), int(stats[i, 4])) for i in order]
    return [p for p in pieces if p.area >= min_area], labels


def merge_pieces(pieces: list[Piece], typical_h: float) -> list[Piece]:
    """Merge pieces of one digit (a 5's flag, a 4 or 7 written in two strokes).

    Two pieces merge when they overlap horizontally by half the narrower one and their union is no taller
    than a digit; stacked digits of two lines form a union far taller than one digit, so they stay apart.
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
                    overlap >= 0.5 * min(other.w, piece.w)
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
    return float(np.percentile(np.hypot(gx, gy), 95))


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
    return float(np.percentile(tall, 75)) if tall else min_h


def keep_digits(
    pieces: list[Piece], ink: InkImage, settings: SegmentSettings, before_rules: np.ndarray | None = None
) -> list[Piece]:
    """Drop what cannot be a digit or a group of touching digits: too small or large for the frame, too
    flat, solid blotches, off the paper, faint or soft-edged marks, and marks much smaller or fainter than
    the other candidates."""
    h, w = ink.ink.shape
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
        crop = ink.ink[p.y : p.y + p.h, p.x : p.x + p.w]
        on = crop[crop > ink.threshold[p.y : p.y + p.h, p.x : p.x + p.w]]
        p.peak = float(np.percentile(on, 90)) if on.size else 0.0
        p.edge = edge_sharpness(crop)
        candidates.append(p)
    min_edge = max(settings.min_edge, settings.min_edge_snr * ink.noise)
    candidates = [p for p in candidates if p.edge >= min_edge]
    if not candidates:
        return []
    typical_h = float(np.median([min(p.h, p.w / 0.6) for p in candidates]))
    # The contrast bar is set by digit-sized candidates: a mark far larger than the writing (a hand or a
    # dark object at the page's edge, a shadow) is as dark as it gets and would hide every real digit.
    strongest = max((p.peak for p in candidates if p.h <= 2 * typical_h), default=0.0)
    return [
        p
        for p in candidates
        if p.h >= settings.relative_height * typical_h and p.peak >= settings.relative_contrast * strongest
    ]


def part_of_a_longer_line(piece: Piece, ink: InkImage, labels: np.ndarray) -> bool:
    """A straight, thin piece whose line runs on well beyond it: a stretch of a rule, a margin or a grid
    line cut into pieces by the lines crossing it (or too faint to be found whole), not a "1".

    The piece's own pixels give its axis; along that axis, for twice the piece's length beyond each of its
    ends (those inside the frame), nearly all the way is darker than the paper beside it (a rule is often
    fainter than writing and than the threshold).
    A written "1" ends where the pen lifted: paper lies beyond both of its ends.
    """
    if piece.w > 0.4 * piece.h and piece.h > 0.4 * piece.w:
        return False  # not a thin stroke
    box = labels[piece.y : piece.y + piece.h, piece.x : piece.x + piece.w]
    ys, xs = np.nonzero(np.isin(box, list(piece.labels)))
    if len(xs) < 5:
        return False
    points = np.stack([xs + piece.x, ys + piece.y], axis=1).astype(np.float32)
    vx, vy, x0, y0 = (float(v) for v in cv2.fitLine(points, cv2.DIST_L2, 0, 0.01, 0.01).ravel())
    along = (points[:, 0] - x0) * vx + (points[:, 1] - y0) * vy
    across = (points[:, 0] - x0) * -vy + (points[:, 1] - y0) * vx
    length = float(along.max() - along.min())
    if length < 8 or float(np.std(across)) > 0.12 * length:
        return False  # curved: a written stroke
    h, w = ink.ink.shape

    def ink_at(steps: np.ndarray, offset: float, spread: int) -> np.ndarray:
        """The strongest ink within ``spread`` px of the points ``steps`` along the axis, ``offset`` aside."""
        x = np.clip(np.round(x0 + steps * vx - offset * vy).astype(int), spread, w - 1 - spread)
        y = np.clip(np.round(y0 + steps * vy + offset * vx).astype(int), spread, h - 1 - spread)
        near = range(-spread, spread + 1)
        return np.max([ink.ink[y + dy, x + dx] for dy in near for dx in near], axis=0)

    margin = max(0.03, 2.0 * ink.noise)
    reach = 2 * length
    sides = []
    for steps in (
        np.arange(along.max() + 3, along.max() + 3 + reach),
        np.arange(along.min() - 3 - reach, along.min() - 3),
    ):
        sx, sy = x0 + steps * vx, y0 + steps * vy
        steps = steps[(sx >= 0) & (sx < w) & (sy >= 0) & (sy < h)]
        if len(steps) < length:  # the frame ends here: this side cannot tell
            continue
        # On the axis (the line may wander by a pixel) against the paper a few px to either side: a rule
        # is darker than the paper beside it all along, however faint it is against the threshold. The
        # edge of a dark band (a page's border, a shadow) runs on too, as a step: darker on one side,
        # bare paper on the other, the axis between the two.
        on_axis = ink_at(steps, 0, 1)
        left, right = ink_at(steps, 5, 0), ink_at(steps, -5, 0)
        bare, dark = np.minimum(left, right), np.maximum(left, right)
        rule = on_axis > dark + margin
        step = (on_axis > bare + margin) & (dark > bare + 2 * margin)
        # Most of the way, not all of it: a faint line under a shadow or past a smudge is lost in places,
        # while beyond a written "1" the paper is bare nearly all the way.
        sides.append(float(np.mean(rule | step)) >= 0.6)
    # Both ways (as far as the frame goes): a stretch of a rule between two crossings has the rule on both
    # sides, while a column of "1"s (written one under the other, never quite on one straight axis) does
    # not run on straight for twice a digit's length in both directions.
    return bool(sides) and all(sides)


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
    if len(piece.labels) == 1:
        own = (box == next(iter(piece.labels))).astype(np.uint8)
    else:
        own = np.isin(box, list(piece.labels)).astype(np.uint8)
    near = cv2.dilate(own, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    far = cv2.dilate(own, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (11, 11)))
    ring = (far > near) & (rules[y0:y1, x0:x1] == 0)
    if not ring.any():
        return False
    crop = ink.ink[y0:y1, x0:x1]
    level = float(np.median(crop[own > 0][::3]))  # every third pixel is plenty for a median
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


# --- 6. crops and splits ---------------------------------------------------------------------------------


def crop_ink(piece: Piece, ink: InkImage, labels: np.ndarray) -> np.ndarray:
    """The piece's own ink (not its neighbours'), scaled so its strokes reach full strength (uint8)."""
    h, w = labels.shape
    pad = 2
    x0, y0 = max(0, piece.x - pad), max(0, piece.y - pad)
    x1, y1 = min(w, piece.x + piece.w + pad), min(h, piece.y + piece.h + pad)
    own = np.isin(labels[y0:y1, x0:x1], list(piece.labels))
    # Grow the mask by a pixel so the soft edge of the strokes (below threshold) keeps its grey levels.
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    own = cv2.dilate(own.astype(np.uint8), grow).astype(bool)
    crop = np.where(own, ink.ink[y0:y1, x0:x1], 0.0)
    level = piece.peak or 1.0
    return (np.clip(crop / level, 0.0, 1.0) * 255).astype(np.uint8)


def split_columns(crop: np.ndarray, parts: int) -> list[int] | None:
    """Where to cut a crop of ``parts`` touching digits: the column of least ink near each expected cut."""
    profile = crop.astype(np.float32).sum(axis=0)
    profile = np.convolve(profile, np.ones(3, np.float32) / 3, mode="same")
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
    profile = crop.astype(np.float32).sum(axis=0)
    profile = np.convolve(profile, np.ones(3, np.float32) / 3, mode="same")
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


MAX_SPLIT_PARTS = 8  # the most touching digits one candidate is read as


def propose_splits(crop: np.ndarray, box: tuple[int, int, int, int], work: WorkImage, settings) -> tuple:
    """Alternative readings of a wide candidate as 2 to 5 touching digits (each a tuple of Segments).

    Over-segment, then let recognition decide: every combination of the candidate cut columns (the valleys
    of the ink profile, and cuts at even spacing for digits that touch along a whole stroke) that gives
    parts of a plausible digit width is offered. A part shared by several combinations is one Segment, so
    the pipeline classifies it once.
    """
    x, y, w, h = box
    aspect = w / max(h, 1)
    width = crop.shape[1]
    # A "1" is narrow: a part may be a tenth of the height wide; no digit is much wider than it is tall.
    narrowest, widest = max(2, round(0.1 * h)), round(1.3 * h)
    if aspect < 1.1:
        # As wide as tall is one digit (a wide 0, 2 or 8), unless a "1" touches its neighbour by a single
        # point: then the ink profile almost vanishes between them ("11", "17", "19" written close).
        if aspect < 0.5:
            return ()
        profile = crop.astype(np.float32).sum(axis=0)
        valleys = [v for v in valley_columns(crop, narrowest, limit=2) if profile[v] < 0.15 * profile.max()]
        counts = [2]
        cut_sets: list[tuple[int, ...]] = [(v,) for v in valleys]
    else:
        # As many digits as fit: no fewer than digits as wide as tall, no more than narrow ones (a 0 is
        # about half as wide as tall; a group of 1s is narrower still, and its valleys cut it anyway).
        counts = list(range(max(2, int(aspect / 1.1)), min(MAX_SPLIT_PARTS, int(np.ceil(aspect / 0.45))) + 1))
        cut_sets = []
        for parts in counts:
            cuts = split_columns(crop, parts)
            if cuts is not None:
                cut_sets.append(tuple(cuts))
        valleys = valley_columns(crop, max(narrowest, round(0.2 * h)), limit=8)
    for count in range(1, min(len(valleys), max(counts, default=2) - 1) + 1):
        cut_sets += itertools.combinations(valleys, count)
    parts: dict[tuple[int, int], Segment | None] = {}

    def part(left: int, right: int) -> Segment | None:
        if (left, right) not in parts:
            piece = crop[:, left:right]
            rows = np.flatnonzero(piece.max(axis=1) > 0)
            cols = np.flatnonzero(piece.max(axis=0) > 0)
            segment_ = None
            if len(rows) >= 2 and len(cols) >= 1:
                piece = piece[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
                px, py = x + left + cols[0], y + rows[0]
                segment_ = Segment(work.to_frame(px, py, piece.shape[1], piece.shape[0]), piece)
            parts[(left, right)] = segment_
        return parts[(left, right)]

    splits = []
    for cuts in dict.fromkeys(cut_sets):  # in order, each once
        bounds = [0, *cuts, width]
        if any(not narrowest <= right - left <= widest for left, right in itertools.pairwise(bounds)):
            continue
        segments = [part(left, right) for left, right in itertools.pairwise(bounds)]
        if all(segments):
            splits.append(tuple(segments))
    return tuple(splits)


# --- 7. reading order ------------------------------------------------------------------------------------


def reading_order(boxes: list[Box]) -> list[Box]:
    """Chain each box to its nearest neighbour in the writing direction, read the chains top to bottom.

    A box's right neighbour starts to its right, not too far (a few digit heights), and not too far up or
    down (most of a digit height: slanted, curved and loosely written lines stay one chain; the line
    below does not join). Each box takes at most one left and one right neighbour, nearest first.
    """
    n = len(boxes)
    if n == 0:
        return []
    x = np.array([b.x for b in boxes], np.float32)
    w = np.array([b.w for b in boxes], np.float32)
    h = np.array([b.h for b in boxes], np.float32)
    cx, cy = x + w / 2, np.array([b.y for b in boxes], np.float32) + h / 2
    # All pairs at once, as arrays (n is bounded by the segmenter's cap on pieces).
    size = np.maximum(h[:, None], h[None, :])
    dx = x[None, :] - (x + w)[:, None]
    ahead = (
        (cx[None, :] > cx[:, None]) & (dx <= 2.5 * size) & (dx >= -0.5 * np.minimum(w[:, None], w[None, :]))
    )
    # The writing's slope: the median rise from each box to its nearest neighbour ahead. Measuring
    # heights along that slope straightens a line written on a rising diagonal.
    dy_raw = cy[None, :] - cy[:, None]
    near = ahead & (np.abs(dy_raw) <= 0.6 * size)
    slopes = []
    for i in range(n):
        js = np.flatnonzero(near[i])
        if len(js):
            j = js[np.argmin(dx[i, js])]
            slopes.append(dy_raw[i, j] / max(cx[j] - cx[i], 1.0))
    slope = float(np.clip(np.median(slopes), -0.5, 0.5)) if slopes else 0.0
    level = cy - slope * cx
    dy = np.abs(level[None, :] - level[:, None])
    allowed = ahead & (dy <= 0.6 * size)
    cost = np.maximum(dx, 0) + 2.0 * dy
    pairs = np.argwhere(allowed)
    links = sorted(zip(cost[allowed].tolist(), pairs[:, 0].tolist(), pairs[:, 1].tolist(), strict=True))
    right, left = [-1] * n, [-1] * n
    for _cost, i, j in links:
        if right[i] == -1 and left[j] == -1:
            right[i], left[j] = j, i
    chains = []
    for start in range(n):
        if left[start] != -1:
            continue
        chain, k = [], start
        while k != -1:
            chain.append(k)
            k = right[k]
        chains.append(chain)
    # Widely spaced digits of one line (a scattered layout, a date with gaps) form separate chains: join
    # each chain to the nearest chain wholly to its right at the same height, nearest pairs first. A chain
    # only ever joins one to its right, so no cycle can form.
    ends = np.array([chain[-1] for chain in chains])
    starts = np.array([chain[0] for chain in chains])
    gap = x[starts][None, :] - (x[ends] + w[ends])[:, None]
    beside = (gap > -0.5 * np.minimum(w[ends][:, None], w[starts][None, :])) & (
        np.abs(level[starts][None, :] - level[ends][:, None])
        <= 0.5 * np.maximum(h[ends][:, None], h[starts][None, :])
    )
    np.fill_diagonal(beside, False)
    follower, leader = [-1] * len(chains), [-1] * len(chains)
    for a, b in np.argwhere(beside)[np.argsort(gap[beside], kind="stable")]:
        if follower[a] == -1 and leader[b] == -1:
            follower[a], leader[b] = int(b), int(a)
    joined = []
    for first in range(len(chains)):
        if leader[first] != -1:
            continue
        chain, k = [], first
        while k != -1:
            chain += chains[k]
            k = follower[k]
        joined.append(chain)
    chains = joined
    # Lines top to bottom by where they start, along the slope.
    chains.sort(key=lambda chain: (level[chain[0]], cx[chain[0]]))
    ordered = []
    for number, chain in enumerate(chains):
        ordered += [Box(boxes[k].x, boxes[k].y, boxes[k].w, boxes[k].h, number) for k in chain]
    return ordered


# --- the whole stage -------------------------------------------------------------------------------------


def segment(frame, settings: SegmentSettings = SegmentSettings()) -> list[Segment]:
    """Find the digit candidates in a frame, in reading order, with their ink crops (white on black)."""
    work = prepare(frame, settings)
    dark = find_polarity(work, settings)
    ink = find_ink(work, dark, settings)
    inked = ink_mask(ink)
    mask = remove_rules(inked, settings, paper_extent(ink.paper))
    rules = inked & ~mask
    ink = replace(ink, paper=ink.paper & ~textured_surroundings(ink, rules))
    pieces, labels = find_pieces(mask, settings)
    if not pieces:
        return []
    h, w = mask.shape
    min_h = max(8.0, settings.min_height * min(h, w))
    pieces = merge_pieces(pieces, typical_height(pieces, min_h))
    kept = keep_digits(pieces, ink, settings, inked)
    kept = [
        piece
        for piece in kept
        if not (
            part_of_a_longer_line(piece, ink, labels)
            or along_the_frame_side(piece, labels)
            or inside_a_dark_area(piece, ink, labels, rules)
        )
    ]

    by_box: dict[Box, Segment] = {}
    for piece in kept:
        crop = crop_ink(piece, ink, labels)
        box = work.to_frame(piece.x, piece.y, piece.w, piece.h)
        # Crops carry 2 px of padding; splits work on the piece's own columns.
        pad_x, pad_y = piece.x - max(0, piece.x - 2), piece.y - max(0, piece.y - 2)
        core = crop[pad_y : pad_y + piece.h, pad_x : pad_x + piece.w]
        splits = ()
        if piece.w >= 0.5 * piece.h:
            splits = propose_splits(core, (piece.x, piece.y, piece.w, piece.h), work, settings)
        if piece.w > settings.max_aspect * piece.h and not splits:
            continue
        by_box[box] = Segment(box, crop, splits)
    ordered = []
    for box in reading_order(list(by_box)):
        found = by_box[Box(box.x, box.y, box.w, box.h)]
        splits = tuple(
            tuple(Segment(_on_line(s.box, box.line), s.ink) for s in split) for split in found.splits
        )
        ordered.append(Segment(box, found.ink, splits))
    return ordered


def _on_line(box: Box, line: int) -> Box:
    return Box(box.x, box.y, box.w, box.h, line)
