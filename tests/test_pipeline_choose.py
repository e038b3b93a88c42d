"""How the pipeline chooses between a candidate read whole and read as touching digits (``choose``)."""

import numpy as np

from device.classify import Prediction
from device.pipeline import FramePipeline, Interpretation, choose
from device.reading import Box
from device.segment import Segment

NONE_THRESHOLD = 0.7


def option(*predictions: Prediction) -> Interpretation:
    blank = np.zeros((28, 28), np.uint8)
    segments = tuple(Segment(Box(10 * i, 0, 10, 20), blank) for i in range(len(predictions)))
    return Interpretation(segments, tuple(blank for _ in predictions), predictions)


def sure(digit: int) -> Prediction:
    return Prediction(digit, 0.95, 0.02)


def test_a_confident_single_digit_is_never_cut():
    whole = option(sure(0))
    halves = option(sure(1), sure(1))
    assert choose([whole, halves], NONE_THRESHOLD) is whole


def test_a_pair_of_confident_digits_beats_an_unsure_blob():
    whole = option(Prediction(8, 0.4, 0.1))
    pair = option(sure(2), sure(4))
    assert choose([whole, pair], NONE_THRESHOLD) is pair


def test_a_rejected_row_of_touching_digits_keeps_its_parts_when_most_are_sure():
    """Three touching digits, the last squeezed into an unsure shape: the whole is "not a digit", no split
    is sure of every part, yet reading the parts (one shown unsure) beats dropping all three."""
    whole = option(Prediction(2, 0.3, 0.95))
    squeezed = option(sure(7), sure(8), Prediction(9, 0.3, 0.2))
    worse = option(sure(7), Prediction(1, 0.2, 0.1))
    assert choose([whole, worse, squeezed], NONE_THRESHOLD) is squeezed


def test_texture_cut_into_parts_stays_rejected():
    """A split with a part the model calls "not a digit" is no reading: strokes of texture read as sure
    1s round it are no evidence of a row of digits."""
    whole = option(Prediction(2, 0.3, 0.95))
    pieces = option(sure(1), Prediction(1, 0.6, 0.9), sure(1))
    mostly_unsure = option(Prediction(1, 0.3, 0.3), Prediction(7, 0.3, 0.3))
    assert choose([whole, pieces, mostly_unsure], NONE_THRESHOLD) is whole


def test_a_row_of_touching_digits_keeps_its_sure_digits_around_one_overlapped_past_reading():
    """ "586" written close, the 6's loop inside the 8: every cut leaves the 8 "not a digit". The whole is
    rejected and no split reads every part; the 5 and the 6 are still read, the 8 dropped."""
    whole = option(Prediction(0, 0.1, 0.97))
    five_x_six = option(sure(5), Prediction(8, 0.6, 0.95), sure(6))
    five_x = option(sure(5), Prediction(4, 0.3, 0.9))
    assert choose([whole, five_x, five_x_six], NONE_THRESHOLD) is five_x_six
    # Two parts are not a row: one sure digit beside "not a digit" stays rejected with it.
    assert choose([whole, five_x], NONE_THRESHOLD) is whole
    # Nor are parts that are unsure, or a second part that is "not a digit".
    unsure = option(sure(5), Prediction(8, 0.6, 0.95), Prediction(6, 0.7, 0.1))
    two_out = option(sure(5), Prediction(8, 0.6, 0.95), Prediction(6, 0.6, 0.8), sure(3))
    assert choose([whole, unsure, two_out], NONE_THRESHOLD) is whole


def test_an_unsure_digit_that_is_a_digit_is_not_split_on_weak_parts():
    """The relaxed rule is only for a whole the model rejects: an unsure digit stays whole unless a split
    is sure of every part."""
    whole = option(Prediction(8, 0.45, 0.1))
    split = option(sure(3), Prediction(3, 0.4, 0.1))
    assert choose([whole, split], NONE_THRESHOLD) is whole


def test_two_lines_digits_read_whole_give_way_to_surer_parts_one_above_another():
    """Two digits of two lines touching by a point (a candidate with a neck) often read whole as one digit,
    not surely (an 8 over a 6 as an 8 at 0.7): two surer digits one above the other win; parts no surer
    than the whole do not."""
    whole = option(Prediction(8, 0.72, 0.02))
    apart = option(sure(8), sure(6))
    assert choose([whole, apart], NONE_THRESHOLD, two_lines=True) is apart
    assert choose([whole, apart], NONE_THRESHOLD) is whole  # otherwise a read digit stays whole
    weak = option(sure(8), Prediction(6, 0.6, 0.1))
    assert choose([whole, weak], NONE_THRESHOLD, two_lines=True) is whole


def test_a_one_touching_its_neighbour_gives_way_to_a_surer_pair():
    """ "41" written close reads whole as a 4 at 0.7-0.9: as wide as two squeezed digits, it is read as the
    pair when both parts are surer than ``SURE_OF_ONE_NOT_A_PAIR`` and than the whole."""
    whole = option(Prediction(4, 0.8, 0.05))
    pair = option(sure(4), sure(1))
    assert choose([whole, pair], NONE_THRESHOLD, maybe_a_pair=True) is pair
    assert choose([whole, pair], NONE_THRESHOLD) is whole  # narrower: the whole stands at 0.8
    # A part no surer than the bar, or a whole at the bar or above, keeps the whole.
    weak_part = option(sure(4), Prediction(1, 0.88, 0.02))
    assert choose([whole, weak_part], NONE_THRESHOLD, maybe_a_pair=True) is whole
    sure_whole = option(Prediction(4, 0.92, 0.02))
    assert choose([sure_whole, pair], NONE_THRESHOLD, maybe_a_pair=True) is sure_whole


def test_lines_of_a_one_touching_a_digit_read_better_with_the_pair_bar(mnist_sample, monkeypatch):
    """Written touching, a 1 beside a digit ("41", "17") is often read as that digit alone; with the bar
    for candidates as wide as two squeezed digits, more of such lines read right than without it (the
    bar lowered to ``UNSURE``: such a candidate cut only when unsure, as before)."""
    import device.pipeline as pipeline_module
    from device.classify import Classifier
    from device.pipeline import FramePipeline
    from device.reading import Reading
    from tests.conftest import MODEL
    from tools.scenes import digits_right, render_scene

    images, labels = mnist_sample["test_images"], mnist_sample["test_labels"]
    ones, others = np.flatnonzero(labels == 1), np.flatnonzero(labels != 1)
    pipeline = FramePipeline(Classifier(MODEL))

    def digits_read(bar: float) -> int:
        monkeypatch.setattr(pipeline_module, "SURE_OF_ONE_NOT_A_PAIR", bar)
        rng, right = np.random.default_rng(5), 0
        for _page in range(40):
            lines, texts = [], []
            for _line in range(2):
                pick = []
                for _pair in range(2):
                    one, other = rng.choice(ones), rng.choice(others)
                    pick += [one, other] if rng.random() < 0.5 else [other, one]
                lines.append([images[i] for i in pick])
                texts.append([int(labels[i]) for i in pick])
            scene = render_scene("touching", lines, texts, rng)
            right += digits_right(Reading(tuple(pipeline.process(scene.frame).digits)).text, scene.text)
        return right

    assert digits_read(pipeline_module.SURE_OF_ONE_NOT_A_PAIR) > digits_read(pipeline_module.UNSURE)


def test_a_narrow_candidate_that_may_hide_a_one_gives_way_only_to_a_one_and_a_digit_side_by_side():
    """A candidate narrower than a pair, read whole as an unsure 4 ("61" pressed together), and cut only
    by a guess at its middle: it reads as its parts only where they are a 1 and a digit, both about as
    tall as the whole and surer than ``SURE_OF_ONE_NOT_A_PAIR``."""
    blank = np.zeros((28, 28), np.uint8)

    def reading(boxes, predictions):
        segments = tuple(Segment(Box(*box), blank) for box in boxes)
        return Interpretation(segments, tuple(blank for _ in predictions), tuple(predictions))

    whole = reading([(0, 0, 30, 40)], [Prediction(4, 0.6, 0.1)])
    side_by_side = [(0, 0, 22, 40), (22, 2, 8, 38)]
    pair = reading(side_by_side, [sure(6), sure(1)])
    assert choose([whole, pair], NONE_THRESHOLD, one_squeezed_in=True) is pair
    # Without a 1 among them, two sure parts are a squeezed digit cut in two (an 8 as "66").
    assert (
        choose([whole, reading(side_by_side, [sure(6), sure(6)])], NONE_THRESHOLD, one_squeezed_in=True)
        is whole
    )
    # A "1" above or below the other part is a slanted stroke cut off (a 7's stem), not a digit beside it.
    stem = reading([(0, 0, 30, 22), (0, 20, 12, 20)], [sure(7), sure(1)])
    assert choose([whole, stem], NONE_THRESHOLD, one_squeezed_in=True) is whole
    # Parts must be as sure as a wide pair's.
    weak = reading(side_by_side, [Prediction(6, 0.85, 0.02), sure(1)])
    assert choose([whole, weak], NONE_THRESHOLD, one_squeezed_in=True) is whole


def test_ones_pressed_against_their_neighbours_read_better_when_the_middle_is_guessed(
    mnist_sample, monkeypatch
):
    """A "1" written pressed against a digit, sharing some of its columns, makes a candidate narrower than
    a pair with no valley in its ink profile, which the model reads whole as an unsure 4 or 7. Lines of
    such pairs read more digits right with ``may_hide_a_one`` than without it."""
    import device.pipeline as pipeline_module
    from device.classify import Classifier
    from device.pipeline import FramePipeline
    from device.reading import Reading
    from tests.conftest import MODEL
    from tools.scenes import digits_right, write_line

    images, labels = mnist_sample["test_images"], mnist_sample["test_labels"]
    ones, others = np.flatnonzero(labels == 1), np.flatnonzero(labels != 1)
    pipeline = FramePipeline(Classifier(MODEL))
    guess = pipeline_module.may_hide_a_one

    def digits_read(guessing: bool) -> int:
        monkeypatch.setattr(pipeline_module, "may_hide_a_one", guess if guessing else lambda *_: False)
        rng, right = np.random.default_rng(5), 0
        for _page in range(20):
            page, truth = np.full((480, 640), 225.0, np.float32), []
            for row in range(3):
                x = 40.0
                for _pair in range(3):
                    one, other = rng.choice(ones), rng.choice(others)
                    pick = [one, other] if rng.random() < 0.5 else [other, one]
                    # Overlapping by 5-15 % of the height: pressed together, not just touching.
                    digits = [images[i] for i in pick]
                    x = write_line(
                        page, digits, rng, x, 60 + 140 * row, 70, 40.0, gap=(-0.15, -0.05), jitter_y=0.03
                    )
                    x += 60
                    truth.append("".join(str(labels[i]) for i in pick))
            page += rng.normal(0, 2.5, page.shape)
            frame = np.clip(page, 0, 255).astype(np.uint8)
            right += digits_right(Reading(tuple(pipeline.process(frame).digits)).text, " ".join(truth))
        return right

    assert digits_read(guessing=True) > digits_read(guessing=False)


def test_a_candidate_is_cut_only_as_far_as_the_model_is_unsure_of_it_whole():
    """``plan_cuts`` on a real candidate as wide as two digits (two rings touching): read whole at 0.95 it
    is not cut; under the pair bar, or unsure, it is. A narrow single stroke read unsure has nothing to be
    cut into."""
    import cv2

    from device.pipeline import SURE_OF_ONE_NOT_A_PAIR, UNSURE, plan_cuts
    from device.segment import SegmentSettings, segment

    settings = SegmentSettings()
    img = np.full((240, 320), 215, np.uint8)
    cv2.ellipse(img, (130, 120), (18, 30), 0, 0, 360, 30, 4)
    cv2.ellipse(img, (164, 120), (18, 30), 0, 0, 360, 30, 4)
    cv2.line(img, (260, 90), (260, 150), 30, 4)
    pair, stroke = segment(img, settings)
    assert pair.box.w >= 0.85 * pair.box.h and stroke.box.w < 0.5 * stroke.box.h

    def read_whole(segment_, score):
        blank = np.zeros((28, 28), np.uint8)
        return Interpretation((segment_,), (blank,), (Prediction(0, score, 0.0),))

    sure_whole = plan_cuts(pair, read_whole(pair, 0.95), settings, NONE_THRESHOLD)
    assert sure_whole.maybe_a_pair and not sure_whole.readings
    for score in (SURE_OF_ONE_NOT_A_PAIR - 0.1, UNSURE - 0.2):
        assert plan_cuts(pair, read_whole(pair, score), settings, NONE_THRESHOLD).readings
    assert not plan_cuts(stroke, read_whole(stroke, UNSURE - 0.2), settings, NONE_THRESHOLD).readings


def test_a_second_measure_stands_only_where_it_reads_surer():
    """The second measure of a candidate (against the paper round it) replaces the first reading only where
    it is surer; it makes a shown 1 surer but never makes a 1 (a lost faint bar leaves a 7's stem, read as
    a sure 1); and a candidate the first reading drops comes back only as a sure digit."""
    pipeline = FramePipeline(classifier=None)
    unsure_nine, sure_nine = option(Prediction(9, 0.55, 0.05)), option(Prediction(9, 0.97, 0.01))
    assert pipeline._stands(sure_nine, unsure_nine)
    assert not pipeline._stands(unsure_nine, sure_nine)
    seven, sure_one = option(Prediction(7, 0.88, 0.02)), option(Prediction(1, 0.97, 0.0))
    assert not pipeline._stands(sure_one, seven)
    assert pipeline._stands(sure_one, option(Prediction(1, 0.6, 0.1)))
    dropped = option(Prediction(4, 0.3, 0.66))  # unsure, and half thought no digit: not shown
    assert not pipeline._stands(option(Prediction(4, 0.75, 0.15)), dropped)  # 0.64: no sure digit
    assert pipeline._stands(option(Prediction(4, 0.95, 0.02)), dropped)
    assert not pipeline._stands(sure_one, dropped)


def test_a_segment_read_and_let_go_leaves_no_reading_to_a_new_one():
    """The reader finds what it read by the segment's id. A second measure whose reading does not stand is
    let go; a segment made after it may take its memory, and so its id: it must still be read itself, not
    be given the other's prediction."""
    from device.pipeline import _Reader

    class Counting:
        def __init__(self):
            self.digits = []

        def classify(self, images):
            self.digits += [int(image.sum() > 0) for image in images]
            return [Prediction(int(image.sum() > 0), 0.9, 0.0) for image in images]

    classifier = Counting()
    read = _Reader(classifier)
    for k in range(50):  # segments made and let go one after another, as the second measures are
        segment = Segment(Box(0, 0, 10, 20), np.full((20, 10), 255 * (k % 2), np.uint8))
        read.classify([segment])
        assert read.interpretation((segment,)).predictions[0].digit == k % 2
        del segment
    assert len(classifier.digits) == 50


def test_the_reading_order_is_of_the_digits_read_not_of_the_candidates_dropped(monkeypatch):
    """A form's box round a digit is a candidate of its own beside the digit it frames (the digit's ink is
    found again in it), and it takes the place in the line that the digit would have: the digit, lying in
    the box, is put on a line of its own. When the model drops the box as no digit, the digits read are put
    in order again among themselves, as one line."""
    import cv2

    import device.pipeline as pipeline_module
    from device.normalize import normalize_digit
    from device.reading import Reading
    from device.segment import Segmentation

    def crop(h: int, w: int, draw) -> np.ndarray:
        ink = np.zeros((h, w), np.uint8)
        draw(ink)
        return ink

    frame_box = crop(187, 183, lambda ink: cv2.rectangle(ink, (2, 2), (180, 184), 255, 3))
    eight = crop(146, 113, lambda ink: [cv2.circle(ink, (56, y), 32, 255, 8) for y in (38, 106)])
    two_strokes = np.array([[10, 30], [48, 5], [80, 40], [10, 128], [90, 128]])
    two = crop(135, 97, lambda ink: cv2.polylines(ink, [two_strokes], False, 255, 8))
    # In the order, and with the lines, that the candidates take among themselves: the box and the 2 in a
    # line, the 8 inside the box below it.
    segments = [
        Segment(Box(78, 157, 183, 187, line=0), frame_box),
        Segment(Box(235, 158, 133, 174, line=0), two),
        Segment(Box(92, 182, 113, 146, line=1), eight),
    ]
    readings = {
        normalize_digit(frame_box).tobytes(): Prediction(0, 0.01, 0.99),
        normalize_digit(eight).tobytes(): Prediction(8, 0.97, 0.0),
        normalize_digit(two).tobytes(): Prediction(2, 0.96, 0.0),
    }

    class ByImage:
        def classify(self, images):
            return [readings[image.tobytes()] for image in images]

    monkeypatch.setattr(pipeline_module, "segment_frame", lambda frame, settings: Segmentation(segments))
    result = FramePipeline(ByImage()).process(np.full((480, 640), 200, np.uint8))
    assert [d.value for d in result.digits] == [8, 2]
    assert Reading(tuple(result.digits)).text == "82"
