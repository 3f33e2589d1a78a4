"""The SMU + switch-matrix backend, end to end against the emulators, and its station validation."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from hil.backend import BackendError
from hil.backends import backend_kind, backend_kinds, build_backend, open_backend
from hil.backends.smu_matrix_config import plan_smu_matrix
from hil.errors import ConfigError
from hil.safety import LimitError
from hil.station import parse_station
from hil.types import Pulse
from tests.helpers import EXAMPLE, emulated, station_dict


def _sync(backend, *names: str) -> None:
    """A query on each instrument: every message sent before it has been executed."""
    raw = backend.inner if hasattr(backend, "inner") else backend
    for name in names:
        assert raw.driver(name).ask("*OPC?").strip() == "1"


def _off_and_open(bench) -> tuple[bool, set]:
    outputs = bench.emulators["smu"].outputs()
    return any(outputs.values()), set(bench.emulators["matrix"].closed_channels())


# --------------------------------------------------------------------------- validation


def _bad(mutate) -> dict:
    data = copy.deepcopy(station_dict())
    mutate(data)
    return data


def _routing(d: dict) -> dict:
    return d["arrays"][0]["routing"]


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d["arrays"][0].pop("routing"), "arrays.A.routing: missing"),
        (lambda d: _routing(d).update(matrix="smu"), "arrays.A.routing.matrix: 'smu' is not a switch matrix"),
        (lambda d: _routing(d)["drive"].update(smu="nope"), "drive.smu: 'nope' is not an SMU"),
        (
            lambda d: _routing(d)["drive"].update(channel="c"),
            "drive.channel: 'c' is not a channel of a keithley2600",
        ),
        (
            lambda d: _routing(d)["drive"].update(matrix_row="Z"),
            "drive.matrix_row: 'Z' is not a row of a keithley707b",
        ),
        (lambda d: _routing(d).update(ground_row="A"), "ground_row: 'A' must differ"),
        (lambda d: _routing(d).update(col_pins=70), "col_pins: matrix column 73 is outside 1..72"),
        (lambda d: _routing(d).update(row_pins=[1, 2, 3]), "row_pins: 3 matrix columns given for 8 lines"),
        (lambda d: _routing(d).update(col_pins=5), "matrix column 5 of 'matrix' is wired to two lines"),
        (
            lambda d: _routing(d).update(pulse_compliance_A=0.5),
            "pulse_compliance_A: 0.5 A exceeds the station limit",
        ),
        (lambda d: _routing(d).update(read_compliance_A=-1), "read_compliance_A"),
        (lambda d: _routing(d).update(bogus=1), "arrays.A.routing.bogus"),
        (
            lambda d: d["instruments"]["smu"]["options"].update(timeout_s=0),
            "instruments.smu.options.timeout_s",
        ),
        (lambda d: d["instruments"]["matrix"]["options"].update(slots=9), "instruments.matrix.options.slots"),
        (
            lambda d: d["instruments"]["smu"].update(model="keithley9999"),
            "instruments.smu.model: 'keithley9999'",
        ),
        (lambda d: d["instruments"].pop("matrix"), "needs a switch matrix"),
    ],
)
def test_station_errors_are_one_line_and_name_the_field(mutate, message):
    station = parse_station(_bad(mutate))
    with pytest.raises(ConfigError) as err:
        plan_smu_matrix(station)
    text = str(err.value)
    assert message in text
    assert "\n" not in text


def test_example_station_validates():
    from hil.station import load_station

    plan = plan_smu_matrix(load_station(EXAMPLE))
    a = plan.arrays["A"]
    assert a.row_pins == tuple(range(1, 33)) and a.col_pins == tuple(range(37, 69))
    assert a.crosspoints(0, 0) == (("A", 1), ("B", 37))
    assert [p.model for p in plan.smus()] == ["keithley2600"]


def test_unreachable_instrument_is_a_clear_error_before_anything_runs():
    data = station_dict()
    data["instruments"]["smu"]["resource"] = "TCPIP0::127.0.0.1::1::SOCKET"
    data["instruments"]["matrix"]["resource"] = "TCPIP0::127.0.0.1::1::SOCKET"
    with pytest.raises(ConfigError, match="instruments.smu.resource: cannot connect to keithley2600"):
        build_backend(parse_station(data))


def test_backend_kinds_are_registered_and_an_unknown_one_is_a_clear_error():
    assert {"twin", "smu-matrix", "board"} <= set(backend_kinds())
    assert backend_kind("board").name == "board" and not backend_kind("board").fabricates_arrays
    with pytest.raises(ConfigError, match=r"backend: 'fpga9000' is not available in this installation \(installed: "):
        backend_kind("fpga9000")


# --------------------------------------------------------------------------- operations


def test_read_whole_array_matches_the_twin_and_leaves_everything_safe():
    with (
        emulated(station_dict("2600+707b", rows=4, cols=4), seed=11) as bench,
        open_backend(bench.station) as backend,
    ):
        readout = backend.read("A", None, 0.5)
        truth = np.array([[bench.wiring.conductance("A", r, c) for c in range(4)] for r in range(4)])
        assert readout.conductance_S.shape == (4, 4)
        np.testing.assert_allclose(readout.conductance_S, truth, rtol=0.01)
        _sync(backend, "smu", "matrix")
        assert _off_and_open(bench) == (False, set())
        one = backend.read("A", [(2, 3)], 0.5)
        assert one.conductance_S.shape == (1,)
        assert one.conductance_S[0] == pytest.approx(truth[2, 3], rel=0.01)


def test_only_the_routes_an_operation_needs_are_closed():
    """At every SMU measurement or train, exactly the two crosspoints of one cell are closed."""
    seen: list[set] = []
    benches: list = []

    def spy(message: str) -> None:
        if message.startswith("rramhil_train(") or "print(smua.measure.i())" in message:
            seen.append(benches[0].emulators["matrix"].crosspoints())

    with emulated(station_dict("2600+707b", rows=3, cols=3), seed=2, on_message={"smu": spy}) as bench:
        benches.append(bench)
        with open_backend(bench.station) as backend:
            backend.read("A", [(0, 0), (2, 1)], 0.5)
            backend.pulse("A", [(1, 2)], Pulse(2.0, 1e-4), 3, read_after=True)
    assert seen == [{("A", 1), ("B", 37)}, {("A", 3), ("B", 38)}, {("A", 2), ("B", 39)}]


@pytest.mark.parametrize("stack", ["2600+707b", "b2900+e5250a"])
def test_pulse_train_with_reads_and_program(stack):
    with (
        emulated(station_dict(stack, rows=3, cols=3), seed=4) as bench,
        open_backend(bench.station) as backend,
    ):
        before = backend.read("A", None, 0.5).conductance_S
        train = backend.pulse(
            "A", [(0, 1), (2, 2)], Pulse(2.0, 1e-4), 10, read_after=True, read_voltage_V=0.5
        )
        assert train.conductance_S.shape == (2, 10)
        assert np.all(np.diff(train.conductance_S, axis=1) > -0.01 * train.conductance_S[:, 1:])
        assert np.all(train.conductance_S[:, -1] > 1.5 * before[[0, 2], [1, 2]])
        assert train.t_s.shape == (10,) and np.all(np.diff(train.t_s) > 0)
        counts = np.zeros((3, 3), dtype=int)
        counts[1, 0] = 7
        counts[0, 2] = 3
        result = backend.program("A", counts, Pulse(2.0, 1e-4))
        assert (result.pulses_applied, result.cells_programmed, result.max_count) == (10, 2, 7)
        after = backend.read("A", None, 0.5).conductance_S
        assert after[1, 0] > 1.5 * before[1, 0]
        assert after[0, 2] > 1.2 * before[0, 2]
        assert after[1, 1] == pytest.approx(before[1, 1], rel=0.01)  # untouched
        _sync(backend, "smu", "matrix")
        assert _off_and_open(bench) == (False, set())


def test_outer_product_update_and_vmm_fall_back_to_per_cell_operations():
    with (
        emulated(station_dict("2600+707b", rows=3, cols=3), seed=6) as bench,
        open_backend(bench.station) as backend,
    ):
        g = backend.read("A", None, 0.5).conductance_S
        v = np.array([0.1, 0.2, 0.3])
        np.testing.assert_allclose(backend.vmm("A", v), v @ g, rtol=0.02)
        np.testing.assert_allclose(backend.vmm("A", v, "backward"), v @ g.T, rtol=0.02)
        result = backend.program_outer(
            "A", np.array([2.0, 0.0, 1.0]), np.array([0.0, 3.0, 1.0]), Pulse(2.0, 1e-4)
        )
        assert (result.pulses_applied, result.cells_programmed) == (6 + 2 + 3 + 1, 4)


def test_iv_sweep_through_the_matrix_with_compliance():
    with (
        emulated(station_dict("2450+708b", rows=3, cols=3), seed=1) as bench,
        open_backend(bench.station) as backend,
    ):
        v = np.array([0.0, 0.5, 1.0, 2.0, 3.0, 1.0, 0.0])
        iv = backend.iv_sweep("A", 1, 1, v, compliance_A=1e-4, dwell_s=1e-3)
        np.testing.assert_allclose(iv.voltage_V[:3], v[:3], atol=1e-6)
        assert iv.current_A[2] > iv.current_A[1] > 0
        assert iv.in_compliance[4] and not iv.in_compliance[1]
        assert abs(iv.current_A[4]) == pytest.approx(1e-4, rel=1e-3)
        assert iv.voltage_V[4] < 3.0  # the source could not reach 3 V at 100 uA
        _sync(backend, "smu")
        assert bench.emulators["smu"].outputs() == {"1": False}


def test_pulse_shorter_than_the_smu_makes_is_refused_before_anything_is_sent():
    with (
        emulated(station_dict("2450+708b", rows=2, cols=2), seed=1) as bench,
        open_backend(bench.station) as backend,
    ):
        sent = bench.emulators["smu"].messages_received
        with pytest.raises(
            LimitError,
            match=r"width_s = 0.0001 is outside the allowed range >= 0.001 s, the shortest pulse of the keithley2450",
        ):
            backend.pulse("A", [(0, 0)], Pulse(2.0, 1e-4), 5)
        assert bench.emulators["smu"].messages_received == sent


def test_safety_layer_sits_in_front():
    with emulated(station_dict(), seed=1) as bench, open_backend(bench.station) as backend:
        sent = bench.emulators["smu"].messages_received
        with pytest.raises(LimitError, match="amplitude_V"):
            backend.pulse("A", [(0, 0)], Pulse(9.0, 1e-4), 1)
        with pytest.raises(LimitError, match="compliance_A"):
            backend.pulse("A", [(0, 0)], Pulse(2.0, 1e-4, compliance_A=1.0), 1)
        assert bench.emulators["smu"].messages_received == sent
        assert backend.capabilities.instrument_side_trains and not backend.capabilities.native_vmm
        info = backend.identify()
        assert info["backend"] == "smu-matrix" and "2636B" in info["smu"] and "707B" in info["matrix"]


def test_stuck_relay_is_caught_on_the_next_route_and_in_the_safe_state():
    from sim_backend.emulators.scpi_server import Fault

    faults = {"matrix": [Fault("stuck_relay", channel="1A01")]}
    with emulated(station_dict(), seed=1, faults=faults) as bench:
        backend = open_backend(bench.station)
        backend.read("A", [(0, 0)], 0.5)  # closes 1A01, which then sticks
        with pytest.raises(BackendError, match=r"closed but should be open: \[\('A', 1\)\]"):
            backend.read("A", [(1, 0)], 0.5)
        with pytest.raises(
            BackendError, match=r"matrix \(keithley707b\): crosspoints still closed .*\('A', 1\)"
        ):
            backend.safe_state()
        backend.close()
        assert bench.emulators["smu"].outputs() == {"a": False, "b": False}
        assert bench.emulators["matrix"].closed_channels() == {"1A01"}


def test_stream_update_is_applied_cell_by_cell_with_each_coincidence_count():
    """Source-measure units behind a switch matrix cannot fire rows and columns together: a
    pulse-coincidence update is applied as each cell's coincidence count, one routed train per
    cell in turn (sequential rather than parallel), the same pulses per cell."""
    trains: list[str] = []

    def spy(message: str) -> None:
        if message.startswith("rramhil_train("):
            trains.append(message)

    rows = np.array([[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0]], dtype=bool)
    cols = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=bool)
    # row 0 fires in slots 0, 2, 3; row 2 in 0, 1; col 0 in 0, 2; col 1 in 1; col 2 in 3
    expected = np.array([[2, 0, 1], [0, 0, 0], [1, 1, 0]])
    with (
        emulated(station_dict("2600+707b", rows=3, cols=3), seed=5, on_message={"smu": spy}) as bench,
        open_backend(bench.station) as backend,
    ):
        before = backend.read("A", None, 0.5).conductance_S
        result = backend.program_streams("A", rows, cols, Pulse(2.0, 1e-4))
        after = backend.read("A", None, 0.5).conductance_S
    assert (result.pulses_applied, result.cells_programmed, result.max_count) == (5, 4, 2)
    assert sorted(int(t.split(",")[3]) for t in trains) == sorted(expected[expected > 0].tolist())
    hit = expected > 0
    assert np.all(after[hit] > 1.1 * before[hit])
    np.testing.assert_allclose(after[~hit], before[~hit], rtol=0.01)  # untouched
