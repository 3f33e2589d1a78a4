"""Emulated Keysight B2900 series SMU (SCPI), one or two channels wired to the twin.

What runs (a working subset of the B2900 SCPI reference, enough for this project's driver and
the user's guide examples):

* ``:SOUR[c]:FUNC:MODE``, ``:SOUR[c]:FUNC:SHAP DC|PULS``, ``:SOUR[c]:VOLT[:LEV][:IMM]``,
  ``:SOUR[c]:VOLT:TRIG`` (triggered level / pulse peak), ``:SOUR[c]:VOLT:MODE FIX|LIST|SWE``,
  ``:SOUR[c]:LIST:VOLT``, ``:SOUR[c]:VOLT:STAR/STOP/POIN``, ``:SOUR[c]:PULS:WIDT/DEL``, ranges;
  the same for ``CURR``;
* ``:SENS[c]:CURR:PROT`` (compliance), ``:SENS[c]:FUNC``, ``:SENS[c]:CURR:APER/NPLC/RANG``;
  ``:OUTP[c]``; ``:MEAS[:CURR|:VOLT]? (@c)``; ``:FORM:ELEM:SENS``;
* the trigger system: ``:TRIG[c][:ALL|:TRAN|:ACQ]:SOUR/TIM/COUN/DEL``, ``:ARM[c]:COUN``,
  ``:INIT[:ALL] (@c)``, ``:INIT:TRAN``, ``:INIT:ACQ``, ``:ABOR``; ``:FETC:ARR[:CURR|:VOLT]? (@c)``,
  ``:FETC[:SCAL]:CURR?``, ``:READ:ARR:CURR?``;
* ``*IDN?``, ``*RST``, ``*CLS``, ``*OPC?``, ``*WAI``, ``:SYST:ERR?``.

A triggered run is played as a timeline: transient triggers at ``TRAN:DEL + k * TRAN:TIM``
(pulse shape: the peak from ``PULS:DEL`` for ``PULS:WIDT``, then the base level), acquire
triggers at ``ACQ:DEL + j * ACQ:TIM``, each measuring whatever level is on the output then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sim_backend.emulators.scpi import (
    ScpiError,
    boolean,
    channel_list,
    choice,
    fmt,
    missing_parameter,
    number,
)
from sim_backend.emulators.scpi_instrument import ScpiInstrument
from sim_backend.emulators.scpi_server import Fault
from sim_backend.emulators.smu_channel import SourceChannel, SourceDefaults
from sim_backend.emulators.wiring import Wiring
from sim_backend.twin import TwinBackend

MODES = {"FIX": "FIX", "FIXED": "FIX", "LIST": "LIST", "SWE": "SWE", "SWEEP": "SWE"}
SHAPES = {"DC": "DC", "PULS": "PULS", "PULSE": "PULS"}
TRIGGER_SOURCES = {k: k[:4] for k in ("AINT", "BUS", "TIM", "TIMER", "INT1", "INT2", "LAN", "EXT1", "EXT2")}
ELEMENTS = ("VOLT", "CURR", "RES", "TIME", "STAT", "SOUR")


@dataclass
class Trigger:
    """One trigger layer (transient or acquire) of a channel."""

    source: str = "AINT"
    timer: float = 1e-3
    count: int = 1
    delay: float = 0.0


@dataclass
class ChannelState:
    """Everything a B2900 channel holds beyond its :class:`SourceChannel`."""

    shape: str = "DC"
    mode: str = "FIX"
    triggered_v: float = 0.0
    list_v: list[float] = field(default_factory=list)
    start_v: float = 0.0
    stop_v: float = 0.0
    points: int = 1
    pulse_width: float = 1e-4
    pulse_delay: float = 0.0
    aperture: float = 0.1 / 50
    tran: Trigger = field(default_factory=Trigger)
    acq: Trigger = field(default_factory=Trigger)
    arm_count: int = 1
    sense: list[str] = field(default_factory=lambda: ["CURR"])
    currents: list[float] = field(default_factory=list)
    voltages: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    sources: list[float] = field(default_factory=list)
    ranges: dict[str, float] = field(default_factory=dict)


class KeysightB2900Emulator(ScpiInstrument):
    """An emulated B2900 (B2902A by default: two channels).

    Args:
        twin: the shared twin.
        wiring: the bench; ``None``: this SMU alone, its channels cabled to cell (0, 0).
        name: the instrument's name in the station.
        model: ``B2902A`` (two channels) or ``B2901A``, ``B2911A``... (one channel if it ends in 1A).
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
        names = ("1",) if self.model_name.endswith("1A") else ("1", "2")
        wiring = wiring or direct_wiring(twin, name, names)
        defaults = SourceDefaults(limit_i_A=1e-4, limit_v_V=2.0, nplc=1.0)
        self.channels = {int(c): SourceChannel(wiring, name, c, defaults) for c in names}
        self.state: dict[int, ChannelState] = {}
        self.line_frequency_Hz = 50.0
        self.elements = list(ELEMENTS)
        self.idn = f"Keysight Technologies,{self.model_name},MY51140001,3.4.2011.5100"
        super().__init__(wiring, host, port, latency_s, faults, on_message)

    def reset_state(self) -> None:
        for ch in self.channels.values():
            ch.reset()
        self.state = {c: ChannelState() for c in self.channels}
        self.elements = list(ELEMENTS)
        if hasattr(self, "scpi"):
            self.scpi.errors.clear()

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
        chans = channel_list(p[0]) if p else [1]
        for c in chans:
            if c not in self.channels:
                raise ScpiError(-114, f'"Header suffix out of range; channel {c}"')
        return chans

    @staticmethod
    def _one(p: list[str]) -> str:
        if not p:
            raise missing_parameter("")
        return p[0]

    def _prop(
        self, attr: str, parse: Callable[[str], Any], show: Callable[[Any], str] = fmt
    ) -> tuple[Any, Any]:
        def setter(p: list[str], x: list[int]) -> None:
            setattr(self.state[self._c(x)], attr, parse(self._one(p)))

        def getter(p: list[str], x: list[int]) -> str:
            return show(getattr(self.state[self._c(x)], attr))

        return setter, getter

    def _trig(self, layers: tuple[str, ...], attr: str, parse: Callable[[str], Any]) -> tuple[Any, Any]:
        def setter(p: list[str], x: list[int]) -> None:
            st = self.state[self._c(x)]
            for layer in layers:
                setattr(getattr(st, layer), attr, parse(self._one(p)))

        def getter(p: list[str], x: list[int]) -> str:
            value = getattr(getattr(self.state[self._c(x)], layers[0]), attr)
            return value if isinstance(value, str) else (str(value) if isinstance(value, int) else fmt(value))

        return setter, getter

    # ------------------------------------------------------------------ commands
    def declare(self) -> None:
        s = self.scpi
        chan = self.channels

        def ch(x: list[int]) -> SourceChannel:
            return chan[self._c(x)]

        s.add(
            ":SOURce#:FUNCtion:MODE",
            lambda p, x: ch(x).set_func(
                choice(self._one(p), {"VOLT": "VOLT", "VOLTAGE": "VOLT", "CURR": "CURR", "CURRENT": "CURR"})
            ),
            lambda p, x: ch(x).func,
        )
        s.add(":SOURce#:FUNCtion:SHAPe", *self._prop("shape", lambda t: choice(t, SHAPES), str))
        s.add(
            ":SOURce#:VOLTage[:LEVel][:IMMediate][:AMPLitude]",
            lambda p, x: ch(x).set_level_v(number(self._one(p), lo=-210, hi=210)),
            lambda p, x: fmt(ch(x).level_v),
        )
        s.add(
            ":SOURce#:VOLTage[:LEVel]:TRIGgered[:AMPLitude]",
            *self._prop("triggered_v", lambda t: number(t, lo=-210, hi=210)),
        )
        s.add(":SOURce#:VOLTage:MODE", *self._prop("mode", lambda t: choice(t, MODES), str))
        s.add(":SOURce#:VOLTage:RANGe[:UPPer]", lambda p, x: None, lambda p, x: fmt(20))
        s.add(":SOURce#:VOLTage:RANGe:AUTO", lambda p, x: None, lambda p, x: "1")
        s.add(":SOURce#:VOLTage:STARt", *self._prop("start_v", lambda t: number(t, lo=-210, hi=210)))
        s.add(":SOURce#:VOLTage:STOP", *self._prop("stop_v", lambda t: number(t, lo=-210, hi=210)))
        s.add(
            ":SOURce#:VOLTage:POINts", *self._prop("points", lambda t: int(number(t, lo=1, hi=100000)), str)
        )
        s.add(":SOURce#:SWEep:POINts", *self._prop("points", lambda t: int(number(t, lo=1, hi=100000)), str))
        s.add(
            ":SOURce#:LIST:VOLTage",
            self._set_list,
            lambda p, x: ",".join(fmt(v) for v in self.state[self._c(x)].list_v),
        )
        s.add(":SOURce#:LIST:VOLTage:POINts", None, lambda p, x: str(len(self.state[self._c(x)].list_v)))
        s.add(":SOURce#:PULSe:WIDTh", *self._prop("pulse_width", lambda t: number(t, lo=1e-5, hi=1e5)))
        s.add(":SOURce#:PULSe:DELay", *self._prop("pulse_delay", lambda t: number(t, lo=0, hi=1e5)))
        s.add(
            ":SOURce#:CURRent[:LEVel][:IMMediate][:AMPLitude]",
            lambda p, x: ch(x).set_level_i(number(self._one(p), lo=-3.03, hi=3.03)),
            lambda p, x: fmt(ch(x).level_i),
        )
        s.add(
            ":SENSe#:CURRent[:DC]:PROTection[:LEVel]",
            lambda p, x: ch(x).set_limit_i(number(self._one(p), lo=1e-12, hi=3.03)),
            lambda p, x: fmt(ch(x).limit_i),
        )
        s.add(
            ":SENSe#:CURRent[:DC]:PROTection:TRIPped", None, lambda p, x: "1" if ch(x).in_compliance else "0"
        )
        s.add(
            ":SENSe#:VOLTage[:DC]:PROTection[:LEVel]",
            lambda p, x: ch(x).set_limit_v(number(self._one(p), lo=0, hi=210)),
            lambda p, x: fmt(ch(x).limit_v),
        )
        s.add(
            ":SENSe#:FUNCtion[:ON]",
            self._set_sense,
            lambda p, x: ",".join(f'"{f}"' for f in self.state[self._c(x)].sense),
        )
        s.add(":SENSe#:FUNCtion:OFF[:ALL]", lambda p, x: None)
        s.add(":SENSe#:CURRent[:DC]:APERture", *self._prop("aperture", lambda t: number(t, lo=8e-6, hi=2)))
        s.add(":SENSe#:VOLTage[:DC]:APERture", *self._prop("aperture", lambda t: number(t, lo=8e-6, hi=2)))
        s.add(
            ":SENSe#:CURRent[:DC]:NPLCycles",
            self._set_nplc,
            lambda p, x: fmt(self.state[self._c(x)].aperture * self.line_frequency_Hz),
        )
        s.add(
            ":SENSe#:VOLTage[:DC]:NPLCycles",
            self._set_nplc,
            lambda p, x: fmt(self.state[self._c(x)].aperture * self.line_frequency_Hz),
        )
        for f in ("CURRent", "VOLTage"):
            s.add(f":SENSe#:{f}[:DC]:RANGe[:UPPer]", lambda p, x: None, lambda p, x: fmt(1e-3))
            s.add(f":SENSe#:{f}[:DC]:RANGe:AUTO", lambda p, x: None, lambda p, x: "1")
        s.add(":SENSe#:REMote", lambda p, x: None, lambda p, x: "0")
        s.add(
            ":OUTPut#[:STATe]",
            lambda p, x: ch(x).set_output(boolean(self._one(p))),
            lambda p, x: "1" if ch(x).output_on else "0",
        )
        s.add(":OUTPut#:OFF:MODE", lambda p, x: None, lambda p, x: "NORM")
        s.add(":MEASure[:CURRent][:DC]", None, lambda p, x: self._spot(p, "CURR"))
        s.add(":MEASure:VOLTage[:DC]", None, lambda p, x: self._spot(p, "VOLT"))
        s.add(":MEASure:RESistance", None, lambda p, x: self._spot(p, "RES"))
        s.add(":MEASure", None, lambda p, x: self._spot(p, None))
        s.add(":FORMat:ELEMents:SENSe", self._set_elements, lambda p, x: ",".join(self.elements))
        s.add(":FORMat[:DATA]", lambda p, x: None, lambda p, x: "ASC")
        for layers, node in ((("tran", "acq"), "[:ALL]"), (("tran",), ":TRANsient"), (("acq",), ":ACQuire")):
            s.add(
                f":TRIGger#{node}:SOURce[:SIGNal]",
                *self._trig(layers, "source", lambda t: choice(t, TRIGGER_SOURCES)),
            )
            s.add(
                f":TRIGger#{node}:TIMer", *self._trig(layers, "timer", lambda t: number(t, lo=1e-5, hi=1e5))
            )
            s.add(
                f":TRIGger#{node}:COUNt",
                *self._trig(layers, "count", lambda t: int(number(t, lo=1, hi=100000))),
            )
            s.add(f":TRIGger#{node}:DELay", *self._trig(layers, "delay", lambda t: number(t, lo=0, hi=1e5)))
        s.add(":ARM#[:ALL]:COUNt", *self._prop("arm_count", lambda t: int(number(t, lo=1, hi=100000)), str))
        s.add(":ARM#[:ALL]:SOURce[:SIGNal]", lambda p, x: None, lambda p, x: "AINT")
        s.add(":INITiate[:IMMediate][:ALL]", lambda p, x: self._initiate(p, True, True))
        s.add(":INITiate[:IMMediate]:TRANsient", lambda p, x: self._initiate(p, True, False))
        s.add(":INITiate[:IMMediate]:ACQuire", lambda p, x: self._initiate(p, False, True))
        s.add(":ABORt[:ALL]", lambda p, x: None)
        s.add(":FETCh:ARRay[:CURRent]", None, lambda p, x: self._fetch_array(p, "CURR"))
        s.add(":FETCh:ARRay:VOLTage", None, lambda p, x: self._fetch_array(p, "VOLT"))
        s.add(":FETCh:ARRay:TIME", None, lambda p, x: self._fetch_array(p, "TIME"))
        s.add(":FETCh:ARRay", None, lambda p, x: self._fetch_array(p, None))
        s.add(":FETCh[:SCALar]:CURRent", None, lambda p, x: self._fetch_array(p, "CURR", last=True))
        s.add(":FETCh[:SCALar]:VOLTage", None, lambda p, x: self._fetch_array(p, "VOLT", last=True))
        s.add(":READ:ARRay[:CURRent]", None, lambda p, x: self._read_array(p, "CURR"))
        s.add(":READ:ARRay:VOLTage", None, lambda p, x: self._read_array(p, "VOLT"))

    def _set_list(self, p: list[str], x: list[int]) -> None:
        if not p:
            raise missing_parameter(":SOUR:LIST:VOLT")
        self.state[self._c(x)].list_v = [number(v, lo=-210, hi=210) for v in p]

    def _set_sense(self, p: list[str], x: list[int]) -> None:
        funcs = [
            choice(v, {"CURR": "CURR", "CURR:DC": "CURR", "VOLT": "VOLT", "VOLT:DC": "VOLT", "RES": "RES"})
            for v in p
        ]
        if not funcs:
            raise missing_parameter(":SENS:FUNC")
        self.state[self._c(x)].sense = funcs

    def _set_nplc(self, p: list[str], x: list[int]) -> None:
        nplc = number(self._one(p), lo=4e-4, hi=100)
        self.state[self._c(x)].aperture = nplc / self.line_frequency_Hz
        self.channels[self._c(x)].nplc = nplc

    def _set_elements(self, p: list[str], x: list[int]) -> None:
        elems = [choice(v, {e: e for e in ELEMENTS}) for v in p]
        if not elems:
            raise missing_parameter(":FORM:ELEM:SENS")
        self.elements = elems

    # ------------------------------------------------------------------ measuring
    def _record(self, c: int) -> None:
        ch = self.channels[c]
        st = self.state[c]
        m = ch.measure()
        st.currents.append(m.current_A)
        st.voltages.append(m.voltage_V)
        st.times.append(self.wiring.now())
        st.statuses.append(8 if m.in_compliance else 0)
        st.sources.append(ch.level_v if ch.func == "VOLT" else ch.level_i)

    def _element(self, st: ChannelState, k: int, element: str) -> str:
        if element == "CURR":
            return fmt(st.currents[k])
        if element == "VOLT":
            return fmt(st.voltages[k])
        if element == "RES":
            i = st.currents[k]
            return fmt(st.voltages[k] / i if i else 9.9e37)
        if element == "TIME":
            return fmt(st.times[k] - st.times[0])
        if element == "STAT":
            return str(st.statuses[k])
        return fmt(st.sources[k])

    def _spot(self, p: list[str], element: str | None) -> str:
        out = []
        for c in self._chans(p):
            st = self.state[c]
            st.currents, st.voltages, st.times, st.statuses, st.sources = [], [], [], [], []
            self._record(c)
            elems = [element] if element else self.elements
            out += [self._element(st, 0, e) for e in elems]
        return ",".join(out)

    def _fetch_array(self, p: list[str], element: str | None, last: bool = False) -> str:
        out = []
        for c in self._chans(p):
            st = self.state[c]
            if not st.currents:
                raise ScpiError(-230, '"Data corrupt or stale"')
            indices = [len(st.currents) - 1] if last else range(len(st.currents))
            elems = [element] if element else self.elements
            out += [self._element(st, k, e) for k in indices for e in elems]
        return ",".join(out)

    def _read_array(self, p: list[str], element: str) -> str:
        self._initiate(p, True, True)
        return self._fetch_array(p, element)

    # ------------------------------------------------------------------ triggered runs
    def _level(self, st: ChannelState, k: int, ch: SourceChannel) -> float:
        if st.mode == "LIST":
            if not st.list_v:
                raise ScpiError(-221, '"Settings conflict; empty source list"')
            return st.list_v[k % len(st.list_v)]
        if st.mode == "SWE":
            n = max(st.points, 1)
            return st.start_v + (st.stop_v - st.start_v) * (k % n) / max(n - 1, 1)
        return st.triggered_v

    def _period(self, trig: Trigger, st: ChannelState, ch: SourceChannel) -> float:
        if trig.source == "TIM":
            return trig.timer
        # automatic: the next trigger as soon as the present action is done
        if st.shape == "PULS":
            return st.pulse_delay + st.pulse_width + 1e-5
        return st.aperture + 1e-5

    def _initiate(self, p: list[str], transient: bool, acquire: bool) -> None:
        for c in self._chans(p):
            self._run(c, transient, acquire)

    def _run(self, c: int, transient: bool, acquire: bool) -> None:
        ch = self.channels[c]
        st = self.state[c]
        if not ch.output_on:
            raise ScpiError(-221, '"Settings conflict; output is off"')
        if ch.func != "VOLT":
            raise ScpiError(-221, '"Settings conflict; this emulator triggers voltage sources only"')
        if acquire:
            st.currents, st.voltages, st.times, st.statuses, st.sources = [], [], [], [], []
        base = ch.level_v
        for _ in range(st.arm_count):
            events: list[tuple[float, int, str, float]] = []
            if transient:
                period = self._period(st.tran, st, ch)
                for k in range(st.tran.count):
                    t = st.tran.delay + k * period
                    level = self._level(st, k, ch)
                    if st.shape == "PULS":
                        events.append((t + st.pulse_delay, 1, "peak", level))
                        events.append((t + st.pulse_delay + st.pulse_width, 0, "base", base))
                    else:
                        events.append((t, 1, "level", level))
            if acquire:
                period = self._period(st.acq, st, ch)
                events += [(st.acq.delay + j * period, 2, "measure", 0.0) for j in range(st.acq.count)]
            events.sort(key=lambda e: (e[0], e[1]))
            now = 0.0
            for t, _, kind, level in events:
                if t > now:
                    ch.hold(t - now)
                    now = t
                if kind == "measure":
                    self._record(c)
                else:
                    ch.set_level_v(level)
        if st.shape == "PULS":
            ch.set_level_v(base)
