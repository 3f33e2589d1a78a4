"""Emulated Keithley 2600B System SourceMeter (TSP), wired to the twin through the bench.

Behaviour follows the Keithley Series 2600B System SourceMeter Instrument Reference Manual
(2600BS-901-01 Rev. D, section 7 "TSP command reference"; sections cited as "smuX.source.levelv"
etc. are the command's entry there). Per model (section 1 "Capabilities" and the data sheet):

====================  ========  ==========================  ==============================
model                 channels  voltage ranges (V)          current ranges (A)
====================  ========  ==========================  ==============================
2601B / 2602B/2604B   1 / 2     0.1, 1, 6, 40               100 nA .. 1 A, 3 A (DC)
2611B / 2612B/2614B   1 / 2     0.2, 2, 20, 200             100 nA .. 1 A, 1.5 A (DC)
2635B / 2634B/2636B   1 / 2     0.2, 2, 20, 200             source 1 nA, measure 100 pA ..
                                                            1 A, 1.5 A (DC)
====================  ========  ==========================  ==============================

What runs:

* ``smuX.source``: ``func``, ``levelv``, ``leveli`` (within the model's ranges, 1 % over-range;
  currents up to the 10 A pulse region), ``limitv``, ``limiti`` ("smuX.source.limitY": the
  model's minimum up to its maximum), ``limitp``, ``rangev``/``rangei`` (the smallest range
  holding the value; setting one turns its autorange off, "smuX.source.rangeY"), ``autorangev``,
  ``autorangei``, ``lowrangev``, ``lowrangei``, ``output`` (``OUTPUT_OFF`` 0, ``OUTPUT_ON`` 1,
  ``OUTPUT_HIGH_Z`` 2), ``offmode`` (``OUTPUT_NORMAL`` 0, ``OUTPUT_ZERO`` 1, ``OUTPUT_HIGH_Z`` 2),
  ``offfunc``, ``offlimiti``, ``offlimitv``, ``delay``, ``settling``, ``highc``, ``sink``,
  ``compliance``. Out-of-range settings are refused with error 1101 "Parameter too big" or 1102
  "Parameter too small" and leave the setting as it was (and stop the message, as a Lua error);
* ``smuX.measure``: ``nplc`` (0.001..25), ``rangev``/``rangei`` (turning autorange off; with
  autorange on they read back the range the last reading used), ``autorangev``,
  ``autorangei`` (incl. ``AUTORANGE_FOLLOW_LIMIT``), ``lowrangev/i``, ``autozero``, ``delay``,
  ``delayfactor``, ``count`` (``count`` readings per call, ``interval`` s apart on the bench
  clock; the call returns the last, "smuX.measure.count"), ``interval``, ``analogfilter``,
  ``filter`` (``count``, ``enable``, ``type``: kept), ``rel`` (``enableY``/``levelY``: applied),
  ``i()``, ``v()``, ``iv()``, ``r()``, ``p()`` (into buffers, or returned); a reading beyond a
  fixed range is the overflow value 9.91e37 (status bit ROF);
* reading buffers ``smuX.nvbuffer1/2`` and ``smuX.makebuffer(n)`` ("Reading buffers"): ``n``,
  ``capacity``, ``readings``, ``timestamps`` (with ``collecttimestamps``), ``sourcevalues``
  (with ``collectsourcevalues``), ``statuses``, ``measurefunctions``, ``measureranges``,
  ``sourcefunctions``, ``sourceoutputstates``, ``sourceranges``, ``basetimestamp``,
  ``appendmode``, ``fillmode``, ``clear()``, ``clearcache()``; ``printbuffer``;
* the status model: ``status.measurement`` (VLMT 1, ILMT 2, ROF 128, BAV 256, INST 8192),
  ``status.measurement.instrument`` (SMUA 2, SMUB 4), ``status.measurement.instrument.smuX``
  (VLMT 1, ILMT 2, ROF 128, BAV 256: updated by every measurement, "status.measurement.
  instrument.smuX.*"), ``status.measurement.voltage_limit``/``current_limit``/
  ``reading_overflow``/``buffer_available`` (SMUA 2, SMUB 4); the status byte's MSB;
* the trigger model: ``smuX.trigger.source.listv/listi/linearv/lineari/logv/logi``,
  ``.action``, ``.limiti/limitv``, ``measure.action`` and ``measure.i/v/iv/r/p(buf)``,
  ``endpulse.action`` (``SOURCE_IDLE`` makes pulses) with ``endpulse.stimulus`` from a
  ``trigger.timer[N]`` started by ``SOURCE_COMPLETE_EVENT_ID`` (the pulse width is the timer's
  delay), ``count``, ``arm.count``, ``initiate()``, ``abort()``; ``trigger.timer[1..8]``;
* scripts (``loadscript``/``endscript``, ``loadandrunscript``, ``name.run()``), ``delay``,
  ``waitcomplete``, ``reset()``, ``smuX.reset()``, ``errorqueue``, ``localnode`` (``model``,
  ``serialno``, ``revision``, ``linefreq``...), ``timer``; the factory sweeps
  (section 3 "KISweep factory script"): ``SweepVLinMeasureI``, ``SweepVLogMeasureI``,
  ``SweepVListMeasureI``, ``SweepILinMeasureV``, ``SweepILogMeasureV``, ``SweepIListMeasureV``.

Instrument-side waits (``delay``, pulse widths, measure intervals) play out on the bench clock
without sleeping.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sim_backend.emulators.scpi_server import Fault
from sim_backend.emulators.smu_channel import SourceChannel, SourceDefaults
from sim_backend.emulators.tsp import (
    LocalNode,
    StatusRegister,
    TspArray,
    TspError,
    TspInstrument,
    TspObject,
    check_choice,
    check_range,
    tsp_number,
)
from sim_backend.emulators.wiring import Wiring
from sim_backend.twin import TwinBackend

#: The reading a measurement beyond its fixed range returns ("Measurement overflow").
OVERFLOW = 9.91e37

SMU_CONSTANTS: dict[str, float] = {
    # smuX.source.output ("smuX.source.output")
    "OUTPUT_OFF": 0,
    "OUTPUT_ON": 1,
    "OUTPUT_HIGH_Z": 2,
    # smuX.source.func / offfunc
    "OUTPUT_DCAMPS": 0,
    "OUTPUT_DCVOLTS": 1,
    # smuX.source.offmode ("smuX.source.offmode": 0 NORMAL, 1 ZERO, 2 HIGH_Z)
    "OUTPUT_NORMAL": 0,
    "OUTPUT_ZERO": 1,
    "AUTORANGE_OFF": 0,
    "AUTORANGE_ON": 1,
    "AUTORANGE_FOLLOW_LIMIT": 2,
    "AUTOZERO_OFF": 0,
    "AUTOZERO_ONCE": 1,
    "AUTOZERO_AUTO": 2,
    "SENSE_LOCAL": 0,
    "SENSE_REMOTE": 1,
    "SENSE_CALA": 3,
    "DISABLE": 0,
    "ENABLE": 1,
    "ASYNC": 2,
    "SOURCE_IDLE": 0,
    "SOURCE_HOLD": 1,
    "DELAY_OFF": 0,
    "DELAY_AUTO": -1,
    "FILTER_MOVING_AVG": 0,
    "FILTER_REPEAT_AVG": 1,
    "FILTER_MEDIAN": 2,
    "FILL_ONCE": 0,
    "FILL_WINDOW": 1,
}

#: Buffer status bits ("smuX.nvbufferY.statuses").
STATUS_COMPLIANCE = 64


@dataclass(frozen=True)
class ModelSpec:
    """What one 2600B model can do (Reference Manual section 1 and the data sheet)."""

    channels: tuple[str, ...]
    v_ranges: tuple[float, ...]
    i_source_ranges: tuple[float, ...]
    i_measure_ranges: tuple[float, ...]
    limit_v: tuple[float, float]
    limit_i: tuple[float, float]
    #: pulse region ceiling of the current source and limit (A)
    i_pulse_max: float = 10.0

    @property
    def v_max(self) -> float:
        return self.v_ranges[-1]

    @property
    def i_max(self) -> float:
        return self.i_source_ranges[-1]


_I_260X = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 3.0)
_I_261X = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1.5)
_I_263X_SOURCE = (1e-9, 1e-8) + _I_261X
_I_263X_MEASURE = (1e-10,) + _I_263X_SOURCE
_260X = ModelSpec(("a",), (0.1, 1.0, 6.0, 40.0), _I_260X, _I_260X, (10e-3, 40.0), (10e-9, 10.0))
_261X = ModelSpec(("a",), (0.2, 2.0, 20.0, 200.0), _I_261X, _I_261X, (20e-3, 200.0), (10e-9, 10.0))
_263X = ModelSpec(
    ("a",), (0.2, 2.0, 20.0, 200.0), _I_263X_SOURCE, _I_263X_MEASURE, (20e-3, 200.0), (100e-12, 10.0)
)


def _two(spec: ModelSpec) -> ModelSpec:
    return ModelSpec(("a", "b"), *(getattr(spec, f) for f in spec.__dataclass_fields__ if f != "channels"))


#: Every 2600B model the emulator can be.
MODELS: dict[str, ModelSpec] = {
    "2601B": _260X,
    "2602B": _two(_260X),
    "2604B": _two(_260X),
    "2611B": _261X,
    "2612B": _two(_261X),
    "2614B": _two(_261X),
    "2635B": _263X,
    "2634B": _two(_263X),
    "2636B": _two(_263X),
}
#: 2600B models with one channel; the others have smua and smub.
SINGLE_CHANNEL_MODELS = tuple(m for m, s in MODELS.items() if len(s.channels) == 1)


def select_range(name: str, value: Any, ranges: tuple[float, ...]) -> float:
    """The smallest range that holds ``|value|`` ("smuX.source.rangeY": the instrument picks
    the range for the value); beyond the largest range: error 1101."""
    x = abs(tsp_number(value))
    check_range(name, x, 0, ranges[-1] * 1.01)
    return next((r for r in ranges if x <= r * 1.0000001), ranges[-1])


class Buffer(TspObject):
    """A reading buffer (``smua.nvbuffer1``, ``smua.makebuffer(n)``; "Reading buffers")."""

    WRITABLE = frozenset(
        {
            "appendmode",
            "collecttimestamps",
            "collectsourcevalues",
            "fillmode",
            "timestampresolution",
            "cachemode",
        }
    )
    _COLUMNS = (
        "readings", "timestamps", "sourcevalues", "statuses", "measurefunctions", "measureranges",
        "sourcefunctions", "sourceoutputstates", "sourceranges",
    )  # fmt: skip

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self.appendmode = 0
        self.collecttimestamps = 1
        self.collectsourcevalues = 0
        self.fillmode = 0
        self.timestampresolution = 1e-6
        self.cachemode = 1
        self._data: dict[str, list[Any]] = {c: [] for c in self._COLUMNS}
        # one live view per column for the buffer's lifetime (Lua must never see temporaries)
        self._views = {c: TspArray(self._data[c]) for c in self._COLUMNS}
        self._t0: float | None = None

    def tsp_set(self, name: str, value: Any) -> None:
        if name in ("appendmode", "collecttimestamps", "collectsourcevalues", "fillmode", "cachemode"):
            flag = check_choice(name, value, (0, 1))
            if name.startswith("collect") and self.n and flag != getattr(self, name):
                raise TspError(f"{name} can be changed only while the buffer is empty (clear it first)")
            setattr(self, name, flag)
        elif name == "timestampresolution":
            self.timestampresolution = check_range(name, value, 1e-6, 1.0)
        else:
            super().tsp_set(name, value)

    @property
    def n(self) -> int:
        return len(self._data["readings"])

    @property
    def readings(self) -> TspArray:
        return self._views["readings"]

    @property
    def timestamps(self) -> TspArray:
        if not self.collecttimestamps:
            raise TspError("timestamps were not collected (collecttimestamps = 0)")
        return self._views["timestamps"]

    @property
    def sourcevalues(self) -> TspArray:
        if not self.collectsourcevalues:
            raise TspError("source values were not collected (collectsourcevalues = 0)")
        return self._views["sourcevalues"]

    @property
    def statuses(self) -> TspArray:
        return self._views["statuses"]

    @property
    def measurefunctions(self) -> TspArray:
        return self._views["measurefunctions"]

    @property
    def measureranges(self) -> TspArray:
        return self._views["measureranges"]

    @property
    def sourcefunctions(self) -> TspArray:
        return self._views["sourcefunctions"]

    @property
    def sourceoutputstates(self) -> TspArray:
        return self._views["sourceoutputstates"]

    @property
    def sourceranges(self) -> TspArray:
        return self._views["sourceranges"]

    @property
    def basetimestamp(self) -> float:
        return self._t0 or 0.0

    def __getitem__(self, index: int) -> float | None:
        return self.readings[index]

    def to_list(self) -> list[Any]:
        return list(self._data["readings"])

    def clear(self) -> None:
        for column in self._data.values():
            column.clear()
        self._t0 = None

    def clearcache(self) -> None:
        return None

    def store(self, value: float, t: float, record: dict[str, Any]) -> None:
        """One reading with its time stamp and the source state it was taken in."""
        if self.n >= self.capacity:
            if self.fillmode == 1:  # FILL_WINDOW: the oldest reading makes room
                for column in self._data.values():
                    column.pop(0)
            else:
                raise TspError(f"reading buffer full ({self.capacity} readings)")
        if self._t0 is None:
            self._t0 = t
        self._data["readings"].append(float(value))
        self._data["timestamps"].append(t - self._t0)
        for key in self._COLUMNS[2:]:
            self._data[key].append(record[key])


class _Part(TspObject):
    """A sub-table of an SMU that reaches its :class:`SourceChannel`."""

    def __init__(self, smu: Smu) -> None:
        self._smu = smu

    @property
    def _ch(self) -> SourceChannel:
        return self._smu._ch

    @property
    def _spec(self) -> ModelSpec:
        return self._smu._emulator.spec


def _delay_value(name: str, value: Any) -> float:
    x = tsp_number(value)
    return -1.0 if x == -1 else check_range(name, x, 0, 1e4)


class Source(_Part):
    """``smuX.source`` ("smuX.source.*")."""

    WRITABLE = frozenset(
        {
            "func", "levelv", "leveli", "limiti", "limitv", "limitp", "rangev", "rangei", "autorangev",
            "autorangei", "lowrangev", "lowrangei", "output", "offmode", "delay", "settling", "highc",
            "sink", "offlimiti", "offlimitv", "offfunc",
        }
    )  # fmt: skip

    def __init__(self, smu: Smu) -> None:
        super().__init__(smu)
        spec = self._spec
        self.limitp = 1e30
        self._rangev = spec.v_ranges[0]
        self._rangei = spec.i_source_ranges[0]
        self.autorangev = 1
        self.autorangei = 1
        self.lowrangev = spec.v_ranges[0]
        self.lowrangei = spec.i_source_ranges[0]
        self.offmode = 0
        self.delay = -1.0
        self.settling = 0
        self.highc = 0
        self.sink = 0
        self.offlimiti = 1e-3
        self.offlimitv = spec.v_max
        self.offfunc = 1
        self._output = 0

    def tsp_set(self, name: str, value: Any) -> None:
        spec = self._spec
        if name in ("autorangev", "autorangei", "highc", "sink", "offfunc", "func"):
            setattr(self, name, check_choice(name, value, (0, 1)))
        elif name in ("offmode", "output"):
            setattr(self, name, check_choice(name, value, (0, 1, 2)))
        elif name == "lowrangev":
            self.lowrangev = select_range(name, value, spec.v_ranges)
        elif name == "lowrangei":
            self.lowrangei = select_range(name, value, spec.i_source_ranges)
        elif name == "delay":
            self.delay = _delay_value(name, value)
        elif name == "settling":
            self.settling = int(check_range(name, value, 0, 255))
        elif name == "limitp":
            self.limitp = check_range(name, value, 0, 1e30)
        elif name == "offlimiti":
            self.offlimiti = check_range(name, value, spec.limit_i[0], spec.i_pulse_max)
        elif name == "offlimitv":
            self.offlimitv = check_range(name, value, spec.limit_v[0], spec.v_max)
        else:
            super().tsp_set(name, value)

    @property
    def func(self) -> int:
        return 1 if self._ch.func == "VOLT" else 0

    @func.setter
    def func(self, value: int) -> None:
        self._ch.set_func("VOLT" if value == 1 else "CURR")

    @property
    def levelv(self) -> float:
        return self._ch.level_v

    @levelv.setter
    def levelv(self, value: Any) -> None:
        vmax = self._spec.v_max * 1.01
        self._ch.set_level_v(check_range("levelv", value, -vmax, vmax))

    @property
    def leveli(self) -> float:
        return self._ch.level_i

    @leveli.setter
    def leveli(self, value: Any) -> None:
        imax = self._spec.i_pulse_max * 1.01
        self._ch.set_level_i(check_range("leveli", value, -imax, imax))

    @property
    def limiti(self) -> float:
        return self._ch.limit_i

    @limiti.setter
    def limiti(self, value: Any) -> None:
        low, high = self._spec.limit_i
        self._ch.set_limit_i(check_range("limiti", value, low, high))

    @property
    def limitv(self) -> float:
        return self._ch.limit_v

    @limitv.setter
    def limitv(self, value: Any) -> None:
        low, high = self._spec.limit_v
        self._ch.set_limit_v(check_range("limitv", value, low, high))

    @property
    def rangev(self) -> float:
        if self.autorangev:
            return select_range("rangev", max(abs(self._ch.level_v), self.lowrangev), self._spec.v_ranges)
        return self._rangev

    @rangev.setter
    def rangev(self, value: Any) -> None:
        self._rangev = select_range("rangev", value, self._spec.v_ranges)
        self.autorangev = 0

    @property
    def rangei(self) -> float:
        if self.autorangei:
            level = max(abs(self._ch.level_i), self.lowrangei)
            return select_range("rangei", min(level, self._spec.i_max), self._spec.i_source_ranges)
        return self._rangei

    @rangei.setter
    def rangei(self, value: Any) -> None:
        self._rangei = select_range("rangei", value, self._spec.i_source_ranges)
        self.autorangei = 0

    @property
    def output(self) -> int:
        return self._output if self._ch.output_on == (self._output == 1) else int(self._ch.output_on)

    @output.setter
    def output(self, state: int) -> None:
        self._output = state
        self._ch.set_output(state == 1)

    @property
    def compliance(self) -> bool:
        """``smuX.source.compliance``: whether the source is in compliance (updates the status
        bits, "status.measurement.instrument.smuX")."""
        self._smu._emulator.refresh_status()
        return self._ch.in_compliance


class Filter(TspObject):
    """``smuX.measure.filter`` ("smuX.measure.filter.*"): kept; the readings are not averaged
    (the twin's read noise is the only scatter there is)."""

    WRITABLE = frozenset({"count", "enable", "type"})

    def __init__(self) -> None:
        self.count = 1
        self.enable = 0
        self.type = 1

    def tsp_set(self, name: str, value: Any) -> None:
        if name == "count":
            self.count = int(check_range(name, value, 1, 100))
        elif name == "enable":
            self.enable = check_choice(name, value, (0, 1))
        elif name == "type":
            self.type = check_choice(name, value, (0, 1, 2))
        else:
            super().tsp_set(name, value)


class Rel(TspObject):
    """``smuX.measure.rel`` ("smuX.measure.rel.enableY", "smuX.measure.rel.levelY"): with
    ``enableY`` on, readings of Y have ``levelY`` subtracted."""

    WRITABLE = frozenset({f"{p}{k}" for p in ("enable", "level") for k in "ivpr"})

    def __init__(self) -> None:
        for k in "ivpr":
            setattr(self, f"enable{k}", 0)
            setattr(self, f"level{k}", 0.0)

    def tsp_set(self, name: str, value: Any) -> None:
        if name.startswith("enable") and name in self.WRITABLE:
            setattr(self, name, check_choice(name, value, (0, 1)))
        elif name in self.WRITABLE:
            setattr(self, name, tsp_number(value))
        else:
            super().tsp_set(name, value)

    def apply(self, kind: str, value: float) -> float:
        if value == OVERFLOW or not getattr(self, f"enable{kind}"):
            return value
        return value - float(getattr(self, f"level{kind}"))


class Measure(_Part):
    """``smuX.measure`` ("smuX.measure.*")."""

    WRITABLE = frozenset(
        {
            "nplc", "rangei", "rangev", "autorangei", "autorangev", "autozero", "delay", "count",
            "interval", "lowrangei", "lowrangev", "delayfactor", "analogfilter",
        }
    )  # fmt: skip

    def __init__(self, smu: Smu) -> None:
        super().__init__(smu)
        spec = self._spec
        self._rangei = spec.i_measure_ranges[0]
        self._rangev = spec.v_ranges[0]
        self.autorangei = 1
        self.autorangev = 1
        self.autozero = 2
        self.delay = -1.0
        self.count = 1
        self.interval = 0.0
        self.lowrangei = spec.i_measure_ranges[0]
        self.lowrangev = spec.v_ranges[0]
        self.delayfactor = 1.0
        self.analogfilter = 1
        self.filter = Filter()
        self.rel = Rel()

    def tsp_set(self, name: str, value: Any) -> None:
        spec = self._spec
        if name == "autorangei":
            self.autorangei = check_choice(name, value, (0, 1, 2))
        elif name == "autorangev":
            self.autorangev = check_choice(name, value, (0, 1))
        elif name == "autozero":
            self.autozero = check_choice(name, value, (0, 1, 2))
        elif name == "delay":
            self.delay = _delay_value(name, value)
        elif name == "count":
            self.count = int(check_range(name, value, 1, 60000))
        elif name == "interval":
            self.interval = check_range(name, value, 0, 1)
        elif name == "lowrangei":
            self.lowrangei = select_range(name, value, spec.i_measure_ranges)
        elif name == "lowrangev":
            self.lowrangev = select_range(name, value, spec.v_ranges)
        elif name == "delayfactor":
            self.delayfactor = check_range(name, value, 0, 1000)
        elif name == "analogfilter":
            self.analogfilter = check_choice(name, value, (0, 1, 2, 3))
        else:
            super().tsp_set(name, value)

    @property
    def nplc(self) -> float:
        return self._ch.nplc

    @nplc.setter
    def nplc(self, value: Any) -> None:
        self._ch.nplc = check_range("nplc", value, 0.001, 25)

    @property
    def rangei(self) -> float:
        if self.autorangei:
            last = min(abs(self._ch.last.current_A), self._spec.i_max)
            return select_range("rangei", max(last, self.lowrangei), self._spec.i_measure_ranges)
        return self._rangei

    @rangei.setter
    def rangei(self, value: Any) -> None:
        self._rangei = select_range("rangei", value, self._spec.i_measure_ranges)
        self.autorangei = 0

    @property
    def rangev(self) -> float:
        if self.autorangev:
            last = min(abs(self._ch.last.voltage_V), self._spec.v_max)
            return select_range("rangev", max(last, self.lowrangev), self._spec.v_ranges)
        return self._rangev

    @rangev.setter
    def rangev(self, value: Any) -> None:
        self._rangev = select_range("rangev", value, self._spec.v_ranges)
        self.autorangev = 0

    def _readings(self, kind: str, buffers: tuple[Any, ...]) -> tuple[float, ...]:
        """``count`` readings ``interval`` s apart; the last is returned ("smuX.measure.count")."""
        for buf in buffers:
            if buf is not None and not isinstance(buf, Buffer):
                raise TspError("bad argument (reading buffer expected)")
            if isinstance(buf, Buffer) and not buf.appendmode and not self._smu._emulator.in_sweep(buf):
                buf.clear()
        result: tuple[float, ...] = ()
        for k in range(int(self.count)):
            if k and self.interval:
                self._ch.hold(float(self.interval))
            result = self._smu.sample(kind, buffers)
        return result

    def i(self, buf: Any = None) -> float:
        return self._readings("i", (buf,))[0]

    def v(self, buf: Any = None) -> float:
        return self._readings("v", (buf,))[0]

    def r(self, buf: Any = None) -> float:
        return self._readings("r", (buf,))[0]

    def p(self, buf: Any = None) -> float:
        return self._readings("p", (buf,))[0]

    def iv(self, ibuf: Any = None, vbuf: Any = None) -> tuple[float, float]:
        i, v = self._readings("iv", (ibuf, vbuf))
        return i, v


class TriggerSource(_Part):
    """``smuX.trigger.source`` ("smuX.trigger.source.*")."""

    WRITABLE = frozenset({"action", "limiti", "limitv", "stimulus"})

    def __init__(self, smu: Smu) -> None:
        super().__init__(smu)
        self.action = 0
        self.limiti: float | None = None
        self.limitv: float | None = None
        self.stimulus = 0
        self._values: list[float] = []
        self._is_current = False

    def tsp_set(self, name: str, value: Any) -> None:
        spec = self._spec
        if name == "action":
            self.action = check_choice(name, value, (0, 1))
        elif name == "limiti":
            self.limiti = check_range(name, value, spec.limit_i[0], spec.i_pulse_max)
        elif name == "limitv":
            self.limitv = check_range(name, value, spec.limit_v[0], spec.v_max)
        else:
            super().tsp_set(name, value)

    def _set(self, values: list[float], current: bool) -> None:
        limit = self._spec.i_pulse_max if current else self._spec.v_max
        for x in values:
            check_range("sweep point", x, -limit * 1.01, limit * 1.01)
        self._values, self._is_current = values, current

    def listv(self, values: Any) -> None:
        self._set([tsp_number(v) for v in _lua_list(values)], False)

    def listi(self, values: Any) -> None:
        self._set([tsp_number(v) for v in _lua_list(values)], True)

    def linearv(self, start: Any, stop: Any, points: Any) -> None:
        self._set(_linear(start, stop, points), False)

    def lineari(self, start: Any, stop: Any, points: Any) -> None:
        self._set(_linear(start, stop, points), True)

    def logv(self, start: Any, stop: Any, points: Any, asymptote: Any = 0) -> None:
        self._set(_log(start, stop, points, asymptote), False)

    def logi(self, start: Any, stop: Any, points: Any, asymptote: Any = 0) -> None:
        self._set(_log(start, stop, points, asymptote), True)


def _lua_list(values: Any) -> list[Any]:
    if not hasattr(values, "values"):
        raise TspError("bad argument (table expected)")
    return list(values.values())


def _linear(start: Any, stop: Any, points: Any) -> list[float]:
    a, b, n = tsp_number(start), tsp_number(stop), int(check_range("points", points, 1, 100000))
    return [a + (b - a) * k / max(n - 1, 1) for k in range(n)]


def _log(start: Any, stop: Any, points: Any, asymptote: Any) -> list[float]:
    """Log sweep points ("smuX.trigger.source.logv": steps equal on a log scale about the
    asymptote)."""
    a, b, c = tsp_number(start), tsp_number(stop), tsp_number(asymptote)
    n = int(check_range("points", points, 1, 100000))
    if (a - c) * (b - c) <= 0:
        raise TspError("log sweep: start and stop must be on the same side of the asymptote")
    la, lb = math.log10(abs(a - c)), math.log10(abs(b - c))
    sign = 1.0 if a - c > 0 else -1.0
    return [c + sign * 10 ** (la + (lb - la) * k / max(n - 1, 1)) for k in range(n)]


class TriggerMeasure(_Part):
    WRITABLE = frozenset({"action", "stimulus"})

    def __init__(self, smu: Smu) -> None:
        super().__init__(smu)
        self.action = 0
        self.stimulus = 0
        self._kind = "i"
        self._buffers: tuple[Any, ...] = (None,)

    def tsp_set(self, name: str, value: Any) -> None:
        if name == "action":
            self.action = check_choice(name, value, (0, 1, 2))
        else:
            super().tsp_set(name, value)

    def _set(self, kind: str, *buffers: Any) -> None:
        for buf in buffers:
            if not isinstance(buf, Buffer):
                raise TspError("bad argument (reading buffer expected)")
        self._kind, self._buffers = kind, buffers

    def i(self, buf: Any) -> None:
        self._set("i", buf)

    def v(self, buf: Any) -> None:
        self._set("v", buf)

    def r(self, buf: Any) -> None:
        self._set("r", buf)

    def p(self, buf: Any) -> None:
        self._set("p", buf)

    def iv(self, ibuf: Any, vbuf: Any) -> None:
        self._set("iv", ibuf, vbuf)


class TriggerEnd(TspObject):
    WRITABLE = frozenset({"action", "stimulus"})

    def __init__(self, action: int) -> None:
        self.action = action
        self.stimulus = 0

    def tsp_set(self, name: str, value: Any) -> None:
        if name == "action":
            self.action = check_choice(name, value, (0, 1))
        else:
            super().tsp_set(name, value)


class TriggerArm(TspObject):
    WRITABLE = frozenset({"count", "stimulus"})

    def __init__(self) -> None:
        self.count = 1
        self.stimulus = 0

    def tsp_set(self, name: str, value: Any) -> None:
        if name == "count":
            self.count = int(check_range(name, value, 0, 1e9))
        else:
            super().tsp_set(name, value)


class SmuTrigger(_Part):
    """``smuX.trigger``: the SMU's remote trigger model (the subset described in the module)."""

    WRITABLE = frozenset({"count", "autoclear"})

    def __init__(self, smu: Smu, base_event: int) -> None:
        super().__init__(smu)
        self.count = 1
        self.autoclear = 0
        self.source = TriggerSource(smu)
        self.measure = TriggerMeasure(smu)
        self.endpulse = TriggerEnd(1)
        self.endsweep = TriggerEnd(0)
        self.arm = TriggerArm()
        names = (
            "ARMED",
            "SWEEPING",
            "SOURCE_COMPLETE",
            "MEASURE_COMPLETE",
            "PULSE_COMPLETE",
            "SWEEP_COMPLETE",
            "IDLE",
        )
        self.CONSTANTS = {f"{n}_EVENT_ID": base_event + k for k, n in enumerate(names)}

    def tsp_set(self, name: str, value: Any) -> None:
        if name == "count":
            self.count = int(check_range(name, value, 0, 1e9))
        elif name == "autoclear":
            self.autoclear = check_choice(name, value, (0, 1))
        else:
            super().tsp_set(name, value)

    def abort(self) -> None:
        return None

    def initiate(self) -> None:
        self._smu.run_trigger_model()


class Smu(TspObject):
    """``smua`` / ``smub``."""

    CONSTANTS = SMU_CONSTANTS
    WRITABLE = frozenset({"sense"})

    def __init__(self, emulator: Keithley2600Emulator, channel: SourceChannel, base_event: int) -> None:
        self._emulator = emulator
        self._ch = channel
        self._base_event = base_event
        self.sense = 0
        self.source = Source(self)
        self.measure = Measure(self)
        self.trigger = SmuTrigger(self, base_event)
        self.nvbuffer1 = Buffer()
        self.nvbuffer2 = Buffer()
        self._overflow = False

    def tsp_set(self, name: str, value: Any) -> None:
        if name == "sense":
            self.sense = check_choice(name, value, (0, 1, 3))
        else:
            super().tsp_set(name, value)

    def makebuffer(self, size: Any) -> Buffer:
        """``smuX.makebuffer(n)``: a dynamically allocated reading buffer."""
        return Buffer(int(check_range("buffer size", size, 1, 100_000)))

    def reset(self) -> None:
        """``smuX.reset()``: the channel's defaults (output off, buffers cleared)."""
        self._ch.reset()
        self.__init__(self._emulator, self._ch, self._base_event)  # type: ignore[misc]
        self._emulator.refresh_status()

    # ------------------------------------------------------------------ status
    def condition(self) -> int:
        """Live bits of "status.measurement.instrument.smuX"."""
        bits = 0
        if self._ch.in_compliance:
            bits |= 1 if self._ch.func == "CURR" else 2
        if self._overflow:
            bits |= 128
        if self.nvbuffer1.n or self.nvbuffer2.n:
            bits |= 256
        return bits

    # ------------------------------------------------------------------ measuring
    def _fixed_range(self, quantity: str) -> float | None:
        m = self.measure
        if quantity == "i":
            return None if m.autorangei else float(m._rangei)
        return None if m.autorangev else float(m._rangev)

    def _values(self, kind: str, i: float, v: float) -> tuple[float, ...]:
        irange, vrange = self._fixed_range("i"), self._fixed_range("v")
        # the quantity the SMU sources is measured on the source range (never overflows)
        i_over = irange is not None and self._ch.func == "VOLT" and abs(i) > irange * 1.02
        v_over = vrange is not None and self._ch.func == "CURR" and abs(v) > vrange * 1.02
        i_read = OVERFLOW if i_over else i
        v_read = OVERFLOW if v_over else v
        self._overflow = i_over or v_over
        over = i_over or v_over
        rel = self.measure.rel
        values = {
            "i": (rel.apply("i", i_read),),
            "v": (rel.apply("v", v_read),),
            "r": (OVERFLOW if over else rel.apply("r", v / i if i else OVERFLOW),),
            "p": (OVERFLOW if over else rel.apply("p", v * i),),
            "iv": (rel.apply("i", i_read), rel.apply("v", v_read)),
        }[kind]
        return values

    def _record(self, kind: str, level: float | None = None) -> dict[str, Any]:
        ch = self._ch
        volts = ch.func == "VOLT"
        src = (ch.level_v if volts else ch.level_i) if level is None else level
        names = {"i": "Current", "v": "Voltage", "r": "Resistance", "p": "Power"}
        return {
            "sourcevalues": float(src),
            "statuses": float(STATUS_COMPLIANCE if ch.in_compliance else 0),
            "measurefunctions": names.get(kind, "Current"),
            "measureranges": float(self.measure.rangei if kind in ("i", "iv") else self.measure.rangev),
            "sourcefunctions": "Voltage" if volts else "Current",
            "sourceoutputstates": "On" if ch.output_on else "Off",
            "sourceranges": float(self.source.rangev if volts else self.source.rangei),
        }

    def _store(
        self, kind: str, values: tuple[float, ...], buffers: tuple[Any, ...], level: float | None
    ) -> None:
        t = self._ch.wiring.now()
        kinds = ("i", "v") if kind == "iv" else (kind,)
        for buf, value, k in zip(buffers, values, kinds, strict=False):
            if isinstance(buf, Buffer):
                buf.store(value, t, self._record(k, level))

    def sample(self, kind: str, buffers: tuple[Any, ...]) -> tuple[float, ...]:
        """One measurement of ``kind`` (i, v, r, p, iv), stored in the given buffers."""
        m = self._ch.measure()
        values = self._values(kind, m.current_A, m.voltage_V)
        self._store(kind, values, buffers, None)
        self._emulator.refresh_status()
        return values

    # ------------------------------------------------------------------ trigger model
    def _timer_for(self, stimulus: float) -> TriggerTimer | None:
        for timer in self._emulator.trigger.timer:
            if stimulus == timer.EVENT_ID:
                return timer
        return None

    def _pulse_width(self) -> float:
        """Width (s) of one source point: the end-pulse timer's delay, else the measurement."""
        t = self.trigger
        timer = self._timer_for(tsp_number(t.endpulse.stimulus))
        if timer is not None:
            return timer.next_delay()
        line = self._emulator.localnode.linefreq
        return self._ch.nplc / line if t.measure.action else 50e-6

    def run_trigger_model(self) -> None:
        """``smuX.trigger.initiate()``: arm count x trigger count source-measure points
        ("Remote trigger model")."""
        t = self.trigger
        src = t.source
        values = src._values if src.action else []
        if src.action and not values:
            raise TspError("trigger model: source action enabled but no sweep list")
        count = int(t.count) or len(values) or 1
        current = src._is_current and bool(values)
        limit = src.limitv if current else src.limiti
        idle = t.endpulse.action == 0
        buffers = t.measure._buffers
        if current:
            self._ch.set_func("CURR")
        elif values:
            self._ch.set_func("VOLT")
        self._emulator.begin_sweep(buffers)
        try:
            for _ in range(max(int(t.arm.count), 1)):
                for k in range(count):
                    width = self._pulse_width()
                    if current:
                        self._ch.set_level_i(values[k % len(values)])
                        self._ch.hold(width)
                        if t.measure.action:
                            self.sample(t.measure._kind, buffers)
                        continue
                    level = values[k % len(values)] if values else self._ch.level_v
                    if idle:
                        ilim = None if limit is None else float(limit)
                        if t.measure.action:
                            m = self._ch.measure_at(level, width, ilim)
                            values_read = self._values(t.measure._kind, m.current_A, m.voltage_V)
                            self._store(t.measure._kind, values_read, buffers, level)
                            self._emulator.refresh_status()
                        else:
                            self._ch.pulse(level, width, ilim)
                    else:
                        self._ch.set_level_v(level)
                        self._ch.hold(width)
                        if t.measure.action:
                            self.sample(t.measure._kind, buffers)
        finally:
            self._emulator.end_sweep()


class TriggerTimer(TspObject):
    """``trigger.timer[N]``."""

    WRITABLE = frozenset({"delay", "delaylist", "count", "passthrough", "stimulus"})

    def __init__(self, n: int) -> None:
        self.EVENT_ID = 40 + n
        self.reset()

    def reset(self) -> None:
        self.delay = 10e-6
        self.delaylist: Any = None
        self.count = 1
        self.passthrough = False
        self.stimulus = 0
        self._next = 0

    def tsp_set(self, name: str, value: Any) -> None:
        if name == "delay":
            self.delay = check_range(name, value, 0.5e-6, 100e3)
        elif name == "count":
            self.count = int(check_range(name, value, 0, 1048575))
        elif name == "delaylist":
            for d in _lua_list(value):
                check_range(name, d, 0.5e-6, 100e3)
            self.delaylist = value
        else:
            super().tsp_set(name, value)

    def clear(self) -> None:
        self._next = 0

    def next_delay(self) -> float:
        if self.delaylist is not None:
            delays = [tsp_number(v) for v in _lua_list(self.delaylist)]
            if delays:
                d = delays[self._next % len(delays)]
                self._next += 1
                return d
        return float(self.delay)


class Indexed(TspObject):
    """A 1-based table of trigger objects (``trigger.timer``, ``trigger.generator``)."""

    def __init__(self, items: list[Any]) -> None:
        self._items = items

    def __getitem__(self, index: int) -> Any:
        i = int(index)
        return self._items[i - 1] if 1 <= i <= len(self._items) else None

    def __iter__(self) -> Any:
        return iter(self._items)


class Generator(TspObject):
    def __init__(self, n: int) -> None:
        self.EVENT_ID = 60 + n

    def assert_(self) -> None:
        return None

    def tsp_get(self, name: str) -> Any:
        return self.assert_ if name == "assert" else super().tsp_get(name)


class Trigger(TspObject):
    """``trigger``: timers and generators."""

    def __init__(self) -> None:
        self.timer = Indexed([TriggerTimer(n) for n in range(1, 9)])
        self.generator = Indexed([Generator(n) for n in range(1, 3)])
        self.EVENT_ID = 70

    def clear(self) -> None:
        return None

    def wait(self, timeout: Any = 0) -> bool:
        tsp_number(timeout)
        return False


class TimerMeasure(TspObject):
    def __init__(self, timer: BenchTimer) -> None:
        self.t = timer.t


class BenchTimer(TspObject):
    """``timer``: ``timer.reset()``, ``timer.measure.t()`` on the bench clock."""

    def __init__(self, wiring: Wiring) -> None:
        self._wiring = wiring
        self._t0 = wiring.now()
        self.measure = TimerMeasure(self)

    def reset(self) -> None:
        self._t0 = self._wiring.now()

    def t(self) -> float:
        return self._wiring.now() - self._t0


def _register(names: Mapping[str, float], condition: Callable[[], int]) -> StatusRegister:
    return StatusRegister(names, condition)


#: Factory sweeps (Reference Manual section 3, "KISweep factory script": the sweep is stored in
#: smu.nvbuffer1; the output is off afterwards).
FACTORY_SCRIPTS = r"""
local function rramhil_sweep(smu, func, levels, stime, measure)
  smu.source.func = func
  smu.nvbuffer1.clear()
  smu.nvbuffer1.appendmode = 1
  smu.source.output = smu.OUTPUT_ON
  for k = 1, table.getn(levels) do
    if func == smu.OUTPUT_DCVOLTS then smu.source.levelv = levels[k] else smu.source.leveli = levels[k] end
    delay(stime)
    measure(smu.nvbuffer1)
  end
  if func == smu.OUTPUT_DCVOLTS then smu.source.levelv = 0 else smu.source.leveli = 0 end
  smu.source.output = smu.OUTPUT_OFF
end
local function linear(a, b, n)
  local t = {}
  for k = 0, n - 1 do
    if n > 1 then t[k + 1] = a + (b - a) * k / (n - 1) else t[k + 1] = a end
  end
  return t
end
local function logarithmic(a, b, n)
  local t = {}
  for k = 0, n - 1 do
    if n > 1 then t[k + 1] = a * math.pow(b / a, k / (n - 1)) else t[k + 1] = a end
  end
  return t
end
local function first(list, n)
  local t = {}
  for k = 1, n do t[k] = list[k] end
  return t
end
math.pow = math.pow or function(x, y) return x ^ y end
function SweepVLinMeasureI(smu, startv, stopv, stime, points)
  rramhil_sweep(smu, smu.OUTPUT_DCVOLTS, linear(startv, stopv, points), stime, smu.measure.i)
end
function SweepVLogMeasureI(smu, startv, stopv, stime, points)
  rramhil_sweep(smu, smu.OUTPUT_DCVOLTS, logarithmic(startv, stopv, points), stime, smu.measure.i)
end
function SweepVListMeasureI(smu, vlist, stime, points)
  rramhil_sweep(smu, smu.OUTPUT_DCVOLTS, first(vlist, points), stime, smu.measure.i)
end
function SweepILinMeasureV(smu, starti, stopi, stime, points)
  rramhil_sweep(smu, smu.OUTPUT_DCAMPS, linear(starti, stopi, points), stime, smu.measure.v)
end
function SweepILogMeasureV(smu, starti, stopi, stime, points)
  rramhil_sweep(smu, smu.OUTPUT_DCAMPS, logarithmic(starti, stopi, points), stime, smu.measure.v)
end
function SweepIListMeasureV(smu, ilist, stime, points)
  rramhil_sweep(smu, smu.OUTPUT_DCAMPS, first(ilist, points), stime, smu.measure.v)
end
"""


class Keithley2600Emulator(TspInstrument):
    """An emulated Keithley 2600B, its channels wired to the twin through ``wiring``.

    Args:
        twin: the shared twin.
        wiring: the bench; ``None``: this SMU alone, each channel cabled straight to cell
            (0, 0) of the twin's first array.
        name: the instrument's name in the station (how the wiring knows its terminals).
        model: one of :data:`MODELS` (``2636B``, two channels, the default; ``2602B``,
            ``2601B``...): channels and ranges follow the model.
        host, port, latency_s, faults, on_message: see :class:`InstrumentServer`.
    """

    model = "keithley2600"
    #: per-message latency (one TSP message with a 0.1 NPLC reading: about 2 ms)
    default_latency_s = 2e-3

    def __init__(
        self,
        twin: TwinBackend,
        *,
        wiring: Wiring | None = None,
        name: str = "smu",
        model: str = "2636B",
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float | None = None,
        faults: Iterable[Fault] = (),
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        key = model.upper()
        if key not in MODELS:
            raise ValueError(f"model: '{model}' is not a 2600B model ({', '.join(MODELS)})")
        self.twin = twin
        self.name = name
        self.model_name = key
        self.spec = MODELS[key]
        self.wiring = wiring or direct_wiring(twin, name, ("a", "b"))
        defaults = SourceDefaults(limit_i_A=1e-1, limit_v_V=20.0, nplc=1.0)
        self.channels = {c: SourceChannel(self.wiring, name, c, defaults) for c in self.spec.channels}
        self.idn = f"Keithley Instruments Inc., Model {key}, 4123456, 3.3.5"
        self._sweep_buffers: tuple[Any, ...] = ()
        self.smus: dict[str, Smu] = {}
        self._smu_status: dict[str, StatusRegister] = {}
        super().__init__(host, port, latency_s, faults, on_message)

    # ------------------------------------------------------------------ tables
    def install(self, g: Any) -> None:
        self.trigger = Trigger()
        self.localnode = LocalNode(
            self.model_name, "4123456", "3.3.5", f"System SourceMeter Model {self.model_name} - 4123456"
        )
        g.trigger = self.trigger
        g.localnode = self.localnode
        g.timer = BenchTimer(self.wiring)
        self.smus = {}
        for k, (c, ch) in enumerate(self.channels.items()):
            smu = Smu(self, ch, 1 + 10 * k)
            self.smus[c] = smu
            g[f"smu{c}"] = smu
        self._install_status()
        self.lua.execute(FACTORY_SCRIPTS)

    def _install_status(self) -> None:
        """The 2600B measurement event registers ("status.measurement.*")."""
        smu_bits = {"VOLTAGE_LIMIT": 1, "VLMT": 1, "CURRENT_LIMIT": 2, "ILMT": 2,
                    "READING_OVERFLOW": 128, "ROF": 128, "BUFFER_AVAILABLE": 256, "BAV": 256}  # fmt: skip
        channel_bits = {f"SMU{c.upper()}": 2 << k for k, c in enumerate(self.smus)}
        self._smu_status = {c: _register(smu_bits, smu.condition) for c, smu in self.smus.items()}

        def summary() -> int:
            return sum(channel_bits[f"SMU{c.upper()}"] for c, r in self._smu_status.items() if r.summary())

        def per_channel(bit: int) -> Callable[[], int]:
            return lambda: sum(
                channel_bits[f"SMU{c.upper()}"] for c, smu in self.smus.items() if smu.condition() & bit
            )

        instrument = _register(channel_bits, summary)
        for c, reg in self._smu_status.items():
            setattr(instrument, f"smu{c}", reg)
        summaries = {
            "voltage_limit": _register(channel_bits, per_channel(1)),
            "current_limit": _register(channel_bits, per_channel(2)),
            "reading_overflow": _register(channel_bits, per_channel(128)),
            "buffer_available": _register(channel_bits, per_channel(256)),
        }

        def measurement_condition() -> int:
            bits = 0
            for name, bit in (("voltage_limit", 1), ("current_limit", 2), ("reading_overflow", 128),
                              ("buffer_available", 256)):  # fmt: skip
                if summaries[name].summary():
                    bits |= bit
            if instrument.summary():
                bits |= 8192
            return bits

        names = {"VOLTAGE_LIMIT": 1, "VLMT": 1, "CURRENT_LIMIT": 2, "ILMT": 2, "READING_OVERFLOW": 128,
                 "ROF": 128, "BUFFER_AVAILABLE": 256, "BAV": 256, "INSTRUMENT_SUMMARY": 8192, "INST": 8192}  # fmt: skip
        measurement = _register(names, measurement_condition)
        measurement.instrument = instrument  # type: ignore[attr-defined]
        for name, reg in summaries.items():
            setattr(measurement, name, reg)
        self._status_chain = [*self._smu_status.values(), *summaries.values(), instrument, measurement]
        self.status._measurement = measurement

    def refresh_status(self) -> None:
        """Latch the measurement event registers bottom-up (after every measurement)."""
        for reg in getattr(self, "_status_chain", ()):
            reg.update()

    def reset_instrument(self) -> None:
        for c, smu in self.smus.items():
            smu.reset()
            self.channels[c].reset()
        for timer in self.trigger.timer:
            timer.reset()
        self.refresh_status()

    def reset_state(self) -> None:
        for ch in self.channels.values():
            ch.reset()
        super().reset_state()

    def delay(self, seconds: Any) -> None:
        self.wiring.advance(check_range("delay", seconds, 0, float("inf")))

    # ------------------------------------------------------------------ sweeps and buffers
    def begin_sweep(self, buffers: tuple[Any, ...]) -> None:
        for buf in buffers:
            if isinstance(buf, Buffer) and not buf.appendmode:
                buf.clear()
        self._sweep_buffers = buffers

    def end_sweep(self) -> None:
        self._sweep_buffers = ()

    def in_sweep(self, buf: Any) -> bool:
        return any(buf is b for b in self._sweep_buffers)

    # ------------------------------------------------------------------ messages and state
    def handle_message(self, message: str) -> str | None:
        with self.wiring.frozen():
            return super().handle_message(message)

    def outputs(self) -> dict[str, bool]:
        """Output state of every channel (for tests)."""
        return {c: ch.output_on for c, ch in self.channels.items()}


def direct_wiring(twin: TwinBackend, smu: str, channels: Iterable[str]) -> Wiring:
    """A bench with ``smu``'s channels cabled straight to cell (0, 0) of the twin's first array."""
    wiring = Wiring(twin)
    first = next(iter(twin.arrays))
    for c in channels:
        wiring.direct[(smu, c)] = (first, 0, 0)
    return wiring
