"""What a run's page plots, and how it is kept small: per-protocol plot specs, the decimated
overview of a run, and the deltas pushed while it runs.

A plot is one of four modes:

- ``mean``: readings grouped by ``(series, group)``; each group is one point at the mean of ``x``
  and ``y``. Potentiation trains (series = cycle, group = pulse: cycles overlaid, the mean over the
  cells), retention (group = read step, x = time since the first reading, log axis), endurance,
  read disturb, and any other protocol (series = kind, group = a bucket of ``seq``). The server
  sends ``[series, group, x_sum, y_sum, count]`` rows; the browser adds them up, so a delta is
  merged without resending a point and a group split across two commits is still one point.
- ``raw``: one point per reading (I-V sweeps: current against voltage per cycle), strided to at
  most :data:`RAW_POINTS` points in the overview.
- ``heatmap``: the last conductance of each cell (conductance maps).
- ``epochs``: accuracy, MSE and update frequency per epoch of a training run (``epochs`` table).

The first view of a large run is a sample (:meth:`hil.store.Store.readings_sample`): the first
readings of up to :data:`SAMPLE_BLOCKS` evenly spaced blocks, :data:`SAMPLE_READINGS` in all (4 %
of a 1.5 M-reading run; two queries, only the head of each block's data read, a fraction of a
second), marked ``sampled``; the exact aggregate follows, then the live deltas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hil.store import Store
from hil.web.query import readings_after, readings_sample

#: runs with more readings than this get a sampled first view, then the exact one
SAMPLE_ABOVE = 200_000
#: a sampled view: the head of at most this many evenly spaced blocks of readings ...
SAMPLE_BLOCKS = 200
#: ... about this many readings in all
SAMPLE_READINGS = 60_000
#: most points of a raw plot's overview (it is strided above that)
RAW_POINTS = 20_000
#: most groups of the default view's seq buckets
SEQ_BUCKETS = 2_000
#: readings read per query while catching up (the live loop asks again from the last seq)
CHUNK_ROWS = 250_000


@dataclass(frozen=True)
class PlotSpec:
    """How a protocol's readings are drawn (see the module docstring)."""

    mode: str
    title: str
    xlabel: str
    ylabel: str
    series: str = "kind"
    group: str = "seq"
    x: str = "seq"
    y: str = "conductance_S"
    kinds: tuple[str, ...] | None = None
    y_scale: float = 1e6
    x_offset: float = 0.0
    xlog: bool = False
    relative_time: bool = False
    seq_buckets: bool = False

    def columns(self) -> list[str]:
        return sorted({self.series, self.group, self.x, self.y} - {"kind"}) + (
            ["kind"] if "kind" in (self.series, self.group) else []
        )

    def public(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "title": self.title,
            "xlabel": self.xlabel,
            "ylabel": self.ylabel,
            "xlog": self.xlog,
            "y_scale": self.y_scale,
            "x_offset": self.x_offset,
        }


G_UNIT = "conductance G (uS)"
_DEFAULT = PlotSpec("mean", "conductance of every reading (mean per seq bucket)", "reading (seq)", G_UNIT,
                    seq_buckets=True)  # fmt: skip
SPECS: dict[str, PlotSpec] = {
    "potentiation-cycling": PlotSpec(
        "mean", "potentiation trains: G against pulse, cycles overlaid (mean of the cells)",
        "pulse in cycle", G_UNIT, series="cycle", group="pulse", x="pulse", kinds=("potentiation",),
        x_offset=1.0,
    ),
    "pulse-response": PlotSpec(
        "mean", "pulse response: G against pulse per train (mean of the cells)", "pulse in train", G_UNIT,
        series="cycle", group="pulse", x="pulse", x_offset=1.0,
    ),
    "endurance": PlotSpec("mean", "endurance: set and reset G per cycle (mean of the cells)", "cycle", G_UNIT,
                          series="kind", group="cycle", x="cycle"),
    "retention": PlotSpec(
        "mean", "retention: G against time since the first reading (log time)", "time (s)", G_UNIT,
        series="kind", group="step", x="t_s", kinds=("retention",), xlog=True, relative_time=True,
    ),
    "read-disturb": PlotSpec("mean", "read disturb: G per read step (mean of the cells)", "read step", G_UNIT,
                             series="kind", group="step", x="step"),
    "iv-sweep": PlotSpec("raw", "I-V sweeps: current against voltage per cycle", "voltage (V)", "current (uA)",
                         series="cycle", x="voltage_V", y="current_A", kinds=("iv",)),
    "dc-iv": PlotSpec("raw", "DC I-V: current against voltage per cycle", "voltage (V)", "current (uA)",
                      series="cycle", x="voltage_V", y="current_A", kinds=("iv",)),
    "forming": PlotSpec("raw", "forming ramp: current against voltage", "voltage (V)", "current (uA)",
                        series="kind", x="voltage_V", y="current_A", kinds=("forming",)),
    "conductance-map": PlotSpec("heatmap", "conductance map (last read of each cell)", "column", "row",
                                kinds=("map",)),
    "hybrid-training": PlotSpec("epochs", "training: accuracy, MSE and update frequency per epoch", "epoch",
                                "accuracy / MSE / update frequency"),
}  # fmt: skip


def spec_for(protocol: str) -> PlotSpec:
    return SPECS.get(protocol, _DEFAULT)


@dataclass
class LiveState:
    """What one browser has been sent of one run: the last ``seq`` and how groups are keyed."""

    run_id: int
    spec: PlotSpec
    seq: int = -1
    bucket: int = 1
    t0: float | None = None
    epochs: int = 0
    status: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _groups(spec: PlotSpec, data: dict[str, np.ndarray], state: LiveState) -> list[list[Any]]:
    """``[series, group, x_sum, y_sum, count]`` rows of the readings in ``data``."""
    if len(data["seq"]) == 0:
        return []
    series = data[spec.series]
    group = data[spec.group]
    if spec.seq_buckets:
        group = np.floor_divide(group, state.bucket)
    x = data[spec.x]
    if spec.relative_time:
        if state.t0 is None:
            state.t0 = float(np.nanmin(x))
        x = x - state.t0
    frame = pd.DataFrame({"s": series, "g": group, "x": x, "y": data[spec.y]}).dropna(subset=["y"])
    if frame.empty:
        return []
    agg = frame.groupby(["s", "g"], sort=True).agg(x=("x", "sum"), y=("y", "sum"), n=("y", "size"))
    return [[_key(s), _num(g), _num(xs), _num(ys), int(n)] for (s, g), xs, ys, n in
            zip(agg.index, agg["x"], agg["y"], agg["n"], strict=True)]  # fmt: skip


def _raw(spec: PlotSpec, data: dict[str, np.ndarray], stride: int = 1) -> list[list[Any]]:
    n = len(data["seq"])
    idx = np.arange(0, n, stride)
    s, x, y = data[spec.series][idx], data[spec.x][idx], data[spec.y][idx]
    return [[_key(a), _num(b), _num(c)] for a, b, c in zip(s, x, y, strict=True) if c == c]


def _cells(data: dict[str, np.ndarray]) -> list[list[Any]]:
    return [[int(r), int(c), _num(g)] for r, c, g in
            zip(data["row"], data["col"], data["conductance_S"], strict=True) if g == g]  # fmt: skip


def _key(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else int(value) if float(value).is_integer() else float(value)
    return str(value)


def _num(value: Any) -> float | None:
    v = float(value)
    return v if math.isfinite(v) else None


def _fetch(store: Store, state: LiveState, after: int, limit: int | None) -> dict[str, np.ndarray]:
    spec = state.spec
    cols = ["row", "col", "conductance_S"] if spec.mode == "heatmap" else spec.columns()
    return readings_after(store, state.run_id, after, cols, spec.kinds, limit)


def _payload(state: LiveState, data: dict[str, np.ndarray], stride: int = 1) -> dict[str, Any]:
    spec = state.spec
    if spec.mode == "raw":
        return {"points": _raw(spec, data, stride)}
    if spec.mode == "heatmap":
        return {"cells": _cells(data)}
    return {"groups": _groups(spec, data, state)}


def _epochs(store: Store, run_id: int) -> list[dict[str, Any]]:
    from hil.store.training import epochs_df

    store.conn.rollback()
    df = epochs_df(store, run_id)
    keep = [c for c in ("epoch", "phase", "train_accuracy", "test_accuracy", "mse", "update_frequency")
            if c in df.columns]  # fmt: skip
    rows = df[keep].to_dict("records")
    store.conn.rollback()
    return [{k: (_num(v) if isinstance(v, float | int | np.number) else v) for k, v in r.items()} for r in rows]


def _head(store: Store, state: LiveState) -> dict[str, Any]:
    """Status and reading count of the run as committed now."""
    store.conn.rollback()  # a fresh snapshot: what other processes committed since
    info = store.run(state.run_id)
    readings = store.count_readings(state.run_id)
    store.conn.rollback()
    state.status = info.status
    return {"status": info.status, "error": info.error, "readings": readings}


def _time_zero(store: Store, state: LiveState) -> None:
    """Time zero of a relative-time plot: the run's first reading of any kind (a retention run's
    baseline read, just after programming), so the first retention point is not at t = 0."""
    if state.spec.relative_time:
        first = readings_after(store, state.run_id, -1, ["t_s"], limit=1)["t_s"]
        state.t0 = float(first[0]) if len(first) and first[0] == first[0] else None


def sampled_view(store: Store, state: LiveState) -> dict[str, Any] | None:
    """A quick first view of a large run from evenly spaced windows of readings; ``None`` when
    the run is small enough to show exactly at once (or the plot is of epochs)."""
    if state.spec.mode == "epochs":
        return None
    head = _head(store, state)
    if head["readings"] <= SAMPLE_ABOVE:
        return None
    last = store.max_seq(state.run_id)
    store.conn.rollback()
    if state.spec.seq_buckets:
        state.bucket = max(1, math.ceil((last + 1) / SEQ_BUCKETS))
    spec = state.spec
    cols = ["row", "col", "conductance_S"] if spec.mode == "heatmap" else spec.columns()
    data = readings_sample(store, state.run_id, SAMPLE_READINGS, SAMPLE_BLOCKS, cols, spec.kinds)
    _time_zero(store, state)
    stride = max(1, math.ceil(len(data["seq"]) / RAW_POINTS))
    body = _payload(state, data, stride)
    return {"type": "reset", "sampled": True, "sampled_readings": int(len(data["seq"])),
            "spec": state.spec.public(), **head, **body}  # fmt: skip


def full_view(store: Store, state: LiveState) -> dict[str, Any]:
    """The exact view of everything committed so far; sets ``state.seq`` to the last reading read."""
    spec = state.spec
    head = _head(store, state)
    if spec.mode == "epochs":
        rows = _epochs(store, state.run_id)
        state.epochs = len(rows)
        return {"type": "reset", "sampled": False, "spec": spec.public(), "epochs": rows, **head}
    if spec.seq_buckets:
        last = store.max_seq(state.run_id)
        store.conn.rollback()
        state.bucket = max(1, math.ceil((last + 1) / SEQ_BUCKETS))
    _time_zero(store, state)
    chunks: list[dict[str, np.ndarray]] = []
    after = -1
    while True:
        data = _fetch(store, state, after, CHUNK_ROWS)
        if len(data["seq"]) == 0:
            break
        chunks.append(data)
        after = int(data["seq"][-1])
        if len(data["seq"]) < CHUNK_ROWS:
            break
    state.seq = max(after, state.seq)
    if not chunks:
        body = _payload(state, _fetch(store, state, 2**62, 1))
    elif spec.mode == "mean":  # aggregate chunk by chunk: memory stays at one chunk of columns
        merged: dict[tuple[Any, Any], list[Any]] = {}
        for data in chunks:
            for s, g, xs, ys, n in _groups(spec, data, state):
                row = merged.setdefault((s, g), [s, g, 0.0, 0.0, 0])
                row[2] = (row[2] or 0.0) + (xs or 0.0)
                row[3] = (row[3] or 0.0) + (ys or 0.0)
                row[4] += n
        body = {"groups": list(merged.values())}
    else:
        data = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
        stride = max(1, math.ceil(len(data["seq"]) / RAW_POINTS)) if spec.mode == "raw" else 1
        if spec.mode == "heatmap":  # the last value of each cell is all a heat map shows
            frame = pd.DataFrame({k: data[k] for k in ("row", "col", "conductance_S")})
            last = frame.groupby(["row", "col"], sort=False).tail(1)
            data = {"seq": data["seq"][last.index], **{k: last[k].to_numpy() for k in last.columns}}
        body = _payload(state, data, stride)
    return {"type": "reset", "sampled": False, "spec": spec.public(), **head, **body}


def delta(store: Store, state: LiveState) -> dict[str, Any] | None:
    """What was committed since the last message (``None``: nothing new, status unchanged)."""
    before = state.status
    spec = state.spec
    head = _head(store, state)
    if spec.mode == "epochs":
        rows = _epochs(store, state.run_id)
        if len(rows) == state.epochs and head["status"] == before:
            return None
        state.epochs = len(rows)
        return {"type": "reset", "sampled": False, "spec": spec.public(), "epochs": rows, **head}
    # the status was read first, the readings after it: every reading committed before an ended
    # run's status is in this fetch (or, beyond one message, in the next); each SELECT of SQLite's
    # driver sees its own moment, so the count is read again after the readings (never fewer)
    data = _fetch(store, state, state.seq, CHUNK_ROWS)
    if len(data["seq"]) == 0:
        return None if head["status"] == before else {"type": "delta", **head}
    state.seq = int(data["seq"][-1])
    head["readings"] = store.count_readings(state.run_id)
    store.conn.rollback()
    if len(data["seq"]) >= CHUNK_ROWS and head["status"] != "running":
        # the run has ended but more was committed than one message carries: the stream goes on
        # (as running) until it has sent every reading, then says how the run ended
        state.status = before
        head = {**head, "status": before}
    return {"type": "delta", **head, **_payload(state, data)}
