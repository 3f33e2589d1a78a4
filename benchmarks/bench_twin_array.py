"""Twin speed: one pulse plus one read of every cell of a 1024 x 1024 array.

The twin (the full device model: nonlinearity, cycle-to-cycle variability, stuck cells, retention
clock, read noise, through the backend interface and its safety layer) against the bare numpy
arithmetic of the same update (a Gaussian per cell for the step, the clip to the bounds, the
conductance and a Gaussian per cell for read noise): the floor for a vectorised model. The two
alternate, repeat by repeat, against drifting machine load; the best of each is compared. Last
line: ``twin_pulse_read_1024x1024_over_bare_numpy: RATIO x``.

    python benchmarks/bench_twin_array.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from hil.safety import SafeBackend, SafetyLimits
from hil.types import ArraySpec, Pulse
from sim_backend.preset import load_preset
from sim_backend.twin import TwinBackend

N = 1024


def interleaved(a: Callable[[], object], b: Callable[[], object], repeats: int) -> tuple[list[float], list[float]]:
    """Wall times (s) of ``a`` and ``b`` run alternately ``repeats`` times each, after one warm-up."""
    a(), b()
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(repeats):
        for fn, out in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return ta, tb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="repeats of each (default: 9)")
    args = parser.parse_args()
    preset = load_preset("mo_tiox_choi2021")
    spec = ArraySpec("big", N, N, ArraySpec.area_from_diameter(1e-6))
    twin = SafeBackend(TwinBackend([spec], preset, seed=0), SafetyLimits())
    pulse = Pulse(2.0, 100e-6)

    def twin_step() -> None:
        twin.pulse("big", None, pulse, 1)
        twin.read("big")

    rng = np.random.default_rng(0)
    x = np.zeros((N, N))
    g_lo = np.full((N, N), preset.g_min_S)
    span = np.full((N, N), preset.g_max_S - preset.g_min_S)
    sigma, n_states, noise = preset.c2c_sigma_over_mu, preset.n_states, preset.read_noise_rel

    def bare_step() -> None:
        nonlocal x
        x = np.clip(x + (1.0 + sigma * rng.standard_normal((N, N))) / n_states, 0.0, 1.0)
        g = g_lo + x * span
        _ = g * 0.5 * (1.0 + noise * rng.standard_normal((N, N)))

    times_twin, times_bare = interleaved(twin_step, bare_step, args.repeats)
    t_twin, m_twin = min(times_twin), statistics.median(times_twin)
    t_bare, m_bare = min(times_bare), statistics.median(times_bare)
    cells = N * N
    print(f"cells: {cells:,} (1024 x 1024), one pulse + one read of all")
    print(
        f"twin        : {t_twin * 1e3:7.1f} ms (median {m_twin * 1e3:.1f}) = {cells / t_twin / 1e6:.1f} M cells/s"
    )
    print(
        f"bare numpy  : {t_bare * 1e3:7.1f} ms (median {m_bare * 1e3:.1f}) = {cells / t_bare / 1e6:.1f} M cells/s"
    )
    print(f"twin_pulse_read_1024x1024_over_bare_numpy: {t_twin / t_bare:.2f} x")


if __name__ == "__main__":
    main()
