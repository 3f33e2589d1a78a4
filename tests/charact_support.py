"""Stations and helpers shared by the characterisation tests (small sizes, fixed seeds)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hil.engine import RunEngine, RunOutcome
from hil.station import Station, parse_station
from hil.store import Store


def twin_station(
    overrides: dict[str, Any] | None = None,
    arrays: list[dict[str, Any]] | None = None,
    seed: int = 0,
    name: str = "test-twin",
    preset: str = "mo_tiox_choi2021",
) -> Station:
    """A twin station with the given preset overrides and arrays (default: one 8 x 8 array A)."""
    return parse_station(
        {
            "name": name,
            "backend": "twin",
            "twin": {"preset": preset, "overrides": overrides or {}, "seed": seed},
            "arrays": arrays or [{"name": "A", "rows": 8, "cols": 8, "diameter_m": 1e-6}],
        }
    )


def run(store: Store, protocol: str, station: Station, **params: Any) -> RunOutcome:
    """Run a protocol without a plot and insist that it completed."""
    outcome = RunEngine(store).run(protocol, station, params, plot=False)
    assert outcome.status == "completed", outcome.error
    return outcome


def new_store(tmp_path: Path, name: str = "runs.sqlite") -> Store:
    return Store(tmp_path / name)
