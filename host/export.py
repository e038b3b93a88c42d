"""host-export: convert the float Keras model to TFLite (full-integer int8, float16 or float32), evaluate the
exported file with the LiteRT interpreter the Pi uses, and write its model card beside it.

The int8 export is refused (exit 3, nothing written) when it loses more than ``--max-drop`` points of
accuracy against the float model.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shlex
import sys
from pathlib import Path

import numpy as np

from device.classify import (
    DEFAULT_MODEL,
    DIGIT_LABELS,
    LABELS_WITH_NONE,
    Classifier,
    card_path_for,
    sha256_of,
)
from device.errors import DigitReaderError, ModelError
from device.safeio import save_atomically
from host.cli import run_command, stdout_chatter_hidden, summary
from host.data import load_mnist
from host.negatives import KINDS as NEGATIVE_KINDS
from host.train import NEGATIVES_EVAL_SEED, NONE_CLASS, RUNS, history_path

log = logging.getLogger(__name__)

KINDS = ("int8", "uint8", "float16", "float32")


def representative_images(images: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A fixed random sample of training images (float, (N, 28, 28, 1)) for calibrating int8 ranges."""
    pick = np.random.default_rng(seed).choice(len(images), size=min(count, len(images)), replace=False)
    return images[pick, ..., None].astype(np.float32) / 255.0


def export_tflite(model, kind: str, calibration: np.ndarray | None = None) -> bytes:
    """Convert a Keras model to TFLite bytes: ``int8`` (int8 in and out), ``float16`` or ``float32``."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if kind in ("int8", "uint8"):
        if calibration is None:
            raise ValueError("int8 export needs calibration images")

        def representative_dataset():
            for image in calibration:
                yield [image[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # uint8 I/O: the older Edge TPU / microcontroller convention; the device handles both.
        io_type = tf.int8 if kind == "int8" else tf.uint8
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    elif kind == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif kind != "float32":
        raise ValueError(f"unknown export kind {kind!r}, expected one of {KINDS}")
    with stdout_chatter_hidden():
        return converter.convert()


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy of predicted digits against labels."""
    return float(np.mean(predictions == labels))


def keras_predictions(model, images: np.ndarray) -> np.ndarray:
    """Predicted digits of the float Keras model for uint8 images (N, 28, 28)."""
    probs = model.predict(images[..., None].astype(np.float32) / 255.0, batch_size=1000, verbose=0)
    return probs.argmax(axis=1)


def tflite_predictions(path: Path, images: np.ndarray) -> np.ndarray:
    """Predicted classes of a .tflite file, run by the device's Classifier (LiteRT)."""
    with Classifier(path, verify=False) as classifier:
        return classifier.probabilities(images).argmax(axis=1)


def rejection_report(predictions: np.ndarray, kinds: np.ndarray, mnist_predictions: np.ndarray) -> dict:
    """How a digit-or-not model treats held-apart negatives (share called "none", per kind) and real
    digits (share of MNIST test called "none")."""
    from host.negatives import KINDS

    per_kind = {
        name: round(float(np.mean(predictions[kinds == k] == NONE_CLASS)), 4)
        for k, name in enumerate(KINDS)
        if np.any(kinds == k)
    }
    return {
        "negatives_rejected": per_kind,
        "negatives_rejected_all": round(float(np.mean(predictions == NONE_CLASS)), 4),
        "negatives_count": len(predictions),
        "mnist_rejected": round(float(np.mean(mnist_predictions == NONE_CLASS)), 5),
    }


def tensor_record(detail: dict) -> dict:
    scale, zero_point = detail["quantization"]
    return {
        "shape": [int(v) for v in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def build_card(
    tflite_path: Path,
    content: bytes,
    kind: str,
    keras_path: Path,
    float_acc: float,
    tflite_acc: float,
    test_size: int,
    command: str,
    rejection: dict | None = None,
) -> dict:
    """The model card: everything a user or the device needs to know about one exported file."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    train_record = {}
    if history_path(keras_path).exists():
        train_record = json.loads(history_path(keras_path).read_text())
    return {
        "name": tflite_path.stem,
        "file": tflite_path.name,
        "kind": kind,
        "sha256": sha256_of(content),
        "size_bytes": len(content),
        "input": tensor_record(interpreter.get_input_details()[0]),
        "output": tensor_record(interpreter.get_output_details()[0]),
        "input_format": "28x28 grey, white digit on black, MNIST-style (device.normalize.normalize_digit), "
        "real value = pixel / 255",
        "labels": list(LABELS_WITH_NONE if rejection is not None else DIGIT_LABELS),
        "classes": "digits 0-9 and none (not a single digit)" if rejection is not None else "digits 0-9",
        "float_accuracy": round(float_acc, 5),
        "tflite_accuracy": round(tflite_acc, 5),
        "accuracy_dataset": f"MNIST test ({test_size} digits; a digit called none counts as wrong)",
        **(rejection or {}),
        "negatives_recipe": (
            {
                "generator": "host.negatives.generate (drawn, photographed, cut with device ink_map, "
                "normalized with device normalize_digit)",
                "kinds": list(NEGATIVE_KINDS),
                # Generated with the others (so those are the same crops) but not trained on.
                "left_out_of_training": list((train_record.get("settings") or {}).get("leave_out") or ()),
                "training_seed": (train_record.get("settings") or {}).get("negatives_seed"),
                "training_count": (train_record.get("settings") or {}).get("negatives"),
                "evaluation_seed": NEGATIVES_EVAL_SEED,
            }
            if rejection is not None
            else None
        ),
        "params": train_record.get("params"),
        "macs": train_record.get("macs"),
        "tensorflow_version": tf.__version__,
        "training_settings": train_record.get("settings"),
        "training_command": train_record.get("command"),
        "training_seconds": train_record.get("history", {}).get("seconds"),
        "export_command": command,
        "source_model": keras_path.name,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="host-export",
        description=summary(__doc__),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument(
        "--int8", dest="kind", action="store_const", const="int8", help="full-integer int8 (default)"
    )
    kind.add_argument("--uint8", dest="kind", action="store_const", const="uint8", help="integer, uint8 I/O")
    kind.add_argument("--float16", dest="kind", action="store_const", const="float16", help="float16 weights")
    kind.add_argument("--float32", dest="kind", action="store_const", const="float32", help="plain float32")
    parser.add_argument(
        "--model",
        help="the float Keras model (default: the newest runs/*/digits.keras, else models/digits.keras)",
    )
    parser.add_argument(
        "--ship",
        action="store_true",
        help="also replace the shipped model: the exported file and its card in device/models/ (package "
        "data), the float model and its record in models/",
    )
    parser.add_argument("--out", help="output .tflite (default: models/digits_<kind>.tflite beside --model)")
    parser.add_argument("--data-dir", help="MNIST IDX folder (default: $MNIST_DIR, else download)")
    parser.add_argument(
        "--max-drop",
        type=float,
        default=0.3,
        help="refuse when int8 accuracy is more than this many points below float (default 0.3)",
    )
    parser.add_argument("--calibration-size", type=int, default=500, help="representative images for int8")
    parser.add_argument("--limit-test", type=int, help="evaluate on only the first N test digits")
    parser.add_argument(
        "--negatives",
        type=int,
        default=3000,
        help="held-apart generated negatives to measure rejection on (digit-or-not models)",
    )
    args = parser.parse_args(argv)
    args.kind = args.kind or "int8"
    return args


def run(args: argparse.Namespace) -> dict:
    """host-export's work: convert, evaluate, refuse or write model + card atomically. Returns the card."""
    import keras

    keras_path = Path(args.model) if args.model else newest_run(RUNS) or ARTEFACTS / "digits.keras"
    log.info("exporting %s", keras_path)
    out = Path(args.out) if args.out else keras_path.with_name(f"{keras_path.stem}_{args.kind}.tflite")
    if out.suffix != ".tflite":
        raise DigitReaderError(f"--out {out}: the exported file must end in .tflite")
    if not keras_path.is_file():
        raise ModelError(f"model {keras_path}: not found (train one with host-train)")
    try:
        model = keras.models.load_model(keras_path)
    except Exception as exc:  # Keras raises many types for a bad file; all mean the same to the user
        raise ModelError(f"model {keras_path}: cannot load ({type(exc).__name__})") from None
    train, test = load_mnist(args.data_dir or training_data_dir(keras_path))
    if args.limit_test:
        test = type(test)(test.images[: args.limit_test], test.labels[: args.limit_test])

    classes = int(model.output_shape[-1])
    negatives = None
    if classes == len(LABELS_WITH_NONE):
        from host.negatives import generate

        negatives = generate(args.negatives, NEGATIVES_EVAL_SEED, train.images)
    integer = args.kind in ("int8", "uint8")
    calibration = None
    if integer:
        calibration = representative_images(train.images, args.calibration_size, seed=0)
        if negatives is not None:  # the int8 ranges must cover what "not a digit" looks like too
            extra = representative_images(negatives.images, args.calibration_size // 4, seed=0)
            calibration = np.concatenate([calibration, extra])
    content = export_tflite(model, args.kind, calibration)
    float_acc = accuracy(keras_predictions(model, test.images), test.labels)

    tmp = out.with_name(f".{out.stem}.tmp.tflite")
    out.parent.mkdir(parents=True, exist_ok=True)
    rejection = None
    try:
        tmp.write_bytes(content)
        mnist_predictions = tflite_predictions(tmp, test.images)
        tflite_acc = accuracy(mnist_predictions, test.labels)
        if negatives is not None:
            rejection = rejection_report(
                tflite_predictions(tmp, negatives.images), negatives.kinds, mnist_predictions
            )
            log.info("rejection (held-apart negatives, seed %d): %s", NEGATIVES_EVAL_SEED, rejection)
    finally:
        tmp.unlink(missing_ok=True)
    drop = (float_acc - tflite_acc) * 100
    log.info(
        "%s: float %.4f, %s TFLite %.4f (drop %.2f points), %d bytes",
        out.name,
        float_acc,
        args.kind,
        tflite_acc,
        drop,
        len(content),
    )
    if drop > args.max_drop:
        raise ModelError(
            f"{args.kind} export loses {drop:.2f} accuracy points "
            f"(float {float_acc:.4f} -> {tflite_acc:.4f}), "
            f"more than --max-drop {args.max_drop}; nothing written"
        )
    command = shlex.join(["host-export", *(argv_tail() or [f"--{args.kind}"])])
    card = build_card(
        out, content, args.kind, keras_path, float_acc, tflite_acc, len(test), command, rejection
    )
    save_atomically(out, lambda p: p.write_bytes(content))
    save_atomically(card_path_for(out), lambda p: p.write_text(json.dumps(card, indent=2) + "\n"))
    log.info("wrote %s and %s", out, card_path_for(out))
    if args.ship:
        ship(out, keras_path, DEFAULT_MODEL.parent, ARTEFACTS)
    return card


# The shipped pair (model and card) is package data of the device package, so a wheel carries it; the float
# model and its training record stay with the other training artefacts in models/.
ARTEFACTS = Path(__file__).resolve().parent.parent / "models"


def newest_run(runs: Path) -> Path | None:
    """The newest ``runs/<time>/digits.keras`` (by modification time), or None when there is none."""
    found = sorted(runs.glob("*/digits.keras"), key=lambda path: path.stat().st_mtime)
    return found[-1] if found else None


def ship(tflite: Path, keras_path: Path, package_models: Path, artefacts: Path) -> None:
    """Copy an exported model and its card into ``package_models`` (device/models/, what device-run loads
    and the wheel carries) and its float model with its training record into ``artefacts`` (models/), each
    file written beside and renamed into place; log the replaced card's accuracy beside the new one."""
    import shutil

    new_card = json.loads(card_path_for(tflite).read_text())
    old_card_path = card_path_for(package_models / tflite.name)
    old = json.loads(old_card_path.read_text()) if old_card_path.is_file() else {}
    pairs = [(tflite, package_models / tflite.name), (card_path_for(tflite), old_card_path)]
    for extra in (keras_path, history_path(keras_path), keras_path.with_suffix(".curves.png")):
        if extra.is_file():
            pairs.append((extra, artefacts / f"digits{''.join(extra.suffixes)}"))
    for source, target in pairs:
        if source.resolve() != target.resolve():
            save_atomically(target, lambda p, source=source: shutil.copyfile(source, p))
    log.info(
        "shipped %s to %s: TFLite accuracy %.4f (the model it replaced: %s)",
        tflite.name,
        package_models,
        new_card.get("tflite_accuracy", float("nan")),
        f"{old['tflite_accuracy']:.4f}" if "tflite_accuracy" in old else "none",
    )


def training_data_dir(keras_path: Path) -> str | None:
    """The MNIST folder the model was trained on, from its training record (None: not recorded)."""
    try:
        record = json.loads(history_path(keras_path).read_text())
    except (OSError, ValueError):
        return None
    folder = record.get("data_dir") if isinstance(record, dict) else None
    if folder and Path(folder).is_dir():
        log.info("MNIST from %s (where %s was trained)", folder, keras_path.name)
        return folder
    return None


def argv_tail() -> list[str]:
    return sys.argv[1:] if sys.argv and sys.argv[0].endswith("host-export") else []


def main(argv=None) -> int:
    """Console entry point."""
    args = parse_args(argv)
    return run_command("host-export", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
