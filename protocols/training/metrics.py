"""What a training epoch measures and records, besides accuracy and MSE.

- :class:`EpochCounters`: what the samples of one epoch count (correct online predictions,
  resets, the tracked synapses' weights, the ``|W_target - W|`` sums);
- :func:`tracked_arrays`, :func:`tracked_float`: the weight-history points of the tracked
  synapses of the last layer (read from the arrays, or the float weights);
- :func:`array_figures`: per array the epoch's programming effort (calls, pulses, cells,
  update frequency, resets, energy, update time) and mean conductance, with a conductance
  snapshot of every array, and their totals for the ``epochs`` row;
- :func:`weight_error_rows`: the histogram of the mean ``|W_target - W|`` of the last layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocols.training.devices import ArrayNetwork
from protocols.training.float_network import FloatNetwork

#: Bin edges of the |W_target - W| histogram (weight units): 0, then 36 log-spaced edges 1e-6..10.
WEIGHT_ERROR_EDGES = np.concatenate([[0.0], np.logspace(-6, 1, 36)])


@dataclass
class EpochCounters:
    """What the samples of one epoch count.

    Attributes:
        samples: training samples seen.
        correct: of those, predicted correctly before their update (online accuracy).
        track_rows: weight-history points of the tracked synapses (``tracked_synapses`` rows).
        werr_sum: sum of the measured ``|W_target - W|`` matrices of the last layer.
        werr_n: measurements in ``werr_sum``.
        resets: pairs strongly reset.
    """

    samples: int = 0
    correct: int = 0
    track_rows: list[dict[str, Any]] = field(default_factory=list)
    werr_sum: np.ndarray | None = None
    werr_n: int = 0
    resets: int = 0


def tracked_arrays(net: ArrayNetwork, tracked: np.ndarray, sample: int) -> list[dict[str, Any]]:
    """The tracked cells ``(row, col)`` of the last layer read from its arrays: the weight, and its
    big (G) and small (g) parts."""
    lay = net.layers[-1]
    parts = {
        kind: net.backend.read(name, tracked, net.p.read_voltage_V).conductance_S
        for kind, name in lay.names.items()
    }
    big = lay.alpha * (parts["Gp"] - parts["Gm"])
    small = lay.alpha * (parts["gp"] - parts["gm"]) if "gp" in parts else None
    return [
        {
            "sample": sample,
            "layer": lay.index,
            "row": int(r),
            "col": int(c),
            "weight": float(big[i] + (small[i] if small is not None else 0.0)),
            "weight_big": float(big[i]),
            "weight_small": None if small is None else float(small[i]),
        }
        for i, (r, c) in enumerate(tracked)
    ]


def tracked_float(fnet: FloatNetwork, tracked: np.ndarray, sample: int) -> list[dict[str, Any]]:
    """The tracked cells ``(row, col)`` of the last layer of the float network."""
    w = fnet.w[-1]
    return [
        {
            "sample": sample,
            "layer": len(fnet.w),
            "row": int(r),
            "col": int(c),
            "weight": float(w[r, c]),
            "weight_big": None,
            "weight_small": None,
        }
        for r, c in tracked
    ]


def array_figures(
    net: ArrayNetwork, samples: int
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], np.ndarray], dict[str, Any]]:
    """Read every array once (updating its mean conductance) and return the ``epoch_arrays`` rows,
    the conductance snapshots and the epoch totals (pulses, energy, update times, update frequency:
    cells programmed per synapse and sample)."""
    rows: list[dict[str, Any]] = []
    snaps: dict[tuple[str, str], np.ndarray] = {}
    cells_total = 0
    for lay in net.layers:
        for kind, name in lay.names.items():
            g = net.read(name)
            lay.g_mean[kind] = float(g.mean())
            snaps[(name, "conductance")] = g
            st = net.stats[name]
            size = lay.rows * lay.cols
            cells_total += size
            rows.append({
                "array": name, "program_calls": st.calls, "pulses": st.pulses,
                "cells_programmed": st.cells, "update_frequency": st.cells / (size * samples) if samples else 0.0,
                "resets": st.resets, "energy_J": st.energy_J, "update_time_parallel_s": st.time_parallel_s,
                "update_time_serial_s": st.time_serial_s, "mean_conductance_S": lay.g_mean[kind],
            })  # fmt: skip
    stats = list(net.stats.values())
    synapses = cells_total / len(net.layers[0].names)
    updated = sum(a["cells_programmed"] for a in rows)
    totals = {
        "pulses": int(sum(s.pulses for s in stats)),
        "energy_J": float(sum(s.energy_J for s in stats)),
        "update_time_parallel_s": float(sum(s.time_parallel_s for s in stats)),
        "update_time_serial_s": float(sum(s.time_serial_s for s in stats)),
        "update_frequency": updated / (synapses * samples) if samples else 0.0,
    }
    return rows, snaps, totals


def weight_error_rows(layer: int, werr_sum: np.ndarray, werr_n: int) -> tuple[float, list[dict[str, Any]]]:
    """The mean ``|W_target - W|`` of ``layer`` over its ``werr_n`` measurements and its histogram
    (``weight_errors`` rows; errors beyond the last edge count in the last bin)."""
    mean_err = werr_sum / werr_n
    edges = WEIGHT_ERROR_EDGES
    hist, _ = np.histogram(np.clip(mean_err, 0, edges[-1]), bins=edges)
    rows = [
        {"layer": layer, "bin_lo": float(lo), "bin_hi": float(hi), "count": int(c)}
        for lo, hi, c in zip(edges[:-1], edges[1:], hist, strict=True)
    ]
    return float(mean_err.mean()), rows
