"""Model benchmark: microseconds per digit for the ways a digit can be classified, on one thread.

Usage: python -m tools.bench_model [--keras models/digits.keras] [--tflite device/models/digits_int8.tflite]
                                     [--data-dir MNIST_DIR] [--write docs/benchmarks.md]
The same 1,000 MNIST test digits for every row (Keras rows that take tens of ms per digit use the first 200).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from device.classify import DEFAULT_MODEL, Classifier
from device.config import load_config
from host.report import machine, write_section

ROOT = Path(__file__).resolve().parent.parent

CAMERA_SEED = 77  # the camera-cut test digits: a seed of their own


def per_digit_us(run, count: int, repeats: int = 3) -> float:
    """Best of ``repeats`` timings of ``run()`` (which classifies ``count`` digits), in µs per digit."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / count * 1e6


# Assumed int8 throughput of one core with XNNPACK, in multiply-accumulates per µs: about 5 GMAC/s for a
# Pi 4's Cortex-A72 at 1.5 GHz (128-bit NEON, no dot-product instructions) and 15 GMAC/s for a Pi 5's
# Cortex-A76 at 2.4 GHz (with them). An assumption for a projection, not a measurement: no Pi here.
PI_MACS_PER_US = {"Raspberry Pi 4": 5000, "Raspberry Pi 5": 15000}


def card_macs(model: Path) -> int | None:
    import json

    try:
        return json.loads(model.with_suffix(".json").read_text()).get("macs")
    except (OSError, ValueError):
        return None


def camera_reading(classifier: Classifier, camera_digits) -> tuple[float, float]:
    """Share of camera-cut test digits read right, and share rejected as "not a digit"."""
    images, labels = camera_digits
    predictions = classifier.classify(images)
    right = np.mean([p.is_digit and p.digit == label for p, label in zip(predictions, labels, strict=True)])
    return float(right), float(np.mean([not p.is_digit for p in predictions]))


def as_the_device_decides(classifier: Classifier, images, labels, none_threshold: float) -> dict[str, float]:
    """How many of the digits are read right and how many dropped, as the pipeline decides (a candidate is
    dropped when "not a digit" reaches ``none_threshold``; otherwise its likeliest digit is read), and by
    the top class alone (the model card's measure: "none" on top counts as dropped)."""
    probabilities = classifier.probabilities(images)
    top = probabilities.argmax(axis=1)
    digit = probabilities[:, :10].argmax(axis=1)
    none = probabilities[:, 10] if probabilities.shape[1] > 10 else np.zeros(len(images))
    dropped = none >= none_threshold
    return {
        "right": float(np.mean((digit == labels) & ~dropped)),
        "dropped": float(np.mean(dropped)),
        "top_right": float(np.mean(top == labels)),
        "top_dropped": float(np.mean(top == 10)),
    }


def versus(baseline: Path, model: Path, digits, batches, camera_digits) -> list[str]:
    """Two int8 models timed pair by pair in the same run (µs per digit, batch 1 and 8, one thread), what
    their MACs project for a Pi, and how they read MNIST test digits written on paper and cut by the
    device's crop path (``camera_digits``)."""
    if not baseline.is_file():
        return [f"(no {baseline.name}: the side-by-side table is left out)"]
    old, new = Classifier(baseline, threads=1), Classifier(model, threads=1)
    rows = ["| model | KB | MACs per digit | µs batch 1 | µs batch 8 | camera-cut digits read | rejected |"]
    rows.append("|---|---:|---:|---:|---:|---:|---:|")
    timings = {}
    for name, classifier, path in (("v1 " + baseline.name, old, baseline), ("v2 " + model.name, new, model)):
        one = per_digit_us(batches(classifier, 1), len(digits))
        eight = per_digit_us(batches(classifier, 8), len(digits))
        timings[name] = (one, eight, card_macs(path))
        macs = timings[name][2]
        right, rejected = camera_reading(classifier, camera_digits)
        rows.append(
            f"| {name} | {path.stat().st_size / 1024:.1f} | {macs or 0:,} | {one:.1f} | {eight:.1f} "
            f"| {100 * right:.1f} % | {100 * rejected:.1f} % |"
        )
    (v1_one, v1_eight, v1_macs), (v2_one, v2_eight, v2_macs) = timings.values()
    rows += [
        "",
        f"v2 / v1 in this run: {v2_one / v1_one:.2f} at batch 1, {v2_eight / v1_eight:.2f} at batch 8.",
    ]
    if v1_macs and v2_macs:
        projection = ", ".join(
            f"{pi}: v1 {v1_macs / rate:.0f} µs, v2 {v2_macs / rate:.0f} µs per digit"
            for pi, rate in PI_MACS_PER_US.items()
        )
        rows.append(
            "Projected from MACs at an assumed 5 (Pi 4) and 15 (Pi 5) GMAC/s per core, not measured: "
            f"{projection}."
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras", default=str(ROOT / "models" / "digits.keras"))
    parser.add_argument("--tflite", default=str(DEFAULT_MODEL))
    parser.add_argument(
        "--baseline",
        default=str(ROOT / "models" / "digits_v1_int8.tflite"),
        help="an earlier int8 model to time beside --tflite in the same run (default: model v1)",
    )
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DIR"))
    parser.add_argument("--write", metavar="MARKDOWN")
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from host.data import load_mnist
    from host.export import export_tflite
    from host.negatives import device_digits

    test = load_mnist(args.data_dir)[1]
    digits = test.images[:1000]
    x = digits[..., None].astype(np.float32) / 255.0
    model = keras.models.load_model(args.keras)
    int8 = Classifier(args.tflite, threads=1)

    with tempfile.TemporaryDirectory() as tmp:
        float_path = Path(tmp) / "digits_float32.tflite"
        float_path.write_bytes(export_tflite(model, "float32"))
        float32 = Classifier(float_path, threads=1, verify=False)
        rows = []

        def batches(classifier, size):
            def run():
                for i in range(0, len(digits), size):
                    classifier.probabilities(digits[i : i + size])

            return run

        rows.append(("int8 TFLite, ai-edge-litert, batch 1", per_digit_us(batches(int8, 1), 1000)))
        rows.append(("int8 TFLite, ai-edge-litert, batch 8", per_digit_us(batches(int8, 8), 1000)))
        rows.append(("float32 TFLite, ai-edge-litert, batch 1", per_digit_us(batches(float32, 1), 1000)))
        few = x[:200]
        model(few[:1])
        rows.append(
            (
                "Keras `model(x)`, one digit per call",
                per_digit_us(lambda: [model(few[i : i + 1], training=False) for i in range(200)], 200, 1),
            )
        )
        model.predict(few[:1], verbose=0)
        rows.append(
            (
                "Keras `model.predict(x)`, one digit per call",
                per_digit_us(lambda: [model.predict(few[i : i + 1], verbose=0) for i in range(200)], 200, 1),
            )
        )
        same = (int8.probabilities(digits).argmax(1) == float32.probabilities(digits).argmax(1)).mean()
        none_threshold = load_config(None).decision.none_threshold
        decided = as_the_device_decides(int8, test.images, test.labels, none_threshold)
        # MNIST test digits (never trained on) written on paper, photographed and cut as the device cuts them.
        camera_digits = device_digits(1000, CAMERA_SEED, test.images, test.labels)
        side_by_side = versus(Path(args.baseline), Path(args.tflite), digits, batches, camera_digits)

    base = rows[0][1]
    lines = [
        f"Model: {Path(args.tflite).name} ({Path(args.tflite).stat().st_size / 1024:.0f} KB), one thread, "
        f"TensorFlow {tf.__version__}.",
        "",
        "| how | µs per digit | × int8 batch 1 |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {us:,.1f} | {us / base:,.1f} |" for name, us in rows]
    lines += [
        "",
        f"int8 and float32 TFLite agree on {same:.1%} of the 1,000 digits.",
        "",
        f'MNIST test, all {len(test.labels):,} digits, int8, as the pipeline decides (dropped where "not a '
        f'digit" reaches the default none_threshold, {none_threshold}): {decided["right"]:.2%} read right, '
        f"{decided['dropped']:.2%} dropped. By the top class alone (the model card's measure): "
        f'{decided["top_right"]:.2%} right, {decided["top_dropped"]:.2%} called "not a digit".',
        "",
        *side_by_side,
        "",
        f"Machine: {machine()}.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(
            Path(args.write), "bench-model", "## Model inference (`python -m tools.bench_model`)\n\n" + text
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
