"""A real, small training run on the shipped MNIST sample, then int8 export, evaluation and refusal."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import needs_tf

pytestmark = [needs_tf, pytest.mark.host]


@pytest.fixture(scope="module")
def trained(mnist_sample, tmp_path_factory):
    from host.data import Dataset, split_validation
    from host.negatives import generate
    from host.train import NONE_CLASS, TrainSettings, history_path, train

    negatives = generate(800, seed=3, digits=mnist_sample["train_images"])
    data = Dataset(
        np.concatenate([mnist_sample["train_images"], negatives.images]),
        np.concatenate([mnist_sample["train_labels"], np.full(len(negatives), NONE_CLASS, np.uint8)]),
    )
    train_part, val_part = split_validation(data, 0.1, seed=1)
    settings = TrainSettings(epochs=2, batch_size=64, seed=7)
    model, history = train(train_part, val_part, settings, verbose=0)
    out = tmp_path_factory.mktemp("model") / "digits.keras"
    model.save(out)
    history_path(out).write_text(
        json.dumps({"settings": {"epochs": 2}, "params": model.count_params(), "macs": 1, "history": history})
    )
    return model, out, history


def test_training_learns_on_held_apart_digits(trained, mnist_sample):
    from host.export import keras_predictions

    model, _, history = trained
    predictions = keras_predictions(model, mnist_sample["test_images"])
    accuracy = np.mean(predictions == mnist_sample["test_labels"])
    assert accuracy > 0.90, accuracy
    assert len(history["loss"]) == 2 and history["loss"][1] < history["loss"][0]


def test_final_fit_on_all_digits_runs_every_epoch(mnist_sample, tmp_path):
    from host.data import Dataset
    from host.train import TrainSettings, parse_args, plot_history, train

    data = Dataset(mnist_sample["train_images"][:1000], mnist_sample["train_labels"][:1000])
    none = Dataset(data.images[:0], data.labels[:0])
    _, history = train(data, none, TrainSettings(epochs=2, batch_size=64, validation_fraction=0), verbose=0)
    assert "val_loss" not in history and history["best_epoch"] == 2 and len(history["loss"]) == 2
    plot_history(history, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert parse_args(["--validation-fraction", "0"]).validation_fraction == 0
    with pytest.raises(SystemExit):
        parse_args(["--validation-fraction", "0.5"])


def test_model_is_compact_and_macs_counted(trained):
    from host.model import count_macs

    model, _, _ = trained
    assert model.count_params() < 100_000
    # conv1 alone: 28*28*9*1*32 = 225,792 MACs; the whole model is a few million.
    assert 1_000_000 < count_macs(model) < 20_000_000


def test_int8_export_agrees_with_keras(trained, mnist_sample):
    from ai_edge_litert.interpreter import Interpreter

    from device.classify import Classifier
    from host.export import export_tflite, keras_predictions, representative_images

    model, _, _ = trained
    content = export_tflite(model, "int8", representative_images(mnist_sample["train_images"], 200, seed=0))
    interpreter = Interpreter(model_content=content)
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.tflite"
        path.write_bytes(content)
        with Classifier(path, verify=False) as classifier:
            int8_pred = classifier.probabilities(mnist_sample["test_images"]).argmax(axis=1)
    keras_pred = keras_predictions(model, mnist_sample["test_images"])
    assert np.mean(int8_pred == keras_pred) >= 0.98


def test_export_cli_writes_card_and_refuses_big_drop(trained, tmp_path, monkeypatch, mnist_sample):
    import host.export as export
    from host.data import Dataset

    _, keras_path, _ = trained
    sample = (
        Dataset(mnist_sample["train_images"], mnist_sample["train_labels"]),
        Dataset(mnist_sample["test_images"], mnist_sample["test_labels"]),
    )
    monkeypatch.setattr(export, "load_mnist", lambda _dir: sample)  # the data seam: the shipped sample

    out = tmp_path / "m_int8.tflite"
    # A negative margin demands int8 be *better* than float by 5 points: it must refuse and write nothing.
    args = export.parse_args(
        ["--int8", "--model", str(keras_path), "--out", str(out), "--max-drop", "-5", "--negatives", "120"]
    )
    with pytest.raises(
        export.ModelError, match=r"int8 export loses .* more than --max-drop -5.0; nothing written"
    ):
        export.run(args)
    assert list(tmp_path.iterdir()) == []

    # The default margin (0.3 points) is 3 of the sample's 1,000 test digits: noise for a 2-epoch model.
    args = export.parse_args(
        ["--int8", "--model", str(keras_path), "--out", str(out), "--negatives", "120", "--max-drop", "2"]
    )
    card = export.run(args)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_int8.json", "m_int8.tflite"]
    on_disk = json.loads((tmp_path / "m_int8.json").read_text())
    assert on_disk == card
    assert card["input"]["dtype"] == "int8" and card["output"]["dtype"] == "int8"
    assert card["input"]["shape"] == [1, 28, 28, 1]
    assert card["labels"] == [*(str(d) for d in range(10)), "none"]
    assert card["negatives_count"] > 100 and 0 <= card["negatives_rejected_all"] <= 1
    assert abs(card["float_accuracy"] - card["tflite_accuracy"]) <= 0.01
    assert card["size_bytes"] == out.stat().st_size
    import hashlib

    assert card["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()


def test_eval_on_folder_dataset(trained, tmp_path, mnist_sample, capsys):
    import cv2

    from host.evaluate import parse_args, run

    _, keras_path, _ = trained
    for i in range(50):
        digit = int(mnist_sample["test_labels"][i])
        (tmp_path / "data" / str(digit)).mkdir(parents=True, exist_ok=True)
        # Saved as dark ink on white paper: the loader must invert and re-normalize them.
        cv2.imwrite(str(tmp_path / "data" / str(digit) / f"{i}.png"), 255 - mnist_sample["test_images"][i])
    (evaluation,) = run(
        parse_args(
            [
                "--model",
                str(keras_path),
                "--data",
                str(tmp_path / "data"),
                "--report-dir",
                str(tmp_path / "rep"),
            ]
        )
    )
    assert len(evaluation.labels) == 50
    assert evaluation.accuracy > 0.85
    assert evaluation.confusion.sum() == 50
    assert (tmp_path / "rep" / "digits_data_confusion.png").stat().st_size > 1000
    assert (tmp_path / "rep" / "digits_data_misclassified.png").stat().st_size > 1000
    assert "accuracy" in capsys.readouterr().out


def test_none_head_factors_the_probabilities_and_exports_as_eleven(mnist_sample, tmp_path, capsys):
    """With its own head for "none", the model still gives eleven probabilities; the loss of a negative
    moves no weight of the digits' softmax (only the shared features and the none head); and the int8
    export reads as the Keras model does."""
    import tensorflow as tf

    from device.classify import Classifier
    from host.export import export_tflite, keras_predictions, representative_images
    from host.model import ModelSpec, build_model
    from host.negatives import generate
    from host.train import NONE_CLASS, parse_args

    model = build_model(ModelSpec(none_head=True))
    images = mnist_sample["test_images"][:64, ..., None].astype(np.float32) / 255.0
    probabilities = model(images, training=False).numpy()
    assert probabilities.shape == (64, 11)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)

    negatives = generate(32, seed=5, digits=mnist_sample["train_images"]).images[..., None] / 255.0
    digit_head = model.get_layer("digit").trainable_weights
    none_head = model.get_layer("none").trainable_weights
    loss = tf.keras.losses.CategoricalCrossentropy()
    for batch, label, moved, still in (
        (negatives.astype(np.float32), NONE_CLASS, none_head, digit_head),
        (images[:32], None, digit_head + none_head, []),
    ):
        labels = np.full(len(batch), NONE_CLASS) if label is not None else mnist_sample["test_labels"][:32]
        with tf.GradientTape() as tape:
            value = loss(tf.one_hot(labels, 11), model(batch, training=True))
        grads = tape.gradient(value, moved + still)
        assert all(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads[: len(moved)])
        # Not exactly 0: Keras' cross-entropy divides by the probabilities' sum, 1 to a float's rounding.
        assert all(g is None or float(tf.reduce_max(tf.abs(g))) < 1e-6 for g in grads[len(moved) :])

    path = tmp_path / "m_int8.tflite"
    calibration = representative_images(mnist_sample["train_images"], 100, 0)
    path.write_bytes(export_tflite(model, "int8", calibration))
    with Classifier(path, verify=False) as classifier:
        int8 = classifier.probabilities(mnist_sample["test_images"][:200])
    assert int8.shape == (200, 11)
    agreement = np.mean(int8.argmax(axis=1) == keras_predictions(model, mnist_sample["test_images"][:200]))
    assert agreement >= 0.95

    with pytest.raises(SystemExit):
        parse_args(["--none-head", "--digits-only"])
    assert "--none-head: needs the cnn" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["uint8", "float16", "float32"])
def test_classifier_runs_every_export_kind(trained, mnist_sample, tmp_path, kind):
    from device.classify import Classifier
    from host.export import export_tflite, keras_predictions, representative_images

    model, _, _ = trained
    path = tmp_path / f"m_{kind}.tflite"
    path.write_bytes(export_tflite(model, kind, representative_images(mnist_sample["train_images"], 100, 0)))
    with Classifier(path, verify=False) as classifier:
        expected = {"uint8": np.uint8, "float16": np.float32, "float32": np.float32}[kind]
        assert classifier.input_quantization.dtype == expected
        predictions = classifier.probabilities(mnist_sample["test_images"]).argmax(axis=1)
    agreement = np.mean(predictions == keras_predictions(model, mnist_sample["test_images"]))
    assert agreement >= 0.98


def test_runs_go_to_their_own_folder_and_ship_replaces_the_shipped_model(tmp_path, caplog):
    """host-train writes under runs/<time>/ by default, host-export takes the newest run, and only --ship
    replaces models/ (logging the replaced model's accuracy beside the new one)."""
    import logging
    import os
    import time

    from host.export import newest_run, ship
    from host.export import parse_args as export_args
    from host.train import parse_args as train_args

    assert train_args([]).out is None and export_args([]).model is None and not export_args([]).ship
    runs = tmp_path / "runs"
    assert newest_run(runs) is None
    for name, age in (("20260101-000000", 100), ("20260102-000000", 0)):
        (runs / name).mkdir(parents=True)
        path = runs / name / "digits.keras"
        path.write_bytes(name.encode())
        os.utime(path, (time.time() - age, time.time() - age))
    assert newest_run(runs) == runs / "20260102-000000" / "digits.keras"

    run = runs / "20260102-000000"
    (run / "digits_int8.tflite").write_bytes(b"new model")
    (run / "digits_int8.json").write_text(json.dumps({"tflite_accuracy": 0.99}))
    (run / "digits.history.json").write_text("{}")
    models = tmp_path / "models"
    models.mkdir()
    (models / "digits_int8.tflite").write_bytes(b"old model")
    (models / "digits_int8.json").write_text(json.dumps({"tflite_accuracy": 0.98}))
    with caplog.at_level(logging.INFO, logger="host.export"):
        ship(run / "digits_int8.tflite", run / "digits.keras", models, models)
    assert (models / "digits_int8.tflite").read_bytes() == b"new model"
    assert json.loads((models / "digits_int8.json").read_text()) == {"tflite_accuracy": 0.99}
    assert (models / "digits.keras").read_bytes() == b"20260102-000000"
    assert (models / "digits.history.json").read_text() == "{}"
    assert "0.9900" in caplog.text and "0.9800" in caplog.text
    assert sorted(p.name for p in models.iterdir() if p.name.startswith(".")) == []


def test_the_negatives_weight_the_average_of_the_weights_and_the_kinds_left_out_reach_training(
    mnist_sample, capsys
):
    """--none-weight weighs each negative in the loss, --ema ends on the weights' moving average, and
    --leave-out drops one kind of negative while the others stay the same crops."""
    from host.data import Dataset
    from host.negatives import KINDS, generate
    from host.train import NONE_CLASS, TrainSettings, parse_args, train

    negatives = generate(120, seed=4, digits=mnist_sample["train_images"])
    without_pieces = negatives.without(("piece",))
    assert KINDS.index("piece") in negatives.kinds and KINDS.index("piece") not in without_pieces.kinds
    others = negatives.kinds != KINDS.index("piece")
    assert np.array_equal(without_pieces.images, negatives.images[others])

    data = Dataset(
        np.concatenate([mnist_sample["train_images"][:600], negatives.images]),
        np.concatenate([mnist_sample["train_labels"][:600], np.full(len(negatives), NONE_CLASS, np.uint8)]),
    )
    none = Dataset(data.images[:0], data.labels[:0])
    said_none = {}
    for weight in (1.0, 0.01):
        settings = TrainSettings(epochs=2, batch_size=32, validation_fraction=0, none_weight=weight, ema=0.9)
        model, _ = train(data, none, settings, verbose=0)
        probabilities = model.predict(negatives.images[..., None] / 255.0, verbose=0)
        said_none[weight] = probabilities[:, NONE_CLASS].mean()
        averages = model.optimizer._model_variables_moving_average
        assert len(averages) == len(model.trainable_weights) > 0
        for weights, average in zip(model.trainable_weights, averages, strict=True):
            assert np.array_equal(weights.numpy(), average.numpy())
    assert said_none[0.01] < 0.5 * said_none[1.0], said_none

    args = parse_args(["--leave-out", "piece,pair", "--none-weight", "0.5", "--ema", "0.999"])
    assert (args.leave_out, args.none_weight, args.ema) == (("piece", "pair"), 0.5, 0.999)
    for flags, said in (
        (["--leave-out", "piece,pice"], "--leave-out pice: must name kinds of negative"),
        (["--none-weight", "0"], "--none-weight 0.0: must be positive"),
        (["--ema", "1"], "--ema 1.0: must be in [0, 1)"),
    ):
        with pytest.raises(SystemExit):
            parse_args(flags)
        assert said in capsys.readouterr().err
