"""MNIST and folder datasets as numpy arrays: uint8 images (N, 28, 28), uint8 labels (N,).

IDX files are validated (magic number, counts, shapes, length) so a truncated or wrong file gives a
one-line :class:`DataError` naming the file and the problem instead of a traceback deep inside numpy.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.errors import DigitReaderError
from device.sources import IMAGE_SUFFIXES  # one list of image files for the camera's folders and the datasets

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


class DataError(DigitReaderError, ValueError):
    """A dataset file or folder that is missing, truncated or not what it claims to be."""

    exit_code = 2


@dataclass(frozen=True)
class Dataset:
    """Images (N, 28, 28) uint8, white digit on black, and their labels (N,) uint8."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX3 image file (optionally gzipped) into a (N, rows, cols) uint8 array."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 16:
        raise DataError(f"{path}: too short for an IDX image header ({len(raw)} bytes, need 16)")
    magic, count, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != IMAGES_MAGIC:
        raise DataError(f"{path}: bad magic number {magic}, expected {IMAGES_MAGIC} for an IDX image file")
    if (rows, cols) != (28, 28):
        raise DataError(f"{path}: images are {rows}x{cols}, expected 28x28")
    expected = 16 + count * rows * cols
    if len(raw) != expected:
        raise DataError(
            f"{path}: truncated or padded: {len(raw)} bytes, header says {count} images = {expected}"
        )
    return np.frombuffer(raw, np.uint8, offset=16).reshape(count, rows, cols)


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX1 label file (optionally gzipped) into a (N,) uint8 array of digits 0-9."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 8:
        raise DataError(f"{path}: too short for an IDX label header ({len(raw)} bytes, need 8)")
    magic, count = struct.unpack(">II", raw[:8])
    if magic != LABELS_MAGIC:
        raise DataError(f"{path}: bad magic number {magic}, expected {LABELS_MAGIC} for an IDX label file")
    if len(raw) != 8 + count:
        raise DataError(
            f"{path}: truncated or padded: {len(raw)} bytes, header says {count} labels = {8 + count}"
        )
    labels = np.frombuffer(raw, np.uint8, offset=8)
    if labels.size and labels.max() > 9:
        raise DataError(f"{path}: label {int(labels.max())} found, labels must be 0-9")
    return labels


def _find(data_dir: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (data_dir / name).is_file():
            return data_dir / name
    raise DataError(
        f"{data_dir}: missing {stem} (or {stem}.gz); the folder must hold the four MNIST IDX files"
    )


def load_idx_pair(data_dir: Path, split: str) -> Dataset:
    """Load one split ("train" or "test") from a folder of IDX files, checking images and labels agree."""
    images_path = _find(data_dir, FILES[f"{split}_images"])
    labels_path = _find(data_dir, FILES[f"{split}_labels"])
    images, labels = read_idx_images(images_path), read_idx_labels(labels_path)
    if len(images) != len(labels):
        raise DataError(
            f"{labels_path}: {len(labels)} labels but {images_path.name} has {len(images)} images"
        )
    return Dataset(images, labels)


def load_mnist(data_dir: str | os.PathLike | None = None) -> tuple[Dataset, Dataset]:
    """Return (train, test) MNIST.

    From ``data_dir`` (or the ``MNIST_DIR`` environment variable) when given, else through Keras'
    download-and-cache, which needs the internet the first time.
    """
    data_dir = data_dir or os.environ.get("MNIST_DIR")
    if data_dir:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise DataError(f"{data_dir}: MNIST data folder does not exist")
        return load_idx_pair(data_dir, "train"), load_idx_pair(data_dir, "test")
    import keras  # only here: the IDX path above needs no TensorFlow

    try:
        (xtr, ytr), (xte, yte) = keras.datasets.mnist.load_data()
    except Exception as exc:  # urllib errors, SSL errors, a truncated cache... all mean "no data"
        raise DataError(
            f"MNIST download failed ({type(exc).__name__}); pass --data-dir DIR with the four IDX files "
            "or set MNIST_DIR"
        ) from None
    return Dataset(xtr, ytr), Dataset(xte, yte)


def load_npz(path: str | os.PathLike) -> Dataset:
    """Load a dataset saved as npz with ``images`` and ``labels`` arrays (the test sample uses this)."""
    path = Path(path)
    try:
        with np.load(path) as npz:
            images, labels = npz["images"], npz["labels"]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not an npz with 'images' and 'labels' ({exc})") from None
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DataError(
            f"{path}: expected images (N, 28, 28) and N labels, got {images.shape} and {labels.shape}"
        )
    return Dataset(images.astype(np.uint8), labels.astype(np.uint8))


NONE_FOLDER = "none"  # the user's own "not a digit" crops, label 10 (for a digit-or-not model)
NONE_LABEL_INDEX = 10


def load_folder(root: str | os.PathLike, normalize: bool = True) -> Dataset:
    """Load a folder dataset ``ROOT/<digit>/*.png`` (and ``ROOT/none/*.png``, label 10: not a digit).

    Images are read as grey. With ``normalize`` (the default), each goes through the device's
    :func:`device.normalize.normalize_digit` after making the ink white, so custom data gets exactly the
    pixels the device feeds the model; 28x28 images that already look normalized (dark border) are kept.
    """
    import cv2

    from device.normalize import normalize_digit

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder does not exist")
    images, labels = [], []
    for digit, name in [(d, str(d)) for d in range(10)] + [(NONE_LABEL_INDEX, NONE_FOLDER)]:
        folder = root / name
        if not folder.is_dir():
            continue
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            grey = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
            if grey is None:
                raise DataError(f"{file}: not a readable image")
            images.append(_as_mnist(grey, normalize_digit) if normalize else cv2.resize(grey, (28, 28)))
            labels.append(digit)
    if not images:
        raise DataError(
            f"{root}: no images found in {root}/<digit>/ (digit folders 0-9 with .png/.jpg files)"
        )
    return Dataset(np.stack(images).astype(np.uint8), np.array(labels, np.uint8))


def _as_mnist(grey: np.ndarray, normalize_digit) -> np.ndarray:
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if grey.shape == (28, 28) and border.mean() < 32:
        return grey  # already a white-on-black 28x28 digit (e.g. saved by device-run --save-crops)
    ink = 255 - grey if border.mean() > 127 else grey  # dark ink on light paper -> white on black
    ink = np.where(ink > np.percentile(ink, 50) + 10, ink, 0).astype(np.uint8)
    return normalize_digit(ink)


def split_validation(data: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Shuffle with ``seed`` and split off ``fraction`` of the data for validation: (train, val)."""
    order = np.random.default_rng(seed).permutation(len(data))
    n_val = round(len(data) * fraction)
    val, train = order[:n_val], order[n_val:]
    return Dataset(data.images[train], data.labels[train]), Dataset(data.images[val], data.labels[val])
