"""A candidate's ink without the printed lines along its sides (``without_straight_sides``), on synthetic
crops: a digit written touching its box, or the upright sides the rules left of it, is read alone; a digit
with no such line is left as it is."""

import cv2
import numpy as np

from device.reading import Box
from device.segment import Segment, Surroundings, WorkImage, without_straight_sides

SIZE = 60  # the crop: a box 56 px across drawn 2 px in (a crop's padding)
RING = (30, 31)  # the centre of the ring ("0") written in the box, 26 px across and 40 px tall


def crop_of(ring_at: tuple[int, int] = RING, sides: str = "tlbr", pen: int = 4) -> np.ndarray:
    """A crop as ``crop_ink`` makes it (uint8, white on black, the strokes' soft edges kept): a ring written
    with a pen ``pen`` px wide, and of a printed box 2 px wide the ``sides`` named (t, l, b, r)."""
    ink = np.zeros((SIZE, SIZE), np.uint8)
    cv2.ellipse(ink, ring_at, (13, 20), 0, 0, 360, 255, pen)
    lo, hi = 2, SIZE - 3
    ends = {
        "t": ((lo, lo), (hi, lo)),
        "b": ((lo, hi), (hi, hi)),
        "l": ((lo, lo), (lo, hi)),
        "r": ((hi, lo), (hi, hi)),
    }
    for side in sides:
        cv2.line(ink, *ends[side], 255, 2)
    return cv2.GaussianBlur(ink, (3, 3), 0)


def candidate(crop: np.ndarray, at: tuple[int, int] = (100, 80)) -> Segment:
    """The crop as a candidate found at ``at`` (working px, at scale 1)."""
    surface = np.full((240, 320), 200, np.uint8)
    work = WorkImage(grey=surface, ink_source=surface, scale=1.0, offset=(0, 0))
    box = Box(at[0] + 2, at[1] + 2, crop.shape[1] - 4, crop.shape[0] - 4)
    return Segment(box, crop, surroundings=Surroundings(work, True, at))


def ring_box(found: Segment, ring_at: tuple[int, int] = RING, narrowest: int = 28) -> bool:
    """Whether the candidate found is the ring alone: its box round the ring's 31x45 px (with its stroke),
    at least ``narrowest`` px of its width left (a side the ring lies on takes the stroke under it)."""
    at = (100, 80)
    cx, cy = at[0] + ring_at[0], at[1] + ring_at[1]
    box = found.box
    return (
        abs(box.x - (cx - 15)) <= 2
        and abs(box.y - (cy - 22)) <= 2
        and narrowest <= box.w <= 34
        and abs(box.h - 45) <= 3
    )


def test_a_digit_touching_the_box_round_it_is_read_alone():
    """The ring touches the box's right side (written off centre): one piece with the box. Without the
    box's four sides, the ring alone is the candidate (but for its stroke under the side), its crop as a
    candidate's (full strength, padded)."""
    ring_at = (SIZE - 3 - 13, RING[1])
    found = without_straight_sides(candidate(crop_of(ring_at)))
    assert found is not None
    assert ring_box(found, ring_at, narrowest=22), found.box
    assert found.ink.max() == 255
    assert found.ink.shape == (found.box.h + 4, found.box.w + 4)
    assert found.cuttable is None and found.surroundings is None


def test_the_upright_sides_the_rules_left_are_taken_off():
    """A row of boxes whose top and bottom went as rules leaves its upright sides joined to the digit."""
    found = without_straight_sides(candidate(crop_of(sides="lr")))
    assert found is not None
    assert ring_box(found), found.box


def test_a_digit_without_a_straight_side_is_left_as_it_is():
    """A ring alone, a ring with one upright line beside it, and a ring drawn round with a marker (too thick
    to be printed) have no printed box round them."""
    assert without_straight_sides(candidate(crop_of(sides=""))) is None
    # One upright line alone: as often a written 1 touching the digit beside it ("10") as a box's side.
    assert without_straight_sides(candidate(crop_of(sides="l"))) is None
    framed_thick = crop_of(sides="")
    cv2.rectangle(framed_thick, (6, 6), (SIZE - 7, SIZE - 7), 255, 12)  # a marker's frame, a fifth as wide
    assert without_straight_sides(candidate(framed_thick)) is None


def test_a_candidate_without_its_surroundings_or_far_from_square_is_not_looked_at():
    crop = crop_of()
    bare = candidate(crop)
    assert without_straight_sides(Segment(bare.box, crop)) is None
    wide = np.hstack([crop, crop])  # two boxes side by side: cut as touching digits, not here
    assert without_straight_sides(candidate(wide)) is None
