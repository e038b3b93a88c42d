"""MNIST-style normalization on synthetic arrays."""

import cv2
import numpy as np
import pytest

from device.normalize import center_of_mass, normalize_digit, stroke_width, to_model_input, turned


def bar(h=100, w=30, thickness=12):
    ink = np.zeros((h + 40, w + 40), np.uint8)
    cv2.rectangle(ink, (20, 20), (20 + w - 1, 20 + h - 1), 255, thickness)
    return ink


def test_fits_longer_side_into_20_px_and_centres_mass():
    out = normalize_digit(bar(), min_stroke=None)
    assert out.shape == (28, 28) and out.dtype == np.uint8
    ys, xs = np.nonzero(out > 0)
    assert 19 <= ys.max() - ys.min() + 1 <= 22  # 20 px plus anti-aliased edge rows
    assert xs.max() - xs.min() + 1 <= 9  # aspect ratio kept: 30/100 * 20 = 6 px (+ edges)
    cx, cy = center_of_mass(out)
    assert abs(cx - 13.5) < 0.5 and abs(cy - 13.5) < 0.5


def test_off_centre_mass_is_moved_to_centre():
    # An "L": most mass at the bottom-left of its box, so the box centre is not the mass centre.
    ink = np.zeros((120, 120), np.uint8)
    ink[10:110, 10:25] = 255
    ink[95:110, 10:100] = 255
    out = normalize_digit(ink, min_stroke=None)
    cx, cy = center_of_mass(out)
    assert abs(cx - 13.5) < 0.5 and abs(cy - 13.5) < 0.5
    ys, xs = np.nonzero(out)
    # The box (20 px) is pushed right and up off the geometric centre (4..23) to centre the mass.
    assert xs.min() > 4 and ys.max() < 23


@pytest.mark.parametrize("width, height", [(5, 50), (6, 60), (4, 40), (9, 80)])
def test_an_upright_one_scaled_to_two_px_wide_stays_in_the_field(width, height):
    """A thin upright "1", its stroke's edges soft as a camera sees them, scaled to 2 px wide: cv2.moments
    takes an array two columns wide for a list of points, so its centre came out far off and the digit
    was shifted out of its image (an empty image, or a sliver at its edge)."""
    ink = np.zeros((height + 4, width + 4), np.uint8)
    ink[2 : 2 + height, 2 : 2 + width] = 255
    ink = cv2.GaussianBlur(ink, (3, 3), 0.8)
    out = normalize_digit(ink, min_stroke=None)
    ys = np.nonzero(out)[0]
    assert ys.max() - ys.min() + 1 >= 19  # the whole stroke, 20 px tall
    cx, cy = center_of_mass(out)
    assert abs(cx - 13.5) < 0.5 and abs(cy - 13.5) < 0.5
    column = np.zeros((20, 2), np.float32)
    column[5:, 1] = np.linspace(50, 250, 15)
    assert center_of_mass(column)[0] == pytest.approx(1.0)


def test_grey_levels_are_antialiased():
    ink = np.zeros((300, 300), np.uint8)
    cv2.circle(ink, (150, 150), 120, 255, 9)
    out = normalize_digit(ink, min_stroke=None)
    values = set(np.unique(out).tolist())
    assert len(values) > 10  # not a binary image


def test_thin_strokes_are_thickened_but_thick_ones_kept():
    thin = bar(h=200, w=80, thickness=3)
    assert stroke_width(thin[20:221, 20:101]) < 4
    thin_out = normalize_digit(thin)
    plain_out = normalize_digit(thin, min_stroke=None)
    assert (thin_out > 127).sum() > 1.5 * (plain_out > 127).sum()
    thick = bar(h=100, w=40, thickness=14)
    np.testing.assert_array_equal(normalize_digit(thick), normalize_digit(thick, min_stroke=None))


def test_mnist_digit_round_trip_is_close(mnist_sample):
    # An MNIST digit is already normalized; doing it again must change it little.
    digit = mnist_sample["test_images"][0]
    again = normalize_digit(digit)
    assert np.abs(again.astype(int) - digit.astype(int)).mean() < 20


def test_empty_and_bad_input():
    assert not normalize_digit(np.zeros((10, 10), np.uint8)).any()
    with pytest.raises(ValueError):
        normalize_digit(np.zeros((0, 5), np.uint8))
    batch = to_model_input([np.full((28, 28), 255, np.uint8)] * 2)
    assert batch.shape == (2, 28, 28, 1) and batch.max() == 1.0


def test_a_crop_turned_keeps_all_of_its_ink_and_turns_as_opencv_does():
    """A bar along a crop's whole width, turned a quarter: it stands upright, none of it cut off by the
    crop's own corners (the canvas is as wide as its diagonal). Turned by -30 degrees (clockwise, as seen),
    a level bar rises to the left: its left end ends up higher in the image."""
    bar = np.zeros((10, 40), np.uint8)
    bar[4:6, :] = 255
    upright = turned(bar, 90)
    ys, xs = np.nonzero(upright > 127)
    assert np.ptp(ys) >= 36 and np.ptp(xs) <= 3
    assert upright.astype(np.float64).sum() == pytest.approx(bar.astype(np.float64).sum(), rel=0.05)
    clockwise = turned(bar, -30)
    ys, xs = np.nonzero(clockwise > 127)
    assert ys[np.argmin(xs)] < ys[np.argmax(xs)] - 15  # the left end higher (rows count down)
