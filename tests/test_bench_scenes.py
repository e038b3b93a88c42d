"""The segmentation benchmark's account of where the time goes (``tools.bench_scenes.stage_costs``)."""

import numpy as np
import pytest

from device.segment import SegmentSettings
from host.synthetic import render
from tools.bench_scenes import PLAIN_STAGES, STAGES, compare_readings, stage_costs


def test_every_stage_of_the_segmenter_is_timed_and_together_they_are_most_of_it(mnist_sample):
    rng = np.random.default_rng(5)
    images, labels = mnist_sample["test_images"], mnist_sample["test_labels"]
    frames = [
        render(
            [list(images[k : k + 4]), list(images[k + 4 : k + 7])],
            [list(labels[k : k + 4]), list(labels[k + 4 : k + 7])],
            rng,
        ).frame
        for k in (0, 7, 14)
    ]
    # These are plain pages: as shipped they take the short way; with plain_pages off, the full stages.
    for settings, stages, idle in (
        (SegmentSettings(plain_pages=False), STAGES, {"remove_rules"}),
        (SegmentSettings(), PLAIN_STAGES, set()),
    ):
        total, by_stage = stage_costs(frames, settings, stages)
        assert list(by_stage) == list(stages)
        # The stages are timed within the whole, not beside it (compared with each other, in the same run);
        # those that work on every frame took some of it (``remove_rules`` has nothing to do on a page
        # without rules).
        assert all(by_stage[name] > 0 for name in stages if name not in idle), by_stage
        assert 0.5 * total <= sum(by_stage.values()) <= total


def readings(pages, blanks, desk=(), seed=2026):
    return {
        "seed": seed,
        "pages_per_kind": 30,
        "blank_frames": len(blanks),
        "pages": [list(page) for page in pages],
        "blanks": list(blanks),
        "desk": [list(page) for page in desk],
    }


def test_a_comparison_lists_every_page_that_reads_otherwise_and_the_totals():
    old = readings(
        [("ruled", 0, "12 34", "12 34", 4), ("grid", 0, "567", "57", 2)],
        ["", "1"],
        [("edge", 0, "89", "9", 1)],
    )
    new = readings(
        [("ruled", 0, "12 34", "12 4", 3), ("grid", 0, "567", "567", 3)],
        ["", ""],
        [("edge", 0, "89", "9", 1)],
    )
    assert compare_readings(old, new) == [
        "pages ruled 0: truth '12 34', '12 34' -> '12 4' (-1)",
        "pages grid 0: truth '567', '57' -> '567' (+1)",
        "blank 1: '1' -> ''",
        "pages: 6 -> 6 digits right (+0)",
        "desk: 1 -> 1 digits right (+0)",
        "blank frames read as nothing: 1 -> 2 (+1)",
    ]


def test_only_readings_of_the_same_pages_compare():
    with pytest.raises(ValueError, match="seed 3 against 2026"):
        compare_readings(readings([], [], seed=3), readings([], []))
    with pytest.raises(ValueError, match="blank_frames"):
        compare_readings(readings([], ["", ""]), readings([], [""]))


def test_pages_beside_the_benchmark_compare_where_both_runs_read_them():
    """Small frames and close-ups came later than the desk pages: a readings file from before them is still
    compared on what it has."""
    old = readings([("grid", 0, "567", "567", 3)], [""])
    new = {**readings([("grid", 0, "567", "567", 3)], [""]), "close": [["grid", 0, "12", "1", 1]]}
    assert compare_readings(old, new) == [
        "pages: 3 -> 3 digits right (+0)",
        "desk: 0 -> 0 digits right (+0)",
        "blank frames read as nothing: 1 -> 1 (+0)",
    ]
    both = {**new, "close": [["grid", 0, "12", "12", 2]]}
    assert "close grid 0: truth '12', '1' -> '12' (+1)" in compare_readings(new, both)
    assert "close: 1 -> 2 digits right (+1)" in compare_readings(new, both)
