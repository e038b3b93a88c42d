"""Segmentation on synthetic numpy frames: polarity, merging, filters, reading order, bad frames."""

import cv2
import numpy as np
import pytest

from device.errors import FrameError
from device.reading import Box
from device.segment import SegmentSettings, reading_order, segment, to_grey


def page(h=480, w=640, paper=200):
    return np.full((h, w), paper, np.uint8)


def draw_one(img, x, y, size=80, color=30, thickness=8):
    cv2.line(img, (x + size // 4, y), (x + size // 4, y + size), color, thickness)


def test_finds_strokes_in_reading_order():
    img = page()
    for _i, x in enumerate((400, 100, 250)):
        draw_one(img, x, 60)
    for x in (300, 150):
        draw_one(img, x, 300)
    segments = segment(img)
    assert [s.box.line for s in segments] == [0, 0, 0, 1, 1]
    # Each line is read left to right; the boxes sit on the strokes (drawn 8 px wide at x + 20).
    expected_x = [120, 270, 420, 170, 320]
    assert all(abs(s.box.x + s.box.w / 2 - x) <= 2 for s, x in zip(segments, expected_x, strict=True))
    for s in segments:
        assert s.ink.dtype == np.uint8 and s.ink.max() == 255


def test_light_on_dark_polarity():
    img = page(paper=40)
    draw_one(img, 200, 100, color=220)
    draw_one(img, 400, 100, color=220)
    assert len(segment(img)) == 2
    # Forced to the wrong polarity, the bright strokes themselves are never taken for ink (what is found,
    # if anything, is the dark board beside them).
    for s in segment(img, SegmentSettings(polarity="dark")):
        for stroke_x in (220, 420):
            assert not s.box.x + 4 <= stroke_x <= s.box.x + s.box.w - 4


def test_uneven_light_and_shadow():
    img = page().astype(np.float32)
    img *= np.linspace(0.45, 1.0, 640)[None, :]  # strong light fall-off left to right
    img = img.astype(np.uint8)
    for x in (60, 250, 450):
        draw_one(img, x, 150, color=int(img[150, x] * 0.3))
    assert len(segment(img)) == 3


def test_two_stroke_digit_is_merged():
    img = page()
    # A "4" in two strokes: an open angle and a separate vertical bar crossing it.
    cv2.line(img, (300, 100), (260, 200), 30, 8)
    cv2.line(img, (260, 200), (330, 200), 30, 8)
    cv2.line(img, (320, 130), (320, 260), 30, 8)
    cv2.line(img, (200, 300), (200, 300), 30, 1)
    segments = segment(img)
    assert len(segments) == 1


def test_stacked_digits_of_two_lines_are_not_merged():
    img = page()
    draw_one(img, 300, 60, size=120)
    draw_one(img, 300, 260, size=120)
    assert [s.box.line for s in segment(img)] == [0, 1]


def test_rejects_specks_ruled_lines_border_and_blobs():
    img = page()
    for y in range(40, 480, 40):
        cv2.line(img, (0, y), (639, y), 150, 1)  # ruled paper
    cv2.circle(img, (100, 100), 2, 20, -1)  # a speck
    cv2.rectangle(img, (0, 300), (60, 479), 20, -1)  # something dark at the frame edge
    cv2.rectangle(img, (400, 300), (470, 370), 20, -1)  # a filled blob
    assert segment(img) == []
    draw_one(img, 250, 150)
    assert len(segment(img)) == 1


def test_region_of_interest():
    img = page()
    draw_one(img, 100, 100)
    draw_one(img, 450, 100)
    segments = segment(img, SegmentSettings(roi=(0.5, 0.0, 0.5, 1.0)))
    assert len(segments) == 1 and segments[0].box.x > 320


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((480, 640), np.uint8),
        np.full((480, 640, 3), 255, np.uint8),
        np.random.default_rng(0).integers(0, 256, (480, 640), dtype=np.uint8),
        np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8),
        np.zeros((480, 640), np.float32),
    ],
    ids=["black", "white", "noise", "colour-noise", "float-black"],
)
def test_nothing_from_nothing(frame):
    assert segment(frame) == []


@pytest.mark.parametrize(
    "frame",
    [
        None,
        np.zeros((0, 0), np.uint8),
        np.zeros((480, 640, 2), np.uint8),
        np.zeros((480, 640), np.int64),
        np.zeros((4, 4), np.uint8),
        np.zeros((2, 480, 640, 3), np.uint8),
        np.full((48, 64), np.nan, np.float32),
    ],
    ids=["none", "empty", "2-channel", "int64", "tiny", "4-d", "nan"],
)
def test_unusable_frames_raise_frame_error(frame):
    with pytest.raises(FrameError):
        to_grey(frame)


def test_reading_order_groups_lines_by_overlap():
    boxes = [Box(300, 105, 30, 50), Box(100, 100, 30, 50), Box(200, 230, 30, 50), Box(10, 210, 30, 50)]
    ordered = reading_order(boxes)
    assert [(b.line, b.x) for b in ordered] == [(0, 100), (0, 300), (1, 10), (1, 200)]
