"""Classifier: one TFLite interpreter, built once, that classifies every digit of a frame in one invoke.

The runtime is chosen at run time: ``ai_edge_litert`` (LiteRT, the maintained one) -> ``tflite_runtime``
(its predecessor; Python <= 3.11 and numpy < 2 only) -> ``tensorflow.lite`` (last resort, with a warning).
Quantization parameters are read from the model's tensors, so int8, uint8 and float32 models all work.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from device.errors import ModelError
from device.normalize import SIZE

log = logging.getLogger(__name__)

# The shipped model and its card are package data (device/models/), so a wheel carries them. pip unpacks a
# wheel into plain folders, so the resource is a real file and the card is found beside it.
DEFAULT_MODEL = Path(str(resources.files("device") / "models" / "digits_int8.tflite"))
DIGIT_LABELS = tuple(str(d) for d in range(10))
NONE_LABEL = "none"  # "not a single digit": texture, a line, an operator, a letter, touching digits
LABELS = DIGIT_LABELS  # model v1
LABELS_WITH_NONE = (*DIGIT_LABELS, NONE_LABEL)  # model v2, the digit-or-not classifier


@dataclass(frozen=True)
class Prediction:
    """What the model says of one candidate: the likeliest digit and how sure it is of that digit among the
    ten, and the probability that it is not a single digit at all (always 0 for a digits-only model)."""

    digit: int
    confidence: float
    none: float = 0.0

    @property
    def is_digit(self) -> bool:
        """The model finds a digit likelier than "none"."""
        return self.none < 0.5


def load_interpreter_class():
    """Return (Interpreter class, backend name) for the best runtime that imports here."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite_runtime"
    except ImportError:
        pass
    try:
        import tensorflow as tf

        log.warning("using tensorflow.lite: install ai-edge-litert, TensorFlow is far too heavy for a Pi")
        return tf.lite.Interpreter, "tensorflow.lite"
    except ImportError:
        raise ModelError("no TFLite runtime: pip install ai-edge-litert (or tflite-runtime)") from None


@contextlib.contextmanager
def native_chatter_silenced():
    """Silence what the runtime's C++ prints straight to stderr while tensors are allocated ("INFO: Created
    TensorFlow Lite XNNPACK delegate for CPU.", on every start), unless debug logging is on."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced by something without a file
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def card_path_for(model_path: Path) -> Path:
    """The model card sits beside the model: ``digits_int8.tflite`` -> ``digits_int8.json``."""
    return model_path.with_suffix(".json")


def sha256_of(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Quantization:
    """How a tensor maps to real numbers: real = (q - zero_point) * scale; scale 0 means float."""

    dtype: np.dtype
    scale: float
    zero_point: int

    @classmethod
    def of(cls, detail: dict) -> Quantization:
        scale, zero_point = detail["quantization"]
        return cls(np.dtype(detail["dtype"]), float(scale), int(zero_point))

    def quantize(self, real: np.ndarray) -> np.ndarray:
        if self.scale == 0:
            return real.astype(self.dtype)
        info = np.iinfo(self.dtype)
        return np.clip(np.round(real / self.scale + self.zero_point), info.min, info.max).astype(self.dtype)

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        if self.scale == 0:
            return values.astype(np.float32)
        return (values.astype(np.float32) - self.zero_point) * self.scale


class Classifier:
    """Digit classifier over a .tflite model: ``probabilities(digits)`` and ``classify(digits)``.

    ``digits`` are 28x28 uint8 MNIST-style images (white on black), as made by
    :func:`device.normalize.normalize_digit`.
    """

    def __init__(self, model_path: str | Path = DEFAULT_MODEL, threads: int = 1, verify: bool = True):
        self.model_path = Path(model_path)
        try:
            content = self.model_path.read_bytes()
        except OSError as exc:
            raise ModelError(f"model {self.model_path}: cannot read ({exc.strerror or exc})") from None
        self.sha256 = sha256_of(content)
        # The card first: a file that does not match its card is corrupt, whatever else is wrong with it.
        self.card = self._load_card(verify)
        interpreter_class, self.backend = load_interpreter_class()
        try:
            self._interpreter = interpreter_class(model_content=content, num_threads=threads)
            with native_chatter_silenced():
                self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"model {self.model_path}: not a valid TFLite model ({first_line})") from None
        if verify and not self.card:
            raise ModelError(
                f"model {self.model_path}: its card {card_path_for(self.model_path).name} is missing, so its "
                "sha256 cannot be verified (set model.verify_sha256 = false to run a model without a card)"
            )
        inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"model {self.model_path}: needs one input and one output tensor")
        self._input, self._output = inputs[0], outputs[0]
        self.labels = self._labels_for(int(self._output["shape"][-1]))
        if list(self._input["shape"][1:]) != [SIZE, SIZE, 1] or len(self._output["shape"]) != 2:
            raise ModelError(
                f"model {self.model_path}: input {list(self._input['shape'])} / output "
                f"{list(self._output['shape'])}, expected (N, 28, 28, 1) -> (N, {len(self.labels)})"
            )
        self.input_quantization = Quantization.of(self._input)
        self.output_quantization = Quantization.of(self._output)
        # The input is a pixel (0-255) scaled to 0-1: each of the 256 values has one input, looked up
        # rather than scaled and quantized again for every pixel of every digit.
        self._pixel_input = self.input_quantization.quantize(np.arange(256, dtype=np.float32) / 255.0)
        # ...and a quantized output's 256 values are looked up too, by their bytes (None: a float output).
        self._output_values = None
        if self.output_quantization.scale and self.output_quantization.dtype.itemsize == 1:
            byte_values = np.arange(256, dtype=np.uint8).view(self.output_quantization.dtype)
            self._output_values = self.output_quantization.dequantize(byte_values)
        self._batch = int(self._input["shape"][0])
        log.info(
            "model %s (%s input, sha256 %s...) on %s, %d thread(s)",
            self.model_path.name,
            self.input_quantization.dtype,
            self.sha256[:12],
            self.backend,
            threads,
        )

    def _labels_for(self, outputs: int) -> tuple[str, ...]:
        """The class labels: from the card, else by the number of outputs (10 digits, or 10 and "none")."""
        labels = tuple(str(label) for label in self.card.get("labels") or ())
        if not labels:
            labels = LABELS_WITH_NONE if outputs == len(LABELS_WITH_NONE) else DIGIT_LABELS
        if labels not in (DIGIT_LABELS, LABELS_WITH_NONE) or len(labels) != outputs:
            raise ModelError(
                f"model {self.model_path}: {outputs} outputs with labels {list(labels)}; expected the digits "
                f"0-9, optionally followed by {NONE_LABEL!r}"
            )
        return labels

    @property
    def has_none(self) -> bool:
        """The model can say "not a digit"."""
        return self.labels == LABELS_WITH_NONE

    def _load_card(self, verify: bool) -> dict:
        card_path = card_path_for(self.model_path)
        if not card_path.exists():
            return {}
        try:
            card = json.loads(card_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"model card {card_path}: not readable JSON ({exc})") from None
        if not isinstance(card, dict):
            raise ModelError(f"model card {card_path}: must be a JSON object")
        expected = card.get("sha256")
        if verify and expected and expected != self.sha256:
            raise ModelError(
                f"model {self.model_path}: sha256 {self.sha256[:12]}... does not match its card "
                f"{card_path.name} ({str(expected)[:12]}...); the file is corrupt or the card is stale"
            )
        return card

    def _ensure_batch(self, n: int) -> None:
        # Batch sizes grow in powers of two so a changing digit count rarely re-allocates tensors.
        if n <= self._batch and self._batch <= max(8, 4 * n):
            return
        size = 1
        while size < n:
            size *= 2
        self._interpreter.resize_tensor_input(self._input["index"], [size, SIZE, SIZE, 1])
        with native_chatter_silenced():
            self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = size

    def probabilities(self, digits: np.ndarray | list[np.ndarray], max_batch: int = 256) -> np.ndarray:
        """Class probabilities (N, classes) float32 for N 28x28 uint8 digits, in as few invokes as possible.

        A model that outputs NaN or infinity gives probability 0 there (never an invalid number)."""
        digits = np.asarray(digits, dtype=np.uint8).reshape(-1, SIZE, SIZE)
        if len(digits) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        if len(digits) <= max_batch:  # the usual case: one invoke
            return self._invoke(digits)
        return np.concatenate(
            [self._invoke(digits[i : i + max_batch]) for i in range(0, len(digits), max_batch)]
        )

    def _invoke(self, digits: np.ndarray) -> np.ndarray:
        """One invoke on up to a batch of digits. Every step is a table lookup or a copy: at batch 1 the
        work around the invoke is a fair share of the time a digit takes."""
        n = len(digits)
        self._ensure_batch(n)
        # Written straight into the interpreter's input (no copy); the view must be gone before invoke.
        batch = self._interpreter.tensor(self._input["index"])()
        batch[:n, ..., 0] = self._pixel_input[digits]
        batch[n:] = self._pixel_input[0]  # rows past the digits are black, like a digit's background
        del batch
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._output["index"])[:n]
        if self._output_values is not None:
            return self._output_values[raw.view(np.uint8)]
        values = self.output_quantization.dequantize(raw)
        if self.output_quantization.scale:
            return values  # from integers: always finite
        return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)

    def classify(self, digits) -> list[Prediction]:
        """A :class:`Prediction` for each 28x28 candidate."""
        return self._predictions(self.probabilities(digits))

    def classify_views(self, candidates) -> list[Prediction]:
        """One :class:`Prediction` for each candidate seen several ways (a list of 28x28 views each, see
        ``device.normalize.jittered``): from its class probabilities averaged over its views. All the views
        of all the candidates in one invoke."""
        if not candidates:
            return []
        probs = self.probabilities([view for views in candidates for view in views])
        ends = np.cumsum([len(views) for views in candidates])
        means = [
            probs[end - len(views) : end].mean(axis=0) for views, end in zip(candidates, ends, strict=True)
        ]
        return self._predictions(np.asarray(means))

    def _predictions(self, probs: np.ndarray) -> list[Prediction]:
        digit_probs = probs[:, : len(DIGIT_LABELS)]
        best = digit_probs.argmax(axis=1)
        none = probs[:, len(DIGIT_LABELS)] if self.has_none else np.zeros(len(probs), np.float32)
        # Two questions, two answers: "is it a digit?" is the "none" probability; "which digit?" is the
        # share of the best digit among the digits, so a digit the model is unsure is a digit at all
        # is not also reported as an unsure digit.
        which = digit_probs[np.arange(len(best)), best] / np.maximum(digit_probs.sum(axis=1), 1e-6)
        return [Prediction(int(d), float(which[i]), float(none[i])) for i, d in enumerate(best)]

    def close(self) -> None:
        """Release the interpreter (idempotent)."""
        self._interpreter = None

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
