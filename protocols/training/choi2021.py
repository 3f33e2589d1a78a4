"""Reproduction of Choi et al. 2021 (Front. Neurosci. 15:690418): the paper's cases as one sweep.

Every case is one ``hybrid-training`` run in the store; the sweep runs on Dask (a LocalCluster
by default, or an existing cluster), writes ``table.md`` and ``table.csv`` and the figures
(Fig. 4A-F, 5C-F, 6A-D style) into an output directory. ``rram-hil reproduce choi2021`` is the
command line of :func:`run_sweep`.
"""

from __future__ import annotations

import json
import math
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from hil.engine import RunEngine, RunOutcome
from hil.errors import ConfigError
from hil.station import load_station
from hil.store import Store
from hil.store.models import Event, Run
from hil.store.training import epoch_arrays_df, epochs_df, tracked_df, weight_errors_df
from protocols.plots import use_agg

PROTOCOL = "hybrid-training"
C2C_SWEEP = (0.0, 0.34, 0.5, 1.0, 1.5, 2.0)
D2D_SWEEP = (0.0, 0.25, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class Case:
    """One case of the paper: its name, the run parameters and what the paper reports."""

    name: str
    params: dict[str, Any]
    paper_test_accuracy: float | None = None
    paper_train_accuracy: float | None = None
    note: str = ""


def _fmt(value: float) -> str:
    return f"{value:g}"


def paper_cases() -> list[Case]:
    """Every case of the paper, in the order of the reproduced table."""
    hybrid = {"synapse": "hybrid", "states": 50}
    cases = [
        Case("fp", {"synapse": "fp"}, 97.92, 99.98, "floating-point software (Fig. 4A)"),
        Case("single_s50", {"synapse": "single", "states": 50}, None, None,
             "saturates early, below hybrid (Fig. 4A); no number in the text"),
        Case("hybrid_s50_k1", {**hybrid, "k": 1}, None, None, "k = 1 no better than single (Fig. 5C/F)"),
        Case("hybrid_s50_k10", {**hybrid, "k": 10, "c2c_sigma_over_mu": 0.34}, 97.00, 99.66,
             "the paper's main result (device variability 0.34)"),
        Case("hybrid_s50_k100", {**hybrid, "k": 100}, 94.98, None, "5.02 % error (Fig. 5F)"),
        Case("hybrid_g400_k10", {**hybrid, "g_states": 400, "k": 10}, 97.34, None, "best case (Fig. 6D)"),
        Case("hybrid_g400_k100", {**hybrid, "g_states": 400, "k": 100}, 96.58, None, "3.42 % error (Fig. 5F)"),
        Case("single_s10", {"synapse": "single", "states": 10}, 9.8, None, "does not learn (Fig. 6A)"),
        Case("hybrid_s10_k10", {"synapse": "hybrid", "states": 10, "k": 10}, 93.69, None, "Fig. 6A"),
    ]  # fmt: skip
    for c2c in C2C_SWEEP:
        paper = 97.00 if c2c == 0.34 else None
        note = "device value (Fig. 6B)" if c2c == 0.34 else "robust up to 1, drops beyond (Fig. 6B)"
        cases.append(
            Case(f"c2c_{_fmt(c2c)}", {**hybrid, "k": 10, "c2c_sigma_over_mu": c2c}, paper, None, note)
        )
    for d2d in D2D_SWEEP:
        cases.append(Case(f"d2d_{_fmt(d2d)}", {**hybrid, "k": 10, "d2d_sigma": d2d}, None, None,
                          "robust up to 1 (Fig. 6C)"))  # fmt: skip
    # the open choice that matters most: fine tuning's pulse counts recomputed from g's own step
    rescaled = {"k": 10, "fine_counts": "rescaled"}
    cases += [
        Case("hybrid_s50_k10_rescaled", {**hybrid, **rescaled}, None, None,
             "fine_counts=rescaled: the full lr on g's finer step"),
        Case("hybrid_s10_k10_rescaled", {"synapse": "hybrid", "states": 10, **rescaled}, None, None,
             "fine_counts=rescaled: g's counts from its own finer step"),
    ]  # fmt: skip
    # the previous defaults: fine tuning's counts rounded as dynamic tuning's are, under which
    # no update of a 10-state pair reaches half a step (the hybrid then fails as the single does)
    fine_round = {"k": 10, "fine_pulse_mapping": "round"}
    cases += [
        Case("hybrid_s50_k10_fine_round", {**hybrid, **fine_round, "c2c_sigma_over_mu": 0.34}, 97.00, 99.66,
             "fine_pulse_mapping=round: fine tuning's counts rounded too"),
        Case("hybrid_s10_k10_fine_round", {"synapse": "hybrid", "states": 10, **fine_round}, 93.69, None,
             "fine_pulse_mapping=round: fine tuning's counts rounded too (Fig. 6A)"),
    ]  # fmt: skip
    # stochastic rounding of every phase's counts lets updates below half a step land with their
    # probability in dynamic tuning too, so a 10-state G pair moves at all (Fig. 6A)
    stochastic = {"states": 10, "pulse_mapping": "stochastic"}
    cases += [
        Case("single_s10_stochastic", {"synapse": "single", **stochastic}, 9.8, None,
             "pulse_mapping=stochastic: updates below half a step land with their probability"),
        Case("hybrid_s10_k10_stochastic", {"synapse": "hybrid", "k": 10, **stochastic}, 93.69, None,
             "pulse_mapping=stochastic (Fig. 6A)"),
    ]  # fmt: skip
    return cases


def select_cases(names: str | None) -> list[Case]:
    """The paper's cases, or those named in a comma list (a clear error for unknown names)."""
    cases = paper_cases()
    if not names:
        return cases
    by_name = {c.name: c for c in cases}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ConfigError(f"--cases: unknown case(s) {', '.join(unknown)} (known: {', '.join(by_name)})")
    return [by_name[n] for n in wanted]


# ---------------------------------------------------------------------- one case (runs on a worker)
#: the event that ties a run to its sweep and case: ``{"sweep": <sweep id>, "case": <case name>}``
SWEEP_EVENT = "sweep-case"


class _CaseStore(Store):
    """The store a case runs in: its run is tagged with the sweep and the case (a ``sweep-case``
    event) right after the run row is committed, so that a second attempt of the case finds it."""

    def __init__(self, db: str, tag: Mapping[str, Any] | None) -> None:
        super().__init__(db)
        self.tag = dict(tag) if tag else None

    def create_run(self, *args: Any, **kwargs: Any) -> int:
        run_id = super().create_run(*args, **kwargs)
        if self.tag is not None:
            self.add_event(run_id, SWEEP_EVENT, self.tag)
        return run_id


def case_runs(store: Store, sweep: str, case: str) -> list[int]:
    """The runs of one case of one sweep (those tagged with its ``sweep-case`` event), oldest first."""
    rows = store.conn.execute(
        select(Event.run_id, Event.detail).where(Event.kind == SWEEP_EVENT).order_by(Event.run_id)
    ).all()
    return [int(r.run_id) for r in rows if r.detail == {"sweep": sweep, "case": case}]


def _attempt(store: Store, engine: RunEngine, sweep: str, name: str) -> tuple[RunOutcome, bool] | None:
    """What an earlier attempt of the case left: its completed run (reused as it is), or its
    interrupted run resumed from the checkpoint, with whether it was reused as it was (True) or
    resumed (False); ``None`` when there is nothing to continue.

    A run of the case still ``running`` on another host belongs to a worker that Dask has given
    up (a task runs again only once its worker is gone): it is taken over with the store's
    conditional claim. On this host the store has already marked it ``interrupted`` if its
    process is dead; if its process lives, the claim refuses and the attempt fails (Dask retries).
    A run killed before its first checkpoint (epoch 0) is left ``interrupted`` and a new run starts.
    """
    runs = [store.run(r) for r in case_runs(store, sweep, name)]
    for info in runs:
        if info.status == "completed":
            return RunOutcome(info.id, info.status, info.error), True
    for info in reversed(runs):
        if store.load_checkpoint(info.id) is None:
            continue
        if info.status == "running":
            owner = store.conn.execute(select(Run.hostname).where(Run.id == info.id)).scalar()
            if owner == socket.gethostname():  # alive: the store marked it interrupted on open if not
                raise store.refusal(info.id)
            store.claim_run(info.id, statuses=("running",))  # refused if it is not running any more
            store.add_event(
                info.id, "taken-over", {"reason": "the sweep's earlier attempt of the case was lost"}
            )
            store.release_run(info.id, "interrupted")
        return engine.resume(info.id, plot=False), False
    return None


def run_case(
    name: str,
    params: Mapping[str, Any],
    db: str,
    station: str | None = None,
    sweep: str | None = None,
) -> dict[str, Any]:
    """Run one case as a ``hybrid-training`` run and summarise it (executed on a Dask worker).

    With ``sweep`` (the sweep's id) the case is idempotent: an attempt first looks for the case's
    run from an earlier attempt (a worker that died, a retry) and reuses it if it completed or
    resumes it from its checkpoint, so a case has one run however often it is attempted.
    """
    import os

    os.environ.setdefault("MPLBACKEND", "Agg")

    t0 = time.perf_counter()
    with _CaseStore(db, {"sweep": sweep, "case": name} if sweep else None) as store:
        engine = RunEngine(store)
        earlier = _attempt(store, engine, sweep, name) if sweep else None
        # a case completed by an earlier attempt (another invocation of the sweep) is taken as it is
        reused = earlier is not None and earlier[1]
        if earlier is not None:
            outcome = earlier[0]
        else:
            outcome = engine.run(PROTOCOL, load_station(station), dict(params), plot=False)
        ep = epochs_df(store, outcome.run_id)
    trained = ep[ep["epoch"] > 0]
    last = ep.iloc[-1] if len(ep) else None
    switch = trained[trained["switched"].astype(bool)]
    return {
        "case": name,
        "run_id": outcome.run_id,
        "status": outcome.status,
        "error": outcome.error,
        "measured_test_accuracy": None if last is None else float(last["test_accuracy"]),
        "measured_train_accuracy": None if last is None else float(last["train_accuracy"]),
        "best_test_accuracy": None if trained.empty else float(trained["test_accuracy"].max()),
        "epochs": int(trained["epoch"].max()) if not trained.empty else 0,
        "switch_epoch": int(switch["epoch"].iloc[0]) + 1 if not switch.empty else None,
        "pulses": int(ep["pulses"].fillna(0).sum()),
        "resets": int(ep["resets"].fillna(0).sum()),
        "energy_J": float(ep["energy_J"].fillna(0).sum()) if "energy_J" in ep else None,
        "wall_s": time.perf_counter() - t0,
        # the run's own time on its worker, over every attempt (each epoch's training time)
        "train_s": float(ep["wall_s"].fillna(0).sum()) if len(ep) else 0.0,
        "reused": reused,
    }


def _lost_case(name: str, exc: BaseException) -> dict[str, Any]:
    """The summary of a case whose every attempt failed outside its run (no result came back)."""
    return {
        "case": name, "run_id": None, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
        "measured_test_accuracy": None, "measured_train_accuracy": None, "best_test_accuracy": None,
        "epochs": 0, "switch_epoch": None, "pulses": 0, "resets": 0, "energy_J": None, "wall_s": 0.0,
        "train_s": 0.0, "reused": False,
    }  # fmt: skip


# ---------------------------------------------------------------------- the sweep
@dataclass
class SweepResult:
    rows: list[dict[str, Any]]
    table_md: Path
    table_csv: Path
    figures: list[Path] = field(default_factory=list)
    wall_s: float = 0.0


def case_parameters(case: Case, common: Mapping[str, Any]) -> dict[str, Any]:
    """A case's run parameters: the common ones (epochs, limits, data) overridden by the case's."""
    return {**common, **case.params}


def expected_cost(params: Mapping[str, Any]) -> float:
    """A case's expected machine time relative to a plain hybrid case (a rough model, used only
    to start the longest cases first so that a sweep does not end waiting on one of them).

    Floating point is cheap; the twin's time grows with the cells programmed per image, which
    stochastic and coincidence mappings, ``fine_counts=rescaled`` and large programming
    variability (more occasional resets) multiply."""
    if params.get("synapse") == "fp":
        return 0.2
    cost = 1.0
    cost *= {"stochastic": 3.0, "coincidence": 2.5}.get(str(params.get("pulse_mapping", "round")), 1.0)
    fine = params.get("fine_pulse_mapping", "stochastic")
    if params.get("synapse", "hybrid") == "hybrid" and fine == "stochastic":
        cost *= 1.5  # fine tuning's cells programmed one by one, with more of them pulsed
    if params.get("fine_counts") == "rescaled":
        cost *= 2.0
    c2c = params.get("c2c_sigma_over_mu")
    if c2c is not None:
        cost *= 1.0 + 0.5 * float(c2c) ** 2
    return cost * float(params.get("epochs", 10))


def run_sweep(
    cases: Sequence[Case],
    common: Mapping[str, Any],
    out: Path,
    db: str,
    workers: int = 2,
    scheduler: str | None = None,
    station: str | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    retries: int = 2,
    sweep: str | None = None,
    figures: bool = True,
) -> SweepResult:
    """Run every case on Dask, each as its own run in ``db``; write the table and the figures.

    Cases with identical run parameters run once and share the result. Every case is one Dask
    task of :func:`run_case` tagged with this sweep's id: a task whose worker dies is run again
    by Dask on another worker (up to ``distributed.scheduler.allowed-failures`` times), a task
    that raises is retried ``retries`` times, and each new attempt continues the case's own run
    (reused if completed, resumed if interrupted) instead of starting a second one. A case whose
    every attempt failed is a ``failed`` row of the table.

    ``sweep`` names the sweep (default: a new random id): a sweep run again under the same name
    continues its cases' runs (reused if completed, resumed if interrupted). ``figures=False``
    writes the table only.
    """
    from distributed import Client, LocalCluster, as_completed

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    unique: dict[str, list[Case]] = {}
    for case in cases:
        key = json.dumps(case_parameters(case, common), sort_keys=True)
        unique.setdefault(key, []).append(case)
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler)
        except (OSError, ValueError) as exc:  # nothing listening, a timeout, an address that is none
            raise ConfigError(f"--scheduler: no Dask scheduler answers at {scheduler} ({exc})") from None
    else:
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", memory_limit=0
        )
        client = Client(cluster)
    results: dict[str, dict[str, Any]] = {}
    sweep = sweep or uuid.uuid4().hex
    try:
        Store(db).close()  # the database is there (or refused in one line) before any case starts
        futures = {}
        by_cost = sorted(unique.items(), key=lambda item: -expected_cost(json.loads(item[0])))
        for key, group in by_cost:  # the longest first, so the sweep does not end waiting on one
            params = json.loads(key)
            fut = client.submit(
                run_case, group[0].name, params, db, station, sweep,
                key=f"choi2021-{group[0].name}-{sweep}", pure=False, retries=retries,
                priority=expected_cost(params),  # the longest first
            )  # fmt: skip
            futures[fut] = group
        for fut in as_completed(futures):
            try:
                summary = fut.result()
            except Exception as exc:  # every attempt failed (KilledWorker, a store error): a failed row
                summary = _lost_case(futures[fut][0].name, exc)
            for case in futures[fut]:
                row = {**summary, "case": case.name}
                results[case.name] = row
                if on_result is not None:
                    on_result(row)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    rows = []
    for case in cases:
        r = results[case.name]
        rows.append({
            "case": case.name,
            "paper_test_accuracy": case.paper_test_accuracy,
            "measured_test_accuracy": r["measured_test_accuracy"],
            "epochs": r["epochs"],
            "paper_train_accuracy": case.paper_train_accuracy,
            "measured_train_accuracy": r["measured_train_accuracy"],
            "best_test_accuracy": r["best_test_accuracy"],
            "switch_epoch": r["switch_epoch"],
            "pulses": r["pulses"],
            "resets": r["resets"],
            "energy_J": r["energy_J"],
            "run_id": r["run_id"],
            "status": r["status"],
            "error": r["error"],
            "wall_s": r["wall_s"],
            "train_s": r["train_s"],
            "reused": r["reused"],
            "note": case.note,
            "parameters": json.dumps(case.params, sort_keys=True),
        })  # fmt: skip
    wall = time.perf_counter() - t0
    table_md, table_csv = write_table(rows, out, common, wall, workers if not scheduler else None)
    drawn = write_figures(db, [r for r in rows if r["run_id"] is not None], out) if figures else []
    return SweepResult(rows, table_md, table_csv, drawn, wall)


def write_table(
    rows: Sequence[Mapping[str, Any]],
    out: Path,
    common: Mapping[str, Any],
    wall_s: float,
    workers: int | None,
) -> tuple[Path, Path]:
    """``table.csv`` (every column) and ``table.md`` (the comparison, with the run's settings)."""
    df = pd.DataFrame(rows)
    csv = out / "table.csv"
    df.to_csv(csv, index=False)

    def cell(v: Any, digits: int = 2) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        return str(v)

    settings = "Settings: " + ", ".join(f"{k}={v}" for k, v in sorted(common.items()))
    settings += f"; wall time {wall_s:.0f} s" + (f" on {workers} worker(s)" if workers else "")
    runs = {r["run_id"]: r for r in rows if r["run_id"] is not None}  # cases sharing a run count once
    reused = [r for r in runs.values() if r.get("reused")]
    if reused:
        settings += (
            f" for this invocation; {len(reused)} of its {len(runs)} runs were completed by earlier "
            "invocations of the same sweep (`--sweep NAME`) and taken as they were"
        )
    train_total = sum(float(r.get("train_s") or 0.0) for r in runs.values())
    settings += f". Training time of the runs, summed: {train_total:.0f} s (each epoch's training, evaluation excluded)"
    lines = [
        "# Choi et al. 2021 reproduced (rram-hil, hybrid-training on the twin)",
        "",
        settings,
        "",
        "| case | paper test acc (%) | measured test acc (%) | epochs | measured train acc (%) | switch epoch | "
        "pulses | resets | train time (min) | run | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in rows:
        minutes = float(r.get("train_s") or 0.0) / 60.0
        lines.append(
            f"| {r['case']} | {cell(r['paper_test_accuracy'])} | {cell(r['measured_test_accuracy'])} | "
            f"{r['epochs']} | {cell(r['measured_train_accuracy'])} | {cell(r['switch_epoch'])} | "
            f"{r['pulses']:.3g} | {r['resets']} | {minutes:.1f} | {cell(r['run_id'])} | {r['note']} |"
        )
    md = out / "table.md"
    md.write_text("\n".join(lines) + "\n")
    return md, csv


# ---------------------------------------------------------------------- figures
def write_figures(db: str, rows: Sequence[Mapping[str, Any]], out: Path) -> list[Path]:
    """Fig. 4A-C, 4D-F, 5C-E, 5F and 6A-D style figures from the sweep's runs."""

    plt = use_agg()
    by_case = {r["case"]: r for r in rows}
    written: list[Path] = []
    with Store(db, reap_stale=False) as store:

        def ep(case: str) -> pd.DataFrame | None:
            r = by_case.get(case)
            return None if r is None else epochs_df(store, int(r["run_id"]))

        # Fig. 4A-C
        fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.5))
        for case, style in (("fp", "k"), ("single_s50", "b"), ("hybrid_s50_k10", "r")):
            df = ep(case)
            if df is None:
                continue
            a.plot(df["epoch"], df["train_accuracy"], color=style, marker="o", ms=3, label=f"{case} train")
            a.plot(
                df["epoch"], df["test_accuracy"], color=style, marker="s", ms=3, ls="--", label=f"{case} test"
            )
            c.plot(df["epoch"], df["mse"], color=style, marker="o", ms=3, label=case)
            sw = df[df["switched"].astype(bool)]
            for e in sw["epoch"]:
                for ax in (a, b, c):
                    ax.axvline(e + 0.5, color="r", ls=":", lw=1)
            if case != "fp":
                arr = epoch_arrays_df(store, int(by_case[case]["run_id"]))
                arr = arr[arr["epoch"] > 0]
                arr = arr.assign(kind=arr["array"].str.split("_").str[-1])
                for kind, grp in arr.groupby("kind"):
                    freq = grp.groupby("epoch")["update_frequency"].mean()
                    if freq.max() > 0:
                        b.plot(freq.index, freq.to_numpy(), color=style, marker="o", ms=3,
                               ls="-" if kind.startswith("G") else ":", label=f"{case} {kind}")  # fmt: skip
        a.set(xlabel="epoch", ylabel="accuracy (%)", title="(A) accuracy")
        a.legend(fontsize=7)
        b.set(
            xlabel="epoch",
            ylabel="cells updated per cell per sample",
            title="(B) weight-update frequency",
            yscale="log",
        )
        b.legend(fontsize=7)
        c.set(xlabel="epoch", ylabel="MSE", title="(C) mean squared error", yscale="log")
        c.legend(fontsize=7)
        written.append(_save(fig, out / "fig4abc.png", plt))

        # Fig. 4D-F: tracked synapses
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
        for ax, case in zip(axes, ("fp", "single_s50", "hybrid_s50_k10"), strict=True):
            r = by_case.get(case)
            if r is None:
                continue
            tr = tracked_df(store, int(r["run_id"]))
            df = ep(case)
            n = int(df["samples"].max() or 1) if df is not None else 1
            tr = tr.assign(t=np.where(tr["epoch"] == 0, 0.0, tr["epoch"] - 1 + tr["sample"] / n))
            for (row, col), grp in tr.groupby(["row", "col"]):
                (line,) = ax.plot(grp["t"], grp["weight"], "-", lw=1.2, label=f"W[{row},{col}]")
                if grp["weight_small"].notna().any():
                    ax.plot(grp["t"], grp["weight_big"], "--", lw=0.8, color=line.get_color())
                    ax.plot(grp["t"], grp["weight_small"], ":", lw=0.8, color=line.get_color())
            ax.set(
                xlabel="epoch",
                ylabel="weight",
                title=f"{case}" + (" (-- big, : small)" if case.startswith("hybrid") else ""),
            )
            ax.legend(fontsize=7)
        fig.suptitle("(D-F) weight history of tracked synapses", fontsize=10)
        written.append(_save(fig, out / "fig4def.png", plt))

        # Fig. 5C-E: weight error histograms at the last epoch
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
        for ax, case in zip(axes, ("hybrid_s50_k1", "hybrid_s50_k10", "hybrid_s50_k100"), strict=True):
            r = by_case.get(case)
            if r is None:
                continue
            we = weight_errors_df(store, int(r["run_id"]))
            if we.empty:
                continue
            last = we[we["epoch"] == we["epoch"].max()]
            centers = np.sqrt(np.maximum(last["bin_lo"], 1e-7) * last["bin_hi"])
            ax.bar(centers, last["count"], width=np.diff(np.r_[last["bin_lo"].to_numpy(), last["bin_hi"].iloc[-1]]),
                   align="center", alpha=0.7)  # fmt: skip
            mean = float((centers * last["count"]).sum() / max(last["count"].sum(), 1))
            ax.set(
                xscale="log", xlabel="|W_target - W| (mean per synapse)", title=f"{case} (mean ~{mean:.2g})"
            )
        axes[0].set_ylabel("synapses (hidden-output layer)")
        written.append(_save(fig, out / "fig5cde.png", plt))

        # Fig. 5F: error rate vs k
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for label, names in (("g 50 states", ("hybrid_s50_k1", "hybrid_s50_k10", "hybrid_s50_k100")),
                             ("g 400 states", ("hybrid_g400_k10", "hybrid_g400_k100"))):  # fmt: skip
            pts = [(float(json.loads(by_case[n]["parameters"])["k"]), 100 - by_case[n]["measured_test_accuracy"])
                   for n in names if n in by_case and by_case[n]["measured_test_accuracy"] is not None]  # fmt: skip
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, "o-", label=f"measured, {label}")
        ax.plot([10, 100], [3.00, 5.02], "k^--", label="paper, g 50 states")
        ax.plot([10, 100], [2.66, 3.42], "kv:", label="paper, g 400 states")
        ax.set(
            xscale="log", xlabel="k (area ratio G/g)", ylabel="test error (%)", title="(5F) error rate vs k"
        )
        ax.legend(fontsize=8)
        written.append(_save(fig, out / "fig5f.png", plt))

        # Fig. 6A-D
        fig, axes = plt.subplots(1, 4, figsize=(19, 4.5))
        a, b, c, d = axes
        for syn, names in (
            ("single", ("single_s10", "single_s50")),
            ("hybrid k=10", ("hybrid_s10_k10", "hybrid_s50_k10")),
        ):
            pts = [(json.loads(by_case[n]["parameters"])["states"], by_case[n]["measured_test_accuracy"])
                   for n in names if n in by_case]  # fmt: skip
            if pts:
                xs, ys = zip(*pts, strict=True)
                a.plot(xs, ys, "o-", label=syn)
        variants: tuple[tuple[str, str, str | None], ...] = (("single_s10_stochastic", "C0s", "single, stochastic counts"),
                    ("hybrid_s10_k10_stochastic", "C1s", "hybrid k=10, stochastic counts"),
                    ("hybrid_s10_k10_fine_round", "C1x", "hybrid k=10, fine tuning rounded"),
                    ("hybrid_s50_k10_fine_round", "C1x", None))  # fmt: skip
        for name, marker, legend in variants:
            if name in by_case and by_case[name]["measured_test_accuracy"] is not None:
                states = json.loads(by_case[name]["parameters"])["states"]
                a.plot([states], [by_case[name]["measured_test_accuracy"]], marker, mfc="none", ms=9, label=legend)
        a.plot([10], [9.8], "b^", label="paper single")
        a.plot([10, 50], [93.69, 97.00], "r^--", label="paper hybrid")
        a.set(xlabel="states per device", ylabel="test accuracy (%)", title="(6A) states", xscale="log")
        a.legend(fontsize=8)
        for ax, prefix, xlabel, title in ((b, "c2c_", "programming variability sigma/mu", "(6B) cycle-to-cycle"),
                                          (c, "d2d_", "device-to-device sigma / Gmin", "(6C) device-to-device")):  # fmt: skip
            pts = sorted(
                (float(n[len(prefix):]), r["measured_test_accuracy"]) for n, r in by_case.items()
                if n.startswith(prefix) and r["measured_test_accuracy"] is not None
            )  # fmt: skip
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, "o-", color="tab:red")
            if prefix == "c2c_":
                ax.axvline(0.34, color="grey", ls=":", label="device (0.34)")
                ax.legend(fontsize=8)
            ax.set(xlabel=xlabel, ylabel="test accuracy (%)", title=title)
        main = [r for r in rows if not r["case"].startswith(("c2c_", "d2d_"))]
        ypos = np.arange(len(main))
        d.barh(ypos - 0.2, [r["measured_test_accuracy"] or 0 for r in main], height=0.4, label="measured")
        d.barh(
            ypos + 0.2, [r["paper_test_accuracy"] or 0 for r in main], height=0.4, label="paper", alpha=0.6
        )
        d.set_yticks(ypos, [r["case"] for r in main], fontsize=8)
        d.set(xlabel="test accuracy (%)", title="(6D) summary", xlim=(0, 100))
        d.legend(fontsize=8)
        written.append(_save(fig, out / "fig6abcd.png", plt))
    return written


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
