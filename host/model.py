"""The compact CNN: conv-BN-ReLU blocks and global average pooling, built for int8 and a Pi CPU.

No big dense layer (most of a tutorial CNN's weights), ReLU only (quantizes cleanly), BatchNorm folded into
the convolutions by the TFLite converter. Model v2 (the default): widths 16-32-64, about 35k parameters and
5.5 M multiply-accumulates per digit, 11 classes (0-9 and "none"); v1 was 24-48-96, 80k, 10 classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers


@dataclass(frozen=True)
class ModelSpec:
    """Widths of the conv stages; each stage is ``convs`` 3x3 conv-BN-ReLU, then 2x2 max pooling."""

    stage_widths: tuple[int, ...] = (16, 32, 64)
    convs_per_stage: tuple[int, ...] = (2, 2, 1)
    dropout: float = 0.2
    classes: int = 11  # the digits 0-9, and "none" (not a single digit) for a digit-or-not model


def build_model(spec: ModelSpec = ModelSpec()) -> keras.Model:
    """Build the classifier: float input (28, 28, 1) in [0, 1], softmax over 0-9 (and "none")."""
    inputs = keras.Input((28, 28, 1), name="image")
    x = inputs
    for stage, (width, convs) in enumerate(zip(spec.stage_widths, spec.convs_per_stage, strict=True)):
        for i in range(convs):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{stage + 1}_{i + 1}")(x)
            # momentum 0.9: the moving statistics must settle even in a one-epoch run.
            x = layers.BatchNormalization(momentum=0.9, name=f"bn{stage + 1}_{i + 1}")(x)
            x = layers.ReLU(name=f"relu{stage + 1}_{i + 1}")(x)
        if stage < len(spec.stage_widths) - 1:
            x = layers.MaxPooling2D(2, name=f"pool{stage + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(spec.dropout, name="dropout")(x)
    outputs = layers.Dense(spec.classes, activation="softmax", name="digit")(x)
    return keras.Model(inputs, outputs, name="digits")


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates for one digit, counted over the conv and dense layers (the rest is noise)."""
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
