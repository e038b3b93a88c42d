"""The custom-dataset loop: collect crops with device-run --save-crops, fix the labels, fine-tune on MNIST
plus them, export int8 - on boxy seven-segment-style marker digits, a style MNIST lacks."""

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.conftest import MODEL, ROOT, needs_tf
from tests.styles import styled_page

pytestmark = [needs_tf, pytest.mark.host]


def held_out(seed: int, per_digit: int):
    """Normalized digits and labels, through the device pipeline, from pages never used for training."""
    from device.classify import Classifier
    from device.pipeline import FramePipeline

    pipeline = FramePipeline(Classifier(MODEL))
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(10):
        for _ in range(per_digit):
            result = pipeline.process(styled_page(label, rng))
            if len(result.normalized) == 1:  # one digit found: the usual case
                images.append(result.normalized[0])
                labels.append(label)
    return np.array(images), np.array(labels)


def int8_accuracy(path, images, labels) -> float:
    from device.classify import Classifier

    with Classifier(path, verify=False) as classifier:
        return float(np.mean(classifier.probabilities(images).argmax(axis=1) == labels))


def test_collect_relabel_finetune_gains(tmp_path, mnist_sample):
    from host.data import Dataset, load_folder, split_validation
    from host.export import export_tflite, representative_images
    from host.train import TrainSettings, train

    # 1. Collect: the user points the reader at pages of each digit with --save-crops.
    custom = tmp_path / "custom"
    rng = np.random.default_rng(11)
    for label in range(10):
        pages = tmp_path / "pages" / str(label)
        pages.mkdir(parents=True)
        for i in range(30):
            cv2.imwrite(str(pages / f"{i:03d}.png"), styled_page(label, rng))
        crops = tmp_path / "crops" / str(label)
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "device.cli",
                "--source",
                str(pages),
                "--output",
                "log",
                "--save-crops",
                str(crops),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr
        saved = sorted(crops.glob("*/*.png"))
        assert len(saved) >= 25 and all(p.read_bytes()[:4] == b"\x89PNG" for p in saved)
        assert all(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).shape == (28, 28) for p in saved)
        assert len(sorted(crops.glob("*/raw/*.png"))) == len(saved)
        # 2. Fix the labels: every crop of these pages is this digit, whatever the model said.
        (custom / str(label)).mkdir(parents=True)
        for path in saved:
            shutil.move(str(path), custom / str(label) / path.name)

    dataset = load_folder(custom)
    assert len(dataset) >= 250 and set(dataset.labels.tolist()) == set(range(10))
    eval_images, eval_labels = held_out(seed=99, per_digit=20)
    mnist_images, mnist_labels = mnist_sample["test_images"], mnist_sample["test_labels"]
    before_custom = int8_accuracy(MODEL, eval_images, eval_labels)
    before_mnist = int8_accuracy(MODEL, mnist_images, mnist_labels)

    # 3. Fine-tune the shipped float model on MNIST (the sample here) plus the custom digits.
    mnist = Dataset(mnist_sample["train_images"], mnist_sample["train_labels"])
    train_part, val_part = split_validation(mnist, 0.1, seed=3)
    custom_train, custom_val = split_validation(dataset, 0.2, seed=3)
    val = Dataset(
        np.concatenate([val_part.images, custom_val.images]),
        np.concatenate([val_part.labels, custom_val.labels]),
    )
    settings = TrainSettings(
        epochs=5,
        batch_size=64,
        learning_rate=3e-4,
        finetune_from=str(ROOT / "models" / "digits.keras"),
        seed=5,
    )
    model, _ = train(train_part, val, settings, extra=custom_train, verbose=0)
    tuned = tmp_path / "tuned_int8.tflite"
    tuned.write_bytes(
        export_tflite(model, "int8", representative_images(mnist_sample["train_images"], 200, 0))
    )
    after_custom = int8_accuracy(tuned, eval_images, eval_labels)
    after_mnist = int8_accuracy(tuned, mnist_images, mnist_labels)
    print(
        json.dumps(
            {
                "custom_before": before_custom,
                "custom_after": after_custom,
                "mnist_before": before_mnist,
                "mnist_after": after_mnist,
                "custom_train": len(custom_train),
                "held_out": len(eval_labels),
            }
        )
    )
    assert before_custom < 0.9  # the style really is new to the model
    # The loop must at least halve the errors on the new style and reach 85 % (model v2 with the segmenter
    # of stop 18, which no longer takes the boxy strokes for rules: 87 % -> 100 %).
    assert (1 - after_custom) <= 0.5 * (1 - before_custom) and after_custom >= 0.85
    assert after_mnist >= before_mnist - 0.003  # at most 0.3 points lost on MNIST
