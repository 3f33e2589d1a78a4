"""The board emulator: firmware rules (retry cache, limits, batches, safe state) and the pty link
with its faults, against the twin."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from drivers.board import framing as fr
from drivers.board import messages as bp
from drivers.board.client import BoardConnectionError, BoardTimeoutError, CrossbarBoard
from hil.types import ArraySpec, Pulse
from sim_backend.emulators.board import BoardEmulator, BoardFault, BoardFirmware, BoardLatency
from sim_backend.twin import TwinBackend
from tests.helpers import make_twin

SPECS = [ArraySpec("A", 4, 6, 7.853981633974483e-13), ArraySpec("B", 4, 6, 7.853981633974483e-13)]
LIMITS = bp.SetLimitsRequest(5_000_000, 1_000_000, 1e-2, 1, 10_000_000, 10_000, 1_000_000_000)


def send(fw: BoardFirmware, cmd: int, seq: int, message: bp.Message | bytes) -> bp.Message:
    payload = message if isinstance(message, bytes) else message.encode()
    reply = fw.handle(fr.Frame(cmd, seq, payload))
    frame = fr.FrameDecoder().feed(reply)[0]
    assert frame.seq == seq
    return bp.decode_reply(frame, cmd)


def configured(twin: TwinBackend) -> BoardFirmware:
    fw = BoardFirmware(twin)
    send(fw, bp.Command.IDENTIFY, 0, bp.IdentifyRequest())
    send(fw, bp.Command.SET_LIMITS, 1, LIMITS)
    return fw


def state(twin: TwinBackend) -> tuple[np.ndarray, ...]:
    return tuple(twin.model(s.name).x.copy() for s in SPECS) + (np.array([twin.now()]),)


def same_state(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


SET = bp.PulseRequest(0, 2_000_000, 100_000, 1e-3, 10, False, 0, np.array([[1, 2], [3, 5]]))


# --------------------------------------------------------------------------- firmware rules
def test_identify_reports_the_twin_arrays() -> None:
    reply = send(BoardFirmware(make_twin(SPECS, seed=3)), bp.Command.IDENTIFY, 0, bp.IdentifyRequest())
    assert isinstance(reply, bp.IdentifyReply)
    assert reply.arrays == ((4, 6), (4, 6)) and reply.version == bp.WIRE_FORMAT_VERSION


def test_retried_frame_is_answered_from_cache_and_applied_once() -> None:
    twin, once = make_twin(SPECS, seed=3), make_twin(SPECS, seed=3)
    fw = configured(twin)
    frame = fr.Frame(bp.Command.PULSE, 7, SET.encode())
    first = fw.handle(frame)
    again = fw.handle(frame)
    assert again == first
    assert fw.replayed == 1 and fw.applied_by_command["PULSE"] == 1
    once.pulse("A", SET.cells, Pulse(2.0, 1e-4), 10)
    np.testing.assert_array_equal(twin.model("A").x, once.model("A").x)
    assert twin.now() == once.now()


def test_reused_sequence_number_with_other_content_is_refused() -> None:
    twin = make_twin(SPECS, seed=3)
    fw = configured(twin)
    send(fw, bp.Command.PULSE, 7, SET)
    before = state(twin)
    other = bp.PulseRequest(0, 2_000_000, 100_000, 1e-3, 3, False, 0, np.array([[0, 0]]))
    reply = send(fw, bp.Command.PULSE, 7, other)
    assert isinstance(reply, bp.ErrorReply) and reply.code_name == "SEQ_REUSED"
    assert same_state(before, state(twin))


def test_identify_opens_a_new_session() -> None:
    twin = make_twin(SPECS, seed=3)
    fw = configured(twin)
    send(fw, bp.Command.PULSE, 7, SET)
    send(fw, bp.Command.IDENTIFY, 8, bp.IdentifyRequest())
    send(fw, bp.Command.PULSE, 7, SET)  # the seq of the last session's PULSE: carried out again
    assert fw.applied_by_command["PULSE"] == 2 and fw.replayed == 0


def test_driving_before_set_limits_is_refused_and_outputs_stay_off() -> None:
    twin = make_twin(SPECS, seed=3)
    fw = BoardFirmware(twin)
    before = state(twin)
    reply = send(fw, bp.Command.PULSE, 0, SET)
    assert isinstance(reply, bp.ErrorReply) and reply.code_name == "NOT_CONFIGURED"
    assert not fw.outputs_on and same_state(before, state(twin))


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (bp.PulseRequest(0, 6_000_000, 100_000, 1e-3, 1, cells=np.array([[0, 0]])), "LIMIT"),
        (bp.PulseRequest(0, 2_000_000, 20_000_000, 1e-3, 1, cells=np.array([[0, 0]])), "LIMIT"),
        (bp.PulseRequest(0, 2_000_000, 100_000, 0.5, 1, cells=np.array([[0, 0]])), "LIMIT"),
        (bp.PulseRequest(0, 2_000_000, 100_000, 1e-3, 10_001, cells=np.array([[0, 0]])), "LIMIT"),
        (bp.PulseRequest(0, 2_000_000, 100_000, 1e-3, 1, True, 2_000_000, np.array([[0, 0]])), "LIMIT"),
        (bp.PulseRequest(2, 2_000_000, 100_000, 1e-3, 1, cells=np.array([[0, 0]])), "BAD_ARRAY"),
        (bp.PulseRequest(0, 2_000_000, 100_000, 1e-3, 1, cells=np.array([[4, 0]])), "BAD_CELL"),
        (bp.ReadArrayRequest(0, 0), "LIMIT"),
        (bp.VmmRequest(0, (0,), (1.0,), np.full(4, 1_500_000)), "LIMIT"),
        (bp.VmmRequest(0, (0,), (1.0,), np.full(6, 100_000)), "BAD_PAYLOAD"),
        (bp.IvSweepRequest(0, 0, 0, 1e-3, 2_000_000_000, np.array([100_000])), "LIMIT"),
    ],
)
def test_commands_outside_the_board_limits_change_nothing(request_: bp.Message, code: str) -> None:
    twin = make_twin(SPECS, seed=3)
    fw = configured(twin)
    before = state(twin)
    reply = send(fw, request_.command, 5, request_)
    assert isinstance(reply, bp.ErrorReply) and reply.code_name == code
    assert same_state(before, state(twin)) and not fw.outputs_on


def test_program_batch_is_applied_once_when_the_last_frame_arrives() -> None:
    twin, direct = make_twin(SPECS, seed=3), make_twin(SPECS, seed=3)
    fw = configured(twin)
    counts = np.arange(24).reshape(4, 6) % 4
    calls: list[np.ndarray] = []
    original = twin.program

    def spy(array: str, c: np.ndarray, pulse: Pulse):  # type: ignore[no-untyped-def]
        calls.append(np.array(c))
        return original(array, c, pulse)

    twin.program = spy  # type: ignore[method-assign]
    first = bp.ProgramRequest(0, 9, 2_000_000, 100_000, 1e-3, 0, counts[:3], last=False)
    second = bp.ProgramRequest(0, 9, 2_000_000, 100_000, 1e-3, 3, counts[3:], last=True)
    ack = send(fw, bp.Command.PROGRAM, 2, first)
    assert isinstance(ack, bp.ProgramReply) and not ack.applied and ack.rows_received == 3
    assert calls == [] and not fw.outputs_on
    done = send(fw, bp.Command.PROGRAM, 3, second)
    assert isinstance(done, bp.ProgramReply) and done.applied and done.pulses_applied == counts.sum()
    assert len(calls) == 1 and fw.programs_applied == 1
    np.testing.assert_array_equal(calls[0], counts)
    direct.program("A", counts, Pulse(2.0, 1e-4, 1e-3))
    np.testing.assert_array_equal(twin.model("A").x, direct.model("A").x)


def test_out_of_order_program_frame_drops_the_batch() -> None:
    twin = make_twin(SPECS, seed=3)
    fw = configured(twin)
    counts = np.ones((4, 6), dtype=int)
    send(fw, bp.Command.PROGRAM, 2, bp.ProgramRequest(0, 1, 2_000_000, 100_000, 1e-3, 0, counts[:2], False))
    before = state(twin)
    skip = send(
        fw, bp.Command.PROGRAM, 3, bp.ProgramRequest(0, 1, 2_000_000, 100_000, 1e-3, 3, counts[3:], True)
    )
    assert isinstance(skip, bp.ErrorReply) and skip.code_name == "BATCH"
    # the batch is gone: its proper continuation is refused too
    cont = send(
        fw, bp.Command.PROGRAM, 4, bp.ProgramRequest(0, 1, 2_000_000, 100_000, 1e-3, 2, counts[2:], True)
    )
    assert isinstance(cont, bp.ErrorReply) and cont.code_name == "BATCH"
    assert same_state(before, state(twin)) and fw.programs_applied == 0


def test_safe_state_turns_outputs_off_and_drops_an_open_batch() -> None:
    twin = make_twin(SPECS, seed=3)
    fw = configured(twin)
    send(fw, bp.Command.PULSE, 2, SET)
    assert fw.outputs_on
    counts = np.ones((4, 6), dtype=int)
    send(fw, bp.Command.PROGRAM, 3, bp.ProgramRequest(0, 1, 2_000_000, 100_000, 1e-3, 0, counts[:2], False))
    send(fw, bp.Command.SAFE_STATE, 4, bp.SafeStateRequest())
    assert not fw.outputs_on and fw.safe_states["command"] == 1
    late = send(
        fw, bp.Command.PROGRAM, 5, bp.ProgramRequest(0, 1, 2_000_000, 100_000, 1e-3, 2, counts[2:], True)
    )
    assert isinstance(late, bp.ErrorReply) and late.code_name == "BATCH"


def test_latency_per_command() -> None:
    lat = BoardLatency(2e-3, {"PULSE": 5e-3})
    assert lat.of(bp.Command.PULSE) == 5e-3 and lat.of(bp.Command.READ_ARRAY) == 2e-3 and lat.of(0x77) == 2e-3


def test_fault_matching_counts_after_and_times() -> None:
    fault = BoardFault("timeout", command="pulse", after=1, times=2)
    pulse, read = fr.Frame(bp.Command.PULSE, 0, b""), fr.Frame(bp.Command.READ_ARRAY, 0, b"")
    hits = [fault.strikes(f) for f in (pulse, read, pulse, pulse, pulse)]
    assert hits == [False, False, True, True, False]


# --------------------------------------------------------------------------- over the pty
def open_driver(emu: BoardEmulator, retries: int = 2, timeout_s: float = 0.2) -> CrossbarBoard:
    assert emu.resource is not None
    board = CrossbarBoard.open(emu.resource, timeout_s=timeout_s, retries=retries)
    board.identify()
    board.set_limits(5.0, 1.0, 1e-2, 1e-9, 1e-2, 10_000, 1.0)
    return board


def test_pty_link_serves_pyserial_through_a_symlink(tmp_path: Path) -> None:
    link = tmp_path / "board"
    with BoardEmulator(make_twin(SPECS, seed=3), link=link, latency=0) as emu:
        assert emu.resource == str(link) and link.is_symlink()
        assert os.path.realpath(link).startswith("/dev/pts/")
        board = open_driver(emu)
        reply = board.read_array(1, 0.5)
        assert reply.currents_A.shape == (4, 6) and (reply.currents_A > 0).all()
        assert emu.outputs_on and emu.applied_by_command["READ_ARRAY"] == 1
        board.safe_state()
        assert not emu.outputs_on
        board.close()
    assert not link.exists()


@pytest.mark.parametrize("kind", ["timeout", "garbled"])
def test_lost_or_garbled_reply_is_retried_and_applied_once(kind: str) -> None:
    twin, direct = make_twin(SPECS, seed=3), make_twin(SPECS, seed=3)
    faults = [BoardFault(kind, command="PULSE", times=1)]  # type: ignore[arg-type]
    with BoardEmulator(twin, latency=0, faults=faults) as emu:
        board = open_driver(emu, retries=2, timeout_s=0.1)
        cells = np.array([[0, 0], [2, 3]])
        reply = board.pulse(0, cells, 2.0, 1e-4, 1e-3, 20, True, 0.5)
        assert board.stats.retries == 1 and emu.replayed == 1
        assert emu.applied_by_command["PULSE"] == 1
        expected = direct.pulse("A", cells, Pulse(2.0, 1e-4), 20, True, 0.5)
        assert expected.conductance_S is not None and reply.currents_A is not None
        np.testing.assert_allclose(reply.currents_A / 0.5, expected.conductance_S, rtol=2**-23)
        np.testing.assert_array_equal(twin.model("A").x, direct.model("A").x)
        board.close()


def test_lost_request_is_resent_and_applied_once() -> None:
    twin = make_twin(SPECS, seed=3)
    with BoardEmulator(twin, latency=0, faults=[BoardFault("timeout", "PULSE", applied=False)]) as emu:
        board = open_driver(emu, retries=1, timeout_s=0.1)
        board.pulse(0, np.array([[1, 1]]), 2.0, 1e-4, 1e-3, 5)
        assert emu.applied_by_command["PULSE"] == 1 and emu.replayed == 0
        board.close()


def test_persistent_timeout_gives_up_and_safe_state_still_works() -> None:
    with BoardEmulator(
        make_twin(SPECS, seed=3), latency=0, faults=[BoardFault("timeout", "PULSE", times=99)]
    ) as emu:
        board = open_driver(emu, retries=1, timeout_s=0.05)
        with pytest.raises(BoardTimeoutError):
            board.pulse(0, np.array([[1, 1]]), 2.0, 1e-4, 1e-3, 5)
        assert emu.outputs_on  # the train ran; only its replies were lost
        board.safe_state()
        assert not emu.outputs_on
        board.close()


def test_disconnect_drops_the_link_and_the_board_goes_safe(tmp_path: Path) -> None:
    link = tmp_path / "board"
    with BoardEmulator(
        make_twin(SPECS, seed=3), link=link, latency=0, faults=[BoardFault("disconnect", "READ_ARRAY")]
    ) as emu:
        board = open_driver(emu)
        board.pulse(0, np.array([[1, 1]]), 2.0, 1e-4, 1e-3, 5)
        assert emu.outputs_on
        with pytest.raises(BoardConnectionError):
            board.read_array(0, 0.5)
        assert emu.wait_until(lambda e: not e.link_up)
        assert not emu.outputs_on and emu.firmware.safe_states["link lost"] == 1
        assert not link.exists()
        board.close()


def test_watchdog_turns_outputs_off_when_the_host_goes_quiet() -> None:
    with BoardEmulator(make_twin(SPECS, seed=3), latency=0, watchdog_s=0.05) as emu:
        board = open_driver(emu)
        board.read_array(0, 0.5)
        assert emu.wait_until(lambda e: not e.outputs_on, timeout_s=5.0)
        assert emu.firmware.safe_states["watchdog"] >= 1
        board.close()


def test_a_stalled_partial_frame_is_dropped_and_the_next_frame_served() -> None:
    with BoardEmulator(make_twin(SPECS, seed=3), latency=0, frame_timeout_s=0.02) as emu:
        board = open_driver(emu)
        # half a frame whose length claims far more bytes than will ever come
        board.transport.write(fr.encode_frame(bp.Command.PULSE, 900, bytes(5000))[:12])
        assert emu.wait_until(lambda e: e.decoder.buffered == 0, timeout_s=5.0)
        board.safe_state()
        assert emu.firmware.safe_states["command"] == 1
        board.close()
