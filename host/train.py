"""host-train: train the compact CNN on MNIST (plus optional custom digits) with camera-matched augmentation.

Writes the float model (``models/digits.keras``), its training history and settings as JSON
(``models/digits.history.json``, read by host-export for the model card) and a training-curves PNG.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device.errors import DigitReaderError
from device.safeio import save_atomically
from host.cli import run_command, summary
from host.data import NONE_LABEL_INDEX, Dataset, load_folder, load_mnist, split_validation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides the trained weights, recorded in the model card."""

    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    validation_fraction: float = 0.05
    patience: int = 10
    seed: int = 1234
    augment: bool = True
    extra_weight: float = 5.0  # how much one custom image counts relative to one MNIST image
    finetune_from: str | None = None
    stage_widths: tuple[int, ...] = (16, 32, 64)
    convs_per_stage: tuple[int, ...] = (2, 2, 1)
    classes: int = 11  # 10: digits only (model v1); 11: digits and "none"
    negatives: int = 24000  # generated "not a digit" crops (host.negatives), 11-class models only
    negatives_seed: int = 1  # the held-apart evaluation set uses NEGATIVES_EVAL_SEED, never this one
    device_digits: int = (
        20000  # training digits also shown through the device's camera and cut (host.negatives)
    )
    label_smoothing: float = 0.1
    notes: dict = field(default_factory=dict)


RUNS = Path("runs")  # each training run writes to a folder of its own under here, unless --out says otherwise
NONE_CLASS = NONE_LABEL_INDEX  # label index of "none" in an 11-class model
NEGATIVES_EVAL_SEED = 99  # the held-apart negatives: a seed never used for training


def set_seeds(seed: int) -> None:
    """Seed Python, numpy and TensorFlow so a run can be repeated."""
    import keras

    keras.utils.set_random_seed(seed)


def make_dataset(
    data: Dataset, batch_size: int, augment, shuffle_seed: int | None, weights=None, classes: int = 10
):
    """A tf.data pipeline of float batches (B, 28, 28, 1) in [0, 1] and one-hot labels (for label
    smoothing); augmentation runs per batch."""
    import tensorflow as tf

    x = data.images[..., None]
    parts = (
        (x, data.labels.astype(np.int32)) if weights is None else (x, data.labels.astype(np.int32), weights)
    )
    ds = tf.data.Dataset.from_tensor_slices(parts)
    if shuffle_seed is not None:
        ds = ds.shuffle(len(data), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def prepare(image, label, *rest):
        image = tf.cast(image, tf.float32) / 255.0
        if augment is not None:
            image = augment(image)
        return (image, tf.one_hot(label, classes), *rest)

    # One augmentation call at a time: the Keras random layers keep state and are cheap on a whole batch.
    return ds.map(prepare, num_parallel_calls=1).prefetch(tf.data.AUTOTUNE)


def train(
    train_data: Dataset,
    val_data: Dataset,
    settings: TrainSettings,
    extra: Dataset | None = None,
    verbose: int | None = None,
):
    """Train a model (or fine-tune ``settings.finetune_from``); return (model, history dict)."""
    import keras

    from host.augment import AugmentSettings, build_augmenter

    if verbose is None:  # a progress bar on a terminal, one line per epoch in a log file
        verbose = 1 if sys.stderr.isatty() else 2
    from host.model import ModelSpec, build_model

    set_seeds(settings.seed)
    classes = settings.classes
    weights = None
    if extra is not None and len(extra):
        weights = np.concatenate(
            [np.ones(len(train_data), np.float32), np.full(len(extra), settings.extra_weight, np.float32)]
        )
        train_data = Dataset(
            np.concatenate([train_data.images, extra.images]),
            np.concatenate([train_data.labels, extra.labels]),
        )
    if settings.finetune_from:
        model = keras.models.load_model(settings.finetune_from)
        classes = int(model.output_shape[-1])
        if classes <= max(int(train_data.labels.max()), int(val_data.labels.max(initial=0))):
            raise DigitReaderError(
                f"--finetune {settings.finetune_from}: a {classes}-class model cannot learn 'none' examples"
            )
    else:
        model = build_model(ModelSpec(settings.stage_widths, settings.convs_per_stage, classes=classes))
    steps = int(np.ceil(len(train_data) / settings.batch_size)) * settings.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, warmup_target=settings.learning_rate, warmup_steps=min(500, steps // 10)
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=settings.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=settings.label_smoothing),
        metrics=["accuracy"],
        weighted_metrics=[],
    )
    augment = build_augmenter(AugmentSettings(), settings.seed) if settings.augment else None
    train_ds = make_dataset(train_data, settings.batch_size, augment, settings.seed, weights, classes)
    val_ds, callbacks = None, []
    if len(val_data):
        val_ds = make_dataset(val_data, 512, None, None, classes=classes)
        # The cosine schedule does its best work in the last epochs, when the rate is low: early stopping may
        # act only after 60 % of them, or it stops on validation noise before the model has settled.
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=settings.patience,
                restore_best_weights=True,
                start_from_epoch=int(settings.epochs * 0.6),
                verbose=verbose,
            )
        )
    started = time.monotonic()
    history = model.fit(
        train_ds, validation_data=val_ds, epochs=settings.epochs, callbacks=callbacks, verbose=verbose
    )
    record = {key: [float(v) for v in values] for key, values in history.history.items()}
    record["seconds"] = round(time.monotonic() - started, 1)
    # Without validation (a final fit) the model is the one after the last epoch.
    record["best_epoch"] = (
        int(np.argmin(record["val_loss"])) + 1 if "val_loss" in record else len(record["loss"])
    )
    return model, record


def plot_history(history: dict, path: Path) -> None:
    """Loss and accuracy curves, train vs validation, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = range(1, len(history["loss"]) + 1)
    for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        ax.plot(epochs, history[key], label="train (augmented)")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


SCREEN_MODEL = Path(__file__).resolve().parent.parent / "models" / "digits_v1_int8.tflite"


def digit_screen(model: Path = SCREEN_MODEL, confidence: float = 0.9):
    """``images -> bool array``: the digits-only model v1 reads them as a digit with ``confidence`` or more
    (used to keep digit-like drawings out of the negatives); None when that model is not there."""
    if not model.is_file():
        log.warning("no %s: generated negatives are not screened for digit-like drawings", model)
        return None
    from device.classify import Classifier

    classifier = Classifier(model, verify=False)

    def looks_like_a_digit(images: np.ndarray) -> np.ndarray:
        return np.array([p.confidence >= confidence for p in classifier.classify(images)])

    return looks_like_a_digit


def write_grid(path: Path, negatives) -> None:
    """A PNG of the generated negatives, one row per kind, enlarged 3x, for review."""
    import cv2

    from host.negatives import sample_grid

    grid = sample_grid(negatives, per_kind=16)
    if not cv2.imwrite(str(path), cv2.resize(grid, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)):
        raise OSError(f"cannot write {path}")


def history_path(model_path: Path) -> Path:
    """Where the history/settings JSON of a model lives (``digits.keras`` -> ``digits.history.json``)."""
    return model_path.with_suffix(".history.json")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="host-train",
        description=summary(__doc__),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--data-dir", help="folder with the four MNIST IDX files (default: $MNIST_DIR, else download)"
    )
    parser.add_argument("--epochs", type=int, default=TrainSettings.epochs)
    parser.add_argument("--batch-size", type=int, default=TrainSettings.batch_size)
    parser.add_argument(
        "--learning-rate",
        type=float,
        help=f"peak learning rate (default {TrainSettings.learning_rate}, a tenth of it with --finetune)",
    )
    parser.add_argument("--seed", type=int, default=TrainSettings.seed)
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=TrainSettings.validation_fraction,
        help="share of the MNIST training digits held out for early stopping (default %(default)s); 0 is a "
        "final fit on all of them for exactly --epochs, once the epochs were chosen with a held-out share",
    )
    parser.add_argument("--no-augment", action="store_true", help="train on the plain digits")
    parser.add_argument("--limit", type=int, help="use only the first N training digits (quick experiments)")
    parser.add_argument(
        "--extra-data", help="custom digits in DIR/<digit>/*.png, added to MNIST with more weight"
    )
    parser.add_argument("--extra-weight", type=float, default=TrainSettings.extra_weight)
    parser.add_argument(
        "--finetune", metavar="MODEL", help="start from this .keras model instead of from scratch"
    )
    parser.add_argument(
        "--out",
        help="where to write the float model (default: runs/<time>/digits.keras, a folder of its own per "
        "run; the shipped model in models/ is replaced only by host-export --ship)",
    )
    parser.add_argument(
        "--digits-only",
        action="store_true",
        help="a 10-class model without the 'none' class and without generated negatives (model v1 style)",
    )
    parser.add_argument(
        "--negatives",
        type=int,
        default=TrainSettings.negatives,
        help="generated 'not a digit' crops to train on (default %(default)s)",
    )
    parser.add_argument(
        "--device-digits",
        type=int,
        default=TrainSettings.device_digits,
        help="training digits also written on generated paper, photographed and cut the way the device cuts "
        "them, so a camera's soft strokes never tell a digit from 'none' (default %(default)s)",
    )
    parser.add_argument(
        "--widths",
        default=",".join(map(str, TrainSettings.stage_widths)),
        help="conv stage widths (default %(default)s)",
    )
    parser.add_argument("--label-smoothing", type=float, default=TrainSettings.label_smoothing)
    args = parser.parse_args(argv)
    try:
        args.widths = tuple(int(w) for w in args.widths.split(","))
    except ValueError:
        parser.error(f"--widths {args.widths}: must be three comma-separated integers, e.g. 16,32,64")
    if len(args.widths) != 3 or min(args.widths) < 1:
        parser.error(f"--widths {args.widths}: must be three positive integers, e.g. 16,32,64")
    if not 0 <= args.validation_fraction < 0.5:
        parser.error(f"--validation-fraction must be in [0, 0.5), got {args.validation_fraction}")
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    return args


def run(args: argparse.Namespace) -> dict:
    """host-train's work, separated from argument parsing so tests can call it."""
    out = Path(args.out) if args.out else RUNS / time.strftime("%Y%m%d-%H%M%S") / "digits.keras"
    if out.suffix != ".keras":
        raise DigitReaderError(f"--out {out}: the model file must end in .keras")
    settings = TrainSettings(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate
        or (TrainSettings.learning_rate / 10 if args.finetune else TrainSettings.learning_rate),
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        augment=not args.no_augment,
        extra_weight=args.extra_weight,
        finetune_from=args.finetune,
        stage_widths=args.widths,
        classes=10 if args.digits_only else 11,
        negatives=0 if args.digits_only else args.negatives,
        # A quick run on --limit digits gets device digits in proportion (a third as many), not 20,000.
        device_digits=min(args.device_digits, args.limit // 3) if args.limit else args.device_digits,
        label_smoothing=args.label_smoothing,
    )
    train_full, test = load_mnist(args.data_dir)
    if args.limit:
        train_full = Dataset(train_full.images[: args.limit], train_full.labels[: args.limit])
    train_data, val_data = split_validation(train_full, settings.validation_fraction, settings.seed)
    extra = None
    if args.extra_data:
        custom_train, custom_val = split_validation(load_folder(args.extra_data), 0.2, settings.seed)
        extra = custom_train
        # The custom hold-out joins validation, so early stopping also watches the user's own digits.
        val_data = Dataset(
            np.concatenate([val_data.images, custom_val.images]),
            np.concatenate([val_data.labels, custom_val.labels]),
        )
        log.info(
            "custom data: %d for training (weight %.1f), %d held out",
            len(custom_train),
            settings.extra_weight,
            len(custom_val),
        )

    mnist_train = train_data  # pieces and pairs of digits are cut from these
    if settings.device_digits:
        from host.negatives import device_digits

        # From the training split only; the validation split gets its share from its own digits.
        share = settings.validation_fraction
        extra_train = device_digits(
            settings.device_digits, settings.negatives_seed + 1, train_data.images, train_data.labels
        )
        train_data = Dataset(
            np.concatenate([train_data.images, extra_train[0]]),
            np.concatenate([train_data.labels, extra_train[1]]),
        )
        if len(val_data) and share:
            extra_val = device_digits(
                int(settings.device_digits * share),
                settings.negatives_seed + 2,
                val_data.images,
                val_data.labels,
            )
            val_data = Dataset(
                np.concatenate([val_data.images, extra_val[0]]),
                np.concatenate([val_data.labels, extra_val[1]]),
            )
        log.info("device digits: %d training digits seen through the device's camera", settings.device_digits)

    if settings.negatives:
        from host.negatives import generate

        # Pairs and pieces are cut from the training digits only, never from validation or test digits.
        negatives = generate(
            settings.negatives, settings.negatives_seed, mnist_train.images, looks_like_a_digit=digit_screen()
        )
        neg_train, neg_val = split_validation(
            Dataset(negatives.images, np.full(len(negatives), NONE_CLASS, np.uint8)),
            settings.validation_fraction,
            settings.seed,
        )
        train_data = Dataset(
            np.concatenate([train_data.images, neg_train.images]),
            np.concatenate([train_data.labels, neg_train.labels]),
        )
        val_data = Dataset(
            np.concatenate([val_data.images, neg_val.images]),
            np.concatenate([val_data.labels, neg_val.labels]),
        )
        log.info("negatives: %d generated (seed %d)", len(negatives), settings.negatives_seed)
        grid_path = out.with_suffix(".negatives.png")
        save_atomically(grid_path, lambda p: write_grid(p, negatives))

    from host.model import count_macs

    model, history = train(train_data, val_data, settings, extra)
    params, macs = model.count_params(), count_macs(model)
    predictions = model.predict(test.images[..., None] / 255.0, batch_size=1000, verbose=0).argmax(axis=1)
    test_acc = float(np.mean(predictions == test.labels))
    log.info(
        "model: %d parameters, %.2f M MACs per digit; MNIST test accuracy %.4f", params, macs / 1e6, test_acc
    )

    command = " ".join(["host-train", *sys.argv[1:]]) if sys.argv and "host-train" in sys.argv[0] else None
    record = {
        "settings": dataclasses.asdict(settings),
        "command": command,
        # Where the MNIST files came from, so host-export evaluates on the same data without being told.
        "data_dir": str(Path(data_dir).resolve())
        if (data_dir := args.data_dir or os.environ.get("MNIST_DIR"))
        else None,
        "train_size": len(train_data) + (len(extra) if extra is not None else 0),
        "validation_size": len(val_data),
        "params": params,
        "macs": macs,
        "test_accuracy": float(test_acc),
        "history": history,
    }
    save_atomically(out, model.save)
    save_atomically(history_path(out), lambda p: p.write_text(json.dumps(record, indent=2)))
    save_atomically(out.with_suffix(".curves.png"), lambda p: plot_history(history, p))
    log.info("wrote %s, %s and %s", out, history_path(out), out.with_suffix(".curves.png"))
    return record


def main(argv=None) -> int:
    """Console entry point."""
    args = parse_args(argv)
    return run_command("host-train", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
