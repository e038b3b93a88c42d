"""The plain page's short way (device.segment.plain): taken where a sheet fills the frame, smoothly lit and
bare, read as the full stages read it there, and declined by every kind of scene that needs the full
stages."""

import time
from dataclasses import replace

import cv2
import numpy as np
import pytest

from device.segment import SegmentSettings, plain_page, prepare, segment, segment_frame
from tests.conftest import scene
from tests.pages import stroke_digit

SETTINGS = SegmentSettings()
FULL = replace(SETTINGS, plain_pages=False)
LINES = (["205", "7913"], ["4826", "31"], ["57", "9", "608"], ["1234567"], ["90", "83"])


def takes_the_short_way(frame) -> bool:
    return plain_page(prepare(frame, SETTINGS), SETTINGS) is not None


def boxes(frame, settings) -> list[tuple[int, int, int, int, int]]:
    return [(s.box.x, s.box.y, s.box.w, s.box.h, s.box.line) for s in segment(frame, settings)]


def near(a, b, px=3) -> bool:
    return a[4] == b[4] and all(abs(p - q) <= px for p, q in zip(a[:4], b[:4], strict=True))


@pytest.mark.parametrize("seed", range(len(LINES)))
def test_a_camera_frame_of_a_sheet_takes_the_short_way_and_finds_what_the_full_stages_find(
    mnist_sample, seed
):
    frame = scene(mnist_sample, LINES[seed], seed=seed).frame
    assert takes_the_short_way(frame)
    short, full = boxes(frame, SETTINGS), boxes(frame, FULL)
    assert len(short) == len(full) == sum(len(line) for line in LINES[seed])
    assert all(near(a, b) for a, b in zip(short, full, strict=True)), (short, full)


def plain_sheet(seed=0, paper=205, noise=3.0):
    """A flat sheet filling the frame, a little noisy, with three "7"-like digits on it (uint8 grey)."""
    rng = np.random.default_rng(seed)
    img = np.full((480, 640), float(paper), np.float32) + rng.normal(0, noise, (480, 640))
    img = np.clip(img, 0, 255).astype(np.uint8)
    for x in (150, 300, 450):
        stroke_digit(img, x, 180, size=70)
    return img


def test_the_plain_sheet_itself_takes_the_short_way():
    # The sheet every scene below is made from: what declines each of them is what was added to it.
    assert takes_the_short_way(plain_sheet())
    assert len(segment(plain_sheet())) == 3


def with_hard_shadow(img):
    out = img.astype(np.float32)
    out[:, 320:] *= 0.6  # the edge of a phone's or a hand's shadow, straight across the page
    return out.astype(np.uint8)


def on_a_desk(img):
    out = img.copy()
    out[:, :60] = 70  # the desk beside the sheet, along the frame's left side
    return out


def ruled(img, level=150):
    out = img.copy()
    for y in range(40, 480, 40):
        cv2.line(out, (0, y), (639, y), level, 2)  # dark rules, crossing the digits
    return out


def light_grid(img, depth=12):
    out = img.astype(np.int16)
    for y in range(20, 480, 40):
        out[y : y + 2] -= depth  # printed light: about two thirds of the ink threshold, under it
    for x in range(20, 640, 40):
        out[:, x : x + 2] -= depth
    return np.clip(out, 0, 255).astype(np.uint8)


def cut_by_the_frame(img):
    out = img.copy()
    stroke_digit(out, 600, 300, size=70)  # its bar runs out of the frame
    return out


def cluttered(img, seed=1):
    out = img.copy()
    rng = np.random.default_rng(seed)
    for x, y in rng.integers(20, 460, (90, 2)):
        cv2.circle(out, (int(x) + 100, int(y)), 4, 60, -1)  # 90 dots: more pieces than a page of writing
    return out


@pytest.mark.parametrize(
    "change",
    [with_hard_shadow, on_a_desk, ruled, light_grid, cut_by_the_frame, cluttered],
    ids=lambda f: f.__name__,
)
def test_a_scene_that_needs_the_full_stages_is_declined(change):
    assert not takes_the_short_way(change(plain_sheet()))


def test_a_grid_printed_too_light_to_reach_the_trace_is_no_reason_to_decline():
    # Lines under FAINT of the threshold make no stub or crossing the ink is traced to.
    assert takes_the_short_way(light_grid(plain_sheet(), depth=4))


def test_the_full_stages_read_what_each_declined_scene_holds():
    # Declining is not dropping: the three digits are found on the ruled and the shadowed page.
    for change in (ruled, with_hard_shadow, light_grid):
        assert len(segment(change(plain_sheet()))) == 3, change.__name__


def test_chalk_on_a_board_is_no_plain_page():
    board = np.full((480, 640), 45, np.uint8)
    for x in (150, 300, 450):
        stroke_digit(board, x, 180, size=70, color=215)
    assert not takes_the_short_way(board)
    assert len(segment(board)) == 3


def test_plain_pages_false_always_takes_the_full_stages(monkeypatch, mnist_sample):
    import device.segment as seg

    called = []
    monkeypatch.setattr(seg, "plain_page", lambda *a: called.append(1))
    segment_frame(scene(mnist_sample, LINES[0]).frame, FULL)
    assert not called


def best_of(function, frame, settings, repeats=7) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function(frame, settings)
        best = min(best, time.perf_counter() - start)
    return best


def test_the_short_way_costs_well_under_the_full_stages(mnist_sample):
    # Two things timed in the same run, by turns (the machine's speed cancels out): measured at about a
    # third; the bar leaves room for a noisy machine.
    frames = [scene(mnist_sample, lines, seed=k).frame for k, lines in enumerate(LINES)]
    short = sum(best_of(segment_frame, frame, SETTINGS) for frame in frames)
    full = sum(best_of(segment_frame, frame, FULL) for frame in frames)
    assert short < 0.7 * full, (short, full)
