"""The settings of the segmentation and the small records its stages pass between them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np

from device.reading import Box

# Px of padding round a candidate's ink crop (``crop_ink``), kept by every crop made from one: a stroke's
# soft edge at the box's side stays in view.
CROP_PAD = 2


@dataclass(frozen=True)
class SegmentSettings:
    """Tuning of the segmentation; sizes are fractions of the frame unless they say px."""

    polarity: str = "auto"  # "auto", "dark" (ink on paper) or "light" (chalk on a board)
    work_size: int = 800  # longer side the frame is reduced to before segmenting (px; see working_scale)
    heavy_ink: float = 0.5  # the highest threshold of a tile that is paper only through its neighbours
    min_contrast: float = 0.08  # ink must be this much darker (relative) than the paper around it
    min_height: float = 0.02  # digit height, fraction of the frame's shorter side
    max_height: float = 0.98
    max_aspect: float = 1.5  # width / height of one digit; wider candidates are offered as split digits
    max_split_aspect: float = 5.0  # wider than this is not a group of digits (a line, an edge)
    max_fill: float = 0.88  # ink pixels / box area, for boxes wider than a "1"
    relative_height: float = 0.4  # a digit is at least this fraction of the typical digit height
    relative_contrast: float = 0.2  # ...and this fraction as dark as the darkest (glare leaves a fifth)
    min_edge: float = 0.035  # strokes have sharp edges: ink contrast change per px (smooth blotches don't)
    min_edge_snr: float = 2.5  # ...and those edges stand well above the frame's noise
    paper_brightness: float = 0.3  # of the brightest paper (a hard shadow leaves a third)
    edge_brightness: float = 0.85  # near the page's edge, paper is this bright against the paper beside it
    rule_length: float = 0.2  # a straight stroke this long (fraction of the longer side) is a rule
    max_pieces: int = 200  # components considered per frame (the largest), bounding the cost
    max_candidates: int = 200  # digit candidates measured per frame (the largest): a dense page's worth
    roi: tuple[float, float, float, float] | None = None  # x, y, w, h as fractions of the frame
    plain_pages: bool = True  # a sheet filling the frame takes the short way (see device.segment.plain)


@dataclass(frozen=True)
class Segment:
    """One candidate: its box (frame px, with its line number), its ink crop (uint8, white on black), and
    for a candidate that may be several digits written touching, what its cuts are made from
    (:func:`device.segment.split_readings` makes them when the model is unsure of it whole)."""

    box: Box
    ink: np.ndarray
    cuttable: Cuttable | None = field(default=None, compare=False)
    surroundings: Surroundings | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Surroundings:
    """What a candidate's ink is measured again from when the model is unsure of it (see
    :func:`device.segment.ink_against_the_paper_round_it`): the working image, the ink's polarity, and
    where the candidate's ink crop lies in it (its first pixel, working px)."""

    work: WorkImage
    dark: bool
    origin: tuple[int, int]


@dataclass(frozen=True)
class Cuttable:
    """What a candidate's readings as several digits are cut from: its ink without the crop's padding, its
    box in working px, the working image (to map the parts to frame px), and which ways it is cut: down,
    into digits side by side (a candidate at least half as wide as tall), and across, into one digit above
    another (``stacked``: a candidate as tall as two lines; ``necked``: its ink all but vanishes across its
    middle, two digits of two lines touching by a point, see :func:`device.segment.has_a_neck`)."""

    core: np.ndarray
    box: tuple[int, int, int, int]
    work: WorkImage
    stacked: bool = False
    necked: bool = False

    @property
    def may_be_two_lines(self) -> bool:
        """Digits of two lines, one above the other (as tall as two lines, or touching by a point)."""
        return self.stacked or self.necked

    def too_wide(self, settings: SegmentSettings) -> bool:
        """Wider than one digit can be: read only as its parts, or not at all."""
        return self.box[2] > settings.max_aspect * self.box[3]


@dataclass(frozen=True)
class Segmentation:
    """A frame's candidates in reading order, and whether the frame was cut short: it held more pieces of
    ink than ``max_pieces`` (clutter: a textured surface, noise) and only the largest were looked at."""

    segments: list[Segment]
    cut_short: bool = False


@dataclass(frozen=True)
class WorkImage:
    """The frame at the working size (see ``working_scale``), and how to map back to frame pixels."""

    grey: np.ndarray  # uint8, blurred a little
    ink_source: np.ndarray  # uint8: grey, or the darkest colour channel for dark ink
    scale: float
    offset: tuple[int, int]
    # What is worked out from the frame once, for whichever way it takes (see device.segment.paper_level).
    known: dict = field(default_factory=dict, compare=False, repr=False)

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

    def strength(self, rows: slice, cols: slice) -> np.ndarray:
        """The ink strength in a box (float32)."""
        return self.ink[rows, cols]

    def threshold_in(self, rows: slice, cols: slice) -> np.ndarray:
        """The threshold in a box (float32)."""
        return self.threshold[rows, cols]


class InkInBoxes(Protocol):
    """What the per-candidate steps (``keep_digits``, ``crop_ink``) read of the ink: the strength and the
    threshold in a candidate's box, where the paper is, and its noise. ``InkImage`` holds all of it as
    frames; ``device.segment.plain.PlainInk`` works it out box by box."""

    paper: np.ndarray
    noise: float

    def strength(self, rows: slice, cols: slice) -> np.ndarray: ...

    def threshold_in(self, rows: slice, cols: slice) -> np.ndarray: ...


class FoundPieces(NamedTuple):
    """The pieces of ink of a mask (the largest, at most ``max_pieces``), its label image, and whether the
    cap left out pieces large enough to count."""

    pieces: list[Piece]
    labels: np.ndarray
    cut_short: bool = False


class KeptPieces(NamedTuple):
    """What stages 3-5 leave: the digit candidates, the ink they were measured on, the label image their
    components are in, and whether the frame was cut short (see ``FoundPieces``)."""

    pieces: list[Piece]
    ink: InkInBoxes
    labels: np.ndarray
    cut_short: bool = False
    dark: bool = True  # the ink's polarity (see ``Surroundings``)


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

    def pixels_in(self, labels: np.ndarray) -> np.ndarray:
        """Where this piece's components are in ``labels`` (a part of the label image; bool)."""
        if len(self.labels) == 1:
            return labels == next(iter(self.labels))  # most pieces: a few times faster than np.isin
        return np.isin(labels, list(self.labels))

    def union(self, other: Piece) -> Piece:
        x0, y0 = min(self.x, other.x), min(self.y, other.y)
        x1, y1 = max(self.x + self.w, other.x + other.w), max(self.y + self.h, other.y + other.h)
        return Piece(x0, y0, x1 - x0, y1 - y0, self.labels | other.labels, self.area + other.area)
