"""The shipped model (the embedded default) against its card, on the real MNIST sample; and the classifier's
handling of the model's quantization."""

import hashlib
import json

import numpy as np
import pytest

from device.classify import LABELS_WITH_NONE, Classifier, Quantization
from device.errors import ModelError
from device.normalize import jittered
from tests.conftest import MODEL, ROOT

MODEL_V1 = ROOT / "models" / "digits_v1_int8.tflite"
# Measured on the shipped model (v2e): 98.2 % read right, 0.6 % rejected; model v1 reads 98.4 %.
CAMERA_RIGHT, CAMERA_REJECTED = 0.96, 0.02


def test_card_matches_file():
    card = json.loads(MODEL.with_suffix(".json").read_text())
    data = MODEL.read_bytes()
    assert card["sha256"] == hashlib.sha256(data).hexdigest()
    assert card["size_bytes"] == len(data) <= 48 * 1024
    assert card["macs"] <= 6_000_000
    assert card["input"]["dtype"] == "int8" and card["output"]["dtype"] == "int8"
    assert card["labels"] == [*(str(d) for d in range(10)), "none"]
    assert card["training_command"] and card["export_command"]
    assert card["tflite_accuracy"] >= card["float_accuracy"] - 0.001
    assert card["negatives_recipe"]["evaluation_seed"] != card["negatives_recipe"]["training_seed"]
    assert set(card["negatives_rejected"]) == {"texture", "line", "operator", "letter", "piece", "pair"}


def test_shipped_model_on_the_mnist_sample(mnist_sample):
    with Classifier(MODEL) as classifier:
        assert classifier.backend == "ai_edge_litert"
        assert classifier.input_quantization.dtype == np.int8
        assert classifier.labels == LABELS_WITH_NONE and classifier.has_none
        probs = classifier.probabilities(mnist_sample["test_images"])
        predictions = classifier.classify(mnist_sample["test_images"][:50])
    accuracy = np.mean(probs.argmax(axis=1) == mnist_sample["test_labels"])
    assert accuracy >= 0.99
    assert np.mean(probs.argmax(axis=1) == 10) <= 0.005  # real digits are hardly ever called "none"
    assert np.allclose(probs.sum(axis=1), 1.0, atol=0.05)
    assert all(p.is_digit and p.none < 0.5 for p in predictions)


def test_shipped_model_rejects_generated_negatives():
    """Negatives drawn with a seed the model never saw, through the device's own crop path."""
    pytest.importorskip("host.negatives")
    from host.negatives import KINDS, generate

    with np.load(ROOT / "tests" / "data" / "mnist_sample.npz") as npz:
        digits = npz["train_images"]
    negatives = generate(300, seed=12345, digits=digits)
    with Classifier(MODEL) as classifier:
        predictions = classifier.classify(negatives.images)
    rejected = np.array([not p.is_digit for p in predictions])
    # Half a digit is often a digit of its own (half an 8 is a 3, the stem of a 7 is a 1; these are not
    # screened here): the model that reads camera-cut digits (98 % instead of 88 %) rejects 66 % of them,
    # and the split a half belongs to only wins where the whole candidate is unsure. Operators (brackets,
    # which a model taught on screened negatives read as 1s: 86 % rejected) are rejected 98 % of the time.
    least = {"piece": 0.6, "operator": 0.94}
    for k, kind in enumerate(KINDS):
        assert rejected[negatives.kinds == k].mean() >= least.get(kind, 0.8), kind
    assert rejected.mean() >= 0.85


def camera_digits(count=500, seed=4321):
    """MNIST test digits written on paper, photographed and cut through the device's crop path (as the
    negatives are), with their labels."""
    pytest.importorskip("host.negatives")
    from host.negatives import device_digits

    with np.load(ROOT / "tests" / "data" / "mnist_sample.npz") as npz:
        return device_digits(count, seed, npz["test_images"], npz["test_labels"])


def reading(model, images, labels):
    """Share read right, and share rejected as not a digit."""
    with Classifier(model) as classifier:
        predictions = classifier.classify(images)
    right = np.mean([p.is_digit and p.digit == label for p, label in zip(predictions, labels, strict=True)])
    return right, np.mean([not p.is_digit for p in predictions])


def test_camera_digits_keep_their_labels():
    # Model v1 never saw them and has no "none": it reads most of them, so each crop is its digit.
    right, _rejected = reading(MODEL_V1, *camera_digits())
    assert right >= 0.9


def test_shipped_model_reads_digits_seen_through_the_camera():
    """A camera's soft, cut-out strokes must not mean "not a digit" (model v2 as first shipped rejected 12 %
    of these)."""
    right, rejected = reading(MODEL, *camera_digits())
    assert right >= CAMERA_RIGHT and rejected <= CAMERA_REJECTED


def test_model_v1_stays_loadable(mnist_sample):
    """The 10-class model v1 keeps working: labels from its card, no "none" ever."""
    with Classifier(MODEL_V1) as classifier:
        assert not classifier.has_none
        predictions = classifier.classify(mnist_sample["test_images"][:200])
    assert all(p.none == 0.0 for p in predictions)
    accuracy = np.mean([p.digit for p in predictions] == mnist_sample["test_labels"][:200])
    assert accuracy >= 0.98


def test_batches_give_the_same_answers_as_single_digits(mnist_sample):
    digits = mnist_sample["test_images"][:37]
    with Classifier(MODEL) as classifier:
        one_by_one = np.array([classifier.probabilities(d[None])[0] for d in digits])
        batched = classifier.probabilities(digits)
        chunked = classifier.probabilities(digits, max_batch=8)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-6)
    np.testing.assert_allclose(chunked, one_by_one, atol=1e-6)
    assert classifier.classify([]) == []


def test_candidates_seen_several_ways_are_read_from_their_mean_probabilities(mnist_sample):
    """``classify_views``: one prediction per candidate from the class probabilities averaged over its views
    (``jittered``: a pixel off each way, turned a little each way), all candidates in one invoke; one view
    reads as alone."""
    digits = mnist_sample["test_images"][:3]
    candidates = [[digit, *jittered(digit)] for digit in digits]
    assert all(len(views) == 7 and all(view.shape == (28, 28) for view in views) for views in candidates)
    with Classifier(MODEL) as classifier:
        assert classifier.classify_views([[digits[0]]]) == classifier.classify(digits[:1])
        assert classifier.classify_views([]) == []
        means = [classifier.probabilities(views).mean(axis=0) for views in candidates]
        read = classifier.classify_views(candidates)
    for prediction, mean in zip(read, means, strict=True):
        assert prediction.digit == int(mean[:10].argmax())
        assert prediction.confidence == pytest.approx(mean[prediction.digit] / mean[:10].sum(), rel=1e-5)
        assert prediction.none == pytest.approx(mean[10], rel=1e-5)


def test_quantization_round_trip():
    q = Quantization(np.dtype(np.int8), 1 / 255, -128)
    real = np.array([0.0, 0.6, 1.0, 2.0], np.float32)
    assert q.quantize(real).tolist() == [-128, 25, 127, 127]  # 0.6 * 255 - 128 = 25; 2.0 is clipped
    np.testing.assert_allclose(q.dequantize(q.quantize(real[:3])), [0.0, 0.6, 1.0], atol=1 / 255)
    u = Quantization(np.dtype(np.uint8), 1 / 255, 0)
    assert u.quantize(np.array([0.0, 1.0])).tolist() == [0, 255]
    f = Quantization(np.dtype(np.float32), 0.0, 0)
    assert f.quantize(np.array([0.25])).dtype == np.float32


def test_corrupt_and_mismatched_models(tmp_path):
    truncated = tmp_path / "cut.tflite"
    truncated.write_bytes(MODEL.read_bytes()[:2000])
    with pytest.raises(ModelError, match="not a valid TFLite model"):
        Classifier(truncated)
    copy = tmp_path / "digits_int8.tflite"
    copy.write_bytes(MODEL.read_bytes())
    card = json.loads(MODEL.with_suffix(".json").read_text())
    card["sha256"] = "0" * 64
    (tmp_path / "digits_int8.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="does not match its card"):
        Classifier(copy)
    Classifier(copy, verify=False).close()  # the check can be turned off
