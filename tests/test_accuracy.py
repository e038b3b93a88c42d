"""Accuracy on camera-like pages: MNIST test digits (never trained on) printed onto paper with uneven light,
shadows, perspective, blur, noise, ink-thickness changes and JPEG, several digits per line and several lines;
plus blank and ruled pages that must read as nothing."""

import numpy as np
import pytest

from device.classify import Classifier
from device.pipeline import FramePipeline
from device.reading import Reading
from host.synthetic import blank, render
from tests.conftest import MODEL
from tools.scenes import edit_distance


@pytest.fixture(scope="module")
def pipeline():
    return FramePipeline(Classifier(MODEL))


def test_synthetic_pages_read_at_least_97_percent(pipeline, mnist_sample):
    images, labels = mnist_sample["test_images"], mnist_sample["test_labels"]
    rng = np.random.default_rng(2025)
    right = total = exact = 0
    next_digit = 0
    pages = 60
    for _ in range(pages):
        lines, line_labels = [], []
        for _ in range(rng.integers(1, 4)):
            n = int(rng.integers(1, 7))
            index = [(next_digit + k) % len(images) for k in range(n)]
            next_digit += n
            lines.append([images[i] for i in index])
            line_labels.append([int(labels[i]) for i in index])
        page = render(lines, line_labels, rng)
        read = Reading(tuple(pipeline.process(page.frame).digits)).text
        truth = page.text.replace(" ", "")
        right += max(0, len(truth) - edit_distance(read.replace(" ", ""), truth))
        total += len(truth)
        exact += read == page.text
    accuracy = right / total
    print(f"synthetic pages: {accuracy:.4f} of {total} digits right, {exact}/{pages} pages exact")
    assert total > 300
    assert accuracy >= 0.97


def test_blank_and_ruled_pages_read_nothing(pipeline):
    rng = np.random.default_rng(7)
    found = [len(pipeline.process(blank(rng, ruled=bool(i % 2))).digits) for i in range(40)]
    assert sum(found) == 0, found
