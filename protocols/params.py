"""Parameter building blocks of protocols: fields with units, the fields several protocols share
(read voltage, strong reset), and the cell and array selections parameters name.

The shared fields are functions returning a pydantic field, not mixin classes: pydantic lists a
base class's fields before a subclass's own, so a mixin would move its fields to the top of every
model, changing the order ``rram-hil protocols`` lists them in and the key order of stored
parameters. A protocol writes each shared field where it always stood, with its own description.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from pydantic import Field

from hil.errors import ConfigError
from hil.station import Station
from hil.types import DEFAULT_READ_VOLTAGE_V, ArraySpec, as_cells


def quantity(default: Any, unit: str, description: str, **constraints: Any) -> Any:
    """A parameter field carrying its unit (shown by ``rram-hil protocols`` and in error messages)."""
    return Field(default, description=description, json_schema_extra={"unit": unit}, **constraints)


def read_voltage(description: str = "read voltage") -> Any:
    """A read-voltage field (V): default :data:`~hil.types.DEFAULT_READ_VOLTAGE_V` (0.5 V), 0 < V <= 5 V."""
    return quantity(DEFAULT_READ_VOLTAGE_V, "V", description, gt=0, le=5)


def reset_amplitude(description: str = "strong-reset pulse amplitude (negative)") -> Any:
    """The amplitude field (V) of the strong-reset pulses: default -4 V, -20 <= V < 0."""
    return quantity(-4.0, "V", description, ge=-20, lt=0)


def reset_width(description: str = "strong-reset pulse width") -> Any:
    """The width field (s) of the strong-reset pulses: default 100 us, 0 < width <= 1 s."""
    return quantity(100e-6, "s", description, gt=0, le=1)


def reset_pulse_count(description: str = "pulses in the strong-reset train") -> Any:
    """The field counting the pulses of the strong-reset train: default 5, 1 to 10000."""
    return quantity(5, "", description, ge=1, le=10_000)


def station_array(station: Station, name: str, parameter: str = "array") -> ArraySpec:
    """The station's array ``name``, or a clear error listing the arrays it has."""
    for a in station.arrays:
        if a.name == name:
            return a.spec()
    names = ", ".join(a.name for a in station.arrays)
    raise ConfigError(f"{parameter}: '{name}' is not an array of station '{station.name}' (arrays: {names})")


_RANGE = re.compile(r"^\s*(\d+)\s*(?::\s*(\d+))?\s*$")


def _index_range(text: str, n: int, what: str, source: str) -> np.ndarray:
    if text.strip() in ("", "*", ":"):
        return np.arange(n)
    m = _RANGE.match(text)
    if not m:
        raise ConfigError(f"cells: '{source}' has a bad {what} '{text}' (use N or START:STOP)")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) is not None else lo + 1
    if not (0 <= lo < hi <= n):
        raise ConfigError(f"cells: {what} range '{text}' in '{source}' must lie within 0..{n - 1}")
    return np.arange(lo, hi)


def parse_cells(text: str, spec: ArraySpec) -> np.ndarray:
    """Cells from text: ``all``, ``R,C``, ``R,C;R,C``, or ranges ``R0:R1,C0:C1`` (stop exclusive).

    Returns an ``(n, 2)`` int array in the order given (ranges row-major).
    """
    source = text.strip()
    if source.lower() in ("all", "*"):
        return as_cells(None, spec)
    cells: list[np.ndarray] = []
    for part in source.split(";"):
        part = part.strip()
        if not part:
            continue
        if part.count(",") != 1:
            raise ConfigError(
                f"cells: '{part}' is not 'ROW,COL' (ranges as START:STOP; several joined by ';')"
            )
        r_text, c_text = part.split(",")
        rows = _index_range(r_text, spec.rows, "row", part)
        cols = _index_range(c_text, spec.cols, "col", part)
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        cells.append(np.stack([rr.ravel(), cc.ravel()], axis=1))
    if not cells:
        raise ConfigError("cells: no cells given")
    out = np.concatenate(cells)
    try:
        return as_cells(out, spec)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def selected_arrays(text: str, station: Station, parameter: str = "arrays") -> list[str]:
    """Array names from a comma-separated list (``all``: every array of the station)."""
    if text.strip().lower() == "all":
        return [a.name for a in station.arrays]
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"{parameter}: give at least one array name, or 'all'")
    for name in names:
        station_array(station, name, parameter)
    return names
