"""Faults on the SMU + matrix stack: every way a run can break ends with the outputs off and the
relays open (asserted on the emulators' own state), the run marked failed or interrupted, and
every reading taken before the fault committed.

Faults: an instrument that stops answering (timeout), a garbled reply, a dropped connection,
Ctrl-C (SIGINT) in the middle of a pulse train, an exception inside a protocol.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from hil.engine import RunEngine
from hil.protocol import Params, Protocol, RunContext
from hil.store import Store
from hil.types import Pulse
from sim_backend.emulators.scpi_server import Fault
from tests.helpers import emulated, station_dict

PULSES = 10
CYCLES = 5
#: The fault hits the third pulse train with reads: two cycles (20 readings) are complete.
TRAINS_BEFORE_FAULT = 2


def _train_with_reads(stack: str) -> str:
    """Text that only the SMU message of a pulse train with reads contains."""
    return {"2600+707b": "true) printbuffer", "b2900+e5250a": ":FETC:ARR:CURR?"}[stack]


def _station(stack: str) -> dict:
    data = station_dict(stack, rows=2, cols=2)
    for inst in data["instruments"].values():
        inst["options"]["timeout_s"] = 0.5  # short VISA timeouts keep the timeout case fast
    return data


def _assert_safe_and_committed(bench, store: Store, run_id: int, status: str, readings: int) -> None:
    info = store.run(run_id)
    assert info.status == status
    smu, matrix = bench.emulators["smu"], bench.emulators["matrix"]
    assert not any(smu.outputs().values()), f"outputs left on: {smu.outputs()}"
    assert matrix.closed_channels() == set(), f"relays left closed: {matrix.closed_channels()}"
    df = store.readings_df(run_id)
    assert len(df) == readings
    assert np.all(df["conductance_S"].to_numpy() > 0)
    events = store.events_df(run_id)
    assert "safe-state" in set(events["kind"])
    record = events[events["kind"] == "safe-state"]["detail"].iloc[-1]
    assert record["outputs"] == "off" and record["routes"] == "open" and record["confirmed"] is True
    assert set(record["instruments"]) == {"smu", "matrix"}


@pytest.mark.parametrize("stack", ["2600+707b", "b2900+e5250a"])
@pytest.mark.parametrize("kind", ["timeout", "garbled", "disconnect"])
def test_instrument_faults_fail_the_run_safely(tmp_path, stack, kind):
    fault = Fault(kind, match=_train_with_reads(stack))  # type: ignore[arg-type]
    seen = {"trains": 0}

    def arm_on_third_train(message: str) -> None:
        if _train_with_reads(stack) in message:
            seen["trains"] += 1
            if seen["trains"] == TRAINS_BEFORE_FAULT:
                smu = bench_ref[0].emulators["smu"]
                fault.after = smu.messages_received  # fires on the next matching message
                smu.inject(fault)

    bench_ref: list = []
    params = {"pulses": PULSES, "cycles": CYCLES}
    with emulated(_station(stack), seed=3, on_message={"smu": arm_on_third_train}) as bench:
        bench_ref.append(bench)
        with Store(tmp_path / "runs.sqlite") as store:
            outcome = RunEngine(store).run("potentiation-cycling", bench.station, params, plot=False)
            assert outcome.status == "failed"
            assert "smu (" in (outcome.error or "")
            assert fault.fired == 1
            _assert_safe_and_committed(bench, store, outcome.run_id, "failed", TRAINS_BEFORE_FAULT * PULSES)


@pytest.mark.parametrize("stack", ["2600+707b", "b2900+e5250a"])
def test_sigint_mid_train_interrupts_safely(tmp_path, stack):
    count = {"trains": 0}

    def interrupt_third_train(message: str) -> None:
        if _train_with_reads(stack) in message:
            count["trains"] += 1
            if count["trains"] == TRAINS_BEFORE_FAULT + 1:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the host waits for this train

    with (
        emulated(_station(stack), seed=3, on_message={"smu": interrupt_third_train}) as bench,
        Store(tmp_path / "runs.sqlite") as store,
    ):
        outcome = RunEngine(store).run(
            "potentiation-cycling", bench.station, {"pulses": PULSES, "cycles": CYCLES}, plot=False
        )
        assert outcome.status == "interrupted"
        _assert_safe_and_committed(bench, store, outcome.run_id, "interrupted", TRAINS_BEFORE_FAULT * PULSES)
    assert count["trains"] == TRAINS_BEFORE_FAULT + 1  # the run stopped at the interrupted train


class _Boom(Protocol):
    """Reads, pulses with reads, then raises: an exception inside a protocol."""

    name = "boom"
    title = "raises after some readings"
    Params = Params

    def execute(self, ctx: RunContext, params: Params) -> None:
        ctx.log_readout(ctx.backend.read("A", [(0, 0), (1, 1)], 0.5), kind="map")
        train = ctx.backend.pulse("A", [(0, 1)], Pulse(2.0, 1e-4), 5, read_after=True)
        ctx.log_train(train, purpose="potentiation", kind="potentiation", cycle=0)
        # leave the bench mid-operation: output on, a route closed
        raw = ctx.backend.inner  # type: ignore[attr-defined]
        raw.driver("smu").arm(raw.plan.arrays["A"].channel, 1e-3)
        raw._route(raw.plan.arrays["A"], 1, 0)
        raise RuntimeError("protocol bug")


@pytest.mark.parametrize("stack", ["2600+707b", "b2900+e5250a"])
def test_exception_inside_a_protocol_fails_the_run_safely(tmp_path, stack):
    with emulated(_station(stack), seed=3) as bench, Store(tmp_path / "runs.sqlite") as store:
        outcome = RunEngine(store).run(_Boom(), bench.station, {}, plot=False)
        assert outcome.status == "failed"
        assert outcome.error == "RuntimeError: protocol bug"
        _assert_safe_and_committed(bench, store, outcome.run_id, "failed", 2 + 5)


@pytest.mark.parametrize("stack", ["2600+707b"])
def test_a_stuck_relay_is_recorded_as_an_unconfirmed_safe_state(tmp_path, stack):
    faults = {"matrix": [Fault("stuck_relay", channel="1A01")]}
    with emulated(_station(stack), seed=3, faults=faults) as bench:
        with Store(tmp_path / "runs.sqlite") as store:
            outcome = RunEngine(store).run("conductance-map", bench.station, {}, plot=False)
            assert outcome.status == "failed"
            assert "safe state not confirmed: matrix (keithley707b): crosspoints still closed" in (
                outcome.error or ""
            )
            events = store.events_df(outcome.run_id)
            record = events[events["kind"] == "safe-state"]["detail"].iloc[-1]
            assert record["confirmed"] is False
            assert record["routes"] == "unconfirmed"  # what the matrix could not confirm
            assert record["outputs"] == "off"  # what the SMU did confirm (read back)
            assert "crosspoints still closed" in record["instruments"]["matrix"]
            assert "off (read back)" in record["instruments"]["smu"]
            assert any("crosspoints still closed" in p for p in record["problems"])
        assert not any(bench.emulators["smu"].outputs().values())
        assert bench.emulators["matrix"].closed_channels() == {"1A01"}
