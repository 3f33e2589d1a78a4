"""Tiny MNIST-format data sets for training tests: easy, separable digits written as IDX files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from protocols.training.mnist import MNIST_FILES, write_idx


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28 x 28 uint8 images whose class c lights up rows 2c+3 .. 2c+5 (plus a little noise)."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    images = (rng.random((n, 28, 28)) < 0.03).astype(np.uint8) * 80
    for i, c in enumerate(labels):
        images[i, 2 * c + 3 : 2 * c + 6, 4:24] = 255
    return images, labels


def write_tiny_mnist(directory: Path, n_train: int = 200, n_test: int = 50, gz: bool = True) -> Path:
    """Write the four IDX files of a tiny synthetic MNIST into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    tr_x, tr_y = synthetic_digits(n_train, 1)
    te_x, te_y = synthetic_digits(n_test, 2)
    suffix = ".gz" if gz else ""
    write_idx(directory / (MNIST_FILES["train_images"] + suffix), tr_x)
    write_idx(directory / (MNIST_FILES["train_labels"] + suffix), tr_y)
    write_idx(directory / (MNIST_FILES["test_images"] + suffix), te_x)
    write_idx(directory / (MNIST_FILES["test_labels"] + suffix), te_y)
    return directory
