"""The one read the web application adds to the store's public API: a run's readings after a
given ``seq``, only the columns asked for, as numpy arrays.

Live plots need "what is new since the last push" and the first view of a large run needs a few
columns of every reading without building a 13-column DataFrame; neither is a public
:class:`~hil.store.Store` method. This query names the ``readings`` relation and its public
columns (:data:`hil.store.READING_COLUMNS`) only, so it reads a ``readings`` table and a
``readings`` view alike; everything else the application shows comes through the store's own methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import column, select, table

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
    rel = table("readings", *(column(c) for c in {*names, "run_id", "kind"}))
    stmt = select(*(rel.c[c] for c in names)).where(rel.c.run_id == run_id, rel.c.seq > after_seq)
    if kinds is not None:
        stmt = stmt.where(rel.c.kind.in_(list(kinds)))
    stmt = stmt.order_by(rel.c.seq)
    if limit is not None:
        stmt = stmt.limit(limit)
    compiled = stmt.compile(dialect=store.engine.dialect, compile_kwargs={"render_postcompile": True})
    bound = compiled.construct_params()
    params: Any = (
        tuple(bound[k] for k in compiled.positiontup)
        if compiled.positional and compiled.positiontup
        else bound
    )
    raw = store.conn.connection  # the DBAPI connection: rows as plain tuples, no Row objects
    cursor = raw.cursor()
    try:
        cursor.execute(str(compiled), params)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    store.conn.rollback()  # end the read transaction: the next call sees newer commits (SQLite WAL)
    numeric = [c for c in names if c in _NUMERIC]
    out: dict[str, np.ndarray] = {}
    if not rows:
        for c in names:
            out[c] = np.empty(0, dtype=np.float64 if c in _NUMERIC else object)
        return out
    if len(numeric) == len(names):  # one conversion of the whole block (None becomes NaN)
        block = np.array(rows, dtype=np.float64)
        return {c: block[:, i] for i, c in enumerate(names)}
    for i, c in enumerate(names):
        values = [r[i] for r in rows]
        out[c] = np.array(values, dtype=np.float64 if c in _NUMERIC else object)
    return out
