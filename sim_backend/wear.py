"""Endurance of the twin's devices: wear accumulates with switching until a device fails.

Model (off unless the preset sets ``endurance_cycles``): every device carries a wear counter, the
accumulated change of its stored normalised state ``sum |x' - x|`` over its programming
operations, so one full switching cycle (Gmin -> Gmax -> Gmin) adds 2. Each device draws its endurance at fabrication, a log-normal
number of full cycles with median ``endurance_cycles`` and log-sigma ``endurance_sigma``. When its
wear reaches ``2 * endurance``, the device fails: it sticks at the state it has reached (a device
failing after a set train sticks near Gmax, after a reset near Gmin), as the stuck-at faults of
worn-out filamentary and interfacial cells do. Stuck cells then never switch again.

The draws come from the array's fabrication stream *after* every other fabrication draw, so
turning endurance on leaves device-to-device spread and the stuck pattern unchanged.
:class:`WearingTwinArray` adds the counter to :class:`~sim_backend.array_model.TwinArray` without
changing its physics; :func:`sim_backend.devices.make_array` uses it when the preset sets
``endurance_cycles``.
"""

from __future__ import annotations

import numpy as np

from hil.types import ArraySpec
from sim_backend.array_model import FlatIndex, TwinArray, _streams
from sim_backend.preset import DevicePreset


def draw_endurance(
    fab: np.random.Generator, shape: tuple[int, int], preset: DevicePreset
) -> np.ndarray | None:
    """Per-device endurance in wear units (2 per full cycle), or ``None`` when the preset has none."""
    if preset.endurance_cycles is None:
        return None
    z = fab.standard_normal(shape)
    return 2.0 * preset.endurance_cycles * np.exp(preset.endurance_sigma * z)


def accumulate(
    wear: np.ndarray,
    endurance: np.ndarray,
    stuck: np.ndarray,
    stuck_x: np.ndarray,
    idx: np.ndarray | None,
    x_old: np.ndarray,
    x_new: np.ndarray,
) -> None:
    """Add ``|x_new - x_old|`` to the wear of the cells ``idx`` (flat; ``None``: all) in place, and
    mark the cells whose wear reached their endurance stuck at ``x_new``."""
    flat_wear = wear.reshape(-1)
    sel = slice(None) if idx is None else idx
    worn = flat_wear[sel] + np.abs(x_new - x_old)
    flat_wear[sel] = worn
    failing = worn >= endurance.reshape(-1)[sel]
    if not failing.any():
        return
    flat_stuck = stuck.reshape(-1)
    flat_stuck_x = stuck_x.reshape(-1)
    cells = np.flatnonzero(failing) if idx is None else idx[failing]
    newly = ~flat_stuck[cells]
    flat_stuck_x[cells[newly]] = x_new[failing][newly]
    flat_stuck[cells] = True


class WearingTwinArray(TwinArray):
    """A :class:`TwinArray` whose devices wear out (see the module docstring)."""

    def __init__(self, spec: ArraySpec, preset: DevicePreset, seed: int = 0) -> None:
        super().__init__(spec, preset, seed)
        # the fabrication stream again, advanced past the four draws TwinArray made from it
        fab, _, _ = _streams(seed, spec.name)
        for _ in range(2):
            fab.standard_normal(spec.shape)
        for _ in range(2):
            fab.random(spec.shape)
        endurance = draw_endurance(fab, spec.shape, preset)
        if endurance is None:
            raise ValueError(f"preset '{preset.name}' has no endurance_cycles")
        self.endurance: np.ndarray = endurance
        self.wear = np.zeros(spec.shape)

    def apply_pulses(
        self, idx: FlatIndex, amplitude_V: float, width_s: float, count: np.ndarray | int, t: float
    ) -> None:
        before = self._flat(self.x, idx).copy()
        super().apply_pulses(idx, amplitude_V, width_s, count, t)
        after = self._flat(self.x, idx)
        accumulate(self.wear, self.endurance, self.stuck, self.stuck_x, idx, before, after)
