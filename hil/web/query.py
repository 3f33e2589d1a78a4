"""A run's readings after a given ``seq``, only the columns asked for, as numpy arrays: what the
live plots push (:meth:`hil.store.Store.readings_after`, which reads only the blocks that hold
new readings, never the whole run through the ``readings`` view).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hil.store import READING_COLUMNS, Store

_NUMERIC = {"seq", "row", "col", "voltage_V", "current_A", "conductance_S", "t_s", "cycle", "pulse", "step"}


def readings_after(
    store: Store,
    run_id: int,
    after_seq: int,
    columns: Sequence[str],
    kinds: Sequence[str] | None = None,
    limit: int | None = None,
) -> dict[str, np.ndarray]:
    """The readings of ``run_id`` with ``seq > after_seq`` (``-1``: all), in ``seq`` order.

    Returns one array per name in ``columns`` plus ``seq`` (always). Numeric columns are
    ``float64`` (a null is NaN), ``kind``/``array`` are object arrays. ``kinds`` keeps only those
    reading kinds; ``limit`` caps the rows (the caller asks again from the last ``seq``).
    """
    names = ["seq", *(c for c in columns if c != "seq")]
    unknown = [c for c in names if c not in READING_COLUMNS]
    if unknown:
        raise ValueError(f"readings: unknown columns {unknown} (known: {', '.join(READING_COLUMNS)})")
    # the read transaction ends after it: the next call sees what other processes committed since
    frame = store.readings_after(run_id, after_seq, limit, kinds)
    store.conn.rollback()
    return arrays(frame, names)


def readings_sample(
    store: Store, run_id: int, readings: int, blocks_at_most: int, columns: Sequence[str],
    kinds: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """:meth:`hil.store.Store.readings_sample` as :func:`readings_after` gives readings."""
    names = ["seq", *(c for c in columns if c != "seq")]
    frame = store.readings_sample(run_id, readings, blocks_at_most, kinds)
    store.conn.rollback()
    return arrays(frame, names)


def arrays(frame: pd.DataFrame, names: Sequence[str]) -> dict[str, np.ndarray]:
    """One numpy array per column of ``names``: numeric ones ``float64`` (NULL: NaN), text ``object``."""
    unknown = [c for c in names if c not in READING_COLUMNS]
    if unknown:
        raise ValueError(f"readings: unknown columns {unknown} (known: {', '.join(READING_COLUMNS)})")
    out: dict[str, np.ndarray] = {}
    for c in names:
        col = frame[c]
        if c in _NUMERIC:
            out[c] = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            out[c] = col.to_numpy(dtype=object)
    return out
