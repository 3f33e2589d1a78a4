"""Fixtures of the web application's tests: a database with runs, the app, a signed-in client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hil.engine import RunEngine
from hil.station import load_station
from hil.store import Store
from hil.web.app import Settings, create_app
from hil.web.security import COOKIE, csrf_value

TOKEN = "test-token-0123456789abcdef"
ORIGIN = "http://testserver"


@pytest.fixture(scope="module")
def web_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A database with a small potentiation run (and its plot) and an I-V sweep; the artifact folder."""
    root = tmp_path_factory.mktemp("web")
    db, plots = root / "lab.sqlite", root / "rram-hil-plots"
    station = load_station(None)
    with Store(db) as store:
        engine = RunEngine(store, plot_dir=plots)
        engine.run("potentiation-cycling", station, {"cycles": 3, "pulses": 10, "cells": "0,0;0,1;1,0;1,1"})
        engine.run("iv-sweep", station, {})
    return db, plots


@pytest.fixture
def settings(web_db: tuple[Path, Path]) -> Settings:
    db, plots = web_db
    return Settings(db=str(db), station=load_station(None), station_file=None, token=TOKEN,
                    loopback=True, artifact_dir=plots)  # fmt: skip


@pytest.fixture
def make_client(settings: Settings) -> Iterator[Callable[..., TestClient]]:
    made: list[TestClient] = []

    def make(signed_in: bool = False, **changes: Any) -> TestClient:
        client = TestClient(create_app(replace(settings, **changes)))
        client.__enter__()
        if signed_in:
            client.cookies.set(COOKIE, TOKEN)
        made.append(client)
        return client

    yield make
    for c in made:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def signed_in(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(signed_in=True)


def control_headers() -> dict[str, str]:
    """What the server's own page sends with a form: its Origin."""
    return {"origin": ORIGIN, "accept": "application/json"}


def csrf() -> dict[str, str]:
    return {"csrf": csrf_value(TOKEN)}
