"""Shared fixtures: paths, the real MNIST sample shipped in tests/data, the shipped model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
MODEL = ROOT / "models" / "digits_int8.tflite"

HAS_TF = importlib.util.find_spec("tensorflow") is not None
needs_tf = pytest.mark.skipif(not HAS_TF, reason="needs TensorFlow (pip install -e '.[host]')")


@pytest.fixture(scope="session")
def mnist_sample():
    """dict with train_images/train_labels (4,000) and test_images/test_labels (1,000), real MNIST."""
    with np.load(DATA / "mnist_sample.npz") as npz:
        return {key: npz[key] for key in npz.files}
