"""Client of the FPGA crossbar board over a serial link (pyserial); wire format in ``docs/board-wire-format.md``.

Two layers:

* commands: one method per board command (:meth:`CrossbarBoard.pulse`, :meth:`~CrossbarBoard.read_cells`,
  :meth:`~CrossbarBoard.vmm`, ...), each one transaction; a payload larger than the board's
  receive buffer is refused before anything is sent. PROGRAM is one batch of frames
  (:meth:`~CrossbarBoard.program` splits the count matrix into blocks of rows);
* transfers: whole arrays, split here into as many commands as frames of the maximum payload
  need (:meth:`~CrossbarBoard.pulse_many`, :meth:`~CrossbarBoard.read_many`,
  :meth:`~CrossbarBoard.vmm_many`); one command for most uses. Every frame size is known
  here, so callers pass whole arrays.

Every command is one transaction: the frame is sent, the reply with the same sequence number
awaited. A reply that does not come within the timeout, or comes
garbled (bad CRC, bad payload), makes the driver send the *same frame again, with the same
sequence number*; the board recognises the repeat and re-sends its cached reply instead of
applying the command a second time. Only after ``retries`` repeats does the driver give up.

Units at this interface are SI (V, A, s); the wire's integer microvolts and nanoseconds are
handled here. The driver knows nothing of protocols, the store or the twin: it addresses arrays
by their board index.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from drivers.board.framing import FRAME_OVERHEAD, MAX_PAYLOAD, Frame, FrameDecoder, encode_frame, next_seq
from drivers.board.messages import (
    CELL_SIZE,
    VMM_BACKWARD,
    VMM_FORWARD,
    Command,
    DelayRequest,
    EmptyReply,
    ErrorReply,
    IdentifyReply,
    IdentifyRequest,
    IvSweepReply,
    IvSweepRequest,
    MatrixReply,
    Message,
    PayloadError,
    ProgramReply,
    ProgramRequest,
    PulseReply,
    PulseRequest,
    ReadArrayRequest,
    ReadCellsRequest,
    ReadReply,
    SafeStateRequest,
    SetLimitsRequest,
    VmmRequest,
    decode_reply,
    ns_to_seconds,
    seconds_to_ns,
    volts_to_uV,
)

#: what an error frame's payload may take at most (code, command, message of <= 1000 bytes)
_ERROR_REPLY_BOUND = 1002
#: receive buffer assumed until IDENTIFY says otherwise (bytes)
DEFAULT_RX_MAX_PAYLOAD = 4096


class BoardError(RuntimeError):
    """The board failed to carry out a command."""


class BoardTimeoutError(BoardError):
    """No reply within the timeout, after every retry."""


class BoardGarbledError(BoardError):
    """Only garbled or malformed replies, after every retry."""


class BoardConnectionError(BoardError):
    """The serial link is gone (port closed, device unplugged)."""


class BoardCommandError(BoardError):
    """The board answered with an error frame.

    Attributes:
        code: the error code (see :class:`drivers.board.messages.ErrorCode`).
        code_name: its name.
        command: the command that failed.
    """

    def __init__(self, reply: ErrorReply, command: Command) -> None:
        self.code = reply.code
        self.code_name = reply.code_name
        self.command = command
        super().__init__(f"board refused {command.name}: {reply.code_name}: {reply.message}")


class Transport(Protocol):
    """What the driver needs of a serial port (``serial.Serial`` has all of it)."""

    timeout: float | None

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int = 1) -> bytes: ...

    def reset_input_buffer(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class LinkStats:
    """Counters of the link since the driver opened it.

    Attributes:
        round_trips: frames sent that waited for a reply (retries included).
        commands: distinct commands (transactions).
        retries: frames re-sent after a timeout or a garbled reply.
        timeouts: waits that ended without a reply.
        garbled: replies dropped for a bad CRC, a bad length or a payload that does not decode.
        stale: valid replies to an earlier sequence number, ignored.
    """

    round_trips: int = 0
    commands: int = 0
    retries: int = 0
    timeouts: int = 0
    garbled: int = 0
    stale: int = 0


class CrossbarBoard:
    """The FPGA crossbar board.

    Args:
        transport: an open serial port (or anything with the same ``read``/``write``).
        timeout_s: how long to wait for a reply (s), on top of the command's own duration.
        retries: how many times a command is re-sent (same sequence number) before giving up.
        first_seq: sequence number of the first command.
    """

    def __init__(
        self,
        transport: Transport,
        timeout_s: float = 1.0,
        retries: int = 2,
        first_seq: int = 0,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s: {timeout_s} must be > 0 s")
        if retries < 0:
            raise ValueError(f"retries: {retries} must be >= 0")
        self.transport = transport
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.stats = LinkStats()
        self.identity: IdentifyReply | None = None
        self.rx_max_payload = DEFAULT_RX_MAX_PAYLOAD
        self.connected = True
        self._seq = first_seq % 65536
        self._batch = 0
        self._t_ns = 0
        self._decoder = FrameDecoder()
        self._last_bound = 0

    @classmethod
    def open(
        cls, port: str, baudrate: int = 921_600, timeout_s: float = 1.0, retries: int = 2
    ) -> CrossbarBoard:
        """Open the serial port (a device path, a pty, or any pyserial URL) and return the driver.

        Raises:
            BoardConnectionError: the port cannot be opened.
        """
        import serial

        try:
            port_obj = serial.serial_for_url(
                port, baudrate=baudrate, timeout=timeout_s, write_timeout=timeout_s
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise BoardConnectionError(f"cannot open serial port '{port}': {exc}") from None
        return cls(port_obj, timeout_s=timeout_s, retries=retries)

    # ------------------------------------------------------------------ state
    @property
    def board_time_s(self) -> float:
        """The board clock (s) as of its latest reply."""
        return ns_to_seconds(self._t_ns)

    @property
    def next_seq(self) -> int:
        """Sequence number the next command will carry."""
        return self._seq

    # ------------------------------------------------------------------ commands
    def identify(self) -> IdentifyReply:
        """IDENTIFY: wire-format version, arrays (rows, cols), receive buffer size, name.

        Also opens a session: the board forgets its retry cache.
        """
        reply = self.transact(IdentifyRequest())
        assert isinstance(reply, IdentifyReply)
        self.identity = reply
        self.rx_max_payload = min(reply.rx_max_payload, MAX_PAYLOAD)
        return reply

    def set_limits(
        self,
        max_abs_voltage_V: float,
        max_read_voltage_V: float,
        max_compliance_A: float,
        min_width_s: float,
        max_width_s: float,
        max_pulses: int,
        max_dwell_s: float,
    ) -> None:
        """SET_LIMITS: the board refuses (error LIMIT) any later command outside these."""
        self.transact(
            SetLimitsRequest(
                volts_to_uV(max_abs_voltage_V),
                volts_to_uV(max_read_voltage_V),
                float(max_compliance_A),
                seconds_to_ns(min_width_s),
                seconds_to_ns(max_width_s),
                int(max_pulses),
                seconds_to_ns(max_dwell_s),
            )
        )

    def pulse(
        self,
        array: int,
        cells: np.ndarray | None,
        amplitude_V: float,
        width_s: float,
        compliance_A: float,
        count: int,
        read_after: bool = False,
        read_voltage_V: float = 0.5,
        duration_s: float = 0.0,
    ) -> PulseReply:
        """PULSE: ``count`` pulses to ``cells`` (``(n, 2)`` rows/cols, ``None`` for every cell),
        each followed by a read at ``read_voltage_V`` when ``read_after``; one transaction.

        ``duration_s`` (s) is how long the train takes on the board; it extends the timeout.
        """
        request = PulseRequest(
            int(array),
            volts_to_uV(amplitude_V),
            seconds_to_ns(width_s),
            float(compliance_A),
            int(count),
            bool(read_after),
            volts_to_uV(read_voltage_V) if read_after else 0,
            None if cells is None else np.asarray(cells, dtype=np.int64).reshape(-1, 2),
        )
        reply = self.transact(request, duration_s)
        assert isinstance(reply, PulseReply)
        return reply

    def program(
        self,
        array: int,
        counts: np.ndarray,
        amplitude_V: float,
        width_s: float,
        compliance_A: float,
        duration_s: float = 0.0,
    ) -> ProgramReply:
        """PROGRAM: cell ``(i, j)`` receives ``counts[i, j]`` pulses, the whole array at once.

        The count matrix goes as one batch of frames, as many rows per frame as the board's
        receive buffer holds (one frame for arrays up to its size); the board applies the batch
        once, when the last frame arrives. Returns the reply to that last frame.
        """
        counts = np.asarray(counts, dtype=np.int64)
        if counts.ndim != 2 or counts.size == 0:
            raise ValueError(f"counts: a non-empty (rows, cols) matrix is needed, got shape {counts.shape}")
        n_rows, n_cols = counts.shape
        room = self.rx_max_payload - ProgramRequest.header_size()
        rows_per_frame = room // (2 * n_cols)
        if rows_per_frame < 1:
            raise ValueError(
                f"counts: one row of {n_cols} counts does not fit the board's "
                f"{self.rx_max_payload}-byte receive buffer"
            )
        self._batch = (self._batch + 1) % 65536
        amp, width = volts_to_uV(amplitude_V), seconds_to_ns(width_s)
        reply: Message | None = None
        for start in range(0, n_rows, rows_per_frame):
            last = start + rows_per_frame >= n_rows
            request = ProgramRequest(
                int(array),
                self._batch,
                amp,
                width,
                float(compliance_A),
                start,
                counts[start : start + rows_per_frame],
                last,
            )
            reply = self.transact(request, duration_s if last else 0.0)
        assert isinstance(reply, ProgramReply)
        return reply

    def read_cells(self, array: int, cells: np.ndarray, voltage_V: float) -> ReadReply:
        """READ_CELLS: currents (A) of the listed cells at ``voltage_V``; reply shape ``(1, n)``."""
        cells = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
        reply = self.transact(ReadCellsRequest(int(array), volts_to_uV(voltage_V), cells))
        assert isinstance(reply, ReadReply)
        return reply

    def read_array(self, array: int, voltage_V: float) -> ReadReply:
        """READ_ARRAY: currents (A) of every cell at ``voltage_V``; reply shape ``(rows, cols)``."""
        reply = self.transact(ReadArrayRequest(int(array), volts_to_uV(voltage_V)))
        assert isinstance(reply, ReadReply)
        return reply

    def vmm(
        self,
        arrays: Sequence[int],
        signs: Sequence[float],
        voltages_V: np.ndarray,
        backward: bool = False,
    ) -> MatrixReply:
        """VMM: drive ``voltages_V`` (V, ``(n_in,)`` or ``(batch, n_in)``), sense currents (A).

        Forward drives rows and senses columns; backward the transpose. Currents of several arrays
        are summed with ``signs``. The reply has shape ``(1, n_out)`` or ``(batch, n_out)``.
        """
        v = np.asarray(voltages_V, dtype=float)
        uv = np.rint(v * 1e6).astype(np.int64)
        request = VmmRequest(
            VMM_BACKWARD if backward else VMM_FORWARD,
            tuple(int(a) for a in arrays),
            tuple(float(s) for s in signs),
            uv,
        )
        reply = self.transact(request)
        assert isinstance(reply, MatrixReply)
        return reply

    def iv_sweep(
        self,
        array: int,
        row: int,
        col: int,
        voltages_V: np.ndarray,
        compliance_A: float,
        dwell_s: float,
    ) -> IvSweepReply:
        """IV_SWEEP: DC sweep of one cell; the compliance (A) is in force before the first point."""
        v = np.asarray(voltages_V, dtype=float).reshape(-1)
        request = IvSweepRequest(
            int(array),
            int(row),
            int(col),
            float(compliance_A),
            seconds_to_ns(dwell_s),
            np.rint(v * 1e6).astype(np.int64),
        )
        reply = self.transact(request, len(v) * float(dwell_s))
        assert isinstance(reply, IvSweepReply)
        return reply

    def delay(self, seconds: float) -> None:
        """DELAY: the board idles ``seconds`` (s) with its outputs at rest, then replies."""
        self.transact(DelayRequest(seconds_to_ns(seconds)), float(seconds))

    def safe_state(self) -> None:
        """SAFE_STATE: outputs off, drivers disconnected, any open programming batch dropped."""
        reply = self.transact(SafeStateRequest())
        assert isinstance(reply, EmptyReply)

    # ------------------------------------------------------------------ transfers
    def pulse_many(
        self,
        array: int,
        cells: np.ndarray,
        amplitude_V: float,
        width_s: float,
        compliance_A: float,
        count: int,
        read_after: bool = False,
        read_voltage_V: float = 0.5,
        pulse_gap_s: float = 0.0,
        read_time_s: float = 0.0,
    ) -> list[PulseReply]:
        """``count`` pulses to every cell of ``cells`` (``(n, 2)`` rows/cols), each followed by a
        read at ``read_voltage_V`` (V) when ``read_after``: one PULSE command per block of cells
        whose request fits the board's receive buffer and whose reads fit one reply frame (one
        command for most uses). Returns the replies, one per block, in cell order.

        ``pulse_gap_s`` (s, between pulses) and ``read_time_s`` (s, one read of one cell) are the
        board's timing, to size each command's timeout.
        """
        cells = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
        count = int(count)
        per_frame = max(1, (self.rx_max_payload - PulseRequest.size(0)) // CELL_SIZE)
        if read_after:
            fixed = PulseReply.size(count, 0, True)
            per_cell = PulseReply.size(count, 1, True) - fixed
            per_frame = min(per_frame, max(1, (MAX_PAYLOAD - fixed) // per_cell))
        replies: list[PulseReply] = []
        for start in range(0, len(cells), per_frame):
            block = cells[start : start + per_frame]
            duration = count * (width_s + pulse_gap_s)
            if read_after:
                duration += count * read_time_s * len(block)
            replies.append(
                self.pulse(
                    array, block, amplitude_V, width_s, compliance_A, count,
                    read_after, read_voltage_V, duration_s=duration,
                )  # fmt: skip
            )
        return replies

    def read_many(self, array: int, cells: np.ndarray | None, voltage_V: float) -> list[ReadReply]:
        """Currents (A) of ``cells`` (``(n, 2)``; ``None``: every cell) at ``voltage_V`` (V).

        Every cell: one READ_ARRAY when its reply fits a frame (reply shape ``(rows, cols)``).
        Otherwise READ_CELLS commands of as many cells as the board's receive buffer holds
        (replies ``(1, k)``; every cell row-major). Returns the replies in cell order.
        """
        if cells is None:
            shape = self._array_shape(array)
            if shape is None or ReadReply.size(*shape) <= MAX_PAYLOAD:
                return [self.read_array(array, voltage_V)]
            rows, cols = shape
            r, c = np.divmod(np.arange(rows * cols, dtype=np.int64), cols)
            cells = np.stack([r, c], axis=1)
        cells = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
        per_frame = max(1, (self.rx_max_payload - ReadCellsRequest.size(0)) // CELL_SIZE)
        return [
            self.read_cells(array, cells[start : start + per_frame], voltage_V)
            for start in range(0, len(cells), per_frame)
        ]

    def vmm_many(
        self,
        arrays: Sequence[int],
        signs: Sequence[float],
        voltages_V: np.ndarray,
        backward: bool = False,
    ) -> list[MatrixReply]:
        """VMM of one vector (``(n_in,)``, one command) or a batch (``(batch, n_in)``, V): one VMM
        command per block of vectors whose request fits the board's receive buffer and whose
        currents fit one reply frame (one command for most uses). Returns the replies, one per
        block, in batch order."""
        v = np.asarray(voltages_V, dtype=float)
        if v.ndim == 1:
            return [self.vmm(arrays, signs, v, backward=backward)]
        fixed_in = VmmRequest.size(len(arrays), 0, 0)
        per_vector = VmmRequest.size(len(arrays), 1, v.shape[1]) - fixed_in
        per_block = (self.rx_max_payload - fixed_in) // per_vector
        shape = self._array_shape(arrays[0]) if len(arrays) else None
        if shape is not None:
            n_out = shape[0] if backward else shape[1]
            fixed = MatrixReply.size(0, n_out)
            per_block = min(per_block, (MAX_PAYLOAD - fixed) // (MatrixReply.size(1, n_out) - fixed))
        per_block = max(1, per_block)
        return [
            self.vmm(arrays, signs, v[start : start + per_block], backward=backward)
            for start in range(0, len(v), per_block)
        ]

    def _array_shape(self, array: int) -> tuple[int, int] | None:
        """``(rows, cols)`` of board array ``array`` as IDENTIFY reported it (``None``: unknown)."""
        if self.identity is None or not 0 <= array < len(self.identity.arrays):
            return None
        return self.identity.arrays[array]

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Close the serial port (idempotent)."""
        if self.connected:
            self.connected = False
            with contextlib.suppress(Exception):  # closing a dead port must not raise
                self.transport.close()

    # ------------------------------------------------------------------ transactions
    def transact(self, request: Message, duration_s: float = 0.0) -> Message:
        """Send one command and return its decoded reply, re-sending on timeout or garbage.

        Raises:
            BoardCommandError: the board answered with an error frame.
            BoardTimeoutError: no reply after every retry.
            BoardGarbledError: only garbled replies after every retry.
            BoardConnectionError: the link is gone.
        """
        if not self.connected:
            raise BoardConnectionError("the serial link is closed")
        command = request.command
        payload = request.encode()
        if len(payload) > self.rx_max_payload:
            raise ValueError(
                f"{command.name}: {len(payload)}-byte payload exceeds the board's "
                f"{self.rx_max_payload}-byte receive buffer"
            )
        seq = self._seq
        self._seq = next_seq(seq)
        frame = encode_frame(int(command), seq, payload)
        # the previous command's bound too: its reply may still arrive (after Ctrl-C, or late),
        # and must decode cleanly to be skipped as stale rather than taken for garbage
        bound = self._reply_bound(request)
        self._decoder.max_payload = max(bound, self._last_bound, _ERROR_REPLY_BOUND)
        self._last_bound = bound
        self.stats.commands += 1
        wait_s = self.timeout_s + max(0.0, float(duration_s))
        attempts = 1 + self.retries
        problem = "no reply"
        for attempt in range(attempts):
            if attempt:
                self.stats.retries += 1
                self._flush()
            self._write(frame)
            self.stats.round_trips += 1
            outcome = self._await(seq, wait_s)
            if outcome is None:
                self.stats.timeouts += 1
                problem = f"no reply within {wait_s:g} s"
                continue
            if isinstance(outcome, str):
                self.stats.garbled += 1
                problem = outcome
                continue
            try:
                reply = decode_reply(outcome, int(command))
            except PayloadError as exc:
                self.stats.garbled += 1
                problem = f"malformed reply ({exc})"
                continue
            if isinstance(reply, ErrorReply):
                raise BoardCommandError(reply, command)
            self._t_ns = int(getattr(reply, "t_ns", self._t_ns))
            return reply
        text = f"{command.name} (seq {seq}): {problem}, after {attempts} attempt(s)"
        if problem.startswith("no reply"):
            raise BoardTimeoutError(text)
        raise BoardGarbledError(text)

    def _reply_bound(self, request: Message) -> int:
        """Largest payload (bytes) a valid reply to ``request`` can have; the decoder drops any
        header that declares more at once instead of waiting for bytes that will never come."""
        arrays = self.identity.arrays if self.identity is not None else ()
        biggest = max((r * c for r, c in arrays), default=MAX_PAYLOAD // 4)
        widest = max((max(r, c) for r, c in arrays), default=MAX_PAYLOAD // 4)
        if isinstance(request, IdentifyRequest):
            bound = 14 + 4 * 255 + 4096
        elif isinstance(request, PulseRequest):
            n_cells = biggest if request.cells is None else len(request.cells)
            bound = PulseReply.size(request.count, n_cells, request.read_after)
        elif isinstance(request, ProgramRequest):
            bound = ProgramReply.size()
        elif isinstance(request, ReadCellsRequest):
            bound = ReadReply.size(1, len(request.cells))
        elif isinstance(request, ReadArrayRequest):
            bound = ReadReply.size(1, biggest)
        elif isinstance(request, VmmRequest):
            batch = 1 if request.voltages_uV.ndim == 1 else request.voltages_uV.shape[0]
            bound = MatrixReply.size(batch, widest)
        elif isinstance(request, IvSweepRequest):
            bound = IvSweepReply.size(len(request.voltages_uV))
        else:
            bound = EmptyReply.size()
        return min(bound, MAX_PAYLOAD)

    def _write(self, frame: bytes) -> None:
        try:
            self.transport.write(frame)
        except Exception as exc:  # pyserial raises SerialException / SerialTimeoutException / OSError
            self.close()
            raise BoardConnectionError(f"serial link lost while writing: {exc}") from None

    def _read(self, size: int, timeout_s: float) -> bytes:
        try:
            self.transport.timeout = timeout_s
            return self.transport.read(size)
        except Exception as exc:  # noqa: BLE001 - any failure of the port means the link is gone
            self.close()
            raise BoardConnectionError(f"serial link lost while reading: {exc}") from None

    def _flush(self) -> None:
        self._decoder.reset()
        try:
            self.transport.reset_input_buffer()
        except Exception as exc:  # noqa: BLE001
            self.close()
            raise BoardConnectionError(f"serial link lost: {exc}") from None

    def _await(self, seq: int, wait_s: float) -> Frame | str | None:
        """The reply frame with ``seq``; ``None`` on timeout; a description if it came garbled."""
        deadline = time.monotonic() + wait_s
        decoder = self._decoder
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            bad_before = decoder.crc_errors + decoder.length_errors
            data = self._read(decoder.needed(), remaining)
            if not data:  # a serial read returns nothing only once its timeout has passed
                return None
            for frame in decoder.feed(data):
                if frame.seq == seq and frame.is_reply:
                    return frame
                self.stats.stale += 1
            if decoder.crc_errors + decoder.length_errors > bad_before:
                return "garbled reply (bad CRC or length)"


__all__ = [
    "FRAME_OVERHEAD",
    "BoardCommandError",
    "BoardConnectionError",
    "BoardError",
    "BoardGarbledError",
    "BoardTimeoutError",
    "CrossbarBoard",
    "LinkStats",
    "Transport",
]
