"""The backend interface over the FPGA crossbar board (station ``backend: board``).

The board runs every many-cell operation natively: a pulse train with a read after every pulse
is one command (one host round trip), a whole array is programmed from its pulse-count matrix by
one batch of frames (one frame for arrays that fit the board's receive buffer), a whole array is
read in one command, and VMM is one command. The safety layer (:class:`hil.safety.SafeBackend`)
sits above this backend unchanged; on top of that the board itself is given the station's
limits (SET_LIMITS) when the backend opens, before any output can turn on.

Station section::

    backend: board
    instruments:
      board:
        model: board
        resource: /dev/ttyUSB0          # or a pty link such as /tmp/rram-hil-board
        options: {baudrate: 921600, timeout_s: 1.0, retries: 2}
    arrays:                              # board array 0, 1, ... in this order
      - {name: A, rows: 32, cols: 32, diameter_m: 1.0e-6}

Board array ``i`` is the station's ``arrays[i]`` unless ``options.array_index`` maps names to
board indices. The backend checks at open time that every array's shape matches the board's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.board.client import BoardConnectionError, BoardError, CrossbarBoard
from drivers.board.messages import MAX_COUNT_PER_CELL, uV_to_volts, volts_to_uV
from hil.backend import Backend, BackendError, SafeStateNotConfirmed
from hil.backends.registry import BackendKind
from hil.errors import ConfigError, format_validation_error
from hil.safety import LimitError, SafetyLimits
from hil.station import InstrumentConfig, Station
from hil.types import (
    DEFAULT_READ_VOLTAGE_V,
    ArraySpec,
    Capabilities,
    CellsLike,
    Direction,
    IVResult,
    ProgramResult,
    Pulse,
    PulseTrainResult,
    Readout,
    SafeStateReport,
    as_cells,
)

log = logging.getLogger(__name__)


class BoardOptions(BaseModel):
    """Options of the board instrument (``instruments.<name>.options``)."""

    model_config = ConfigDict(extra="forbid")

    baudrate: int = Field(921_600, ge=1200, le=20_000_000, description="serial baud rate")
    timeout_s: float = Field(
        1.0, gt=0, le=600, description="reply timeout on top of a command's duration (s)",
        json_schema_extra={"unit": "s"},
    )  # fmt: skip
    retries: int = Field(2, ge=0, le=20, description="re-sends of a command (same sequence number)")
    pulse_compliance_A: float | None = Field(
        None, gt=0, le=10, description="compliance of pulses that name none (A); default: the station's max",
        json_schema_extra={"unit": "A"},
    )  # fmt: skip
    read_time_s: float = Field(
        1e-4, ge=0, le=1, description="board time of one read (s), to size timeouts",
        json_schema_extra={"unit": "s"},
    )  # fmt: skip
    pulse_gap_s: float = Field(
        1e-6, ge=0, le=1, description="board time between pulses (s), to size timeouts",
        json_schema_extra={"unit": "s"},
    )  # fmt: skip
    array_index: dict[str, int] | None = Field(
        None, description="board array index of each station array (default: the order of 'arrays')"
    )


def _board_instrument(station: Station) -> tuple[str, InstrumentConfig]:
    found = [(k, v) for k, v in station.instruments.items() if v.model == "board"]
    if not found:
        raise ConfigError(
            f"instruments: backend 'board' needs an instrument with model 'board' "
            f"(station '{station.name}' has: {', '.join(station.instruments) or 'none'})"
        )
    if len(found) > 1:
        raise ConfigError(f"instruments: more than one 'board' instrument ({', '.join(k for k, _ in found)})")
    return found[0]


def parse_board_options(station: Station) -> tuple[str, InstrumentConfig, BoardOptions]:
    """The station's board instrument and its validated options (one-line ConfigError if bad)."""
    key, inst = _board_instrument(station)
    try:
        options = BoardOptions.model_validate(inst.options)
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, BoardOptions, prefix=f"instruments.{key}.options.")
        ) from None
    names = [a.name for a in station.arrays]
    if options.array_index is not None:
        missing = [n for n in names if n not in options.array_index]
        unknown = [n for n in options.array_index if n not in names]
        if missing or unknown:
            raise ConfigError(
                f"instruments.{key}.options.array_index: must map every station array "
                f"({', '.join(names)}); missing: {', '.join(missing) or '-'}, unknown: {', '.join(unknown) or '-'}"
            )
        bad = {n: i for n, i in options.array_index.items() if not 0 <= i <= 255}
        if bad or len(set(options.array_index.values())) != len(names):
            raise ConfigError(
                f"instruments.{key}.options.array_index: indices must be distinct, in 0..255 (got {options.array_index})"
            )
    return key, inst, options


def build_board_backend(station: Station) -> BoardBackend:
    """Open the station's board: serial port, IDENTIFY, array check, SET_LIMITS.

    Raises:
        ConfigError: bad options, a port that does not open, a board that does not answer,
            or arrays that do not match the board's.
    """
    key, inst, options = parse_board_options(station)
    try:
        board = CrossbarBoard.open(inst.resource, options.baudrate, options.timeout_s, options.retries)
    except BoardConnectionError as exc:
        raise ConfigError(
            f"instruments.{key}.resource: {exc} (is the board connected, or its emulator running?)"
        ) from None
    try:
        return BoardBackend(board, station.array_specs(), station.limits, options, inst.resource)
    except BoardError as exc:
        board.close()
        raise ConfigError(
            f"instruments.{key}: the board at '{inst.resource}' did not answer properly: {exc}"
        ) from None
    except BaseException:
        board.close()
        raise


@contextmanager
def _board_errors(what: str) -> Iterator[None]:
    """Driver errors become :class:`BackendError` naming the operation."""
    try:
        yield
    except BoardError as exc:
        raise BackendError(f"board {what}: {exc}") from exc


class BoardBackend(Backend):
    """Backend on the FPGA crossbar board.

    Args:
        board: an open driver.
        arrays: the station's arrays.
        limits: the station's limits (also sent to the board).
        options: the instrument's options.
        resource: where the board is (for :meth:`identify`).
    """

    def __init__(
        self,
        board: CrossbarBoard,
        arrays: Sequence[ArraySpec],
        limits: SafetyLimits,
        options: BoardOptions | None = None,
        resource: str = "",
    ) -> None:
        self.board = board
        self.options = options or BoardOptions()
        self.limits = limits
        self.resource = resource
        self._specs = {a.name: a for a in arrays}
        index = self.options.array_index or {a.name: i for i, a in enumerate(arrays)}
        self._index = dict(index)
        identity = board.identify()
        for a in arrays:
            i = self._index[a.name]
            if i >= len(identity.arrays):
                raise ConfigError(
                    f"arrays: '{a.name}' maps to board array {i}, but the board has {len(identity.arrays)} array(s)"
                )
            if identity.arrays[i] != a.shape:
                rows, cols = identity.arrays[i]
                raise ConfigError(
                    f"arrays: '{a.name}' is {a.rows} x {a.cols} but board array {i} is {rows} x {cols}"
                )
        self.identity = identity
        board.set_limits(
            limits.max_abs_voltage_V,
            limits.max_read_voltage_V,
            limits.max_compliance_A,
            limits.min_pulse_width_s,
            limits.max_pulse_width_s,
            limits.max_pulses_per_call,
            limits.max_dwell_s,
        )
        self.pulse_compliance_A = (
            self.options.pulse_compliance_A
            if self.options.pulse_compliance_A is not None
            else limits.max_compliance_A
        )

    # ------------------------------------------------------------------ description
    @property
    def arrays(self) -> Mapping[str, ArraySpec]:
        return self._specs

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            native_vmm=True,
            parallel_programming=True,
            instrument_side_trains=True,
            simulated_time=False,
            parallel_reads=True,
        )

    def identify(self) -> dict[str, str]:
        return {
            "backend": "board",
            "board": self.identity.name,
            "protocol_version": str(self.identity.version),
            "resource": self.resource,
        }

    def now(self) -> float:
        """The board clock (s) as of its latest reply."""
        return self.board.board_time_s

    @property
    def round_trips(self) -> int:
        """Frames sent to the board that waited for a reply, since it opened."""
        return self.board.stats.round_trips

    def _board_array(self, array: str) -> tuple[ArraySpec, int]:
        spec = self.spec(array)
        return spec, self._index[array]

    # ------------------------------------------------------------------ measurements
    def read(self, array: str, cells: CellsLike = None, voltage_V: float = DEFAULT_READ_VOLTAGE_V) -> Readout:
        """Every cell: one READ_ARRAY (for arrays whose currents fit one frame); listed cells: one
        READ_CELLS per block of cells that fits the board's receive buffer (the client splits)."""
        spec, index = self._board_array(array)
        v = uV_to_volts(volts_to_uV(voltage_V))  # the voltage the board applies
        arr = as_cells(cells, spec)
        with _board_errors("read"):
            replies = self.board.read_many(index, None if cells is None else arr, v)
        parts = [reply.currents_A.reshape(-1).astype(float) for reply in replies]
        current = np.concatenate(parts) if parts else np.zeros(0)
        if cells is None:
            current = current.reshape(spec.shape)
        t = replies[0].read_t_ns / 1e9 if replies else self.now()
        return Readout(array, arr, v, current / v, current, float(t))

    def pulse(
        self,
        array: str,
        cells: CellsLike,
        pulse: Pulse,
        count: int = 1,
        read_after: bool = False,
        read_voltage_V: float = DEFAULT_READ_VOLTAGE_V,
    ) -> PulseTrainResult:
        """The whole train, reads included, is one PULSE command (one host round trip) unless
        its cell list or its reads overflow one frame; then it runs as several PULSE commands,
        one per block of cells (the client splits)."""
        spec, index = self._board_array(array)
        arr = as_cells(cells, spec)
        count = int(count)
        compliance = pulse.compliance_A if pulse.compliance_A is not None else self.pulse_compliance_A
        v_read = uV_to_volts(volts_to_uV(read_voltage_V))
        with _board_errors("pulse"):
            replies = self.board.pulse_many(
                index, arr, pulse.amplitude_V, pulse.width_s, compliance, count, read_after, v_read,
                pulse_gap_s=self.options.pulse_gap_s, read_time_s=self.options.read_time_s,
            )  # fmt: skip
        # the first block's times stand for the train (every block runs the same train)
        times = np.zeros(count)
        if replies:
            first = replies[0]
            if first.currents_A is not None:
                assert first.read_times_ns is not None
                times = first.read_times_ns / 1e9
            else:
                times = np.linspace(first.t_first_ns / 1e9, first.t_last_ns / 1e9, count)
        g_parts = [r.currents_A.astype(float) / v_read for r in replies if r.currents_A is not None]
        g = np.concatenate(g_parts, axis=0) if read_after else None
        return PulseTrainResult(array, arr, pulse, count, g, v_read if read_after else None, times)

    def program(self, array: str, counts: np.ndarray, pulse: Pulse) -> ProgramResult:
        """One PROGRAM batch (one frame per block of rows that fits the board's buffer); the board
        applies it once, when the last frame arrives. An all-zero matrix sends nothing."""
        spec, index = self._board_array(array)
        counts = np.asarray(counts)
        if counts.shape != spec.shape:
            raise ValueError(f"counts.shape: {counts.shape} is not the array's shape {spec.shape}")
        counts = counts.astype(np.int64)
        if counts.size and counts.max() > MAX_COUNT_PER_CELL:
            raise LimitError(
                "counts (max)", int(counts.max()), f"[0, {MAX_COUNT_PER_CELL}] pulses per cell (board)"
            )
        if not counts.any():
            return ProgramResult(array, pulse, 0, 0, 0, 0.0)
        compliance = pulse.compliance_A if pulse.compliance_A is not None else self.pulse_compliance_A
        duration = int(counts.max()) * (pulse.width_s + self.options.pulse_gap_s)
        with _board_errors("program"):
            reply = self.board.program(
                index, counts, pulse.amplitude_V, pulse.width_s, compliance, duration_s=duration
            )
        return ProgramResult(
            array,
            pulse,
            reply.pulses_applied,
            reply.cells_programmed,
            reply.max_count,
            reply.duration_ns / 1e9,
        )

    def vmm(
        self,
        arrays: str | Sequence[str],
        voltages_V: np.ndarray,
        direction: Direction = "forward",
        signs: Sequence[float] | None = None,
    ) -> np.ndarray:
        """Native VMM: one VMM command per batch block that fits a frame (one for most uses)."""
        names = [arrays] if isinstance(arrays, str) else list(arrays)
        weights = [1.0] * len(names) if signs is None else [float(s) for s in signs]
        if len(weights) != len(names):
            raise ValueError(f"signs: {len(weights)} given for {len(names)} arrays")
        if not names:
            raise ValueError("arrays: give at least one array")
        specs = [self._board_array(n) for n in names]
        v = np.asarray(voltages_V, dtype=float)
        with _board_errors("vmm"):
            replies = self.board.vmm_many(
                [i for _, i in specs], weights, v, backward=direction == "backward"
            )
        result = np.concatenate([reply.currents_A.astype(float) for reply in replies], axis=0)
        return result[0] if v.ndim == 1 else result

    def iv_sweep(
        self,
        array: str,
        row: int,
        col: int,
        voltages_V: np.ndarray,
        compliance_A: float,
        dwell_s: float = 1e-3,
    ) -> IVResult:
        spec, index = self._board_array(array)
        as_cells([(row, col)], spec)
        v = np.asarray(voltages_V, dtype=float)
        with _board_errors("iv_sweep"):
            reply = self.board.iv_sweep(index, row, col, v, compliance_A, dwell_s)
        return IVResult(
            array,
            int(row),
            int(col),
            reply.voltage_V.astype(float),
            reply.current_A.astype(float),
            reply.times_ns / 1e9,
            float(compliance_A),
            reply.in_compliance.astype(bool),
        )

    def delay(self, seconds: float) -> None:
        """The board waits (DELAY); its outputs are at rest meanwhile."""
        if seconds <= 0:
            return
        with _board_errors("delay"):
            self.board.delay(seconds)

    # ------------------------------------------------------------------ safety and lifetime
    def safe_state(self) -> SafeStateReport:
        """SAFE_STATE on the board. With the link already gone nothing can be sent: the board's
        own link-loss and watchdog logic switches its outputs off, and the report says that the
        safe state was not confirmed (the run is not failed for it).

        Raises:
            SafeStateNotConfirmed: the link is up but the board did not confirm its safe state.
        """
        link_down = "link down: not confirmed; the board's link-loss watchdog switches its outputs off"
        if not self.board.connected:
            log.warning("board link is down; relying on the board's link-loss safe state")
            return SafeStateReport("unconfirmed", "unconfirmed", {"board": link_down}, (f"board: {link_down}",))
        try:
            self.board.safe_state()
        except BoardConnectionError:
            log.warning(
                "board link lost while sending SAFE_STATE; relying on the board's link-loss safe state"
            )
            return SafeStateReport("unconfirmed", "unconfirmed", {"board": link_down}, (f"board: {link_down}",))
        except BoardError as exc:
            message = f"board safe_state: the board did not confirm its safe state: {exc}"
            report = SafeStateReport("unconfirmed", "unconfirmed", {"board": str(exc)}, (message,))
            raise SafeStateNotConfirmed(message, report) from exc
        return SafeStateReport("off", "open", {"board": "SAFE_STATE acknowledged: outputs off, lines released"})

    def close(self) -> None:
        self.board.close()


class BoardKind(BackendKind):
    """``backend: board``: an FPGA crossbar board over serial."""

    name = "board"

    def build(self, station: Station, seed: int | None = None) -> Backend:
        return build_board_backend(station)

    def check(self, station: Station) -> None:
        parse_board_options(station)  # the board instrument and its options, without connecting
