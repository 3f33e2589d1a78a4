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
* ``vmm``: the interface's default, a full read and ``V @ G`` on the host (no native VMM);
* ``iv_sweep``: route, then the SMU's own staircase sweep, one or two round trips.

After every operation the SMU outputs are turned off and every relay is opened (messages that
need no reply). :meth:`SmuMatrixBackend.safe_state` does the same and *reads it back*; an
instrument whose exchange was cut short (timeout, malformed reply, lost connection, Ctrl-C) is
reconnected first, so the commands reach it whatever state its connection was left in. Driver
and connection failures surface as :class:`~hil.backend.BackendError` naming the instrument.

Limits are enforced above this class (:class:`~hil.safety.SafeBackend`); this backend adds only
what the instruments cannot do (a pulse shorter than the SMU makes is refused before anything
is sent).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import numpy as np

from hil.backend import Backend, BackendError
from hil.backends.registry import BackendKind
from hil.backends.smu_matrix_config import (
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
    as_cells,
)


class SourceMeter(Protocol):
    """What this backend needs of an SMU driver (see ``drivers/``)."""

    min_pulse_width_s: float

    def arm(self, channel: str, compliance_A: float, nplc: float = ...) -> None: ...

    def read_current(self, channel: str, voltage_V: float) -> float: ...

    def pulse_train(
        self,
        channel: str,
        amplitude_V: float,
        width_s: float,
        count: int,
        pulse_compliance_A: float,
        idle_compliance_A: float,
        read_voltage_V: float | None = ...,
    ) -> np.ndarray | None: ...

    def voltage_sweep(
        self, channel: str, voltages_V: Any, dwell_s: float, compliance_A: float
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def outputs_off(self, channels: Any) -> list[bool]: ...

    def write(self, command: str) -> None: ...


class SwitchMatrix(Protocol):
    """What this backend needs of a switch-matrix driver (see ``drivers/``)."""

    def setup(self) -> None: ...

    def route(self, crosspoints: Any) -> set[tuple[str, int]]: ...

    def open_all(self) -> set[tuple[str, int]]: ...

    def write(self, command: str) -> None: ...


def open_instrument(plan: InstrumentPlan) -> Any:
    """Connect the driver of one instrument (pyvisa-py by default); on a LAN socket, small
    messages leave at once (TCP_NODELAY: no Nagle delay behind an unacknowledged write)."""
    driver = _open_driver(plan)
    if "::SOCKET" in plan.resource.upper():
        _no_delay(driver.adapter.connection)
    return driver


def _no_delay(resource: Any) -> None:
    """TCP_NODELAY on a socket resource (pyvisa-py 0.8 cannot set VI_ATTR_TCPIP_NODELAY on a
    SOCKET session, so its socket is set directly; other VISA libraries get the attribute)."""
    from pyvisa import constants

    try:
        resource.set_visa_attribute(constants.ResourceAttribute.tcpip_nodelay, True)
        return
    except Exception:
        pass
    with contextlib.suppress(Exception):
        sock = resource.visalib.sessions[resource.session].interface
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _open_driver(plan: InstrumentPlan) -> Any:
    options = plan.options
    kwargs: dict[str, Any] = {"timeout": int(options.timeout_s * 1000), "visa_library": options.visa_library}
    if plan.model == "keithley2450":
        from drivers.keithley2450 import Keithley2450

        assert isinstance(options, SmuOptions)
        return Keithley2450(plan.resource, min_pulse_width_s=options.min_pulse_width_s, **kwargs)
    if plan.model == "keithley2600":
        from drivers.keithley2600 import Keithley2600

        assert isinstance(options, SmuOptions)
        return Keithley2600(plan.resource, min_pulse_width_s=options.min_pulse_width_s, **kwargs)
    if plan.model == "b2900":
        from drivers.b2900 import KeysightB2900

        assert isinstance(options, SmuOptions)
        return KeysightB2900(plan.resource, min_pulse_width_s=options.min_pulse_width_s, **kwargs)
    if plan.model in ("keithley707b", "keithley708b"):
        from drivers.keithley707b import Keithley707B

        return Keithley707B(plan.resource, **kwargs)
    if plan.model == "e5250a":
        from drivers.e5250a import KeysightE5250A

        assert isinstance(options, MatrixOptions)
        return KeysightE5250A(plan.resource, cards=range(1, options.slots + 1), **kwargs)
    raise ConfigError(f"instruments.{plan.name}.model: '{plan.model}' has no driver")


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
        self, plan: SmuMatrixPlan, connect: Callable[[InstrumentPlan], Any] = open_instrument
    ) -> None:
        self.plan = plan
        self._connect = connect
        self._specs = {a.name: a.spec() for a in plan.station.arrays}
        self._drivers: dict[str, Any] = {}
        self._dirty: set[str] = set()
        self._idn: dict[str, str] = {}
        self._t0 = time.monotonic()
        self._clock_offset = 0.0
        self._clock_smu = next((p for p in plan.smus() if p.options.clock == "instrument"), None)
        self._closed = False
        self._channels: dict[str, list[str]] = {}
        for a in plan.arrays.values():
            chans = self._channels.setdefault(a.smu, [])
            if a.channel not in chans:
                chans.append(a.channel)
        for name, inst in plan.instruments.items():
            try:
                self._drivers[name] = connect(inst)
                self._idn[name] = str(self._drivers[name].id).strip()
            except Exception as exc:
                self._close_all()
                raise ConfigError(
                    f"instruments.{name}.resource: cannot connect to {inst.model} at '{inst.resource}' "
                    f"({describe(exc)}); is it on and reachable (or `rram-hil emulate` running)?"
                ) from None
        try:
            for name in self.plan_matrices:
                with self._guard(name):
                    self._drivers[name].setup()
            if self._clock_smu is not None:
                with self._guard(self._clock_smu.name):
                    self._drivers[self._clock_smu.name].reset_timer()
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

    def driver(self, name: str) -> Any:
        """The connected driver of instrument ``name`` (for diagnostics and tests)."""
        return self._drivers[name]

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

    def _reconnect(self, name: str) -> None:
        old = self._drivers.get(name)
        if old is not None:
            with contextlib.suppress(Exception):
                old.adapter.close()
        self._drivers[name] = self._connect(self.plan.instruments[name])
        self._dirty.discard(name)

    def _array(self, array: str) -> tuple[ArraySpec, ArrayPlan]:
        spec = self.spec(array)
        return spec, self.plan.arrays[array]

    def _route(self, plan: ArrayPlan, row: int, col: int) -> None:
        """Close exactly the two crosspoints of cell (row, col); verify from the read-back."""
        wanted = set(plan.crosspoints(row, col))
        with self._guard(plan.matrix):
            closed = self._drivers[plan.matrix].route(sorted(wanted))
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

    def _smu(self, plan: ArrayPlan) -> Any:
        return self._drivers[plan.smu]

    def _nplc(self, plan: ArrayPlan) -> float:
        options = self.plan.instruments[plan.smu].options
        assert isinstance(options, SmuOptions)
        return options.nplc

    @contextlib.contextmanager
    def _operation(self, plan: ArrayPlan) -> Iterator[None]:
        """After the operation, however it ends: SMU output off and relays open (no read-back)."""
        try:
            yield
        finally:
            if plan.smu not in self._dirty:
                with contextlib.suppress(BackendError), self._guard(plan.smu):
                    self._off_write(plan.smu)
            if plan.matrix not in self._dirty:
                with contextlib.suppress(BackendError), self._guard(plan.matrix):
                    self._open_write(plan.matrix)

    def _off_write(self, smu: str) -> None:
        model = self.plan.instruments[smu].model
        chans = self._channels.get(smu, [])
        if model == "keithley2600":
            cmd = " ".join(f"smu{c}.source.output=smu{c}.OUTPUT_OFF" for c in chans)
        elif model == "b2900":
            cmd = ";".join(f":OUTP{c} OFF" for c in chans)
        else:
            cmd = ":OUTP OFF"
        self._drivers[smu].write(cmd)

    def _open_write(self, matrix: str) -> None:
        model = self.plan.instruments[matrix].model
        cmd = ":ROUT:OPEN:CARD ALL" if model == "e5250a" else 'channel.open("allslots")'
        self._drivers[matrix].write(cmd)

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
        currents = np.empty(len(arr))
        smu = self._smu(plan)
        with self._operation(plan):
            with self._guard(plan.smu):
                smu.arm(plan.channel, plan.routing.read_compliance_A, self._nplc(plan))
            for k, (r, c) in enumerate(arr):
                self._route(plan, int(r), int(c))
                with self._guard(plan.smu):
                    currents[k] = smu.read_current(plan.channel, voltage_V)
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
                smu = self._drivers[name]
                smu.wait(float(seconds), chunk)
                ahead = smu.elapsed_s() - (time.monotonic() - self._t0)
            self._clock_offset = max(self._clock_offset, ahead)
            return
        end = time.monotonic() + float(seconds)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.5))

    # ------------------------------------------------------------------ safety and lifetime
    def safe_state(self) -> None:
        """Every SMU output off and every relay open, each read back from the instrument.

        An instrument whose last exchange failed is reconnected first. Every instrument is
        tried even when one fails; then :class:`BackendError` lists what could not be made safe.
        """
        problems: list[str] = []
        order = [p.name for p in self.plan.smus()] + [p.name for p in self.plan.matrices()]
        for name in order:
            inst = self.plan.instruments[name]
            try:
                if name in self._dirty:
                    self._reconnect(name)
                with self._guard(name):
                    if name in self.plan_matrices:
                        stuck = self._drivers[name].open_all()
                        if stuck:
                            problems.append(
                                f"{name} ({inst.model}): crosspoints still closed after opening all: {sorted(stuck)}"
                            )
                    else:
                        chans = self._channels.get(name) or [self._default_channel(inst.model)]
                        states = self._drivers[name].outputs_off(chans)
                        on = [c for c, s in zip(chans, states, strict=True) if s]
                        if on:
                            problems.append(f"{name} ({inst.model}): output(s) {on} still on")
            except Exception as exc:
                self._dirty.add(name)
                problems.append(f"{name} ({inst.model} at {inst.resource}): {describe(exc)}")
        if problems:
            raise BackendError("safe state not confirmed: " + "; ".join(problems))

    @staticmethod
    def _default_channel(model: str) -> str:
        return "a" if model == "keithley2600" else "1"

    def _close_all(self) -> None:
        for driver in self._drivers.values():
            with contextlib.suppress(Exception):
                driver.adapter.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close_all()


def build_smu_matrix_backend(station: Station) -> SmuMatrixBackend:
    """Validate the station's instruments and routing, connect, and start from the safe state."""
    return SmuMatrixBackend(plan_smu_matrix(station))


class SmuMatrixKind(BackendKind):
    """``backend: smu-matrix``: source-measure units routed by a switch matrix."""

    name = "smu-matrix"

    def build(self, station: Station, seed: int | None = None) -> Backend:
        return build_smu_matrix_backend(station)

    def check(self, station: Station) -> None:
        plan_smu_matrix(station)  # instruments, options and routing, without connecting
