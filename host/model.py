"""The compact CNN: conv-BN-ReLU blocks and global average pooling, built for int8 and a Pi CPU.

No big dense layer (most of a tutorial CNN's weights), ReLU only (quantizes cleanly), BatchNorm folded into
the convolutions by the TFLite converter. Model v2 (the default): widths 16-32-64, about 35k parameters and
5.5 M multiply-accumulates per digit, 11 classes (0-9 and "none"); v1 was 24-48-96, 80k, 10 classes.

Also the fully-connected baseline of the classic tutorial (``arch="mlp"``: Flatten, Dense 128, Dense 10 or
11), kept to show what the convolutions buy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Keras is imported where a model is built: the specs and cost estimates need no TensorFlow
    import keras

ARCHS = ("cnn", "mlp")


@dataclass(frozen=True)
class ModelSpec:
    """Widths of the conv stages; each stage is ``convs`` conv-BN-ReLU (``kernel_sizes``, 3x3 when None),
    then 2x2 max pooling (not after the last stage). ``arch="mlp"`` ignores the stages and builds the
    fully-connected baseline with ``hidden_units``."""

    stage_widths: tuple[int, ...] = (16, 32, 64)
    convs_per_stage: tuple[int, ...] = (2, 2, 1)
    dropout: float = 0.2
    classes: int = 11  # the digits 0-9, and "none" (not a single digit) for a digit-or-not model
    kernel_sizes: tuple[int, ...] | None = None
    arch: str = "cnn"
    hidden_units: int = 128
    # "none" from a head of its own (see build_model), not as an eleventh class of one softmax.
    none_head: bool = False

    @property
    def kernels(self) -> tuple[int, ...]:
        return self.kernel_sizes or (3,) * len(self.stage_widths)

    def check(self) -> None:
        """Raise ValueError naming the field and the rule when the spec cannot be built."""
        if self.arch not in ARCHS:
            raise ValueError(f"arch {self.arch!r}: must be one of {', '.join(ARCHS)}")
        if self.none_head and (self.classes != 11 or self.arch != "cnn"):
            raise ValueError("a none head needs the cnn with 11 classes (the digits and none)")
        if self.arch == "mlp":
            if self.hidden_units < 1:
                raise ValueError(f"hidden units {self.hidden_units}: must be at least 1")
            return
        stages = len(self.stage_widths)
        # Each stage but the last halves the map: 28 -> 14 -> 7 -> 3 leaves something to pool after 4.
        if not 1 <= stages <= 4:
            raise ValueError(f"widths {self.stage_widths}: 1 to 4 stages, got {stages}")
        for name, values in (("convs", self.convs_per_stage), ("kernels", self.kernels)):
            if len(values) != stages:
                raise ValueError(f"{name} {values}: one per stage ({stages} stages), got {len(values)}")
        if min(self.stage_widths) < 1 or min(self.convs_per_stage) < 1:
            raise ValueError("widths and convs must be positive")
        if any(k < 1 or k % 2 == 0 for k in self.kernels):
            raise ValueError(f"kernels {self.kernels}: must be odd and positive (3, 5, ...)")


def build_model(spec: ModelSpec = ModelSpec()) -> keras.Model:
    """Build the classifier: float input (28, 28, 1) in [0, 1], probabilities of 0-9 (and "none").

    With ``spec.none_head`` the probabilities are factored: a softmax over the ten digits, and a sigmoid
    head of its own for "none", p(digit d) = p(d | some digit) x (1 - p(none)). Trained on the same
    eleven-class cross-entropy, that loss splits into the digits' cross-entropy on the digits alone and a
    digit-or-not loss on everything: the negatives never push on the digits' logits, only on the shared
    features and the none head. The output is eleven probabilities either way, so the device reads both
    alike."""
    import keras
    from keras import layers

    spec.check()
    if spec.arch == "mlp":
        return build_mlp(spec)
    inputs = keras.Input((28, 28, 1), name="image")
    x = inputs
    stages = zip(spec.stage_widths, spec.convs_per_stage, spec.kernels, strict=True)
    for stage, (width, convs, kernel) in enumerate(stages):
        for i in range(convs):
            x = layers.Conv2D(width, kernel, padding="same", use_bias=False, name=f"conv{stage + 1}_{i + 1}")(
                x
            )
            # momentum 0.9: the moving statistics must settle even in a one-epoch run.
            x = layers.BatchNormalization(momentum=0.9, name=f"bn{stage + 1}_{i + 1}")(x)
            x = layers.ReLU(name=f"relu{stage + 1}_{i + 1}")(x)
        if stage < len(spec.stage_widths) - 1:
            x = layers.MaxPooling2D(2, name=f"pool{stage + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(spec.dropout, name="dropout")(x)
    if not spec.none_head:
        outputs = layers.Dense(spec.classes, activation="softmax", name="digit")(x)
        return keras.Model(inputs, outputs, name="digits")
    which_digit = layers.Dense(10, activation="softmax", name="digit")(x)
    none = layers.Dense(1, activation="sigmoid", name="none")(x)
    some_digit = layers.Rescaling(-1.0, offset=1.0, name="some_digit")(none)
    digits = layers.Multiply(name="digits")([which_digit, some_digit])
    outputs = layers.Concatenate(name="digit_or_none")([digits, none])
    return keras.Model(inputs, outputs, name="digits")


def build_mlp(spec: ModelSpec) -> keras.Model:
    """The tutorial's fully-connected baseline: every pixel to every hidden unit, no notion of a stroke.
    (host-train trains it without dropout, as the tutorial does; the layer is there for ``spec.dropout``.)"""
    import keras
    from keras import layers

    inputs = keras.Input((28, 28, 1), name="image")
    x = layers.Flatten(name="flatten")(inputs)
    x = layers.Dense(spec.hidden_units, activation="relu", name="hidden")(x)
    x = layers.Dropout(spec.dropout, name="dropout")(x)
    outputs = layers.Dense(spec.classes, activation="softmax", name="digit")(x)
    return keras.Model(inputs, outputs, name="digits_mlp")


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates for one digit, counted over the conv and dense layers (the rest is noise)."""
    from keras import layers

    macs = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1]
            macs += h * w * kh * kw * c_in * c_out // layer.groups
        elif isinstance(layer, layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    return int(macs)


@dataclass(frozen=True)
class Cost:
    """What a spec costs on the Pi, known before building or training it."""

    params: int  # as keras' count_params() counts them (BatchNorm's moving statistics included)
    macs: int  # as count_macs() counts them
    int8_bytes: int  # estimated size of the full-integer int8 .tflite file (see estimate_int8_bytes)

    @property
    def int8_kb(self) -> float:
        return self.int8_bytes / 1000


def cost(spec: ModelSpec) -> Cost:
    """Parameters, MACs and estimated int8 size of ``spec``, computed from the shapes alone (milliseconds,
    where building the Keras model takes a good fraction of a second): a search can reject a candidate
    before it exists."""
    spec.check()
    if spec.arch == "mlp":
        hidden, pixels = spec.hidden_units, 28 * 28
        params = pixels * hidden + hidden + hidden * spec.classes + spec.classes
        macs = pixels * hidden + hidden * spec.classes
        weights, channels, layers_ = params - hidden - spec.classes, hidden + spec.classes, 2
        return Cost(params, macs, estimate_int8_bytes(weights, channels, layers_))
    params = macs = weights = channels = layers_ = 0
    size, c_in = 28, 1
    for stage, (width, convs, kernel) in enumerate(
        zip(spec.stage_widths, spec.convs_per_stage, spec.kernels, strict=True)
    ):
        for _ in range(convs):
            conv = kernel * kernel * c_in * width
            params += conv + 4 * width  # BatchNorm: gamma, beta, moving mean, moving variance
            macs += size * size * conv
            weights += conv
            channels += width
            layers_ += 1
            c_in = width
        if stage < len(spec.stage_widths) - 1:
            size //= 2  # 2x2 max pooling, "valid": 7 -> 3
    params += c_in * spec.classes + spec.classes
    macs += c_in * spec.classes
    weights += c_in * spec.classes
    channels += spec.classes
    layers_ += 1
    return Cost(params, macs, estimate_int8_bytes(weights, channels, layers_))


# Least squares over the int8 files host-export's converter (TensorFlow 2.21) wrote for seven specs of this
# family and two MLPs, with random (trained-like) weights: an untrained model's zero biases share one buffer
# and convert about 1.4 KB smaller. One byte per weight, about 31 bytes per output channel (int32 bias,
# float32 scale, int64 zero point), 555 per conv/dense layer (tensors, operators, names) and 1.6 KB for the
# rest; within 0.2 % for the shipped v2 (45,656 bytes), 2.4 % for a 10 KB model. tests/test_tune.py checks
# it against the converter.
BYTES_PER_CHANNEL = 31
BYTES_PER_LAYER = 555
BYTES_FIXED = 1580


def estimate_int8_bytes(weights: int, channels: int, layers_: int) -> int:
    """Estimated size of the int8 .tflite file of a model with these conv/dense weights, output channels
    and conv/dense layers."""
    return weights + BYTES_PER_CHANNEL * channels + BYTES_PER_LAYER * layers_ + BYTES_FIXED
