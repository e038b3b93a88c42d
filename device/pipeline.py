"""One frame through the stateless stages: segment -> normalize -> classify -> choose, with timings.

The segmenter proposes freely. Every candidate is normalized and classified in one batched invoke. One no
wider than a digit that the model is not sure of is measured again against the paper round it (where the light
steps, the first measure loses strokes), and read without the printed lines along its sides (a box it is
written in and touches), all such in one invoke; the surest reading stands. Two candidates the model is still
unsure of or calls no digit, one above the other, may be one digit broken across its middle: they are read
joined (one more invoke, where there are such), and the joined candidate stands for both where the model is
sure of it. Those the model is still unsure of whole (any too wide for one digit, and those as wide as two
squeezed digits that it is not quite sure of) are then cut, side by side as touching digits or, as tall as two
lines, one above another, or, joined by fainter printed lines (a form's boxes), as their pen's strokes alone,
and all their parts are classified in one more invoke. Per candidate the more confident interpretation wins (a
pair of confident digits beats one unsure wide blob; a digit the model is sure of is never cut), and what the
model calls "not a digit" (texture, a line, an operator, a letter) is dropped: it never reaches the reading,
the outputs or the vote. A digit still unsure, or a candidate called no digit but not surely, is read once
more from a few views of it (a pixel off, turned a little), all such in a last invoke (most frames need none).
Where a reading one above another won, a candidate measured again shrank to its digit, or two candidates were
joined, the digits are put in reading order again.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace

import numpy as np

from device.classify import Prediction
from device.normalize import jittered, normalize_digit, turned
from device.reading import Digit
from device.segment import (
    Segment,
    SegmentSettings,
    broken_in_two,
    ink_against_the_paper_round_it,
    joined,
    reading_order,
    segment_frame,
    split_readings,
    without_straight_sides,
)
from device.segment.order import writing_angle
from device.segment.splits import PAIR_ASPECT, SQUARE_PART_HEIGHT, narrowest_part, point_valleys


@dataclass(frozen=True)
class Rejected:
    """A candidate the model called "not a digit" (kept for ``--save-crops``' ``none/`` folder)."""

    segment: Segment
    normalized: np.ndarray
    prediction: Prediction


@dataclass
class FrameResult:
    """The digits of one frame (reading order), their normalized images, the chosen segments, what was
    rejected as not a digit, what each stage cost (s), and whether segmentation was cut short (clutter
    beyond its cap on pieces of ink)."""

    digits: list[Digit]
    normalized: list[np.ndarray]
    segments: list[Segment]
    timings: dict[str, float] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    cut_short: bool = False


@dataclass
class ChosenPart:
    """A part of the reading chosen for a candidate (the candidate itself, or one of its cut parts), and
    what the model says of it; ``whole``: it is the candidate itself, not a part of a cut."""

    segment: Segment
    normalized: np.ndarray
    prediction: Prediction
    whole: bool


@dataclass(frozen=True)
class Interpretation:
    """One way to read a candidate: as itself, or as the parts of one of its splits."""

    segments: tuple[Segment, ...]
    normalized: tuple[np.ndarray, ...]
    predictions: tuple[Prediction, ...]

    def part_scores(self, none_threshold: float) -> list[float]:
        """How sure the model is of each part being its digit (0 for a part that is not a digit)."""
        return [0.0 if rejected(p, none_threshold) else p.confidence * (1 - p.none) for p in self.predictions]

    def score(self, none_threshold: float) -> float:
        """How sure the weakest part is of being its digit (0 when any part is not a digit)."""
        return min(self.part_scores(none_threshold), default=0.0)

    def typical_score(self, none_threshold: float, digits_only: bool = False) -> float:
        """The geometric mean of the parts' scores: high when most parts are sure digits, 0 when any part
        is not a digit (``digits_only``: of the parts that are digits)."""
        scores = self.part_scores(none_threshold)
        if digits_only:
            scores = [s for s in scores if s > 0]
        if not scores or min(scores) <= 0:
            return 0.0
        return float(np.exp(np.mean(np.log(scores))))

    def sure_but_one(self, none_threshold: float) -> bool:
        """A row of touching digits read but for one part: three parts or more, one of them "not a digit"
        (a digit overlapped past reading), every other a sure digit (``SURE_PART``), and one of those more
        than a 1 (a stroke of texture or a rule's stub reads as a sure 1; a digit with a loop or a bend
        is evidence of writing)."""
        scores = self.part_scores(none_threshold)
        digits = [(s, p.digit) for s, p in zip(scores, self.predictions, strict=True) if s > 0]
        return (
            len(scores) >= 3
            and len(digits) == len(scores) - 1
            and min(s for s, _ in digits) >= SURE_PART
            and any(digit != 1 for _, digit in digits)
        )


def digit_probability(prediction: Prediction) -> float:
    """How likely the candidate is its likeliest digit: of the ten, and a single digit at all."""
    return prediction.confidence * (1.0 - prediction.none)


def rejected(prediction: Prediction, none_threshold: float) -> bool:
    """The model says "not a digit" with at least ``none_threshold`` probability."""
    return prediction.none >= none_threshold


# Below this score the model is unsure of a reading (see ``choose``).
UNSURE = 0.5
# A part of a row of touching digits is a sure digit at this score (see ``Interpretation.sure_but_one``).
SURE_PART = 0.8
# A candidate read whole as "not a digit" with less than this is read again from a few views of it.
SURELY_NO_DIGIT = 0.95
# A candidate with a neck (two digits of two lines touching by a point, see ``has_a_neck``), or as tall as
# two lines of the writing (``Cuttable.stacked``), is read whole only at this score or more: two digits
# squeezed into one crop often read as one digit at 0.6-0.9 (an 8 over a 6 as an 8, a 2 over a 2 as a 3, a
# 0 over a 0 as an 8).
SURE_OF_ONE_NOT_TWO = 0.95
# A candidate as wide as two digits squeezed side by side (``PAIR_ASPECT``) is read whole only at this score
# or more: a "1" touching its neighbour ("41", "17", "21") reads as that neighbour at 0.7-0.9. Below it, its
# split wins where every part is surer than this and than the whole (see ``choose``).
SURE_OF_ONE_NOT_A_PAIR = 0.9
# A candidate measured again whose ink fits a box under this share of its height held more than its digit.
SHRUNK = 0.75
# A page turned (a sheet lying askew on a desk, a camera held at an angle) turns its digits with its lines,
# past what the model learned to read (turns of up to 12 degrees). Where the writing's lines run at this
# angle or more (degrees), each candidate is also read turned back by it, and the surer of the two
# readings kept: a writer who keeps the digits upright along a rising line reads surer as written. On
# sheets turned 10-30 degrees, 5 and 8 read alike (and 10 a little worse); under 8 the model reads the
# digits as well as written, and a real photo whose writing ran at 6 degrees lost a digit levelled.
TURNED_WRITING = 8.0


def without_a_lone_stroke(readings: list[Interpretation]) -> list[Interpretation]:
    """The readings of a candidate as tall as two lines, but without a neck, that read no part as a 1.

    Such a candidate may be one digit with a long stroke (a 4's or a 9's stem, a 7's tail): cut across,
    its head reads as a digit and the stroke alone as a sure 1, surer than the whole. Where two lines'
    digits touch by a point, the neck tells; here nothing does, so a 1 is no evidence of a second line."""
    return [reading for reading in readings if all(p.digit != 1 for p in reading.predictions)]


def choose(
    options: list[Interpretation],
    none_threshold: float,
    unsure: float = UNSURE,
    two_lines: bool = False,
    maybe_a_pair: bool = False,
    one_squeezed_in: bool = False,
) -> Interpretation:
    """The candidate as a whole, unless the model is unsure of it (its score below ``unsure``, or it is
    "not a digit") and a split reading is surer: a pair of confident digits beats one unsure wide blob,
    but a confident single digit is never cut in two because its halves happen to look like digits.

    A candidate with a neck, digits of ``two_lines`` touching by a point, which the model reads whole but
    not surely, gives way to its parts one above the other when both are surer digits than the whole.
    A candidate as wide as two squeezed digits (``maybe_a_pair``) read whole under
    ``SURE_OF_ONE_NOT_A_PAIR`` gives way to a split whose every part is surer than that and the whole.
    So does a narrower candidate that may hide a "1" (``one_squeezed_in``, see :func:`may_hide_a_one`),
    but only to a "1" and a digit side by side."""
    whole, splits = options[0], options[1:]
    if two_lines:
        best = max(splits, key=lambda option: option.score(none_threshold), default=whole)
        return best if best.score(none_threshold) > whole.score(none_threshold) else whole
    whole_score = whole.score(none_threshold)
    # The readings held to the pair bar: every part surer than SURE_OF_ONE_NOT_A_PAIR and than the whole.
    pairs = None
    if maybe_a_pair and unsure <= whole_score < SURE_OF_ONE_NOT_A_PAIR:
        pairs = splits
    elif one_squeezed_in:
        # Cut only by a guess at its middle: the parts must be a "1" and a digit, each about as tall as the
        # candidate (a slanted 7's stem, cut off below its bar, reads as a sure "1" too, but under the 7,
        # not beside it).
        tall = SQUARE_PART_HEIGHT * whole.segments[0].box.h
        pairs = [
            option
            for option in splits
            if any(p.digit == 1 for p in option.predictions) and all(s.box.h >= tall for s in option.segments)
        ]
    if pairs is not None and splits:
        best = max(pairs, key=lambda option: option.score(none_threshold), default=whole)
        return best if best.score(none_threshold) > max(whole_score, SURE_OF_ONE_NOT_A_PAIR) else whole
    if not splits or whole_score >= unsure:
        return whole
    best = max(splits, key=lambda option: option.score(none_threshold))
    if best.score(none_threshold) > unsure:
        return best
    # The whole is not a digit at all: a row of touching digits, one of them squeezed or overlapped into
    # an unsure shape, reads better as its parts (that one shown as unsure) than dropped whole. Every part
    # must still be some digit, so texture cut into pieces stays rejected...
    if rejected(whole.predictions[0], none_threshold):
        best = max(splits, key=lambda option: option.typical_score(none_threshold))
        if best.typical_score(none_threshold) > unsure:
            return best
        # ...but for one part of a row of three or more, overlapped so deeply (the 8 of "586" with the
        # 6's loop inside it) that no cut reads it as any digit: the others, sure digits and not all 1s,
        # are still read, and that one dropped.
        partial = [option for option in splits if option.sure_but_one(none_threshold)]
        if partial:
            return max(partial, key=lambda option: option.typical_score(none_threshold, digits_only=True))
    return whole


def may_hide_a_one(candidate: Segment, whole: Interpretation, none_threshold: float) -> bool:
    """A candidate narrower than a pair (``PAIR_ASPECT``), but at least half as wide as tall, on one line,
    that the model is unsure of but does not reject, and with no point where its ink all but vanishes: it
    may be a "1" pressed against its neighbour along a stroke ("61", "41", "71" written close), which reads
    whole as an unsure 4 or 7. It is cut from its middle too (see ``choose``)."""
    cut, box = candidate.cuttable, candidate.box
    return (
        cut is not None
        and not cut.may_be_two_lines
        and 0.5 * box.h <= box.w < PAIR_ASPECT * box.h
        and not rejected(whole.predictions[0], none_threshold)
        and whole.score(none_threshold) < SURE_OF_ONE_NOT_A_PAIR
        and not point_valleys(cut.core, narrowest_part(cut.box[3]))
    )


@dataclass(frozen=True)
class CutPlan:
    """How a candidate is read besides whole (see :func:`plan_cuts`): the readings of its cuts, and what
    :func:`choose` must know of it."""

    readings: tuple[tuple[Segment, ...], ...] = ()
    too_wide: bool = False  # wider than one digit can be: read only as its parts, or not at all
    two_lines: bool = False  # cut one above another only: a neck, or as tall as two lines
    no_neck: bool = False  # ...as tall as two lines without a neck: readings with a 1 are left out
    maybe_a_pair: bool = False  # as wide as two squeezed digits
    one_squeezed_in: bool = False  # narrower, but may hide a 1 (see may_hide_a_one)


def plan_cuts(
    candidate: Segment, whole: Interpretation, settings: SegmentSettings, none_threshold: float
) -> CutPlan:
    """Whether and how to cut a candidate, from what the model made of it whole.

    Cut only a candidate the model is unsure of whole (a confident single digit is never cut, see
    :func:`choose`), one as wide as two squeezed digits, or narrower but maybe hiding a 1, that it is not
    quite sure of, and one too wide to be one digit; and one above another a candidate with a neck or as
    tall as two lines, unless the model is sure of it whole. Cutting is made only when asked: most
    candidates are single digits the model is sure of."""
    score = whole.score(none_threshold)
    cut, box = candidate.cuttable, candidate.box
    too_wide = cut is not None and cut.too_wide(settings)
    pair = cut is not None and box.w >= PAIR_ASPECT * box.h
    hides_a_one = not pair and may_hide_a_one(candidate, whole, none_threshold)
    plan = CutPlan(too_wide=too_wide, maybe_a_pair=pair, one_squeezed_in=hides_a_one)
    if score < UNSURE or too_wide or ((pair or hides_a_one) and score < SURE_OF_ONE_NOT_A_PAIR):
        # A narrow candidate is cut from its middle where the model calls it no digit (two slanted 1s
        # close together), or where it may hide a 1.
        middle = rejected(whole.predictions[0], none_threshold) or hides_a_one
        return replace(plan, readings=split_readings(candidate, settings, cut_the_middle=middle))
    if cut is not None and cut.may_be_two_lines and score < SURE_OF_ONE_NOT_TWO:
        readings = split_readings(candidate, settings, across_only=True)
        return replace(plan, readings=readings, two_lines=True, no_neck=not cut.necked)
    return plan


def one_above_another(parts: tuple[Segment, ...]) -> bool:
    """The parts of a split lie one above the other (a stacked reading), not side by side."""
    return all(lower.box.y >= upper.box.y + upper.box.h // 2 for upper, lower in itertools.pairwise(parts))


def reorder(result: FrameResult) -> None:
    """Put the digits of a frame (and their images and segments) in reading order again, with line numbers:
    after a stacked reading, its two parts belong to two lines."""
    order = {
        (box.x, box.y, box.w, box.h): (index, box.line)
        for index, box in enumerate(reading_order([s.box for s in result.segments]))
    }
    keyed = sorted(
        zip(result.digits, result.normalized, result.segments, strict=True),
        key=lambda item: order[(item[2].box.x, item[2].box.y, item[2].box.w, item[2].box.h)][0],
    )
    result.digits, result.normalized, result.segments = [], [], []
    for digit, image, part in keyed:
        line = order[(part.box.x, part.box.y, part.box.w, part.box.h)][1]
        box = replace(part.box, line=line)
        result.digits.append(replace(digit, box=box))
        result.normalized.append(image)
        result.segments.append(replace(part, box=box))


class FramePipeline:
    """Segment a frame, normalize every candidate MNIST-style, classify them all in one batch, choose."""

    def __init__(
        self,
        classifier,
        settings: SegmentSettings = SegmentSettings(),
        min_confidence: float = 0.5,
        none_threshold: float = 0.7,
    ):
        self.classifier = classifier
        self.settings = settings
        self.min_confidence = min_confidence
        self.none_threshold = none_threshold

    def _worth_a_second_look(self, chosen: ChosenPart) -> bool:
        """An unsure digit, or a whole candidate the model calls no digit, but not surely."""
        if rejected(chosen.prediction, self.none_threshold):
            return chosen.whole and chosen.prediction.none < SURELY_NO_DIGIT
        return chosen.prediction.confidence < self.min_confidence

    def _dropped(self, prediction: Prediction) -> bool:
        """No digit, or an unsure digit that the model half thinks is no digit at all: dropped, not shown
        as "?"."""
        doubtful = prediction.confidence < self.min_confidence and prediction.none >= self.none_threshold / 2
        return rejected(prediction, self.none_threshold) or doubtful

    def _stands(self, second: Interpretation, first: Interpretation) -> bool:
        """Whether a candidate's reading from its second measure stands over its first: it must be surer. A
        stroke alone reads as a sure 1, and a measure that lost a faint stroke (a 7's bar) leaves one: the
        second measure makes a 1 surer, never makes one. A candidate the first reading drops (no digit, or
        doubtful) comes back only as a sure digit (``SURE_PART``): a fragment of a digit, an operator or a
        shadow's wedge, measured again, can pass for an unsure one."""
        nt = self.none_threshold
        was, now = first.predictions[0], second.predictions[0]
        shown = not self._dropped(was)
        if second.score(nt) <= first.score(nt) or (now.digit == 1 and not (shown and was.digit == 1)):
            return False
        return shown or second.score(nt) >= SURE_PART

    def _measure_again(self, segments: list[Segment], wholes: dict, read: _Reader) -> tuple[float, bool]:
        """A candidate the model is not sure of, no wider than one digit (``max_aspect``), may have lost part
        of its strokes to the threshold where the light steps, or hold a printed line along its side (a
        box's, a rule's) that it touches: it is measured again against the paper round it (see
        :func:`~device.segment.ink_against_the_paper_round_it`) and read without such lines (see
        :func:`~device.segment.without_straight_sides`), all such in one invoke, and the surest reading
        stands (in ``wholes``). Returns the seconds the measuring took (segmentation's work), and whether a
        reading that stands is of a box much shorter than its candidate's (the candidate held more than its
        digit, a shadow's wedge: its line is found again)."""
        nt = self.none_threshold
        t0 = time.perf_counter()
        again = [
            (id(s), second)
            for s in segments
            if s.box.w <= self.settings.max_aspect * s.box.h
            and wholes[id(s)].score(nt) < SURE_OF_ONE_NOT_A_PAIR
            for second in (ink_against_the_paper_round_it(s), without_straight_sides(s))
            if second is not None
        ]
        measuring_s = time.perf_counter() - t0
        read.classify([second for _key, second in again])
        moved = False
        firsts = {key: wholes[key] for key, _second in again}
        for key, second in again:
            reading = read.interpretation((second,))
            if self._stands(reading, wholes[key]):
                moved |= second.box.h < SHRUNK * firsts[key].segments[0].box.h
                wholes[key] = reading
        return measuring_s, moved

    def _join_broken(
        self, segments: list[Segment], wholes: dict, read: _Reader
    ) -> tuple[list[Segment], float]:
        """Two candidates the model is unsure of whole or calls no digit, one above the other, may be one
        digit broken across its middle (see :mod:`device.segment.joins`): they are read joined, all such
        in one invoke, and the joined candidate stands for both where the model is sure of it
        (``SURE_PART``), the surest first. Returns the candidates, and the seconds the joining took
        (segmentation's work)."""
        nt = self.none_threshold
        t0 = time.perf_counter()
        unsure = [s for s in segments if wholes[id(s)].score(nt) < UNSURE]
        pairs = [(a, b, j) for a, b in broken_in_two(unsure, self.settings.max_aspect) if (j := joined(a, b))]
        joining_s = time.perf_counter() - t0
        if not pairs:
            return segments, joining_s
        read.classify([j for _a, _b, j in pairs])
        readings = sorted(
            ((read.interpretation((j,)), a, b) for a, b, j in pairs), key=lambda r: -r[0].score(nt)
        )
        taken: set[int] = set()
        stands_for: dict[int, Segment] = {}
        for reading, a, b in readings:
            if reading.score(nt) < SURE_PART or id(a) in taken or id(b) in taken:
                continue
            taken |= {id(a), id(b)}
            j = reading.segments[0]
            stands_for[id(a)] = j
            wholes[id(j)] = reading
        if not stands_for:
            return segments, joining_s
        return [
            stands_for.get(id(s), s) for s in segments if id(s) in stands_for or id(s) not in taken
        ], joining_s

    def process(self, frame) -> FrameResult:
        """Run one frame; raises FrameError for an unusable frame."""
        t0 = time.perf_counter()
        segmentation = segment_frame(frame, self.settings)
        segments = segmentation.segments
        t1 = time.perf_counter()
        # A candidate as tall as two lines (their digits touching) stands between them, no part of either.
        upright = [s.box for s in segments if s.cuttable is None or not s.cuttable.stacked]
        read = _Reader(self.classifier, level_by=writing_angle(upright, least=TURNED_WRITING))
        read.classify(segments)
        wholes = {id(s): read.interpretation((s,)) for s in segments}
        nt = self.none_threshold

        measuring_s, moved = self._measure_again(segments, wholes, read)
        count = len(segments)
        segments, joining_s = self._join_broken(segments, wholes, read)
        measuring_s += joining_s
        moved |= len(segments) < count  # a joined candidate's halves may have been read on two lines

        # The candidates to cut (see ``plan_cuts``), and all their parts classified in one batch.
        t2 = time.perf_counter()
        plans = {id(s): plan_cuts(s, wholes[id(s)], self.settings, nt) for s in segments}
        t3 = time.perf_counter()
        read.classify([part for plan in plans.values() for reading in plan.readings for part in reading])

        result = FrameResult([], [], [], rejected=[], cut_short=segmentation.cut_short)
        stacked = left_out = False
        chosen: list[ChosenPart] = []
        for candidate in segments:
            plan = plans[id(candidate)]
            if plan.too_wide and not plan.readings:
                left_out = True
                continue  # wider than a digit, and no way to read it as several
            parts = [read.interpretation(reading) for reading in plan.readings]
            if plan.no_neck:
                parts = without_a_lone_stroke(parts)
            best = choose(
                [wholes[id(candidate)], *parts],
                nt,
                two_lines=plan.two_lines,
                maybe_a_pair=plan.maybe_a_pair,
                one_squeezed_in=plan.one_squeezed_in,
            )
            stacked |= len(best.segments) > 1 and one_above_another(best.segments)
            found = zip(best.segments, best.normalized, best.predictions, strict=True)
            chosen += [ChosenPart(*part, whole=len(best.segments) == 1) for part in found]
        # An unsure digit is read again from a few views of it (a pixel off, turned a little): one look at a
        # borderline shape is a coin toss that the average of several settles. So is a candidate read whole
        # as no digit, but not surely (not a part of a cut: half a digit is no digit from any view). All of
        # them in one invoke.
        again = [part for part in chosen if self._worth_a_second_look(part)]
        if again:
            views = [[part.normalized, *jittered(part.normalized)] for part in again]
            for part, prediction in zip(again, self.classifier.classify_views(views), strict=True):
                part.prediction = prediction
        for part in chosen:
            prediction = part.prediction
            sure = prediction.confidence >= self.min_confidence
            if self._dropped(prediction):
                result.rejected.append(Rejected(part.segment, part.normalized, prediction))
                continue
            result.digits.append(
                Digit(prediction.digit if sure else None, prediction.confidence, part.segment.box)
            )
            result.normalized.append(part.normalized)
            result.segments.append(part.segment)
        if stacked or moved or left_out or result.rejected:
            # Two lines' digits read from one candidate, or a digit read apart from the shadow it was
            # found with: each goes to its own line. A candidate left out (no digit: a form's box round a
            # digit, found beside the digit it frames) may have taken the place in a line that a digit
            # read should have: the digits read are put in order among themselves.
            reorder(result)
        t4 = time.perf_counter()
        result.timings = {
            "segment": t1 - t0 + (t3 - t2) + measuring_s,
            "normalize": read.normalize_s,
            "classify": (t4 - t1) - (t3 - t2) - measuring_s - read.normalize_s,
        }
        return result


class _Reader:
    """Normalizes and classifies segments in batches, each distinct part once, and keeps what it found.

    Found by the segment's ``id``, with the segment itself kept: a segment read and then let go (a second
    measure whose reading did not stand) would otherwise leave its id free for a new segment, which would
    be taken as read already and given the other's prediction."""

    def __init__(self, classifier, level_by: float = 0.0):
        self.classifier = classifier
        self.level_by = level_by  # degrees: each segment is also read turned by this (see TURNED_WRITING)
        self.found: dict[int, tuple[Segment, np.ndarray, Prediction]] = {}
        self.normalize_s = 0.0

    def classify(self, segments: list[Segment]) -> None:
        """Normalize and classify, in one invoke, the segments not read yet (a part that several splits
        share is one Segment object); on turned writing, each as it is and levelled, the surer kept."""
        new = list({id(s): s for s in segments if id(s) not in self.found}.values())
        if not new:
            return
        t0 = time.perf_counter()
        normalized = [normalize_digit(s.ink) for s in new]
        if self.level_by:
            normalized += [normalize_digit(turned(s.ink, self.level_by)) for s in new]
        self.normalize_s += time.perf_counter() - t0
        predictions = self.classifier.classify(normalized)
        count = len(new)
        for k, s in enumerate(new):
            views = [(normalized[k], predictions[k])]
            if self.level_by:
                views.append((normalized[count + k], predictions[count + k]))
            # As written where the two are as sure (max keeps the first).
            image, prediction = max(views, key=lambda view: digit_probability(view[1]))
            self.found[id(s)] = (s, image, prediction)

    def interpretation(self, parts: tuple[Segment, ...]) -> Interpretation:
        """The parts as one reading, with what was found for each."""
        found = [self.found[id(p)] for p in parts]
        return Interpretation(parts, tuple(f[1] for f in found), tuple(f[2] for f in found))
