"""The IDX loader on tiny files written here, valid and corrupt, with the exact one-line errors."""

import gzip
import struct

import numpy as np
import pytest

from host.data import DataError, load_idx_pair, load_mnist, read_idx_images, read_idx_labels


def write_images(path, images, magic=2051, count=None, rows=28, cols=28, extra=b""):
    header = struct.pack(">IIII", magic, len(images) if count is None else count, rows, cols)
    data = header + np.asarray(images, np.uint8).tobytes() + extra
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def write_labels(path, labels, magic=2049, count=None):
    data = struct.pack(">II", magic, len(labels) if count is None else count) + bytes(labels)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def test_reads_plain_and_gzip(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    write_images(tmp_path / "a", images)
    write_images(tmp_path / "b.gz", images)
    np.testing.assert_array_equal(read_idx_images(tmp_path / "a"), images)
    np.testing.assert_array_equal(read_idx_images(tmp_path / "b.gz"), images)
    write_labels(tmp_path / "l.gz", [7, 0, 9])
    assert read_idx_labels(tmp_path / "l.gz").tolist() == [7, 0, 9]


def test_bad_magic(tmp_path):
    write_images(tmp_path / "x", np.zeros((2, 28, 28)), magic=2049)
    with pytest.raises(DataError) as err:
        read_idx_images(tmp_path / "x")
    assert str(err.value) == f"{tmp_path / 'x'}: bad magic number 2049, expected 2051 for an IDX image file"


def test_truncated_images(tmp_path):
    write_images(tmp_path / "x", np.zeros((2, 28, 28)), count=3)
    with pytest.raises(DataError) as err:
        read_idx_images(tmp_path / "x")
    assert str(err.value) == f"{tmp_path / 'x'}: truncated or padded: 1584 bytes, header says 3 images = 2368"


def test_wrong_shape(tmp_path):
    write_images(tmp_path / "x", np.zeros((2, 32, 32)), rows=32, cols=32)
    with pytest.raises(DataError, match=r"images are 32x32, expected 28x28$"):
        read_idx_images(tmp_path / "x")


def test_short_header_and_bad_gzip(tmp_path):
    (tmp_path / "x").write_bytes(b"\x00\x00")
    with pytest.raises(DataError) as err:
        read_idx_labels(tmp_path / "x")
    assert str(err.value) == f"{tmp_path / 'x'}: too short for an IDX label header (2 bytes, need 8)"
    (tmp_path / "y.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"y.gz: cannot read"):
        read_idx_labels(tmp_path / "y.gz")


def test_labels_out_of_range_and_count_mismatch(tmp_path):
    write_labels(tmp_path / "l", [1, 12])
    with pytest.raises(DataError) as err:
        read_idx_labels(tmp_path / "l")
    assert str(err.value) == f"{tmp_path / 'l'}: label 12 found, labels must be 0-9"

    write_images(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28)))
    write_labels(tmp_path / "t10k-labels-idx1-ubyte.gz", [1, 2])
    with pytest.raises(DataError) as err:
        load_idx_pair(tmp_path, "test")
    assert str(err.value) == (
        f"{tmp_path / 't10k-labels-idx1-ubyte.gz'}: 2 labels but t10k-images-idx3-ubyte has 3 images"
    )


def test_missing_files_and_folder(tmp_path):
    with pytest.raises(DataError) as err:
        load_mnist(tmp_path)
    assert str(err.value) == (
        f"{tmp_path}: missing train-images-idx3-ubyte (or train-images-idx3-ubyte.gz); "
        "the folder must hold the four MNIST IDX files"
    )
    with pytest.raises(DataError, match="MNIST data folder does not exist"):
        load_mnist(tmp_path / "nope")


def test_cli_error_is_one_line(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from host.train import main; sys.exit(main())",
            "--data-dir",
            str(tmp_path),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "m.keras"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"host-train: {tmp_path}: missing train-images")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m.keras").exists()


def test_folder_dataset_reads_none_as_label_10(tmp_path, mnist_sample):
    """The user's own negatives (a none/ folder, as --save-crops writes it) are label 10 for model v2."""
    import cv2

    from host.data import NONE_LABEL_INDEX, load_folder

    (tmp_path / "3").mkdir()
    (tmp_path / "none").mkdir()
    cv2.imwrite(str(tmp_path / "3" / "a.png"), mnist_sample["test_images"][0])
    cv2.imwrite(str(tmp_path / "none" / "b.png"), np.eye(28, dtype=np.uint8) * 255)
    data = load_folder(tmp_path)
    assert sorted(data.labels.tolist()) == [3, NONE_LABEL_INDEX]
