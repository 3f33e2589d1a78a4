"""The run engine: validation before writing, safe state on every exit, statuses, resume."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hil.backends import build_backend
from hil.engine import RunEngine
from hil.errors import ConfigError
from hil.protocol import Params, Protocol, RunContext
from hil.safety import LimitError
from hil.station import load_station
from hil.store import Store
from hil.types import Pulse


@pytest.fixture
def station():
    return load_station(None)


class Recorded(list):
    """A backend factory that records every raw backend the engine builds (to assert on the twin
    behind the safety layer)."""

    def __call__(self, station, seed=None):
        backend = build_backend(station, seed)
        self.append(backend)
        return backend


@pytest.fixture
def opened() -> Recorded:
    return Recorded()


def test_potentiation_cycling_run(store: Store, station, opened, tmp_path: Path) -> None:
    engine = RunEngine(store, plot_dir=tmp_path, backend_factory=opened)
    out = engine.run("potentiation-cycling", station, {"cycles": 3, "pulses": 20}, seed=5)
    assert out.status == "completed" and out.error is None
    df = store.readings_df(out.run_id)
    assert len(df) == 60
    assert (df.groupby("cycle")["pulse"].max() == 19).all()
    assert df["voltage_V"].eq(0.5).all()
    assert df["current_A"].to_numpy() == pytest.approx(df["conductance_S"].to_numpy() * 0.5)
    # each cycle potentiates: last read well above first read
    first = df[df.pulse == 0].conductance_S.to_numpy()
    last = df[df.pulse == 19].conductance_S.to_numpy()
    assert np.all(last > first * 2)
    pulses = store.pulses_df(out.run_id)
    assert list(pulses.purpose) == ["reset"] + ["potentiation", "reset"] * 3
    assert pulses[pulses.purpose == "reset"].amplitude_V.eq(-4.0).all()
    assert pulses[pulses.purpose == "reset"]["count"].eq(5).all()
    assert out.plot is not None and out.plot.exists() and out.plot.stat().st_size > 10_000
    assert store.artifacts(out.run_id, "plot") == [str(out.plot.resolve())]
    info = store.run(out.run_id)
    assert info.seed == 5 and info.backend == "twin" and info.parameters["cycles"] == 3
    assert info.station["name"] == "twin"
    twin = opened[0]
    assert twin.safe_state_calls == 1 and twin.closed
    assert store.load_checkpoint(out.run_id) == {"next_cycle": 3}


def test_same_seed_same_readings(store: Store, station) -> None:
    engine = RunEngine(store)
    a = engine.run("potentiation-cycling", station, {"cycles": 2}, seed=11, plot=False)
    b = engine.run("potentiation-cycling", station, {"cycles": 2}, seed=11, plot=False)
    c = engine.run("potentiation-cycling", station, {"cycles": 2}, seed=12, plot=False)
    ga = store.readings_df(a.run_id).conductance_S.to_numpy()
    assert np.array_equal(ga, store.readings_df(b.run_id).conductance_S.to_numpy())
    assert not np.array_equal(ga, store.readings_df(c.run_id).conductance_S.to_numpy())


def test_bad_parameters_write_nothing(store: Store, station) -> None:
    engine = RunEngine(store)
    with pytest.raises(ConfigError, match=r"amplitude_V: .*got 99.*0 < amplitude_V <= 20 V"):
        engine.run("potentiation-cycling", station, {"amplitude_V": 99})
    with pytest.raises(ConfigError, match=r"cycle: unknown name \(known: array, cells, amplitude_V"):
        engine.run("potentiation-cycling", station, {"cycle": 3})
    # inside the parameter's own range, but over the station's 5 V limit
    with pytest.raises(LimitError, match=r"amplitude_V = 6 .*\[-5, 5\] V"):
        engine.run("potentiation-cycling", station, {"amplitude_V": 6})
    with pytest.raises(ConfigError, match="array: 'Q' is not an array"):
        engine.run("potentiation-cycling", station, {"array": "Q"})
    with pytest.raises(ConfigError, match=r"cells: row range .40. in .40,0. must lie within 0..31"):
        engine.run("potentiation-cycling", station, {"cells": "40,0"})
    with pytest.raises(ConfigError, match="protocol: 'nope' is not known"):
        engine.run("nope", station, {})
    assert store.runs_df().empty


class Failing(Protocol):
    """Takes some readings, then fails (or is interrupted) mid-run."""

    name = "failing"
    title = "test protocol"

    class Params(Params):
        raise_: str = "error"
        trains: int = 3

    def execute(self, ctx: RunContext, params: Any) -> None:
        for k in range(params.trains):
            res = ctx.backend.pulse("A", [(0, 0), (1, 1)], Pulse(2.0, 1e-4), 10, read_after=True)
            ctx.log_train(res, purpose="potentiation", cycle=k)
        if params.raise_ == "error":
            raise RuntimeError("instrument on fire")
        raise KeyboardInterrupt

    def plot(self, store, run_id, path):
        return None


@pytest.mark.parametrize(("mode", "status"), [("error", "failed"), ("interrupt", "interrupted")])
def test_failure_and_interrupt_leave_safe_state_and_data(store, station, opened, mode, status) -> None:
    out = RunEngine(store, backend_factory=opened).run(Failing(), station, {"raise_": mode})
    assert out.status == status
    info = store.run(out.run_id)
    assert info.status == status and info.ended_at is not None
    if mode == "error":
        assert "instrument on fire" in info.error
    assert len(store.readings_df(out.run_id)) == 3 * 2 * 10  # every reading before the fault
    assert opened[0].safe_state_calls == 1 and opened[0].output_on is False
    events = store.events_df(out.run_id)
    kinds = list(events["kind"])
    assert kinds[-1] == "safe-state"
    assert events["detail"].iloc[-1] == {
        "outputs": "off",
        "routes": "open",
        "confirmed": True,
        "instruments": {"twin": "simulated outputs off, no routes"},
    }


class InterruptAfter:
    """Wrap a backend: the n-th pulse train raises KeyboardInterrupt (Ctrl-C mid-run)."""

    def __init__(self, inner, n: int) -> None:
        self.inner, self.n = inner, n

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def pulse(self, *args, **kwargs):
        self.n -= 1
        if self.n < 0:
            raise KeyboardInterrupt
        return self.inner.pulse(*args, **kwargs)


def test_interrupted_run_resumes_where_it_stopped(store, station) -> None:
    # initial reset + 2 full cycles (2 trains each) + the potentiation train of cycle 2, then Ctrl-C
    interrupting = RunEngine(
        store, backend_factory=lambda st, seed=None: InterruptAfter(build_backend(st, seed), 6)
    )
    engine = RunEngine(store)
    out = interrupting.run("potentiation-cycling", station, {"cycles": 5, "pulses": 10}, plot=False)
    assert out.status == "interrupted"
    assert store.load_checkpoint(out.run_id) == {"next_cycle": 2}
    assert len(store.readings_df(out.run_id)) == 30
    resumed = engine.resume(out.run_id, plot=False)
    assert resumed.status == "completed" and resumed.run_id == out.run_id
    df = store.readings_df(out.run_id)
    done = df[df.kind == "potentiation"]
    assert sorted(done.cycle.unique()) == [0, 1, 2, 3, 4]
    assert len(done) == 50
    cut = df[df.kind == "potentiation-interrupted"]
    assert len(cut) == 10 and set(cut.cycle) == {2}  # kept, set apart
    assert df.seq.is_unique and df.seq.is_monotonic_increasing
    info = store.run(out.run_id)
    assert info.resumes == 1
    assert "resumed" in set(store.events_df(out.run_id)["kind"])
    with pytest.raises(ConfigError, match="only interrupted or failed runs resume"):
        engine.resume(out.run_id)


def test_runs_that_cannot_resume(store, station) -> None:
    out = RunEngine(store).run("conductance-map", station, {}, plot=False)
    store.finish_run(out.run_id, "interrupted")
    with pytest.raises(ConfigError, match="cannot be resumed"):
        RunEngine(store).resume(out.run_id)


class NoSafeState(Protocol):
    name = "no-safe-state"
    title = "a backend whose safe state fails"

    class Params(Params):
        pass

    def execute(self, ctx: RunContext, params: Any) -> None:
        ctx.backend.read("A", [(0, 0)])


class FailingSafeState:
    """A backend whose safe state raises something other than SafeStateNotConfirmed."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def safe_state(self):
        raise OSError("connection reset")


def test_a_safe_state_that_fails_is_recorded_as_unconfirmed(store, station) -> None:
    engine = RunEngine(store, backend_factory=lambda st, seed=None: FailingSafeState(build_backend(st, seed)))
    out = engine.run(NoSafeState(), station, {}, plot=False)
    assert out.status == "failed" and "connection reset" in (out.error or "")
    detail = store.events_df(out.run_id)["detail"].iloc[-1]
    assert detail["outputs"] == "unconfirmed" and detail["routes"] == "unconfirmed"
    assert detail["confirmed"] is False and "connection reset" in detail["problems"][0]


def test_default_plot_names_never_collide_across_databases(tmp_path: Path, station) -> None:
    plots = tmp_path / "plots"
    written = []
    for name in ("bench-a", "bench-b"):
        with Store(tmp_path / f"{name}.sqlite") as s:
            out = RunEngine(s, plot_dir=plots).run("conductance-map", station, {})
            assert out.plot is not None
            written.append(out.plot)
    assert [p.name for p in written] == [
        "bench-a-run-0001-conductance-map.png",
        "bench-b-run-0001-conductance-map.png",
    ]
    assert all(p.exists() for p in written)


class CtrlCInAFinaliser(Protocol):
    """Pulse trains; during the third, Ctrl-C arrives while Python runs a finaliser, which prints
    the handler's ``KeyboardInterrupt`` as "Exception ignored" and drops it."""

    name = "ctrl-c-in-a-finaliser"
    title = "test protocol"

    class Params(Params):
        trains: int = 40

    def execute(self, ctx: RunContext, params: Any) -> None:
        for k in range(params.trains):
            if k == 2:
                Finalised()  # collected at once: its __del__ runs here
            res = ctx.backend.pulse("A", [(0, 0)], Pulse(2.0, 1e-4), 5, read_after=True)
            ctx.log_train(res, purpose="potentiation", cycle=k)

    def plot(self, store, run_id, path):
        return None


class Finalised:
    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)  # the handler runs, and raises, inside __del__


def test_a_ctrl_c_lost_in_a_finaliser_still_stops_the_run_at_its_next_commit(
    store, station, monkeypatch
) -> None:
    dropped: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", dropped.append)  # where Python reports it
    before = signal.getsignal(signal.SIGINT)
    out = RunEngine(store, abort_check_s=None).run(CtrlCInAFinaliser(), station, {})
    assert [type(d.exc_value) for d in dropped] == [KeyboardInterrupt]  # the first raise was lost
    assert out.status == "interrupted" and out.error == "interrupted by the user (Ctrl-C)"
    assert len(store.readings_df(out.run_id)) == 3 * 5  # stopped once the third train was committed
    assert list(store.events_df(out.run_id)["kind"])[-1] == "safe-state"
    assert signal.getsignal(signal.SIGINT) is before  # the run's handlers are taken down


def test_a_run_started_with_ctrl_c_ignored_goes_on_ignoring_it(store, station, monkeypatch) -> None:
    """A shell starts a background job with SIGINT ignored; the run keeps that (and completes)."""
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: None)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        out = RunEngine(store, abort_check_s=None).run(CtrlCInAFinaliser(), station, {"trains": 5})
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
    assert out.status == "completed" and len(store.readings_df(out.run_id)) == 5 * 5
