"""The order statistics of the segmentation give numpy's own percentiles (the default, linear method)."""

import numpy as np
import pytest

from device.segment.stats import median, percentile, percentiles, robust_sigma


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("size", [1, 2, 7, 400, 5000, 70_000])
def test_percentile_is_numpys(dtype, size):
    rng = np.random.default_rng(size)
    values = (rng.random(size) ** 2 * 255).astype(dtype)
    for q in (0, 0.1, 10, 25, 50, 73.3, 90, 95, 99.9, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-6, abs=1e-9)


def test_percentiles_along_an_axis_are_numpys():
    rng = np.random.default_rng(3)
    tiles = rng.random((5, 6, 1024)).astype(np.float32)
    ours = percentiles(tiles, (10, 50), axis=2)
    assert ours.shape == (5, 6, 2)
    np.testing.assert_allclose(np.moveaxis(ours, -1, 0), np.percentile(tiles, (10, 50), axis=2), rtol=1e-6)


def test_a_large_grey_image_uses_its_histogram_and_still_agrees():
    grey = np.random.default_rng(4).integers(0, 256, (240, 320)).astype(np.uint8)
    grey[:10] = 255  # ties at the top
    for q in (0.1, 50, 99, 99.9):
        assert percentile(grey, q) == float(np.percentile(grey, q))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64, np.int64])
@pytest.mark.parametrize("size", [1, 2, 3, 8, 401, 5000])
def test_median_is_numpys_to_the_bit(dtype, size):
    # Exactly numpy's (the mean of the two middle values in the values' own type): a stage compares a
    # median with a threshold, and a last-bit difference could turn a decision.
    rng = np.random.default_rng(size)
    for _ in range(20):
        values = (rng.random(size) * rng.choice([1e-3, 1.0, 250.0])).astype(dtype)
        assert median(values) == float(np.median(values))
    assert median([3, 1, 2, 10]) == 2.5  # a list too, as the stages pass heights


def test_empty_values_are_refused_and_have_no_noise():
    with pytest.raises(ValueError):
        percentile(np.array([]), 50)
    with pytest.raises(ValueError):
        median(np.array([]))
    with pytest.raises(ValueError):
        percentiles(np.zeros((3, 0)), (50,), axis=1)
    assert robust_sigma(np.array([])) == 0.0
