"""Shared fixtures (built on :mod:`tests.helpers`): twin backends with chosen physics, a fresh store per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from hil.store import Store
from sim_backend.preset import DevicePreset, load_preset
from sim_backend.twin import TwinBackend
from tests import helpers


@pytest.fixture
def preset() -> DevicePreset:
    return load_preset(helpers.PRESET)


@pytest.fixture
def make_twin(preset: DevicePreset) -> Callable[..., TwinBackend]:
    """:func:`tests.helpers.make_twin` on this test's preset: ``make_twin(arrays, seed, **overrides)``."""
    return partial(helpers.make_twin, preset=preset)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = helpers.new_store(tmp_path, "test.sqlite")
    yield s
    s.close()
