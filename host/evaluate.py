"""host-eval: accuracy, per-class precision/recall, a confusion-matrix PNG and a grid of the misclassified
digits, for a .keras or .tflite model on MNIST test or on a folder dataset ``DIR/<digit>/*.png``.

Given ``--model`` more than once (say the CNN and the MLP baseline), it also compares them side by side on
the same digits: size, parameters, MACs, accuracy, and which digits only one of them reads right.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.classify import DEFAULT_MODEL
from device.errors import ModelError
from host.cli import run_command, summary
from host.data import Dataset, load_folder, load_mnist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluation:
    """Predictions of a model on a dataset and the numbers derived from them."""

    labels: np.ndarray
    predictions: np.ndarray
    confidences: np.ndarray

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.labels == self.predictions)) if len(self.labels) else 0.0

    @property
    def classes(self) -> int:
        """10 (digits), or 11 when "none" (label 10) occurs as a label or a prediction."""
        seen = max(int(self.labels.max(initial=0)), int(self.predictions.max(initial=0)))
        return 11 if seen >= 10 else 10

    @property
    def confusion(self) -> np.ndarray:
        """Counts, rows = true class, columns = predicted class (0-9, and 10 = "none" when present)."""
        matrix = np.zeros((self.classes, self.classes), np.int64)
        np.add.at(matrix, (self.labels.astype(int), self.predictions.astype(int)), 1)
        return matrix

    def precision_recall(self) -> list[tuple[int, float, float, int]]:
        """(class, precision, recall, support) per class; NaN where undefined."""
        m = self.confusion
        rows = []
        for d in range(self.classes):
            predicted, actual = m[:, d].sum(), m[d].sum()
            rows.append(
                (
                    d,
                    m[d, d] / predicted if predicted else float("nan"),
                    m[d, d] / actual if actual else float("nan"),
                    int(actual),
                )
            )
        return rows


def predict(model_path: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted digits, confidences) of a .keras or .tflite model on uint8 images (N, 28, 28)."""
    if model_path.suffix == ".tflite":
        from device.classify import Classifier

        with Classifier(model_path) as classifier:
            probs = classifier.probabilities(images)
    elif model_path.suffix == ".keras":
        import keras

        try:
            model = keras.models.load_model(model_path)
        except Exception as exc:  # Keras raises many types for a bad file
            raise ModelError(f"model {model_path}: cannot load ({type(exc).__name__})") from None
        probs = model.predict(images[..., None].astype(np.float32) / 255.0, batch_size=1000, verbose=0)
    else:
        raise ModelError(f"model {model_path}: expected a .keras or .tflite file")
    return probs.argmax(axis=1), probs.max(axis=1)


def evaluate(model_path: Path, data: Dataset) -> Evaluation:
    """Run the model over the dataset."""
    predictions, confidences = predict(model_path, data.images)
    return Evaluation(data.labels, predictions, confidences)


def plot_confusion(evaluation: Evaluation, path: Path, title: str) -> None:
    """Confusion matrix PNG, counts written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = evaluation.confusion
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    # Log colour scale: the diagonal is thousands, the errors are a handful.
    image = ax.imshow(np.log1p(m), cmap="Blues")
    for (i, j), count in np.ndenumerate(m):
        if count:
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if m[i, j] > m.max() / 4 else "black",
            )
    names = [str(d) for d in range(10)] + ["none"] * (len(m) - 10)
    ax.set_xticks(range(len(m)), names)
    ax.set_yticks(range(len(m)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: accuracy {evaluation.accuracy:.2%}")
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_misclassified(evaluation: Evaluation, images: np.ndarray, path: Path, limit: int = 100) -> int:
    """Grid of misclassified digits titled "true->predicted (confidence)"; most confident errors first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wrong = np.flatnonzero(evaluation.labels != evaluation.predictions)
    wrong = wrong[np.argsort(-evaluation.confidences[wrong])][:limit]
    cols = 10
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.1, rows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong, strict=False):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        ax.set_title(
            f"{evaluation.labels[i]}->{evaluation.predictions[i]} ({evaluation.confidences[i]:.2f})",
            fontsize=7,
        )
    if not len(wrong):
        axes.flat[0].set_title("no errors")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return len(wrong)


def report(evaluation: Evaluation, name: str) -> str:
    """Plain-text report: accuracy and the per-class table."""
    lines = [
        f"{name}: accuracy {evaluation.accuracy:.4f} on {len(evaluation.labels)} digits "
        f"({int(np.sum(evaluation.labels != evaluation.predictions))} wrong)",
        "digit  precision  recall  support",
    ]
    for d, p, r, n in evaluation.precision_recall():
        lines.append(f"{d:>5}  {p:>9.4f}  {r:>6.4f}  {n:>7}")
    return "\n".join(lines)


def model_facts(model_path: Path) -> dict:
    """Parameters and MACs from the model's card (.tflite) or training record (.keras), when it has one."""
    from device.classify import card_path_for
    from host.train import history_path

    record = card_path_for(model_path) if model_path.suffix == ".tflite" else history_path(model_path)
    try:
        facts = json.loads(record.read_text())
    except (OSError, ValueError):
        return {}
    return {key: facts.get(key) for key in ("params", "macs")} if isinstance(facts, dict) else {}


def label(path: Path, paths: list[Path]) -> str:
    """The file name, with its folder where two models share a name (runs/a/digits.keras, runs/b/...)."""
    return f"{path.parent.name}/{path.name}" if sum(p.name == path.name for p in paths) > 1 else path.name


def comparison(paths: list[Path], evaluations: list[Evaluation]) -> str:
    """A side-by-side table of models evaluated on the same digits, and how their errors overlap."""
    lines = [
        f"{'model':<32} {'kB':>7} {'params':>9} {'M MACs':>7} {'accuracy':>9} {'wrong':>6}",
    ]
    for path, evaluation in zip(paths, evaluations, strict=True):
        facts = model_facts(path)
        params = f"{facts['params']:,}" if facts.get("params") else "?"
        macs = f"{facts['macs'] / 1e6:.2f}" if facts.get("macs") else "?"
        wrong = int(np.sum(evaluation.labels != evaluation.predictions))
        lines.append(
            f"{label(path, paths):<32} {path.stat().st_size / 1000:>7.1f} {params:>9} {macs:>7} "
            f"{evaluation.accuracy:>9.4f} {wrong:>6}"
        )
    first, first_ok = label(paths[0], paths), evaluations[0].labels == evaluations[0].predictions
    for path, evaluation in zip(paths[1:], evaluations[1:], strict=True):
        ok, name = evaluation.labels == evaluation.predictions, label(path, paths)
        lines.append(
            f"{first} vs {name}: both right {int(np.sum(first_ok & ok))}, only {first} "
            f"{int(np.sum(first_ok & ~ok))}, only {name} {int(np.sum(~first_ok & ok))}, both wrong "
            f"{int(np.sum(~first_ok & ~ok))}"
        )
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="host-eval", description=summary(__doc__), formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--model",
        action="append",
        help=".keras or .tflite model; give it again to compare several on the same digits "
        "(default: the shipped one)",
    )
    parser.add_argument("--data", help="folder dataset DIR/<digit>/*.png (default: MNIST test)")
    parser.add_argument("--data-dir", help="MNIST IDX folder (default: $MNIST_DIR, else download)")
    parser.add_argument("--report-dir", default="reports", help="where the PNGs go (default: reports/)")
    args = parser.parse_args(argv)
    args.model = args.model or [str(DEFAULT_MODEL)]
    return args


def run(args: argparse.Namespace) -> list[Evaluation]:
    """host-eval's work; returns one evaluation per --model, in order."""
    paths = [Path(m) for m in args.model]
    for path in paths:  # every model checked before the first is evaluated
        if not path.is_file():
            raise ModelError(f"model {path}: not found")
    if args.data:
        data, name = load_folder(args.data), Path(args.data).name
    else:
        data, name = load_mnist(args.data_dir)[1], "MNIST test"
    out = Path(args.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    evaluations = []
    for model_path in paths:
        evaluation = evaluate(model_path, data)
        evaluations.append(evaluation)
        print(report(evaluation, f"{model_path.name} on {name}"))
        stem = f"{model_path.stem}_{'mnist' if not args.data else Path(args.data).name}"
        if sum(p.stem == model_path.stem for p in paths) > 1:  # runs/a/digits.keras vs runs/b/digits.keras
            stem = f"{model_path.parent.name}_{stem}"
        confusion, misclassified = out / f"{stem}_confusion.png", out / f"{stem}_misclassified.png"
        plot_confusion(evaluation, confusion, f"{model_path.name} on {name}")
        count = plot_misclassified(evaluation, data.images, misclassified)
        print(f"wrote {confusion} and {misclassified} ({count} shown)")
    if len(paths) > 1:
        print(f"\nside by side on {name} ({len(data)} digits):")
        print(comparison(paths, evaluations))
    return evaluations


def main(argv=None) -> int:
    """Console entry point."""
    args = parse_args(argv)
    return run_command("host-eval", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
