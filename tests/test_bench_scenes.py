"""The segmentation benchmark's account of where the time goes (``tools.bench_scenes.stage_costs``)."""

import numpy as np

from device.segment import SegmentSettings
from host.synthetic import render
from tools.bench_scenes import STAGES, stage_costs


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
    total, by_stage = stage_costs(frames, SegmentSettings())
    assert list(by_stage) == list(STAGES)
    # The stages are timed within the whole, not beside it (compared with each other, in the same run); those
    # that work on every frame took some of it (``remove_rules`` has nothing to do on a page without rules).
    assert all(by_stage[name] > 0 for name in STAGES if name != "remove_rules"), by_stage
    assert 0.5 * total <= sum(by_stage.values()) <= total
