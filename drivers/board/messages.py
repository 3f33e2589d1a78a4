"""Messages of the FPGA crossbar board's serial wire format: command codes, request and reply
payloads and their codecs.

Pure functions and dataclasses, no I/O. A message travels as the payload of one frame
(:mod:`drivers.board.framing`); the client (:mod:`drivers.board.client`) and the board emulator
both use this module, and ``docs/board-wire-format.md`` is its specification.

Number formats on the wire: voltages as signed 32-bit integers in microvolts (uV), durations and
times as unsigned 64-bit integers in nanoseconds (ns), currents and compliances as IEEE-754
float32 in amperes (A), signs as float32, cell addresses and pulse counts as u16. Every reply
payload starts with the board clock ``t_ns`` (u64 ns) at the moment the reply was made.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, Self

import numpy as np

from drivers.board.framing import ERROR_CMD, REPLY_FLAG, Frame, encode_frame

#: version of the wire format (IDENTIFY reports the board's)
WIRE_FORMAT_VERSION = 1
MAX_COUNT_PER_CELL = 0xFFFF  # program counts are u16
MAX_INDEX = 0xFFFF  # rows and cols are u16
#: bytes of one cell address in a cell list (row u16, col u16)
CELL_SIZE = 4


class Command(IntEnum):
    """Command codes (host -> board). A reply carries ``code | 0x80``."""

    IDENTIFY = 0x01
    SET_LIMITS = 0x02
    PULSE = 0x03
    PROGRAM = 0x04
    READ_CELLS = 0x05
    READ_ARRAY = 0x06
    VMM = 0x07
    IV_SWEEP = 0x08
    DELAY = 0x09
    SAFE_STATE = 0x0A


class ErrorCode(IntEnum):
    """Codes of an error frame (payload: code u8, failed command u8, UTF-8 message)."""

    UNKNOWN_COMMAND = 0x01
    BAD_PAYLOAD = 0x02
    BAD_ARRAY = 0x03
    BAD_CELL = 0x04
    LIMIT = 0x05
    NOT_CONFIGURED = 0x06
    SEQ_REUSED = 0x07
    BATCH = 0x08
    TOO_LARGE = 0x09
    INTERNAL = 0x0A


class PayloadError(ValueError):
    """A payload that does not decode (wrong length, unknown flags, inconsistent counts)."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.BAD_PAYLOAD) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- units
def volts_to_uV(volts: float) -> int:
    """Volts to the wire's integer microvolts (rounded to nearest)."""
    return int(round(float(volts) * 1e6))


def uV_to_volts(uV: int) -> float:
    """Wire microvolts to volts (correctly rounded: ``2_000_000 -> 2.0``)."""
    return int(uV) / 1e6


def seconds_to_ns(seconds: float) -> int:
    """Seconds to the wire's integer nanoseconds (rounded to nearest)."""
    return int(round(float(seconds) * 1e9))


def ns_to_seconds(ns: int) -> float:
    """Wire nanoseconds to seconds (correctly rounded: ``100_000 -> 1e-4``)."""
    return int(ns) / 1e9


# --------------------------------------------------------------------------- payload helpers
class _Reader:
    """Consumes a payload field by field; any shortfall or leftover is a :class:`PayloadError`."""

    def __init__(self, payload: bytes, what: str) -> None:
        self.data = memoryview(payload)
        self.pos = 0
        self.what = what

    def take(self, fmt: str) -> tuple[int | float, ...]:
        s = struct.Struct("<" + fmt)
        if self.pos + s.size > len(self.data):
            raise PayloadError(f"{self.what}: payload too short ({len(self.data)} bytes)")
        values = s.unpack_from(self.data, self.pos)
        self.pos += s.size
        return values

    def one(self, fmt: str) -> int:
        return int(self.take(fmt)[0])

    def one_float(self, fmt: str = "f") -> float:
        return float(self.take(fmt)[0])

    def array(self, dtype: str, n: int) -> np.ndarray:
        dt = np.dtype(dtype)
        size = dt.itemsize * n
        if n < 0 or self.pos + size > len(self.data):
            raise PayloadError(
                f"{self.what}: payload of {len(self.data)} bytes is too short for {n} x {dt.name}"
            )
        arr = np.frombuffer(self.data[self.pos : self.pos + size], dtype=dt).copy()
        self.pos += size
        return arr

    def rest(self) -> bytes:
        out = bytes(self.data[self.pos :])
        self.pos = len(self.data)
        return out

    def done(self) -> None:
        if self.pos != len(self.data):
            raise PayloadError(
                f"{self.what}: {len(self.data) - self.pos} unexpected trailing bytes "
                f"(payload {len(self.data)} bytes)"
            )


def _flags(value: int, allowed: int, what: str) -> int:
    if value & ~allowed:
        raise PayloadError(f"{what}: unknown flag bits 0x{value & ~allowed:02x}")
    return value


def _cells_bytes(cells: np.ndarray) -> bytes:
    """A cell list as ``n x (row u16, col u16)``."""
    arr = np.asarray(cells, dtype=np.int64).reshape(-1, 2)
    if arr.size and (arr.min() < 0 or arr.max() > MAX_INDEX):
        raise ValueError("cells: rows and cols must lie in [0, 65535]")
    return arr.astype("<u2").tobytes()


def _f32(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<f4").tobytes()


def _u64(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<u8").tobytes()


# --------------------------------------------------------------------------- messages
class Message:
    """Base of every payload: ``encode() -> bytes`` and ``decode(payload) -> Self``."""

    command: ClassVar[Command]

    def encode(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def decode(cls, payload: bytes) -> Self:  # pragma: no cover - abstract
        raise NotImplementedError


# ---- requests (host -> board)
@dataclass(frozen=True)
class IdentifyRequest(Message):
    """IDENTIFY: no payload. Opens a session (clears the board's retry cache)."""

    command: ClassVar[Command] = Command.IDENTIFY

    def encode(self) -> bytes:
        return b""

    @classmethod
    def decode(cls, payload: bytes) -> IdentifyRequest:
        _Reader(payload, "IDENTIFY").done()
        return cls()


@dataclass(frozen=True)
class SetLimitsRequest(Message):
    """SET_LIMITS: the board refuses any later command outside these (error LIMIT).

    Payload: max_abs_uV u32, max_read_uV u32, max_compliance_A f32, min_width_ns u64,
    max_width_ns u64, max_pulses u32, max_dwell_ns u64 (40 bytes).
    """

    command: ClassVar[Command] = Command.SET_LIMITS
    FMT: ClassVar[str] = "IIfQQIQ"

    max_abs_uV: int
    max_read_uV: int
    max_compliance_A: float
    min_width_ns: int
    max_width_ns: int
    max_pulses: int
    max_dwell_ns: int

    def encode(self) -> bytes:
        return struct.pack(
            "<" + self.FMT,
            self.max_abs_uV,
            self.max_read_uV,
            self.max_compliance_A,
            self.min_width_ns,
            self.max_width_ns,
            self.max_pulses,
            self.max_dwell_ns,
        )

    @classmethod
    def decode(cls, payload: bytes) -> SetLimitsRequest:
        r = _Reader(payload, "SET_LIMITS")
        v = r.take(cls.FMT)
        r.done()
        lim = cls(int(v[0]), int(v[1]), float(v[2]), int(v[3]), int(v[4]), int(v[5]), int(v[6]))
        if not (np.isfinite(lim.max_compliance_A) and lim.max_compliance_A > 0):
            raise PayloadError("SET_LIMITS: max_compliance_A must be a positive number")
        if lim.max_read_uV > lim.max_abs_uV or lim.min_width_ns > lim.max_width_ns:
            raise PayloadError("SET_LIMITS: inconsistent limits (read > abs or min width > max width)")
        return lim


PULSE_READ_AFTER = 0x01
PULSE_ALL_CELLS = 0x02


@dataclass(frozen=True)
class PulseRequest(Message):
    """PULSE: ``count`` identical pulses to every addressed cell, with a read after each if asked.

    Payload: array u8, flags u8 (0x01 read after every pulse, 0x02 every cell of the array),
    amplitude_uV i32, width_ns u64, compliance_A f32, count u32, read_uV i32, n_cells u32,
    then n_cells x (row u16, col u16) (n_cells is 0 with the all-cells flag).
    """

    command: ClassVar[Command] = Command.PULSE
    FMT: ClassVar[str] = "BBiQfIiI"

    array: int
    amplitude_uV: int
    width_ns: int
    compliance_A: float
    count: int
    read_after: bool = False
    read_uV: int = 0
    cells: np.ndarray | None = None  # (n, 2) row/col; None: every cell

    def encode(self) -> bytes:
        flags = (PULSE_READ_AFTER if self.read_after else 0) | (PULSE_ALL_CELLS if self.cells is None else 0)
        cells = (
            np.zeros((0, 2), dtype=np.int64) if self.cells is None else np.asarray(self.cells).reshape(-1, 2)
        )
        head = struct.pack(
            "<" + self.FMT,
            self.array,
            flags,
            self.amplitude_uV,
            self.width_ns,
            self.compliance_A,
            self.count,
            self.read_uV,
            len(cells),
        )
        return head + _cells_bytes(cells)

    @staticmethod
    def size(n_cells: int) -> int:
        """Payload size (bytes) of a PULSE request addressing ``n_cells`` cells."""
        return struct.calcsize("<" + PulseRequest.FMT) + CELL_SIZE * n_cells

    @classmethod
    def decode(cls, payload: bytes) -> PulseRequest:
        r = _Reader(payload, "PULSE")
        array, flags, amp, width, comp, count, read_uV, n = r.take(cls.FMT)
        _flags(int(flags), PULSE_READ_AFTER | PULSE_ALL_CELLS, "PULSE")
        all_cells = bool(int(flags) & PULSE_ALL_CELLS)
        if all_cells and n:
            raise PayloadError("PULSE: the all-cells flag comes with n_cells = 0")
        if not all_cells and not n:
            raise PayloadError("PULSE: no cells addressed")
        cells = None if all_cells else r.array("<u2", 2 * int(n)).astype(np.int64).reshape(-1, 2)
        r.done()
        return cls(
            int(array),
            int(amp),
            int(width),
            float(comp),
            int(count),
            bool(int(flags) & PULSE_READ_AFTER),
            int(read_uV),
            cells,
        )


PROGRAM_LAST = 0x01


@dataclass(frozen=True)
class ProgramRequest(Message):
    """PROGRAM: one frame of a whole-array programming batch (a block of consecutive rows).

    Payload: array u8, flags u8 (0x01 last frame of the batch), batch u16, amplitude_uV i32,
    width_ns u64, compliance_A f32, row_start u16, n_rows u16, n_cols u16, then
    n_rows x n_cols pulse counts u16, row-major.
    """

    command: ClassVar[Command] = Command.PROGRAM
    FMT: ClassVar[str] = "BBHiQfHHH"

    array: int
    batch: int
    amplitude_uV: int
    width_ns: int
    compliance_A: float
    row_start: int
    counts: np.ndarray  # (n_rows, n_cols)
    last: bool

    def encode(self) -> bytes:
        counts = np.asarray(self.counts, dtype=np.int64)
        if counts.ndim != 2:
            raise ValueError("counts: a (n_rows, n_cols) block is needed")
        if counts.size and (counts.min() < 0 or counts.max() > MAX_COUNT_PER_CELL):
            raise ValueError(f"counts: every count must lie in [0, {MAX_COUNT_PER_CELL}]")
        head = struct.pack(
            "<" + self.FMT,
            self.array,
            PROGRAM_LAST if self.last else 0,
            self.batch,
            self.amplitude_uV,
            self.width_ns,
            self.compliance_A,
            self.row_start,
            counts.shape[0],
            counts.shape[1],
        )
        return head + counts.astype("<u2").tobytes()

    @classmethod
    def decode(cls, payload: bytes) -> ProgramRequest:
        r = _Reader(payload, "PROGRAM")
        array, flags, batch, amp, width, comp, row_start, n_rows, n_cols = r.take(cls.FMT)
        _flags(int(flags), PROGRAM_LAST, "PROGRAM")
        if not n_rows or not n_cols:
            raise PayloadError("PROGRAM: a frame carries at least one row of at least one column")
        counts = r.array("<u2", int(n_rows) * int(n_cols)).astype(np.int64).reshape(int(n_rows), int(n_cols))
        r.done()
        return cls(
            int(array),
            int(batch),
            int(amp),
            int(width),
            float(comp),
            int(row_start),
            counts,
            bool(int(flags) & PROGRAM_LAST),
        )

    @staticmethod
    def header_size() -> int:
        """Payload bytes of a PROGRAM frame before its counts."""
        return struct.calcsize("<" + ProgramRequest.FMT)


@dataclass(frozen=True)
class ReadCellsRequest(Message):
    """READ_CELLS: payload array u8, voltage_uV i32, n u32, then n x (row u16, col u16)."""

    command: ClassVar[Command] = Command.READ_CELLS
    FMT: ClassVar[str] = "BiI"

    array: int
    voltage_uV: int
    cells: np.ndarray

    def encode(self) -> bytes:
        cells = np.asarray(self.cells).reshape(-1, 2)
        return struct.pack("<" + self.FMT, self.array, self.voltage_uV, len(cells)) + _cells_bytes(cells)

    @staticmethod
    def size(n_cells: int) -> int:
        """Payload size (bytes) of a READ_CELLS request of ``n_cells`` cells."""
        return struct.calcsize("<" + ReadCellsRequest.FMT) + CELL_SIZE * n_cells

    @classmethod
    def decode(cls, payload: bytes) -> ReadCellsRequest:
        r = _Reader(payload, "READ_CELLS")
        array, volts, n = r.take(cls.FMT)
        if not n:
            raise PayloadError("READ_CELLS: no cells addressed")
        cells = r.array("<u2", 2 * int(n)).astype(np.int64).reshape(-1, 2)
        r.done()
        return cls(int(array), int(volts), cells)


@dataclass(frozen=True)
class ReadArrayRequest(Message):
    """READ_ARRAY: every cell of one array in one operation. Payload: array u8, voltage_uV i32."""

    command: ClassVar[Command] = Command.READ_ARRAY
    FMT: ClassVar[str] = "Bi"

    array: int
    voltage_uV: int

    def encode(self) -> bytes:
        return struct.pack("<" + self.FMT, self.array, self.voltage_uV)

    @classmethod
    def decode(cls, payload: bytes) -> ReadArrayRequest:
        r = _Reader(payload, "READ_ARRAY")
        array, volts = r.take(cls.FMT)
        r.done()
        return cls(int(array), int(volts))


VMM_FORWARD = 0
VMM_BACKWARD = 1


@dataclass(frozen=True)
class VmmRequest(Message):
    """VMM: drive voltages, sense currents, summed over arrays with signs.

    Payload: direction u8 (0 forward: rows driven, columns sensed; 1 backward), n_arrays u8,
    ndim u8 (1: one vector, 2: a batch), then n_arrays x (array u8, sign f32), batch u32,
    n_in u32, then batch x n_in voltages i32 uV (batch is 1 when ndim is 1).
    """

    command: ClassVar[Command] = Command.VMM

    direction: int
    arrays: tuple[int, ...]
    signs: tuple[float, ...]
    voltages_uV: np.ndarray  # (n_in,) or (batch, n_in) int
    ndim: int = field(default=0)

    def encode(self) -> bytes:
        v = np.asarray(self.voltages_uV, dtype=np.int64)
        ndim = v.ndim
        v2 = v.reshape(1, -1) if ndim == 1 else v
        out = struct.pack("<BBB", self.direction, len(self.arrays), ndim)
        for a, s in zip(self.arrays, self.signs, strict=True):
            out += struct.pack("<Bf", a, s)
        out += struct.pack("<II", v2.shape[0], v2.shape[1])
        return out + v2.astype("<i4").tobytes()

    @staticmethod
    def size(n_arrays: int, batch: int, n_in: int) -> int:
        """Payload size (bytes) of a VMM request over ``n_arrays`` arrays, ``batch x n_in`` voltages."""
        return 3 + 5 * n_arrays + 8 + 4 * batch * n_in

    @classmethod
    def decode(cls, payload: bytes) -> VmmRequest:
        r = _Reader(payload, "VMM")
        direction, n_arrays, ndim = (int(x) for x in r.take("BBB"))
        if direction not in (VMM_FORWARD, VMM_BACKWARD):
            raise PayloadError(f"VMM: direction {direction} is neither 0 (forward) nor 1 (backward)")
        if ndim not in (1, 2):
            raise PayloadError(f"VMM: ndim {ndim} is neither 1 nor 2")
        if not n_arrays:
            raise PayloadError("VMM: no arrays given")
        arrays, signs = [], []
        for _ in range(n_arrays):
            a, s = r.take("Bf")
            if not np.isfinite(s):
                raise PayloadError("VMM: a sign is not a finite number")
            arrays.append(int(a))
            signs.append(float(s))
        batch, n_in = (int(x) for x in r.take("II"))
        if ndim == 1 and batch != 1:
            raise PayloadError("VMM: ndim 1 needs batch = 1")
        if not batch or not n_in:
            raise PayloadError("VMM: empty voltage matrix")
        v = r.array("<i4", batch * n_in).astype(np.int64).reshape(batch, n_in)
        r.done()
        return cls(direction, tuple(arrays), tuple(signs), v[0] if ndim == 1 else v, ndim)


@dataclass(frozen=True)
class IvSweepRequest(Message):
    """IV_SWEEP: DC sweep of one cell. Payload: array u8, row u16, col u16, compliance_A f32,
    dwell_ns u64, n u32, then n voltages i32 uV."""

    command: ClassVar[Command] = Command.IV_SWEEP
    FMT: ClassVar[str] = "BHHfQI"

    array: int
    row: int
    col: int
    compliance_A: float
    dwell_ns: int
    voltages_uV: np.ndarray

    def encode(self) -> bytes:
        v = np.asarray(self.voltages_uV, dtype=np.int64).reshape(-1)
        head = struct.pack(
            "<" + self.FMT, self.array, self.row, self.col, self.compliance_A, self.dwell_ns, len(v)
        )
        return head + v.astype("<i4").tobytes()

    @classmethod
    def decode(cls, payload: bytes) -> IvSweepRequest:
        r = _Reader(payload, "IV_SWEEP")
        array, row, col, comp, dwell, n = r.take(cls.FMT)
        if not n:
            raise PayloadError("IV_SWEEP: no voltages")
        v = r.array("<i4", int(n)).astype(np.int64)
        r.done()
        return cls(int(array), int(row), int(col), float(comp), int(dwell), v)


@dataclass(frozen=True)
class DelayRequest(Message):
    """DELAY: the board idles for duration_ns (u64) with its outputs at rest, then replies."""

    command: ClassVar[Command] = Command.DELAY

    duration_ns: int

    def encode(self) -> bytes:
        return struct.pack("<Q", self.duration_ns)

    @classmethod
    def decode(cls, payload: bytes) -> DelayRequest:
        r = _Reader(payload, "DELAY")
        (d,) = r.take("Q")
        r.done()
        return cls(int(d))


@dataclass(frozen=True)
class SafeStateRequest(Message):
    """SAFE_STATE: no payload. Outputs off, every driver disconnected, any open batch dropped."""

    command: ClassVar[Command] = Command.SAFE_STATE

    def encode(self) -> bytes:
        return b""

    @classmethod
    def decode(cls, payload: bytes) -> SafeStateRequest:
        _Reader(payload, "SAFE_STATE").done()
        return cls()


REQUESTS: dict[int, type[Message]] = {
    cls.command: cls
    for cls in (
        IdentifyRequest,
        SetLimitsRequest,
        PulseRequest,
        ProgramRequest,
        ReadCellsRequest,
        ReadArrayRequest,
        VmmRequest,
        IvSweepRequest,
        DelayRequest,
        SafeStateRequest,
    )
}


def decode_request(frame: Frame) -> Message:
    """The request a host frame carries.

    Raises:
        PayloadError: unknown command (code UNKNOWN_COMMAND) or a payload that does not decode.
    """
    cls = REQUESTS.get(frame.cmd)
    if cls is None:
        raise PayloadError(f"unknown command 0x{frame.cmd:02x}", ErrorCode.UNKNOWN_COMMAND)
    return cls.decode(frame.payload)


# ---- replies (board -> host); every payload starts with t_ns u64, the board clock
@dataclass(frozen=True)
class IdentifyReply(Message):
    """IDENTIFY reply: t_ns u64, version u8, n_arrays u8, rx_max_payload u32, then
    n_arrays x (rows u16, cols u16), then the board's name in UTF-8 (rest of the payload)."""

    command: ClassVar[Command] = Command.IDENTIFY

    t_ns: int
    version: int
    rx_max_payload: int
    arrays: tuple[tuple[int, int], ...]
    name: str

    def encode(self) -> bytes:
        out = struct.pack("<QBBI", self.t_ns, self.version, len(self.arrays), self.rx_max_payload)
        for rows, cols in self.arrays:
            out += struct.pack("<HH", rows, cols)
        return out + self.name.encode()

    @classmethod
    def decode(cls, payload: bytes) -> IdentifyReply:
        r = _Reader(payload, "IDENTIFY reply")
        t, version, n, rx = r.take("QBBI")
        arrays = tuple((int(a), int(b)) for a, b in (r.take("HH") for _ in range(int(n))))
        try:
            name = r.rest().decode()
        except UnicodeDecodeError:
            raise PayloadError("IDENTIFY reply: the name is not UTF-8") from None
        return cls(int(t), int(version), int(rx), arrays, name)


@dataclass(frozen=True)
class EmptyReply(Message):
    """Reply of SET_LIMITS, DELAY and SAFE_STATE: t_ns u64 only."""

    command: ClassVar[Command] = Command.SAFE_STATE

    t_ns: int

    def encode(self) -> bytes:
        return struct.pack("<Q", self.t_ns)

    @classmethod
    def decode(cls, payload: bytes) -> EmptyReply:
        r = _Reader(payload, "reply")
        (t,) = r.take("Q")
        r.done()
        return cls(int(t))

    @staticmethod
    def size() -> int:
        """Payload size (bytes) of a reply that carries only the board clock."""
        return 8


@dataclass(frozen=True)
class PulseReply(Message):
    """PULSE reply: t_ns u64, flags u8 (0x01 reads follow), count u32, n_cells u32,
    t_first_ns u64, t_last_ns u64; with reads, then count read times u64 ns and
    n_cells x count read currents f32 (A), cell-major (every read of cell 0, then cell 1, ...)."""

    command: ClassVar[Command] = Command.PULSE
    FMT: ClassVar[str] = "QBIIQQ"

    t_ns: int
    count: int
    n_cells: int
    t_first_ns: int
    t_last_ns: int
    read_times_ns: np.ndarray | None = None  # (count,)
    currents_A: np.ndarray | None = None  # (n_cells, count)

    def encode(self) -> bytes:
        reads = self.currents_A is not None
        out = struct.pack(
            "<" + self.FMT,
            self.t_ns,
            PULSE_READ_AFTER if reads else 0,
            self.count,
            self.n_cells,
            self.t_first_ns,
            self.t_last_ns,
        )
        if reads:
            assert self.read_times_ns is not None and self.currents_A is not None
            out += _u64(self.read_times_ns) + _f32(self.currents_A)
        return out

    @classmethod
    def decode(cls, payload: bytes) -> PulseReply:
        r = _Reader(payload, "PULSE reply")
        t, flags, count, n, t0, t1 = (int(x) for x in r.take(cls.FMT))
        _flags(flags, PULSE_READ_AFTER, "PULSE reply")
        times = currents = None
        if flags & PULSE_READ_AFTER:
            times = r.array("<u8", count)
            currents = r.array("<f4", n * count).reshape(n, count)
        r.done()
        return cls(t, count, n, t0, t1, times, currents)

    @staticmethod
    def size(count: int, n_cells: int, reads: bool) -> int:
        """Payload size (bytes) of a PULSE reply."""
        base = struct.calcsize("<" + PulseReply.FMT)
        return base + (count * 8 + n_cells * count * 4 if reads else 0)


@dataclass(frozen=True)
class ProgramReply(Message):
    """PROGRAM reply: t_ns u64, flags u8 (0x01 the batch was applied), rows_received u16,
    pulses_applied u64, cells_programmed u32, max_count u32, duration_ns u64. Frames before the
    last one are acknowledged with flags 0 and zero totals."""

    command: ClassVar[Command] = Command.PROGRAM
    FMT: ClassVar[str] = "QBHQIIQ"

    t_ns: int
    applied: bool
    rows_received: int
    pulses_applied: int = 0
    cells_programmed: int = 0
    max_count: int = 0
    duration_ns: int = 0

    def encode(self) -> bytes:
        return struct.pack(
            "<" + self.FMT,
            self.t_ns,
            1 if self.applied else 0,
            self.rows_received,
            self.pulses_applied,
            self.cells_programmed,
            self.max_count,
            self.duration_ns,
        )

    @classmethod
    def decode(cls, payload: bytes) -> ProgramReply:
        r = _Reader(payload, "PROGRAM reply")
        t, flags, rows, pulses, cells, mx, dur = (int(x) for x in r.take(cls.FMT))
        _flags(flags, 1, "PROGRAM reply")
        r.done()
        return cls(t, bool(flags), rows, pulses, cells, mx, dur)

    @staticmethod
    def size() -> int:
        """Payload size (bytes) of a PROGRAM reply."""
        return struct.calcsize("<" + ProgramReply.FMT)


@dataclass(frozen=True)
class ReadReply(Message):
    """READ_CELLS / READ_ARRAY reply: t_ns u64, read_t_ns u64, rows u16, cols u16, then
    rows x cols currents f32 (A). READ_CELLS answers with rows = 1, cols = n cells."""

    command: ClassVar[Command] = Command.READ_CELLS
    FMT: ClassVar[str] = "QQHH"

    t_ns: int
    read_t_ns: int
    currents_A: np.ndarray  # (rows, cols)

    def encode(self) -> bytes:
        c = np.asarray(self.currents_A)
        return struct.pack("<" + self.FMT, self.t_ns, self.read_t_ns, c.shape[0], c.shape[1]) + _f32(c)

    @classmethod
    def decode(cls, payload: bytes) -> ReadReply:
        r = _Reader(payload, "READ reply")
        t, t_read, rows, cols = (int(x) for x in r.take(cls.FMT))
        currents = r.array("<f4", rows * cols).reshape(rows, cols)
        r.done()
        return cls(t, t_read, currents)

    @staticmethod
    def size(rows: int, cols: int) -> int:
        """Payload size (bytes) of a READ reply of ``rows x cols`` currents."""
        return struct.calcsize("<" + ReadReply.FMT) + 4 * rows * cols


@dataclass(frozen=True)
class MatrixReply(Message):
    """VMM reply: t_ns u64, batch u32, n_out u32, then batch x n_out currents f32 (A)."""

    command: ClassVar[Command] = Command.VMM
    FMT: ClassVar[str] = "QII"

    t_ns: int
    currents_A: np.ndarray  # (batch, n_out)

    def encode(self) -> bytes:
        c = np.asarray(self.currents_A)
        return struct.pack("<" + self.FMT, self.t_ns, c.shape[0], c.shape[1]) + _f32(c)

    @classmethod
    def decode(cls, payload: bytes) -> MatrixReply:
        r = _Reader(payload, "VMM reply")
        t, batch, n_out = (int(x) for x in r.take(cls.FMT))
        currents = r.array("<f4", batch * n_out).reshape(batch, n_out)
        r.done()
        return cls(t, currents)

    @staticmethod
    def size(batch: int, n_out: int) -> int:
        """Payload size (bytes) of a VMM reply of ``batch x n_out`` currents."""
        return struct.calcsize("<" + MatrixReply.FMT) + 4 * batch * n_out


@dataclass(frozen=True)
class IvSweepReply(Message):
    """IV_SWEEP reply: t_ns u64, n u32, then n measured voltages f32 (V), n currents f32 (A),
    n times u64 ns, n in-compliance flags u8."""

    command: ClassVar[Command] = Command.IV_SWEEP

    t_ns: int
    voltage_V: np.ndarray
    current_A: np.ndarray
    times_ns: np.ndarray
    in_compliance: np.ndarray

    def encode(self) -> bytes:
        n = len(self.voltage_V)
        return (
            struct.pack("<QI", self.t_ns, n)
            + _f32(self.voltage_V)
            + _f32(self.current_A)
            + _u64(self.times_ns)
            + np.asarray(self.in_compliance, dtype="u1").tobytes()
        )

    @classmethod
    def decode(cls, payload: bytes) -> IvSweepReply:
        r = _Reader(payload, "IV_SWEEP reply")
        t, n = (int(x) for x in r.take("QI"))
        v = r.array("<f4", n)
        i = r.array("<f4", n)
        times = r.array("<u8", n)
        hit = r.array("u1", n)
        r.done()
        if hit.size and hit.max() > 1:
            raise PayloadError("IV_SWEEP reply: in-compliance flags must be 0 or 1")
        return cls(t, v, i, times, hit.astype(bool))

    @staticmethod
    def size(n: int) -> int:
        """Payload size (bytes) of an IV_SWEEP reply of ``n`` points."""
        return 12 + 17 * n


@dataclass(frozen=True)
class ErrorReply(Message):
    """Error frame (CMD 0xFF): code u8, failed command u8, message UTF-8 (rest of the payload)."""

    command: ClassVar[Command] = Command.IDENTIFY  # unused: error frames carry ERROR_CMD

    code: int
    failed_cmd: int
    message: str

    def encode(self) -> bytes:
        return struct.pack("<BB", self.code, self.failed_cmd) + self.message.encode()

    @classmethod
    def decode(cls, payload: bytes) -> ErrorReply:
        r = _Reader(payload, "error frame")
        code, cmd = (int(x) for x in r.take("BB"))
        message = r.rest().decode(errors="replace")
        return cls(code, cmd, message)

    @property
    def code_name(self) -> str:
        try:
            return ErrorCode(self.code).name
        except ValueError:
            return f"0x{self.code:02x}"


REPLIES: dict[int, type[Message]] = {
    Command.IDENTIFY: IdentifyReply,
    Command.SET_LIMITS: EmptyReply,
    Command.PULSE: PulseReply,
    Command.PROGRAM: ProgramReply,
    Command.READ_CELLS: ReadReply,
    Command.READ_ARRAY: ReadReply,
    Command.VMM: MatrixReply,
    Command.IV_SWEEP: IvSweepReply,
    Command.DELAY: EmptyReply,
    Command.SAFE_STATE: EmptyReply,
}


def reply_frame(seq: int, command: int, reply: Message) -> bytes:
    """The frame of a reply to ``command`` (code ``command | 0x80``)."""
    return encode_frame(command | REPLY_FLAG, seq, reply.encode())


def error_frame(seq: int, command: int, code: ErrorCode, message: str) -> bytes:
    """An error frame answering ``command``."""
    text = message.encode()[:1000].decode(errors="ignore")
    return encode_frame(ERROR_CMD, seq, ErrorReply(int(code), command & 0xFF, text).encode())


def decode_reply(frame: Frame, command: int) -> Message:
    """The reply (or :class:`ErrorReply`) a board frame answering ``command`` carries.

    Raises:
        PayloadError: the frame answers another command, or its payload does not decode.
    """
    if frame.cmd == ERROR_CMD:
        return ErrorReply.decode(frame.payload)
    if frame.cmd != (command | REPLY_FLAG):
        raise PayloadError(f"reply code 0x{frame.cmd:02x} does not answer command 0x{command:02x}")
    return REPLIES[command].decode(frame.payload)
