"""SQLAlchemy 2.x models of the store. The schema is plain and documented in ``docs/schema.md``.

Nothing here is SQLite-specific: any SQLAlchemy URL works; SQLite is the default.
Column names carry units (``voltage_V``, ``current_A``, ``conductance_S``, ``t_s``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

RUN_STATUSES = ("running", "completed", "failed", "interrupted")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every table of the store (other modules may add tables to it)."""

    #: every model here is mapped to a plain :class:`Table` (DeclarativeBase types it as any FromClause)
    __table__: ClassVar[Table]


class Run(Base):
    """One execution of a protocol: what ran, with which parameters, where, and how it ended."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    protocol: Mapped[str] = mapped_column(String(64), index=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    station: Mapped[dict[str, Any]] = mapped_column(JSON)
    station_name: Mapped[str] = mapped_column(String(128))
    backend: Mapped[str] = mapped_column(String(32))
    backend_info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    package_version: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hostname: Mapped[str | None] = mapped_column(String(255), nullable=True)
    resumes: Mapped[int] = mapped_column(Integer, default=0)


class ReadingBlock(Base):
    """A batch of consecutive readings of one run (``hil.store.blocks``; the view ``readings`` has
    one row per reading). The numeric columns hold the value every reading of the block shares,
    NULL when they differ; ``data`` holds the readings, row-major JSON."""

    __tablename__ = "reading_blocks"
    __table_args__ = (Index("ix_reading_blocks_run_seq", "run_id", "seq_first", unique=True),)  # schema 0003

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    seq_first: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32), default="read")
    array: Mapped[str] = mapped_column(String(64))
    row: Mapped[int | None] = mapped_column(Integer, nullable=True)
    col: Mapped[int | None] = mapped_column(Integer, nullable=True)
    voltage_V: Mapped[float | None] = mapped_column(Float, nullable=True)
    current_A: Mapped[float | None] = mapped_column(Float, nullable=True)
    conductance_S: Mapped[float | None] = mapped_column(Float, nullable=True)
    t_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    cycle: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pulse: Mapped[int | None] = mapped_column(Integer, nullable=True)
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    has_null: Mapped[int] = mapped_column(Integer)
    has_value: Mapped[int] = mapped_column(Integer)
    data: Mapped[str] = mapped_column(Text)


class PulseBlock(Base):
    """A batch of consecutive pulse records of one run (view ``pulses``; as :class:`ReadingBlock`)."""

    __tablename__ = "pulse_blocks"
    __table_args__ = (Index("ix_pulse_blocks_run_seq", "run_id", "seq_first", unique=True),)  # schema 0003

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    seq_first: Mapped[int] = mapped_column(Integer)
    n: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(String(32), default="pulse")
    array: Mapped[str] = mapped_column(String(64))
    row: Mapped[int | None] = mapped_column(Integer, nullable=True)
    col: Mapped[int | None] = mapped_column(Integer, nullable=True)
    amplitude_V: Mapped[float | None] = mapped_column(Float, nullable=True)
    width_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    t_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    cycle: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pulse: Mapped[int | None] = mapped_column(Integer, nullable=True)
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    has_null: Mapped[int] = mapped_column(Integer)
    has_value: Mapped[int] = mapped_column(Integer)
    data: Mapped[str] = mapped_column(Text)


class Event(Base):
    """Settings and state changes of a run: compliance set, safe state, phase switch, resume, ..."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    t_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    kind: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Checkpoint(Base):
    """The last committed progress of a run, from which ``rram-hil resume`` continues."""

    __tablename__ = "checkpoints"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)


class Artifact(Base):
    """A file a run produced (a plot, a report)."""

    __tablename__ = "artifacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# ---------------------------------------------------------------------- training (hybrid-training)
class TrainingEpoch(Base):
    """One epoch of a training run: accuracies, loss, programming effort (committed per epoch).

    Epoch 0 is the network before training (phase ``init``). ``pulses``/``resets`` and the
    energy and time estimates count this epoch only; ``*_total`` columns would be sums over rows.
    """

    __tablename__ = "epochs"
    __table_args__ = (Index("ix_epochs_run_epoch", "run_id", "epoch", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(16))
    train_accuracy: Mapped[float] = mapped_column(Float)
    test_accuracy: Mapped[float] = mapped_column(Float)
    mse: Mapped[float] = mapped_column(Float)
    online_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    samples: Mapped[int] = mapped_column(Integer, default=0)
    pulses: Mapped[int] = mapped_column(Integer, default=0)
    resets: Mapped[int] = mapped_column(Integer, default=0)
    update_frequency: Mapped[float | None] = mapped_column(Float, nullable=True)
    energy_J: Mapped[float | None] = mapped_column(Float, nullable=True)
    update_time_parallel_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    update_time_serial_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    weight_error_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    switched: Mapped[bool] = mapped_column(Boolean, default=False)
    wall_s: Mapped[float] = mapped_column(Float, default=0.0)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EpochArray(Base):
    """Per-array programming statistics of one epoch (weight-update frequency, Fig. 4B)."""

    __tablename__ = "epoch_arrays"
    __table_args__ = (Index("ix_epoch_arrays_run_epoch", "run_id", "epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    array: Mapped[str] = mapped_column(String(64))
    program_calls: Mapped[int] = mapped_column(Integer, default=0)
    pulses: Mapped[int] = mapped_column(Integer, default=0)
    cells_programmed: Mapped[int] = mapped_column(Integer, default=0)
    update_frequency: Mapped[float] = mapped_column(Float, default=0.0)
    resets: Mapped[int] = mapped_column(Integer, default=0)
    energy_J: Mapped[float] = mapped_column(Float, default=0.0)
    update_time_parallel_s: Mapped[float] = mapped_column(Float, default=0.0)
    update_time_serial_s: Mapped[float] = mapped_column(Float, default=0.0)
    mean_conductance_S: Mapped[float | None] = mapped_column(Float, nullable=True)


class ArraySnapshot(Base):
    """A whole array's conductances (S) at the end of an epoch, as a compressed float32 ``.npz`` blob.

    ``kind`` is ``conductance`` (per epoch), or ``gmin``/``gmax`` (calibration, epoch -1).
    """

    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_run_epoch", "run_id", "epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    array: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="conductance")
    rows: Mapped[int] = mapped_column(Integer)
    cols: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class TrackedSynapse(Base):
    """Weight history of a tracked synapse (Fig. 4D-F): the weight and its big and small parts."""

    __tablename__ = "tracked_synapses"
    __table_args__ = (Index("ix_tracked_run", "run_id", "epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    sample: Mapped[int] = mapped_column(Integer)
    layer: Mapped[int] = mapped_column(Integer)
    row: Mapped[int] = mapped_column(Integer)
    col: Mapped[int] = mapped_column(Integer)
    weight: Mapped[float] = mapped_column(Float)
    weight_big: Mapped[float | None] = mapped_column(Float, nullable=True)
    weight_small: Mapped[float | None] = mapped_column(Float, nullable=True)


class WeightErrorBin(Base):
    """One bin of the per-epoch histogram of |W_target - W| of a layer (Fig. 5C-E)."""

    __tablename__ = "weight_errors"
    __table_args__ = (Index("ix_weight_errors_run", "run_id", "epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    layer: Mapped[int] = mapped_column(Integer)
    bin_lo: Mapped[float] = mapped_column(Float)
    bin_hi: Mapped[float] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)
