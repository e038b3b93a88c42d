"""Stages 1 to 3: the frame at the working size, the ink's polarity, and where the paper is, how strong
the ink on it is and the threshold above its noise."""

from __future__ import annotations

import cv2
import numpy as np

from device.errors import FrameError
from device.segment.data import InkImage, SegmentSettings, WorkImage
from device.segment.stats import median, percentile, percentiles


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


# The stages' sizes in px (the paper's tiles, the closing discs, the smallest digit's floor) are set for
# frames of 640-800 px. In a smaller frame (a low-resolution webcam, a region of interest, a crop) a sheet
# spans only a few tiles, each of them half desk, so no tile is bare paper and the desk's grain sets the
# threshold; and small digits fall under the px floors. Such a frame is enlarged to this size first.
SMALLEST_WORK = 640


def working_scale(longer_side: int, work_size: int) -> float:
    """The scale a frame is segmented at: reduced to ``work_size`` where it is larger, enlarged to
    ``SMALLEST_WORK`` (or ``work_size``, where that is smaller) where it is smaller, else as it is."""
    if longer_side > work_size:
        return work_size / longer_side
    return max(1.0, min(SMALLEST_WORK, work_size) / longer_side)


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
    scale = working_scale(max(H, W), settings.work_size)
    if scale != 1:
        size = (max(16, round(W * scale)), max(16, round(H * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    image = cv2.GaussianBlur(image, (3, 3), 0)
    if image.ndim == 3:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        darkest = darkest_channel(image)
    else:
        grey = darkest = image
    return WorkImage(grey, darkest, scale, (offset_x, offset_y))


# An erosion three values long along a row: the least of a pixel's three channel values, taken at its middle.
ROW_OF_3 = np.ones((1, 3), np.uint8)


def darkest_channel(image: np.ndarray) -> np.ndarray:
    """The darkest of each pixel's three colour channels (uint8). Each row of the image, seen as one long
    row of channel values (blue, green, red, blue, ...), is eroded by three values, and the middle (green)
    value of each pixel then holds the least of its three: one pass of OpenCV's erosion, a quarter of the
    time of splitting the channels and taking their minimum (which allocates three planes and two more)."""
    rows = image.reshape(image.shape[0], -1)
    return np.ascontiguousarray(cv2.erode(rows, ROW_OF_3)[:, 1::3])


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
    for level in (99, 99.9):
        dark, light = percentile(blackhat, level), percentile(tophat, level)
        if max(dark, light) > 4:  # grey levels: something thin stands out of the surface
            thin_says_dark = bool(dark >= light)
            break
    if thin_says_dark:
        return True
    smallf = small.astype(np.float32)
    k = max(3, (min(small.shape) // 8) | 1)
    deviation = smallf - cv2.blur(smallf, (k, k))
    low, high = percentiles(deviation, (0.5, 99.5))
    if -low >= high:
        return True
    # (c) A board is dark: most of the frame sits in the lower half of its brightness range. A marker
    # stroke wider than both kernels fools (a) and (b) on a light page, never this.
    darkest, median, brightest = percentiles(small, (0.1, 50, 99.9))
    return bool(median >= (darkest + brightest) / 2)


def find_polarity(work: WorkImage, settings: SegmentSettings) -> bool:
    """True for dark ink on a light surface."""
    return dark_ink(work.grey) if settings.polarity == "auto" else settings.polarity == "dark"


# --- 3. ink, paper and threshold -------------------------------------------------------------------------


def inkless_surface(surface: np.ndarray) -> tuple[np.ndarray, int]:
    """The surface at a quarter of its size with the ink closed away (uint8), and the closing's disc (px
    at that size): a disc wider than any stroke, so ink goes and shading stays.

    A disc, not a square: a square's closing follows an edge along its own axes only, so across a hard
    shadow's edge at an angle it leaves a staircase whose steps stand above the shadowed side, and a
    band of "ink" runs along the edge; a disc follows an edge at any angle alike."""
    h, w = surface.shape
    small = cv2.resize(surface, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    k = max(3, (min(small.shape) // 6) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    return cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel), k


def smoothed_back(closed: np.ndarray, k: int, shape: tuple[int, ...]) -> np.ndarray:
    """:func:`inkless_surface`'s result smoothed over its disc and scaled back to ``shape`` (uint8)."""
    h, w = shape[:2]
    return cv2.resize(cv2.blur(closed, (k, k)), (w, h), interpolation=cv2.INTER_LINEAR)


def background_of(surface: np.ndarray) -> np.ndarray:
    """The surface brightness without the ink (float32): :func:`inkless_surface`, smoothed and scaled
    back."""
    return smoothed_back(*inkless_surface(surface), surface.shape).astype(np.float32)


def paper_level(work: WorkImage) -> tuple[np.ndarray, np.ndarray, int]:
    """The paper's brightness under the ink channel at the working size (uint8, :func:`background_of` of
    ``work.ink_source``), with the :func:`inkless_surface` it was smoothed from and that closing's disc:
    worked out once a frame, since a plain page's short way starts from it, and so do the full stages
    where it turns out to be no plain page."""
    if "paper" not in work.known:
        closed, k = inkless_surface(work.ink_source)
        work.known["paper"] = (smoothed_back(closed, k, work.ink_source.shape), closed, k)
    return work.known["paper"]


def paper_step(closed: np.ndarray) -> float:
    """The largest change of the paper's brightness between points 8 px apart (2 px of ``closed``, the
    quarter-size surface with the ink closed away), as a share of the brighter."""
    paper = closed.astype(np.float32)
    across = np.abs(paper[:, 2:] - paper[:, :-2]) / np.maximum(np.maximum(paper[:, 2:], paper[:, :-2]), 1.0)
    down = np.abs(paper[2:] - paper[:-2]) / np.maximum(np.maximum(paper[2:], paper[:-2]), 1.0)
    return max(float(across.max(initial=0.0)), float(down.max(initial=0.0)))


def ink_map(grey: np.ndarray, dark: bool) -> np.ndarray:
    """Relative ink strength in [0, 1]: how much darker (or lighter, for chalk) than the local background.

    Dividing by the background makes the measure independent of the light level.
    """
    surface = grey if dark else 255 - grey
    background = background_of(surface)
    ink = (background - surface.astype(np.float32)) / np.maximum(background, 24.0)
    return np.clip(ink, 0.0, 1.0)


def enclosed_by(mask: np.ndarray) -> np.ndarray:
    """The pixels outside ``mask`` that it encloses: those that cannot reach the frame's edge without
    crossing it (bool)."""
    outside = np.pad((~mask).astype(np.uint8), 1, constant_values=1)
    cv2.floodFill(outside, None, (0, 0), 2)
    return outside[1:-1, 1:-1] == 1


def writing_at_the_frame_side(inked: np.ndarray, share: float = 0.2) -> np.ndarray:
    """The groups of inked tiles (bool, a tile each) that meet the frame's side along no more than half
    of any side, and are no more than ``share`` of the frame: a large bold digit written near the side,
    which the paper does not enclose. The surroundings of a page (a desk, a wall, a sweater) come into
    view along most of a side, or round a corner along two, and fill more of the frame; what is no
    paper among these small groups (a dark object at the side) is still left out as too dark."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inked.astype(np.uint8), connectivity=8)
    rows, cols = inked.shape
    small = stats[:, cv2.CC_STAT_AREA] <= share * inked.size
    for side, length in ((labels[0], cols), (labels[-1], cols), (labels[:, 0], rows), (labels[:, -1], rows)):
        small &= np.bincount(side, minlength=count) <= length / 2
    small[0] = False
    return small[labels]


def label_type(mask: np.ndarray) -> int:
    """The label type for OpenCV's connected components of a uint8 ``mask``: 16-bit where the labels cannot
    run out (fewer set pixels than 16-bit labels), which OpenCV labels and numpy looks up about three times
    as fast as 32-bit ones; else 32-bit."""
    return cv2.CV_16U if cv2.countNonZero(mask) < 65535 else cv2.CV_32S


def reached_from(mask: np.ndarray, seeds: np.ndarray, connectivity: int = 8) -> np.ndarray:
    """The connected parts of ``mask`` that hold a seed (bool): a stroke traced from where it is surest,
    the paper joined to where tiles found it, writing joined to the digit it belongs to."""
    mask = mask.astype(np.uint8, copy=False)
    count, labels = cv2.connectedComponents(mask, connectivity=connectivity, ltype=label_type(mask))
    reached = np.zeros(count, bool)
    reached[labels[seeds]] = True
    reached[0] = False
    # np.take: a table lookup per pixel, a few times faster than fancy indexing on a frame.
    return np.take(reached, labels)


# A bay of the page's outline (see ``bays_of_the_page``) is paper when at least this share of it is as bright
# as the page (the paper between a digit's strokes)...
BAY_LIT = 0.5
# ...it is this deep or more (px at half resolution, the radius of the widest disc it holds), deeper than the
# outline's wobble along a straight edge (under 5 px on the benchmark pages)...
BAY_DEPTH = 5.5
# ...it is a bay, not a sliver along an edge: its narrower side at least this share of its longer one...
BAY_SHAPE = 0.2
# ...and at least this share of the pixels outside the outline's hull and within ``BAY_RIM`` px of the bay
# (at half resolution: past the strip of the page's own border that the paper found leaves out) is darker
# than the page.
BAY_DIM_BEYOND, BAY_RIM = 0.5, 8
# A bay lit only where the surface is closed over strokes (see ``paper_to_the_edge``) is this deep or more
# (px at half resolution; digits are 12-40 px tall there).
PACKED_DEPTH = 12
# The surface closed over this square (half resolution: 18 px at the working size), across a pen's stroke,
# a printed line and the few px of paper between them.
_STROKES = cv2.getStructuringElement(cv2.MORPH_RECT, (9, 9))
# The outline is taken after an opening this wide (px at half resolution), which cuts off the thin tongues
# of paper found in surroundings as bright as the page...
TONGUE = 15
# ...of each region of paper at least this share of the frame: a page, not a bright object or a patch of
# paper seen between things.
PAGE_SHARE = 0.05


def bays_of_the_page(paper: np.ndarray, bright: np.ndarray, lit: np.ndarray | None = None) -> np.ndarray:
    """The bays in the outline of each page in ``paper`` (uint8 0/1, half resolution) that belong to the
    page, as uint8 0/1. ``bright`` (bool) is where the surface is as bright as the paper beside it; ``lit``
    (bool, where given), where it is as bright once closed over strokes: a bay lit there alone counts when
    it is ``PACKED_DEPTH`` deep.

    A sheet is convex: where its outline bends in, something lies on the page at its edge, most often a
    digit written a few px from the edge, whose strokes, and the strip of paper between them and the edge,
    are too busy to pass for paper. Like what the paper encloses, such a bay is paper. A bay, the part of
    the convex hull of a page's outline that is no paper, counts when it is mostly as bright as the page,
    deeper than the outline's wobble, compact (a long sliver along an edge is where the page met
    surroundings nearly as bright as itself), and the surroundings just beyond it are darker than the page:
    where they are as bright, the paper found may have run into them, and the bays of its outline are the
    surroundings. A bay at the frame's side has nothing beyond it to tell, and is left out."""
    bright = bright.astype(bool, copy=False)
    opening = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (TONGUE, TONGUE))
    outline = cv2.morphologyEx(paper, cv2.MORPH_OPEN, opening)
    contours, _ = cv2.findContours(outline, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = np.zeros_like(paper)
    for contour in contours:
        if cv2.contourArea(contour) >= PAGE_SHARE * paper.size:
            cv2.fillPoly(hull, [cv2.convexHull(contour)], 1)
    bays = hull & (paper == 0).view(np.uint8)
    depth = cv2.distanceTransform(bays, cv2.DIST_L2, 3)
    if depth.max() < BAY_DEPTH:  # none deep enough (most frames): no need to tell them apart
        return np.zeros_like(bays)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(bays, connectivity=4, ltype=label_type(bays))
    inside = bays.view(bool)
    area = stats[:, cv2.CC_STAT_AREA]
    lit_by_median = np.bincount(labels[inside], weights=bright[inside], minlength=count) >= BAY_LIT * area
    keep = lit_by_median.copy()
    if lit is not None:
        keep |= np.bincount(labels[inside], weights=lit.view(bool)[inside], minlength=count) >= BAY_LIT * area
    keep[0] = False
    for bay in np.flatnonzero(keep):
        x, y, w, h = stats[bay, :4]
        own = labels[y : y + h, x : x + w] == bay
        ys, xs = np.nonzero(own)
        _, sides, _ = cv2.minAreaRect(np.column_stack([xs, ys]).astype(np.float32))
        # Lit only between strokes, a bay is a block of writing packed close, as deep as its digits are
        # tall; slivers of a desk's grain beside the page, closed over, are as bright, but shallow.
        deep = depth[y : y + h, x : x + w][own].max() >= (BAY_DEPTH if lit_by_median[bay] else PACKED_DEPTH)
        keep[bay] = deep and min(sides) >= BAY_SHAPE * max(sides)
    if keep.any():
        # Each pixel beyond the hull takes the bay it is near (the highest-numbered, where two are near).
        rim = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * BAY_RIM + 1, 2 * BAY_RIM + 1))
        near = cv2.dilate(labels if labels.dtype == np.uint16 else labels.astype(np.float32), rim)
        beyond = (near > 0) & (hull == 0)
        bay_beyond = near[beyond].astype(np.intp)
        dim = np.bincount(bay_beyond, weights=~bright[beyond], minlength=count)
        # A bay with no pixel beyond it (at the frame's side) has nothing to tell: it stays out.
        keep &= dim >= BAY_DIM_BEYOND * np.maximum(np.bincount(bay_beyond, minlength=count), 1)
    return np.take(keep.view(np.uint8), labels)


def paper_to_the_edge(
    surface: np.ndarray, background: np.ndarray, paper: np.ndarray, tile: int, settings: SegmentSettings
) -> tuple[np.ndarray, np.ndarray]:
    """The paper to a few pixels near its edge, where the tiles it was found in are too coarse.

    Within a tile of the tile-level edge (measured at half resolution), paper is what is nearly as bright
    as the paper beside it (``settings.edge_brightness``: a desk, a wall or a sweater is darker; a median
    leaves ink strokes out of the comparison) and as quiet as the paper's quieter quarter (wood grain or a
    weave as bright as the page is busy). Only what joins the paper found by tiles counts, and what it
    encloses (a bold stroke) is paper too, and so are the bays of its outline where a digit written close
    to the edge held it back (``bays_of_the_page``). The page's very border, and the ends of the lines
    printed on it, are left out by a small erosion.
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
    # As bright as the paper beside it; beyond a tile of the tiles' edge, where the paper's level is not
    # measured, as the page's median level (only bays_of_the_page looks there).
    page_level = median(background[::2, ::2][core]) if core.any() else 0.0
    bright = smooth >= settings.edge_brightness * np.where(paper_level > 0, paper_level, page_level)
    grey = smooth.astype(np.float32)
    mean = cv2.blur(grey, (7, 7))
    spread = np.sqrt(np.maximum(cv2.blur(grey * grey, (7, 7)) - mean * mean, 0))
    quiet = spread < 4.0 * max(1.0, percentile(spread[core], 25))
    grown = np.where(zone, bright & quiet, core).astype(np.uint8)
    joined_paper = reached_from(grown, core & (grown > 0), connectivity=4)
    grown_paper = (joined_paper | enclosed_by(joined_paper)).astype(np.uint8)
    # Between the strokes of writing packed close (a row of boxes filled in), the paper is a few px wide
    # and the median leaves it dark: a bay is lit where the surface, closed over strokes, is as bright.
    closed = cv2.morphologyEx(smooth, cv2.MORPH_CLOSE, _STROKES)
    lit = closed >= settings.edge_brightness * np.where(paper_level > 0, paper_level, page_level)
    grown_paper |= bays_of_the_page(grown_paper, bright, lit)
    square = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))
    grown_paper = np.where(zone, cv2.erode(grown_paper, square) > 0, grown_paper > 0)
    # The edge is sure where the paper meets darker surroundings (texture as bright as the page is left to
    # textured_surroundings to find).
    paper_u8 = grown_paper.astype(np.uint8)
    band = (cv2.dilate(paper_u8, square) > 0) & (cv2.erode(paper_u8, square) == 0)
    dim = (zone & ~bright).astype(np.uint8)
    page_edge = band & (cv2.dilate(dim, cv2.getStructuringElement(cv2.MORPH_RECT, (13, 13))) > 0)
    full = cv2.resize(paper_u8, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return full, page_edge


# A tile that is no paper, beside the paper, takes at most this many times the threshold of the paper around
# it. At 1 (the paper's own), bits of a desk's grain beside the page's edge read as digits on 4 more of 460
# blank frames (and on 1 fewer); at 1.5, on none more, with nearly all of the digits and rules found again.
NOT_PAPER_OVER_PAPER = 1.5


def _paper_around(values: np.ndarray, bare: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per tile: the mean of ``values`` over the bare (paper) tiles of its 3x3 neighbourhood, itself
    included (0 where there are none), how many those are, and how many tiles the neighbourhood has
    inside the frame."""
    box = np.ones((3, 3), np.float32)
    border = {"borderType": cv2.BORDER_CONSTANT}
    bare_around = cv2.filter2D(bare.astype(np.float32), -1, box, **border)
    total = cv2.filter2D(np.where(bare, values, 0).astype(np.float32), -1, box, **border)
    tiles_around = cv2.filter2D(np.ones(bare.shape, np.float32), -1, box, **border)
    return total / np.maximum(bare_around, 1), bare_around, tiles_around


def ink_surface(
    work: WorkImage, dark: bool, rows: slice = slice(None), cols: slice = slice(None)
) -> np.ndarray:
    """What the ink is measured on (uint8, ink darker than the paper; in a box, where ``rows`` and ``cols``
    say): the ink channel for dark ink, the grey turned over for chalk on a board."""
    return work.ink_source[rows, cols] if dark else 255 - work.grey[rows, cols]


def find_ink(work: WorkImage, dark: bool, settings: SegmentSettings) -> InkImage:
    """Ink strength, the paper, and a per-region threshold above the noise of that region of the paper."""
    surface = ink_surface(work, dark)
    background = paper_level(work)[0].astype(np.float32) if dark else background_of(surface)
    signed = (background - surface.astype(np.float32)) / np.maximum(background, 24.0)
    ink = np.clip(signed, 0.0, 1.0)
    # The paper: as bright as paper gets in this frame, and mostly bare. A dark desk, the frame's black
    # bars, a sweater or a wooden door behind a held-up sheet are not: they are darker, or "ink" covers
    # most of them. The shaded part of a page still is (a shadow halves the light at most).
    brightest = percentile(background[::4, ::4], 95)
    bright = background >= settings.paper_brightness * brightest
    h, w = ink.shape
    # Tiles of about 64x64 px, measured on every other pixel, all at once.
    sub, sub_bright = signed[::2, ::2], bright[::2, ::2]
    tiles_y, tiles_x = max(1, sub.shape[0] // 32), max(1, sub.shape[1] // 32)
    th, tw = sub.shape[0] // tiles_y, sub.shape[1] // tiles_x

    def tiled(a: np.ndarray) -> np.ndarray:
        return a[: tiles_y * th, : tiles_x * tw].reshape(tiles_y, th, tiles_x, tw).swapaxes(1, 2)

    p10, p50 = np.moveaxis(percentiles(tiled(sub).reshape(tiles_y, tiles_x, -1), (10, 50), axis=2), -1, 0)
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
    filled |= enclosed_by(bare)
    # ...and a group of inked tiles by the frame's side that is a digit written large near it, not the
    # surroundings coming into view (see ``writing_at_the_frame_side``).
    filled |= writing_at_the_frame_side(~bare)
    bare |= filled
    if not bare.any():  # no clear paper (a close-up, a board): the whole frame is the writing surface
        bare[:] = True
    noise = percentile(sigma[bare], 25)  # the paper: the quieter part of what is bare
    paper = bright & cv2.resize(bare.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    page_edge = None
    if not bare.all():
        paper, page_edge = paper_to_the_edge(surface, background, paper, th, settings)
        # A tile along the page's edge holds some of the surroundings, whose grain is no noise of the paper
        # written on beside it: such a tile takes the paper's noise from the bare tiles around it.
        sigma_around, bare_around, tiles_around = _paper_around(sigma, bare)
        at_the_edge = (bare_around > 0) & (bare_around < tiles_around)
        sigma = np.where(at_the_edge, np.minimum(sigma, sigma_around), sigma)
    floor = max(settings.min_contrast, 5.0 * noise)
    # Each tile of the paper gets the threshold its own noise needs (texture raises only its own). A tile
    # taken as paper only through its neighbours is inked over much of its area: by a large, thick digit,
    # or by texture at the page's edge. Its spread is not noise, so its threshold is capped at heavy_ink:
    # dark pen strokes (0.5-0.9) pass, most grain and halos do not.
    tile_thresholds = np.maximum(floor, 5.0 * sigma)
    capped = np.minimum(tile_thresholds, max(floor, settings.heavy_ink))
    tile_thresholds = np.where(filled, capped, tile_thresholds).astype(np.float32)
    if not bare.all():
        # A tile that is no paper (a desk, a wall; or a patch of the page inked over half its area) has
        # the threshold of its texture, far above the paper's. It counts only where the paper found to the
        # pixel reaches into it, beside the paper's tiles, and there it is paper; interpolated between
        # tile centres, it also raised the threshold over half a tile of the paper beside it. The rules
        # and digits near the page's edge were lost under it. Such a tile takes the paper's threshold
        # around it where that is lower, within ``NOT_PAPER_OVER_PAPER``: the surroundings' texture is kept
        # out by the paper mask (and ``textured_surroundings``), the margin for the bits of it that the
        # paper mask takes in beside the page's edge.
        paper_threshold, bare_around, _ = _paper_around(tile_thresholds, bare)
        beside_the_paper = ~bare & (bare_around > 0)
        tile_thresholds = np.where(
            beside_the_paper,
            np.minimum(tile_thresholds, NOT_PAPER_OVER_PAPER * paper_threshold),
            tile_thresholds,
        ).astype(np.float32)
    threshold = cv2.resize(tile_thresholds, (w, h), interpolation=cv2.INTER_LINEAR)
    return InkImage(ink, paper, threshold, noise, page_edge)


def faint_ink(ink: InkImage, share: float = 0.5) -> np.ndarray:
    """Pixels on the paper at ``share`` of their threshold or more (uint8 0/1): where printed lines are
    looked for. A grid or a ruling is printed light, so that writing stands out: under the ink's threshold
    its lines reach the ink mask only where they cross or print a little darker, as crosses and stubs that
    no line transform finds (and that read as 1s and 4s). At half the threshold they are nearly whole;
    the paper's noise there is scattered points, never a long straight line."""
    return ((ink.ink > share * ink.threshold) & ink.paper).view(np.uint8)


def ink_mask(ink: InkImage, low: float = 0.75) -> np.ndarray:
    """Pixels that are ink (uint8 0/1), with hysteresis: a stroke is traced down to ``low`` times the
    threshold from wherever it passes the threshold, so a blurred or faint stroke stays whole without
    letting the paper's noise in."""
    weak = ((ink.ink > low * ink.threshold) & ink.paper).astype(np.uint8)
    weak = cv2.morphologyEx(weak, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    return reached_from(weak, ink.ink > ink.threshold).view(np.uint8)
