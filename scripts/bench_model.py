"""Model benchmark: microseconds per digit for the ways a digit can be classified, on one thread.

Usage: python scripts/bench_model.py [--keras models/digits.keras] [--tflite models/digits_int8.tflite]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from device.bench import machine, write_section  # noqa: E402
from device.classify import Classifier  # noqa: E402


def per_digit_us(run, count: int, repeats: int = 3) -> float:
    """Best of ``repeats`` timings of ``run()`` (which classifies ``count`` digits), in µs per digit."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras", default=str(ROOT / "models" / "digits.keras"))
    parser.add_argument("--tflite", default=str(ROOT / "models" / "digits_int8.tflite"))
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DIR"))
    parser.add_argument("--write", metavar="MARKDOWN")
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from host.data import load_mnist
    from host.export import export_tflite

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
        f"Machine: {machine()}.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(
            Path(args.write), "bench-model", "## Model inference (`scripts/bench_model.py`)\n\n" + text
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
