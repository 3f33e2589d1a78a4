"""Helpers shared by protocols: parameter fields with units, cell selections, array checks, plots."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from pydantic import Field

from hil.errors import ConfigError
from hil.station import Station
from hil.types import ArraySpec, as_cells


def quantity(default: Any, unit: str, description: str, **constraints: Any) -> Any:
    """A parameter field carrying its unit (shown by ``rram-hil protocols`` and in error messages)."""
    return Field(default, description=description, json_schema_extra={"unit": unit}, **constraints)


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


def use_agg() -> Any:
    """matplotlib's pyplot on the non-interactive Agg backend (plots are files, not windows)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt
