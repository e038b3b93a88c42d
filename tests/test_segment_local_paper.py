"""A candidate's ink measured again against the paper round it (``ink_against_the_paper_round_it``), on
synthetic surfaces: a stroke the first measure lost where the light steps is found, and what is no digit's
own ink is refused."""

import cv2
import numpy as np
import pytest

from device.reading import Box
from device.segment import Segment, Surroundings, WorkImage, ink_against_the_paper_round_it

RING = (60, 60)  # the centre of the ring ("0") drawn on each surface, 24 px across and 36 px tall


def surface_with_a_step(step_at: int, lit: int = 210, shaded: int = 95) -> np.ndarray:
    """A 120x120 surface lit at ``lit`` left of column ``step_at`` and shaded to ``shaded`` right of it
    (a hard shadow's rim, a few px soft), with a ring written across the step at 0.45 of the paper under
    each stroke."""
    paper = np.full((120, 120), lit, np.float32)
    paper[:, step_at:] = shaded
    paper = cv2.blur(paper, (5, 1))  # a rim a few px soft
    pen = np.zeros((120, 120), np.uint8)
    cv2.ellipse(pen, RING, (12, 18), 0, 0, 360, 255, 4)
    pen = cv2.GaussianBlur(pen, (3, 3), 0).astype(np.float32) / 255
    return np.clip(paper * (1 - 0.55 * pen), 0, 255).astype(np.uint8)


def candidate(surface: np.ndarray, first_ink: np.ndarray, dark: bool = True) -> Segment:
    """A candidate whose first measure found ``first_ink`` (a mask of the surface): its crop, and where it
    was found."""
    ys, xs = np.nonzero(first_ink)
    x, y = xs.min(), ys.min()
    crop = np.where(first_ink, 255, 0).astype(np.uint8)[y : ys.max() + 1, x : xs.max() + 1]
    work = WorkImage(grey=surface, ink_source=surface, scale=1.0, offset=(0, 0))
    box = Box(int(x), int(y), crop.shape[1], crop.shape[0])
    return Segment(box, crop, surroundings=Surroundings(work, dark, (int(x), int(y))))


def test_the_strokes_lost_on_the_bright_side_of_a_step_are_found():
    """The ring's left side lies in the light and the rest in the shade; the first measure kept only the
    shaded part (on the lit side the frame's smooth background lagged behind the step, and the strokes
    read too weak). Measured against the paper round it, the whole ring is the candidate's ink."""
    step = RING[0] - 6
    surface = surface_with_a_step(step_at=step)
    shaded = surface < 0.75 * 95
    shaded[:, :step] = False
    found = ink_against_the_paper_round_it(candidate(surface, shaded))
    assert found is not None
    # The ring is 28 px wide with its strokes: the box now spans it.
    assert found.box.x <= RING[0] - 13 and found.box.x + found.box.w >= RING[0] + 13, found.box
    assert 34 <= found.box.h <= 42, found.box
    left, right = found.ink[:, : found.ink.shape[1] // 2], found.ink[:, found.ink.shape[1] // 2 :]
    assert (left > 127).sum() > 0.7 * (right > 127).sum()


def test_ink_that_runs_on_past_the_margin_is_refused():
    """A rule through the ring runs on to the side of the margin the paper is measured in: no digit's ink
    alone (the first measure had taken the rule out)."""
    surface = surface_with_a_step(step_at=120)
    first = surface < 150
    surface[RING[1] - 1 : RING[1] + 2, :] = 120
    assert ink_against_the_paper_round_it(candidate(surface, first)) is None
    # Without the rule the same candidate is measured again.
    assert ink_against_the_paper_round_it(candidate(surface_with_a_step(step_at=120), first)) is not None


def test_a_neighbours_ink_beside_the_candidate_is_not_its_own():
    """A stroke of the next digit within the margin, apart from the ring: only what the candidate's own
    ink touches counts."""
    surface = surface_with_a_step(step_at=120)
    first = surface < 150
    cv2.line(surface, (RING[0] + 22, 50), (RING[0] + 22, 70), 90, 3)
    found = ink_against_the_paper_round_it(candidate(surface, first))
    assert found is not None
    assert found.box.x + found.box.w <= RING[0] + 16, found.box


@pytest.mark.parametrize("dark", [True, False])
def test_chalk_on_a_board_is_measured_on_the_grey_turned_over(dark):
    """Light strokes on a dark board: the candidate's polarity says which way ink goes."""
    surface = surface_with_a_step(step_at=120)
    first = surface < 150
    if not dark:
        surface = 255 - surface
    found = ink_against_the_paper_round_it(candidate(surface, first, dark=dark))
    assert found is not None
    assert abs(found.box.w - 28) <= 3 and abs(found.box.h - 40) <= 3, found.box


def test_a_candidate_without_its_surroundings_is_not_measured_again():
    crop = np.full((20, 10), 255, np.uint8)
    assert ink_against_the_paper_round_it(Segment(Box(0, 0, 10, 20), crop)) is None
