"""The safety layer: no out-of-limit command ever reaches a backend implementation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.safety import LimitError, SafeBackend, SafetyLimits
from hil.types import ArraySpec, Pulse
from tests.helpers import RecordingBackend

ARRAYS = {
    "A": ArraySpec("A", 4, 5, 1e-12),
    "B": ArraySpec("B", 4, 5, 1e-12),
    "C": ArraySpec("C", 3, 3, 1e-13),
}


def recording() -> RecordingBackend:
    """A backend implementation that only records what reaches it (and answers zeros)."""
    return RecordingBackend(arrays=ARRAYS)


# ---------------------------------------------------------------------------- the oracle
def within(cmd: str, kw: dict[str, Any], lim: SafetyLimits) -> bool:
    """Independent restatement of the limits: is this command allowed?"""

    def pulse_ok(p: Pulse) -> bool:
        return (
            abs(p.amplitude_V) <= lim.max_abs_voltage_V
            and lim.min_pulse_width_s <= p.width_s <= lim.max_pulse_width_s
            and (p.compliance_A is None or 0 < p.compliance_A <= lim.max_compliance_A)
        )

    def read_v_ok(v: float) -> bool:
        return 0 < abs(v) <= lim.max_read_voltage_V

    def cells_ok(array: str, cells: Any) -> bool:
        if array not in ARRAYS:
            return False
        if cells is None:
            return True
        spec = ARRAYS[array]
        return all(0 <= r < spec.rows and 0 <= c < spec.cols for r, c in cells)

    if cmd == "read":
        return cells_ok(kw["array"], kw["cells"]) and read_v_ok(kw["voltage_V"])
    if cmd == "pulse":
        return (
            cells_ok(kw["array"], kw["cells"])
            and pulse_ok(kw["pulse"])
            and 1 <= kw["count"] <= lim.max_pulses_per_call
            and (not kw["read_after"] or read_v_ok(kw["read_voltage_V"]))
        )
    if cmd == "program":
        counts = kw["counts"]
        return (
            kw["array"] in ARRAYS
            and counts.shape == ARRAYS[kw["array"]].shape
            and counts.min() >= 0
            and counts.max() <= lim.max_pulses_per_call
            and pulse_ok(kw["pulse"])
        )
    if cmd == "program_cells":
        counts = kw["counts"]
        return (
            cells_ok(kw["array"], kw["cells"])
            and len(set(kw["cells"])) == len(kw["cells"])
            and counts.shape == (len(kw["cells"]),)
            and counts.min() >= 0
            and counts.max() <= lim.max_pulses_per_call
            and pulse_ok(kw["pulse"])
        )
    if cmd == "program_outer":
        spec = ARRAYS.get(kw["array"])
        r, c = kw["r"], kw["c"]
        return (
            spec is not None
            and r.shape == (spec.rows,)
            and c.shape == (spec.cols,)
            and r.min() >= 0
            and c.min() >= 0
            and np.rint(np.outer(r, c)).max() <= lim.max_pulses_per_call
            and pulse_ok(kw["pulse"])
        )
    if cmd == "vmm":
        spec = ARRAYS.get(kw["array"])
        v = kw["voltages_V"]
        return spec is not None and v.shape == (spec.rows,) and np.abs(v).max() <= lim.max_read_voltage_V
    if cmd == "iv_sweep":
        spec = ARRAYS.get(kw["array"])
        return (
            spec is not None
            and 0 <= kw["row"] < spec.rows
            and 0 <= kw["col"] < spec.cols
            and np.abs(kw["voltages_V"]).max() <= lim.max_abs_voltage_V
            and 0 < kw["compliance_A"] <= lim.max_compliance_A
            and 0 < kw["dwell_s"] <= lim.max_dwell_s
        )
    if cmd == "delay":
        return kw["seconds"] >= 0
    raise AssertionError(cmd)


# ---------------------------------------------------------------------------- strategies
volts = st.floats(-12.0, 12.0, allow_nan=False)
widths = st.floats(1e-11, 0.1, allow_nan=False)
arrays = st.sampled_from(["A", "B", "C", "Z"])
pulses = st.builds(Pulse, volts, widths, st.one_of(st.none(), st.floats(-1e-3, 0.05, allow_nan=False)))
cells = st.one_of(
    st.none(), st.lists(st.tuples(st.integers(-1, 5), st.integers(-1, 6)), min_size=1, max_size=4)
)


@st.composite
def commands(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(
        st.sampled_from(
            ["read", "pulse", "program", "program_cells", "program_outer", "vmm", "iv_sweep", "delay"]
        )
    )
    array = draw(arrays)
    spec = ARRAYS.get(array, ARRAYS["A"])
    if kind == "read":
        return kind, {"array": array, "cells": draw(cells), "voltage_V": draw(volts)}
    if kind == "pulse":
        c = draw(cells)
        return kind, {
            "array": array,
            "cells": c if c is not None else [(0, 0)],
            "pulse": draw(pulses),
            "count": draw(st.integers(0, 300)),
            "read_after": draw(st.booleans()),
            "read_voltage_V": draw(volts),
        }
    if kind == "program":
        shape = draw(st.sampled_from([spec.shape, (2, 2)]))
        counts = draw(
            st.lists(st.integers(-2, 300), min_size=shape[0] * shape[1], max_size=shape[0] * shape[1])
        )
        return kind, {"array": array, "counts": np.array(counts).reshape(shape), "pulse": draw(pulses)}
    if kind == "program_cells":
        some = draw(st.lists(st.tuples(st.integers(-1, 5), st.integers(-1, 6)), min_size=1, max_size=4))
        n = draw(st.sampled_from([len(some), len(some) + 1]))
        counts = np.array(draw(st.lists(st.integers(-2, 300), min_size=n, max_size=n)))
        return kind, {"array": array, "cells": some, "counts": counts, "pulse": draw(pulses)}
    if kind == "program_outer":
        r = np.array(
            draw(st.lists(st.floats(-1, 20, allow_nan=False), min_size=spec.rows, max_size=spec.rows))
        )
        c = np.array(
            draw(st.lists(st.floats(-1, 20, allow_nan=False), min_size=spec.cols, max_size=spec.cols))
        )
        return kind, {"array": array, "r": r, "c": c, "pulse": draw(pulses)}
    if kind == "vmm":
        n = draw(st.sampled_from([spec.rows, spec.rows + 1]))
        v = np.array(draw(st.lists(st.floats(-2, 2, allow_nan=False), min_size=n, max_size=n)))
        return kind, {"array": array, "voltages_V": v}
    if kind == "iv_sweep":
        v = np.array(draw(st.lists(volts, min_size=1, max_size=6)))
        return kind, {
            "array": array,
            "row": draw(st.integers(-1, 5)),
            "col": draw(st.integers(-1, 6)),
            "voltages_V": v,
            "compliance_A": draw(st.floats(-1e-3, 0.05, allow_nan=False)),
            "dwell_s": draw(st.floats(-0.1, 2.0, allow_nan=False)),
        }
    return kind, {"seconds": draw(st.floats(-10, 1e6, allow_nan=False))}


limits_strategy = st.builds(
    SafetyLimits,
    max_abs_voltage_V=st.floats(1.5, 10.0),
    max_read_voltage_V=st.floats(0.2, 1.5),
    max_compliance_A=st.floats(1e-4, 0.02),
    min_pulse_width_s=st.floats(1e-10, 1e-7),
    max_pulse_width_s=st.floats(1e-4, 0.05),
    max_pulses_per_call=st.integers(1, 200),
    max_dwell_s=st.floats(0.01, 1.5),
)

COMMANDS_SEEN = {"allowed": 0, "refused": 0}


def send(safe: SafeBackend, cmd: str, kw: dict[str, Any]) -> None:
    if cmd == "vmm":
        safe.vmm(kw["array"], kw["voltages_V"])
    elif cmd == "read":
        safe.read(kw["array"], kw["cells"], kw["voltage_V"])
    else:
        getattr(safe, cmd)(**kw)


@given(lim=limits_strategy, cmds=st.lists(commands(), min_size=8, max_size=8))
@settings(max_examples=1300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def check_random_commands(lim: SafetyLimits, cmds: Sequence) -> None:
    if lim.max_read_voltage_V > lim.max_abs_voltage_V:
        return
    inner = recording()
    safe = SafeBackend(inner, lim)
    for cmd, kw in cmds:
        before = len(inner.calls)
        expected_ok = within(cmd, kw, lim)
        try:
            send(safe, cmd, kw)
        except (LimitError, ValueError):
            assert not expected_ok, f"refused an allowed command {cmd} {kw}"
            assert len(inner.calls) == before, "a refused command reached the backend"
            COMMANDS_SEEN["refused"] += 1
        else:
            assert expected_ok, f"forwarded an out-of-limit command {cmd} {kw}"
            assert len(inner.calls) == before + 1
            COMMANDS_SEEN["allowed"] += 1
    # everything that did reach the backend is inside the limits
    for cmd, kw in ((call.name, call.kwargs) for call in inner.calls):
        if cmd == "vmm":
            kw = {"array": kw["arrays"], "voltages_V": kw["voltages_V"]}
        assert within(cmd, kw, lim)


def test_no_out_of_limit_command_reaches_the_backend() -> None:
    """At least 10,000 random commands (random limits too): each is refused exactly when the oracle
    says it is out of limits, and a refused command never reaches the backend implementation."""
    COMMANDS_SEEN.update(allowed=0, refused=0)
    check_random_commands()
    assert COMMANDS_SEEN["allowed"] + COMMANDS_SEEN["refused"] >= 10_000
    assert COMMANDS_SEEN["allowed"] > 1000 and COMMANDS_SEEN["refused"] > 1000


def test_error_names_parameter_value_and_range() -> None:
    safe = SafeBackend(recording(), SafetyLimits(max_abs_voltage_V=5.0))
    with pytest.raises(LimitError) as exc:
        safe.pulse("A", [(0, 0)], Pulse(6.0, 1e-4))
    msg = str(exc.value)
    assert "amplitude_V = 6" in msg and "[-5, 5] V" in msg and "max_abs_voltage_V" in msg
    assert exc.value.parameter == "amplitude_V"
    with pytest.raises(LimitError, match=r"compliance_A = 0.5 is outside the allowed range \(0, 0.01\] A"):
        safe.iv_sweep("A", 0, 0, np.array([0.0, 1.0]), compliance_A=0.5)
    with pytest.raises(LimitError, match="count = 20000"):
        safe.pulse("A", [(0, 0)], Pulse(1.0, 1e-4), count=20_000)
    with pytest.raises(LimitError, match="amplitude_V = nan"):
        safe.pulse("A", [(0, 0)], Pulse(float("nan"), 1e-4))


def test_limits_themselves_are_validated() -> None:
    with pytest.raises(ValueError, match="max_read_voltage_V"):
        SafetyLimits(max_abs_voltage_V=1.0, max_read_voltage_V=2.0)
    with pytest.raises(ValueError, match="max_abs_voltage_V"):
        SafetyLimits(max_abs_voltage_V=-1)


def test_safe_state_and_context_manager_forward() -> None:
    inner = recording()
    with SafeBackend(inner, SafetyLimits()) as safe:
        safe.read("A", [(0, 0)])
    assert inner.safe_calls == 1
    with pytest.raises(RuntimeError), SafeBackend(inner, SafetyLimits()):
        raise RuntimeError("boom")
    assert inner.safe_calls == 2


def test_checks_remembered_once_never_let_a_new_value_through() -> None:
    """What the hot path remembers (pulse shapes found inside the limits, the structure of a
    read-out) never stands in for a check of a new value: after allowed commands, each command
    that differs in an out-of-limit value is still refused before reaching the backend."""
    inner = recording()
    safe = SafeBackend(inner, SafetyLimits(max_abs_voltage_V=5.0, max_read_voltage_V=1.0, max_pulses_per_call=10))
    ok = Pulse(2.0, 1e-4)
    for _ in range(3):
        safe.program_outer("A", np.ones(4), np.ones(5), ok)
        safe.vmm(["A", "B"], np.full(4, 0.5), "forward", [1.0, -1.0])
    before = len(inner.calls)
    refused = [
        lambda: safe.program_outer("A", np.ones(4), np.ones(5), Pulse(6.0, 1e-4)),
        lambda: safe.program_outer("A", np.ones(4), np.ones(5), Pulse(2.0, 1.0)),
        lambda: safe.program_outer("A", np.ones(4), np.full(5, 11.0), ok),
        lambda: safe.program_outer("A", np.ones(4), np.array([1.0, np.nan, 1.0, 1.0, 1.0]), ok),
        lambda: safe.vmm(["A", "B"], np.full(4, 1.5), "forward", [1.0, -1.0]),
        lambda: safe.vmm(["A", "B"], np.full(5, 0.5), "forward", [1.0, -1.0]),
        lambda: safe.vmm(["A", "C"], np.full(4, 0.5), "forward", [1.0, -1.0]),
        lambda: safe.program_cells("A", [(1, 1), (0, 2), (1, 1)], np.array([1, 1, 1]), ok),
        lambda: safe.program_cells("A", [(0, 1), (1, 1)], np.array([1, 11]), ok),
    ]
    for command in refused:
        with pytest.raises(LimitError):
            command()
    assert len(inner.calls) == before
    # a sorted list of distinct cells, and an unsorted one, are both accepted
    safe.program_cells("A", [(0, 1), (1, 1), (2, 0)], np.array([1, 2, 3]), ok)
    safe.program_cells("A", [(2, 0), (0, 1)], np.array([1, 2]), ok)
    assert len(inner.calls) == before + 2


def test_program_streams_is_checked_before_anything_reaches_the_backend() -> None:
    """Bad streams (not bool, wrong shape, bit lengths that differ or exceed the per-call pulse
    limit) and bad pulses are refused with one line naming the parameter; nothing is applied."""
    inner = recording()
    safe = SafeBackend(inner, SafetyLimits(max_abs_voltage_V=5.0, max_pulses_per_call=10))
    ok = Pulse(2.0, 1e-4)
    rows, cols = np.ones((4, 6), dtype=bool), np.zeros((5, 6), dtype=bool)
    cols[1, ::2] = True
    safe.program_streams("A", rows, cols, ok)
    assert [c[0] for c in inner.calls] == ["program_streams"]
    assert np.array_equal(inner.calls[0][1][1], rows) and np.array_equal(inner.calls[0][1][2], cols)
    refused = {
        "rows.shape": lambda: safe.program_streams("A", np.ones((3, 6), dtype=bool), cols, ok),
        "cols.shape": lambda: safe.program_streams("A", rows, np.ones((5, 7), dtype=bool), ok),
        "rows.dtype": lambda: safe.program_streams("A", np.ones((4, 6)), cols, ok),
        "bit_length": lambda: safe.program_streams(
            "A", np.ones((4, 11), dtype=bool), np.ones((5, 11), dtype=bool), ok
        ),
        "amplitude_V": lambda: safe.program_streams("A", rows, cols, Pulse(6.0, 1e-4)),
        "width_s": lambda: safe.program_streams("A", rows, cols, Pulse(2.0, 1.0)),
    }
    for parameter, command in refused.items():
        with pytest.raises(LimitError) as err:
            command()
        assert err.value.parameter == parameter
        assert "\n" not in str(err.value) and parameter in str(err.value)
    assert len(inner.calls) == 1
    # the empty stream is refused too: an update of no slots is a caller's mistake
    with pytest.raises(LimitError, match="bit_length"):
        safe.program_streams("A", np.ones((4, 0), dtype=bool), np.ones((5, 0), dtype=bool), ok)
    assert len(inner.calls) == 1
