"""Shared fixtures: paths, the real MNIST sample shipped in tests/data, the shipped model; and what a test
needs from the machine (sshd, root, chromium...): skipped with the reason where it is missing, except under
``DIGIT_READER_REQUIRE_ALL=1`` (.ci/run sets it), where everything is installed and a skip would hide a
broken set-up: there the test fails instead."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
MODEL = ROOT / "device" / "models" / "digits_int8.tflite"  # the shipped model (package data)

REQUIRE_ALL = os.environ.get("DIGIT_READER_REQUIRE_ALL") == "1"


def needs(missing: str | bool | None) -> None:
    """Skip the calling test, naming what is ``missing`` (falsy: nothing is); fail where
    ``DIGIT_READER_REQUIRE_ALL=1``."""
    if not missing:
        return
    if REQUIRE_ALL:
        pytest.fail(f"needs {missing}; DIGIT_READER_REQUIRE_ALL=1 requires it here", pytrace=False)
    pytest.skip(f"needs {missing}")


def requires(missing: str | bool | None) -> pytest.MarkDecorator:
    """:func:`needs` as a mark, for a test or a whole module (``pytestmark``)."""
    return pytest.mark.requires(missing)


def pytest_runtest_setup(item) -> None:
    for mark in item.iter_markers("requires"):
        needs(mark.args[0])


HAS_TF = importlib.util.find_spec("tensorflow") is not None
needs_tf = requires(not HAS_TF and "TensorFlow (pip install -e '.[host]')")


@pytest.fixture(scope="session")
def mnist_sample():
    """dict with train_images/train_labels (4,000) and test_images/test_labels (1,000), real MNIST."""
    with np.load(DATA / "mnist_sample.npz") as npz:
        return {key: npz[key] for key in npz.files}


def digits_of(sample, text: str, offset: int = 0) -> list[np.ndarray]:
    """MNIST test digits (from the shipped sample) showing the digits of ``text``, in order."""
    images, labels = sample["test_images"], sample["test_labels"]
    picked = []
    for k, char in enumerate(text):
        matches = np.flatnonzero(labels == int(char))
        picked.append(images[matches[(offset + k) % len(matches)]])
    return picked


def write_video(path, frames, fps=20, count=None) -> None:
    """An MJPG video of ``frames`` (cycled to ``count`` frames when given), written with cv2.VideoWriter."""
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for i in range(count or len(frames)):
        writer.write(frames[i % len(frames)])
    writer.release()


def scene(sample, lines: list[str], seed: int = 0, **kwargs):
    """A camera-like frame with the given lines of digits written on it (host.synthetic.render)."""
    from host.synthetic import render

    rng = np.random.default_rng(seed)
    digits = [digits_of(sample, line, offset=seed) for line in lines]
    labels = [[int(c) for c in line] for line in lines]
    return render(digits, labels, rng, **kwargs)
