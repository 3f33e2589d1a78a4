"""The seam: one protocol, the direct twin and the drivers + emulators, the same trajectory.

The emulated instruments are backed by the same twin (same preset, same seed) and apply the
same twin operations in the same order as the direct twin backend: the conductance trajectory
must agree to the emulated instrument's resolution (7 significant digits in its replies).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from hil.engine import RunEngine
from hil.station import load_station
from hil.store import Store
from tests.helpers import EXAMPLE, SMU_LIMITS, emulated, station_dict, twin_station

#: Resolution of the emulated instruments' replies: 7 significant digits.
RESOLUTION = 5e-7
#: The emulated twin's clock follows wall time, the direct twin's only its simulated operations:
#: programmed states drift towards Gmin by at most elapsed / tau (retention, tau = 1e7 s).
TAU_S = 1e7


def rtol(elapsed_s: float) -> float:
    """Agreement to expect: the instruments' resolution plus the drift over ``elapsed_s``."""
    return 2 * RESOLUTION + 2 * elapsed_s / TAU_S


PARAMS = {"cycles": 3, "pulses": 50}


def _emulated(store: Store, station) -> tuple[np.ndarray, float]:
    """The trajectory through drivers and emulators, and the wall time (s) it took."""
    t0 = time.perf_counter()
    outcome = RunEngine(store).run("potentiation-cycling", station, PARAMS, plot=False)
    assert outcome.status == "completed", outcome.error
    return _trajectory(store, outcome.run_id), time.perf_counter() - t0


def _trajectory(store: Store, run_id: int) -> np.ndarray:
    df = store.readings_df(run_id)
    df = df[df["kind"] == "potentiation"].sort_values(["cycle", "pulse"])
    return df["conductance_S"].to_numpy()


def _direct(tmp_path, seed: int, size: int | None = None) -> np.ndarray:
    """The trajectory on the direct twin: the built-in station, or one with a size x size array A."""
    station = (
        load_station(None)
        if size is None
        else twin_station(
            arrays=[{"name": "A", "rows": size, "cols": size, "diameter_m": 1e-6}],
            name="direct-twin",
            limits=SMU_LIMITS,
        )
    )
    with Store(tmp_path / "direct.sqlite") as store:
        outcome = RunEngine(store).run("potentiation-cycling", station, PARAMS, seed=seed, plot=False)
        assert outcome.status == "completed", outcome.error
        return _trajectory(store, outcome.run_id)


@pytest.mark.parametrize("stack,size", [("2600+707b", 32), ("b2900+e5250a", 16)])
def test_potentiation_cycling_same_trajectory_direct_and_emulated(tmp_path, stack, size):
    """Same station arrays, same seed: 2636B + 707B (array A as in the built-in twin station)
    and B2902A + E5250A (a 16 x 16 array: three E5252A cards have 36 outputs)."""
    seed = 7
    direct = _direct(tmp_path, seed, None if size == 32 else size)
    with (
        emulated(station_dict(stack, rows=size, cols=size), seed=seed) as bench,
        Store(tmp_path / "hw.sqlite") as store,
    ):
        through_drivers, elapsed = _emulated(store, bench.station)
    assert through_drivers.shape == direct.shape == (150,)
    np.testing.assert_allclose(through_drivers, direct, rtol=rtol(elapsed))
    # and the trajectory is a real one: potentiation from near Gmin towards Gmax in every cycle
    per_cycle = direct.reshape(3, 50)
    assert np.all(per_cycle[:, -1] > 3 * per_cycle[:, 0])


def test_seam_fails_for_a_different_seed(tmp_path):
    """The comparison can fail: another seed gives another trajectory."""
    direct = _direct(tmp_path, 7)
    with emulated(EXAMPLE, seed=8) as bench, Store(tmp_path / "hw.sqlite") as store:
        other, elapsed = _emulated(store, bench.station)
    assert not np.allclose(other, direct, rtol=100 * rtol(elapsed))


def test_example_station_gives_the_direct_trajectory(tmp_path):
    """The shipped example station (its routing, its 2636B + 707B) is on the seam too."""
    direct = _direct(tmp_path, 7)
    with emulated(EXAMPLE, seed=7) as bench, Store(tmp_path / "hw.sqlite") as store:
        through_drivers, elapsed = _emulated(store, bench.station)
    np.testing.assert_allclose(through_drivers, direct, rtol=rtol(elapsed))
