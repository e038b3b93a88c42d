"""The generated "not a digit" crops: what is drawn again for looking like a digit."""

import numpy as np
import pytest

pytest.importorskip("host.negatives")

from host.negatives import generate


def everything_looks_like_a_digit(images):
    return np.ones(len(images), bool)


@pytest.fixture(scope="module")
def digits(mnist_sample):
    return mnist_sample["train_images"]


def test_half_digits_that_look_like_digits_are_drawn_again(digits):
    screened = generate(12, 5, digits, kinds=("piece",), looks_like_a_digit=everything_looks_like_a_digit)
    assert len(screened) == 0  # every drawing was taken for a digit: none is kept as "not a digit"


def test_operators_are_kept_whatever_a_digit_model_says(digits):
    """A bracket bends by 90 degrees or more and the slash is drawn as a division sign: screened, most
    brackets were left out and the model read 14 % of the held-apart ones as 1s."""
    kept = generate(12, 5, digits, kinds=("operator",), looks_like_a_digit=everything_looks_like_a_digit)
    assert len(kept) == 12
