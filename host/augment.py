"""Camera-matched augmentation, run on whole batches inside the tf.data pipeline.

After the device's normalization a camera crop differs from an MNIST digit mostly by a little rotation,
an off-centre position or size, a thicker or thinner stroke (pen vs marker, threshold), softness (focus,
motion) and sensor noise. Each is applied per image with a random strength. Everything is vectorized over
the batch, so an epoch costs little more than one without augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf


@dataclass(frozen=True)
class AugmentSettings:
    """Ranges of the random changes; fractions are of the 28 px image."""

    rotation_degrees: float = 12.0
    shift: float = 0.1
    zoom: float = 0.1
    shear: float = 0.15  # slanted handwriting: x moves by up to this fraction of y
    thickness: float = 0.6  # max blend towards a dilated/eroded stroke
    blur: float = 1.0  # max blend towards a 3x3 Gaussian blur, applied once or twice (webcam focus, motion)
    noise: float = 0.05  # max std-dev of additive Gaussian noise, in [0, 1] intensity units
    clean_share: float = 0.3  # share of images left as they are (the device's crops are clean)


def build_augmenter(settings: AugmentSettings, seed: int):
    """Return ``augment(images) -> images`` for float32 batches (B, 28, 28, 1) in [0, 1]."""
    geometry = keras.Sequential(
        [
            keras.layers.RandomRotation(settings.rotation_degrees / 360.0, fill_mode="constant", seed=seed),
            keras.layers.RandomTranslation(
                settings.shift, settings.shift, fill_mode="constant", seed=seed + 1
            ),
            keras.layers.RandomZoom(settings.zoom, settings.zoom, fill_mode="constant", seed=seed + 2),
            keras.layers.RandomShear(settings.shear, 0.0, fill_mode="constant", seed=seed + 3),
        ],
        name="geometry",
    )
    gauss = tf.constant([1.0, 2.0, 1.0])
    kernel = tf.reshape(tf.tensordot(gauss, gauss, axes=0) / 16.0, (3, 3, 1, 1))
    generator = tf.random.Generator.from_seed(seed)

    def per_image(batch_size, high, low=0.0):
        return generator.uniform((batch_size, 1, 1, 1), low, high)

    def augment(images: tf.Tensor) -> tf.Tensor:
        x = geometry(images, training=True)
        n0 = tf.shape(images)[0]
        n = tf.shape(x)[0]
        # Stroke thickness: blend towards a 2x2 dilation (positive) or erosion (negative).
        dilated = tf.nn.max_pool2d(x, 2, 1, "SAME")
        eroded = -tf.nn.max_pool2d(-x, 2, 1, "SAME")
        t = per_image(n, settings.thickness, -settings.thickness)
        x = tf.where(t > 0, x + t * (dilated - x), x - t * (eroded - x))
        # Softness.
        for _ in range(2):  # two passes at random strengths: a webcam's focus is often softer than one
            blurred = tf.nn.conv2d(x, kernel, 1, "SAME")
            x = x + per_image(n, settings.blur) * (blurred - x)
        # Sensor noise.
        x = x + per_image(n, settings.noise) * generator.normal(tf.shape(x))
        x = tf.clip_by_value(x, 0.0, 1.0)
        # Some images stay untouched, so the clean crops the device sends are never out of distribution
        # (a model trained only on noisy images learns to tell "not a digit" by the noise).
        clean = generator.uniform((n0, 1, 1, 1)) < settings.clean_share
        return tf.where(clean, images, x)

    return augment
