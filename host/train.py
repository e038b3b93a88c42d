"""host-train: train the compact CNN on MNIST (plus optional custom digits) with camera-matched augmentation.

Writes the float model (``runs/<time>/digits.keras``), its training history and settings as JSON
(``digits.history.json`` beside it, read by host-export for the model card) and a training-curves PNG.
``--arch mlp`` trains the fully-connected baseline instead; ``--config BEST.json`` takes the architecture
and optimizer settings a host-tune search found (flags given on the command line still win).
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
    arch: str = "cnn"  # "cnn", or "mlp": the fully-connected baseline (host.model.build_mlp)
    stage_widths: tuple[int, ...] = (16, 32, 64)
    convs_per_stage: tuple[int, ...] = (2, 2, 1)
    kernel_sizes: tuple[int, ...] = (3, 3, 3)
    dropout: float = 0.2
    hidden_units: int = 128  # mlp only
    classes: int = 11  # 10: digits only (model v1); 11: digits and "none"
    negatives: int = 24000  # generated "not a digit" crops (host.negatives), 11-class models only
    negatives_seed: int = 1  # the held-apart evaluation set uses NEGATIVES_EVAL_SEED, never this one
    device_digits: int = (
        20000  # training digits also shown through the device's camera and cut (host.negatives)
    )
    label_smoothing: float = 0.1
    none_head: bool = False  # "none" from a head of its own (host.model.build_model)
    leave_out: tuple[str, ...] = ()  # kinds of negative (host.negatives.KINDS) generated but not trained on
    none_weight: float = 1.0  # the loss weight of a generated negative against a digit's 1
    ema: float = 0.0  # momentum of a moving average of the weights that replaces them at the end (0: none)
    notes: dict = field(default_factory=dict)


RUNS = Path("runs")  # each training run writes to a folder of its own under here, unless --out says otherwise
NONE_CLASS = NONE_LABEL_INDEX  # label index of "none" in an 11-class model
NEGATIVES_EVAL_SEED = 99  # the held-apart negatives: a seed never used for training


def model_spec(settings: TrainSettings, classes: int | None = None):
    """The host.model.ModelSpec these settings train."""
    from host.model import ModelSpec

    return ModelSpec(
        settings.stage_widths,
        settings.convs_per_stage,
        dropout=settings.dropout,
        classes=classes or settings.classes,
        kernel_sizes=settings.kernel_sizes,
        arch=settings.arch,
        hidden_units=settings.hidden_units,
        none_head=settings.none_head,
    )


def compile_model(model, settings: TrainSettings, steps: int) -> None:
    """AdamW with weight decay on a cosine schedule over ``steps`` batches (with warm-up), label-smoothed
    cross-entropy on one-hot labels; host-tune compiles its trials the same way."""
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, warmup_target=settings.learning_rate, warmup_steps=min(500, steps // 10)
    )
    # Keras keeps the average beside the weights and writes it over them when fit() ends.
    averaged = {"use_ema": True, "ema_momentum": settings.ema} if settings.ema else {}
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=settings.weight_decay, **averaged),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=settings.label_smoothing),
        metrics=["accuracy"],
        weighted_metrics=[],
    )


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
    from host.model import build_model

    set_seeds(settings.seed)
    classes = settings.classes
    weights = None
    if settings.none_weight != 1.0:
        weights = np.where(train_data.labels == NONE_CLASS, settings.none_weight, 1.0).astype(np.float32)
    if extra is not None and len(extra):
        weights = np.concatenate(
            [
                np.ones(len(train_data), np.float32) if weights is None else weights,
                np.full(len(extra), settings.extra_weight, np.float32),
            ]
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
        model = build_model(model_spec(settings, classes))
    compile_model(model, settings, int(np.ceil(len(train_data) / settings.batch_size)) * settings.epochs)
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


# The keys a --config file may set: host-train's own flags for the model and its optimizer, so a file that
# host-tune wrote (or a person wrote by hand) retrains exactly that configuration.
CONFIG_KEYS = {
    "arch": str,
    "widths": "ints",
    "convs": "ints",
    "kernels": "ints",
    "dropout": float,
    "hidden_units": int,
    "learning_rate": float,
    "label_smoothing": float,
    "epochs": int,
    "batch_size": int,
}


def config_arguments(path: str) -> list[str]:
    """The ``"train"`` section of a --config JSON file as command-line arguments (given before the real
    ones, so a flag on the command line wins); DigitReaderError naming the file, key and rule when bad."""
    try:
        document = json.loads(Path(path).read_text())
    except OSError as exc:
        raise DigitReaderError(f"--config {path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise DigitReaderError(f"--config {path}: not JSON ({exc})") from None
    section = document.get("train") if isinstance(document, dict) else None
    if not isinstance(section, dict):
        raise DigitReaderError(
            f'--config {path}: must be a JSON object with a "train" object of host-train settings '
            '(e.g. {"train": {"widths": "16,32,64", "learning_rate": 0.003}})'
        )
    arguments = []
    for key, value in section.items():
        kind = CONFIG_KEYS.get(key.replace("-", "_"))
        if kind is None:
            raise DigitReaderError(
                f'--config {path}: unknown key {key!r} in "train" (allowed: {", ".join(CONFIG_KEYS)})'
            )
        if kind == "ints":
            if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                value = ",".join(map(str, value))
            if not isinstance(value, str):
                raise DigitReaderError(
                    f'--config {path}: {key} must be a list of integers or a string like "16,32,64"'
                )
        elif kind is str:
            if not isinstance(value, str):
                raise DigitReaderError(f"--config {path}: {key} must be a string, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value != kind(value):
            raise DigitReaderError(f"--config {path}: {key} must be {kind.__name__}, got {value!r}")
        arguments += [f"--{key.replace('_', '-')}", str(int(value) if kind is int else value)]
    return arguments


def int_list(text: str, flag: str, parser: argparse.ArgumentParser) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        parser.error(f"{flag} {text}: must be comma-separated integers, e.g. 16,32,64")
        raise  # not reached: parser.error exits


def parse_args(argv=None) -> argparse.Namespace:
    from host.model import ARCHS
    from host.negatives import KINDS as NEGATIVE_KINDS

    parser = argparse.ArgumentParser(
        prog="host-train",
        description=summary(__doc__),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--config",
        metavar="JSON",
        help="architecture and optimizer settings from a file, e.g. the best.json host-tune writes (its "
        '"train" object: keys are this command\'s flags); flags given here override it',
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
        "--arch",
        choices=ARCHS,
        default=TrainSettings.arch,
        help="cnn: the compact CNN (model v2); mlp: the fully-connected baseline (Flatten, Dense "
        "--hidden-units, Dense 10 or 11), to compare with",
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
        help="conv stage widths, 1 to 4 stages (default %(default)s)",
    )
    parser.add_argument(
        "--convs", help="conv layers per stage (default: 2 per stage, 1 in the last: 2,2,1 for 3 stages)"
    )
    parser.add_argument("--kernels", help="kernel size per stage, odd (default: 3 in every stage)")
    parser.add_argument(
        "--dropout",
        type=float,
        help=f"before the classifier (default {TrainSettings.dropout} for the cnn; 0 for the mlp, which the "
        "tutorial trains without)",
    )
    parser.add_argument("--hidden-units", type=int, default=TrainSettings.hidden_units, help="mlp only")
    parser.add_argument("--label-smoothing", type=float, default=TrainSettings.label_smoothing)
    parser.add_argument(
        "--none-head",
        action="store_true",
        help="'none' from a head of its own beside a softmax over the ten digits, not as an eleventh class",
    )
    parser.add_argument(
        "--leave-out",
        default="",
        metavar="KINDS",
        help="kinds of generated negative not to train on, comma-separated (of: "
        + ", ".join(NEGATIVE_KINDS)
        + "); the others stay the same crops",
    )
    parser.add_argument(
        "--none-weight",
        type=float,
        default=TrainSettings.none_weight,
        help="how much one generated negative counts against one digit in the loss (default %(default)s)",
    )
    parser.add_argument(
        "--ema",
        type=float,
        default=TrainSettings.ema,
        metavar="MOMENTUM",
        help="keep a moving average of the weights with this momentum (e.g. 0.999) and end with it instead "
        "of the last weights (default %(default)s: none)",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    config = parser.parse_known_args(argv)[0].config
    from_config = []
    if config:
        try:
            from_config = config_arguments(config)
        except DigitReaderError as exc:
            parser.error(str(exc))
    args = parser.parse_args(from_config + argv)
    given = {a.split("=")[0] for a in argv if a.startswith("--")}

    def bad(flag: str, value, rule: str):
        where = f" (from --config {config})" if flag in from_config and flag not in given else ""
        parser.error(f"{flag} {value}{where}: {rule}")

    args.widths = int_list(args.widths, "--widths", parser)
    stages = len(args.widths)
    args.convs = int_list(args.convs, "--convs", parser) if args.convs else (2,) * (stages - 1) + (1,)
    args.kernels = int_list(args.kernels, "--kernels", parser) if args.kernels else (3,) * stages
    if not 1 <= stages <= 4 or min(args.widths) < 1:
        bad("--widths", args.widths, "must be 1 to 4 positive integers, e.g. 16,32,64")
    if len(args.convs) != stages or min(args.convs) < 1:
        bad("--convs", args.convs, f"must be {stages} positive integers, one per stage of --widths")
    if len(args.kernels) != stages or any(k < 1 or k % 2 == 0 for k in args.kernels):
        bad("--kernels", args.kernels, f"must be {stages} odd positive integers, one per stage of --widths")
    if args.dropout is None:
        args.dropout = 0.0 if args.arch == "mlp" else TrainSettings.dropout
    if not 0 <= args.dropout < 1:
        bad("--dropout", args.dropout, "must be in [0, 1)")
    if not 0 <= args.label_smoothing < 1:
        bad("--label-smoothing", args.label_smoothing, "must be in [0, 1)")
    if args.none_head and (args.digits_only or args.arch != "cnn"):
        parser.error("--none-head: needs the cnn with its none class (not --digits-only or --arch mlp)")
    args.leave_out = tuple(kind for kind in args.leave_out.split(",") if kind)
    if unknown := [kind for kind in args.leave_out if kind not in NEGATIVE_KINDS]:
        bad("--leave-out", ",".join(unknown), f"must name kinds of negative, of: {', '.join(NEGATIVE_KINDS)}")
    if args.none_weight <= 0:
        bad("--none-weight", args.none_weight, "must be positive")
    if not 0 <= args.ema < 1:
        bad("--ema", args.ema, "must be in [0, 1) (0: no average)")
    if args.learning_rate is not None and args.learning_rate <= 0:
        bad("--learning-rate", args.learning_rate, "must be positive")
    if args.hidden_units < 1:
        bad("--hidden-units", args.hidden_units, "must be at least 1")
    if not 0 <= args.validation_fraction < 0.5:
        bad("--validation-fraction", args.validation_fraction, "must be in [0, 0.5)")
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            bad(f"--{name.replace('_', '-')}", getattr(args, name), "must be at least 1")
    return args


def device_digits_for(requested: int, limit: int | None) -> int:
    """A quick run on ``--limit`` digits gets device digits in proportion (a third as many), not 20,000."""
    return min(requested, limit // 3) if limit else requested


def load_training_data(
    data_dir: str | None,
    limit: int | None,
    validation_fraction: float,
    seed: int,
    negatives: int,
    negatives_seed: int,
    extra_data: str | None = None,
    device_digits: int = 0,
    leave_out: tuple[str, ...] = (),
):
    """MNIST training digits (the first ``limit``), split into training and validation with ``seed``, each
    with its share of ``device_digits`` (its own digits seen through the device's camera and crop path) and
    of ``negatives`` generated "not a digit" crops (label NONE_CLASS); custom digits from ``extra_data``
    split 80/20 the same way; the negatives of the kinds in ``leave_out`` are generated (so the others are the
    same crops) but not kept. Returns (train, validation, extra or None, test, the generated NegativeSet or
    None); host-tune prepares its data with this too."""
    train_full, test = load_mnist(data_dir)
    if limit:
        train_full = Dataset(train_full.images[:limit], train_full.labels[:limit])
    train_data, val_data = split_validation(train_full, validation_fraction, seed)
    extra = None
    if extra_data:
        custom_train, custom_val = split_validation(load_folder(extra_data), 0.2, seed)
        extra = custom_train
        # The custom hold-out joins validation, so early stopping also watches the user's own digits.
        val_data = Dataset(
            np.concatenate([val_data.images, custom_val.images]),
            np.concatenate([val_data.labels, custom_val.labels]),
        )
        log.info("custom data: %d for training, %d held out", len(custom_train), len(custom_val))

    mnist_train = train_data  # pieces and pairs of digits are cut from these
    if device_digits:
        from host.negatives import device_digits as through_the_camera

        # From the training split only; the validation split gets its share from its own digits.
        extra_train = through_the_camera(
            device_digits, negatives_seed + 1, train_data.images, train_data.labels
        )
        train_data = Dataset(
            np.concatenate([train_data.images, extra_train[0]]),
            np.concatenate([train_data.labels, extra_train[1]]),
        )
        if len(val_data) and validation_fraction:
            extra_val = through_the_camera(
                int(device_digits * validation_fraction), negatives_seed + 2, val_data.images, val_data.labels
            )
            val_data = Dataset(
                np.concatenate([val_data.images, extra_val[0]]),
                np.concatenate([val_data.labels, extra_val[1]]),
            )
        log.info("device digits: %d training digits seen through the device's camera", device_digits)

    generated = None
    if negatives:
        from host.negatives import generate

        # Pairs and pieces are cut from the training digits only, never from validation or test digits.
        generated = generate(negatives, negatives_seed, mnist_train.images, looks_like_a_digit=digit_screen())
        generated = generated.without(leave_out)
        labels = np.full(len(generated), NONE_CLASS, np.uint8)
        neg_train, neg_val = split_validation(Dataset(generated.images, labels), validation_fraction, seed)
        train_data = Dataset(
            np.concatenate([train_data.images, neg_train.images]),
            np.concatenate([train_data.labels, neg_train.labels]),
        )
        val_data = Dataset(
            np.concatenate([val_data.images, neg_val.images]),
            np.concatenate([val_data.labels, neg_val.labels]),
        )
        log.info(
            "negatives: %d generated (seed %d)%s",
            len(generated),
            negatives_seed,
            f", those of kind {', '.join(leave_out)} left out" if leave_out else "",
        )
    return train_data, val_data, extra, test, generated


def run(args: argparse.Namespace) -> dict:
    """host-train's work, separated from argument parsing so tests can call it."""
    out = Path(args.out) if args.out else RUNS / time.strftime("%Y%m%d-%H%M%S") / "digits.keras"
    if out.suffix != ".keras":
        raise DigitReaderError(f"--out {out}: the model file must end in .keras")
    mlp = args.arch == "mlp"
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
        arch=args.arch,
        # The MLP has no stages: an empty record says so instead of listing widths it never used.
        stage_widths=() if mlp else args.widths,
        convs_per_stage=() if mlp else args.convs,
        kernel_sizes=() if mlp else args.kernels,
        dropout=args.dropout,
        hidden_units=args.hidden_units,
        classes=10 if args.digits_only else 11,
        negatives=0 if args.digits_only else args.negatives,
        device_digits=device_digits_for(args.device_digits, args.limit),
        label_smoothing=args.label_smoothing,
        none_head=args.none_head,
        leave_out=args.leave_out,
        none_weight=args.none_weight,
        ema=args.ema,
        notes={"config": str(args.config)} if args.config else {},
    )
    train_data, val_data, extra, test, negatives = load_training_data(
        args.data_dir,
        args.limit,
        settings.validation_fraction,
        settings.seed,
        settings.negatives,
        settings.negatives_seed,
        args.extra_data,
        device_digits=settings.device_digits,
        leave_out=settings.leave_out,
    )
    if negatives is not None:
        grid_path = out.with_suffix(".negatives.png")
        save_atomically(grid_path, lambda p: write_grid(p, negatives))

    from host.model import count_macs

    model, history = train(train_data, val_data, settings, extra)
    params, macs = model.count_params(), count_macs(model)
    predictions = model.predict(test.images[..., None] / 255.0, batch_size=1000, verbose=0).argmax(axis=1)
    test_acc = float(np.mean(predictions == test.labels))
    log.info(
        "model (%s): %d parameters, %.2f M MACs per digit; MNIST test accuracy %.4f",
        settings.arch,
        params,
        macs / 1e6,
        test_acc,
    )

    ours = sys.argv and Path(sys.argv[0]).name in ("host-train", "train.py")  # or python -m host.train
    command = " ".join(["host-train", *sys.argv[1:]]) if ours else None
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
