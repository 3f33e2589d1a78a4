"""Emulated Keithley 2600B System SourceMeter (TSP), wired to the twin through the bench.

What runs (a working subset of the 2600B reference manual, enough for pymeasure's Keithley2600
driver, this project's driver and the manual's usual examples):

* ``smuX.source``: ``func``, ``levelv``, ``leveli``, ``limiti``, ``limitv``, ranges and
  autoranges, ``output``, ``offmode``, ``delay``, ``compliance``; ``smuX.measure``: ``nplc``,
  ranges, ``count``, ``i()``, ``v()``, ``iv()``, ``r()``, ``p()`` (into buffers or returned);
* buffers ``smuX.nvbuffer1/2`` and ``smuX.makebuffer(n)``: ``n``, ``readings``, ``timestamps``,
  ``sourcevalues``, ``appendmode``, ``clear()``; ``printbuffer``, ``print``, ``printnumber``;
* the trigger model: ``smuX.trigger.source.listv/linearv``, ``.action``, ``.limiti/limitv``,
  ``measure.action`` and ``measure.i/v/iv(buf)``, ``endpulse.action`` (``SOURCE_IDLE`` makes
  pulses) with ``endpulse.stimulus`` from a ``trigger.timer[N]`` started by
  ``SOURCE_COMPLETE_EVENT_ID`` (the pulse width is the timer's delay), ``count``, ``arm.count``,
  ``initiate()``; ``trigger.timer[1..8]``;
* scripts (``loadscript``/``endscript``, ``name.run()``), ``delay``, ``waitcomplete``,
  ``reset()``, ``errorqueue``, ``localnode``, ``timer``; the factory sweeps
  ``SweepVLinMeasureI`` and ``SweepVListMeasureI``; ``*IDN?``, ``*RST``, ``*CLS``, ``*OPC?``.

Instrument-side waits (``delay``, pulse widths) play out on the bench clock without sleeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sim_backend.emulators.scpi_server import Fault
from sim_backend.emulators.smu_channel import SourceChannel, SourceDefaults
from sim_backend.emulators.tsp import Anything, TspArray, TspError, TspInstrument, TspObject, tsp_number
from sim_backend.emulators.wiring import Wiring
from sim_backend.twin import TwinBackend

SMU_CONSTANTS: dict[str, float] = {
    "OUTPUT_OFF": 0,
    "OUTPUT_ON": 1,
    "OUTPUT_HIGH_Z": 2,
    "OUTPUT_DCAMPS": 0,
    "OUTPUT_DCVOLTS": 1,
    "OUTPUT_NORMAL": 0,
    "OUTPUT_ZERO": 2,
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
}


class Buffer(TspObject):
    """A reading buffer (``smua.nvbuffer1``, ``smua.makebuffer(n)``)."""

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

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self.appendmode = 0
        self.collecttimestamps = 1
        self.collectsourcevalues = 0
        self.fillmode = 0
        self.timestampresolution = 1e-6
        self.cachemode = 1
        self._readings: list[float] = []
        self._timestamps: list[float] = []
        self._sources: list[float] = []
        self._t0: float | None = None

    @property
    def n(self) -> int:
        return len(self._readings)

    def _view(self, name: str, values: list[float]) -> TspArray:
        """One live view per list, kept: Lua must never see short-lived temporaries (tsp.stable)."""
        views = self.__dict__.setdefault("_views", {})
        view = views.get(name)
        if view is None or view._values is not values:
            views[name] = view = TspArray(values)
        return view

    @property
    def readings(self) -> TspArray:
        return self._view("readings", self._readings)

    @property
    def timestamps(self) -> TspArray:
        return self._view("timestamps", self._timestamps)

    @property
    def sourcevalues(self) -> TspArray:
        return self._view("sourcevalues", self._sources)

    @property
    def basetimestamp(self) -> float:
        return self._t0 or 0.0

    def __getitem__(self, index: int) -> float | None:
        return self.readings[index]

    def to_list(self) -> list[float]:
        return list(self._readings)

    def clear(self) -> None:
        self._readings.clear()
        self._timestamps.clear()
        self._sources.clear()
        self._t0 = None

    def clearcache(self) -> None:
        return None

    def store(self, value: float, t: float, source: float) -> None:
        if len(self._readings) >= self.capacity:
            if self.fillmode == 1:  # continuous: wrap around
                self._readings.pop(0)
                self._timestamps.pop(0)
                self._sources.pop(0)
            else:
                raise TspError("buffer full")
        if self._t0 is None:
            self._t0 = t
        self._readings.append(float(value))
        self._timestamps.append(t - self._t0)
        self._sources.append(float(source))


class _Part(TspObject):
    """A sub-table of an SMU that reaches its :class:`SourceChannel`."""

    def __init__(self, smu: Smu) -> None:
        self._smu = smu

    @property
    def _ch(self) -> SourceChannel:
        return self._smu._ch


class Source(_Part):
    """``smuX.source``."""

    WRITABLE = frozenset(
        {
            "func", "levelv", "leveli", "limiti", "limitv", "limitp", "rangev", "rangei", "autorangev",
            "autorangei", "lowrangev", "lowrangei", "output", "offmode", "delay", "settling", "highc",
            "sink", "offlimiti", "offfunc",
        }
    )  # fmt: skip

    def __init__(self, smu: Smu) -> None:
        super().__init__(smu)
        self.limitp = 1e30
        self.rangev = 20.0
        self.rangei = 1e-1
        self.autorangev = 1
        self.autorangei = 1
        self.lowrangev = 0.1
        self.lowrangei = 1e-7
        self.offmode = 0
        self.delay = -1
        self.settling = 0
        self.highc = 0
        self.sink = 0
        self.offlimiti = 1e-3
        self.offfunc = 1

    @property
    def func(self) -> int:
        return 1 if self._ch.func == "VOLT" else 0

    @func.setter
    def func(self, value: Any) -> None:
        self._ch.set_func("VOLT" if tsp_number(value) == 1 else "CURR")

    @property
    def levelv(self) -> float:
        return self._ch.level_v

    @levelv.setter
    def levelv(self, value: Any) -> None:
        v = tsp_number(value)
        if abs(v) > 202:
            raise TspError(f"levelv {v:g} V is outside the 200 V range")
        self._ch.set_level_v(v)

    @property
    def leveli(self) -> float:
        return self._ch.level_i

    @leveli.setter
    def leveli(self, value: Any) -> None:
        self._ch.set_level_i(tsp_number(value))

    @property
    def limiti(self) -> float:
        return self._ch.limit_i

    @limiti.setter
    def limiti(self, value: Any) -> None:
        i = tsp_number(value)
        if not 1e-12 <= abs(i) <= 10.0:
            raise TspError(f"limiti {i:g} A is outside 1e-12..10 A")
        self._ch.set_limit_i(i)

    @property
    def limitv(self) -> float:
        return self._ch.limit_v

    @limitv.setter
    def limitv(self, value: Any) -> None:
        self._ch.set_limit_v(tsp_number(value))

    @property
    def output(self) -> int:
        return 1 if self._ch.output_on else 0

    @output.setter
    def output(self, value: Any) -> None:
        state = tsp_number(value)
        if state not in (0.0, 1.0, 2.0):
            raise TspError(f"output: {state:g} is not OUTPUT_OFF (0), OUTPUT_ON (1) or OUTPUT_HIGH_Z (2)")
        self._ch.set_output(state == 1.0)

    @property
    def compliance(self) -> bool:
        return self._ch.in_compliance


class Measure(_Part):
    """``smuX.measure``."""

    WRITABLE = frozenset(
        {
            "nplc", "rangei", "rangev", "autorangei", "autorangev", "autozero", "delay", "count",
            "interval", "lowrangei", "lowrangev", "delayfactor", "analogfilter",
        }
    )  # fmt: skip

    def __init__(self, smu: Smu) -> None:
        super().__init__(smu)
        self.rangei = 1e-1
        self.rangev = 20.0
        self.autorangei = 1
        self.autorangev = 1
        self.autozero = 2
        self.delay = -1
        self.count = 1
        self.interval = 0
        self.lowrangei = 1e-7
        self.lowrangev = 0.1
        self.delayfactor = 1
        self.analogfilter = 1
        self.filter = Anything()
        self.rel = Anything()

    @property
    def nplc(self) -> float:
        return self._ch.nplc

    @nplc.setter
    def nplc(self, value: Any) -> None:
        n = tsp_number(value)
        if not 0.001 <= n <= 25:
            raise TspError(f"nplc {n:g} is outside 0.001..25")
        self._ch.nplc = n

    def _readings(self, kind: str, buffers: tuple[Any, ...]) -> tuple[float, ...]:
        result: tuple[float, ...] = ()
        for _ in range(max(int(tsp_number(self.count)), 1)):
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
    WRITABLE = frozenset({"action", "limiti", "limitv", "stimulus"})

    def __init__(self, smu: Smu) -> None:
        super().__init__(smu)
        self.action = 0
        self.limiti = None
        self.limitv = None
        self.stimulus = 0
        self._values: list[float] = []
        self._is_current = False

    def listv(self, values: Any) -> None:
        self._values = [tsp_number(v) for v in values.values()]
        self._is_current = False

    def listi(self, values: Any) -> None:
        self._values = [tsp_number(v) for v in values.values()]
        self._is_current = True

    def linearv(self, start: Any, stop: Any, points: Any) -> None:
        a, b, n = tsp_number(start), tsp_number(stop), int(tsp_number(points))
        if n < 1:
            raise TspError("linearv: points must be >= 1")
        self._values = [a + (b - a) * k / max(n - 1, 1) for k in range(n)]
        self._is_current = False


class TriggerMeasure(_Part):
    WRITABLE = frozenset({"action", "stimulus"})

    def __init__(self, smu: Smu) -> None:
        super().__init__(smu)
        self.action = 0
        self.stimulus = 0
        self._kind = "i"
        self._buffers: tuple[Any, ...] = (None,)

    def i(self, buf: Any) -> None:
        self._kind, self._buffers = "i", (buf,)

    def v(self, buf: Any) -> None:
        self._kind, self._buffers = "v", (buf,)

    def r(self, buf: Any) -> None:
        self._kind, self._buffers = "r", (buf,)

    def p(self, buf: Any) -> None:
        self._kind, self._buffers = "p", (buf,)

    def iv(self, ibuf: Any, vbuf: Any) -> None:
        self._kind, self._buffers = "iv", (ibuf, vbuf)


class TriggerEnd(TspObject):
    WRITABLE = frozenset({"action", "stimulus"})

    def __init__(self, action: int) -> None:
        self.action = action
        self.stimulus = 0


class TriggerArm(TspObject):
    WRITABLE = frozenset({"count", "stimulus"})

    def __init__(self) -> None:
        self.count = 1
        self.stimulus = 0


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
        self.sense = 0
        self.source = Source(self)
        self.measure = Measure(self)
        self.trigger = SmuTrigger(self, base_event)
        self.nvbuffer1 = Buffer()
        self.nvbuffer2 = Buffer()
        self.buffer = Anything()
        self.cal = Anything()

    def makebuffer(self, size: Any) -> Buffer:
        return Buffer(int(tsp_number(size)))

    def reset(self) -> None:
        self._ch.reset()
        base = self.trigger.CONSTANTS["ARMED_EVENT_ID"]
        self.__init__(self._emulator, self._ch, base)  # type: ignore[misc]

    # ------------------------------------------------------------------ measuring
    def sample(self, kind: str, buffers: tuple[Any, ...]) -> tuple[float, ...]:
        """One measurement of ``kind`` (i, v, r, p, iv), stored in the given buffers."""
        m = self._ch.measure()
        i, v = m.current_A, m.voltage_V
        values = {
            "i": (i,),
            "v": (v,),
            "r": (v / i if i else 9.91e37,),
            "p": (v * i,),
            "iv": (i, v),
        }[kind]
        t = self._ch.wiring.now()
        source = self._ch.level_v if self._ch.func == "VOLT" else self._ch.level_i
        for buf, value in zip(buffers, values, strict=False):
            if buf is None:
                continue
            if not isinstance(buf, Buffer):
                raise TspError("bad argument (reading buffer expected)")
            if not buf.appendmode and not self._emulator.in_sweep(buf):
                buf.clear()
            buf.store(value, t, source)
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
        t = self.trigger
        values = t.source._values if t.source.action else []
        if t.source.action and not values:
            raise TspError("trigger model: source action enabled but no sweep list")
        count = int(tsp_number(t.count))
        if count == 0:
            count = len(values) or 1
        limit = t.source.limiti if t.source.limiti is not None else None
        idle = t.endpulse.action == 0
        buffers = t.measure._buffers
        self._emulator.begin_sweep(buffers)
        try:
            for _ in range(max(int(tsp_number(t.arm.count)), 1)):
                for k in range(count):
                    level = values[k % len(values)] if values else self._ch.level_v
                    width = self._pulse_width()
                    if idle:
                        if t.measure.action:
                            m = self._ch.measure_at(
                                level, width, None if limit is None else tsp_number(limit)
                            )
                            self._store_trigger_measurement(m, buffers, level)
                        else:
                            self._ch.pulse(level, width, None if limit is None else tsp_number(limit))
                    else:
                        self._ch.set_level_v(level)
                        self._ch.hold(width)
                        if t.measure.action:
                            self.sample(t.measure._kind, buffers)
        finally:
            self._emulator.end_sweep()

    def _store_trigger_measurement(self, m: Any, buffers: tuple[Any, ...], level: float) -> None:
        i, v = m.current_A, m.voltage_V
        kind = self.trigger.measure._kind
        values = {"i": (i,), "v": (v,), "r": (v / i if i else 9.91e37,), "p": (v * i,), "iv": (i, v)}[kind]
        t = self._ch.wiring.now()
        for buf, value in zip(buffers, values, strict=False):
            if isinstance(buf, Buffer):
                buf.store(value, t, level)


class TriggerTimer(TspObject):
    """``trigger.timer[N]``."""

    WRITABLE = frozenset({"delay", "delaylist", "count", "passthrough", "stimulus"})

    def __init__(self, n: int) -> None:
        self.EVENT_ID = 40 + n
        self.reset()

    def reset(self) -> None:
        self.delay = 10e-6
        self.delaylist = None
        self.count = 1
        self.passthrough = False
        self.stimulus = 0
        self._next = 0

    def clear(self) -> None:
        self._next = 0

    def next_delay(self) -> float:
        if self.delaylist is not None:
            delays = [tsp_number(v) for v in self.delaylist.values()]
            if delays:
                d = delays[self._next % len(delays)]
                self._next += 1
                return d
        return tsp_number(self.delay)


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
        self.blender = Anything()
        self.EVENT_ID = 70

    def clear(self) -> None:
        return None

    def wait(self, timeout: Any = 0) -> bool:
        return False


class LocalNode(TspObject):
    WRITABLE = frozenset(
        {"linefreq", "prompts", "prompts4882", "showerrors", "autolinefreq", "password", "passwordmode"}
    )

    def __init__(self, model: str, serial: str, revision: str) -> None:
        self.model = model
        self.serialno = serial
        self.revision = revision
        self.description = f"System SourceMeter Model {model} - {serial}"
        self.linefreq = 50
        self.autolinefreq = 1
        self.prompts = 0
        self.prompts4882 = 1
        self.showerrors = 0
        self.password = ""
        self.passwordmode = 1


class BenchTimer(TspObject):
    """``timer``: ``timer.reset()``, ``timer.measure.t()`` on the bench clock."""

    def __init__(self, wiring: Wiring) -> None:
        self._wiring = wiring
        self._t0 = wiring.now()
        self.measure = Anything()
        t = self.t  # one bound method for the timer's lifetime (see tsp.stable)
        self.measure.tsp_get = lambda name: t if name == "t" else None  # type: ignore[method-assign]

    def reset(self) -> None:
        self._t0 = self._wiring.now()

    def t(self) -> float:
        return self._wiring.now() - self._t0


FACTORY_SCRIPTS = r"""
function SweepVLinMeasureI(smu, startv, stopv, stime, points)
  smu.source.func = smu.OUTPUT_DCVOLTS
  smu.nvbuffer1.clear()
  smu.nvbuffer1.appendmode = 1
  smu.source.output = smu.OUTPUT_ON
  for k = 0, points - 1 do
    if points > 1 then smu.source.levelv = startv + (stopv - startv) * k / (points - 1) else smu.source.levelv = startv end
    delay(stime)
    smu.measure.i(smu.nvbuffer1)
  end
  smu.source.levelv = 0
  smu.source.output = smu.OUTPUT_OFF
end
function SweepVListMeasureI(smu, vlist, stime, points)
  smu.source.func = smu.OUTPUT_DCVOLTS
  smu.nvbuffer1.clear()
  smu.nvbuffer1.appendmode = 1
  smu.source.output = smu.OUTPUT_ON
  for k = 1, points do
    smu.source.levelv = vlist[k]
    delay(stime)
    smu.measure.i(smu.nvbuffer1)
  end
  smu.source.levelv = 0
  smu.source.output = smu.OUTPUT_OFF
end
"""

#: 2600B models with one channel; the others have smua and smub.
SINGLE_CHANNEL_MODELS = ("2601B", "2611B", "2635B", "2601B-PULSE")


class Keithley2600Emulator(TspInstrument):
    """An emulated Keithley 2600B, its channels wired to the twin through ``wiring``.

    Args:
        twin: the shared twin.
        wiring: the bench; ``None``: this SMU alone, each channel cabled straight to cell
            (0, 0) of the twin's first array.
        name: the instrument's name in the station (how the wiring knows its terminals).
        model: ``2636B`` (two channels, the default), ``2602B``, ``2601B``...
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
        self.twin = twin
        self.name = name
        self.model_name = model
        self.wiring = wiring or direct_wiring(twin, name, ("a", "b"))
        names = ("a",) if model.upper() in SINGLE_CHANNEL_MODELS else ("a", "b")
        defaults = SourceDefaults(limit_i_A=1e-1, limit_v_V=20.0, nplc=1.0)
        self.channels = {c: SourceChannel(self.wiring, name, c, defaults) for c in names}
        self.idn = f"Keithley Instruments Inc., Model {model}, 4123456, 3.3.5"
        self._sweep_buffers: tuple[Any, ...] = ()
        super().__init__(host, port, latency_s, faults, on_message)

    # ------------------------------------------------------------------ tables
    def install(self, g: Any) -> None:
        self.trigger = Trigger()
        self.localnode = LocalNode(self.model_name, "4123456", "3.3.5")
        g.trigger = self.trigger
        g.localnode = self.localnode
        g.timer = BenchTimer(self.wiring)
        self.smus = {}
        for k, (c, ch) in enumerate(self.channels.items()):
            smu = Smu(self, ch, 1 + 10 * k)
            self.smus[c] = smu
            g[f"smu{c}"] = smu
        self.lua.execute(FACTORY_SCRIPTS)

    def reset_instrument(self) -> None:
        for c, smu in self.smus.items():
            smu.reset()
            self.channels[c].reset()
        for timer in self.trigger.timer:
            timer.reset()

    def reset_state(self) -> None:
        for ch in self.channels.values():
            ch.reset()
        super().reset_state()

    def delay(self, seconds: Any) -> None:
        self.wiring.advance(max(tsp_number(seconds), 0.0))

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
