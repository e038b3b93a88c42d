"""Reading hard scenes with the shipped model: textured surfaces around the page, ruled and squared paper,
touching digits, slanted and scattered lines, operators between digits, hard shadows, glare, digits at the
frame's edge (MNIST test digits, never trained on); and blank cluttered frames that must read as nothing.
The full-size measurement is tools/bench_scenes.py (docs/benchmarks.md); this is a smaller sample of it."""

import cv2
import numpy as np
import pytest

from device.classify import Classifier
from device.pipeline import FramePipeline
from device.reading import Reading
from host.synthetic import ink_alpha, paper
from tests.conftest import MODEL
from tools.scenes import KINDS, close_up, edit_distance, render_scene, rule_page


@pytest.fixture(scope="module")
def pipeline():
    return FramePipeline(Classifier(MODEL))


def lines_of(sample, rng, start):
    images, labels = sample["test_images"], sample["test_labels"]
    lines, texts = [], []
    for _ in range(int(rng.integers(1, 3))):
        n = int(rng.integers(3, 6))
        index = [(start + k) % len(images) for k in range(n)]
        start += n
        lines.append([images[i] for i in index])
        texts.append([int(labels[i]) for i in index])
    return lines, texts, start


def digits_right_on(pipeline, pages, frames=None) -> int:
    """Digits read right on ``pages`` (scenes), seen in their own frames or in ``frames`` (the same pages
    seen otherwise: smaller, say)."""
    right = 0
    for page, frame in zip(pages, frames or [page.frame for page in pages], strict=True):
        read = Reading(tuple(pipeline.process(frame).digits)).text.replace(" ", "")
        truth = page.text.replace(" ", "")
        right += max(0, len(truth) - edit_distance(read, truth))
    return right


@pytest.mark.parametrize("squared", [False, True])
def test_printed_lines_are_darker_than_the_paper_under_them(squared):
    """A printed line takes a share of the paper's light, in a shadow too: drawn at one grey level (the
    page's mean), it came out lighter than the shaded paper, light lines on a dark page."""
    rng = np.random.default_rng(4)
    for _ in range(20):
        sheet = paper(rng, 320, 240)
        sheet *= np.linspace(0.4, 1.0, 320, dtype=np.float32)  # a deep shadow over the left of the page
        bare = sheet.copy()
        rule_page(sheet, rng, squared)
        printed = sheet < bare
        assert printed.mean() > 0.02
        assert np.all(sheet <= bare)
        assert np.all(sheet[printed] / bare[printed] <= 0.86)


def test_the_lines_of_a_slanted_page_run_alike(monkeypatch, mnist_sample):
    """A page photographed at a tilt, or curled, slants and bends all its lines alike: drawn apart for
    each line, lines 1.5 digit heights apart ran through each other, which no writer does."""
    import tools.scenes

    drawn = []
    monkeypatch.setattr(tools.scenes, "write_line", lambda *args, **options: drawn.append(options))
    rng = np.random.default_rng(12)
    start = 0
    for _ in range(20):
        lines, texts, start = lines_of(mnist_sample, rng, start)
        drawn.clear()
        render_scene("slant", lines + lines, texts + texts, rng)
        slopes, curves = [o["slope"] for o in drawn], [o["curve"] for o in drawn]
        assert len(slopes) >= 2
        assert max(slopes) - min(slopes) <= 0.05 and max(curves) - min(curves) <= 0.06, (slopes, curves)


def test_hard_scenes_are_read(pipeline, mnist_sample):
    rng = np.random.default_rng(31)
    start, right, total = 0, {}, {}
    for kind in KINDS:
        right[kind] = total[kind] = 0
        for _ in range(6):
            lines, texts, start = lines_of(mnist_sample, rng, start)
            scene = render_scene(kind, lines, texts, rng)
            read = Reading(tuple(pipeline.process(scene.frame).digits)).text.replace(" ", "")
            truth = scene.text.replace(" ", "")
            right[kind] += max(0, len(truth) - edit_distance(read, truth))
            total[kind] += len(truth)
    overall = sum(right.values()) / sum(total.values())
    per_kind = {kind: round(right[kind] / total[kind], 3) for kind in KINDS}
    print("hard scenes:", round(overall, 3), per_kind)
    # Measured with the shipped model (v2f): 93.0 %, touching digits (79 %) and squared paper (85 %) the
    # weakest; with v2j and the segmentation since, 97.4 % (touching 94.7 %, shadow 91.2 %). The issue's
    # target is 97 % on the full benchmark. These bounds guard what is reached (the seed is fixed).
    assert overall >= 0.9, per_kind
    assert min(per_kind.values()) >= 0.7, per_kind


def edge_digits_on_a_desk_right(pipeline, sample, seed: int, pages: int) -> int:
    """Digits read right on ``pages`` edge pages (lines starting a few px from the sheet's edge) with the
    sheet on a desk."""
    rng = np.random.default_rng(seed)
    start, scenes = 0, []
    for _ in range(pages):
        lines, texts, start = lines_of(sample, rng, start)
        scenes.append(render_scene("edge", lines, texts, rng, on_surface=True))
    return digits_right_on(pipeline, scenes)


def test_a_digit_written_close_to_the_pages_edge_on_a_desk_is_read(pipeline, mnist_sample, monkeypatch):
    """Lines that start a few px from the edge of a sheet on a textured desk: the texture found beside the
    edge takes the paper a few px into the page, and with it the first digit of a line. A piece it took
    that stands in a line of the digits kept (level, as tall, a digit's height away or less) is kept:
    206 digits right on these 40 pages, against 195 without (at stop 40; 179 and 170 before the bays of the
    page's outline)."""
    import device.segment

    kept = edge_digits_on_a_desk_right(pipeline, mnist_sample, seed=9, pages=40)
    monkeypatch.setattr(device.segment, "grow_the_lines", lambda digits, waiting, shape: list(digits))
    without = edge_digits_on_a_desk_right(pipeline, mnist_sample, seed=9, pages=40)
    print("digits right, kept in line / not:", kept, without)
    assert kept > without

    rng = np.random.default_rng(5)
    kinds = ("texture", "ruled", "grid", "shadow")
    found = [
        len(pipeline.process(render_scene(kinds[i % 4], [[]], [[]], rng, blank=True).frame).digits)
        for i in range(24)
    ]
    # Measured: 21 of 24 read as nothing (18 before texture beside the page and stretches of lines were
    # recognised); the target is 99 %.
    assert sum(1 for n in found if n == 0) >= 20, found


def test_the_first_digit_of_a_line_by_the_pages_edge_is_read(pipeline, mnist_sample, monkeypatch):
    """Lines that start a few px from the edge of a sheet on a textured desk, often under a shadow at the
    sheet's border: beside each line's first and last digit, where the paper found ends, the ink is looked
    at again against the line's own (``beyond_the_line_ends``). Measured: 197 digits right on these 40
    pages, 186 without."""
    import device.segment

    looked = edge_digits_on_a_desk_right(pipeline, mnist_sample, seed=9, pages=40)
    monkeypatch.setattr(device.segment, "beyond_the_line_ends", lambda kept, ink, labels, settings: [])
    without = edge_digits_on_a_desk_right(pipeline, mnist_sample, seed=9, pages=40)
    print("digits right, the lines' ends looked at again / not:", looked, without)
    assert looked > without


def test_a_whole_line_written_from_the_pages_edge_on_a_desk_is_read(pipeline, mnist_sample, monkeypatch):
    """Where the texture found beside a sheet's edge takes the paper far into the page, it may take a whole
    line written from that edge, none of whose digits is kept to stand in a line of. Three pieces or more
    in a line of their own, where a page's next line stands (``grow_the_lines``), are kept too. Measured
    on these 40 edge pages on a desk, three lines each: 506 digits right of 527, against 491 without (two
    more such streams: 528 against 520, 507 against 493). Blank frames have no digits to stand by, and
    read as before."""
    import device.segment.pieces
    from tools.scenes import digits_right

    images, labels = mnist_sample["test_images"], mnist_sample["test_labels"]
    rng, start, scenes = np.random.default_rng(13), 0, []
    for _page in range(40):
        lines, texts = [], []
        for _line in range(3):
            index = [(start + k) % len(images) for k in range(int(rng.integers(3, 7)))]
            start += len(index)
            lines.append([images[k] for k in index])
            texts.append([int(labels[k]) for k in index])
        scenes.append(render_scene("edge", lines, texts, rng, on_surface=True))

    def digits_read() -> int:
        return sum(
            digits_right(Reading(tuple(pipeline.process(scene.frame).digits)).text, scene.text)
            for scene in scenes
        )

    with_lines = digits_read()
    monkeypatch.setattr(device.segment.pieces, "A_LINE_OF_ITS_OWN", 10**6)
    without = digits_read()
    print("digits right, lines of their own / not:", with_lines, without)
    assert with_lines > without


def test_a_digit_measured_again_against_the_paper_round_it_is_read(pipeline, mnist_sample, monkeypatch):
    """Where the light steps (the sheet's edge on a desk, the shade at its border), part of a digit's strokes
    falls under the threshold and it reads as another digit, unsure, or no digit. The pipeline measures a
    candidate it is unsure of again against the paper round it (``ink_against_the_paper_round_it``).
    Measured: 206 digits right on these 40 pages, 200 without; blank cluttered frames read nothing either
    way (24 of 24)."""
    import device.pipeline

    def blank_frames_read_as_nothing() -> int:
        rng = np.random.default_rng(11)
        kinds = ("texture", "ruled", "grid", "shadow")
        frames = [render_scene(kinds[i % 4], [[]], [[]], rng, blank=True).frame for i in range(24)]
        return sum(not pipeline.process(frame).digits for frame in frames)

    again = edge_digits_on_a_desk_right(pipeline, mnist_sample, seed=11, pages=40)
    blank_again = blank_frames_read_as_nothing()
    monkeypatch.setattr(device.pipeline, "ink_against_the_paper_round_it", lambda segment: None)
    once = edge_digits_on_a_desk_right(pipeline, mnist_sample, seed=11, pages=40)
    blank_once = blank_frames_read_as_nothing()
    print("digits right, measured again / once:", again, once, "blank:", blank_again, blank_once)
    assert again > once
    assert blank_again >= max(blank_once, 22)


def test_a_small_frame_reads_as_the_same_page_at_640x480(pipeline, mnist_sample, monkeypatch):
    """A low-resolution webcam (320x240) sees a page as a 640x480 one does, at half the size. The stages'
    sizes in px are set for frames of 640-800 px: at 320x240 a sheet on a desk spans a few of the paper's
    64-px tiles, each of them half desk, so no tile is bare paper and the desk's grain sets the threshold
    (a sheet of legible digits read as nothing). A smaller frame is enlarged to 640 px first
    (``SMALLEST_WORK``). Measured: 123 digits right on these pages at 320x240, as many as at 640x480, and
    100 at its own size; 47 of the 48 blank frames read as nothing at 320x240 either way."""
    import device.segment.paper

    rng = np.random.default_rng(41)
    start, pages = 0, []
    for kind in KINDS:
        for _ in range(2):
            lines, texts, start = lines_of(mnist_sample, rng, start)
            pages.append(render_scene(kind, lines, texts, rng))
    blanks = [
        render_scene(kind, [[]], [[]], rng, blank=True).frame
        for kind in ("texture", "ruled", "grid", "shadow") * 12
    ]

    def small(frame: np.ndarray) -> np.ndarray:
        return cv2.resize(frame, (320, 240), interpolation=cv2.INTER_AREA)

    def blank_small_frames_read_as_nothing() -> int:
        return sum(not pipeline.process(small(frame)).digits for frame in blanks)

    full_size = digits_right_on(pipeline, pages)
    enlarged = digits_right_on(pipeline, pages, [small(page.frame) for page in pages])
    blank_enlarged = blank_small_frames_read_as_nothing()
    monkeypatch.setattr(device.segment.paper, "SMALLEST_WORK", 1)
    as_it_is = digits_right_on(pipeline, pages, [small(page.frame) for page in pages])
    blank_as_it_is = blank_small_frames_read_as_nothing()
    print("digits right, 640x480 / 320x240 enlarged / as it is:", full_size, enlarged, as_it_is)
    print("blank 320x240 frames read as nothing, enlarged / as it is:", blank_enlarged, blank_as_it_is)
    assert enlarged >= full_size - 4
    assert enlarged >= as_it_is + 8
    assert blank_enlarged >= max(blank_as_it_is, 46)


def test_squared_and_ruled_pages_seen_close_have_their_lines_taken_out(pipeline, mnist_sample, monkeypatch):
    """A webcam held a hand's width from the page, its fixed focus soft: the printed lines are 10-15 px wide
    in faint ink, and the paper beside such a line is looked for beyond its own half width (6 px from a
    segment along one of its edges is still the line, which then passed for a shadow's rim and stayed,
    glued to the digits). Measured: 165 of the 169 digits on these close-ups read right, 155 with the paper
    looked for 6 px beside every line."""
    import device.segment.rules

    rng = np.random.default_rng(5)
    start, pages = 0, []
    for kind in ("grid", "ruled") * 15:
        lines, texts, start = lines_of(mnist_sample, rng, start)
        pages.append(close_up(render_scene(kind, lines, texts, rng)))

    beside_the_width = digits_right_on(pipeline, pages)
    one_sided = device.segment.rules._one_sided
    monkeypatch.setattr(
        device.segment.rules, "_one_sided", lambda segments, mask, offset=6: one_sided(segments, mask)
    )
    six_px = digits_right_on(pipeline, pages)
    print("digits right, beside each line's width / 6 px beside:", beside_the_width, six_px)
    assert beside_the_width >= six_px + 5


def test_digits_written_in_the_printed_boxes_of_a_form_are_read(pipeline, mnist_sample, monkeypatch):
    """A form or a score sheet: one digit to a printed box, in a straight row of boxes sharing their sides or
    each in a box of its own, a box or two left empty. A digit joins the box it touches, or is merged with
    the box round it, and the candidate was the box. The boxes' sides are taken out (``box_sides``); a long
    row's top and bottom are found as rules, and the cells they opened are closed again by them; the sides
    of a row left standing between rules are no 1s (``side_between_rules``); a digit the model is unsure
    of with a box's sides still along its own (it touches them) is read without them too
    (``without_straight_sides``); a side is still one with stubs of its box's top and bottom along the rules
    on its ends (``thin_between_its_ends``); a side a digit presses on, in a row whose top and bottom were
    taken as rules, is taken off the digit (``sides_pressed_on``). Measured: 95 of the 113 digits on these
    pages read right, 93 with the sides pressed on left on the digits, 88 with those stubs left on too, 87
    without ``without_straight_sides`` too, 79 with the cells left open too, 55 with the sides between
    rules left standing, 44 with the boxes left in; with Debian's OpenCV and numpy (a Pi's), 92, 89, 86,
    85, 82, 58 and 44."""
    import device.pipeline
    import device.segment
    import device.segment.boxes
    import device.segment.plain

    rng = np.random.default_rng(13)
    start, pages = 0, []
    for kind in ("texture", "shadow", "glare", "edge", "scattered") * 4:
        lines, texts, start = lines_of(mnist_sample, rng, start)
        pages.append(render_scene(kind, lines, texts, rng, boxes=True))

    boxes_out = digits_right_on(pipeline, pages)
    monkeypatch.setattr(device.segment, "sides_pressed_on", lambda *args: [])
    pressed_on = digits_right_on(pipeline, pages)
    monkeypatch.setattr(device.segment.boxes, "thin_between_its_ends", lambda *args: False)
    stubs_left = digits_right_on(pipeline, pages)
    monkeypatch.setattr(device.pipeline, "without_straight_sides", lambda segment: None)
    touching_sides = digits_right_on(pipeline, pages)
    box_sides = device.segment.box_sides
    monkeypatch.setattr(
        device.segment,
        "box_sides",
        lambda pieces, labels, min_h, removed=None: box_sides(pieces, labels, min_h),
    )
    cells_open = digits_right_on(pipeline, pages)
    monkeypatch.setattr(device.segment, "side_between_rules", lambda piece, strength, labels, rules: False)
    sides_standing = digits_right_on(pipeline, pages)
    monkeypatch.setattr(device.segment, "box_sides", lambda pieces, labels, min_h, removed=None: [])
    monkeypatch.setattr(device.segment.plain, "box_sides", lambda pieces, labels, min_h: [])
    boxes_in = digits_right_on(pipeline, pages)
    total = sum(len(page.text.replace(" ", "")) for page in pages)
    print(
        "digits right, boxes taken out / sides pressed on left on the digits / a side's stubs along the"
        " rules left / not from a digit touching them / cells the rules opened / sides standing / boxes in:",
        boxes_out,
        pressed_on,
        stubs_left,
        touching_sides,
        cells_open,
        sides_standing,
        boxes_in,
        total,
    )
    assert boxes_out >= pressed_on + 1
    assert pressed_on >= stubs_left + 2
    assert stubs_left >= touching_sides + 1
    assert touching_sides >= cells_open + 3
    assert cells_open >= sides_standing + 15
    assert sides_standing >= boxes_in + 6


def test_a_digit_in_a_bay_of_the_pages_outline_is_read(pipeline, mnist_sample, monkeypatch):
    """A digit written 3-16 px from the edge of a sheet on a desk: its strokes, and the strip of paper
    between them and the edge, are too busy to pass for paper, so the paper found bends round it and the
    digit was left out with the desk. The sheet is convex: the bays of its outline are paper
    (``bays_of_the_page``). Measured: 153 digits right on these 30 pages, 135 without the bays; on the
    benchmark, 221 of 251 edge digits on a desk against 200, and no blank frame reads anything more."""
    import device.segment.paper

    def digits_right() -> int:
        return edge_digits_on_a_desk_right(pipeline, mnist_sample, seed=31, pages=30)

    def blank_frames_read_as_nothing() -> int:
        rng = np.random.default_rng(32)
        kinds = ("texture", "ruled", "grid", "shadow")
        frames = [render_scene(kinds[i % 4], [[]], [[]], rng, blank=True).frame for i in range(24)]
        return sum(not pipeline.process(frame).digits for frame in frames)

    with_bays, blank_with_bays = digits_right(), blank_frames_read_as_nothing()
    monkeypatch.setattr(
        device.segment.paper, "bays_of_the_page", lambda paper, bright, lit=None: np.zeros_like(paper)
    )
    without, blank_without = digits_right(), blank_frames_read_as_nothing()
    print("digits right, with bays / without:", with_bays, without, "blank:", blank_with_bays, blank_without)
    assert with_bays > without
    assert blank_with_bays >= max(blank_without, 20)  # measured: 23 of 24 either way


def forms_filled_in_at_the_edge_right(pipeline, sample, seed: int, pages: int) -> int:
    """Digits read right on ``pages`` forms on a desk, three rows of boxes filled in from a few px of the
    sheet's edge (the "edge" pages' lines, one digit to a box)."""
    images, labels = sample["test_images"], sample["test_labels"]
    rng = np.random.default_rng(seed)
    start, scenes = 0, []
    for _ in range(pages):
        lines, texts = [], []
        for n in rng.integers(3, 7, size=3):
            index = [(start + k) % len(images) for k in range(n)]
            start += n
            lines.append([images[i] for i in index])
            texts.append([int(labels[i]) for i in index])
        scenes.append(render_scene("edge", lines, texts, rng, on_surface=True, boxes=True))
    return digits_right_on(pipeline, scenes)


def test_a_form_filled_in_at_the_pages_edge_on_a_desk_is_read(pipeline, mnist_sample, monkeypatch):
    """Rows of boxes filled in from a few px of the edge of a sheet on a desk: the boxes' sides and the
    digits in them leave the paper between them a few px wide, and a median over them is as dark as a
    desk, so the page's outline bends round the block. Such a bay is lit where the surface, closed over
    the strokes, is as bright as the page, and it is as deep as a row of digits is tall
    (``bays_of_the_page``, ``lit``, ``PACKED_DEPTH``); slivers of a desk's grain are shallow. Measured at
    stop 41: forms of the benchmark's line mix on a desk, 40 pages each of two seeds, 220 and 208 digits
    right against 208 and 205; edge pages without boxes and 300 blank frames on a desk, the same."""
    import device.segment.paper

    lit = forms_filled_in_at_the_edge_right(pipeline, mnist_sample, seed=41, pages=24)
    bays = device.segment.paper.bays_of_the_page
    monkeypatch.setattr(
        device.segment.paper, "bays_of_the_page", lambda paper, bright, lit=None: bays(paper, bright)
    )
    by_the_median = forms_filled_in_at_the_edge_right(pipeline, mnist_sample, seed=41, pages=24)
    print("digits right, lit between strokes / by the median:", lit, by_the_median)
    assert lit >= by_the_median + 8


def test_blank_sheets_on_textured_surfaces_read_nothing(pipeline):
    """A bare sheet on a desk, a wall or fabric: the texture in the strip between the page's edge and the
    64-px tiles the paper is found in must not read as digits, however faint its grain."""
    rng = np.random.default_rng(8)
    found = [
        len(pipeline.process(render_scene("texture", [[]], [[]], rng, blank=True).frame).digits)
        for _ in range(60)
    ]
    # Measured: 55 of 60 read as nothing (49 when only texture busier than three times the paper's noise,
    # in blobs wider than 9 px, was taken from the paper); 57 since.
    assert sum(1 for n in found if n == 0) >= 55, found


def test_grain_left_amid_the_texture_beside_a_page_is_no_digit(pipeline, monkeypatch):
    """Bits of a desk's or a wall's grain beside a blank sheet, in gaps of the texture found there: what
    surrounds them is mostly no paper, while a digit is written on paper. 100 blank sheets on surfaces:
    100 read as nothing, against 97 when only a candidate's centre must be on the paper."""
    import device.segment

    def read_as_nothing() -> int:
        rng = np.random.default_rng(123)
        frames = (render_scene("texture", [[]], [[]], rng, blank=True).frame for _ in range(100))
        return sum(1 for frame in frames if not pipeline.process(frame).digits)

    surrounded = read_as_nothing()
    monkeypatch.setattr(device.segment, "SURROUNDED_BY_PAPER", 0.0)
    centre_only = read_as_nothing()
    print("blank sheets on surfaces read as nothing, ring / centre only:", surrounded, centre_only)
    assert surrounded > centre_only


def test_gaps_in_the_texture_beside_a_blank_sheet_are_no_paper(pipeline):
    """Where the grain of a desk beside the page is thin for a moment, the texture found around it has a
    gap; the gap is closed, so what is left of the grain in it gives no digit. Another 60 blank sheets:
    58 read as nothing (56 with the gaps left open)."""
    rng = np.random.default_rng(10)
    found = [
        len(pipeline.process(render_scene("texture", [[]], [[]], rng, blank=True).frame).digits)
        for _ in range(60)
    ]
    assert sum(1 for n in found if n == 0) >= 58, found


def test_the_digit_map_marks_each_written_digit_where_it_is_in_the_frame(mnist_sample):
    """Every digit of the text is on the map, in reading order, and where the frame is dark with its ink:
    the map goes through the same warps as the page (the sheet on a desk, the camera off square)."""
    rng = np.random.default_rng(12)
    start = 0
    for kind in ("touching", "texture", "slant", "edge"):
        lines, labels, start = lines_of(mnist_sample, rng, start)
        page = render_scene(kind, lines, labels, rng)
        count = len(page.text.replace(" ", ""))
        assert set(np.unique(page.digit_map)) == set(range(count + 1)), kind
        grey = page.frame.mean(axis=2)
        marked = page.digit_map > 0
        # The ink is darker than the paper round it (the map is not shifted off the digits).
        around = (grey > 0) & ~marked
        assert np.median(grey[marked]) < 0.8 * np.median(grey[around]), kind
        # In reading order: the digits of a line run left to right.
        first_line = len(page.text.split(" ")[0])
        columns = [np.nonzero(page.digit_map == k)[1].mean() for k in range(1, first_line + 1)]
        assert columns == sorted(columns), kind


def test_each_written_digit_is_followed_to_the_reading_that_holds_it():
    """Right, misread, unsure, merged and lost digits, and an extra reading, told apart on a made map."""
    from device.reading import Box, Digit
    from tools.scenes import follow_digits

    digit_map = np.zeros((40, 200), np.uint16)
    for number in range(1, 7):  # six digits 10 px wide, 30 px apart
        digit_map[5:35, 30 * number - 25 : 30 * number - 15] = number

    def read(value, x, w):
        return Digit(value, 0.9, Box(x, 0, w, 40))

    digits = [
        read(1, 0, 20),  # digit 1 alone, read right
        read(9, 30, 20),  # digit 2 alone, misread as 9
        read(None, 60, 20),  # digit 3 alone, unsure
        read(4, 90, 50),  # digits 4 and 5 in one reading: merged
        # digit 6 (x 155-165) in no reading: lost
        read(7, 180, 20),  # holds no digit: extra
        read(6, 150, 9),  # holds 4 of digit 6's 10 columns: not half of its ink, so digit 6 stays lost
    ]
    outcomes = follow_digits(digit_map, "123 456", digits)
    assert outcomes == {
        "right": 1,
        "misread": 1,
        "unsure": 1,
        "merged": 2,
        "dropped": 0,
        "lost": 1,
        "extra": 2,
    }
    # A candidate the model called no digit holds digit 6: dropped by the model, not lost in segmentation.
    outcomes = follow_digits(digit_map, "123 456", digits, dropped=[Box(150, 0, 20, 40)])
    assert (outcomes["dropped"], outcomes["lost"]) == (1, 0)


def test_a_page_written_in_pencil_is_read(pipeline, mnist_sample, monkeypatch):
    """Pencil, or a washed-out camera: the whole frame's contrast 0.3-0.5 of a pen's. An edge's steepness
    scales with its ink's contrast, so the faint digits fell under the fixed ``min_edge`` bar, small ones
    first (three lines to a page). On a page whose darkest candidate is fainter than a pen's ink, the bar is
    lowered in step for the candidates whose edges are steep for their own ink (``sharp_enough``); the soft
    grain of a desk beside the page is not, and stays out. Measured: 266 of the 290 digits on these pages
    read right, 256 with the fixed bar; with Debian's OpenCV and numpy (a Pi's), 281 and 271."""
    import device.segment.pieces

    rng = np.random.default_rng(11)
    images, labels = mnist_sample["test_images"], mnist_sample["test_labels"]
    start, pages, frames = 0, [], []
    for kind in ("grid", "edge", "touching", "operators", "texture") * 4:
        lines, texts = [], []
        for _ in range(3):
            n = int(rng.integers(4, 7))
            index = [(start + k) % len(images) for k in range(n)]
            start += n
            lines.append([images[i] for i in index])
            texts.append([int(labels[i]) for i in index])
        page = render_scene(kind, lines, texts, rng)
        contrast = rng.uniform(0.3, 0.5)
        faint = 255 - (255 - page.frame.astype(np.float32)) * contrast
        frames.append(np.clip(faint, 0, 255).astype(np.uint8))
        pages.append(page)

    lowered = digits_right_on(pipeline, pages, frames)
    monkeypatch.setattr(
        device.segment.pieces,
        "sharp_enough",
        lambda candidates, noise, settings: [
            p for p in candidates if p.edge >= max(settings.min_edge, settings.min_edge_snr * noise)
        ],
    )
    fixed = digits_right_on(pipeline, pages, frames)
    total = sum(len(page.text.replace(" ", "")) for page in pages)
    print("digits right in pencil, the bar lowered / fixed:", lowered, fixed, total)
    assert lowered >= fixed + 5


def test_a_digit_broken_across_its_middle_is_read_joined(pipeline, mnist_sample, monkeypatch):
    """A stroke that faded for a few px across a digit's middle (a pencil, a ballpoint running dry) breaks
    it into two candidates one above the other, each read as no digit or unsure: a 3 into its two arcs.
    Read joined, the model is sure of it (``device.segment.joins``). Measured on these 40 digits, each
    written large on a page of its own and broken by a gap of 3-7 px: 25 read right with the halves joined,
    16 without; Debian's OpenCV and numpy (a Pi's) the same."""
    import device.pipeline

    rng = np.random.default_rng(0)
    images, labels = mnist_sample["test_images"], mnist_sample["test_labels"]
    frames = []
    for image in images[:40]:
        sheet = paper(rng, 640, 480)
        alpha = ink_alpha(image, int(rng.integers(90, 200)), rng)
        rows = np.flatnonzero(alpha.max(axis=1) > 0.3)
        middle = int(rows[0] + rng.uniform(0.35, 0.65) * (rows[-1] - rows[0]))
        alpha[middle : middle + int(rng.integers(3, 8))] = 0
        h, w = alpha.shape
        y, x = int(rng.integers(10, 470 - h)), int(rng.integers(40, 600 - w))
        sheet[y : y + h, x : x + w] *= 1 - 0.75 * alpha
        frames.append(np.clip(sheet, 0, 255).astype(np.uint8))

    def read_right() -> int:
        return sum(
            Reading(tuple(pipeline.process(frame).digits)).text == str(label)
            for frame, label in zip(frames, labels[:40], strict=True)
        )

    joined = read_right()
    monkeypatch.setattr(
        device.pipeline.FramePipeline, "_join_broken", lambda self, segments, *_: (segments, 0.0)
    )
    apart = read_right()
    print("digits right, the halves joined / apart:", joined, apart)
    assert joined >= apart + 5


def test_a_form_running_off_the_frames_side_is_no_texture(pipeline, mnist_sample, monkeypatch):
    """A form seen in part, its rows of boxes running off the frame's side: its strokes' busy halos join into
    one block along that side, which is writing, not a strip of desk the tiles missed, since it reaches
    far into the frame. Between its strokes it is quiet (inside a box's cell, between two rows), so down
    a column its depth is measured across such gaps (``_QUIET_GAP``); counted only where it is busy all
    the way, whole rows of boxes were taken for texture. Measured: 165 digits right on these 30 pages
    across the gaps, 157 without; with Debian's OpenCV and numpy (a Pi's), 167 and 159."""
    import device.segment.rules

    rng = np.random.default_rng(25)
    start, pages = 0, []
    for _ in range(30):
        lines, texts, start = lines_of(mnist_sample, rng, start)
        pages.append(render_scene("edge", lines, texts, rng, boxes=True))

    across_gaps = digits_right_on(pipeline, pages)
    monkeypatch.setattr(device.segment.rules, "_QUIET_GAP", np.ones((1, 1), np.uint8))
    busy_all_the_way = digits_right_on(pipeline, pages)
    print(
        "digits right on forms at the frame's side, across quiet gaps / busy all the way:",
        across_gaps,
        busy_all_the_way,
    )
    assert across_gaps >= busy_all_the_way + 4


# Kinds of page whose candidates are found whole when the sheet lies turned: on touching, scattered,
# shadowed and edge pages turned that far, more digits are lost in segmentation than misread (see the
# benchmark's turned sheets).
FOUND_WHOLE = ("texture", "ruled", "grid", "glare", "slant")


def turned_sheets_right(pipeline, sample, seed: int, pages: int) -> int:
    """Digits read right on ``pages`` sheets lying turned 18-28 degrees, either way, on a desk."""
    rng = np.random.default_rng(seed)
    start, scenes = 0, []
    for index in range(pages):
        lines, texts, start = lines_of(sample, rng, start)
        turn = float(rng.uniform(18, 28) * rng.choice([-1, 1]))
        scenes.append(render_scene(FOUND_WHOLE[index % len(FOUND_WHOLE)], lines, texts, rng, turn=turn))
    return digits_right_on(pipeline, scenes)


def test_the_digits_of_a_sheet_lying_turned_are_read_levelled(pipeline, mnist_sample, monkeypatch):
    """A sheet put down askew under a camera turns its digits with its lines, past the few degrees of a
    writer's own slant the model learned. Where the writing runs at ``TURNED_WRITING`` or more, each
    candidate is also read turned back by the writing's angle, and the surer reading is kept (digits
    written upright along a rising line read surer as written). Measured at stop 42: 359 of 380 digits
    right levelled, 347 as written (seed 5: 296 and 288 of 321)."""
    import device.pipeline

    levelled = turned_sheets_right(pipeline, mnist_sample, seed=9, pages=60)
    monkeypatch.setattr(device.pipeline, "TURNED_WRITING", 360.0)
    as_written = turned_sheets_right(pipeline, mnist_sample, seed=9, pages=60)
    print("digits right on turned sheets, levelled / as written:", levelled, as_written)
    assert levelled >= as_written + 6
