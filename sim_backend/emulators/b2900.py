"""Emulated Keysight B2900 series SMU (SCPI), one or two channels wired to the twin.

Behaviour follows the *Agilent/Keysight B2900 SCPI Command Reference* (B2910-90030, Edition 2;
"SCPI Ref."; page numbers only where checked, otherwise the command or subsystem named) and
the *Keysight B2900 Series Programming Guide* ("Prog. Guide"). The B2901A/B2911A/B2961A have one channel, the
B2902A/B2912A/B2962A two; the ranges follow the model ("Source Output Ranges" and
"Measurement Ranges", SCPI Ref. 2-24 to 2-28; the 10 nA range exists on the B2911A/B2912A and
the B2961A/B2962A only, the 6 V range on the B2961A/B2962A only).

What runs, with the manual's syntax variants (optional ``[:SOURce]`` root and optional nodes,
short and long forms, channel suffixes ``1|2``, channel lists ``(@1)``, ``(@1,2)``, ``(@1:2)``,
``MIN|MAX|DEF`` for numeric parameters and queries):

* SOURce subsystem (SCPI Ref. chapter 4, SOURce subsystem; 4-95, 4-105): ``[:SOUR[c]]:FUNC:MODE VOLT|CURR``,
  ``:FUNC[:SHAP] DC|PULS``, ``:<VOLT|CURR>[:LEV][:IMM][:AMPL]``, ``:<VOLT|CURR>[:LEV]:TRIG``,
  ``:<VOLT|CURR>:MODE FIX|LIST|SWE``, ``:<VOLT|CURR>:RANG``, ``:RANG:AUTO``, ``:RANG:AUTO:LLIM``,
  ``:<VOLT|CURR>:STAR|STOP|CENT|SPAN|STEP|POIN``, ``:SWE:POIN|DIR|SPAC|STA|RANG``,
  ``:LIST:<VOLT|CURR>``, ``:LIST:<VOLT|CURR>:APP``, ``:LIST:<VOLT|CURR>:POIN?``,
  ``:PULS:WIDT``, ``:PULS:DEL``;
* SENSe subsystem (SCPI Ref. chapter 4, SENSe subsystem; 4-77, 4-78): ``:SENS[c]:FUNC[:ON]``, ``:FUNC:OFF``,
  ``:FUNC:ALL``, ``:FUNC:OFF:ALL``, ``:FUNC:STAT?``, ``:<CURR|VOLT>[:DC]:PROT[:LEV]``,
  ``:PROT:TRIP?``, ``:<CURR|VOLT|RES>:RANG[:UPP]``, ``:RANG:AUTO``, ``:RANG:AUTO:LLIM|ULIM``,
  ``:<CURR|VOLT|RES>:APER``, ``:APER:AUTO``, ``:NPLC``, ``:NPLC:AUTO`` (one aperture per
  channel), ``:RES:MODE MAN|AUTO``, ``:RES:OCOM``, ``:SENS:REM`` (remote sensing);
* OUTPut subsystem (SCPI Ref. chapter 4, OUTPut subsystem): ``:OUTP[c][:STAT]``, ``:OFF:MODE ZERO|HIZ|NORM``,
  ``:ON:AUTO``, ``:OFF:AUTO``, ``:LOW FLO|GRO``, ``:PROT``, ``:HCAP``, ``:FILT[:LPAS][:STAT]``,
  ``:FILT[:LPAS]:AUTO``;
* measurement (SCPI Ref. chapter 4, MEASure/READ/FETCh; 4-44, 4-45): ``:MEAS[:CURR|:VOLT|:RES]? [chanlist]``,
  ``:READ[:SCAL|:ARR][:<elem>]?``, ``:FETC[:SCAL|:ARR][:<elem>]?`` with ``<elem>`` one of
  ``CURR|VOLT|RES|TIME|STAT|SOUR``; the data elements of ``:FORM:ELEM:SENS`` in the manual's
  fixed order (voltage, current, resistance, time, status, source; "Data Output Format",
  SCPI Ref. 1-12); a function that is not enabled reads ``+9.910000E+37`` (NaN in binary);
* FORMat subsystem (SCPI Ref. chapter 4, FORMat subsystem): ``:FORM[:DATA] ASC|REAL,32|REAL,64``,
  ``:FORM:BORD NORM|SWAP``, ``:FORM:ELEM:SENS``, ``:FORM:SREG ASC|HEX|OCT|BIN``; binary data
  come as an IEEE 488.2 definite-length block (``#<n><length><bytes>``);
* trigger system (SCPI Ref. chapter 4, ARM/TRIGger/INITiate/ABORt/IDLE): ``:ARM[c]|:TRIG[c][:ALL|:TRAN|:ACQ]:COUN|DEL|TIM|
  SOUR[:SIGN]``, the immediate ``:ARM[c][:ALL|...]`` and ``:TRIG[c][:ALL|...]``,
  ``:INIT[:IMM][:ALL|:TRAN|:ACQ] [chanlist]``, ``:ABOR[:ALL|:TRAN|:ACQ]``, ``:IDLE?``;
* SYSTem (SCPI Ref. chapter 4, SYSTem subsystem): ``:SYST:ERR[:NEXT]?``, ``:ERR:ALL?``, ``:ERR:COUN?``,
  ``:ERR:CODE[:NEXT]?``, ``:ERR:CODE:ALL?``, ``:SYST:LFR 50|60``, ``:SYST:VERS?``;
* common commands: ``*IDN?``, ``*RST``, ``*CLS``, ``*OPC``, ``*OPC?``, ``*WAI``, ``*TRG``,
  ``*TST?``, ``*OPT?`` and the status registers of the shared SCPI model.

A header the emulator does not implement gets ``-113,"Undefined header"``; a parameter it
refuses gets the SCPI error the manual lists (``-222`` out of range, ``-224`` illegal value,
``-109`` missing, ``-114`` header suffix out of range, ``-221`` settings conflict).

A triggered run is played as a timeline: transient triggers at ``TRAN:DEL + k * period``
(pulse shape: the peak from ``PULS:DEL`` for ``PULS:WIDT``, then the base level), acquire
triggers at ``ACQ:DEL + j * period``, each measuring whatever level is on the output then. The
period is ``TIM`` for the timer source and "as soon as possible" for ``AINT``; with the ``BUS``
(or another external) source ``:INIT`` waits and the run plays at ``*TRG`` or the immediate
``:TRIG`` (one trigger event starts the whole run: a simplification). Current sources sweep,
list and pulse the same way (their physics is the twin's current source).

Left out (``-113``): the TRACe (buffer statistics) and CALCulate (math, limit test) subsystems,
program memory (``:PROG``), digital I/O (``:SOUR:DIG``), ``:SOUR:WAIT``/``:SENS:WAIT``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sim_backend.emulators.scpi import (
    Handler,
    ScpiError,
    boolean,
    channel_list,
    choice,
    illegal_value,
    missing_parameter,
    number,
)
from sim_backend.emulators.scpi_instrument import ScpiInstrument
from sim_backend.emulators.scpi_server import Fault
from sim_backend.emulators.smu_channel import SourceChannel, SourceDefaults
from sim_backend.emulators.wiring import Wiring
from sim_backend.twin import TwinBackend

#: "not a number" of the B2900's ASCII data (SCPI Ref. 4-44, :MEASure?)
NAN_ASCII = 9.91e37
MODES = {"FIX": "FIX", "FIXED": "FIX", "LIST": "LIST", "SWE": "SWE", "SWEEP": "SWE"}
SHAPES = {"DC": "DC", "PULS": "PULS", "PULSE": "PULS"}
FUNCS = {"VOLT": "VOLT", "VOLTAGE": "VOLT", "CURR": "CURR", "CURRENT": "CURR"}
TRIGGER_SOURCES = {
    **{k: k for k in ("AINT", "BUS", "TIM", "INT1", "INT2", "LAN")},
    "AINTERNAL": "AINT",
    "TIMER": "TIM",
    **{f"EXT{n}": f"EXT{n}" for n in range(1, 15)},
}
#: data elements in the manual's output order (SCPI Ref. 1-12, "Data Output Format")
ELEMENTS = ("VOLT", "CURR", "RES", "TIME", "STAT", "SOUR")
ELEMENT_NAMES = {
    "VOLT": "VOLT", "VOLTAGE": "VOLT", "CURR": "CURR", "CURRENT": "CURR", "RES": "RES",
    "RESISTANCE": "RES", "TIME": "TIME", "STAT": "STAT", "STATUS": "STAT", "SOUR": "SOUR",
    "SOURCE": "SOUR",
}  # fmt: skip
SENSE_FUNCS = {
    "VOLT": "VOLT", "VOLT:DC": "VOLT", "VOLTAGE": "VOLT", "VOLTAGE:DC": "VOLT", "CURR": "CURR",
    "CURR:DC": "CURR", "CURRENT": "CURR", "CURRENT:DC": "CURR", "RES": "RES", "RESISTANCE": "RES",
}  # fmt: skip
#: status word bit of a reading taken in compliance (SCPI Ref. 1-12, "Status" element)
STATUS_COMPLIANCE = 8
MAX_LEVEL = {"VOLT": 210.0, "CURR": 3.03}
MAX_LIST = 2500  # SCPI Ref. 4-105, [:SOURce]:LIST:<CURRent|VOLTage>:APPend


def model_ranges(model: str) -> dict[str, tuple[float, ...]]:
    """Source and measurement ranges of a B2900 model (SCPI Ref. 2-24 to 2-28)."""
    low_current = model.startswith(("B291", "B296"))
    currents: tuple[float, ...] = (1e-8,) if low_current else ()
    currents += (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 1.5, 3.0)
    volts = (0.2, 2.0, 6.0, 20.0, 200.0) if model.startswith("B296") else (0.2, 2.0, 20.0, 200.0)
    return {"VOLT": volts, "CURR": currents, "RES": tuple(2.0 * 10**k for k in range(9))}


def nr3(value: float) -> str:
    """A number as the B2900's NR3 response data: ``+1.000000E-03``; NaN as ``+9.910000E+37``."""
    v = float(value)
    if math.isnan(v) or math.isinf(v):
        v = NAN_ASCII
    return f"{v:+.6E}"


def nr1(value: int | bool) -> str:
    return str(int(value))


@dataclass
class Layer:
    """One trigger or arm layer (transient or acquire) of a channel (SCPI Ref., TRIGger and ARM subsystems)."""

    source: str = "AINT"
    timer: float = 1e-3
    count: int = 1
    delay: float = 0.0


@dataclass
class SourceProgram:
    """The output program of one source function (voltage or current) of a channel."""

    triggered: float = 0.0
    mode: str = "FIX"
    values: list[float] = field(default_factory=list)
    start: float = 0.0
    stop: float = 0.0
    range: float = 2.0
    auto: bool = True
    llim: float = 0.0


@dataclass
class SenseRange:
    """Measurement range setting of one measurement function."""

    range: float
    auto: bool = True
    llim: float = 0.0
    ulim: float = 0.0


@dataclass
class Reading:
    """One data record (every element, SCPI Ref. 1-12)."""

    volt: float
    curr: float
    res: float
    time: float
    stat: float
    sour: float

    def element(self, name: str) -> float:
        return float(getattr(self, name.lower()))


@dataclass
class ChannelState:
    """Everything a B2900 channel holds beyond its :class:`SourceChannel`."""

    shape: str = "DC"
    program: dict[str, SourceProgram] = field(default_factory=dict)
    points: int = 1
    direction: str = "UP"
    spacing: str = "LIN"
    sweep_stair: str = "SING"
    sweep_ranging: str = "BEST"
    pulse_width: float = 1e-4
    pulse_delay: float = 0.0
    aperture: float = 0.1 / 50
    aperture_auto: bool = False
    sense: set[str] = field(default_factory=lambda: {"VOLT", "CURR"})
    sense_range: dict[str, SenseRange] = field(default_factory=dict)
    res_mode: str = "MAN"
    res_ocom: bool = False
    remote: bool = False
    off_mode: str = "NORM"
    on_auto: bool = True
    off_auto: bool = False
    low: str = "GRO"
    protection: bool = False
    hcap: bool = False
    filt: bool = True
    filt_auto: bool = True
    trig: dict[str, Layer] = field(default_factory=lambda: {"TRAN": Layer(), "ACQ": Layer()})
    arm: dict[str, Layer] = field(default_factory=lambda: {"TRAN": Layer(), "ACQ": Layer()})
    readings: list[Reading] = field(default_factory=list)
    waiting: tuple[bool, bool] | None = None


class KeysightB2900Emulator(ScpiInstrument):
    """An emulated B2900 (B2902A by default: two channels).

    Args:
        twin: the shared twin.
        wiring: the bench; ``None``: this SMU alone, its channels cabled to cell (0, 0).
        name: the instrument's name in the station.
        model: ``B2902A`` (default), ``B2901A``, ``B2911A``, ``B2912A``, ``B2961A``, ``B2962A``
            (one channel if the model number ends in 1).
        host, port, latency_s, faults, on_message: see :class:`InstrumentServer`.
    """

    model = "b2900"
    #: per-message latency (one SCPI message with a 0.1 NPLC reading: about 2 ms)
    default_latency_s = 2e-3

    def __init__(
        self,
        twin: TwinBackend,
        *,
        wiring: Wiring | None = None,
        name: str = "smu",
        model: str = "B2902A",
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float | None = None,
        faults: Iterable[Fault] = (),
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        from sim_backend.emulators.keithley2600 import direct_wiring

        self.twin = twin
        self.name = name
        self.model_name = model.upper()
        names = ("1",) if self.model_name.rstrip("A").endswith("1") else ("1", "2")
        wiring = wiring or direct_wiring(twin, name, names)
        defaults = SourceDefaults(limit_i_A=1e-4, limit_v_V=2.0, nplc=0.1)
        self.channels = {int(c): SourceChannel(wiring, name, c, defaults) for c in names}
        self.ranges = model_ranges(self.model_name)
        #: shortest pulse width (s): 50 us, 10 us on the B2911A/B2912A (SCPI Ref., [:SOURce]:PULSe:WIDTh; B2900 data sheet)
        self.min_pulse_width = 1e-5 if self.model_name.startswith("B291") else 5e-5
        self.state: dict[int, ChannelState] = {}
        self.line_frequency_Hz = 50.0
        self.elements = list(ELEMENTS)
        self.data_format = "ASC"
        self.byte_order = "NORM"
        self.sreg_format = "ASC"
        self.t0 = 0.0
        self.idn = f"Keysight Technologies,{self.model_name},MY51140001,3.4.2011.5100"
        super().__init__(wiring, host, port, latency_s, faults, on_message)

    def reset_state(self) -> None:
        """``*RST`` (SCPI Ref. "Reset settings" column of the command summary); the error queue
        and the status registers are kept (IEEE 488.2 section 10.32)."""
        for ch in self.channels.values():
            ch.reset()
        self.state = {c: self._fresh_channel() for c in self.channels}
        self.elements = list(ELEMENTS)
        self.data_format = "ASC"
        self.byte_order = "NORM"
        self.sreg_format = "ASC"
        self.t0 = self.wiring.now() if hasattr(self, "wiring") else 0.0

    def bus_trigger(self) -> None:
        """``*TRG``: a bus trigger for every channel waiting for one (SCPI Ref., common command ``*TRG``)."""
        self._bus_trigger(list(self.channels), ("TRAN", "ACQ"))

    def _fresh_channel(self) -> ChannelState:
        st = ChannelState()
        st.program = {
            "VOLT": SourceProgram(range=self.ranges["VOLT"][1], llim=self.ranges["VOLT"][0]),
            "CURR": SourceProgram(range=1e-4, llim=self.ranges["CURR"][0]),
        }
        st.sense_range = {
            "CURR": SenseRange(1e-4, llim=1e-6, ulim=self.ranges["CURR"][-1]),
            "VOLT": SenseRange(2.0, llim=0.2, ulim=self.ranges["VOLT"][-1]),
            "RES": SenseRange(2e5, llim=2.0, ulim=self.ranges["RES"][-1]),
        }
        st.aperture = 0.1 / self.line_frequency_Hz
        return st

    def outputs(self) -> dict[str, bool]:
        """Output state of every channel (for tests)."""
        return {str(c): ch.output_on for c, ch in self.channels.items()}

    # ------------------------------------------------------------------ helpers
    def _c(self, suffixes: list[int]) -> int:
        c = suffixes[0] if suffixes else 1
        if c not in self.channels:
            raise ScpiError(-114, f'"Header suffix out of range; channel {c}"')
        return c

    def _chans(self, p: list[str]) -> list[int]:
        """The channels of a ``chanlist`` parameter (default ``(@1)``), in channel order."""
        if not p:
            return [1]
        try:
            chans = channel_list(p[0])
        except ValueError:
            raise illegal_value(f"channel list {p[0]}") from None
        if not chans:
            raise illegal_value(f"channel list {p[0]}")
        for c in chans:
            if c not in self.channels:
                raise illegal_value(f"channel {c} (this {self.model_name} has {len(self.channels)})")
        return sorted(set(chans))

    @staticmethod
    def _one(p: list[str], what: str = "") -> str:
        if not p:
            raise missing_parameter(what)
        return p[0]

    def _numeric(
        self,
        get: Callable[[int], float],
        put: Callable[[int, float], None],
        lo: float,
        hi: float,
        default: float,
        integer: bool = False,
    ) -> tuple[Any, Any]:
        """A numeric setting with ``MIN|MAX|DEF`` for the value and for the query."""

        def setter(p: list[str], x: list[int]) -> None:
            value = number(self._one(p), default=default, lo=lo, hi=hi)
            put(self._c(x), int(value) if integer else value)

        def getter(p: list[str], x: list[int]) -> str:
            c = self._c(x)
            value = number(p[0], default=default, lo=lo, hi=hi) if p else get(c)
            return nr1(int(value)) if integer else nr3(value)

        return setter, getter

    def _flag(self, attr: str) -> tuple[Any, Any]:
        def setter(p: list[str], x: list[int]) -> None:
            setattr(self.state[self._c(x)], attr, boolean(self._one(p)))

        def getter(p: list[str], x: list[int]) -> str:
            return nr1(getattr(self.state[self._c(x)], attr))

        return setter, getter

    def _word(self, attr: str, options: dict[str, str]) -> tuple[Any, Any]:
        def setter(p: list[str], x: list[int]) -> None:
            setattr(self.state[self._c(x)], attr, choice(self._one(p), options))

        def getter(p: list[str], x: list[int]) -> str:
            return str(getattr(self.state[self._c(x)], attr))

        return setter, getter

    def _st_attr(self, attr: str) -> tuple[Callable[[int], float], Callable[[int, float], None]]:
        return (lambda c: getattr(self.state[c], attr), lambda c, v: setattr(self.state[c], attr, v))

    def _prog_attr(self, func: str, attr: str) -> tuple[Callable[[int], float], Callable[[int, float], None]]:
        return (
            lambda c: getattr(self.state[c].program[func], attr),
            lambda c, v: setattr(self.state[c].program[func], attr, v),
        )

    def _fit_range(self, kind: str, value: float) -> float:
        """The smallest range of ``kind`` covering ``value`` (-222 when none does)."""
        for r in self.ranges[kind]:
            if abs(value) <= r * (1 + 1e-9):
                return r
        raise ScpiError(-222, f'"Data out of range; {value:g} exceeds the largest {kind} range"')

    # ------------------------------------------------------------------ commands
    def declare(self) -> None:
        s = self.scpi
        chan = self.channels

        def ch(x: list[int]) -> SourceChannel:
            return chan[self._c(x)]

        # ---- SOURce (SCPI Ref., SOURce subsystem)
        s.add(
            "[:SOURce#]:FUNCtion:MODE",
            lambda p, x: ch(x).set_func(choice(self._one(p), FUNCS)),
            lambda p, x: ch(x).func,
        )
        s.add("[:SOURce#]:FUNCtion[:SHAPe]", *self._word("shape", SHAPES))
        for f, long in (("VOLT", "VOLTage"), ("CURR", "CURRent")):
            self._declare_source(f, long)
        s.add("[:SOURce#]:SWEep:POINts", *self._points())
        s.add("[:SOURce#]:SWEep:DIRection", *self._word("direction", {"UP": "UP", "DOWN": "DOWN"}))
        s.add(
            "[:SOURce#]:SWEep:SPACing",
            *self._word("spacing", {"LIN": "LIN", "LINEAR": "LIN", "LOG": "LOG", "LOGARITHMIC": "LOG"}),
        )
        s.add(
            "[:SOURce#]:SWEep:STAir",
            *self._word("sweep_stair", {"SING": "SING", "SINGLE": "SING", "DOUB": "DOUB", "DOUBLE": "DOUB"}),
        )
        s.add(
            "[:SOURce#]:SWEep:RANGing",
            *self._word("sweep_ranging", {"BEST": "BEST", "AUTO": "AUTO", "FIX": "FIX", "FIXED": "FIX"}),
        )
        s.add(
            "[:SOURce#]:PULSe:WIDTh",
            *self._numeric(*self._st_attr("pulse_width"), self.min_pulse_width, 1e5, 1e-4),
        )
        s.add("[:SOURce#]:PULSe:DELay", *self._numeric(*self._st_attr("pulse_delay"), 0.0, 99999.9, 0.0))

        # ---- SENSe (SCPI Ref., SENSe subsystem)
        s.add(":SENSe#:FUNCtion[:ON]", self._sense_on, self._sense_query)
        s.add(":SENSe#:FUNCtion:OFF", self._sense_off, self._sense_off_query)
        s.add(
            ":SENSe#:FUNCtion:ALL", lambda p, x: self.state[self._c(x)].sense.update(("VOLT", "CURR", "RES"))
        )
        s.add(":SENSe#:FUNCtion:OFF:ALL", lambda p, x: self.state[self._c(x)].sense.clear())
        s.add(":SENSe#:FUNCtion:STATe", None, self._sense_state)
        s.add(
            ":SENSe#:CURRent[:DC]:PROTection[:LEVel]",
            *self._numeric(lambda c: chan[c].limit_i, lambda c, v: chan[c].set_limit_i(v), 1e-12, 3.03, 1e-4),
        )
        s.add(
            ":SENSe#:VOLTage[:DC]:PROTection[:LEVel]",
            *self._numeric(lambda c: chan[c].limit_v, lambda c, v: chan[c].set_limit_v(v), 0.0, 210, 2.0),
        )
        for f in ("CURRent[:DC]", "VOLTage[:DC]"):
            s.add(f":SENSe#:{f}:PROTection:TRIPped", None, lambda p, x: nr1(ch(x).in_compliance))
        for kind, node in (("CURR", "CURRent[:DC]"), ("VOLT", "VOLTage[:DC]"), ("RES", "RESistance")):
            self._declare_sense(kind, node)
        s.add(
            ":SENSe#:RESistance:MODE",
            *self._word("res_mode", {"MAN": "MAN", "MANUAL": "MAN", "AUTO": "AUTO"}),
        )
        s.add(":SENSe#:RESistance:OCOMpensated", *self._flag("res_ocom"))
        s.add(":SENSe#:REMote", *self._flag("remote"))

        # ---- OUTPut (SCPI Ref., OUTPut subsystem)
        s.add(
            ":OUTPut#[:STATe]",
            lambda p, x: ch(x).set_output(boolean(self._one(p))),
            lambda p, x: nr1(ch(x).output_on),
        )
        s.add(
            ":OUTPut#:OFF:MODE",
            *self._word("off_mode", {"ZERO": "ZERO", "HIZ": "HIZ", "NORM": "NORM", "NORMAL": "NORM"}),
        )
        s.add(":OUTPut#:ON:AUTO", *self._flag("on_auto"))
        s.add(":OUTPut#:OFF:AUTO", *self._flag("off_auto"))
        s.add(
            ":OUTPut#:LOW",
            *self._word("low", {"FLO": "FLO", "FLOAT": "FLO", "GRO": "GRO", "GROUND": "GRO"}),
        )
        s.add(":OUTPut#:PROTection[:STATe]", *self._flag("protection"))
        s.add(":OUTPut#:HCAPacitance[:STATe]", *self._flag("hcap"))
        s.add(":OUTPut#:FILTer[:LPASs][:STATe]", *self._flag("filt"))
        s.add(":OUTPut#:FILTer[:LPASs]:AUTO", *self._flag("filt_auto"))

        # ---- MEASure / READ / FETCh (SCPI Ref., 4-44 and 4-45)
        s.add(":MEASure", None, lambda p, x: self._measure(p, None))
        for e, node in (("CURR", "CURRent[:DC]"), ("VOLT", "VOLTage[:DC]"), ("RES", "RESistance")):
            s.add(f":MEASure:{node}", None, self._measure_handler(e))
        for verb, fetch in (("FETCh", True), ("READ", False)):
            s.add(f":{verb}[:SCALar]", None, self._data_handler(None, True, fetch))
            s.add(f":{verb}:ARRay", None, self._data_handler(None, False, fetch))
            for e, node in (
                ("CURR", "CURRent[:DC]"), ("VOLT", "VOLTage[:DC]"), ("RES", "RESistance"),
                ("TIME", "TIME"), ("STAT", "STATus"), ("SOUR", "SOURce"),
            ):  # fmt: skip
                s.add(f":{verb}[:SCALar]:{node}", None, self._data_handler(e, True, fetch))
                s.add(f":{verb}:ARRay:{node}", None, self._data_handler(e, False, fetch))

        # ---- FORMat (SCPI Ref., FORMat subsystem)
        s.add(":FORMat:ELEMents:SENSe", self._set_elements, lambda p, x: ",".join(self.elements))
        s.add(":FORMat[:DATA]", self._set_format, lambda p, x: self.data_format)
        s.add(":FORMat:BORDer", self._set_border, lambda p, x: self.byte_order)
        s.add(":FORMat:SREGister", self._set_sreg, lambda p, x: self.sreg_format)

        # ---- trigger system (SCPI Ref., TRIGger and ARM subsystems)
        for table in ("trig", "arm"):
            root = ":TRIGger#" if table == "trig" else ":ARM#"
            for node, layers in (
                ("[:ALL]", ("TRAN", "ACQ")),
                (":TRANsient", ("TRAN",)),
                (":ACQuire", ("ACQ",)),
            ):
                s.add(
                    f"{root}{node}:SOURce[:SIGNal]",
                    *self._layer(table, layers, "source", lambda t: choice(t, TRIGGER_SOURCES), str),
                )
                s.add(
                    f"{root}{node}:TIMer",
                    *self._layer(table, layers, "timer", lambda t: number(t, 1e-3, 1e-5, 1e5), nr3),
                )
                s.add(
                    f"{root}{node}:COUNt",
                    *self._layer(table, layers, "count", lambda t: int(number(t, 1, 1, 100000)), nr1),
                )
                s.add(
                    f"{root}{node}:DELay",
                    *self._layer(table, layers, "delay", lambda t: number(t, 0.0, 0.0, 100000), nr3),
                )
                s.add(f"{root}{node}", self._immediate_handler(layers))
        s.add(":INITiate[:IMMediate][:ALL]", lambda p, x: self._initiate(p, True, True))
        s.add(":INITiate[:IMMediate]:TRANsient", lambda p, x: self._initiate(p, True, False))
        s.add(":INITiate[:IMMediate]:ACQuire", lambda p, x: self._initiate(p, False, True))
        for node in ("[:ALL]", ":TRANsient", ":ACQuire"):
            s.add(f":ABORt{node}", self._abort)
            s.add(f":IDLE{node}", None, self._idle)

        # ---- SYSTem (SCPI Ref., SYSTem subsystem) and common commands
        s.add(":SYSTem:ERRor:ALL", None, lambda p, x: self._all_errors(codes=False))
        s.add(":SYSTem:ERRor:COUNt", None, lambda p, x: nr1(len(self.scpi.errors)))
        s.add(":SYSTem:ERRor:CODE[:NEXT]", None, lambda p, x: f"{self.scpi.next_error()[0]:+d}")
        s.add(":SYSTem:ERRor:CODE:ALL", None, lambda p, x: self._all_errors(codes=True))
        s.add(":SYSTem:LFRequency", self._set_lfr, lambda p, x: nr1(int(self.line_frequency_Hz)))
        s.add(":SYSTem:VERSion", None, lambda p, x: "1999.0")
        s.add_common("*OPT?", lambda p, x: "0")

    def _declare_source(self, f: str, long: str) -> None:
        s = self.scpi
        chan = self.channels
        top = MAX_LEVEL[f]

        def set_level(c: int, v: float) -> None:
            # the immediate level is also the triggered level until :TRIG sets another
            # (as modelled here, after SCPI Ref. [:SOURce]:<CURRent|VOLTage>[:LEVel]:TRIGgered)
            (chan[c].set_level_v if f == "VOLT" else chan[c].set_level_i)(v)
            self.state[c].program[f].triggered = v

        def level(c: int) -> float:
            return chan[c].level_v if f == "VOLT" else chan[c].level_i

        s.add(
            f"[:SOURce#]:{long}[:LEVel][:IMMediate][:AMPLitude]",
            *self._numeric(level, set_level, -top, top, 0.0),
        )
        s.add(
            f"[:SOURce#]:{long}[:LEVel]:TRIGgered[:AMPLitude]",
            *self._numeric(*self._prog_attr(f, "triggered"), -top, top, 0.0),
        )
        s.add(
            f"[:SOURce#]:{long}:MODE",
            lambda p, x: setattr(self.state[self._c(x)].program[f], "mode", choice(self._one(p), MODES)),
            lambda p, x: self.state[self._c(x)].program[f].mode,
        )

        def set_range(c: int, v: float) -> None:
            prog = self.state[c].program[f]
            prog.range, prog.auto = self._fit_range(f, v), False

        def get_range(c: int) -> float:
            prog = self.state[c].program[f]
            return max(self._fit_range(f, level(c)), prog.llim) if prog.auto else prog.range

        rmax = self.ranges[f][-1]
        s.add(f"[:SOURce#]:{long}:RANGe", *self._numeric(get_range, set_range, 0, rmax, rmax))
        s.add(
            f"[:SOURce#]:{long}:RANGe:AUTO",
            lambda p, x: setattr(self.state[self._c(x)].program[f], "auto", boolean(self._one(p))),
            lambda p, x: nr1(self.state[self._c(x)].program[f].auto),
        )
        s.add(
            f"[:SOURce#]:{long}:RANGe:AUTO:LLIMit",
            *self._numeric(*self._prog_attr(f, "llim"), self.ranges[f][0], rmax, self.ranges[f][0]),
        )
        s.add(f"[:SOURce#]:{long}:STARt", *self._numeric(*self._prog_attr(f, "start"), -top, top, 0.0))
        s.add(f"[:SOURce#]:{long}:STOP", *self._numeric(*self._prog_attr(f, "stop"), -top, top, 0.0))

        def center(c: int) -> float:
            prog = self.state[c].program[f]
            return (prog.start + prog.stop) / 2

        def span(c: int) -> float:
            prog = self.state[c].program[f]
            return prog.stop - prog.start

        def set_center(c: int, v: float) -> None:
            prog, half = self.state[c].program[f], span(c) / 2
            prog.start, prog.stop = v - half, v + half

        def set_span(c: int, v: float) -> None:
            prog, mid = self.state[c].program[f], center(c)
            prog.start, prog.stop = mid - v / 2, mid + v / 2

        def step(c: int) -> float:
            n = self.state[c].points
            return span(c) / (n - 1) if n > 1 else 0.0

        def set_step(c: int, v: float) -> None:
            # SCPI Ref. 4-95: points = span/step + 1, rounded down; span stays
            st = self.state[c]
            st.points = 1 if v == 0 else max(1, min(MAX_LIST, int(abs(span(c) / v) + 1 + 1e-9)))

        s.add(f"[:SOURce#]:{long}:CENTer", *self._numeric(center, set_center, -top, top, 0.0))
        s.add(f"[:SOURce#]:{long}:SPAN", *self._numeric(span, set_span, -2 * top, 2 * top, 0.0))
        s.add(f"[:SOURce#]:{long}:STEP", *self._numeric(step, set_step, -2 * top, 2 * top, 0.0))
        s.add(f"[:SOURce#]:{long}:POINts", *self._points())
        s.add(
            f"[:SOURce#]:LIST:{long}",
            lambda p, x: self._set_list(p, x, f, append=False),
            lambda p, x: ",".join(nr3(v) for v in self.state[self._c(x)].program[f].values),
        )
        s.add(f"[:SOURce#]:LIST:{long}:APPend", lambda p, x: self._set_list(p, x, f, append=True))
        s.add(
            f"[:SOURce#]:LIST:{long}:POINts",
            None,
            lambda p, x: nr1(len(self.state[self._c(x)].program[f].values)),
        )

    def _declare_sense(self, kind: str, node: str) -> None:
        s = self.scpi
        rmax, rmin = self.ranges[kind][-1], self.ranges[kind][0]

        def rng(c: int) -> SenseRange:
            return self.state[c].sense_range[kind]

        def set_range(c: int, v: float) -> None:
            r = rng(c)
            r.range, r.auto = self._fit_range(kind, v), False

        def get_range(c: int) -> float:
            r = rng(c)
            if not r.auto:
                return r.range
            last = self.channels[c].last
            value = {"CURR": last.current_A, "VOLT": last.voltage_V}.get(kind, r.range)
            return min(max(self._fit_range(kind, min(abs(value), rmax)), r.llim), r.ulim)

        s.add(f":SENSe#:{node}:RANGe[:UPPer]", *self._numeric(get_range, set_range, 0, rmax, rmax))
        s.add(
            f":SENSe#:{node}:RANGe:AUTO",
            lambda p, x: setattr(rng(self._c(x)), "auto", boolean(self._one(p))),
            lambda p, x: nr1(rng(self._c(x)).auto),
        )

        def set_limit(attr: str) -> Callable[[int, float], None]:
            def put(c: int, v: float) -> None:
                r = rng(c)
                new = self._fit_range(kind, v)
                lo, hi = (new, r.ulim) if attr == "llim" else (r.llim, new)
                if lo > hi:  # SCPI Ref. 4-78: the lower limit may not exceed the upper
                    raise ScpiError(-221, '"Settings conflict; lower range limit above the upper"')
                setattr(r, attr, new)

            return put

        default_llim = {"CURR": 1e-6, "VOLT": 0.2, "RES": 2.0}[kind]
        s.add(
            f":SENSe#:{node}:RANGe:AUTO:LLIMit",
            *self._numeric(lambda c: rng(c).llim, set_limit("llim"), rmin, rmax, default_llim),
        )
        s.add(
            f":SENSe#:{node}:RANGe:AUTO:ULIMit",
            *self._numeric(lambda c: rng(c).ulim, set_limit("ulim"), rmin, rmax, rmax),
        )

        def set_aperture(c: int, v: float) -> None:
            st = self.state[c]
            st.aperture, st.aperture_auto = v, False
            self.channels[c].nplc = v * self.line_frequency_Hz

        def set_nplc(c: int, v: float) -> None:
            set_aperture(c, v / self.line_frequency_Hz)

        lf = self.line_frequency_Hz
        s.add(
            f":SENSe#:{node}:APERture",
            *self._numeric(lambda c: self.state[c].aperture, set_aperture, 8e-6, 2.0, 0.1 / lf),
        )
        s.add(f":SENSe#:{node}:APERture:AUTO", *self._flag("aperture_auto"))
        s.add(
            f":SENSe#:{node}:NPLCycles",
            *self._numeric(
                lambda c: self.state[c].aperture * self.line_frequency_Hz, set_nplc, 8e-6 * lf, 2.0 * lf, 0.1
            ),
        )
        s.add(f":SENSe#:{node}:NPLCycles:AUTO", *self._flag("aperture_auto"))

    def _measure_handler(self, element: str) -> Handler:
        return lambda p, x: self._measure(p, element)

    def _data_handler(self, element: str | None, scalar: bool, fetch: bool) -> Handler:
        return lambda p, x: self._data(p, element, scalar, fetch)

    def _immediate_handler(self, layers: tuple[str, ...]) -> Handler:
        return lambda p, x: self._immediate(x, layers)

    def _points(self) -> tuple[Any, Any]:
        return self._numeric(*self._st_attr("points"), 1, MAX_LIST, 1, integer=True)

    def _layer(
        self,
        table: str,
        layers: tuple[str, ...],
        attr: str,
        parse: Callable[[str], Any],
        show: Callable[[Any], str],
    ) -> tuple[Any, Any]:
        def setter(p: list[str], x: list[int]) -> None:
            value = parse(self._one(p))
            for layer in layers:
                setattr(getattr(self.state[self._c(x)], table)[layer], attr, value)

        def getter(p: list[str], x: list[int]) -> str:
            if p and attr != "source":
                return show(parse(p[0]))
            return show(getattr(getattr(self.state[self._c(x)], table)[layers[0]], attr))

        return setter, getter

    # ------------------------------------------------------------------ settings
    def _set_list(self, p: list[str], x: list[int], f: str, append: bool) -> None:
        if not p:
            raise missing_parameter(":SOUR:LIST")
        values = [number(v, lo=-MAX_LEVEL[f], hi=MAX_LEVEL[f]) for v in p]
        prog = self.state[self._c(x)].program[f]
        new = (prog.values if append else []) + values
        if len(new) > MAX_LIST:
            raise ScpiError(-223, f'"Too much data; at most {MAX_LIST} list points"')
        prog.values = new

    def _sense_funcs(self, p: list[str]) -> list[str]:
        if not p:
            raise missing_parameter(":SENS:FUNC")
        return [choice(v, SENSE_FUNCS) for v in p]

    def _sense_on(self, p: list[str], x: list[int]) -> None:
        self.state[self._c(x)].sense.update(self._sense_funcs(p))

    def _sense_off(self, p: list[str], x: list[int]) -> None:
        self.state[self._c(x)].sense.difference_update(self._sense_funcs(p))

    def _sense_query(self, p: list[str], x: list[int]) -> str:
        on = self.state[self._c(x)].sense
        return ",".join(f'"{f}"' for f in ELEMENTS[:3] if f in on)

    def _sense_off_query(self, p: list[str], x: list[int]) -> str:
        on = self.state[self._c(x)].sense
        return ",".join(f'"{f}"' for f in ELEMENTS[:3] if f not in on)

    def _sense_state(self, p: list[str], x: list[int]) -> str:
        return nr1(self._sense_funcs(p)[0] in self.state[self._c(x)].sense)

    def _set_elements(self, p: list[str], x: list[int]) -> None:
        if not p:
            raise missing_parameter(":FORM:ELEM:SENS")
        chosen = {choice(v, ELEMENT_NAMES) for v in p}
        self.elements = [e for e in ELEMENTS if e in chosen]

    def _set_format(self, p: list[str], x: list[int]) -> None:
        kind = choice(self._one(p, ":FORM"), {"ASC": "ASC", "ASCII": "ASC", "REAL": "REAL"})
        if kind == "ASC":
            if len(p) > 1:
                raise ScpiError(-108, '"Parameter not allowed; ASCii takes no length"')
            self.data_format = "ASC"
            return
        length = int(number(p[1], default=32)) if len(p) > 1 else 32
        if length not in (32, 64):
            raise illegal_value(f"REAL,{p[1]} (32 or 64)")
        self.data_format = f"REAL,{length}"

    def _set_border(self, p: list[str], x: list[int]) -> None:
        self.byte_order = choice(
            self._one(p, ":FORM:BORD"), {"NORM": "NORM", "NORMAL": "NORM", "SWAP": "SWAP", "SWAPPED": "SWAP"}
        )

    def _set_sreg(self, p: list[str], x: list[int]) -> None:
        self.sreg_format = choice(
            self._one(p, ":FORM:SREG"),
            {"ASC": "ASC", "ASCII": "ASC", "HEX": "HEX", "HEXADECIMAL": "HEX", "OCT": "OCT",
             "OCTAL": "OCT", "BIN": "BIN", "BINARY": "BIN"},
        )  # fmt: skip

    def _set_lfr(self, p: list[str], x: list[int]) -> None:
        value = number(self._one(p, ":SYST:LFR"), default=50, lo=50, hi=60)
        if value not in (50.0, 60.0):
            raise illegal_value(f"{p[0]} (50 or 60 Hz)")
        self.line_frequency_Hz = value

    def _all_errors(self, codes: bool) -> str:
        out = []
        while True:
            code, text = self.scpi.next_error()
            out.append(f"{code:+d}" if codes else self.format_error(code, text))
            if code == 0:
                break
        if len(out) > 1:
            out.pop()  # the final "No error" is only reported when the queue was empty
        return ",".join(out)

    # ------------------------------------------------------------------ data
    def _encode(self, values: list[float]) -> str:
        """Data in the ``:FORM`` format: ASCII NR3 or an IEEE 488.2 definite-length block."""
        if self.data_format == "ASC":
            return ",".join(nr3(v) for v in values)
        size = 4 if self.data_format == "REAL,32" else 8
        order = ">" if self.byte_order == "NORM" else "<"
        payload = struct.pack(f"{order}{len(values)}{'f' if size == 4 else 'd'}", *values)
        length = str(len(payload))
        return f"#{len(length)}{length}" + payload.decode("latin-1")

    def _reading(self, c: int, funcs: set[str]) -> Reading:
        ch = self.channels[c]
        m = ch.measure()
        v = m.voltage_V if "VOLT" in funcs else math.nan
        i = m.current_A if "CURR" in funcs else math.nan
        r = math.nan
        if "RES" in funcs and m.current_A:
            r = m.voltage_V / m.current_A
        source = ch.level_v if ch.func == "VOLT" else ch.level_i
        stat = STATUS_COMPLIANCE if m.in_compliance else 0
        return Reading(v, i, r, self.wiring.now() - self.t0, stat, source)

    def _auto_on(self, c: int) -> None:
        """``:OUTP:ON:AUTO ON`` (the default): :INIT, :READ and :MEAS turn the output on
        (SCPI Ref., :OUTPut:ON:AUTO)."""
        if self.state[c].on_auto:
            self.channels[c].set_output(True)

    def _auto_off(self, c: int) -> None:
        """``:OUTP:OFF:AUTO ON``: the output turns off when the action ends (SCPI Ref., :OUTPut:OFF:AUTO)."""
        if self.state[c].off_auto:
            self.channels[c].set_output(False)

    def _measure(self, p: list[str], element: str | None) -> str:
        """``:MEAS?`` (spot measurement, the elements of ``:FORM:ELEM:SENS``) and
        ``:MEAS:<func>?`` (that function's data alone; SCPI Ref. 4-44, 4-45)."""
        values: list[float] = []
        for c in self._chans(p):
            st = self.state[c]
            self._auto_on(c)
            funcs = set(st.sense) | ({element} if element else set())
            reading = self._reading(c, funcs)
            st.readings = [reading]
            self._auto_off(c)
            values += [reading.element(e) for e in ([element] if element else self.elements)]
        return self._encode(values)

    def _data(self, p: list[str], element: str | None, scalar: bool, fetch: bool) -> str:
        """``:FETC``/``:READ`` ``[:SCAL|:ARR][:<elem>]?`` (SCPI Ref., FETCh and READ subsystems)."""
        chans = self._chans(p)
        if not fetch:
            for c in chans:
                self._start(c, True, True)
        values: list[float] = []
        for c in chans:
            st = self.state[c]
            elems = [element] if element else self.elements
            if not st.readings:
                values += [math.nan] * len(elems)
                continue
            records = st.readings[-1:] if scalar else st.readings
            values += [r.element(e) for r in records for e in elems]
        return self._encode(values)

    # ------------------------------------------------------------------ triggered runs
    def _levels(self, st: ChannelState, f: str) -> list[float]:
        prog = st.program[f]
        if prog.mode == "LIST":
            if not prog.values:
                raise ScpiError(-221, '"Settings conflict; the source list is empty"')
            return list(prog.values)
        if prog.mode == "SWE":
            n = max(st.points, 1)
            a, b = (prog.start, prog.stop) if st.direction == "UP" else (prog.stop, prog.start)
            if st.spacing == "LOG":
                if a == 0 or b == 0 or (a > 0) != (b > 0):
                    raise ScpiError(-221, '"Settings conflict; a log sweep needs start and stop of one sign"')
                ratio = (b / a) ** (1 / max(n - 1, 1))
                levels = [a * ratio**k for k in range(n)]
            else:
                levels = [a + (b - a) * k / max(n - 1, 1) for k in range(n)]
            return levels + levels[::-1] if st.sweep_stair == "DOUB" else levels
        return [prog.triggered]

    def _period(self, layer: Layer, st: ChannelState) -> float:
        if layer.source == "TIM":
            return layer.timer
        # automatic: the next trigger as soon as the present action is done
        if st.shape == "PULS":
            return st.pulse_delay + st.pulse_width + 1e-5
        return st.aperture + 1e-5

    def _initiate(self, p: list[str], transient: bool, acquire: bool) -> None:
        for c in self._chans(p):
            self._start(c, transient, acquire)

    def _start(self, c: int, transient: bool, acquire: bool) -> None:
        st = self.state[c]
        layers = [lay for lay, on in (("TRAN", transient), ("ACQ", acquire)) if on]
        if acquire:
            st.readings = []
        waits = any(st.trig[lay].source not in ("AINT", "TIM") for lay in layers)
        if waits:
            st.waiting = (transient, acquire)
            return
        self._run(c, transient, acquire)

    def _immediate(self, x: list[int], layers: tuple[str, ...]) -> None:
        """``:TRIG[c]``/``:ARM[c]`` ``[:ALL|:TRAN|:ACQ]``: an immediate trigger."""
        self._bus_trigger([self._c(x)], layers)

    def _bus_trigger(self, chans: list[int], layers: tuple[str, ...]) -> None:
        for c in chans:
            waiting = self.state[c].waiting
            if waiting is not None:
                self.state[c].waiting = None
                self._run(c, *waiting)

    def _abort(self, p: list[str], x: list[int]) -> None:
        for c in self._chans(p):
            self.state[c].waiting = None

    def _idle(self, p: list[str], x: list[int]) -> str:
        return nr1(all(self.state[c].waiting is None for c in self._chans(p)))

    def _run(self, c: int, transient: bool, acquire: bool) -> None:
        ch = self.channels[c]
        st = self.state[c]
        self._auto_on(c)
        f = ch.func
        set_level = ch.set_level_v if f == "VOLT" else ch.set_level_i
        base = ch.level_v if f == "VOLT" else ch.level_i
        levels = self._levels(st, f) if transient else [base]
        arm = st.arm["TRAN" if transient else "ACQ"]
        for _ in range(arm.count):
            if arm.delay:
                ch.hold(arm.delay)
            events: list[tuple[float, int, str, float]] = []
            if transient:
                period = self._period(st.trig["TRAN"], st)
                for k in range(st.trig["TRAN"].count):
                    t = st.trig["TRAN"].delay + k * period
                    level = levels[k % len(levels)]
                    if st.shape == "PULS":
                        events.append((t + st.pulse_delay, 1, "peak", level))
                        events.append((t + st.pulse_delay + st.pulse_width, 0, "base", base))
                    else:
                        events.append((t, 1, "level", level))
            if acquire:
                acq = st.trig["ACQ"]
                period = self._period(acq, st)
                events += [(acq.delay + j * period, 2, "measure", 0.0) for j in range(acq.count)]
            events.sort(key=lambda e: (e[0], e[1]))
            now = 0.0
            for t, _, kind, level in events:
                if t > now:
                    ch.hold(t - now)
                    now = t
                if kind == "measure":
                    st.readings.append(self._reading(c, st.sense))
                else:
                    set_level(level)
        if st.shape == "PULS":
            set_level(base)
        self._auto_off(c)
