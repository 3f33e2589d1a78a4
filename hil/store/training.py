"""Store helpers for training runs: per-epoch metrics, array snapshots, tracked synapses and
weight-error histograms (tables in :mod:`hil.store.models`, documented in ``docs/schema.md``).

Everything an epoch produces is committed in ONE transaction together with the run's
checkpoint, so a run killed at any moment has either all of an epoch or none of it, and
``rram-hil resume RUN`` continues from the last epoch that is in the store.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, insert, select

from hil.store.database import Store
from hil.store.models import (
    ArraySnapshot,
    Checkpoint,
    EpochArray,
    TrackedSynapse,
    TrainingEpoch,
    WeightErrorBin,
    utcnow,
)


def encode_matrix(matrix: np.ndarray) -> bytes:
    """A 2-D array as a compressed ``.npz`` blob of float32 (the unit is the caller's, S here)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, g=np.asarray(matrix, dtype=np.float32))
    return buf.getvalue()


def decode_matrix(blob: bytes) -> np.ndarray:
    """The float64 array stored by :func:`encode_matrix`."""
    with np.load(io.BytesIO(blob)) as data:
        return data["g"].astype(np.float64)


@dataclass
class EpochRecord:
    """Everything one epoch commits.

    Attributes:
        epoch: row of the ``epochs`` table (column name -> value; ``run_id`` is filled in).
        arrays: rows of ``epoch_arrays``.
        snapshots: ``(array, kind) -> matrix`` (S) for ``snapshots``.
        tracked: rows of ``tracked_synapses``.
        weight_errors: rows of ``weight_errors``.
        checkpoint: the run's new checkpoint (replaces the old one), or None to keep it.
    """

    epoch: dict[str, Any]
    arrays: list[dict[str, Any]] = field(default_factory=list)
    snapshots: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    tracked: list[dict[str, Any]] = field(default_factory=list)
    weight_errors: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: dict[str, Any] | None = None


def commit_epoch(store: Store, run_id: int, record: EpochRecord) -> None:
    """Commit an epoch's rows, snapshots and the checkpoint in one transaction."""
    conn = store.conn
    epoch = int(record.epoch["epoch"])
    try:
        # an epoch is written once; a resumed run that repeats one replaces it
        for model in (TrainingEpoch, EpochArray, TrackedSynapse, WeightErrorBin):
            tab = model.__table__
            conn.execute(delete(tab).where(tab.c.run_id == run_id, tab.c.epoch == epoch))
        snaps = ArraySnapshot.__table__
        conn.execute(delete(snaps).where(snaps.c.run_id == run_id, snaps.c.epoch == epoch))
        conn.execute(insert(TrainingEpoch).values(run_id=run_id, **_plain(record.epoch)))
        if record.arrays:
            conn.execute(
                insert(EpochArray), [{"run_id": run_id, "epoch": epoch, **_plain(r)} for r in record.arrays]
            )
        if record.snapshots:
            conn.execute(
                insert(ArraySnapshot),
                [
                    {
                        "run_id": run_id,
                        "epoch": epoch,
                        "array": name,
                        "kind": kind,
                        "rows": int(m.shape[0]),
                        "cols": int(m.shape[1]),
                        "data": encode_matrix(m),
                    }
                    for (name, kind), m in record.snapshots.items()
                ],
            )
        if record.tracked:
            conn.execute(
                insert(TrackedSynapse),
                [{"run_id": run_id, "epoch": epoch, **_plain(r)} for r in record.tracked],
            )
        if record.weight_errors:
            conn.execute(
                insert(WeightErrorBin),
                [{"run_id": run_id, "epoch": epoch, **_plain(r)} for r in record.weight_errors],
            )
        if record.checkpoint is not None:
            ck = Checkpoint.__table__
            conn.execute(delete(ck).where(ck.c.run_id == run_id))
            conn.execute(
                insert(Checkpoint).values(run_id=run_id, state=dict(record.checkpoint), updated_at=utcnow())
            )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def save_snapshots(
    store: Store, run_id: int, epoch: int, snapshots: Mapping[tuple[str, str], np.ndarray]
) -> None:
    """Commit array snapshots outside an epoch record (calibration, epoch -1)."""
    conn = store.conn
    tab = ArraySnapshot.__table__
    try:
        for name, kind in snapshots:
            conn.execute(
                delete(tab).where(
                    tab.c.run_id == run_id, tab.c.epoch == epoch, tab.c.array == name, tab.c.kind == kind
                )
            )
        conn.execute(
            insert(ArraySnapshot),
            [
                {"run_id": run_id, "epoch": epoch, "array": name, "kind": kind, "rows": int(m.shape[0]),
                 "cols": int(m.shape[1]), "data": encode_matrix(m)}
                for (name, kind), m in snapshots.items()
            ],
        )  # fmt: skip
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def load_snapshot(
    store: Store, run_id: int, epoch: int, array: str, kind: str = "conductance"
) -> np.ndarray | None:
    """An array's snapshot (S), or None if there is none."""
    tab = ArraySnapshot.__table__
    row = store.conn.execute(
        select(tab.c.data).where(
            tab.c.run_id == run_id, tab.c.epoch == epoch, tab.c.array == array, tab.c.kind == kind
        )
    ).first()
    return None if row is None else decode_matrix(row[0])


def snapshot_index(store: Store, run_id: int) -> pd.DataFrame:
    """Which snapshots a run has: epoch, array, kind, rows, cols and blob size (bytes)."""
    from sqlalchemy import func

    tab = ArraySnapshot.__table__
    stmt = (
        select(
            tab.c.epoch,
            tab.c.array,
            tab.c.kind,
            tab.c.rows,
            tab.c.cols,
            func.length(tab.c.data).label("bytes"),
        )
        .where(tab.c.run_id == run_id)
        .order_by(tab.c.epoch, tab.c.array, tab.c.kind)
    )
    return pd.read_sql_query(stmt, store.conn)


def _table_df(store: Store, model: Any, run_id: int, order: Sequence[str]) -> pd.DataFrame:
    tab = model.__table__
    cols = [c for c in tab.c if c.name != "id"]
    stmt = select(*cols).where(tab.c.run_id == run_id).order_by(*(tab.c[o] for o in order))
    return pd.read_sql_query(stmt, store.conn)


def epochs_df(store: Store, run_id: int) -> pd.DataFrame:
    """The ``epochs`` rows of a run, in epoch order."""
    return _table_df(store, TrainingEpoch, run_id, ["epoch"])


def epoch_arrays_df(store: Store, run_id: int) -> pd.DataFrame:
    """The ``epoch_arrays`` rows of a run."""
    return _table_df(store, EpochArray, run_id, ["epoch", "array"])


def tracked_df(store: Store, run_id: int) -> pd.DataFrame:
    """The ``tracked_synapses`` rows of a run, in time order."""
    return _table_df(store, TrackedSynapse, run_id, ["epoch", "sample", "layer", "row", "col"])


def weight_errors_df(store: Store, run_id: int) -> pd.DataFrame:
    """The ``weight_errors`` histogram bins of a run."""
    return _table_df(store, WeightErrorBin, run_id, ["epoch", "layer", "bin_lo"])


def last_epoch(store: Store, run_id: int) -> int | None:
    """The last epoch committed for a run, or None."""
    tab = TrainingEpoch.__table__
    from sqlalchemy import func

    value = store.conn.execute(select(func.max(tab.c.epoch)).where(tab.c.run_id == run_id)).scalar()
    return None if value is None else int(value)


def _plain(row: Mapping[str, Any]) -> dict[str, Any]:
    """numpy scalars as Python values (portable across database drivers)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out
