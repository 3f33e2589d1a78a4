"""The board backend behind the safety layer, end to end through the emulator: station options,
every backend operation against the direct twin, native commands and round trips."""

from __future__ import annotations

import numpy as np
import pytest

from hil.backend import coincidence_counts
from hil.backends import open_backend
from hil.errors import ConfigError
from hil.safety import LimitError, SafeBackend
from hil.types import Pulse
from tests.helpers import BOARD_ARRAYS, board_station, emulated_board, twin_station

#: the board sends currents as float32: relative resolution 2^-24, one float32 rounding
RESOLUTION = 2**-23


def rounds(backend: SafeBackend) -> int:
    return backend.inner.round_trips  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- station and options
def test_bad_option_is_a_one_line_error_naming_field_and_range() -> None:
    station = board_station(timeout_s=-1)
    with pytest.raises(ConfigError) as info:
        open_backend(station)
    msg = str(info.value)
    assert "\n" not in msg
    assert "instruments.board.options.timeout_s" in msg and "0 < timeout_s <= 600 s" in msg


def test_unknown_option_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"options\.baud: unknown name \(known: baudrate, timeout_s"):
        open_backend(board_station(baud=9600))


def test_array_index_must_cover_every_array() -> None:
    with pytest.raises(ConfigError, match="array_index: must map every station array .* missing: N30, P"):
        open_backend(board_station(array_index={"A": 0}))


def test_unreachable_port_names_the_resource() -> None:
    with pytest.raises(
        ConfigError, match=r"instruments\.board\.resource: cannot open serial port '/nonexistent/x'"
    ):
        open_backend(board_station("/nonexistent/x"))


def test_array_shapes_must_match_the_board() -> None:
    with emulated_board() as (station, _emu):
        swapped = station.model_copy(
            update={
                "instruments": {
                    "board": station.instruments["board"].model_copy(
                        update={"options": {"array_index": {"A": 1, "N30": 0, "P": 2}, "timeout_s": 0.5}}
                    )
                }
            }
        )
        with pytest.raises(ConfigError, match="'A' is 32 x 32 but board array 1 is 8 x 8"):
            open_backend(swapped)


def test_open_sends_limits_before_anything_can_switch_on() -> None:
    with emulated_board() as (station, emu):
        with open_backend(station) as backend:
            limits = emu.firmware.limits
            assert limits is not None and limits.max_abs_uV == 5_000_000 and limits.max_pulses == 10_000
            assert not emu.outputs_on
            assert backend.identify()["backend"] == "board"
            assert backend.capabilities.native_vmm and backend.capabilities.instrument_side_trains
        assert not emu.outputs_on and emu.firmware.safe_states["command"] == 1


# --------------------------------------------------------------------------- same results as the twin
@pytest.fixture
def pair():  # type: ignore[no-untyped-def]
    """(board backend, direct twin backend, emulator), same seed, both behind the safety layer."""
    with (
        emulated_board(seed=11) as (station, emu),
        open_backend(station) as board,
        open_backend(twin_station(arrays=BOARD_ARRAYS, seed=11)) as direct,
    ):
        yield board, direct, emu


def test_reads_match_the_twin(pair) -> None:  # type: ignore[no-untyped-def]
    board, direct, emu = pair
    for cells in (None, [(0, 0), (5, 7), (31, 31)]):
        a, b = board.read("A", cells, 0.5), direct.read("A", cells, 0.5)
        assert a.conductance_S.shape == b.conductance_S.shape
        np.testing.assert_allclose(a.conductance_S, b.conductance_S, rtol=RESOLUTION)
        np.testing.assert_array_equal(a.cells, b.cells)
        assert a.t_s == pytest.approx(b.t_s, abs=1e-9)
    assert emu.applied_by_command["READ_ARRAY"] == 1 and emu.applied_by_command["READ_CELLS"] == 1


def test_pulse_trains_match_the_twin(pair) -> None:  # type: ignore[no-untyped-def]
    board, direct, _ = pair
    cells = [(0, 0), (3, 4), (7, 1)]
    for b in (board, direct):
        b.pulse("N30", cells, Pulse(-4.0, 100e-6), 5)
    a = board.pulse("N30", cells, Pulse(2.0, 100e-6), 50, read_after=True, read_voltage_V=0.5)
    b = direct.pulse("N30", cells, Pulse(2.0, 100e-6), 50, read_after=True, read_voltage_V=0.5)
    assert a.conductance_S is not None and b.conductance_S is not None
    assert a.conductance_S.shape == (3, 50)
    np.testing.assert_allclose(a.conductance_S, b.conductance_S, rtol=RESOLUTION)
    np.testing.assert_allclose(a.t_s, b.t_s, atol=1e-9)
    assert a.read_voltage_V == 0.5


def test_fifty_pulse_train_with_reads_is_one_round_trip(pair) -> None:  # type: ignore[no-untyped-def]
    board, _, emu = pair
    before = rounds(board)
    board.pulse("A", [(1, 1)], Pulse(2.0, 100e-6), 50, read_after=True)
    assert rounds(board) - before == 1 <= 2
    assert emu.applied_by_command["PULSE"] == 1


def test_program_and_outer_product_match_the_twin_natively(pair) -> None:  # type: ignore[no-untyped-def]
    board, direct, emu = pair
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 8, size=(32, 32))
    before = rounds(board)
    ra = board.program("A", counts, Pulse(2.0, 100e-6))
    rb = direct.program("A", counts, Pulse(2.0, 100e-6))
    assert rounds(board) - before == 1 and emu.firmware.programs_applied == 1
    assert (ra.pulses_applied, ra.cells_programmed, ra.max_count) == (
        rb.pulses_applied,
        rb.cells_programmed,
        rb.max_count,
    )
    assert ra.duration_s == pytest.approx(rb.duration_s)
    r, c = np.array([0, 1.5, 0, 3.2, 0, 0, 1, 2.5]), np.array([2, 0, 1.4, 0, 0, 3, 1, 0.6])
    board.program_outer("P", r, c, Pulse(2.0, 100e-6))
    direct.program_outer("P", r, c, Pulse(2.0, 100e-6))
    np.testing.assert_allclose(board.read("A").conductance_S, direct.read("A").conductance_S, rtol=RESOLUTION)
    np.testing.assert_allclose(board.read("P").conductance_S, direct.read("P").conductance_S, rtol=RESOLUTION)
    assert emu.firmware.programs_applied == 2


def test_all_zero_program_sends_nothing(pair) -> None:  # type: ignore[no-untyped-def]
    board, _, emu = pair
    before = rounds(board)
    result = board.program("P", np.zeros((8, 8), dtype=int), Pulse(2.0, 100e-6))
    assert result.pulses_applied == 0 and rounds(board) == before and emu.firmware.programs_applied == 0


def test_vmm_matches_the_twin_natively(pair) -> None:  # type: ignore[no-untyped-def]
    board, direct, emu = pair
    counts = np.random.default_rng(2).integers(0, 5, size=(32, 32))
    for b in (board, direct):
        b.program("A", counts, Pulse(2.0, 100e-6))
    v = np.round(np.random.default_rng(1).uniform(-0.3, 0.3, size=(4, 32)), 6)
    cases = [
        ("A", v[0], "forward", None),
        ("A", v, "backward", None),
        (["N30", "P"], v[:, :8], "forward", [1, -1]),
    ]
    for arrays, volts, direction, signs in cases:
        before = rounds(board)
        a = board.vmm(arrays, volts, direction, signs)
        b = direct.vmm(arrays, volts, direction, signs)
        assert rounds(board) - before == 1
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=RESOLUTION, atol=1e-12)
    assert emu.applied_by_command["VMM"] == 3


def test_iv_sweep_and_delay_match_the_twin(pair) -> None:  # type: ignore[no-untyped-def]
    board, direct, _ = pair
    v = np.linspace(0, 3, 31)
    a = board.iv_sweep("A", 2, 2, v, 2e-5, 1e-3)
    b = direct.iv_sweep("A", 2, 2, v, 2e-5, 1e-3)
    np.testing.assert_allclose(a.current_A, b.current_A, rtol=RESOLUTION)
    np.testing.assert_allclose(a.voltage_V, b.voltage_V, rtol=RESOLUTION)
    np.testing.assert_array_equal(a.in_compliance, b.in_compliance)
    assert a.in_compliance.any()
    board.delay(3600.0)
    direct.delay(3600.0)
    assert board.now() == pytest.approx(direct.now(), abs=1e-9)
    np.testing.assert_allclose(board.read("A").conductance_S, direct.read("A").conductance_S, rtol=RESOLUTION)


def test_safety_layer_stops_bad_commands_before_the_board(pair) -> None:  # type: ignore[no-untyped-def]
    board, _, emu = pair
    frames = emu.frames
    with pytest.raises(LimitError, match="amplitude_V = 7 is outside"):
        board.pulse("A", [(0, 0)], Pulse(7.0, 100e-6), 1)
    with pytest.raises(LimitError, match="voltages_V"):
        board.vmm("A", np.full(32, 2.0))
    assert emu.frames == frames and not emu.outputs_on


def test_program_with_a_small_board_buffer_is_one_batch_of_row_frames() -> None:
    with (
        emulated_board(seed=4, rx_max_payload=256) as (station, emu),
        open_backend(station) as board,
        open_backend(twin_station(arrays=BOARD_ARRAYS, seed=4)) as direct,
    ):
        counts = np.random.default_rng(0).integers(0, 6, size=(32, 32))
        before = rounds(board)
        board.program("A", counts, Pulse(2.0, 100e-6))
        direct.program("A", counts, Pulse(2.0, 100e-6))
        frames = rounds(board) - before
        # (256 - 26 header bytes) // 64 bytes per row = 3 rows per frame: 11 frames, 1 application
        assert frames == 11 and emu.firmware.programs_applied == 1
        np.testing.assert_allclose(
            board.read("A").conductance_S, direct.read("A").conductance_S, rtol=RESOLUTION
        )


def test_stream_update_is_one_native_program_of_the_coincidence_counts(pair) -> None:  # type: ignore[no-untyped-def]
    """The board's PROGRAM applies a whole count matrix in parallel, so a pulse-coincidence update
    is one PROGRAM batch of its coincidence counts: the same cells, the same pulses each."""
    board, direct, emu = pair
    rng = np.random.default_rng(8)
    rows, cols = rng.random((8, 10)) < 0.5, rng.random((8, 10)) < 0.4
    counts = coincidence_counts(rows, cols)
    before = rounds(board)
    ra = board.program_streams("P", rows, cols, Pulse(2.0, 100e-6))
    rb = direct.program("P", counts, Pulse(2.0, 100e-6))
    assert rounds(board) - before == 1 and emu.firmware.programs_applied == 1
    assert (ra.pulses_applied, ra.cells_programmed, ra.max_count) == (
        int(counts.sum()),
        int(np.count_nonzero(counts)),
        int(counts.max()),
    ) == (rb.pulses_applied, rb.cells_programmed, rb.max_count)
    np.testing.assert_allclose(board.read("P").conductance_S, direct.read("P").conductance_S, rtol=RESOLUTION)
