"""Write tests/data/mnist_sample.npz: a fixed, small, real MNIST subset for the test suite.

Usage: python -m tools.make_test_sample MNIST_DIR
4,000 training digits (for a quick real training run) and 1,000 test digits (never trained on), chosen with
a fixed seed from the official IDX files.
"""

import sys
from pathlib import Path

import numpy as np

from host.data import load_idx_pair

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    mnist_dir = Path(sys.argv[1])
    rng = np.random.default_rng(2024)
    train, test = load_idx_pair(mnist_dir, "train"), load_idx_pair(mnist_dir, "test")
    tr = np.sort(rng.choice(len(train), 4000, replace=False))
    te = np.sort(rng.choice(len(test), 1000, replace=False))
    out = ROOT / "tests" / "data" / "mnist_sample.npz"
    np.savez_compressed(
        out,
        train_images=train.images[tr],
        train_labels=train.labels[tr],
        train_index=tr,
        test_images=test.images[te],
        test_labels=test.labels[te],
        test_index=te,
    )
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
