"""Wire-level tests of the board driver against a scripted serial port: the exact bytes sent,
the replies parsed, retries with the same sequence number, errors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import serial

from drivers.board import framing as fr
from drivers.board import messages as bp
from drivers.board.client import (
    BoardCommandError,
    BoardConnectionError,
    BoardGarbledError,
    BoardTimeoutError,
    CrossbarBoard,
)

Responder = Callable[[fr.Frame, int], bytes | None]


class ScriptedPort:
    """A serial port whose replies come from a function of each frame written (and its index).

    ``read`` returns what is buffered at once; an empty read stands for a read whose timeout
    passed, as with pyserial.
    """

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.sent: list[bytes] = []
        self.rx = bytearray()
        self.timeout: float | None = None
        self.closed = False
        self.flushes = 0

    def write(self, data: bytes) -> int:
        self.sent.append(bytes(data))
        frames = fr.FrameDecoder().feed(data)
        assert len(frames) == 1, "the driver writes exactly one whole frame at a time"
        out = self.respond(frames[0], len(self.sent))
        if out:
            self.rx += out
        return len(data)

    def read(self, size: int = 1) -> bytes:
        chunk = bytes(self.rx[:size])
        del self.rx[:size]
        return chunk

    def reset_input_buffer(self) -> None:
        self.flushes += 1
        self.rx.clear()

    def close(self) -> None:
        self.closed = True


def ok(frame: fr.Frame, message: bp.Message) -> bytes:
    return bp.reply_frame(frame.seq, frame.cmd, message)


def identify_reply(frame: fr.Frame, rx: int = 65536) -> bytes:
    return ok(frame, bp.IdentifyReply(1_000, 1, rx, ((4, 8), (2, 2)), "test board"))


def empty_ok(frame: fr.Frame, _n: int = 0) -> bytes:
    return ok(frame, bp.EmptyReply(42))


def test_identify_sends_exact_bytes_and_parses_reply() -> None:
    port = ScriptedPort(lambda f, n: identify_reply(f))
    board = CrossbarBoard(port, timeout_s=0.1, retries=0)
    ident = board.identify()
    assert port.sent == [bytes.fromhex("a5 00000000 01 0000 59c8".replace(" ", ""))]
    assert ident.arrays == ((4, 8), (2, 2)) and ident.name == "test board"
    assert board.rx_max_payload == 65536
    assert board.board_time_s == pytest.approx(1e-6)
    assert board.next_seq == 1


def test_set_limits_sends_integer_microvolts_and_nanoseconds() -> None:
    port = ScriptedPort(empty_ok)
    board = CrossbarBoard(port, timeout_s=0.1, retries=0)
    board.set_limits(5.0, 1.0, 1e-2, 1e-9, 1e-2, 10_000, 1.0)
    frame = fr.FrameDecoder().feed(port.sent[0])[0]
    assert frame.cmd == bp.Command.SET_LIMITS and frame.seq == 0
    assert bp.SetLimitsRequest.decode(frame.payload) == bp.SetLimitsRequest(
        5_000_000, 1_000_000, float(np.float32(1e-2)), 1, 10_000_000, 10_000, 1_000_000_000
    )


def test_pulse_train_with_reads_is_one_frame_and_parses_currents() -> None:
    currents = np.array([[1e-6, 2e-6, 3e-6], [4e-6, 5e-6, 6e-6]], dtype=np.float32)
    times = np.array([100, 200, 300], dtype=np.uint64)

    def respond(frame: fr.Frame, n: int) -> bytes:
        return ok(frame, bp.PulseReply(300, 3, 2, 100, 300, times, currents))

    port = ScriptedPort(respond)
    board = CrossbarBoard(port, timeout_s=0.1, retries=0)
    reply = board.pulse(1, np.array([[0, 1], [1, 0]]), 2.0, 100e-6, 1e-3, 3, True, 0.5)
    assert len(port.sent) == 1 and board.stats.round_trips == 1
    sent = bp.PulseRequest.decode(fr.FrameDecoder().feed(port.sent[0])[0].payload)
    assert (sent.array, sent.amplitude_uV, sent.width_ns, sent.count, sent.read_uV) == (
        1,
        2_000_000,
        100_000,
        3,
        500_000,
    )
    assert sent.cells is not None and sent.cells.tolist() == [[0, 1], [1, 0]]
    assert reply.currents_A is not None and reply.currents_A.tolist() == currents.tolist()
    assert reply.read_times_ns is not None and reply.read_times_ns.tolist() == [100, 200, 300]


def test_sequence_numbers_increase_and_wrap() -> None:
    port = ScriptedPort(empty_ok)
    board = CrossbarBoard(port, timeout_s=0.1, retries=0, first_seq=65534)
    for _ in range(3):
        board.safe_state()
    seqs = [fr.FrameDecoder().feed(b)[0].seq for b in port.sent]
    assert seqs == [65534, 65535, 0]


def test_timeout_is_retried_with_the_same_frame() -> None:
    port = ScriptedPort(lambda f, n: None if n == 1 else empty_ok(f))
    board = CrossbarBoard(port, timeout_s=0.05, retries=2)
    board.delay(0.0)
    assert len(port.sent) == 2 and port.sent[0] == port.sent[1]
    assert board.stats.retries == 1 and board.stats.timeouts == 1 and board.stats.round_trips == 2


def test_garbled_reply_is_retried_with_the_same_frame() -> None:
    def respond(frame: fr.Frame, n: int) -> bytes:
        good = empty_ok(frame)
        if n == 1:
            bad = bytearray(good)
            bad[10] ^= 0xFF
            return bytes(bad)
        return good

    port = ScriptedPort(respond)
    board = CrossbarBoard(port, timeout_s=0.05, retries=1)
    board.safe_state()
    assert len(port.sent) == 2 and port.sent[0] == port.sent[1]
    assert board.stats.garbled == 1 and port.flushes == 1


def test_every_attempt_timing_out_raises_after_retries() -> None:
    port = ScriptedPort(lambda f, n: None)
    board = CrossbarBoard(port, timeout_s=0.02, retries=3)
    with pytest.raises(BoardTimeoutError, match=r"SAFE_STATE \(seq 0\): no reply .* after 4 attempt"):
        board.safe_state()
    assert len(port.sent) == 4 and len(set(port.sent)) == 1


def test_only_garbled_replies_raise_garbled_error() -> None:
    def respond(frame: fr.Frame, n: int) -> bytes:
        return (
            b"\xa5"
            + b"\x08\x00\x00\x00"
            + bytes([frame.cmd | 0x80])
            + frame.seq.to_bytes(2, "little")
            + bytes(10)
        )

    port = ScriptedPort(respond)
    board = CrossbarBoard(port, timeout_s=0.02, retries=1)
    with pytest.raises(BoardGarbledError, match="garbled"):
        board.safe_state()
    assert len(port.sent) == 2


def test_malformed_payload_with_good_crc_is_retried() -> None:
    def respond(frame: fr.Frame, n: int) -> bytes:
        if n == 1:  # right command and seq, CRC fine, but a payload two bytes short
            return fr.encode_frame(frame.cmd | fr.REPLY_FLAG, frame.seq, bytes(6))
        return empty_ok(frame)

    port = ScriptedPort(respond)
    board = CrossbarBoard(port, timeout_s=0.02, retries=1)
    board.safe_state()
    assert board.stats.garbled == 1 and len(port.sent) == 2


def test_error_frame_raises_with_code_and_is_not_retried() -> None:
    def respond(frame: fr.Frame, n: int) -> bytes:
        return bp.error_frame(frame.seq, frame.cmd, bp.ErrorCode.LIMIT, "amplitude 9000000 uV > 5000000 uV")

    port = ScriptedPort(respond)
    board = CrossbarBoard(port, timeout_s=0.05, retries=2)
    with pytest.raises(BoardCommandError, match="board refused PULSE: LIMIT: amplitude") as info:
        board.pulse(0, None, 9.0, 1e-4, 1e-3, 1)
    assert info.value.code_name == "LIMIT" and len(port.sent) == 1


def test_stale_replies_of_earlier_commands_are_skipped() -> None:
    def respond(frame: fr.Frame, n: int) -> bytes:
        stale = bp.reply_frame((frame.seq - 1) % 65536, frame.cmd, bp.EmptyReply(1))
        return stale + empty_ok(frame)

    port = ScriptedPort(respond)
    board = CrossbarBoard(port, timeout_s=0.05, retries=0)
    board.safe_state()
    assert board.stats.stale == 1 and board.board_time_s == pytest.approx(42e-9)


def test_program_is_batched_rows_per_frame() -> None:
    applied: list[bp.ProgramRequest] = []

    def respond(frame: fr.Frame, n: int) -> bytes:
        if frame.cmd == bp.Command.IDENTIFY:
            return identify_reply(frame, rx=bp.ProgramRequest.header_size() + 2 * 8 * 3)  # 3 rows of 8
        req = bp.ProgramRequest.decode(frame.payload)
        applied.append(req)
        return ok(frame, bp.ProgramReply(0, req.last, req.row_start + len(req.counts), 7, 7, 1, 100))

    port = ScriptedPort(respond)
    board = CrossbarBoard(port, timeout_s=0.05, retries=0)
    board.identify()
    counts = np.arange(32).reshape(4, 8) % 3
    reply = board.program(0, counts, 2.0, 1e-4, 1e-3)
    assert [r.row_start for r in applied] == [0, 3]
    assert [r.last for r in applied] == [False, True]
    assert len({r.batch for r in applied}) == 1
    np.testing.assert_array_equal(np.concatenate([r.counts for r in applied]), counts)
    assert reply.applied and reply.pulses_applied == 7
    with pytest.raises(ValueError, match="does not fit"):
        board.program(0, np.zeros((1, 40), dtype=int), 2.0, 1e-4, 1e-3)


def test_oversize_command_is_refused_before_sending() -> None:
    port = ScriptedPort(lambda f, n: identify_reply(f, rx=64))
    board = CrossbarBoard(port, timeout_s=0.05, retries=0)
    board.identify()
    with pytest.raises(ValueError, match="receive buffer"):
        board.read_cells(0, np.zeros((100, 2), dtype=int), 0.5)
    assert len(port.sent) == 1


class BrokenPort(ScriptedPort):
    def write(self, data: bytes) -> int:
        raise serial.SerialException("write failed: [Errno 5] Input/output error")


def test_lost_link_raises_connection_error_and_stays_closed() -> None:
    port = BrokenPort(empty_ok)
    board = CrossbarBoard(port, timeout_s=0.05, retries=2)
    with pytest.raises(BoardConnectionError, match="link lost"):
        board.safe_state()
    assert not board.connected and port.closed
    with pytest.raises(BoardConnectionError, match="closed"):
        board.safe_state()


def test_open_of_missing_port_is_a_connection_error(tmp_path: object) -> None:
    with pytest.raises(BoardConnectionError, match="cannot open serial port"):
        CrossbarBoard.open("/nonexistent/tty-rram-hil", timeout_s=0.05)


class InterruptingPort(ScriptedPort):
    """Ctrl-C arrives while the driver waits for the reply to its first frame."""

    interrupted = False

    def read(self, size: int = 1) -> bytes:
        if not self.interrupted:
            self.interrupted = True
            raise KeyboardInterrupt
        return super().read(size)


def test_after_ctrl_c_the_late_reply_is_skipped_and_safe_state_goes_through() -> None:
    currents = np.ones((64, 50), dtype=np.float32) * 1e-6
    times = np.arange(50, dtype=np.uint64)

    def respond(frame: fr.Frame, n: int) -> bytes:
        if frame.cmd == bp.Command.PULSE:
            return ok(frame, bp.PulseReply(1, 50, 64, 0, 49, times, currents))
        return empty_ok(frame)

    port = InterruptingPort(respond)
    board = CrossbarBoard(port, timeout_s=0.05, retries=2)
    with pytest.raises(KeyboardInterrupt):
        board.pulse(0, np.zeros((64, 2), dtype=int), 2.0, 1e-4, 1e-3, 50, True, 0.5)
    board.safe_state()  # the 13 kB reply of the interrupted train is still in the input
    assert board.stats.stale == 1 and board.stats.retries == 0 and board.stats.garbled == 0
    assert [fr.FrameDecoder().feed(b)[0].cmd for b in port.sent] == [bp.Command.PULSE, bp.Command.SAFE_STATE]

