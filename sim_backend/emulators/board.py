"""Emulator of the FPGA crossbar board: the board's firmware on a pseudo-terminal, backed by the twin.

:class:`BoardFirmware` is the board's command handler, pure and synchronous: frames in, reply
frames out, every command carried out on a shared :class:`~sim_backend.twin.TwinBackend`.
:class:`BoardEmulator` runs it in a thread behind a pseudo-terminal (optionally reached through a
symlink such as ``/tmp/rram-hil-board``) that pyserial opens like a real serial port, adds a
per-command latency and injects faults: a lost reply (timeout), a garbled reply, a dropped link.

The firmware makes exactly the twin calls the direct twin backend makes for the same backend
call, so the same seed gives the same devices and trajectories through the board as directly:

============  =====================================================================
PULSE         one ``twin.pulse(array, cells, pulse, count, read_after, read_V)``
              (with reads the twin loops pulse, read per pulse, as it does directly)
PROGRAM       one ``twin.program(array, counts, pulse)`` when the last frame of the
              batch arrives; earlier frames are only stored
READ_CELLS    one ``twin.read(array, cells, V)``
READ_ARRAY    one ``twin.read(array, None, V)``
VMM           one ``twin.vmm(arrays, V, direction, signs)``
IV_SWEEP      one ``twin.iv_sweep(...)``
DELAY         one ``twin.delay(s)`` (the twin's clock: no wall-clock wait)
SAFE_STATE    ``twin.safe_state()``
============  =====================================================================

Run it stand-alone with ``python -m sim_backend.emulators.board STATION [--seed N]``: it prints
the resource, then ``ready``, and serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import select
import signal
import sys
import threading
import time
import tty
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

import numpy as np

from drivers.board.framing import MAX_PAYLOAD, Frame, FrameDecoder
from drivers.board.messages import (
    VMM_BACKWARD,
    WIRE_FORMAT_VERSION,
    Command,
    DelayRequest,
    EmptyReply,
    ErrorCode,
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
    decode_request,
    error_frame,
    ns_to_seconds,
    reply_frame,
    seconds_to_ns,
    uV_to_volts,
)
from hil.errors import ConfigError
from hil.station import Station, load_station
from hil.types import ArraySpec, Pulse
from sim_backend.station_twin import twin_from_station
from sim_backend.twin import TwinBackend

#: receive buffer the emulated board reports (bytes of payload per frame)
DEFAULT_RX_MAX_PAYLOAD = 65_536
#: default link path of the example station
DEFAULT_LINK = "/tmp/rram-hil-board"
#: commands that drive the array (need limits first, switch the outputs on)
_DRIVING = {
    Command.PULSE,
    Command.PROGRAM,
    Command.READ_CELLS,
    Command.READ_ARRAY,
    Command.VMM,
    Command.IV_SWEEP,
}


# --------------------------------------------------------------------------- firmware
@dataclass
class _Batch:
    """A whole-array programming batch being received, frame by frame."""

    array: int
    batch: int
    amplitude_uV: int
    width_ns: int
    compliance_A: float
    counts: np.ndarray
    rows_received: int = 0

    def matches(self, req: ProgramRequest) -> bool:
        return (req.array, req.batch, req.amplitude_uV, req.width_ns, req.compliance_A) == (
            self.array,
            self.batch,
            self.amplitude_uV,
            self.width_ns,
            self.compliance_A,
        )


class _Refused(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class BoardFirmware:
    """The board's command handler on the twin (no I/O, no threads).

    Attributes:
        outputs_on: the array drivers are connected (switched on by the first driving command
            after SET_LIMITS, off by SAFE_STATE, link loss or the watchdog).
        limits: the limits of the last SET_LIMITS, or ``None`` before it.
        last_seq: sequence number of the last frame handled.
        applied: commands carried out (a repeated frame served from the retry cache is not).
        applied_by_command: the same, by command name.
        replayed: repeated frames answered from the retry cache, not applied again.
        programs_applied: PROGRAM batches applied to the array (one twin call each).
        refused: error frames sent, by error code name.
        safe_states: times the board went to its safe state, by reason.
    """

    def __init__(
        self,
        twin: TwinBackend,
        name: str = "rram-hil board emulator",
        rx_max_payload: int = DEFAULT_RX_MAX_PAYLOAD,
    ) -> None:
        self.twin = twin
        self.name = name
        self.rx_max_payload = int(rx_max_payload)
        self.specs: list[ArraySpec] = list(twin.arrays.values())
        self.limits: SetLimitsRequest | None = None
        self.outputs_on = False
        self.last_seq: int | None = None
        self.applied = 0
        self.applied_by_command: Counter[str] = Counter()
        self.replayed = 0
        self.programs_applied = 0
        self.refused: Counter[str] = Counter()
        self.safe_states: Counter[str] = Counter()
        self._cache: tuple[int, int, bytes, bytes] | None = None  # seq, cmd, payload, reply
        self._batch: _Batch | None = None

    # ------------------------------------------------------------------ entry point
    def handle(self, frame: Frame) -> bytes:
        """Carry out one CRC-valid frame and return the reply frame (bytes).

        A frame that repeats the previous one (same sequence number, command and payload) is a
        retry: the cached reply is returned and nothing is applied again. IDENTIFY opens a
        session: it clears the cache and is never cached itself. Never raises: anything wrong becomes an error frame.
        """
        self.last_seq = frame.seq
        if frame.cmd == Command.IDENTIFY:
            self._cache = None
        elif self._cache is not None and self._cache[0] == frame.seq:
            seq, cmd, payload, reply = self._cache
            if cmd == frame.cmd and payload == frame.payload:
                self.replayed += 1
                return reply
            return self._error(
                frame, ErrorCode.SEQ_REUSED, f"sequence number {seq} was used by another command"
            )
        try:
            request = decode_request(frame)
            reply = reply_frame(frame.seq, frame.cmd, self._execute(request))
        except PayloadError as exc:
            reply = self._error(frame, exc.code, str(exc))
        except _Refused as exc:
            reply = self._error(frame, exc.code, str(exc))
        except Exception as exc:  # noqa: BLE001 - firmware never crashes on a command
            reply = self._error(frame, ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        if frame.cmd != Command.IDENTIFY:  # IDENTIFY changes nothing: a repeat simply runs again
            self._cache = (frame.seq, frame.cmd, frame.payload, reply)
        return reply

    def safe_state(self, reason: str = "command") -> None:
        """Outputs off, any open programming batch dropped."""
        self.outputs_on = False
        self._batch = None
        self.safe_states[reason] += 1
        self.twin.safe_state()

    @property
    def t_ns(self) -> int:
        """The board clock (ns): the twin's clock."""
        return seconds_to_ns(self.twin.now())

    # ------------------------------------------------------------------ helpers
    def _error(self, frame: Frame, code: ErrorCode, message: str) -> bytes:
        self.refused[code.name] += 1
        return error_frame(frame.seq, frame.cmd, code, message)

    def _applied(self, command: Command) -> None:
        self.applied += 1
        self.applied_by_command[command.name] += 1

    def _spec(self, index: int) -> ArraySpec:
        if not 0 <= index < len(self.specs):
            raise _Refused(ErrorCode.BAD_ARRAY, f"array {index} does not exist (0..{len(self.specs) - 1})")
        return self.specs[index]

    def _configured(self) -> SetLimitsRequest:
        if self.limits is None:
            raise _Refused(ErrorCode.NOT_CONFIGURED, "SET_LIMITS must come before any driving command")
        return self.limits

    @staticmethod
    def _cells(cells: np.ndarray, spec: ArraySpec) -> None:
        bad = (cells[:, 0] >= spec.rows) | (cells[:, 1] >= spec.cols)
        if bad.any():
            r, c = cells[np.argmax(bad)]
            raise _Refused(
                ErrorCode.BAD_CELL,
                f"cell ({r}, {c}) is outside array {spec.name} ({spec.rows} x {spec.cols})",
            )

    @staticmethod
    def _limit(ok: bool, message: str) -> None:
        if not ok:
            raise _Refused(ErrorCode.LIMIT, message)

    def _check_pulse(self, amplitude_uV: int, width_ns: int, compliance_A: float) -> None:
        lim = self._configured()
        self._limit(abs(amplitude_uV) <= lim.max_abs_uV, f"amplitude {amplitude_uV} uV > {lim.max_abs_uV} uV")
        self._limit(
            lim.min_width_ns <= width_ns <= lim.max_width_ns,
            f"width {width_ns} ns outside [{lim.min_width_ns}, {lim.max_width_ns}] ns",
        )
        self._check_compliance(compliance_A)

    def _check_compliance(self, compliance_A: float) -> None:
        lim = self._configured()
        self._limit(
            bool(np.isfinite(compliance_A)) and 0 < compliance_A <= lim.max_compliance_A,
            f"compliance {compliance_A:g} A outside (0, {lim.max_compliance_A:g}] A",
        )

    def _check_read(self, uV: int) -> None:
        lim = self._configured()
        self._limit(
            0 < abs(uV) <= lim.max_read_uV, f"read voltage {uV} uV outside 0 < |V| <= {lim.max_read_uV} uV"
        )

    def _arm(self) -> None:
        self.outputs_on = True

    # ------------------------------------------------------------------ commands
    def _execute(self, req: Message) -> Message:
        command = req.command
        if command in _DRIVING:
            self._configured()
        handler: Callable[[Message], Message] = getattr(self, f"_do_{command.name.lower()}")
        reply = handler(req)
        self._applied(command)
        return reply

    def _do_identify(self, req: Message) -> Message:
        assert isinstance(req, IdentifyRequest)
        return IdentifyReply(
            self.t_ns,
            WIRE_FORMAT_VERSION,
            self.rx_max_payload,
            tuple((s.rows, s.cols) for s in self.specs),
            self.name,
        )

    def _do_set_limits(self, req: Message) -> Message:
        assert isinstance(req, SetLimitsRequest)
        self.limits = req
        return EmptyReply(self.t_ns)

    def _do_safe_state(self, req: Message) -> Message:
        assert isinstance(req, SafeStateRequest)
        self.safe_state("command")
        return EmptyReply(self.t_ns)

    def _do_delay(self, req: Message) -> Message:
        assert isinstance(req, DelayRequest)
        self.twin.delay(ns_to_seconds(req.duration_ns))
        return EmptyReply(self.t_ns)

    def _do_pulse(self, req: Message) -> Message:
        assert isinstance(req, PulseRequest)
        spec = self._spec(req.array)
        lim = self._configured()
        self._check_pulse(req.amplitude_uV, req.width_ns, req.compliance_A)
        self._limit(1 <= req.count <= lim.max_pulses, f"count {req.count} outside [1, {lim.max_pulses}]")
        if req.read_after:
            self._check_read(req.read_uV)
        if req.cells is not None:
            self._cells(req.cells, spec)
        n_cells = spec.size if req.cells is None else len(req.cells)
        size = PulseReply.size(req.count, n_cells, req.read_after)
        if size > MAX_PAYLOAD:
            raise _Refused(ErrorCode.TOO_LARGE, f"the reply would take {size} bytes (at most {MAX_PAYLOAD})")
        self._arm()
        pulse = Pulse(uV_to_volts(req.amplitude_uV), ns_to_seconds(req.width_ns), req.compliance_A)
        read_V = uV_to_volts(req.read_uV)
        result = self.twin.pulse(spec.name, req.cells, pulse, req.count, req.read_after, read_V)
        t_ns = np.rint(np.asarray(result.t_s) * 1e9).astype(np.uint64)
        currents = None
        if result.conductance_S is not None:
            currents = result.conductance_S * read_V
        return PulseReply(
            self.t_ns,
            req.count,
            n_cells,
            int(t_ns[0]),
            int(t_ns[-1]),
            t_ns if currents is not None else None,
            currents,
        )

    def _do_program(self, req: Message) -> Message:
        assert isinstance(req, ProgramRequest)
        try:
            return self._program_frame(req)
        except _Refused:
            self._batch = None  # a bad frame drops the whole batch: nothing half-programmed
            raise

    def _program_frame(self, req: ProgramRequest) -> Message:
        spec = self._spec(req.array)
        lim = self._configured()
        self._check_pulse(req.amplitude_uV, req.width_ns, req.compliance_A)
        n_rows, n_cols = req.counts.shape
        if n_cols != spec.cols:
            raise _Refused(
                ErrorCode.BATCH, f"a row of array {spec.name} has {spec.cols} counts, not {n_cols}"
            )
        if req.row_start == 0:
            self._batch = _Batch(
                req.array,
                req.batch,
                req.amplitude_uV,
                req.width_ns,
                req.compliance_A,
                np.zeros(spec.shape, dtype=np.int64),
            )
        batch = self._batch
        if batch is None or not batch.matches(req) or req.row_start != batch.rows_received:
            expected = "row 0" if batch is None else f"row {batch.rows_received} of batch {batch.batch}"
            raise _Refused(
                ErrorCode.BATCH,
                f"frame of batch {req.batch} starts at row {req.row_start}, expected {expected}",
            )
        if req.row_start + n_rows > spec.rows:
            raise _Refused(
                ErrorCode.BATCH, f"rows {req.row_start}..{req.row_start + n_rows - 1} exceed {spec.rows}"
            )
        self._limit(
            int(req.counts.max()) <= lim.max_pulses,
            f"count {int(req.counts.max())} above {lim.max_pulses} pulses per cell",
        )
        batch.counts[req.row_start : req.row_start + n_rows] = req.counts
        batch.rows_received += n_rows
        if not req.last:
            return ProgramReply(self.t_ns, False, batch.rows_received)
        if batch.rows_received != spec.rows:
            raise _Refused(ErrorCode.BATCH, f"last frame after {batch.rows_received} of {spec.rows} rows")
        self._batch = None
        self._arm()
        pulse = Pulse(uV_to_volts(req.amplitude_uV), ns_to_seconds(req.width_ns), req.compliance_A)
        result = self.twin.program(spec.name, batch.counts, pulse)
        self.programs_applied += 1
        return ProgramReply(
            self.t_ns,
            True,
            batch.rows_received,
            result.pulses_applied,
            result.cells_programmed,
            result.max_count,
            seconds_to_ns(result.duration_s),
        )

    def _do_read_cells(self, req: Message) -> Message:
        assert isinstance(req, ReadCellsRequest)
        spec = self._spec(req.array)
        self._check_read(req.voltage_uV)
        self._cells(req.cells, spec)
        self._arm()
        readout = self.twin.read(spec.name, req.cells, uV_to_volts(req.voltage_uV))
        return ReadReply(self.t_ns, seconds_to_ns(readout.t_s), readout.current_A.reshape(1, -1))

    def _do_read_array(self, req: Message) -> Message:
        assert isinstance(req, ReadArrayRequest)
        spec = self._spec(req.array)
        self._check_read(req.voltage_uV)
        self._arm()
        readout = self.twin.read(spec.name, None, uV_to_volts(req.voltage_uV))
        return ReadReply(self.t_ns, seconds_to_ns(readout.t_s), readout.current_A.reshape(spec.shape))

    def _do_vmm(self, req: Message) -> Message:
        assert isinstance(req, VmmRequest)
        specs = [self._spec(a) for a in req.arrays]
        if any(s.shape != specs[0].shape for s in specs):
            raise _Refused(ErrorCode.BAD_ARRAY, "VMM arrays must have one shape")
        backward = req.direction == VMM_BACKWARD
        n_in = specs[0].cols if backward else specs[0].rows
        if req.voltages_uV.shape[-1] != n_in:
            raise _Refused(ErrorCode.BAD_PAYLOAD, f"{req.voltages_uV.shape[-1]} inputs for {n_in} lines")
        lim = self._configured()
        peak = int(np.abs(req.voltages_uV).max())
        self._limit(peak <= lim.max_read_uV, f"VMM input {peak} uV above {lim.max_read_uV} uV")
        self._arm()
        names = [s.name for s in specs]
        volts = req.voltages_uV / 1e6
        current = self.twin.vmm(
            names if len(names) > 1 else names[0],
            volts,
            "backward" if backward else "forward",
            list(req.signs),
        )
        return MatrixReply(self.t_ns, np.atleast_2d(current))

    def _do_iv_sweep(self, req: Message) -> Message:
        assert isinstance(req, IvSweepRequest)
        spec = self._spec(req.array)
        lim = self._configured()
        self._cells(np.array([[req.row, req.col]]), spec)
        peak = int(np.abs(req.voltages_uV).max())
        self._limit(peak <= lim.max_abs_uV, f"sweep voltage {peak} uV above {lim.max_abs_uV} uV")
        self._check_compliance(req.compliance_A)
        self._limit(
            0 < req.dwell_ns <= lim.max_dwell_ns,
            f"dwell {req.dwell_ns} ns outside (0, {lim.max_dwell_ns}] ns",
        )
        self._arm()
        result = self.twin.iv_sweep(
            spec.name,
            req.row,
            req.col,
            req.voltages_uV / 1e6,
            req.compliance_A,
            ns_to_seconds(req.dwell_ns),
        )
        return IvSweepReply(
            self.t_ns,
            result.voltage_V,
            result.current_A,
            np.rint(result.t_s * 1e9).astype(np.uint64),
            result.in_compliance,
        )


# --------------------------------------------------------------------------- emulator
FaultKind = Literal["timeout", "garbled", "disconnect"]


@dataclass
class BoardFault:
    """A fault the emulator injects into matching frames.

    Attributes:
        kind: ``timeout`` (no reply is sent), ``garbled`` (the reply is sent with a corrupted
            byte, so its CRC fails) or ``disconnect`` (the board drops the link and goes to its
            safe state; the frame is not carried out).
        command: name of the command it hits (e.g. ``"PULSE"``); ``None`` hits any command.
        after: matching frames let through before the fault starts.
        times: matching frames it hits (retries are frames too); ``disconnect`` hits once.
        applied: ``timeout`` / ``garbled`` only: the command is carried out and only its reply
            lost (``True``), or the frame itself is lost (``False``).
    """

    kind: FaultKind
    command: str | None = None
    after: int = 0
    times: int = 1
    applied: bool = True
    seen: int = field(default=0, init=False)
    hits: int = field(default=0, init=False)

    def strikes(self, frame: Frame) -> bool:
        """Whether this fault hits ``frame`` (counts the frame when it matches)."""
        if self.command is not None:
            try:
                if Command(frame.cmd).name != self.command.upper():
                    return False
            except ValueError:
                return False
        self.seen += 1
        if self.seen <= self.after or self.hits >= self.times:
            return False
        self.hits += 1
        return True


@dataclass
class BoardLatency:
    """How long the emulated board takes to answer (s): ``base_s`` for every command, or the
    ``per_command_s`` entry of its name (e.g. ``{"PULSE": 5e-3}``). The default, 1 ms, is a
    USB-serial round trip plus a short command."""

    base_s: float = 1e-3
    per_command_s: dict[str, float] = field(default_factory=dict)

    def of(self, cmd: int) -> float:
        try:
            name = Command(cmd).name
        except ValueError:
            return self.base_s
        return float(self.per_command_s.get(name, self.base_s))


class BoardEmulator:
    """The board on a pseudo-terminal: a thread serves the firmware to whoever opens the pty.

    Args:
        twin: the shared twin the board's arrays live on (one board array per twin array, in
            the twin's order).
        link: path of a symlink to the pty (e.g. ``/tmp/rram-hil-board``); ``None``: no link,
            the pty's own path is the resource.
        latency: reply latency (default 1 ms per command); ``0`` or ``BoardLatency(0)`` for none.
        faults: faults to inject, checked in order for every frame.
        watchdog_s: outputs go off when no frame arrives for this long (s); ``None``: never.
        frame_timeout_s: a frame that stops arriving half-way is dropped after this long (s).
        rx_max_payload: the receive buffer the board reports (bytes).

    Attributes (besides the firmware's, see :class:`BoardFirmware`):
        link_up: the pty is open.
        frames: CRC-valid frames received.
    """

    def __init__(
        self,
        twin: TwinBackend,
        link: str | Path | None = None,
        latency: BoardLatency | float | None = None,
        faults: Sequence[BoardFault] = (),
        watchdog_s: float | None = 2.0,
        frame_timeout_s: float = 0.05,
        rx_max_payload: int = DEFAULT_RX_MAX_PAYLOAD,
    ) -> None:
        self.twin = twin
        self.firmware = BoardFirmware(
            twin, name=f"rram-hil board emulator (twin seed {twin.seed})", rx_max_payload=rx_max_payload
        )
        self.link = None if link is None else Path(link)
        if latency is None:
            latency = BoardLatency()
        self.latency = latency if isinstance(latency, BoardLatency) else BoardLatency(float(latency))
        self.faults = list(faults)
        self.watchdog_s = watchdog_s
        self.frame_timeout_s = frame_timeout_s
        self.decoder = FrameDecoder(rx_max_payload)
        self.frames = 0
        self.link_up = False
        self.resource: str | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ state for tests
    @property
    def outputs_on(self) -> bool:
        return self.firmware.outputs_on

    @property
    def last_seq(self) -> int | None:
        return self.firmware.last_seq

    @property
    def applied(self) -> int:
        return self.firmware.applied

    @property
    def applied_by_command(self) -> Counter[str]:
        return self.firmware.applied_by_command

    @property
    def replayed(self) -> int:
        return self.firmware.replayed

    def wait_until(self, condition: Callable[[BoardEmulator], bool], timeout_s: float = 5.0) -> bool:
        """Block until ``condition(self)`` holds (checked after every change) or the timeout passes."""
        with self._changed:
            return self._changed.wait_for(lambda: condition(self), timeout=timeout_s)

    # ------------------------------------------------------------------ lifetime
    def start(self) -> str:
        """Open the pty (and its link), start serving; returns the resource to open."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        master, slave = os.openpty()
        tty.setraw(slave)
        self._master, self._slave = master, slave
        path = os.ttyname(slave)
        if self.link is not None:
            if self.link.is_symlink():
                self.link.unlink()
            elif self.link.exists():
                os.close(master)
                os.close(slave)
                raise FileExistsError(f"link: '{self.link}' exists and is not a symlink")
            self.link.symlink_to(path)
            self.resource = str(self.link)
        else:
            self.resource = path
        self.link_up = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="board-emulator", daemon=True)
        self._thread.start()
        return self.resource

    def stop(self) -> None:
        """Stop serving, close the pty, remove the link. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._drop_link()

    def __enter__(self) -> BoardEmulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _drop_link(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        if self.link is not None and self.link.is_symlink():
            with contextlib.suppress(OSError):
                self.link.unlink()
        if self.link_up:
            self.link_up = False
            self.firmware.safe_state("link lost")
        self._notify()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------ serving
    def _serve(self) -> None:
        assert self._master is not None
        master = self._master
        last_rx = time.monotonic()
        poll_s = 0.02
        try:
            while not self._stop.is_set() and self.link_up:
                readable, _, _ = select.select([master], [], [], poll_s)
                now = time.monotonic()
                if readable:
                    try:
                        data = os.read(master, 65_536)
                    except OSError as exc:
                        if exc.errno == errno.EIO:  # nobody holds the terminal open
                            self._stop.wait(poll_s)
                            continue
                        raise
                    if data:
                        last_rx = now
                        self._frames(self.decoder.feed(data))
                        continue
                if self.decoder.buffered and now - last_rx > self.frame_timeout_s:
                    self._frames(self.decoder.drop_partial())
                    self._notify()
                if (
                    self.watchdog_s is not None
                    and self.firmware.outputs_on
                    and now - last_rx > self.watchdog_s
                ):
                    self.firmware.safe_state("watchdog")
                    self._notify()
        except BaseException as exc:  # noqa: BLE001 - recorded for tests, then the link drops
            self.error = exc
            self._drop_link()

    def _frames(self, frames: list[Frame]) -> None:
        for frame in frames:
            if not self.link_up:
                return
            self.frames += 1
            self._one(frame)
            self._notify()

    def _one(self, frame: Frame) -> None:
        fault = next((f for f in self.faults if f.strikes(frame)), None)
        if fault is not None and fault.kind == "disconnect":
            self._drop_link()
            return
        if fault is not None and not fault.applied:
            return  # the frame was lost on its way: nothing applied, nothing answered
        with self._changed:
            reply = self.firmware.handle(frame)
        delay = self.latency.of(frame.cmd)
        if delay > 0:
            time.sleep(delay)
        if fault is not None and fault.kind == "timeout":
            return
        if fault is not None and fault.kind == "garbled":
            corrupt = bytearray(reply)
            corrupt[8 + (len(reply) - 8) // 2] ^= 0x5A  # a payload or CRC byte: the CRC fails
            reply = bytes(corrupt)
        self._write(reply)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self.link_up and not self._stop.is_set():
            assert self._master is not None
            _, writable, _ = select.select([], [self._master], [], 0.05)
            if writable:
                written = os.write(self._master, view)
                view = view[written:]


# --------------------------------------------------------------------------- stand-alone
def twin_for_station(station: Station, seed: int | None = None) -> TwinBackend:
    """The twin behind an emulated board station (:func:`sim_backend.station_twin.twin_from_station`):
    its ``twin`` section (or the default twin) with the station's arrays, in the station's order."""
    return twin_from_station(station, seed)


def board_link(station: Station) -> str:
    """The resource (serial port or pty link) of the station's board instrument."""
    for inst in station.instruments.values():
        if inst.model == "board":
            return inst.resource
    raise ConfigError(f"station: '{station.name}' has no instrument of model 'board'")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sim_backend.emulators.board STATION [--seed N] [--link PATH] [--latency-ms MS]``."""
    parser = argparse.ArgumentParser(
        prog="python -m sim_backend.emulators.board",
        description="Emulate a station's FPGA crossbar board on a pseudo-terminal, backed by the twin.",
    )
    parser.add_argument("station", help="station YAML file with a 'board' instrument")
    parser.add_argument("--seed", type=int, default=None, help="twin seed (default: the station's)")
    parser.add_argument("--link", default=None, help="pty link path (default: the instrument's resource)")
    parser.add_argument("--latency-ms", type=float, default=1.0, help="reply latency per command (ms)")
    parser.add_argument("--watchdog-s", type=float, default=2.0, help="outputs off after this idle time (s)")
    args = parser.parse_args(argv)
    try:
        station = load_station(args.station)
        link = args.link or board_link(station)
        twin = twin_for_station(station, args.seed)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    emulator = BoardEmulator(twin, link=link, latency=args.latency_ms / 1e3, watchdog_s=args.watchdog_s)
    try:
        resource = emulator.start()
    except OSError as exc:
        print(f"error: link: cannot create '{link}': {exc}", file=sys.stderr)
        return 2
    print(resource, flush=True)
    print("ready", flush=True)
    try:
        while not stop.wait(0.2) and emulator.link_up:
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
