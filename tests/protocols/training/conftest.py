"""Fixtures shared by the training tests (the store is tests/conftest.py's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_tiny_mnist


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    """A tiny synthetic MNIST (120 training, 40 test images) in IDX files."""
    return str(write_tiny_mnist(tmp_path / "mnist", 120, 40))
