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


# --------------------------------------------------------------------------- transfers: the client splits


def cell_currents(cells: np.ndarray) -> np.ndarray:
    """The scripted board's current (A) of each cell: its address, ``(100 row + col) x 1 nA``."""
    cells = np.asarray(cells).reshape(-1, 2)
    return ((100 * cells[:, 0] + cells[:, 1]) * 1e-9).astype(np.float32)


def scripted_board(rx: int = 65536, arrays: tuple[tuple[int, int], ...] = ((4, 8), (2, 2))) -> Responder:
    """A board answering IDENTIFY, PULSE, READ_CELLS, READ_ARRAY and VMM with addressable values."""

    def respond(frame: fr.Frame, n: int) -> bytes:
        request = bp.decode_request(frame)
        if isinstance(request, bp.IdentifyRequest):
            return ok(frame, bp.IdentifyReply(0, 1, rx, arrays, "scripted"))
        if isinstance(request, bp.PulseRequest):
            assert request.cells is not None
            count, n_cells = request.count, len(request.cells)
            if not request.read_after:
                return ok(frame, bp.PulseReply(5, count, n_cells, 1, 2))
            currents = np.repeat(cell_currents(request.cells)[:, None], count, axis=1)
            times = np.arange(count, dtype=np.uint64) + 1000 * n
            return ok(frame, bp.PulseReply(5, count, n_cells, 1000 * n, 1000 * n + count, times, currents))
        if isinstance(request, bp.ReadCellsRequest):
            return ok(frame, bp.ReadReply(n, 10 * n, cell_currents(request.cells).reshape(1, -1)))
        if isinstance(request, bp.ReadArrayRequest):
            rows, cols = arrays[request.array]
            grid = np.stack(np.divmod(np.arange(rows * cols), cols), axis=1)
            return ok(frame, bp.ReadReply(n, 10 * n, cell_currents(grid).reshape(rows, cols)))
        if isinstance(request, bp.VmmRequest):
            v = np.asarray(request.voltages_uV).reshape(-1, request.voltages_uV.shape[-1])
            rows, cols = arrays[request.arrays[0]]
            n_out = rows if request.direction == bp.VMM_BACKWARD else cols
            sums = v.sum(axis=1, dtype=np.float64) * 1e-12
            return ok(frame, bp.MatrixReply(n, np.repeat(sums[:, None], n_out, axis=1).astype(np.float32)))
        return empty_ok(frame)

    return respond


def connected(respond: Responder) -> tuple[CrossbarBoard, ScriptedPort]:
    port = ScriptedPort(respond)
    board = CrossbarBoard(port, timeout_s=0.05, retries=0)
    board.identify()
    port.sent.clear()
    return board, port


def sent_requests(port: ScriptedPort) -> list[bp.Message]:
    return [bp.decode_request(fr.FrameDecoder().feed(data)[0]) for data in port.sent]


def test_pulse_many_in_one_frame_sends_the_bytes_of_one_pulse_command() -> None:
    cells = np.array([[0, 1], [3, 7], [2, 2]])
    many, many_port = connected(scripted_board())
    one, one_port = connected(scripted_board())
    replies = many.pulse_many(0, cells, 2.0, 1e-4, 1e-3, 4, True, 0.5, pulse_gap_s=1e-6, read_time_s=1e-4)
    reply = one.pulse(0, cells, 2.0, 1e-4, 1e-3, 4, True, 0.5)
    assert many_port.sent == one_port.sent and len(replies) == 1
    np.testing.assert_array_equal(replies[0].currents_A, reply.currents_A)


def test_pulse_many_splits_the_cell_list_by_the_receive_buffer() -> None:
    rx = bp.PulseRequest.size(3)  # three cells per PULSE command
    board, port = connected(scripted_board(rx=rx))
    cells = np.array([[r, c] for r in range(2) for c in range(4)])[:7]
    replies = board.pulse_many(0, cells, 2.0, 1e-4, 1e-3, 5, True, 0.5)
    requests = sent_requests(port)
    assert [len(r.cells) for r in requests] == [3, 3, 1]
    assert all(len(data) - fr.FRAME_OVERHEAD <= rx for data in port.sent)
    np.testing.assert_array_equal(np.concatenate([r.cells for r in requests]), cells)
    currents = np.concatenate([r.currents_A for r in replies])
    np.testing.assert_array_equal(currents, np.repeat(cell_currents(cells)[:, None], 5, axis=1))
    without_reads = board.pulse_many(0, cells, 2.0, 1e-4, 1e-3, 5)
    assert len(without_reads) == 3 and all(r.currents_A is None for r in without_reads)


def test_pulse_many_splits_so_that_every_reply_fits_one_frame() -> None:
    count = 40_000  # 160 kB of currents per cell: four cells per reply of at most 1 MiB
    board, port = connected(scripted_board())
    cells = np.array([[0, c] for c in range(8)] + [[1, 0]])
    replies = board.pulse_many(0, cells, 2.0, 1e-4, 1e-3, count, True, 0.5)
    assert [r.n_cells for r in replies] == [4, 4, 1]
    assert all(bp.PulseReply.size(count, r.n_cells, True) <= fr.MAX_PAYLOAD for r in replies)
    assert bp.PulseReply.size(count, 5, True) > fr.MAX_PAYLOAD


def test_read_many_of_every_cell_is_one_read_array() -> None:
    board, port = connected(scripted_board())
    replies = board.read_many(0, None, 0.5)
    assert [type(r) for r in sent_requests(port)] == [bp.ReadArrayRequest]
    assert replies[0].currents_A.shape == (4, 8)


def test_read_many_splits_a_cell_list_by_the_receive_buffer() -> None:
    rx = bp.ReadCellsRequest.size(5)
    board, port = connected(scripted_board(rx=rx))
    cells = np.array([[r, c] for r in range(4) for c in range(3)])  # 12 cells
    replies = board.read_many(0, cells, 0.5)
    assert [len(r.cells) for r in sent_requests(port)] == [5, 5, 2]
    assert all(len(data) - fr.FRAME_OVERHEAD <= rx for data in port.sent)
    currents = np.concatenate([r.currents_A.reshape(-1) for r in replies])
    np.testing.assert_array_equal(currents, cell_currents(cells))
    assert replies[0].read_t_ns == 10  # the first command's read time comes first


def test_read_many_of_an_array_too_big_for_one_reply_reads_every_cell_row_major() -> None:
    shape = (512, 1024)  # 2 MiB of currents: more than one reply frame holds
    assert bp.ReadReply.size(*shape) > fr.MAX_PAYLOAD
    board, port = connected(scripted_board(arrays=(shape,)))
    replies = board.read_many(0, None, 0.5)
    requests = sent_requests(port)
    assert {type(r) for r in requests} == {bp.ReadCellsRequest}
    cells = np.concatenate([r.cells for r in requests])
    np.testing.assert_array_equal(cells[:, 0] * shape[1] + cells[:, 1], np.arange(shape[0] * shape[1]))
    assert sum(r.currents_A.size for r in replies) == shape[0] * shape[1]


def test_read_many_without_identify_sends_read_array() -> None:
    port = ScriptedPort(scripted_board())
    board = CrossbarBoard(port, timeout_s=0.05, retries=0)
    board.read_many(0, None, 0.5)
    assert [type(r) for r in sent_requests(port)] == [bp.ReadArrayRequest]


def test_vmm_many_of_one_vector_is_one_command() -> None:
    board, port = connected(scripted_board(rx=64))
    replies = board.vmm_many([0], [1.0], np.full(4, 0.25))
    assert len(port.sent) == 1 and replies[0].currents_A.shape == (1, 8)


def test_vmm_many_splits_a_batch_by_the_receive_buffer() -> None:
    rx = bp.VmmRequest.size(2, 3, 4)  # three vectors of four voltages over two arrays
    board, port = connected(scripted_board(rx=rx))
    v = np.arange(7 * 4).reshape(7, 4) * 1e-3
    replies = board.vmm_many([0, 0], [1.0, -1.0], v)
    assert [r.voltages_uV.shape[0] for r in sent_requests(port)] == [3, 3, 1]
    assert all(len(data) - fr.FRAME_OVERHEAD <= rx for data in port.sent)
    out = np.concatenate([r.currents_A for r in replies])
    np.testing.assert_allclose(out[:, 0], np.rint(v * 1e6).sum(axis=1) * 1e-12, rtol=1e-6)
    backward = board.vmm_many([0], [1.0], np.zeros((2, 8)), backward=True)  # 8 inputs: one per frame
    assert [r.currents_A.shape for r in backward] == [(1, 4), (1, 4)]


def test_vmm_many_splits_a_batch_so_that_every_reply_fits_one_frame() -> None:
    board, port = connected(scripted_board(arrays=((2, 65535),)))  # 262 kB of currents per vector
    replies = board.vmm_many([0], [1.0], np.zeros((9, 2)))
    assert [r.currents_A.shape[0] for r in replies] == [4, 4, 1]
    assert all(bp.MatrixReply.size(len(r.currents_A), 65535) <= fr.MAX_PAYLOAD for r in replies)
