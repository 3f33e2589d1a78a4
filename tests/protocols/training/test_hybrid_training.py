"""The hybrid-training protocol on the twin: mapping, phases, resets, records, resume, ex-situ."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from hil.backend import Backend, outer_counts
from hil.backends import open_backend
from hil.cli import app
from hil.engine import RunEngine, prepare
from hil.errors import ConfigError
from hil.protocol import NullProgress, RunContext
from hil.station import load_station, parse_station
from hil.store import Store
from hil.store.training import (
    epoch_arrays_df,
    epochs_df,
    load_snapshot,
    snapshot_index,
    tracked_df,
    weight_errors_df,
)
from hil.types import Capabilities
from protocols.training import HybridTrainingParams
from protocols.training.devices import ArrayNetwork
from protocols.training.layout import array_name
from tests.helpers import RecordingBackend, twin_station
from tests.helpers import run as run_protocol

SMALL = {"hidden": [6], "train_limit": 40, "test_limit": 20, "eval_batch": 16, "track_interval": 10}


def run(store: Store, data_dir: str, **params: Any) -> int:
    every = {**SMALL, "data_dir": data_dir, **params}
    return run_protocol(store, "hybrid-training", load_station(None), **every).run_id


# ---------------------------------------------------------------------- a backend that records calls
class Recording(RecordingBackend):
    """Delegates to another backend and records every call (name, key arguments)."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner, refuse={"iv_sweep": "training never sweeps I-V"})


def array_network(store: Store, data_dir: str, **params: Any) -> tuple[ArrayNetwork, Recording]:
    _, checked, station = prepare(
        "hybrid-training", load_station(None), {**SMALL, "data_dir": data_dir, **params}
    )
    backend = Recording(open_backend(station, 0))
    run_id = store.create_run("hybrid-training", {}, station.snapshot(), "twin")
    ctx = RunContext(run_id, backend, store, station, 0, NullProgress())
    net = ArrayNetwork(ctx, checked, np.random.default_rng(0))
    net.calibrate()
    return net, backend


# ---------------------------------------------------------------------- twin arrays: physics of k
def test_small_arrays_are_k_times_smaller_devices(store: Store, data_dir: str) -> None:
    net, _ = array_network(store, data_dir, k=10)
    station = net.ctx.station
    areas = {a.name: a.device_area_m2 for a in station.arrays}
    assert areas["L1_gp"] == pytest.approx(areas["L1_Gp"] / 10)
    lay = net.layers[0]
    # the calibrated step per pulse of g is 1/k of G's: the gain comes from the devices
    assert lay.step["gp"] / lay.step["Gp"] == pytest.approx(0.1, rel=0.1)


def test_g400_window_mode_keeps_the_step_and_widens_the_window(store: Store, data_dir: str) -> None:
    net, _ = array_network(store, data_dir, k=100, g_states=400)
    lay = net.layers[0]
    assert lay.step["gp"] / lay.step["Gp"] == pytest.approx(0.01, rel=0.1)
    window_ratio = np.median(lay.gmax["gp"] - lay.gmin["gp"]) / np.median(lay.gmax["Gp"] - lay.gmin["Gp"])
    assert window_ratio == pytest.approx(400 / 50 / 100, rel=0.1)
    step_mode, _ = array_network(store, data_dir, k=100, g_states=400, g_states_mode="step")
    assert step_mode.layers[0].step["gp"] / step_mode.layers[0].step["Gp"] == pytest.approx(
        0.01 * 50 / 400, rel=0.1
    )


def test_forward_pass_is_the_physical_sum_of_all_four_arrays(store: Store, data_dir: str) -> None:
    net, backend = array_network(store, data_dir, k=10)
    lay = net.layers[1]
    rng = np.random.default_rng(3)
    for kind in ("Gp", "Gm", "gp", "gm"):
        backend.program(lay.names[kind], rng.integers(0, 20, size=(lay.rows, lay.cols)), net.set_pulse)
    x = rng.random(lay.rows)
    z = net.layer_forward(lay, x)
    assert backend.calls[-1] == ("vmm", (tuple(lay.names.values()), "forward", (1.0, -1.0, 1.0, -1.0)))
    g = {
        k: backend.inner.inner.model(n).conductance(backend.now()).reshape(lay.rows, lay.cols)
        for k, n in lay.names.items()
    }
    w = lay.alpha * (g["Gp"] - g["Gm"] + g["gp"] - g["gm"])  # no software 1/k anywhere
    np.testing.assert_allclose(z, x @ w, rtol=0.05, atol=0.02 * np.abs(x @ w).max())


# ---------------------------------------------------------------------- the update mapping
@pytest.mark.parametrize(
    ("phase", "fine_counts"), [("dynamic", "same"), ("fine", "same"), ("fine", "rescaled")]
)
def test_update_is_one_outer_product_per_array_with_rounded_counts(
    store: Store, data_dir: str, phase: str, fine_counts: str
) -> None:
    # fine tuning rounded as dynamic tuning is (its default is stochastic rounding)
    net, backend = array_network(store, data_dir, k=10, fine_counts=fine_counts, fine_pulse_mapping="same")
    lay = net.layers[1]
    x = np.r_[np.linspace(0, 1, lay.rows - 1), 1.0]
    delta = np.array([0.6, -0.4, 0.0, 0.05, -0.9, 0.3, -0.2, 0.8, -0.7, 0.1])
    backend.calls.clear()
    net.update(lay, x, delta, phase, 1, 0)
    plus, minus = ("Gp", "Gm") if phase == "dynamic" else ("gp", "gm")
    calls = [c for c in backend.calls if c[0].startswith("program")]
    assert [c[1][0] for c in calls] == [lay.names[plus], lay.names[minus]]  # one call per array
    for (_, (_, r, c)), kind, sign in zip(calls, (plus, minus), (1.0, -1.0), strict=True):
        dw = -net.p.lr * np.multiply.outer(x, delta)
        # fine tuning with fine_counts=same applies the counts computed for G (array selection)
        step = lay.step["G" + kind[1] if fine_counts == "same" else kind]
        want = np.minimum(np.rint(np.maximum(sign * dw, 0) / (lay.alpha * step)), lay.states[kind])
        assert want.sum() > 0
        np.testing.assert_array_equal(outer_counts(r, c), want)
    # potentiation only: the + device grows where dW > 0, the - device where dW < 0
    assert all(np.all(c[1][2][delta > 0] == 0) for c in calls[:1])
    assert all(np.all(c[1][2][delta < 0] == 0) for c in calls[1:])


def test_fine_tuning_with_the_same_counts_changes_weights_by_the_small_gain(
    store: Store, data_dir: str
) -> None:
    """fine_counts=same: G's pulse counts routed to g, so dW is scaled by g's gain 1/k (device physics)."""
    net, _ = array_network(store, data_dir, k=10, c2c_sigma_over_mu=0.0, d2d_sigma=0.0)
    lay = net.layers[1]
    x = np.full(lay.rows, 1.0)
    delta = np.full(lay.cols, -4.0 * lay.alpha * lay.step["Gp"] / net.p.lr)  # 4 G steps of dW on + devices
    before = net.weights(lay)
    net.update(lay, x, delta, "fine", 1, 0)
    change = net.weights(lay) - before
    dw = -net.p.lr * np.multiply.outer(x, delta)
    ratio = np.median(change / dw)
    # 1/k (the twin's area ratio), give or take the nonlinearity: fresh g devices sit at Gmin,
    # where a step is larger than the window's mean step (12 % larger for the first four)
    assert lay.step["gp"] / lay.step["Gp"] == pytest.approx(1 / 10, rel=0.02)
    assert 1 / 10 < ratio < 1.3 / 10


def test_stochastic_mapping_rounds_up_with_the_fraction(store: Store, data_dir: str) -> None:
    net, backend = array_network(store, data_dir, pulse_mapping="stochastic")
    lay = net.layers[1]
    x = np.full(lay.rows, 1.0)
    target = 0.3 * lay.alpha * lay.step["Gp"] / net.p.lr  # 0.3 pulse expected per cell
    totals = 0
    for _ in range(20):
        backend.calls.clear()
        net.update(lay, x, np.full(lay.cols, -target), "dynamic", 1, 0)
        calls = [c for c in backend.calls if c[0].startswith("program")]
        # one call, on the + array only (dW > 0), listing the cells that get pulses, row-major
        assert [(c[0], c[1][0]) for c in calls] == [("program_cells", lay.names["Gp"])]
        cells, counts = calls[0][1][1], calls[0][1][2]
        flat = cells[:, 0] * lay.cols + cells[:, 1]
        assert np.all(np.diff(flat) > 0) and np.all(counts >= 1)
        totals += int(counts.sum())
    assert totals / (20 * lay.rows * lay.cols) == pytest.approx(0.3, abs=0.05)


def test_fine_tuning_maps_its_updates_its_own_way(store: Store, data_dir: str) -> None:
    """``fine_pulse_mapping=stochastic`` with ``pulse_mapping=round``: an update of 0.3 pulse a
    cell moves nothing in dynamic tuning (rounded to 0) and lands with its probability on g."""
    net, backend = array_network(store, data_dir, fine_pulse_mapping="stochastic")
    lay = net.layers[1]
    x = np.full(lay.rows, 1.0)
    delta = np.full(lay.cols, -0.3 * lay.alpha * lay.step["Gp"] / net.p.lr)  # 0.3 of a G step
    backend.calls.clear()
    net.update(lay, x, delta, "dynamic", 1, 0)
    assert not [c for c in backend.calls if c[0].startswith("program")]
    totals = 0
    for _ in range(20):
        backend.calls.clear()
        net.update(lay, x, delta, "fine", 1, 0)
        calls = [c for c in backend.calls if c[0].startswith("program")]
        assert [(c[0], c[1][0]) for c in calls] == [("program_cells", lay.names["gp"])]
        totals += int(calls[0][1][2].sum())
    # fine_counts=same: g gets G's counts, 0.3 a cell on average
    assert totals / (20 * lay.rows * lay.cols) == pytest.approx(0.3, abs=0.05)
    assert [net.pulse_mapping(phase) for phase in ("dynamic", "fine")] == ["round", "stochastic"]
    with pytest.raises(
        ConfigError,
        match=r"fine_pulse_mapping: .*got 'often'; allowed: .*same, round, stochastic or coincidence",
    ):
        prepare("hybrid-training", load_station(None), {"fine_pulse_mapping": "often"})


# ---------------------------------------------------------------------- occasional reset
def test_saturated_pairs_are_reset_and_keep_their_weight(store: Store, data_dir: str) -> None:
    net, backend = array_network(store, data_dir, k=10, c2c_sigma_over_mu=0.0, d2d_sigma=0.0, reset_level=0.8)
    lay = net.layers[1]
    counts_p = np.zeros((lay.rows, lay.cols), dtype=np.int64)
    counts_m = np.zeros_like(counts_p)
    counts_p[:3] = 48
    counts_m[:3] = 40  # pair near saturation with a net of about 8 steps
    counts_m[5] = 6  # a pair far from saturation
    backend.program(lay.names["Gp"], counts_p, net.set_pulse)
    backend.program(lay.names["Gm"], counts_m, net.set_pulse)
    before = net.read(lay.names["Gp"]) - net.read(lay.names["Gm"])
    backend.calls.clear()
    resets = net.check_saturation("dynamic", 1, 0, [lay])
    assert resets == 3 * lay.cols
    gp, gm = net.read(lay.names["Gp"]), net.read(lay.names["Gm"])
    x = (gp - lay.gmin["Gp"]) / (lay.gmax["Gp"] - lay.gmin["Gp"])
    twin = backend.inner.inner
    working = ~(twin.model(lay.names["Gp"]).stuck | twin.model(lay.names["Gm"]).stuck)[:3]
    assert x[:3][working].max() < 0.5  # reset, then the net re-programmed on one device
    np.testing.assert_allclose((gp - gm)[:3][working], before[:3][working], atol=1.0 * lay.step["Gp"])
    np.testing.assert_allclose((gp - gm)[5], before[5], atol=0.2 * lay.step["Gp"])  # untouched
    strong = [c for c in backend.calls if c[0] == "pulse"]
    assert {c[1][0] for c in strong} == {lay.names["Gp"], lay.names["Gm"]}
    assert all(c[1][1].amplitude_V == -4.0 and c[1][2] == 5 for c in strong)


# ---------------------------------------------------------------------- whole runs
def test_hybrid_run_records_everything_per_epoch(store: Store, data_dir: str) -> None:
    run_id = run(store, data_dir, epochs=2, max_dynamic_epochs=1, werror_interval=2)
    ep = epochs_df(store, run_id)
    assert list(ep["epoch"]) == [0, 1, 2]
    assert list(ep["phase"]) == ["init", "dynamic", "fine"]
    assert bool(ep["switched"].iloc[1]) and not bool(ep["switched"].iloc[2])
    for col in ("train_accuracy", "test_accuracy", "mse", "pulses", "resets", "energy_J",
                "update_time_parallel_s", "update_time_serial_s", "update_frequency"):  # fmt: skip
        assert ep[col].notna().all(), col
    assert (ep["update_time_serial_s"] >= ep["update_time_parallel_s"]).all()
    arr = epoch_arrays_df(store, run_id)
    e1, e2 = arr[arr["epoch"] == 1].set_index("array"), arr[arr["epoch"] == 2].set_index("array")
    # dynamic tuning programs only G, fine tuning only g
    assert e1.loc[["L1_gp", "L1_gm", "L2_gp", "L2_gm"], "pulses"].sum() == 0
    assert e1.loc[["L1_Gp", "L1_Gm", "L2_Gp", "L2_Gm"], "pulses"].sum() > 0
    assert e2.loc[["L1_Gp", "L1_Gm", "L2_Gp", "L2_Gm"], "pulses"].sum() == 0
    assert e2.loc[["L1_gp", "L1_gm", "L2_gp", "L2_gm"], "pulses"].sum() > 0
    snaps = snapshot_index(store, run_id)
    names = {array_name(layer, k) for layer in (1, 2) for k in ("Gp", "Gm", "gp", "gm")}
    for epoch in (0, 1, 2):
        assert set(snaps[(snaps["epoch"] == epoch) & (snaps["kind"] == "conductance")]["array"]) == names
    assert set(snaps[snaps["epoch"] == -1]["kind"]) == {"gmin", "gmax"}
    g1, g2 = load_snapshot(store, run_id, 1, "L2_Gp"), load_snapshot(store, run_id, 2, "L2_Gp")
    np.testing.assert_allclose(g1, g2, rtol=0.02)  # G frozen in fine tuning (read noise only)
    tr = tracked_df(store, run_id)
    assert set(tr["epoch"]) == {0, 1, 2} and tr["weight_small"].notna().all()
    np.testing.assert_allclose(tr["weight"], tr["weight_big"] + tr["weight_small"])
    we = weight_errors_df(store, run_id)
    assert set(we["epoch"]) == {1, 2} and we.groupby("epoch")["count"].sum().eq(7 * 10).all()
    events = store.events_df(run_id)
    assert "phase-switch" in set(events["kind"]) and "calibrated" in set(events["kind"])


def test_float_and_hybrid_learn_the_easy_digits(store: Store, data_dir: str) -> None:
    fp = epochs_df(store, run(store, data_dir, synapse="fp", epochs=3, train_limit=120))
    assert fp["test_accuracy"].iloc[-1] >= 90
    hy = epochs_df(store, run(store, data_dir, epochs=3, train_limit=120, hidden=[20]))
    assert hy["test_accuracy"].iloc[-1] > hy["test_accuracy"].iloc[0] + 30


def test_single_synapse_has_only_g_big_arrays_and_never_switches(store: Store, data_dir: str) -> None:
    run_id = run(store, data_dir, synapse="single", epochs=2, switch_threshold_pp=100)
    ep = epochs_df(store, run_id)
    assert list(ep["phase"]) == ["init", "dynamic", "dynamic"]
    assert set(epoch_arrays_df(store, run_id)["array"]) == {"L1_Gp", "L1_Gm", "L2_Gp", "L2_Gm"}


def test_resume_continues_from_the_last_committed_epoch(store: Store, data_dir: str) -> None:
    class StopAfterFirstEpoch(NullProgress):
        def __init__(self) -> None:
            self.seen = 0

        def advance(self, amount: float = 1, status: str | None = None) -> None:
            if amount:  # a call with 0 reports the epochs already done
                self.seen += 1
                if self.seen == 1:
                    raise KeyboardInterrupt("killed")

    params = {**SMALL, "data_dir": data_dir, "epochs": 3, "max_dynamic_epochs": 1}
    engine = RunEngine(store, progress=StopAfterFirstEpoch)
    outcome = engine.run("hybrid-training", load_station(None), params, plot=False)
    assert outcome.status == "interrupted"
    assert list(epochs_df(store, outcome.run_id)["epoch"]) == [0, 1]
    before = load_snapshot(store, outcome.run_id, 1, "L1_Gp")
    resumed = RunEngine(store).resume(outcome.run_id, plot=False)
    assert resumed.status == "completed", resumed.error
    ep = epochs_df(store, outcome.run_id)
    assert list(ep["epoch"]) == [0, 1, 2, 3]
    assert list(ep["phase"]) == ["init", "dynamic", "fine", "fine"]
    assert store.run(outcome.run_id).resumes == 1
    assert "restored" in set(store.events_df(outcome.run_id)["kind"])
    # the re-programmed big arrays match the committed snapshot (G is frozen from epoch 2 on)
    after = load_snapshot(store, outcome.run_id, 2, "L1_Gp")
    gmin, gmax = (load_snapshot(store, outcome.run_id, -1, "L1_Gp", k) for k in ("gmin", "gmax"))
    assert gmin is not None and gmax is not None and before is not None and after is not None
    err_steps = np.abs(after - before) / (np.median(gmax - gmin) / 50)
    assert np.percentile(err_steps, 99) < 1.5 and err_steps.mean() < 0.4


def test_float_run_resumes_from_its_weights(store: Store, data_dir: str) -> None:
    class Stop(NullProgress):
        calls = 0

        def advance(self, amount: float = 1, status: str | None = None) -> None:
            Stop.calls += amount > 0
            if Stop.calls == 1:
                raise KeyboardInterrupt("killed")

    outcome = RunEngine(store, progress=Stop).run(
        "hybrid-training",
        load_station(None),
        {**SMALL, "data_dir": data_dir, "synapse": "fp", "epochs": 2},
        plot=False,
    )
    assert outcome.status == "interrupted"
    assert RunEngine(store).resume(outcome.run_id, plot=False).status == "completed"
    assert list(epochs_df(store, outcome.run_id)["epoch"]) == [0, 1, 2]


def test_ex_situ_programs_float_weights_with_write_verify(store: Store, data_dir: str) -> None:
    run_id = run(store, data_dir, mode="ex-situ", epochs=3, train_limit=120, hidden=[20])
    ep = epochs_df(store, run_id)
    assert list(ep["phase"]) == ["init", "fp", "fp", "fp", "ex-situ"]
    fp_acc, on_arrays = ep["test_accuracy"].iloc[-2], ep["test_accuracy"].iloc[-1]
    assert fp_acc >= 90 and on_arrays >= fp_acc - 10


def test_pulse_logging_option(store: Store, data_dir: str) -> None:
    run_id = run(store, data_dir, epochs=1, log_pulses=True, train_limit=10)
    pulses = store.pulses_df(run_id)
    assert {"update"} <= set(pulses["purpose"]) and (pulses["count"] > 0).all()
    assert set(pulses["array"]) <= {"L1_Gp", "L1_Gm", "L2_Gp", "L2_Gm"}


# ---------------------------------------------------------------------- parameters and CLI
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"w_max": [1.0, 2.0, 3.0]}, "w_max"),
        ({"activation": "softsign"}, "activation"),
        ({"hidden": "0"}, "hidden"),
        ({"k": 0.5}, "k"),
        ({"train_limit": 0}, "train_limit"),
    ],
)
def test_bad_parameters_are_rejected_before_anything_runs(
    params: dict[str, Any], message: str, data_dir: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        prepare("hybrid-training", load_station(None), {**params, "data_dir": data_dir})


def test_hidden_and_w_max_accept_command_line_text() -> None:
    p = HybridTrainingParams.model_validate({"hidden": "500,100", "w_max": "0.5"})
    assert p.hidden == [500, 100] and p.sizes == [784, 500, 100, 10] and p.layer_w_max(3) == 0.5


def test_twin_only_parameters_are_refused_on_hardware(data_dir: str) -> None:
    station = parse_station({
        "name": "bench", "backend": "board", "instruments": {"board": {"model": "board", "resource": "/dev/null"}},
        "arrays": [{"name": f"L{layer}_{kind}", "rows": rows, "cols": cols, "diameter_m": 1e-6}
                   for layer, rows, cols in ((1, 785, 250), (2, 251, 10)) for kind in ("Gp", "Gm")],
    })  # fmt: skip
    with pytest.raises(ConfigError, match="c2c_sigma_over_mu"):
        prepare(
            "hybrid-training", station, {"c2c_sigma_over_mu": 0.5, "data_dir": data_dir, "synapse": "single"}
        )


def test_missing_data_is_a_clear_error_before_the_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train-images-idx3-ubyte"):
        prepare("hybrid-training", load_station(None), {"data_dir": str(tmp_path)})


def test_cli_run(tmp_path: Path, data_dir: str) -> None:
    result = CliRunner().invoke(app, [
        "run", "hybrid-training", "--db", str(tmp_path / "c.sqlite"), "--no-plot",
        "--set", "synapse=hybrid", "--set", "k=10", "--set", "states=50", "--set", "hidden=5",
        "--set", "epochs=1", "--set", "train_limit=20", "--set", "test_limit=10", "--set", f"data_dir={data_dir}",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "completed" in result.output
    bad = CliRunner().invoke(
        app, ["run", "hybrid-training", "--db", str(tmp_path / "c.sqlite"), "--set", "states=1"]
    )
    assert bad.exit_code == 2 and "states" in bad.output


def test_activations_and_their_derivatives() -> None:
    from protocols.training.activations import InputDerivativeActivation, TableActivation, get_activation

    z = np.linspace(-3, 3, 61)
    for name in ("sigmoid", "tanh", "hard_sigmoid"):
        act = get_activation(name)
        y = act.f(z)
        h = 1e-6
        numeric = (act.f(z + h) - act.f(z - h)) / (2 * h)
        ok = np.abs(np.abs(z) - 2.0) > 1e-3  # hard_sigmoid's kinks
        np.testing.assert_allclose(act.df(z, y)[ok], numeric[ok], atol=1e-6)
        assert act.nonnegative == bool(y.min() >= 0)
    table = TableActivation((-1.0, 0.0, 2.0), (0.0, 1.0, 2.0))
    np.testing.assert_allclose(table.f(np.array([-2.0, -0.5, 1.0, 3.0])), [0.0, 0.5, 1.5, 2.0])
    np.testing.assert_allclose(table.df(np.array([-2.0, -0.5, 1.0, 3.0]), np.zeros(4)), [0.0, 1.0, 0.5, 0.0])

    class Measured:  # an object with df(z) only, as a measured neuron activation has
        def f(self, z: np.ndarray) -> np.ndarray:
            return 2.0 * z

        def df(self, z: np.ndarray) -> np.ndarray:
            return np.full_like(z, 2.0)

    wrapped = InputDerivativeActivation(Measured())
    np.testing.assert_allclose(wrapped.df(np.array([1.0]), np.array([9.0])), [2.0])
    np.testing.assert_allclose(wrapped.f(np.array([1.5])), [3.0])
    with pytest.raises(ConfigError, match="strictly increasing"):
        TableActivation((0.0, 0.0), (1.0, 2.0))
    with pytest.raises(ConfigError, match="known"):
        get_activation("softsign")


def test_without_native_vmm_the_passes_use_reads_of_changed_arrays_only(store: Store, data_dir: str) -> None:
    class NoVMM(Recording):
        @property
        def capabilities(self) -> Capabilities:
            return Capabilities(native_vmm=False)

    _, checked, station = prepare("hybrid-training", load_station(None), {**SMALL, "data_dir": data_dir})
    backend = NoVMM(open_backend(station, 0))
    run_id = store.create_run("hybrid-training", {}, station.snapshot(), "twin")
    net = ArrayNetwork(
        RunContext(run_id, backend, store, station, 0, NullProgress()), checked, np.random.default_rng(0)
    )
    net.calibrate()
    lay = net.layers[1]
    x = np.linspace(0, 1, lay.rows)
    backend.calls.clear()
    z = net.layer_forward(lay, x)
    assert sorted(c[1][0] for c in backend.calls) == sorted(lay.names.values())  # four reads, no vmm
    assert all(c[0] == "read" for c in backend.calls)
    backend.calls.clear()
    net.layer_forward(lay, x)
    net.layer_backward(lay, np.ones(lay.cols))
    assert backend.calls == []  # nothing programmed: nothing read again
    net.update(lay, x, np.full(lay.cols, -1.0), "dynamic", 1, 0)
    backend.calls.clear()
    z2 = net.layer_forward(lay, x)
    assert [c[1][0] for c in backend.calls if c[0] == "read"] == [lay.names["Gp"]]  # only the programmed one
    assert np.all(z2 >= z - 1e-9)


def test_pooled_inputs_make_a_tiny_network(store: Store, data_dir: str) -> None:
    run_id = run(store, data_dir, input_pool=7, hidden=[3], epochs=1)
    arrays = {a["name"]: (a["rows"], a["cols"]) for a in store.run(run_id).station["arrays"]}
    assert arrays["L1_Gp"] == (17, 3) and arrays["L2_gm"] == (4, 10)
    assert HybridTrainingParams.model_validate({"input_pool": 14}).sizes == [4, 250, 10]
    with pytest.raises(ConfigError, match="input_pool"):
        prepare("hybrid-training", load_station(None), {"input_pool": 5, "data_dir": data_dir})


def test_run_plot_has_the_figure_panels(store: Store, data_dir: str, tmp_path: Path) -> None:
    from protocols.training.plots import plot_training_run

    run_id = run(store, data_dir, epochs=2, max_dynamic_epochs=1, werror_interval=2)
    path = plot_training_run(store, run_id, tmp_path / "run.png")
    assert path is not None and path.stat().st_size > 20_000


def test_activation_measured_on_a_neuron_device_trains_the_network(store: Store, data_dir: str) -> None:
    """``activation=iv-run:RUN:...``: the NDR neuron's I-V curve measured in this database."""
    from protocols.training.activations import get_activation

    station = twin_station(
        arrays=[{"name": "NEURON", "rows": 1, "cols": 1, "diameter_m": 1e-6, "preset": "ndr_neuron_yang2024"}]
    )
    iv = run_protocol(store, "dc-iv", station, array="NEURON", cells="0,0", cycles=1, v_set_V=4.0,
                      v_reset_V=-4.0, v_step_V=0.05).run_id  # fmt: skip
    name = f"iv-run:{iv}:NEURON:0:0"
    act = get_activation(name, store)
    z = np.linspace(0.0, 3.0, 61)
    assert act.f(np.array([1.0]))[0] == pytest.approx(1.0, abs=0.01)  # the current peak is z = 1
    assert np.argmax(act.f(z)) == pytest.approx(20, abs=2)  # rises to the peak, then falls (NDR)
    run_id = run(store, data_dir, synapse="fp", activation=name, epochs=2, train_limit=120)
    assert store.run(run_id).parameters["activation"] == name
    acc = epochs_df(store, run_id)["test_accuracy"]
    assert acc.iloc[-1] >= acc.iloc[0] + 30  # the measured curve learns
    for bad, message in ((f"iv-run:{iv + 99}", "no I-V readings"), ("iv-run:x", "iv-run:RUN")):
        with pytest.raises(ConfigError, match=message):
            get_activation(bad, store)
