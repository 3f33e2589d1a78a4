"""Emulated Keithley 2450 SourceMeter (native SCPI command set), wired to the twin.

Follows the Keithley 2450 Reference Manual (2450-901-01 Rev. B, September 2013; section 6 "SCPI
command reference"; page numbers below are that revision's, given where they were checked). Every setting reads back what was
set, or is refused with an error in the queue; a command not implemented here answers -113
"Undefined header". Optional roots (``[:SENSe[1]]``, ``:SOURce[1]``), short and long forms and
any letter case are accepted, as the manual's syntax has them.

* **Source**: ``:SOUR:FUNC VOLT|CURR``; ``:SOUR:<f>[:LEV][:IMM][:AMPL]``;
  limits ``:SOUR:VOLT:ILIM`` (1 nA to 1.05 A), ``:SOUR:CURR:VLIM`` (20 mV to 210 V) and their
  ``:TRIP?``; ``:SOUR:<f>:RANG`` (2450 ranges: 20 mV to 200 V, 10 nA to 1 A; a value selects
  the smallest range that holds it) and ``:RANG:AUTO``; ``:DEL``, ``:DEL:AUTO``,
  ``:DEL:USER<n>``; ``:READ:BACK``; ``:SOUR:VOLT:PROT`` and ``:PROT:TRIP?``; output
  ``:OUTP[:STAT]``, ``:OUTP[:<f>]:SMOD``; ``:ROUT:TERM``.
* **Measure** (ranges 6-50 to 6-52): ``[:SENS]:FUNC``; per function ``:RANG`` (10 nA to 1 A, 20 mV to
  200 V, 20 ohm to 200 Mohm), ``:RANG:AUTO``, ``:RANG:AUTO:LLIM``, ``:NPLC`` (0.01 to 10),
  ``:AZER``, ``:AVER``, ``:AVER:TCON``, ``:AVER:COUN``, ``:RSEN``, ``:DEL:USER<n>``,
  ``:RES:OCOM``; ``:SENS:COUN``; ``:SENS:AZER:ONCE``; ``:READ?``, ``:MEAS[:<f>]?`` (without a
  function: the present one, unchanged), ``:FETC?``, with buffer name and elements.
* **Buffers** (6-107 to 6-123): ``:TRAC:MAKE`` (``"name", size[, style]``), ``:TRAC:DEL``,
  ``:TRAC:CLE``, ``:TRAC:POIN`` (a new capacity clears the buffer), ``:TRAC:FILL:MODE``,
  ``:TRAC:ACT[:STAR|:END]?``, ``:TRAC:DATA?`` with every element of the table on 6-109,
  ``:TRAC:TRIG``, statistics ``:TRAC:STAT:AVER|MAX|MIN|PK2P|STDD?`` and ``:TRAC:STAT:CLE``
  (over every reading added since the last clear, overwritten ones included).
* **Data format**: ``:FORM[:DATA] ASC|REAL|SRE`` (binary: an IEEE 488.2
  definite-length block of 64- or 32-bit floats, elements READ, REL, SOUR only),
  ``:FORM:BORD NORM|SWAP`` (default SWAP, little-endian), ``:FORM:ASC:PREC`` (0: automatic).
* **Sweeps and lists** (6-78 to 6-85): ``:SOUR:LIST:<f>`` and ``:APP``; ``:SOUR:SWE:<f>:LIN``,
  ``:LIN:STEP``, ``:LOG`` and ``:LIST`` with every optional argument: delay -1 (the default)
  is autodelay, count 0 is refused (an infinite loop would never end here), range type
  AUTO/BEST/FIXED, fail-abort (accepted and checked, not acted on: see below), dual
  (start to stop, then stop to start: twice the points), buffer; source configuration lists
  (``:SOUR:CONF:LIST:CRE|STOR|REC|DEL|SIZE?``).
* **Trigger model**: ``:TRIG:LOAD "Empty"`` and ``"SimpleLoop"``; blocks
  ``BUFF:CLE``, ``CONF:REC``, ``CONF:NEXT``, ``CONF:PREV``, ``SOUR:STAT``, ``DEL:CONS``,
  ``MEAS``, ``BRAN:COUN``, ``BRAN:ALW``, ``BRAN:ONCE``, ``WAIT``, ``NOP``; ``:INIT`` runs it to
  completion, ``:ABOR``, ``:TRIG:STAT?``.
* **Status and system**: the IEEE 488.2 common commands and registers of
  :class:`~sim_backend.emulators.scpi_instrument.ScpiInstrument`, ``*LANG``, ``:STAT:CLE``,
  ``:SYST:ERR[:NEXT]?``, ``:SYST:ERR:COUN?``, ``:SYST:ERR:CODE?``, ``:SYST:CLE``,
  ``:SYST:BEEP``, ``:SYST:LFR?``.

What is not modelled: the source delay and autodelay hold no bench time outside a sweep (a
pulse is exactly its delay block, as the project's driver relies on); autodelay in a sweep is
:data:`AUTODELAY_S`; a trigger-model wait passes at once (events are not modelled); averaging
filters, offset compensation and remote sensing are kept as settings, the readings do not
change with them. A sweep's fail-abort (default ON: stop when the source limit is reached,
6-81) does not stop the sweep here: this project's driver (``drivers/keithley2450.py``
``voltage_sweep``) sends its list sweep with the default and reads every point, also into
compliance, and its backend tests rely on that. The 2450 has no pulse mode: pulses are trigger-model level changes held by a
delay block.
"""

from __future__ import annotations

import copy
import math
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sim_backend.emulators.scpi import (
    Handler,
    ScpiError,
    boolean,
    choice,
    illegal_value,
    missing_parameter,
    number,
    out_of_range,
    settings_conflict,
    string,
    undefined_header,
)
from sim_backend.emulators.scpi_instrument import ScpiInstrument
from sim_backend.emulators.scpi_server import Fault
from sim_backend.emulators.smu_channel import SourceChannel, SourceDefaults
from sim_backend.emulators.wiring import Wiring
from sim_backend.twin import TwinBackend

FUNCS = {"VOLT": "VOLT", "VOLTAGE": "VOLT", "CURR": "CURR", "CURRENT": "CURR"}
SENSE_FUNCS = {
    "CURR": "CURR", "CURR:DC": "CURR", "CURRENT": "CURR", "CURRENT:DC": "CURR",
    "VOLT": "VOLT", "VOLT:DC": "VOLT", "VOLTAGE": "VOLT", "VOLTAGE:DC": "VOLT",
    "RES": "RES", "RESISTANCE": "RES",
}  # fmt: skip
MAX_TRIGGER_STEPS = 5_000_000

#: 2450 ranges (Reference Manual 6-50 and the :SOURce[1]:<function>:RANGe entry; the 2460/2461 have others)
RANGES: dict[str, tuple[float, ...]] = {
    "VOLT": (0.02, 0.2, 2.0, 20.0, 200.0),
    "CURR": (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0),
    "RES": (20.0, 200.0, 2e3, 2e4, 2e5, 2e6, 2e7, 2e8),
}
#: source limits of the 2450: levels and the limits of the other quantity
SOURCE_MAX = {"VOLT": 210.0, "CURR": 1.05}
#: autodelay used by sweeps (the instrument's depends on the range; Reference Manual "Autodelay")
AUTODELAY_S = 1e-3
#: the overflow reading (9.9E+37) and "not a number" of a statistic of an empty buffer
OVERFLOW = 9.9e37
NAN_READING = 9.91e37
DEFAULT_BUFFERS = ("defbuffer1", "defbuffer2")
#: "Default buffers can store 10000 measurements initially" (Reference Manual 6-115)
DEFAULT_CAPACITY = 10_000
UNITS = {"CURR": "Amp DC", "VOLT": "Volt DC", "RES": "Ohm"}
SOURCE_UNITS = {"VOLT": "Volt DC", "CURR": "Amp DC"}
PROTECTION = ("PROT2", "PROT5", "PROT10", "PROT20", "PROT40", "PROT60", "PROT80", "PROT100",
              "PROT120", "PROT140", "PROT160", "PROT180", "NONE")  # fmt: skip
#: the wall-clock time the bench clock's zero stands for (buffer time stamps)
EPOCH = time.time()


@dataclass
class Reading:
    value: float
    source: float
    t: float
    status: int = 0
    func: str = "CURR"
    source_func: str = "VOLT"


@dataclass
class Buffer:
    """A reading buffer (Reference Manual 3-10 "Reading buffers")."""

    capacity: int
    fill: str = "CONT"
    style: str = "STAN"
    readings: list[Reading] = field(default_factory=list)
    stats: list[float] = field(default_factory=list)  # n, sum, sum of squares, min, max

    def add(self, reading: Reading) -> None:
        if len(self.readings) >= self.capacity:
            if self.fill == "ONCE":
                return
            del self.readings[0]
        self.readings.append(reading)
        v = reading.value
        if not self.stats:
            self.stats = [0.0, 0.0, 0.0, v, v]
        st = self.stats
        st[0] += 1
        st[1] += v
        st[2] += v * v
        st[3] = min(st[3], v)
        st[4] = max(st[4], v)

    def clear(self) -> None:
        self.readings.clear()
        self.stats = []


@dataclass
class SourceConfig:
    func: str
    level_v: float
    level_i: float
    limit_i: float
    limit_v: float


@dataclass
class TriggerRun:
    counters: dict[int, int] = field(default_factory=dict)
    list_index: dict[str, int] = field(default_factory=dict)
    once: set[int] = field(default_factory=set)


def _defaults() -> dict[str, Any]:
    """``*RST`` values of the settings kept as plain values (Reference Manual, each command's
    "Default value")."""
    d: dict[str, Any] = {"count": 1, "terminals": "FRON", "vprot": "NONE", "language": "SCPI"}
    for f in ("VOLT", "CURR"):
        d[f"SOUR:{f}:AUTO"] = True
        d[f"SOUR:{f}:DEL"] = 0.0
        d[f"SOUR:{f}:DEL:AUTO"] = True
        d[f"SOUR:{f}:READ:BACK"] = True
        d[f"OUTP:{f}:SMOD"] = "NORM"
        for n in range(1, 6):
            d[f"SOUR:{f}:DEL:USER{n}"] = 0.0
    for f in ("CURR", "VOLT", "RES"):
        d[f"{f}:AUTO"] = True
        d[f"{f}:LLIM"] = RANGES[f][0]
        d[f"{f}:NPLC"] = 1.0
        d[f"{f}:AZER"] = True
        d[f"{f}:AVER"] = False
        d[f"{f}:TCON"] = "REP"
        d[f"{f}:AVER:COUN"] = 10
        d[f"{f}:RSEN"] = False
        for n in range(1, 6):
            d[f"{f}:DEL:USER{n}"] = 0.0
    d["RES:OCOM"] = "OFF"
    d["RES:RSEN"] = True  # resistance measures 4-wire by default
    d["FORM:DATA"] = "ASC"
    d["FORM:BORD"] = "SWAP"
    d["FORM:PREC"] = 0
    return d


def _range_for(func: str, value: float) -> float:
    """The smallest 2450 range of ``func`` that holds ``value`` (5 % over-range)."""
    for r in RANGES[func]:
        if abs(value) <= 1.05 * r:
            return r
    return RANGES[func][-1]


class Keithley2450Emulator(ScpiInstrument):
    """An emulated 2450 whose output reaches the twin through ``wiring``.

    Args:
        twin: the shared twin.
        wiring: the bench; ``None``: this SMU alone, cabled straight to cell (0, 0) of the
            twin's first array.
        name: the instrument's name in the station.
        host, port, latency_s, faults, on_message: see :class:`InstrumentServer`.
    """

    model = "keithley2450"
    #: per-message latency (one SCPI message with a 0.1 NPLC reading: about 2 ms)
    default_latency_s = 2e-3
    idn = "KEITHLEY INSTRUMENTS,MODEL 2450,04512345,1.7.12b"

    def __init__(
        self,
        twin: TwinBackend,
        *,
        wiring: Wiring | None = None,
        name: str = "smu",
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float | None = None,
        faults: Iterable[Fault] = (),
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        from sim_backend.emulators.keithley2600 import direct_wiring

        self.twin = twin
        self.name = name
        wiring = wiring or direct_wiring(twin, name, ("1",))
        self.ch = SourceChannel(
            wiring, name, "1", SourceDefaults(limit_i_A=1.05e-4, limit_v_V=21.0, nplc=1.0)
        )
        super().__init__(wiring, host, port, latency_s, faults, on_message)

    # ------------------------------------------------------------------ state
    def reset_state(self) -> None:
        """``*RST`` (Reference Manual, ``*RST``): settings to their defaults, user buffers deleted,
        default buffers cleared; the status registers and the error queue are kept."""
        self.ch.reset()
        self.sense = "CURR"
        self.settings: dict[str, Any] = _defaults()
        self.ranges: dict[str, float] = {
            "SOUR:VOLT": 0.02, "SOUR:CURR": 1e-8, "CURR": 1e-4, "VOLT": 0.02, "RES": 2e5,
        }  # fmt: skip
        self.buffers: dict[str, Buffer] = {b: Buffer(DEFAULT_CAPACITY) for b in DEFAULT_BUFFERS}
        self.config_lists: dict[str, list[SourceConfig]] = {}
        self.source_list: dict[str, list[float]] = {"VOLT": [], "CURR": []}
        self.blocks: dict[int, tuple[str, tuple[Any, ...]]] = {}
        self.fail_abort = False
        self.last_block = 0
        self.vprot_tripped = False

    def outputs(self) -> dict[str, bool]:
        """Output state (for tests)."""
        return {"1": self.ch.output_on}

    # ------------------------------------------------------------------ commands
    def declare(self) -> None:
        s = self.scpi
        ch = self.ch
        s.add_common("*LANG", self._set_language)
        s.add_common("*LANG?", lambda p, x: str(self.settings["language"]))
        s.add(":SYSTem:BEEPer[:IMMediate]", self._beep)
        s.add(":SYSTem:LFRequency", None, lambda p, x: "60")
        s.add(":SYSTem:ERRor:COUNt", None, lambda p, x: str(len(s.errors)))
        s.add(":SYSTem:ERRor:CODE[:NEXT]", None, lambda p, x: str(s.next_error()[0]))
        s.add(":STATus:CLEar", lambda p, x: s.clear_status())
        s.add(
            ":ROUTe:TERMinals",
            *self._setting("terminals", _choice({"FRON": "FRON", "FRONT": "FRON", "REAR": "REAR"})),
        )
        s.add(
            ":OUTPut[1][:STATe]", lambda p, x: ch.set_output(boolean(_one(p))), lambda p, x: _b(ch.output_on)
        )
        modes = {"HIMP": "HIMP", "HIMPEDANCE": "HIMP", "NORM": "NORM", "NORMAL": "NORM",
                 "ZERO": "ZERO", "GUAR": "GUAR", "GUARD": "GUAR"}  # fmt: skip
        for f, long in (("VOLT", "VOLTage"), ("CURR", "CURRent")):
            s.add(f":OUTPut[1]:{long}:SMODe", *self._setting(f"OUTP:{f}:SMOD", _choice(modes)))
        # RM 6-32 :OUTPut[1]:<function>:SMODe: "If you send this command without the <function>
        # parameter, it will set the output-off state for all functions" (the form RM 2-84
        # "Setting the output-off state" sends); the query names a function.
        s.add(":OUTPut[1]:SMODe", lambda p, x: self._set_all_smodes(choice(_only(p), modes)))
        s.add(
            ":SOURce[1]:FUNCtion[:MODE]",
            lambda p, x: self._set_source_function(choice(_one(p), FUNCS)),
            lambda p, x: ch.func,
        )
        self._declare_source("VOLT", "VOLTage", "ILIMit")
        self._declare_source("CURR", "CURRent", "VLIMit")
        s.add(
            ":SOURce[1]:VOLTage:PROTection[:LEVel]",
            *self._setting("vprot", _choice({k: k for k in PROTECTION})),
        )
        s.add(":SOURce[1]:VOLTage:PROTection:TRIPped", None, lambda p, x: _b(self.vprot_tripped))
        # lists, sweeps and configuration lists
        for f, long in (("VOLT", "VOLTage"), ("CURR", "CURRent")):
            s.add(f":SOURce[1]:LIST:{long}", self._source_list(f, False), self._source_list_query(f))
            s.add(f":SOURce[1]:LIST:{long}:APPend", self._source_list(f, True))
            s.add(f":SOURce[1]:SWEep:{long}:LINear", self._sweep_handler(f, "LIN"))
            s.add(f":SOURce[1]:SWEep:{long}:LINear:STEP", self._sweep_handler(f, "STEP"))
            s.add(f":SOURce[1]:SWEep:{long}:LOG", self._sweep_handler(f, "LOG"))
            s.add(f":SOURce[1]:SWEep:{long}:LIST", self._sweep_handler(f, "LIST"))
        s.add(":SOURce[1]:CONFiguration:LIST:CREate", lambda p, x: self._conf_create(p))
        s.add(":SOURce[1]:CONFiguration:LIST:STORe", lambda p, x: self._conf_store(p))
        s.add(
            ":SOURce[1]:CONFiguration:LIST:RECall",
            lambda p, x: self._conf_recall(string(_one(p)), int(number(p[1])) if len(p) > 1 else 1),
        )
        s.add(":SOURce[1]:CONFiguration:LIST:DELete", lambda p, x: self._conf_delete(p))
        s.add(":SOURce[1]:CONFiguration:LIST:SIZE", None, lambda p, x: str(len(self._conf(string(_one(p))))))
        # sense
        s.add("[:SENSe[1]]:FUNCtion[:ON]", lambda p, x: self._set_sense(p), lambda p, x: self._sense_name())
        for f, long in (("CURR", "CURRent[:DC]"), ("VOLT", "VOLTage[:DC]"), ("RES", "RESistance")):
            root = f"[:SENSe[1]]:{long}"
            s.add(f"{root}:RANGe[:UPPer]", self._range_setter(f), self._range_query(f))
            s.add(f"{root}:RANGe:AUTO", *self._setting(f"{f}:AUTO", _bool))
            s.add(f"{root}:RANGe:AUTO:LLIMit", *self._setting(f"{f}:LLIM", _range_value(f), _fmt))
            s.add(f"{root}:NPLCycles", *self._setting(f"{f}:NPLC", _num(0.01, 10), _fmt))
            s.add(f"{root}:AZERo[:STATe]", *self._setting(f"{f}:AZER", _bool))
            s.add(f"{root}:AVERage[:STATe]", *self._setting(f"{f}:AVER", _bool))
            s.add(
                f"{root}:AVERage:TCONtrol",
                *self._setting(
                    f"{f}:TCON", _choice({"REP": "REP", "REPEAT": "REP", "MOV": "MOV", "MOVING": "MOV"})
                ),
            )
            s.add(f"{root}:AVERage:COUNt", *self._setting(f"{f}:AVER:COUN", _int(1, 100)))
            s.add(f"{root}:RSENse", *self._setting(f"{f}:RSEN", _bool))
            s.add(f"{root}:DELay:USER#", *self._user_delay(f))
        s.add(
            "[:SENSe[1]]:RESistance:OCOMpensated",
            *self._setting(
                "RES:OCOM", _choice({"OFF": "OFF", "0": "OFF", "ON": "ON", "1": "ON", "AUTO": "AUTO"})
            ),
        )
        s.add("[:SENSe[1]]:AZERo:ONCE", lambda p, x: None)
        s.add("[:SENSe[1]]:COUNt", *self._setting("count", _int(1, 300000)))
        s.add(":READ", None, lambda p, x: self._read(p))
        s.add(":MEASure", None, lambda p, x: self._measure(None, p))
        s.add(":MEASure:CURRent[:DC]", None, lambda p, x: self._measure("CURR", p))
        s.add(":MEASure:VOLTage[:DC]", None, lambda p, x: self._measure("VOLT", p))
        s.add(":MEASure:RESistance", None, lambda p, x: self._measure("RES", p))
        s.add(":FETCh", None, lambda p, x: self._fetch(p))
        # buffers
        s.add(":TRACe:MAKE", lambda p, x: self._make_buffer(p))
        s.add(":TRACe:DELete", lambda p, x: self._delete_buffer(_one(p)))
        s.add(":TRACe:CLEar", lambda p, x: self._buffer(_opt(p, 0)).clear())
        s.add(
            ":TRACe:POINts",
            lambda p, x: self._set_points(p),
            lambda p, x: str(self._buffer(_opt(p, 0)).capacity),
        )
        s.add(":TRACe:FILL:MODE", lambda p, x: self._set_fill(p), lambda p, x: self._buffer(_opt(p, 0)).fill)
        s.add(":TRACe:ACTual", None, lambda p, x: str(len(self._buffer(_opt(p, 0)).readings)))
        s.add(":TRACe:ACTual:END", None, lambda p, x: str(len(self._buffer(_opt(p, 0)).readings)))
        s.add(":TRACe:ACTual:STARt", None, lambda p, x: "1" if self._buffer(_opt(p, 0)).readings else "0")
        s.add(":TRACe:DATA", None, lambda p, x: self._trace_data(p))
        s.add(":TRACe:TRIGger", lambda p, x: self._trace_trigger(p))
        for stat in ("AVERage", "MAXimum", "MINimum", "PK2Pk", "STDDev"):
            s.add(f":TRACe:STATistics:{stat}", None, self._statistic(stat[:3].upper()))
        s.add(":TRACe:STATistics:CLEar", lambda p, x: setattr(self._buffer(_opt(p, 0)), "stats", []))
        # data format
        s.add(
            ":FORMat[:DATA]",
            *self._setting(
                "FORM:DATA",
                _choice({"ASC": "ASC", "ASCII": "ASC", "REAL": "REAL", "SRE": "SRE", "SREAL": "SRE"}),
            ),
        )
        s.add(
            ":FORMat:BORDer",
            *self._setting(
                "FORM:BORD", _choice({"NORM": "NORM", "NORMAL": "NORM", "SWAP": "SWAP", "SWAPPED": "SWAP"})
            ),
        )
        s.add(":FORMat:ASCii:PRECision", *self._setting("FORM:PREC", _int(0, 16)))
        # trigger model
        s.add(":TRIGger:LOAD", lambda p, x: self._trigger_load(p))
        s.add(":TRIGger:BLOCk:BUFFer:CLEar", self._block_handler("BUFF:CLE", 0, 1))
        s.add(":TRIGger:BLOCk:CONFig:RECall", self._block_handler("CONF:REC", 1, 2))
        s.add(":TRIGger:BLOCk:CONFig:NEXT", self._block_handler("CONF:NEXT", 1, 1))
        s.add(":TRIGger:BLOCk:CONFig:PREVious", self._block_handler("CONF:PREV", 1, 1))
        s.add(":TRIGger:BLOCk:SOURce:STATe", self._block_handler("SOUR:STAT", 1, 1))
        s.add(":TRIGger:BLOCk:DELay:CONStant", self._block_handler("DEL:CONS", 1, 1))
        s.add(":TRIGger:BLOCk:MEASure", self._block_handler("MEAS", 0, 2))
        s.add(":TRIGger:BLOCk:BRANch:COUNter", self._block_handler("BRAN:COUN", 2, 2))
        s.add(":TRIGger:BLOCk:BRANch:ALWays", self._block_handler("BRAN:ALW", 1, 1))
        s.add(":TRIGger:BLOCk:BRANch:ONCE", self._block_handler("BRAN:ONCE", 1, 1))
        s.add(":TRIGger:BLOCk:WAIT", self._block_handler("WAIT", 1, 8))
        s.add(":TRIGger:BLOCk:NOP", self._block_handler("NOP", 0, 0))
        s.add(":TRIGger:STATe", None, lambda p, x: f"IDLE;IDLE;{self.last_block}")
        s.add(":INITiate[:IMMediate]", lambda p, x: self._run_trigger_model())
        s.add(":ABORt", lambda p, x: None)

    def _declare_source(self, f: str, long: str, limit: str) -> None:
        s = self.scpi
        ch = self.ch
        root = f":SOURce[1]:{long}"
        s.add(
            f"{root}[:LEVel][:IMMediate][:AMPLitude]",
            self._level_setter(f),
            lambda p, x: _fmt(self._level(f)),
        )
        other = "limit_i" if f == "VOLT" else "limit_v"
        lo, hi = (1e-9, 1.05) if f == "VOLT" else (0.02, 210.0)
        s.add(f"{root}:{limit}[:LEVel]", self._limit_setter(f, lo, hi), lambda p, x: _fmt(getattr(ch, other)))
        s.add(f"{root}:{limit}[:LEVel]:TRIPped", None, lambda p, x: _b(ch.in_compliance and ch.func == f))
        s.add(f"{root}:RANGe", self._source_range_setter(f), lambda p, x: _fmt(self.ranges[f"SOUR:{f}"]))
        s.add(f"{root}:RANGe:AUTO", *self._setting(f"SOUR:{f}:AUTO", _bool))
        s.add(f"{root}:DELay", self._delay_setter(f), lambda p, x: _fmt(self.settings[f"SOUR:{f}:DEL"]))
        s.add(f"{root}:DELay:AUTO", *self._setting(f"SOUR:{f}:DEL:AUTO", _bool))
        s.add(f"{root}:DELay:USER#", *self._user_delay(f"SOUR:{f}"))
        s.add(f"{root}:READ:BACK", *self._setting(f"SOUR:{f}:READ:BACK", _bool))

    # ------------------------------------------------------------------ setting helpers
    def _set_all_smodes(self, mode: str) -> None:
        for f in ("VOLT", "CURR"):
            self.settings[f"OUTP:{f}:SMOD"] = mode

    def _setting(
        self, key: str, parse: Callable[[str], Any], show: Callable[[Any], str] | None = None
    ) -> tuple[Handler, Handler]:
        """Setter and query of a plain setting in :attr:`settings`."""
        shown = show or _show

        def setter(p: list[str], x: list[int]) -> None:
            self.settings[key] = parse(_only(p))

        return setter, lambda p, x: shown(self.settings[key])

    def _user_delay(self, prefix: str) -> tuple[Handler, Handler]:
        """``...:DELay:USER<n>`` (n = 1 to 5; Reference Manual, the ``:DELay:USER<n>`` entries)."""

        def key(x: list[int]) -> str:
            if not x or not 1 <= x[0] <= 5:
                raise undefined_header(f"{prefix}:DELay:USER{x[0] if x else ''}")
            return f"{prefix}:DEL:USER{x[0]}"

        def setter(p: list[str], x: list[int]) -> None:
            self.settings[key(x)] = number(_only(p), default=0, lo=0, hi=1e4)

        return setter, lambda p, x: _fmt(self.settings[key(x)])

    def _set_language(self, p: list[str], x: list[int]) -> None:
        """``*LANG`` (Reference Manual, ``*LANG``): this emulator speaks the SCPI command set only."""
        lang = string(_only(p)).upper()
        if lang not in ("SCPI", "TSP", "SCPI2400"):
            raise illegal_value(f"*LANG {p[0]}")
        if lang != "SCPI":
            raise settings_conflict(f"*LANG {lang}: this emulator has the SCPI command set only")
        self.settings["language"] = lang

    def _beep(self, p: list[str], x: list[int]) -> None:
        """``:SYSTem:BEEPer`` <frequency 20 to 8000 Hz>, <duration 0.001 to 100 s>."""
        if len(p) != 2:
            raise missing_parameter(":SYST:BEEP")
        number(p[0], lo=20, hi=8000)
        number(p[1], lo=0.001, hi=100)

    def _set_source_function(self, func: str) -> None:
        self.ch.set_func(func)

    def _level(self, f: str) -> float:
        return self.ch.level_v if f == "VOLT" else self.ch.level_i

    def _level_setter(self, f: str) -> Handler:
        def setter(p: list[str], x: list[int]) -> None:
            top = SOURCE_MAX[f]
            value = number(_only(p), default=0, lo=-top, hi=top)
            if f == "VOLT":
                self.ch.set_level_v(value)
            else:
                self.ch.set_level_i(value)
            if self.settings[f"SOUR:{f}:AUTO"]:
                self.ranges[f"SOUR:{f}"] = _range_for(f, value)

        return setter

    def _limit_setter(self, f: str, lo: float, hi: float) -> Handler:
        def setter(p: list[str], x: list[int]) -> None:
            value = number(_only(p), default=1.05e-4 if f == "VOLT" else 21.0, lo=lo, hi=hi)
            if f == "VOLT":
                self.ch.set_limit_i(value)
            else:
                self.ch.set_limit_v(value)

        return setter

    def _source_range_setter(self, f: str) -> Handler:
        """``:SOUR:<f>:RANG``: the range that holds the value; autorange off."""

        def setter(p: list[str], x: list[int]) -> None:
            top = RANGES[f][-1]
            value = number(_only(p), default=top, lo=-1.05 * top, hi=1.05 * top)
            self.ranges[f"SOUR:{f}"] = _range_for(f, value)
            self.settings[f"SOUR:{f}:AUTO"] = False

        return setter

    def _range_setter(self, f: str) -> Handler:
        """``[:SENS]:<f>:RANG``: the range that holds the value; autorange off (6-50)."""

        def setter(p: list[str], x: list[int]) -> None:
            self.ranges[f] = _range_value(f)(_only(p))
            self.settings[f"{f}:AUTO"] = False

        return setter

    def _range_query(self, key: str) -> Handler:
        return lambda p, x: _fmt(self.ranges[key])

    def _delay_setter(self, f: str) -> Handler:
        """``:SOUR:<f>:DEL`` (0 to 10 ks); setting a delay turns autodelay off."""

        def setter(p: list[str], x: list[int]) -> None:
            self.settings[f"SOUR:{f}:DEL"] = number(_only(p), default=0, lo=0, hi=1e4)
            self.settings[f"SOUR:{f}:DEL:AUTO"] = False

        return setter

    def _set_sense(self, p: list[str]) -> None:
        self.sense = choice(_only(p), SENSE_FUNCS)
        self.ch.nplc = self.settings[f"{self.sense}:NPLC"]

    def _sense_name(self) -> str:
        return f'"{self.sense}:DC"' if self.sense != "RES" else '"RES"'

    # ------------------------------------------------------------------ buffers
    def _make_buffer(self, p: list[str]) -> None:
        """``:TRACe:MAKE "<name>", <size>[, <style>]`` (6-114): size at least 10; an existing
        name is refused with event 1115 (the code the 2461 and 2470 manuals' :TRACe:MAKE entries
        give); a user buffer fills once."""
        if len(p) < 2:
            raise missing_parameter(":TRACe:MAKE")
        name = string(p[0])
        if not name or len(name) > 31:
            raise illegal_value(f"buffer name {p[0]}")
        if name in self.buffers:
            raise ScpiError(1115, '"Parameter error: TRACe:MAKE cannot take an existing reading buffer name"')
        size = int(number(p[1], lo=10, hi=6_875_000))
        style = "STAN"
        if len(p) > 2 and p[2].strip():
            style = choice(p[2], {"STAN": "STAN", "STANDARD": "STAN", "COMP": "COMP", "COMPACT": "COMP",
                                  "FULL": "FULL", "WRIT": "WRIT", "WRITABLE": "WRIT",
                                  "FULLWRIT": "FULLWRIT", "FULLWRITABLE": "FULLWRIT"})  # fmt: skip
        self.buffers[name] = Buffer(size, fill="ONCE", style=style)

    def _delete_buffer(self, name: str) -> None:
        """``:TRAC:DEL``: drop a user buffer (absent: nothing happens); the default buffers
        cannot be deleted (6-111)."""
        key = string(name)
        if key in DEFAULT_BUFFERS:
            raise illegal_value(f"{key} is a default buffer and cannot be deleted")
        self.buffers.pop(key, None)

    def _buffer(self, name: str | None) -> Buffer:
        key = string(name) if name else "defbuffer1"
        if key not in self.buffers:
            raise illegal_value(f"buffer {name} does not exist")
        return self.buffers[key]

    def _set_points(self, p: list[str]) -> None:
        """``:TRAC:POIN <size>[, "<name>"]``: a new capacity clears the buffer (6-115)."""
        buf = self._buffer(_opt(p, 1))
        size = int(number(_one(p), lo=1, hi=6_875_000))
        buf.capacity = size
        buf.clear()

    def _trace_trigger(self, p: list[str]) -> None:
        """``:TRAC:TRIG ["<name>"]``: readings of the present function into a buffer."""
        self._store(_opt(p, 0))

    def _set_fill(self, p: list[str]) -> None:
        buf = self._buffer(_opt(p, 1))
        buf.fill = choice(_one(p), {"CONT": "CONT", "CONTINUOUS": "CONT", "ONCE": "ONCE"})

    def _statistic(self, kind: str) -> Handler:
        """``:TRAC:STAT:<kind>? ["<name>"]`` (6-119 to 6-123): over every reading added since
        the buffer (or its statistics) was last cleared; 9.91E+37 while undefined."""

        def query(p: list[str], x: list[int]) -> str:
            st = self._buffer(_opt(p, 0)).stats
            if not st:
                return _fmt(NAN_READING)
            n, total, squares, lo, hi = st
            if kind == "AVE":
                return _fmt(total / n)
            if kind == "MAX":
                return _fmt(hi)
            if kind == "MIN":
                return _fmt(lo)
            if kind == "PK2":
                return _fmt(hi - lo)
            if n < 2:
                return _fmt(NAN_READING)
            var = max((squares - total * total / n) / (n - 1), 0.0)
            return _fmt(math.sqrt(var))

        return query

    # ------------------------------------------------------------------ measuring
    def _sample(self) -> tuple[float, float]:
        """One measurement of the sense function: (reading, source value)."""
        m = self.ch.measure()
        if self.sense == "CURR":
            value = m.current_A
        elif self.sense == "VOLT":
            value = m.voltage_V
        else:
            value = m.voltage_V / m.current_A if m.current_A else OVERFLOW
        if self.settings[f"{self.sense}:AUTO"]:
            self.ranges[self.sense] = max(_range_for(self.sense, value), self.settings[f"{self.sense}:LLIM"])
        elif self.sense != "RES" and abs(value) > 1.05 * self.ranges[self.sense]:
            value = OVERFLOW
        f = self.ch.func
        readback = self.settings[f"SOUR:{f}:READ:BACK"] and self.ch.output_on
        if f == "VOLT":
            source = m.voltage_V if readback else self.ch.level_v
        else:
            source = m.current_A if readback else self.ch.level_i
        return value, source

    def _store(self, buffer: str | None, count: int | None = None) -> list[Reading]:
        buf = self._buffer(buffer)
        taken = []
        for _ in range(count or self.settings["count"]):
            value, source = self._sample()
            status = 8 if self.ch.in_compliance else 0
            reading = Reading(value, source, self.wiring.now(), status, self.sense, self.ch.func)
            buf.add(reading)
            taken.append(reading)
        return taken

    def _format(self, readings: list[Reading], elements: list[str], buffer: Buffer) -> str:
        """Readings as ``:FORM:DATA`` has it: ASCII with the elements of 6-109, or a binary
        block (REAL: 64-bit, SREal: 32-bit floats; READ, REL and SOUR only)."""
        t0 = buffer.readings[0].t if buffer.readings else 0.0
        keys = [e.strip().upper() for e in elements] or ["READ"]
        if len(keys) > 14:
            raise illegal_value("more than 14 buffer elements")
        binary = self.settings["FORM:DATA"] != "ASC"
        values: list[float] = []
        out: list[str] = []
        for r in readings:
            for key in keys:
                item = self._element(r, key, t0, binary)
                if isinstance(item, float):
                    values.append(item)
                    out.append(self._number(item))
                else:
                    out.append(item)
        if not binary:
            return ",".join(out)
        code = "d" if self.settings["FORM:DATA"] == "REAL" else "f"
        order = ">" if self.settings["FORM:BORD"] == "NORM" else "<"
        data = struct.pack(f"{order}{len(values)}{code}", *values)
        size = str(len(data))
        return f"#{len(size)}{size}" + data.decode("latin-1")

    def _element(self, r: Reading, key: str, t0: float, binary: bool) -> float | str:
        stamp = EPOCH + r.t
        if key in ("READ", "READING"):
            return r.value
        if key in ("SOUR", "SOURCE"):
            return r.source
        if key in ("REL", "RELATIVE"):
            return r.t - t0
        if binary:
            raise illegal_value(f"buffer element {key} with :FORM:DATA REAL or SREal")
        if key in ("SEC", "SECONDS"):
            return str(int(stamp))
        if key in ("FRAC", "FRACTIONAL"):
            return _fmt(stamp - int(stamp))
        if key in ("STAT", "STATUS", "SOURSTAT", "SOURSTATUS"):
            return str(r.status)
        if key == "UNIT":
            return UNITS[r.func]
        if key == "SOURUNIT":
            return SOURCE_UNITS[r.source_func]
        if key == "DATE":
            return time.strftime("%m/%d/%Y", time.gmtime(stamp))
        if key == "TIME":
            return time.strftime("%H:%M:%S", time.gmtime(stamp)) + f".{int((stamp % 1) * 1e9):09d}"
        if key in ("TST", "TSTAMP"):
            return time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime(stamp)) + f".{int((stamp % 1) * 1e9):09d}"
        if key in ("FORM", "FORMATTED"):
            return _formatted(r.value, r.func)
        if key in ("SOURFORM", "SOURFORMATTED"):
            return _formatted(r.source, r.source_func)
        raise illegal_value(f"buffer element {key}")

    def _number(self, value: float) -> str:
        digits = self.settings["FORM:PREC"]
        return _fmt(value) if digits == 0 else f"{float(value):.{max(digits - 1, 0)}E}"

    def _read(self, p: list[str]) -> str:
        taken = self._store(_opt(p, 0))
        return self._format(taken[-1:], p[1:], self._buffer(_opt(p, 0)))

    def _measure(self, sense: str | None, p: list[str]) -> str:
        """``:MEASure[:<function>]?``: with a function, that function is selected; without,
        the present one is measured and left as it is."""
        if sense is not None:
            self.sense = sense
            self.ch.nplc = self.settings[f"{sense}:NPLC"]
        return self._read(p)

    def _fetch(self, p: list[str]) -> str:
        buf = self._buffer(_opt(p, 0))
        if not buf.readings:
            raise ScpiError(-230, '"Data corrupt or stale"')
        return self._format(buf.readings[-1:], p[1:], buf)

    def _trace_data(self, p: list[str]) -> str:
        if len(p) < 2:
            raise missing_parameter(":TRACe:DATA?")
        start, end = int(number(p[0])), int(number(p[1]))
        buf = self._buffer(_opt(p, 2))
        n = len(buf.readings)
        if not 1 <= start <= end <= n:
            raise out_of_range(f"{start} to {end} of {n} readings")
        return self._format(buf.readings[start - 1 : end], p[3:], buf)

    # ------------------------------------------------------------------ configuration lists
    def _conf(self, name: str) -> list[SourceConfig]:
        if name not in self.config_lists:
            raise illegal_value(f"configuration list {name} does not exist")
        return self.config_lists[name]

    def _snapshot(self) -> SourceConfig:
        c = self.ch
        return SourceConfig(c.func, c.level_v, c.level_i, c.limit_i, c.limit_v)

    def _conf_create(self, p: list[str]) -> None:
        name = string(_one(p))
        if name in self.config_lists:
            raise ScpiError(-222, f'"Configuration list {name} already exists"')
        self.config_lists[name] = []

    def _conf_store(self, p: list[str]) -> None:
        items = self._conf(string(_one(p)))
        index = int(number(p[1])) if len(p) > 1 else len(items) + 1
        if not 1 <= index <= len(items) + 1:
            raise ScpiError(-222, f'"Configuration index {index} out of range"')
        if index == len(items) + 1:
            items.append(self._snapshot())
        else:
            items[index - 1] = self._snapshot()

    def _conf_recall(self, name: str, index: int) -> None:
        items = self._conf(name)
        if not 1 <= index <= len(items):
            raise ScpiError(-222, f'"Configuration index {index} out of range"')
        cfg = items[index - 1]
        c = self.ch
        c.set_func(cfg.func)
        c.set_limit_i(cfg.limit_i)
        c.set_limit_v(cfg.limit_v)
        c.set_level_v(cfg.level_v)
        c.set_level_i(cfg.level_i)

    def _conf_delete(self, p: list[str]) -> None:
        name = string(_one(p))
        items = self._conf(name)
        if len(p) > 1:
            index = int(number(p[1]))
            if not 1 <= index <= len(items):
                raise ScpiError(-222, f'"Configuration index {index} out of range"')
            del items[index - 1]
        else:
            del self.config_lists[name]

    def _source_list(self, f: str, append: bool) -> Handler:
        """``:SOUR:LIST:<f>`` (replaces) and ``:APP`` (adds to) the custom sweep list (6-78)."""

        def setter(p: list[str], x: list[int]) -> None:
            if not p:
                raise missing_parameter(":SOUR:LIST")
            top = SOURCE_MAX[f]
            values = [number(v, lo=-top, hi=top) for v in p]
            self.source_list[f] = (self.source_list[f] if append else []) + values

        return setter

    def _source_list_query(self, f: str) -> Handler:
        return lambda p, x: ",".join(_fmt(v) for v in self.source_list[f])

    # ------------------------------------------------------------------ sweeps
    def _sweep_handler(self, f: str, kind: str) -> Handler:
        return lambda p, x: self._sweep(f, kind, p)

    def _sweep(self, f: str, kind: str, p: list[str]) -> None:
        """``:SOUR:SWE:<f>:LIN|LIN:STEP|LOG|LIST`` (6-81, 6-83, 6-85): a source configuration list
        and the trigger model that steps through it, run by ``:INIT``."""
        top = SOURCE_MAX[f]
        if kind == "LIST":
            levels = list(self.source_list[f])
            if not levels:
                raise settings_conflict(f":SOUR:LIST:{f} is empty")
            first = int(number(p[0], lo=1, hi=len(levels))) if p else 1
            levels = levels[first - 1 :]
            rest = p[1:]
            names: tuple[str, ...] = ("delay", "count", "failAbort", "bufferName")
        else:
            if len(p) < 3:
                raise missing_parameter(f":SOUR:SWE:{f}:{kind}")
            start, stop = number(p[0], lo=-top, hi=top), number(p[1], lo=-top, hi=top)
            if kind == "STEP":
                step = number(p[2])
                if step <= 0:
                    raise illegal_value(f"step {p[2]} must be > 0")
                points = int(math.floor(abs(stop - start) / step + 1e-9)) + 1
                sign = 1.0 if stop >= start else -1.0
                levels = [start + sign * step * k for k in range(points)]
            else:
                points = int(number(p[2], lo=2, hi=1e6))
                if kind == "LOG":
                    if start == 0 or stop == 0 or (start > 0) != (stop > 0):
                        raise illegal_value("a log sweep needs start and stop of one sign, not 0")
                    ratio = (stop / start) ** (1 / (points - 1))
                    levels = [start * ratio**k for k in range(points)]
                else:
                    levels = [start + (stop - start) * k / (points - 1) for k in range(points)]
            rest = p[3:]
            names = ("delay", "count", "rangeType", "failAbort", "dual", "bufferName", "asymptote")
        if len(rest) > len(names):
            raise ScpiError(-108, f'"Parameter not allowed; :SOUR:SWE:{f}:{kind}"')
        args = dict(zip(names, rest, strict=False))
        delay = number(args.get("delay", "-1"))
        if delay != -1 and not (delay == 0 or 50e-6 <= delay <= 1e4):
            raise out_of_range(f"sweep delay {delay}")
        count = int(number(args.get("count", "1"), lo=0, hi=268435455))
        if count == 0:
            raise settings_conflict("an infinite sweep (count 0) never ends in this emulator")
        rtype = choice(
            args.get("rangeType", "BEST"), {"AUTO": "AUTO", "BEST": "BEST", "FIX": "FIX", "FIXED": "FIX"}
        )
        fail = boolean(args.get("failAbort", "ON"))
        dual = boolean(args.get("dual", "OFF"))
        buffer = string(args.get("bufferName", '"defbuffer1"'))
        self._buffer(buffer)
        if dual:
            levels = levels + levels[::-1]
        if rtype == "AUTO":
            self.settings[f"SOUR:{f}:AUTO"] = True
        elif rtype == "BEST":
            self.settings[f"SOUR:{f}:AUTO"] = False
            self.ranges[f"SOUR:{f}"] = _range_for(f, max(abs(v) for v in levels))
        wait = AUTODELAY_S if delay == -1 else delay
        self._sweep_blocks(f, levels, wait, count, buffer, fail, kind)

    def _sweep_blocks(
        self, f: str, levels: list[float], delay: float, count: int, buffer: str, fail: bool, kind: str
    ) -> None:
        c = self.ch
        word = "Volt" if f == "VOLT" else "Curr"
        name = {"LIN": "LinearSweepList", "STEP": "LinearStepSweepList", "LOG": "LogSweepList",
                "LIST": "CustomSweepList"}[kind]  # fmt: skip
        name = word + name
        self.ch.set_func(f)
        self.config_lists[name] = [
            SourceConfig(
                f, v if f == "VOLT" else c.level_v, v if f == "CURR" else c.level_i, c.limit_i, c.limit_v
            )
            for v in levels
        ]
        self.blocks = {
            1: ("BUFF:CLE", (f'"{buffer}"',)),
            2: ("CONF:REC", (f'"{name}"', "1")),
            3: ("SOUR:STAT", ("ON",)),
            4: ("DEL:CONS", (str(delay),)),
            5: ("MEAS", (f'"{buffer}"',)),
            6: ("CONF:NEXT", (f'"{name}"',)),
            7: ("BRAN:COUN", (str(len(levels)), "4")),
            8: ("BRAN:COUN", (str(count), "2")),
        }
        self.fail_abort = fail

    # ------------------------------------------------------------------ trigger model
    def _trigger_load(self, p: list[str]) -> None:
        """``:TRIG:LOAD "Empty"`` or ``"SimpleLoop", <count>[, <delay>[, "<buffer>"]]``."""
        kind = string(_one(p)).upper()
        self.fail_abort = False
        if kind == "EMPTY":
            self.blocks = {}
            return
        if kind == "SIMPLELOOP":
            if len(p) < 2:
                raise missing_parameter(':TRIG:LOAD "SimpleLoop"')
            count = int(number(p[1], lo=1, hi=268435455))
            delay = number(p[2], lo=0, hi=1e4) if len(p) > 2 else 0.0
            buffer = p[3] if len(p) > 3 else '"defbuffer1"'
            self._buffer(buffer)
            self.blocks = {
                1: ("DEL:CONS", (str(delay),)),
                2: ("MEAS", (buffer,)),
                3: ("BRAN:COUN", (str(count), "1")),
            }
            return
        raise illegal_value(f"trigger model {p[0]} (this emulator loads Empty and SimpleLoop)")

    def _block_handler(self, kind: str, least: int, most: int) -> Handler:
        """A block of the trigger model: the block number (1 to 255), then its arguments."""

        def setter(p: list[str], x: list[int]) -> None:
            if not p:
                raise missing_parameter(f":TRIG:BLOC:{kind}")
            n = int(number(p[0], lo=1, hi=255))
            args = tuple(p[1:])
            if len(args) < least:
                raise missing_parameter(f":TRIG:BLOC:{kind}")
            if len(args) > most:
                raise ScpiError(-108, f'"Parameter not allowed; :TRIG:BLOC:{kind}"')
            if kind in ("BUFF:CLE", "MEAS") and args:
                self._buffer(args[0])
            if kind == "MEAS" and len(args) > 1:
                number(args[1], lo=1, hi=1e6)
            if kind in ("CONF:REC", "CONF:NEXT", "CONF:PREV"):
                self._conf(string(args[0]))
            if kind == "SOUR:STAT":
                boolean(args[0])
            if kind == "DEL:CONS":
                number(args[0], lo=0, hi=1e4)
            if kind.startswith("BRAN"):
                int(number(args[-1], lo=1, hi=255))
            self.blocks[n] = (kind, args)

        return setter

    def _run_trigger_model(self) -> None:
        if not self.blocks:
            return
        run = TriggerRun()
        last = max(self.blocks)
        n = 1
        steps = 0
        while n <= last:
            steps += 1
            if steps > MAX_TRIGGER_STEPS:
                raise ScpiError(-200, '"Execution error; trigger model did not finish"')
            kind, args = self.blocks.get(n, ("NOP", ()))
            self.last_block = n
            n += 1
            if kind == "BUFF:CLE":
                self._buffer(args[0] if args else None).clear()
            elif kind == "CONF:REC":
                name = string(args[0])
                index = int(number(args[1])) if len(args) > 1 else 1
                self._conf_recall(name, index)
                run.list_index[name] = index
            elif kind in ("CONF:NEXT", "CONF:PREV"):
                name = string(args[0])
                size = len(self._conf(name))
                now = run.list_index.get(name, 0)
                index = now % size + 1 if kind == "CONF:NEXT" else (now - 2) % size + 1
                self._conf_recall(name, index)
                run.list_index[name] = index
            elif kind == "SOUR:STAT":
                self.ch.set_output(boolean(args[0]))
            elif kind == "DEL:CONS":
                self.ch.hold(number(args[0], lo=0, hi=1e4))
            elif kind == "MEAS":
                count = int(number(args[1])) if len(args) > 1 else 1
                self._store(args[0] if args else None, count)
            elif kind == "BRAN:COUN":
                target_count, target = int(number(args[0])), int(number(args[1]))
                block = n - 1
                run.counters[block] = run.counters.get(block, 0) + 1
                if run.counters[block] < target_count:
                    n = target
                else:
                    run.counters[block] = 0
            elif kind == "BRAN:ALW":
                n = int(number(args[0]))
            elif kind == "BRAN:ONCE" and n - 1 not in run.once:
                run.once.add(n - 1)
                n = int(number(args[0]))

    def snapshot(self) -> dict[str, Any]:
        """The settings (for tests that compare before and after)."""
        return copy.deepcopy({"settings": self.settings, "ranges": self.ranges, "sense": self.sense})


# --------------------------------------------------------------------- parameter helpers
def _one(p: list[str]) -> str:
    if not p or not p[0].strip():
        raise missing_parameter("")
    return p[0]


def _only(p: list[str]) -> str:
    value = _one(p)
    if len(p) > 1:
        raise ScpiError(-108, '"Parameter not allowed"')
    return value


def _opt(p: list[str], index: int) -> str | None:
    return p[index] if len(p) > index and p[index].strip() else None


def _b(value: bool) -> str:
    return "1" if value else "0"


def _fmt(value: float) -> str:
    return f"{float(value):.6E}"


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return _b(value)
    return str(value)


def _bool(text: str) -> bool:
    return boolean(text)


def _num(lo: float, hi: float) -> Callable[[str], float]:
    return lambda text: number(text, lo=lo, hi=hi)


def _int(lo: int, hi: int) -> Callable[[str], int]:
    return lambda text: int(round(number(text, lo=lo, hi=hi)))


def _choice(options: dict[str, str]) -> Callable[[str], str]:
    return lambda text: choice(text, options)


def _range_value(f: str) -> Callable[[str], float]:
    """A range value of function ``f``: the smallest 2450 range that holds it (-222 beyond)."""

    def parse(text: str) -> float:
        top = RANGES[f][-1]
        value = number(text, default=top, lo=-1.05 * top, hi=1.05 * top)
        return _range_for(f, value)

    return parse


def _formatted(value: float, func: str) -> str:
    """A reading as the front panel shows it (element FORMatted)."""
    unit = {"CURR": "A", "VOLT": "V", "RES": "Ohm"}[func]
    if abs(value) >= OVERFLOW:
        return f"Overflow {unit}"
    for scale, prefix in (
        (1e6, "M"),
        (1e3, "k"),
        (1.0, ""),
        (1e-3, "m"),
        (1e-6, "u"),
        (1e-9, "n"),
        (1e-12, "p"),
    ):
        if abs(value) >= scale:
            return f"{value / scale:+09.4f} {prefix}{unit}"
    return f"{value / 1e-12:+09.4f} p{unit}"
