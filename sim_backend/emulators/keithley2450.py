"""Emulated Keithley 2450 SourceMeter (native SCPI command set), wired to the twin.

What runs (a working subset of the 2450 reference manual, enough for pymeasure's Keithley2450
driver, this project's driver and the manual's SCPI examples):

* source: ``:SOUR:FUNC``, ``:SOUR:VOLT[:LEV]``, ``:SOUR:VOLT:ILIM``, ``:SOUR:VOLT:RANG[:AUTO]``,
  ``:SOUR:VOLT:DEL``, ``:SOUR:VOLT:READ:BACK`` and the ``:SOUR:CURR`` equivalents;
  ``:OUTP[:STAT]``; ``:ROUT:TERM``;
* measure: ``:SENS:FUNC``, ``:SENS:CURR|VOLT|RES:RANG[:AUTO]``, ``:NPLC``, ``:COUN``,
  ``:READ?`` and ``:MEAS[:CURR|:VOLT|:RES]?`` (into a buffer, with elements), ``:TRAC:CLE``,
  ``:TRAC:DATA?``, ``:TRAC:ACT?``, ``:TRAC:MAKE``, ``:TRAC:POIN``;
* source configuration lists (``:SOUR:CONF:LIST:CRE/STOR/REC/DEL/SIZE?``);
* the trigger model: ``:TRIG:LOAD "Empty"``, blocks ``BUFF:CLE``, ``CONF:REC``, ``CONF:NEXT``,
  ``SOUR:STAT``, ``DEL:CONS``, ``MEAS``, ``BRAN:COUN``, ``BRAN:ALW``, ``NOP``; sweeps
  ``:SOUR:SWE:VOLT:LIN`` and ``:SOUR:SWE:VOLT:LIST`` (with ``:SOUR:LIST:VOLT``) load it; ``:INIT``
  runs it, ``:ABOR`` stops it;
* ``*IDN?``, ``*RST``, ``*CLS``, ``*OPC?``, ``*WAI``, ``:SYST:ERR?``, ``:SYST:BEEP``.

The 2450 has no pulse mode: pulses are trigger-model level changes held by a delay block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sim_backend.emulators.scpi import (
    Handler,
    ScpiError,
    boolean,
    choice,
    fmt,
    illegal_value,
    missing_parameter,
    number,
    string,
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


@dataclass
class Reading:
    value: float
    source: float
    t: float
    status: int = 0


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
        self.ch.reset()
        self.sense = "CURR"
        self.readback = True
        self.count = 1
        self.terminals = "FRON"
        self.ranges: dict[str, float] = {
            "SOUR:VOLT": 20.0,
            "SOUR:CURR": 1e-3,
            "CURR": 1e-4,
            "VOLT": 2.0,
            "RES": 2e5,
        }
        self.autorange: dict[str, bool] = {
            "SOUR:VOLT": True,
            "SOUR:CURR": True,
            "CURR": True,
            "VOLT": True,
            "RES": True,
        }
        self.delays = {"VOLT": 0.0, "CURR": 0.0}
        self.buffers: dict[str, list[Reading]] = {"defbuffer1": [], "defbuffer2": []}
        self.config_lists: dict[str, list[SourceConfig]] = {}
        self.source_list: dict[str, list[float]] = {"VOLT": [], "CURR": []}
        self.blocks: dict[int, tuple[str, tuple[Any, ...]]] = {}
        self.output_mode = {"VOLT": "NORM", "CURR": "NORM"}

    def outputs(self) -> dict[str, bool]:
        """Output state (for tests)."""
        return {"1": self.ch.output_on}

    # ------------------------------------------------------------------ commands
    def declare(self) -> None:
        s = self.scpi
        ch = self.ch
        s.add(":SYSTem:BEEPer[:IMMediate]", lambda p, x: None)
        s.add(
            ":ROUTe:TERMinals",
            lambda p, x: self._set(
                "terminals", choice(p[0], {"FRON": "FRON", "FRONT": "FRON", "REAR": "REAR"})
            ),
            lambda p, x: self.terminals,
        )
        s.add(
            ":OUTPut[:STATe]",
            lambda p, x: ch.set_output(boolean(self._one(p))),
            lambda p, x: "1" if ch.output_on else "0",
        )
        for f in ("VOLT", "CURR"):
            s.add(
                f":OUTPut:{f}age:SMODe" if f == "VOLT" else ":OUTPut:CURRent:SMODe",
                self._smode(f),
                self._smode_query(f),
            )
        s.add(
            ":SOURce:FUNCtion[:MODE]",
            lambda p, x: ch.set_func(choice(self._one(p), FUNCS)),
            lambda p, x: ch.func,
        )
        # voltage source
        s.add(
            ":SOURce:VOLTage[:LEVel][:IMMediate][:AMPLitude]",
            lambda p, x: ch.set_level_v(self._num(p, -210, 210)),
            lambda p, x: fmt(ch.level_v),
        )
        s.add(
            ":SOURce:VOLTage:ILIMit[:LEVel]",
            lambda p, x: ch.set_limit_i(self._num(p, 1e-9, 1.05)),
            lambda p, x: fmt(ch.limit_i),
        )
        s.add(
            ":SOURce:VOLTage:ILIMit[:LEVel]:TRIPped",
            None,
            lambda p, x: "1" if ch.in_compliance and ch.func == "VOLT" else "0",
        )
        s.add(
            ":SOURce:VOLTage:RANGe",
            lambda p, x: self._range("SOUR:VOLT", p, 0.02, 200),
            lambda p, x: fmt(self.ranges["SOUR:VOLT"]),
        )
        s.add(
            ":SOURce:VOLTage:RANGe:AUTO",
            lambda p, x: self._auto("SOUR:VOLT", p),
            lambda p, x: "1" if self.autorange["SOUR:VOLT"] else "0",
        )
        s.add(
            ":SOURce:VOLTage:DELay",
            lambda p, x: self._delay("VOLT", p),
            lambda p, x: fmt(self.delays["VOLT"]),
        )
        s.add(":SOURce:VOLTage:DELay:AUTO", lambda p, x: None, lambda p, x: "0")
        s.add(
            ":SOURce:VOLTage:READ:BACK",
            lambda p, x: self._set("readback", boolean(self._one(p))),
            lambda p, x: "1" if self.readback else "0",
        )
        # current source
        s.add(
            ":SOURce:CURRent[:LEVel][:IMMediate][:AMPLitude]",
            lambda p, x: ch.set_level_i(self._num(p, -1.05, 1.05)),
            lambda p, x: fmt(ch.level_i),
        )
        s.add(
            ":SOURce:CURRent:VLIMit[:LEVel]",
            lambda p, x: ch.set_limit_v(self._num(p, 0.02, 210)),
            lambda p, x: fmt(ch.limit_v),
        )
        s.add(
            ":SOURce:CURRent:RANGe",
            lambda p, x: self._range("SOUR:CURR", p, 1e-8, 1.0),
            lambda p, x: fmt(self.ranges["SOUR:CURR"]),
        )
        s.add(
            ":SOURce:CURRent:RANGe:AUTO",
            lambda p, x: self._auto("SOUR:CURR", p),
            lambda p, x: "1" if self.autorange["SOUR:CURR"] else "0",
        )
        s.add(
            ":SOURce:CURRent:DELay",
            lambda p, x: self._delay("CURR", p),
            lambda p, x: fmt(self.delays["CURR"]),
        )
        s.add(":SOURce:CURRent:DELay:AUTO", lambda p, x: None, lambda p, x: "0")
        s.add(
            ":SOURce:CURRent:READ:BACK",
            lambda p, x: self._set("readback", boolean(self._one(p))),
            lambda p, x: "1" if self.readback else "0",
        )
        # lists, sweeps and configuration lists
        s.add(
            ":SOURce:LIST:VOLTage",
            lambda p, x: self._source_list("VOLT", p),
            lambda p, x: ",".join(fmt(v) for v in self.source_list["VOLT"]),
        )
        s.add(
            ":SOURce:LIST:CURRent",
            lambda p, x: self._source_list("CURR", p),
            lambda p, x: ",".join(fmt(v) for v in self.source_list["CURR"]),
        )
        s.add(":SOURce:SWEep:VOLTage:LINear", lambda p, x: self._sweep_linear(p))
        s.add(":SOURce:SWEep:VOLTage:LIST", lambda p, x: self._sweep_list(p))
        s.add(":SOURce:CONFiguration:LIST:CREate", lambda p, x: self._conf_create(p))
        s.add(":SOURce:CONFiguration:LIST:STORe", lambda p, x: self._conf_store(p))
        s.add(
            ":SOURce:CONFiguration:LIST:RECall",
            lambda p, x: self._conf_recall(string(p[0]), int(number(p[1])) if len(p) > 1 else 1),
        )
        s.add(":SOURce:CONFiguration:LIST:DELete", lambda p, x: self._conf_delete(p))
        s.add(
            ":SOURce:CONFiguration:LIST:SIZE", None, lambda p, x: str(len(self._conf(string(self._one(p)))))
        )
        # sense
        s.add(
            "[:SENSe]:FUNCtion[:ON]",
            lambda p, x: self._set("sense", choice(self._one(p), SENSE_FUNCS)),
            lambda p, x: f'"{self.sense}:DC"' if self.sense != "RES" else '"RES"',
        )
        for f in ("CURRent", "VOLTage", "RESistance"):
            key = f[:4].upper() if f != "RESistance" else "RES"
            s.add(f"[:SENSe]:{f}[:DC]:RANGe[:UPPer]", *self._range_handlers(key))
            s.add(f"[:SENSe]:{f}[:DC]:RANGe:AUTO", *self._auto_handlers(key))
            s.add(f"[:SENSe]:{f}[:DC]:NPLCycles", lambda p, x: self._nplc(p), lambda p, x: fmt(ch.nplc))
            s.add(f"[:SENSe]:{f}[:DC]:AZERo[:STATe]", lambda p, x: None, lambda p, x: "1")
            s.add(f"[:SENSe]:{f}[:DC]:AVERage[:STATe]", lambda p, x: None, lambda p, x: "0")
            s.add(f"[:SENSe]:{f}[:DC]:AVERage:TCONtrol", lambda p, x: None, lambda p, x: "REP")
            s.add(f"[:SENSe]:{f}[:DC]:AVERage:COUNt", lambda p, x: None, lambda p, x: "10")
            s.add(f"[:SENSe]:{f}[:DC]:RSENse", lambda p, x: None, lambda p, x: "0")
        s.add(
            "[:SENSe]:COUNt",
            lambda p, x: self._set("count", int(self._num(p, 1, 300000))),
            lambda p, x: str(self.count),
        )
        s.add(":READ", None, lambda p, x: self._read(p))
        s.add(":MEASure[:CURRent][:DC]", None, lambda p, x: self._measure("CURR", p))
        s.add(":MEASure:VOLTage[:DC]", None, lambda p, x: self._measure("VOLT", p))
        s.add(":MEASure:RESistance", None, lambda p, x: self._measure("RES", p))
        s.add(":FETCh", None, lambda p, x: self._fetch(p))
        # buffers
        s.add(":TRACe:CLEar", lambda p, x: self._buffer(p[0] if p else "defbuffer1").clear())
        s.add(":TRACe:DATA", None, lambda p, x: self._trace_data(p))
        s.add(":TRACe:ACTual", None, lambda p, x: str(len(self._buffer(p[0] if p else "defbuffer1"))))
        s.add(":TRACe:ACTual:END", None, lambda p, x: str(len(self._buffer(p[0] if p else "defbuffer1"))))
        s.add(
            ":TRACe:ACTual:STARt",
            None,
            lambda p, x: "1" if self._buffer(p[0] if p else "defbuffer1") else "0",
        )
        s.add(":TRACe:MAKE", lambda p, x: self._make_buffer(p[0]))
        s.add(":TRACe:POINts", lambda p, x: None, lambda p, x: "100000")
        s.add(":TRACe:DELete", lambda p, x: self._delete_buffer(p[0]))
        # trigger model
        s.add(":TRIGger:LOAD", lambda p, x: self._trigger_load(p))
        s.add(
            ":TRIGger:BLOCk:BUFFer:CLEar", lambda p, x: self._block(p, "BUFF:CLE", p[1:] or ['"defbuffer1"'])
        )
        s.add(":TRIGger:BLOCk:CONFig:RECall", lambda p, x: self._block(p, "CONF:REC", p[1:]))
        s.add(":TRIGger:BLOCk:CONFig:NEXT", lambda p, x: self._block(p, "CONF:NEXT", p[1:]))
        s.add(":TRIGger:BLOCk:SOURce:STATe", lambda p, x: self._block(p, "SOUR:STAT", p[1:]))
        s.add(":TRIGger:BLOCk:DELay:CONStant", lambda p, x: self._block(p, "DEL:CONS", p[1:]))
        s.add(":TRIGger:BLOCk:MEASure", lambda p, x: self._block(p, "MEAS", p[1:]))
        s.add(":TRIGger:BLOCk:MDIGitize", lambda p, x: self._block(p, "MEAS", p[1:]))
        s.add(":TRIGger:BLOCk:BRANch:COUNter", lambda p, x: self._block(p, "BRAN:COUN", p[1:]))
        s.add(":TRIGger:BLOCk:BRANch:ALWays", lambda p, x: self._block(p, "BRAN:ALW", p[1:]))
        s.add(":TRIGger:BLOCk:NOP", lambda p, x: self._block(p, "NOP", ()))
        s.add(":TRIGger:STATe", None, lambda p, x: "IDLE;IDLE;0")
        s.add(":INITiate[:IMMediate]", lambda p, x: self._run_trigger_model())
        s.add(":ABORt", lambda p, x: None)
        s.add(":FORMat[:DATA]", lambda p, x: None, lambda p, x: "ASC")
        s.add(":FORMat:ASCii:PRECision", lambda p, x: None, lambda p, x: "0")

    # ------------------------------------------------------------------ parameter helpers
    def _set(self, attr: str, value: Any) -> None:
        setattr(self, attr, value)

    @staticmethod
    def _one(p: list[str]) -> str:
        if not p:
            raise missing_parameter("")
        return p[0]

    def _num(self, p: list[str], lo: float, hi: float) -> float:
        return number(self._one(p), lo=lo, hi=hi)

    def _range(self, key: str, p: list[str], lo: float, hi: float) -> None:
        self.ranges[key] = abs(self._num(p, -hi, hi)) or lo
        self.autorange[key] = False

    def _auto(self, key: str, p: list[str]) -> None:
        self.autorange[key] = boolean(self._one(p))

    def _delay(self, func: str, p: list[str]) -> None:
        self.delays[func] = self._num(p, 0, 10000)

    def _nplc(self, p: list[str]) -> None:
        self.ch.nplc = self._num(p, 0.01, 10)

    def _smode(self, func: str) -> Callable[[list[str], list[int]], None]:
        def handler(p: list[str], x: list[int]) -> None:
            self.output_mode[func] = choice(
                self._one(p), {"HIMP": "HIMP", "NORM": "NORM", "ZERO": "ZERO", "GUAR": "GUAR"}
            )

        return handler

    def _smode_query(self, func: str) -> Handler:
        return lambda p, x: self.output_mode[func]

    def _range_handlers(self, key: str) -> tuple[Handler, Handler]:
        """Setter and query of the range of the sense function ``key`` (CURR, VOLT or RES)."""
        return (lambda p, x: self._range(key, p, 1e-8, 2e8), lambda p, x: fmt(self.ranges[key]))

    def _auto_handlers(self, key: str) -> tuple[Handler, Handler]:
        """Setter and query of the autorange of the sense function ``key``."""
        return (lambda p, x: self._auto(key, p), lambda p, x: "1" if self.autorange[key] else "0")

    # ------------------------------------------------------------------ buffers
    def _make_buffer(self, name: str) -> None:
        """``:TRAC:MAKE``: a new, empty reading buffer (an existing one is kept); no reply."""
        self.buffers.setdefault(string(name), [])

    def _delete_buffer(self, name: str) -> None:
        """``:TRAC:DEL``: drop a reading buffer (absent: nothing happens); no reply."""
        self.buffers.pop(string(name), None)

    # ------------------------------------------------------------------ measuring
    def _buffer(self, name: str) -> list[Reading]:
        key = string(name)
        if key not in self.buffers:
            raise illegal_value(f"buffer {name} does not exist")
        return self.buffers[key]

    def _sample(self) -> tuple[float, float]:
        """One measurement of the sense function: (reading, source value)."""
        m = self.ch.measure()
        if self.sense == "CURR":
            value = m.current_A
        elif self.sense == "VOLT":
            value = m.voltage_V
        else:
            value = m.voltage_V / m.current_A if m.current_A else 9.9e37
        if self.ch.func == "VOLT":
            source = m.voltage_V if self.readback and self.ch.output_on else self.ch.level_v
        else:
            source = m.current_A if self.readback and self.ch.output_on else self.ch.level_i
        return value, source

    def _store(self, buffer: str, count: int | None = None) -> list[Reading]:
        buf = self._buffer(buffer)
        taken = []
        for _ in range(count or self.count):
            value, source = self._sample()
            reading = Reading(value, source, self.wiring.now(), 8 if self.ch.in_compliance else 0)
            buf.append(reading)
            taken.append(reading)
        return taken

    def _elements(self, readings: list[Reading], elements: list[str], buffer: list[Reading]) -> str:
        t0 = buffer[0].t if buffer else 0.0
        out = []
        for r in readings:
            for e in elements or ["READ"]:
                key = e.strip().upper()
                if key in ("READ", "READING"):
                    out.append(fmt(r.value))
                elif key in ("SOUR", "SOURCE"):
                    out.append(fmt(r.source))
                elif key in ("REL", "RELATIVE"):
                    out.append(fmt(r.t - t0))
                elif key in ("SEC", "SECONDS"):
                    out.append(str(int(r.t)))
                elif key in ("FRAC", "FRACTIONAL"):
                    out.append(fmt(r.t - int(r.t)))
                elif key in ("STAT", "STATUS"):
                    out.append(str(r.status))
                elif key == "UNIT":
                    out.append({"CURR": "Amp DC", "VOLT": "Volt DC", "RES": "Ohm"}[self.sense])
                else:
                    raise illegal_value(f"buffer element {e}")
        return ",".join(out)

    def _read(self, p: list[str]) -> str:
        name = p[0] if p else "defbuffer1"
        taken = self._store(name)
        return self._elements(taken[-1:], p[1:], self._buffer(name))

    def _measure(self, sense: str, p: list[str]) -> str:
        self.sense = sense
        return self._read(p)

    def _fetch(self, p: list[str]) -> str:
        name = p[0] if p else "defbuffer1"
        buf = self._buffer(name)
        if not buf:
            raise ScpiError(-230, '"Data corrupt or stale"')
        return self._elements(buf[-1:], p[1:], buf)

    def _trace_data(self, p: list[str]) -> str:
        if len(p) < 2:
            raise missing_parameter(":TRACe:DATA?")
        start, end = int(number(p[0])), int(number(p[1]))
        name = p[2] if len(p) > 2 else "defbuffer1"
        buf = self._buffer(name)
        if not 1 <= start <= end <= len(buf):
            raise ScpiError(-222, f'"Data out of range; {start} to {end} of {len(buf)} readings"')
        return self._elements(buf[start - 1 : end], p[3:], buf)

    # ------------------------------------------------------------------ configuration lists
    def _conf(self, name: str) -> list[SourceConfig]:
        if name not in self.config_lists:
            raise illegal_value(f"configuration list {name} does not exist")
        return self.config_lists[name]

    def _snapshot(self) -> SourceConfig:
        c = self.ch
        return SourceConfig(c.func, c.level_v, c.level_i, c.limit_i, c.limit_v)

    def _conf_create(self, p: list[str]) -> None:
        name = string(self._one(p))
        if name in self.config_lists:
            raise ScpiError(-222, f'"Configuration list {name} already exists"')
        self.config_lists[name] = []

    def _conf_store(self, p: list[str]) -> None:
        items = self._conf(string(self._one(p)))
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
        self._conf(string(self._one(p)))
        del self.config_lists[string(p[0])]

    def _source_list(self, func: str, p: list[str]) -> None:
        if not p:
            raise missing_parameter(":SOUR:LIST")
        self.source_list[func] = [number(v, lo=-210, hi=210) for v in p]

    # ------------------------------------------------------------------ trigger model
    def _trigger_load(self, p: list[str]) -> None:
        kind = string(self._one(p)).upper()
        if kind != "EMPTY":
            raise illegal_value(f'trigger model {p[0]} (this emulator loads only "Empty" and the sweeps)')
        self.blocks = {}

    def _block(self, p: list[str], kind: str, args: Iterable[str]) -> None:
        if not p:
            raise missing_parameter(":TRIG:BLOC")
        n = int(number(p[0], lo=1, hi=255))
        self.blocks[n] = (kind, tuple(args))

    def _sweep_blocks(self, levels: list[float], delay: float, count: int, buffer: str) -> None:
        c = self.ch
        self.config_lists["__sweep"] = [
            SourceConfig("VOLT", v, c.level_i, c.limit_i, c.limit_v) for v in levels
        ]
        self.blocks = {
            1: ("BUFF:CLE", (f'"{buffer}"',)),
            2: ("CONF:REC", ('"__sweep"', "1")),
            3: ("SOUR:STAT", ("ON",)),
            4: ("DEL:CONS", (str(delay),)),
            5: ("MEAS", (f'"{buffer}"',)),
            6: ("CONF:NEXT", ('"__sweep"',)),
            7: ("BRAN:COUN", (str(len(levels)), "4")),
            8: ("BRAN:COUN", (str(count), "2")),
        }

    def _sweep_linear(self, p: list[str]) -> None:
        if len(p) < 3:
            raise missing_parameter(":SOUR:SWE:VOLT:LIN")
        start, stop, points = number(p[0]), number(p[1]), int(number(p[2], lo=2, hi=1e6))
        delay = number(p[3]) if len(p) > 3 else self.delays["VOLT"]
        count = int(number(p[4])) if len(p) > 4 else 1
        buffer = string(p[8]) if len(p) > 8 else "defbuffer1"
        levels = [start + (stop - start) * k / (points - 1) for k in range(points)]
        self._sweep_blocks(levels, delay, count, buffer)

    def _sweep_list(self, p: list[str]) -> None:
        levels = self.source_list["VOLT"]
        if not levels:
            raise ScpiError(-221, '"Settings conflict; :SOUR:LIST:VOLT is empty"')
        first = int(number(p[0])) if p else 1
        delay = number(p[1]) if len(p) > 1 else self.delays["VOLT"]
        count = int(number(p[2])) if len(p) > 2 else 1
        buffer = string(p[4]) if len(p) > 4 else "defbuffer1"
        self._sweep_blocks(levels[first - 1 :], delay, count, buffer)

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
            n += 1
            if kind == "BUFF:CLE":
                self._buffer(args[0] if args else "defbuffer1").clear()
            elif kind == "CONF:REC":
                name = string(args[0])
                index = int(number(args[1])) if len(args) > 1 else 1
                self._conf_recall(name, index)
                run.list_index[name] = index
            elif kind == "CONF:NEXT":
                name = string(args[0])
                size = len(self._conf(name))
                index = run.list_index.get(name, 0) % size + 1
                self._conf_recall(name, index)
                run.list_index[name] = index
            elif kind == "SOUR:STAT":
                self.ch.set_output(boolean(args[0]))
            elif kind == "DEL:CONS":
                self.ch.hold(number(args[0], lo=0, hi=1e4))
            elif kind == "MEAS":
                buffer = args[0] if args else "defbuffer1"
                count = int(number(args[1])) if len(args) > 1 else 1
                self._store(buffer, count)
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
