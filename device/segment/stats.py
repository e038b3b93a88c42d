"""Order statistics the stages take many times a frame, computed with one partial sort.

``np.percentile`` gives the same numbers but carries a fixed overhead of tens of microseconds a call (it
handles every method, NaNs and masked arrays): on a candidate's few hundred pixels, called for each of
dozens of candidates a frame, that overhead was most of the cost. These helpers keep numpy's default
("linear") definition, so results are unchanged.
"""

from __future__ import annotations

import numpy as np


def percentiles(values: np.ndarray, qs: tuple[float, ...], axis: int | None = None) -> np.ndarray:
    """The ``qs`` percentiles (0-100) of ``values``, as ``np.percentile(values, qs, axis)`` with the default
    linear interpolation, but with the percentiles along the *last* axis of the result (float64).

    ``axis=None`` takes the whole array; otherwise the percentiles are taken along ``axis``.
    """
    a = np.asarray(values)
    if axis is None:
        a, axis = a.ravel(), 0
    if a.shape[axis] == 0:
        raise ValueError("percentiles of an empty array")
    a = np.moveaxis(a, axis, -1)
    n = a.shape[-1]
    positions = np.asarray(qs, np.float64) / 100.0 * (n - 1)
    low = np.floor(positions).astype(np.intp)
    high = np.minimum(low + 1, n - 1)
    if a.ndim > 1 and n <= 4096:
        # Many short rows (a frame's tiles): a full sort is vectorized across them and beats partitioning
        # each at several places.
        ordered = np.sort(a, axis=-1)
    else:
        ordered = np.partition(a, np.unique(np.concatenate([low, high])), axis=-1)
    below = ordered[..., low].astype(np.float64)
    above = ordered[..., high].astype(np.float64)
    fraction = positions - low
    # numpy's own form of the interpolation (exact at both ends, whichever end is nearer).
    step = above - below
    return np.where(fraction >= 0.5, above - step * (1 - fraction), below + step * fraction)


def percentile(values: np.ndarray, q: float) -> float:
    """One percentile (0-100) of all of ``values``, as ``float(np.percentile(values, q))``."""
    a = np.asarray(values).ravel()
    if a.size == 0:
        raise ValueError("percentile of an empty array")
    position = q / 100.0 * (a.size - 1)
    low = int(position)
    high = min(low + 1, a.size - 1)
    if a.dtype == np.uint8 and a.size > 4096:
        # A large grey image: its histogram gives the k-th smallest value without sorting anything.
        at_most = np.cumsum(np.bincount(a, minlength=256))
        below, above = (float(np.searchsorted(at_most, k, side="right")) for k in (low, high))
    else:
        ordered = np.partition(a, [low, high] if high != low else low)
        below, above = float(ordered[low]), float(ordered[high])
    fraction = position - low
    if fraction >= 0.5:
        return above - (above - below) * (1 - fraction)
    return below + (above - below) * fraction


def median(values) -> float:
    """The median of all of ``values``, as ``float(np.median(values))`` (the mean of the two middle values
    of an even count, in the type of floating values, as numpy takes it), without its fixed overhead."""
    a = np.asarray(values).ravel()
    if a.size == 0:
        raise ValueError("median of an empty array")
    middle = a.size // 2
    if a.size % 2:
        return float(np.partition(a, middle)[middle])
    ordered = np.partition(a, [middle - 1, middle])
    below, above = ordered[middle - 1], ordered[middle]
    if not np.issubdtype(a.dtype, np.floating):
        return (float(below) + float(above)) / 2  # integers are averaged as floats (no uint8 overflow)
    return float((below + above) / 2)


def robust_sigma(values: np.ndarray) -> float:
    """Noise level from the lower half of the values: ink only ever adds, so the spread between the 10th
    percentile and the median is the paper's own, even where strokes cover a third of the area."""
    if values.size == 0:
        return 0.0
    p10, p50 = percentiles(values, (10, 50))
    return float(p50 - p10) / 1.2816
