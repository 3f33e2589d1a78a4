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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[helpers.PostgresServer]:
    """One throwaway PostgreSQL server for the session (started on first use, stopped at the end);
    a test that needs it fails, it is not skipped, where the server binaries are missing."""
    with helpers.PostgresServer() as server:
        yield server


@pytest.fixture
def pg_url(postgres_server: helpers.PostgresServer) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server."""
    return postgres_server.create_database()

# --------------------------------------------------------------------------- one database, many processes
#: the database kinds the multi-process tests (concurrent writers, Dask cluster sweeps) run against
DATABASE_KINDS = ["sqlite", "postgresql"]


@pytest.fixture(params=DATABASE_KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database for one test, once per database kind, that several
    processes open at once.

    ``sqlite``: a file that does not exist yet (the first process to open it creates it);
    ``postgresql``: a new, empty database on the session's throwaway server.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.sqlite'}"
    elif request.param == "postgresql":
        server: helpers.PostgresServer = request.getfixturevalue("postgres_server")
        yield server.create_database("shared")
    else:
        raise AssertionError(f"db_url: no database of kind {request.param!r}")
