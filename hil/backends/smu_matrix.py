"""The SMU + switch-matrix backend: the backend interface on source-measure units and a matrix.

Every cell is reached by closing two crosspoints of the station's switch matrix (its row to the
SMU's HI terminal, its column to ground; see :mod:`hil.backends.smu_matrix_config`). What each operation
does on the instruments:

* ``read``: the SMU is armed once (current compliance set, then output on at 0 V); per cell,
  one round trip to the matrix (exclusive close of the cell's two crosspoints, read back in the
  same message) and one to the SMU (read voltage, measure, back to 0 V);
* ``pulse``: per cell, the route and then the whole train in the SMU's own sequencer (TSP
  trigger model on the 2600B, pulse mode and timer triggers on the B2900, trigger model on the
  2450), readings back from the instrument's buffer: one SMU round trip on the 2600B and B2900,
  two on the 2450;
* ``program`` / ``program_outer``: per cell with pulses, route and one train (no reads);
* ``program_streams`` (an update by pulse coincidence): one SMU cannot fire rows and columns
  together, so each cell's coincidence count is applied as ``program`` does, one routed train
  per cell in turn: the same pulses per cell, sequential rather than parallel (the interface's
  default);
* ``vmm``: the interface's default, a full read and ``V @ G`` on the host (no native VMM);
* ``iv_sweep``: route, then the SMU's own staircase sweep, one or two round trips.

After every operation the SMU outputs are turned off and every relay is opened (the drivers'
``outputs_off_nowait`` and ``open_all_nowait``: messages that need no reply). :meth:`SmuMatrixBackend.safe_state` does the same and *reads it back*; an
instrument whose exchange was cut short (timeout, malformed reply, lost connection, Ctrl-C) is
reconnected first, so the commands reach it whatever state its connection was left in. Driver
and connection failures surface as :class:`~hil.backend.BackendError` naming the instrument.

Every instrument command is a driver's: this module writes no SCPI or TSP. It declares what it
needs of the drivers as protocols (:class:`SourceMeter`, :class:`SwitchMatrix`,
:class:`InstrumentClock`; ``typing.Protocol``).

Limits are enforced above this class (:class:`~hil.safety.SafeBackend`); this backend adds only
what the instruments cannot do (a pulse shorter than the SMU makes is refused before anything
is sent).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np

from drivers.b2900 import KeysightB2900
from drivers.common import SourceRatings, model_from_idn, model_ratings
from drivers.e5250a import KeysightE5250A
from drivers.keithley707b import Keithley707B
from drivers.keithley2450 import Keithley2450
from drivers.keithley2600 import Keithley2600
from hil.backend import Backend, BackendError, SafeStateNotConfirmed
from hil.backends.registry import BackendKind
from hil.backends.smu_matrix_config import (
    SMU_CHANNELS,
    SMU_MODELS,
    ArrayPlan,
    InstrumentPlan,
    MatrixOptions,
    SmuMatrixPlan,
    SmuOptions,
    plan_smu_matrix,
)
from hil.errors import ConfigError
from hil.safety import LimitError
from hil.station import Station
from hil.types import (
    DEFAULT_READ_VOLTAGE_V,
    ArraySpec,
    Capabilities,
    CellsLike,
    IVResult,
    ProgramResult,
    Pulse,
    PulseTrainResult,
    Readout,
    SafeStateReport,
    as_cells,
)


class Connection(Protocol):
    """What this backend needs of a driver's connection (pymeasure's adapter): closing it."""

    def close(self) -> None: ...


class SourceMeter(Protocol):
    """What this backend needs of an SMU driver (``drivers/keithley2600.py``, ``b2900.py``,
    ``keithley2450.py``); every instrument command is the driver's, none is written here."""

    #: the identification string (``*IDN?``), read once when the backend connects.
    id: str
    #: the driver's connection, closed on reconnect and at the end.
    adapter: Connection
    #: the shortest pulse (s) the driver accepts.
    min_pulse_width_s: float

    def arm(self, channel: str, compliance_A: float, nplc: float = ...) -> None:
        """Voltage source at 0 V with current compliance ``compliance_A`` (A), output on."""
        ...

    def read_current(self, channel: str, voltage_V: float) -> float:
        """Source ``voltage_V`` (V), return the current (A), back to 0 V: one round trip."""
        ...

    def start_read_current(self, channel: str, voltage_V: float) -> None:
        """The message of :meth:`read_current` alone; :meth:`finish_read_current` reads its reply."""
        ...

    def finish_read_current(self) -> float:
        """The current (A) of the last :meth:`start_read_current`."""
        ...

    def pulse_train(
        self,
        channel: str,
        amplitude_V: float,
        width_s: float,
        count: int,
        pulse_compliance_A: float,
        idle_compliance_A: float,
        read_voltage_V: float | None = ...,
    ) -> np.ndarray | None:
        """``count`` pulses run by the instrument; with ``read_voltage_V`` the current (A) after each."""
        ...

    def voltage_sweep(
        self, channel: str, voltages_V: Sequence[float] | np.ndarray, dwell_s: float, compliance_A: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Staircase sweep: ``(voltage V, current A)`` per point."""
        ...

    def outputs_off(self, channels: Sequence[str]) -> list[bool]:
        """Outputs of ``channels`` off, read back (True: still on)."""
        ...

    def outputs_off_nowait(self, channels: Sequence[str]) -> None:
        """Outputs of ``channels`` off: one message, no reply awaited."""
        ...


@runtime_checkable
class InstrumentClock(Protocol):
    """What an SMU that keeps the backend's time (``options.clock: instrument``) adds: a script
    timer and instrument-side waits (the 2600B's driver)."""

    def reset_timer(self) -> None:
        """Zero the instrument's timer."""
        ...

    def elapsed_s(self) -> float:
        """Seconds (s) on the instrument's timer since :meth:`reset_timer`."""
        ...

    def wait(self, seconds: float, chunk_s: float) -> None:
        """Wait ``seconds`` (s) on the instrument, in waits of at most ``chunk_s`` (s)."""
        ...


class SwitchMatrix(Protocol):
    """What this backend needs of a switch-matrix driver (``drivers/keithley707b.py``,
    ``e5250a.py``); crosspoints are ``(matrix row, global column)``."""

    #: the identification string (``*IDN?``), read once when the backend connects.
    id: str
    #: the driver's connection, closed on reconnect and at the end.
    adapter: Connection

    def setup(self) -> None:
        """Switching rules (break before make), once after connecting."""
        ...

    def route(self, crosspoints: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
        """Close exactly ``crosspoints`` (every other opens); returns what is closed after."""
        ...

    def start_route(self, crosspoints: Iterable[tuple[str, int]]) -> None:
        """The message of :meth:`route` alone; :meth:`finish_route` reads its read-back."""
        ...

    def finish_route(self) -> set[tuple[str, int]]:
        """What is closed after the last :meth:`start_route`."""
        ...

    def open_all(self) -> set[tuple[str, int]]:
        """Open every relay; returns what is still closed."""
        ...

    def open_all_nowait(self) -> None:
        """Open every relay: one message, no reply awaited."""
        ...


#: A connected instrument driver: an SMU or a switch matrix.
Driver = SourceMeter | SwitchMatrix


def open_instrument(plan: InstrumentPlan) -> Driver:
    """Connect the driver of one instrument (pyvisa-py by default); on a LAN socket, small
    messages leave at once (TCP_NODELAY: no Nagle delay behind an unacknowledged write)."""
    driver = _open_smu(plan) if plan.model in SMU_MODELS else _open_matrix(plan)
    if "::SOCKET" in plan.resource.upper():
        _no_delay(driver.adapter)
    return driver


def _no_delay(adapter: Any) -> None:
    """TCP_NODELAY on the socket resource of a pymeasure VISA adapter (pyvisa-py 0.8 cannot set
    VI_ATTR_TCPIP_NODELAY on a SOCKET session, so its socket is set directly; other VISA
    libraries get the attribute)."""
    from pyvisa import constants

    resource = adapter.connection
    try:
        resource.set_visa_attribute(constants.ResourceAttribute.tcpip_nodelay, True)
        return
    except Exception:
        pass
    with contextlib.suppress(Exception):
        sock = resource.visalib.sessions[resource.session].interface
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _visa_kwargs(plan: InstrumentPlan) -> dict[str, Any]:
    return {"timeout": int(plan.options.timeout_s * 1000), "visa_library": plan.options.visa_library}


def _open_smu(plan: InstrumentPlan) -> SourceMeter:
    options = plan.options
    if not isinstance(options, SmuOptions):
        raise ConfigError(f"instruments.{plan.name}.model: '{plan.model}' is not an SMU")
    kwargs = _visa_kwargs(plan)
    if plan.model == "keithley2450":
        return Keithley2450(plan.resource, min_pulse_width_s=options.min_pulse_width_s, **kwargs)
    if plan.model == "keithley2600":
        return Keithley2600(plan.resource, min_pulse_width_s=options.min_pulse_width_s, **kwargs)
    if plan.model == "b2900":
        return KeysightB2900(plan.resource, min_pulse_width_s=options.min_pulse_width_s, **kwargs)
    raise ConfigError(f"instruments.{plan.name}.model: '{plan.model}' has no driver")


def _open_matrix(plan: InstrumentPlan) -> SwitchMatrix:
    options = plan.options
    kwargs = _visa_kwargs(plan)
    if plan.model in ("keithley707b", "keithley708b"):
        return Keithley707B(plan.resource, **kwargs)
    if plan.model == "e5250a":
        if not isinstance(options, MatrixOptions):
            raise ConfigError(f"instruments.{plan.name}.model: '{plan.model}' is not a switch matrix")
        return KeysightE5250A(plan.resource, cards=range(1, options.slots + 1), **kwargs)
    raise ConfigError(f"instruments.{plan.name}.model: '{plan.model}' has no driver")


#: The driver class of each SMU model: its ``RATINGS`` (per exact model) and ``FAMILY``.
SMU_DRIVERS: dict[str, type[Keithley2450] | type[Keithley2600] | type[KeysightB2900]] = {
    "keithley2450": Keithley2450,
    "keithley2600": Keithley2600,
    "b2900": KeysightB2900,
}


def smu_ratings(plan: InstrumentPlan, model_number: str | None = None) -> SourceRatings:
    """What the SMU of ``plan`` can source: the exact model's ratings (``model_number``, else the
    station's ``options.instrument_model``), or the family's largest when neither is known.

    Raises:
        ConfigError: an ``instrument_model`` that is not a model of the driver's family.
    """
    driver = SMU_DRIVERS[plan.model]
    options = plan.options
    number = model_number or (options.instrument_model if isinstance(options, SmuOptions) else None)
    try:
        return model_ratings(driver.RATINGS, number, driver.FAMILY)
    except KeyError as exc:
        raise ConfigError(f"instruments.{plan.name}.options.instrument_model: {exc.args[0]}") from None


def check_ratings(plan: SmuMatrixPlan, model_numbers: Mapping[str, str | None] | None = None) -> None:
    """Refuse station limits and routing compliances beyond what the station's SMUs can source.

    Args:
        plan: the validated station.
        model_numbers: per SMU name, the exact model it named when it connected (``*IDN?``).

    Raises:
        ConfigError: one line naming the limit, its value, the instrument and its rating.
    """
    limits = plan.station.limits
    for smu in plan.smus():
        rating = smu_ratings(smu, (model_numbers or {}).get(smu.name))
        who = f"{smu.name} ({smu.model} {rating.model})"
        if limits.max_abs_voltage_V > rating.max_voltage_V:
            raise ConfigError(
                f"limits.max_abs_voltage_V: {limits.max_abs_voltage_V:g} V is more than {who} can source "
                f"(at most {rating.max_voltage_V:g} V)"
            )
        if limits.max_compliance_A > rating.max_current_A:
            raise ConfigError(
                f"limits.max_compliance_A: {limits.max_compliance_A:g} A is more than {who} can source "
                f"(at most {rating.max_current_A:g} A)"
            )
        for array in plan.arrays.values():
            if array.smu != smu.name:
                continue
            for label in ("read_compliance_A", "pulse_compliance_A"):
                value = getattr(array.routing, label)
                if value > rating.max_current_A:
                    raise ConfigError(
                        f"arrays.{array.array}.routing.{label}: {value:g} A is more than {who} can source "
                        f"(at most {rating.max_current_A:g} A)"
                    )


def plan_checked(station: Station) -> SmuMatrixPlan:
    """The station's plan (:func:`plan_smu_matrix`) with its limits checked against the SMUs' ratings."""
    plan = plan_smu_matrix(station)
    check_ratings(plan)
    return plan


def describe(exc: BaseException) -> str:
    """One line for a driver or connection failure."""
    name = type(exc).__name__
    text = str(exc).strip().splitlines()
    detail = text[0] if text else ""
    if "VI_ERROR_TMO" in detail:
        return "no reply before the VISA timeout (VI_ERROR_TMO)"
    return f"{name}: {detail}" if detail else name


class SmuMatrixBackend(Backend):
    """SMUs routed to crossbar arrays by a switch matrix (see the module docstring).

    Args:
        plan: the validated station (:func:`hil.backends.smu_matrix_config.plan_smu_matrix`).
        connect: opens one instrument's driver (tests substitute their own).
    """

    def __init__(
        self, plan: SmuMatrixPlan, connect: Callable[[InstrumentPlan], Driver] = open_instrument
    ) -> None:
        self.plan = plan
        self._connect = connect
        self._specs = {a.name: a.spec() for a in plan.station.arrays}
        self._smus: dict[str, SourceMeter] = {}
        self._matrices: dict[str, SwitchMatrix] = {}
        self._dirty: set[str] = set()
        self._idn: dict[str, str] = {}
        self._t0 = time.monotonic()
        self._clock_offset = 0.0
        self._clock_smu = next(
            (p for p in plan.smus() if isinstance(p.options, SmuOptions) and p.options.clock == "instrument"),
            None,
        )
        self._closed = False
        self._channels: dict[str, list[str]] = {}
        for a in plan.arrays.values():
            chans = self._channels.setdefault(a.smu, [])
            if a.channel not in chans:
                chans.append(a.channel)
        for name, inst in plan.instruments.items():
            try:
                self._idn[name] = str(self._attach(inst).id).strip()
            except Exception as exc:
                self._close_all()
                raise ConfigError(
                    f"instruments.{name}.resource: cannot connect to {inst.model} at '{inst.resource}' "
                    f"({describe(exc)}); is it on and reachable (or `rram-hil emulate` running)?"
                ) from None
        try:
            check_ratings(
                plan,
                {p.name: model_from_idn(self._idn[p.name], SMU_DRIVERS[p.model].RATINGS) for p in plan.smus()},
            )
        except ConfigError:
            self._close_all()
            raise
        try:
            for name in self.plan_matrices:
                with self._guard(name):
                    self._matrices[name].setup()
            if self._clock_smu is not None:
                with self._guard(self._clock_smu.name):
                    self._clock(self._clock_smu.name).reset_timer()
            self.safe_state()
        except BaseException:
            self._close_all()
            raise

    # ------------------------------------------------------------------ description
    @property
    def plan_matrices(self) -> set[str]:
        return {p.name for p in self.plan.matrices()}

    @property
    def arrays(self) -> Mapping[str, ArraySpec]:
        return self._specs

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(instrument_side_trains=True)

    def identify(self) -> dict[str, str]:
        info = {"backend": "smu-matrix"}
        for name, inst in self.plan.instruments.items():
            info[name] = f"{inst.model} at {inst.resource}: {self._idn.get(name, '?')}"
        return info

    def now(self) -> float:
        """Seconds since the backend opened: the host clock, plus any time an instrument-kept
        clock (``options.clock: instrument``) ran ahead of it during waits."""
        return time.monotonic() - self._t0 + self._clock_offset

    def driver(self, name: str) -> Driver:
        """The connected driver of instrument ``name`` (for diagnostics and tests)."""
        driver = self._connected(name)
        if driver is None:
            raise KeyError(name)
        return driver

    def _connected(self, name: str) -> Driver | None:
        if name in self._smus:
            return self._smus[name]
        return self._matrices.get(name)

    # ------------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def _guard(self, name: str) -> Iterator[None]:
        """Mark the instrument's connection suspect on any failure; driver errors -> BackendError."""
        try:
            yield
        except BackendError:
            raise
        except LimitError:
            raise
        except (KeyboardInterrupt, SystemExit):
            self._dirty.add(name)
            raise
        except Exception as exc:
            self._dirty.add(name)
            inst = self.plan.instruments[name]
            raise BackendError(f"{name} ({inst.model} at {inst.resource}): {describe(exc)}") from exc

    def _attach(self, inst: InstrumentPlan) -> Driver:
        """Connect the driver of ``inst`` and file it as an SMU or a matrix (by its model)."""
        driver = self._connect(inst)
        if inst.model in SMU_MODELS:
            self._smus[inst.name] = cast(SourceMeter, driver)
        else:
            self._matrices[inst.name] = cast(SwitchMatrix, driver)
        return driver

    def _reconnect(self, name: str) -> None:
        old = self._connected(name)
        if old is not None:
            with contextlib.suppress(Exception):
                old.adapter.close()
        self._attach(self.plan.instruments[name])
        self._dirty.discard(name)

    def _clock(self, name: str) -> InstrumentClock:
        """The driver of the SMU that keeps the backend's time."""
        smu = self._smus[name]
        if not isinstance(smu, InstrumentClock):
            raise ConfigError(f"instruments.{name}.options.clock: this SMU's driver has no script timer")
        return smu

    def _array(self, array: str) -> tuple[ArraySpec, ArrayPlan]:
        spec = self.spec(array)
        return spec, self.plan.arrays[array]

    def _route(self, plan: ArrayPlan, row: int, col: int) -> None:
        """Close exactly the two crosspoints of cell (row, col); verify from the read-back."""
        wanted = sorted(plan.crosspoints(row, col))
        with self._guard(plan.matrix):
            closed = self._matrices[plan.matrix].route(wanted)
        self._check_route(plan, row, col, wanted, closed)

    def _check_route(
        self, plan: ArrayPlan, row: int, col: int, route: list[tuple[str, int]], closed: set[tuple[str, int]]
    ) -> None:
        """Refuse a read-back ``closed`` that is not exactly ``route`` (cell (row, col))."""
        wanted = set(route)
        if closed != wanted:
            extra = sorted(closed - wanted)
            missing = sorted(wanted - closed)
            what = []
            if extra:
                what.append(f"closed but should be open: {extra}")
            if missing:
                what.append(f"did not close: {missing}")
            raise BackendError(
                f"{plan.matrix}: routing cell ({row}, {col}) of '{plan.array}' failed, crosspoints "
                + "; ".join(what)
                + " (stuck relay?)"
            )

    def _smu(self, plan: ArrayPlan) -> SourceMeter:
        return self._smus[plan.smu]

    def _nplc(self, plan: ArrayPlan) -> float:
        options = self.plan.instruments[plan.smu].options
        assert isinstance(options, SmuOptions)
        return options.nplc

    @contextlib.contextmanager
    def _operation(self, plan: ArrayPlan) -> Iterator[None]:
        """After the operation, however it ends: SMU output off and relays open (messages that
        need no reply: no read-back)."""
        try:
            yield
        finally:
            if plan.smu not in self._dirty:
                with contextlib.suppress(BackendError), self._guard(plan.smu):
                    self._smus[plan.smu].outputs_off_nowait(self._channels.get(plan.smu, []))
            if plan.matrix not in self._dirty:
                with contextlib.suppress(BackendError), self._guard(plan.matrix):
                    self._matrices[plan.matrix].open_all_nowait()

    def _check_width(self, plan: ArrayPlan, pulse: Pulse) -> None:
        smu = self._smu(plan)
        if pulse.width_s < smu.min_pulse_width_s:
            model = self.plan.instruments[plan.smu].model
            raise LimitError(
                "width_s",
                pulse.width_s,
                f">= {smu.min_pulse_width_s:g} s, the shortest pulse of the {model}",
                f"instruments.{plan.smu}.options.min_pulse_width_s",
            )

    def _compliance(self, plan: ArrayPlan, pulse: Pulse) -> float:
        return plan.routing.pulse_compliance_A if pulse.compliance_A is None else pulse.compliance_A

    # ------------------------------------------------------------------ operations
    def read(self, array: str, cells: CellsLike = None, voltage_V: float = DEFAULT_READ_VOLTAGE_V) -> Readout:
        spec, plan = self._array(array)
        arr = as_cells(cells, spec)
        t = self.now()
        n = len(arr)
        currents = np.empty(n)
        smu = self._smu(plan)
        matrix = self._matrices[plan.matrix]
        cells_rc = arr.tolist()
        # Every route worked out before the first message; in the loop the next route leaves as
        # soon as the SMU's reply is in (the SMU is back at 0 V), and the reply is filed while the
        # relays settle: the host's per-cell work stays off the instruments' critical path. Each
        # route is still verified from its read-back before the read voltage is applied.
        routes = [sorted(plan.crosspoints(r, c)) for r, c in cells_rc]
        with self._operation(plan):
            with self._guard(plan.smu):
                smu.arm(plan.channel, plan.routing.read_compliance_A, self._nplc(plan))
            if n:
                with self._guard(plan.matrix):
                    matrix.start_route(routes[0])
            for k in range(n):
                with self._guard(plan.matrix):
                    closed = matrix.finish_route()
                self._check_route(plan, cells_rc[k][0], cells_rc[k][1], routes[k], closed)
                with self._guard(plan.smu):
                    smu.start_read_current(plan.channel, voltage_V)
                    current = smu.finish_read_current()
                if k + 1 < n:
                    with self._guard(plan.matrix):
                        matrix.start_route(routes[k + 1])
                currents[k] = current
        if cells is None:
            currents = currents.reshape(spec.shape)
        return Readout(array, arr, float(voltage_V), currents / voltage_V, currents, t)

    def pulse(
        self,
        array: str,
        cells: CellsLike,
        pulse: Pulse,
        count: int = 1,
        read_after: bool = False,
        read_voltage_V: float = DEFAULT_READ_VOLTAGE_V,
    ) -> PulseTrainResult:
        spec, plan = self._array(array)
        arr = as_cells(cells, spec)
        self._check_width(plan, pulse)
        count = int(count)
        smu = self._smu(plan)
        g = np.empty((len(arr), count)) if read_after else None
        times = np.empty(0)
        with self._operation(plan):
            for k, (r, c) in enumerate(arr):
                self._route(plan, int(r), int(c))
                t_start = self.now()
                with self._guard(plan.smu):
                    currents = smu.pulse_train(
                        plan.channel,
                        pulse.amplitude_V,
                        pulse.width_s,
                        count,
                        self._compliance(plan, pulse),
                        plan.routing.read_compliance_A,
                        read_voltage_V if read_after else None,
                    )
                t_end = self.now()
                if k == 0:
                    # the instrument does not time-stamp its train here: spread the first cell's
                    # pulses evenly over the time its train took
                    times = t_start + (t_end - t_start) * np.arange(1, count + 1) / count
                if g is not None:
                    assert currents is not None
                    g[k] = np.asarray(currents, dtype=float) / read_voltage_V
        return PulseTrainResult(
            array, arr, pulse, count, g, float(read_voltage_V) if read_after else None, times
        )

    def program(self, array: str, counts: np.ndarray, pulse: Pulse) -> ProgramResult:
        spec, plan = self._array(array)
        counts = np.asarray(counts).astype(np.int64)
        self._check_width(plan, pulse)
        idx = np.flatnonzero(counts)
        t = self.now()
        smu = self._smu(plan)
        with self._operation(plan):
            for flat in idx:
                r, c = divmod(int(flat), spec.cols)
                self._route(plan, r, c)
                with self._guard(plan.smu):
                    smu.pulse_train(
                        plan.channel,
                        pulse.amplitude_V,
                        pulse.width_s,
                        int(counts.reshape(-1)[flat]),
                        self._compliance(plan, pulse),
                        plan.routing.read_compliance_A,
                        None,
                    )
        values = counts.reshape(-1)[idx]
        return ProgramResult(
            array,
            pulse,
            int(values.sum()),
            int(values.size),
            int(values.max()) if values.size else 0,
            self.now() - t,
        )

    def iv_sweep(
        self,
        array: str,
        row: int,
        col: int,
        voltages_V: np.ndarray,
        compliance_A: float,
        dwell_s: float = 1e-3,
    ) -> IVResult:
        spec, plan = self._array(array)
        as_cells([(row, col)], spec)
        v = np.asarray(voltages_V, dtype=float)
        smu = self._smu(plan)
        t = self.now()
        with self._operation(plan):
            self._route(plan, int(row), int(col))
            with self._guard(plan.smu):
                v_meas, i_meas = smu.voltage_sweep(plan.channel, v, dwell_s, compliance_A)
        times = t + dwell_s * np.arange(1, v.size + 1)
        hit = np.abs(i_meas) >= 0.999 * compliance_A
        return IVResult(array, int(row), int(col), v_meas, i_meas, times, float(compliance_A), hit)

    def delay(self, seconds: float) -> None:
        """Wait ``seconds`` (s): on the host, or on the clock-keeping SMU (instrument-side waits)."""
        if self._clock_smu is not None:
            name = self._clock_smu.name
            chunk = 0.5 * self._clock_smu.options.timeout_s
            with self._guard(name):
                clock = self._clock(name)
                clock.wait(float(seconds), chunk)
                ahead = clock.elapsed_s() - (time.monotonic() - self._t0)
            self._clock_offset = max(self._clock_offset, ahead)
            return
        end = time.monotonic() + float(seconds)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.5))

    # ------------------------------------------------------------------ safety and lifetime
    def safe_state(self) -> SafeStateReport:
        """Every SMU output off and every relay open, each read back from the instrument.

        An instrument whose last exchange failed is reconnected first. Every instrument is
        tried even when one fails; then :class:`SafeStateNotConfirmed` lists what could not be
        made safe, and its report what each instrument did confirm.
        """
        problems: list[str] = []
        confirmed: dict[str, str] = {}
        outputs_off, routes_open = True, True
        order = [p.name for p in self.plan.smus()] + [p.name for p in self.plan.matrices()]
        for name in order:
            inst = self.plan.instruments[name]
            is_matrix = name in self.plan_matrices
            try:
                if name in self._dirty:
                    self._reconnect(name)
                with self._guard(name):
                    if is_matrix:
                        stuck = self._matrices[name].open_all()
                        if stuck:
                            problem = f"{name} ({inst.model}): crosspoints still closed after opening all: {sorted(stuck)}"
                            problems.append(problem)
                            confirmed[name] = f"crosspoints still closed: {sorted(stuck)}"
                            routes_open = False
                        else:
                            confirmed[name] = "every crosspoint open (read back)"
                    else:
                        chans = self._channels.get(name) or [SMU_CHANNELS[inst.model][0]]
                        states = self._smus[name].outputs_off(chans)
                        on = [c for c, s in zip(chans, states, strict=True) if s]
                        if on:
                            problems.append(f"{name} ({inst.model}): output(s) {on} still on")
                            confirmed[name] = f"output(s) {on} still on"
                            outputs_off = False
                        else:
                            confirmed[name] = f"output(s) {chans} off (read back)"
            except Exception as exc:
                self._dirty.add(name)
                problems.append(f"{name} ({inst.model} at {inst.resource}): {describe(exc)}")
                confirmed[name] = f"not confirmed: {describe(exc)}"
                if is_matrix:
                    routes_open = False
                else:
                    outputs_off = False
        report = SafeStateReport(
            "off" if outputs_off else "unconfirmed",
            "open" if routes_open else "unconfirmed",
            confirmed,
            tuple(problems),
        )
        if problems:
            raise SafeStateNotConfirmed("safe state not confirmed: " + "; ".join(problems), report)
        return report

    def _close_all(self) -> None:
        for name in self.plan.instruments:
            driver = self._connected(name)
            if driver is not None:
                with contextlib.suppress(Exception):
                    driver.adapter.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close_all()


def build_smu_matrix_backend(station: Station) -> SmuMatrixBackend:
    """Validate the station's instruments and routing, connect, and start from the safe state."""
    return SmuMatrixBackend(plan_checked(station))


class SmuMatrixKind(BackendKind):
    """``backend: smu-matrix``: source-measure units routed by a switch matrix."""

    name = "smu-matrix"

    def build(self, station: Station, seed: int | None = None) -> Backend:
        return build_smu_matrix_backend(station)

    def check(self, station: Station) -> None:
        plan_checked(station)  # instruments, options, routing and the SMUs' ratings, without connecting
