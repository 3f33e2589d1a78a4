"""TSP (Test Script Processor) emulation: Keithley's Lua-based command language, run by real Lua.

Keithley's TSP instruments (2600B SMUs, 707B/708B matrices) execute every message as a Lua
chunk against instrument tables (``smua.source.levelv = 1``, ``channel.close("1A01")``). The
emulators do the same with an embedded Lua interpreter (lupa): the instrument tables are Python
objects (:class:`TspObject`) exposed to Lua, so scripts from the instrument manuals run as they
are - loops, functions, ``loadscript``/``endscript`` script definitions and all.

The interpreter is sandboxed: no ``os``, ``io``, ``require``, ``debug`` or Python bridge, Lua
cannot reach attributes of the Python objects that start with an underscore, memory is capped
and a chunk that runs away (an endless loop) is stopped with an error.

What every TSP emulator shares (Keithley Series 2600B Reference Manual 2600BS-901-01 Rev. D,
section 7 "TSP command reference"; the 707B/708B Reference Manual 707B-901-01 has the same
commands):

* ``print`` (one line per call, values separated by tabs, numbers in exponent form with
  ``format.asciiprecision`` significant digits), ``printnumber`` and ``printbuffer`` (comma and
  space separated in ``format.ASCII``; ``#0`` followed by IEEE-754 binary values and a new line
  in ``format.REAL32``/``format.REAL64``, byte order by ``format.byteorder``) - "format.data",
  "format.byteorder", "format.asciiprecision", "printbuffer()", "printnumber()";
* ``errorqueue.next()`` (code, message, severity, node), ``errorqueue.count``,
  ``errorqueue.clear()`` - "errorqueue.*"; errors: -285 TSP syntax error, -286 TSP runtime
  error (an unknown attribute or function is a runtime error: never a silent ``nil``);
* the status model - "status.condition" (the status byte: MSB 1, SSB 2, EAV 4, QSB 8, MAV 16,
  ESB 32, MSS 64, OSB 128), "status.standard.*" (OPC 1, QYE 4, DDE 8, EXE 16, CME 32, URQ 64,
  PON 128; errors -100..-199 set CME, -200..-299 EXE, -300..-399 and positive codes DDE,
  -400..-499 QYE), ``status.request_enable``, ``status.reset()``; the common commands ``*IDN?``,
  ``*RST``, ``*CLS``, ``*OPC``, ``*OPC?``, ``*WAI``, ``*ESE``, ``*ESE?``, ``*ESR?``, ``*SRE``,
  ``*SRE?``, ``*STB?``, ``*TST?``, ``*TRG`` (section 5/6 "Common commands");
* ``display`` (``clear``, ``settext``, ``setcursor``, ``screen``, ``sendkey``, ``getlastkey``)
  and ``beeper`` (``enable``, ``beep``), with no effect on the bench.

Deviation: ``format.asciiprecision`` powers on at 7 here (the manual's default is 6): the
project's tests and drivers have always read seven significant digits.
"""

from __future__ import annotations

import inspect
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import lupa.lua54 as lua54

from sim_backend.emulators.scpi_server import Fault, InstrumentServer

#: Lua helpers every TSP emulator defines (TSP is Lua 5.0: ``table.getn`` instead of ``#``).
LUA_PRELUDE = r"""
table.getn = function(t) return #t end
function rramhil_make_script(name, body, anonymous)
  local f, err = load(body, "=" .. name)
  if not f then error(err, 0) end
  local s = {name = name, source = body}
  s.run = function() return f() end
  setmetatable(s, {__call = function(self, ...) return f(...) end})
  if not anonymous then _G[name] = s end
  return s
end
"""

_REMOVED_GLOBALS = ("os", "io", "require", "dofile", "loadfile", "package", "debug", "python")

#: Memory a TSP emulator's Lua state may use (bytes).
LUA_MAX_MEMORY = 256 * 2**20
#: Wall-clock seconds one message may run before it is stopped (an endless loop).
CHUNK_TIME_LIMIT_S = 20.0

#: Error codes (2600B Reference Manual, "Error summary list").
TSP_SYNTAX_ERROR = -285
TSP_RUNTIME_ERROR = -286
PARAMETER_TOO_BIG = 1101
PARAMETER_TOO_SMALL = 1102

#: Standard event register bits (IEEE 488.2; "status.standard.*").
ESR_OPC, ESR_QYE, ESR_DDE, ESR_EXE, ESR_CME, ESR_URQ, ESR_PON = 1, 4, 8, 16, 32, 64, 128
#: Status byte bits ("status.condition").
STB_MSB, STB_SSB, STB_EAV, STB_QSB, STB_MAV, STB_ESB, STB_MSS, STB_OSB = 1, 2, 4, 8, 16, 32, 64, 128


class TspError(RuntimeError):
    """An error a TSP command raises on the instrument (goes to the error queue).

    ``code`` is the instrument's error code: -286 (TSP runtime error) unless the manual gives
    a more specific one (1101 parameter too big, 1102 parameter too small)."""

    def __init__(self, message: str, code: int = TSP_RUNTIME_ERROR) -> None:
        super().__init__(message)
        self.code = code


def tsp_number(value: Any) -> float:
    """A Lua number (or boolean) as a Python float; anything else is a TSP error."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    raise TspError(f"bad argument (number expected, got {_lua_type(value)})")


def check_range(name: str, value: Any, low: float, high: float) -> float:
    """``value`` as a number within ``low..high``, else the manual's parameter error."""
    x = tsp_number(value)
    if x > high:
        raise TspError(f"Parameter too big: {name} = {x:g} (at most {high:g})", PARAMETER_TOO_BIG)
    if x < low:
        raise TspError(f"Parameter too small: {name} = {x:g} (at least {low:g})", PARAMETER_TOO_SMALL)
    return x


def check_choice(name: str, value: Any, allowed: Iterable[float]) -> int:
    """``value`` as one of the ``allowed`` numbers, else the manual's parameter error."""
    x = tsp_number(value)
    options = sorted(allowed)
    if x not in options:
        code = PARAMETER_TOO_BIG if x > options[-1] else PARAMETER_TOO_SMALL
        if options[0] < x < options[-1]:
            code = TSP_RUNTIME_ERROR
        shown = ", ".join(f"{o:g}" for o in options)
        raise TspError(f"Parameter error: {name} = {x:g} is not one of {shown}", code)
    return int(x)


def _lua_type(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def format_number(value: float, precision: int = 7) -> str:
    """A number as TSP prints it in ASCII: ``precision`` significant digits, exponent form."""
    return f"{float(value):.{max(int(precision), 1) - 1}e}"


def format_value(value: Any, precision: int = 7) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(value, precision)
    if value is None:
        return "nil"
    if isinstance(value, str):
        return value
    kind = "function" if callable(value) and not isinstance(value, TspObject) else "table"
    return f"{kind}: {id(value):#x}"


class RawReply(str):
    """A reply holding binary data (``#0`` and IEEE-754 bytes), one character per byte.

    The server sends a reply as ``reply.encode(...)``; this one encodes to its bytes as they
    are (latin-1), so binary data crosses the wire unchanged."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return str.encode(self, "latin-1")


class TspObject:
    """A table of an emulated instrument as Lua sees it.

    Lua may read every public attribute and call every public method; it may set only the
    attribute names listed in ``WRITABLE`` (other assignments are TSP errors, as on the
    instrument). ``CONSTANTS`` are read-only numbers (``smua.OUTPUT_ON``...), usually per class;
    an object whose numbers depend on its instance (``smua.trigger``'s event ids) sets its own.
    Reading a name the table does not have is a TSP runtime error (the instrument's tables
    have a fixed set of fields).
    """

    WRITABLE: ClassVar[frozenset[str]] = frozenset()
    CONSTANTS: dict[str, float] = {}

    def tsp_get(self, name: str) -> Any:
        if name in self.CONSTANTS:
            return self.CONSTANTS[name]
        try:
            value = getattr(self, name)
        except AttributeError:
            raise TspError(f"attempt to index unknown field '{name}'") from None
        return stable(self, name, value)

    def tsp_set(self, name: str, value: Any) -> None:
        if name not in self.WRITABLE:
            raise TspError(f"attempt to set read-only or unknown attribute '{name}'")
        setattr(self, name, value)


def stable(owner: Any, name: str, value: Any) -> Any:
    """Hand Lua the same bound-method object every time, never a fresh temporary.

    lupa maps Python objects that cross into Lua by identity; a temporary bound method that is
    collected and whose id is reused can make a later call receive the wrong object (lupa issue
    #294: "Python userdata identity can get mixed up"). Caching the bound methods per owner keeps
    every object Lua sees alive for the owner's lifetime.
    """
    if not inspect.ismethod(value):
        return value
    cache = owner.__dict__.setdefault("_tsp_methods", {})
    cached = cache.get(name)
    if cached is None or cached.__func__ is not value.__func__:
        cache[name] = cached = value
    return cached


class TspArray(TspObject):
    """A read-only, 1-based array (buffer readings, timestamps...): a list, or a function that
    returns the present list (a live column of a buffer)."""

    def __init__(self, values: list[Any] | Callable[[], list[Any]]) -> None:
        self._source = values

    @property
    def _values(self) -> list[Any]:
        return self._source() if callable(self._source) else self._source

    @property
    def n(self) -> int:
        return len(self._values)

    def __getitem__(self, index: int) -> Any:
        i = int(index)
        values = self._values
        return values[i - 1] if 1 <= i <= len(values) else None

    def to_list(self) -> list[Any]:
        return list(self._values)


class ErrorQueue(TspObject):
    """``errorqueue``: TSP's error queue ("errorqueue.next()": code, message, severity, node)."""

    #: severity of the errors the emulators queue: 0 informational, 10 recoverable, 20 serious
    SEVERITY_RECOVERABLE = 10

    def __init__(self, on_error: Callable[[int], None] | None = None) -> None:
        self._queue: deque[tuple[int, str]] = deque(maxlen=100)
        self._on_error = on_error

    def push(self, code: int, message: str) -> None:
        self._queue.append((code, message))
        if self._on_error is not None:
            self._on_error(code)

    @property
    def count(self) -> int:
        return len(self._queue)

    def clear(self) -> None:
        self._queue.clear()

    def next(self) -> tuple[int, str, int, int]:
        if not self._queue:
            return 0, "Queue Is Empty", 0, 0
        code, message = self._queue.popleft()
        return code, message, self.SEVERITY_RECOVERABLE, 1


class StatusRegister(TspObject):
    """One register set of the status model: ``condition`` (live), ``event`` (latched
    transitions, cleared by reading), ``enable``, ``ntr``, ``ptr`` (2600B Reference Manual,
    appendix "Status model": "Status register set contents", "Enable and transition
    registers")."""

    WRITABLE = frozenset({"enable", "ntr", "ptr"})

    def __init__(
        self, constants: Mapping[str, float] | None = None, condition: Callable[[], int] | None = None
    ) -> None:
        self.CONSTANTS = dict(constants or {})
        self._condition_fn = condition
        self._condition = 0
        self._event = 0
        self.enable = 0
        self.ntr = 0
        self.ptr = 0xFFFF

    def tsp_set(self, name: str, value: Any) -> None:
        if name not in self.WRITABLE:
            raise TspError(f"attempt to set read-only or unknown attribute '{name}'")
        setattr(self, name, int(check_range(name, value, 0, 65535)))

    def update(self, condition: int | None = None) -> None:
        """Take the present condition; latch its transitions into the event register."""
        new = self._condition_fn() if condition is None and self._condition_fn else (condition or 0)
        rising, falling = new & ~self._condition, self._condition & ~new
        self._event |= (rising & int(self.ptr)) | (falling & int(self.ntr))
        self._condition = new

    @property
    def condition(self) -> int:
        self.update()
        return self._condition

    @property
    def event(self) -> int:
        self.update()
        value, self._event = self._event, 0
        return value

    def summary(self) -> bool:
        """Whether an enabled event is set (the bit this register sets one level up)."""
        self.update()
        return bool(self._event & int(self.enable))

    def clear(self) -> None:
        self._event = 0

    def reset_enables(self) -> None:
        self.enable, self.ntr, self.ptr = 0, 0, 0xFFFF


STANDARD_CONSTANTS: dict[str, float] = {
    "OPC": ESR_OPC, "OPERATION_COMPLETE": ESR_OPC, "QYE": ESR_QYE, "QUERY_ERROR": ESR_QYE,
    "DDE": ESR_DDE, "DEVICE_DEPENDENT_ERROR": ESR_DDE, "EXE": ESR_EXE, "EXECUTION_ERROR": ESR_EXE,
    "CME": ESR_CME, "COMMAND_ERROR": ESR_CME, "URQ": ESR_URQ, "USER_REQUEST": ESR_URQ,
    "PON": ESR_PON, "POWER_ON": ESR_PON,
}  # fmt: skip

STATUS_BYTE_CONSTANTS: dict[str, float] = {
    "MSB": STB_MSB, "MEASUREMENT_SUMMARY_BIT": STB_MSB, "SSB": STB_SSB, "SYSTEM_SUMMARY_BIT": STB_SSB,
    "EAV": STB_EAV, "ERROR_AVAILABLE": STB_EAV, "QSB": STB_QSB, "QUESTIONABLE_SUMMARY_BIT": STB_QSB,
    "MAV": STB_MAV, "MESSAGE_AVAILABLE": STB_MAV, "ESB": STB_ESB, "EVENT_SUMMARY_BIT": STB_ESB,
    "MSS": STB_MSS, "MASTER_SUMMARY_STATUS": STB_MSS, "OSB": STB_OSB, "OPERATION_SUMMARY_BIT": STB_OSB,
}  # fmt: skip


class StandardEvent(StatusRegister):
    """``status.standard``: the IEEE 488.2 standard event status register (events only)."""

    def __init__(self) -> None:
        super().__init__(STANDARD_CONSTANTS)

    def set_bits(self, bits: int) -> None:
        self._event |= bits

    def update(self, condition: int | None = None) -> None:
        return None

    @property
    def condition(self) -> int:
        return self._event


class Status(TspObject):
    """``status``: the status byte and the register sets below it.

    ``measurement`` is the instrument's measurement event register set (the 2600B's, with
    ``instrument.smuX`` below it); instruments without one leave it ``None``."""

    WRITABLE = frozenset({"request_enable", "node_enable"})
    CONSTANTS = STATUS_BYTE_CONSTANTS

    def __init__(self, instrument: TspInstrument) -> None:
        self._instrument = instrument
        self.standard = StandardEvent()
        self.operation = StatusRegister({})
        self.questionable = StatusRegister({})
        self.system = StatusRegister({})
        self.request_enable = 0
        self.node_enable = 0
        self._measurement: StatusRegister | None = None

    @property
    def measurement(self) -> StatusRegister:
        if self._measurement is None:
            raise TspError("attempt to index unknown field 'measurement'")
        return self._measurement

    def tsp_set(self, name: str, value: Any) -> None:
        if name not in self.WRITABLE:
            raise TspError(f"attempt to set read-only or unknown attribute '{name}'")
        setattr(self, name, int(check_range(name, value, 0, 255)))

    @property
    def condition(self) -> int:
        """The status byte ("status.condition", ``*STB?``)."""
        byte = 0
        if self._measurement is not None and self._measurement.summary():
            byte |= STB_MSB
        if self._instrument.errorqueue.count:
            byte |= STB_EAV
        if self.questionable.summary():
            byte |= STB_QSB
        if self.standard._event & int(self.standard.enable):
            byte |= STB_ESB
        if self.operation.summary():
            byte |= STB_OSB
        if byte & int(self.request_enable) & ~STB_MSS:
            byte |= STB_MSS
        return byte

    def reset(self) -> None:
        """``status.reset()``: every enable and transition register to its default."""
        for reg in (self.standard, self.operation, self.questionable, self.system, self._measurement):
            if reg is not None:
                reg.reset_enables()
        self.request_enable = 0
        self.node_enable = 0

    def clear_events(self) -> None:
        for reg in (self.standard, self.operation, self.questionable, self.system, self._measurement):
            if reg is not None:
                reg.clear()


def _esr_bits(code: int) -> int:
    """The standard event bit an error sets (IEEE 488.2 error classes)."""
    if -199 <= code <= -100:
        return ESR_CME
    if -299 <= code <= -200:
        return ESR_EXE
    if -499 <= code <= -400:
        return ESR_QYE
    return ESR_DDE


class Format(TspObject):
    """``format``: how ``printnumber``/``printbuffer`` (and ``print``'s numbers) are written
    (2600B Reference Manual, "format.data", "format.byteorder", "format.asciiprecision")."""

    WRITABLE = frozenset({"data", "byteorder", "asciiprecision"})
    CONSTANTS = {
        "ASCII": 1, "SREAL": 2, "REAL32": 2, "REAL": 3, "REAL64": 3, "DREAL": 3,
        "NORMAL": 0, "NETWORK": 0, "BIGENDIAN": 0, "SWAPPED": 1, "LITTLEENDIAN": 1,
    }  # fmt: skip

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.data = 1
        self.byteorder = 1
        self.asciiprecision = 7

    def tsp_set(self, name: str, value: Any) -> None:
        if name == "data":
            self.data = check_choice("format.data", value, (1, 2, 3))
        elif name == "byteorder":
            self.byteorder = check_choice("format.byteorder", value, (0, 1))
        elif name == "asciiprecision":
            self.asciiprecision = int(check_range("format.asciiprecision", value, 0, 16)) or 7
        else:
            super().tsp_set(name, value)

    def numbers(self, values: list[Any]) -> str:
        """Values as ``printnumber``/``printbuffer`` write them in the present format."""
        if self.data == 1:
            return ", ".join(
                v if isinstance(v, str) else format_number(tsp_number(v), self.asciiprecision) for v in values
            )
        code = ("<" if self.byteorder == 1 else ">") + ("f" if self.data == 2 else "d")
        data = b"".join(struct.pack(code, tsp_number(v)) for v in values)
        return RawReply("#0" + data.decode("latin-1"))


class Display(TspObject):
    """``display``: the front panel (text and keys have no effect on the bench; "display.*")."""

    WRITABLE = frozenset({"screen", "locallockout"})
    CONSTANTS = {"SMUA": 0, "SMUB": 1, "SMUA_SMUB": 2, "USER": 3, "LOCK": 1, "UNLOCK": 0}

    def __init__(self) -> None:
        self.screen = 0
        self.locallockout = 0
        self._text = ""
        self._key = 0

    def clear(self) -> None:
        self._text = ""

    def settext(self, text: Any) -> None:
        self._text = str(text)

    def gettext(self, *args: Any) -> str:
        return self._text

    def setcursor(self, row: Any, column: Any, style: Any = 0) -> None:
        check_range("row", row, 1, 2)
        check_range("column", column, 1, 32)

    def sendkey(self, key: Any) -> None:
        self._key = int(tsp_number(key))

    def getlastkey(self) -> int:
        return self._key


class Beeper(TspObject):
    """``beeper``: ``beeper.enable``, ``beeper.beep(duration, frequency)`` ("beeper.*")."""

    WRITABLE = frozenset({"enable"})
    CONSTANTS = {"OFF": 0, "ON": 1}

    def __init__(self) -> None:
        self.enable = 1

    def beep(self, duration: Any, frequency: Any) -> None:
        check_range("duration", duration, 0.001, 100)
        check_range("frequency", frequency, 20, 8000)


class LocalNode(TspObject):
    """``localnode`` ("localnode.*"): the instrument's identity and line frequency."""

    WRITABLE = frozenset(
        {"linefreq", "prompts", "prompts4882", "showerrors", "autolinefreq", "password", "passwordmode"}
    )

    def __init__(self, model: str, serial: str, revision: str, description: str) -> None:
        self.model = model
        self.serialno = serial
        self.revision = revision
        self.description = description
        self.linefreq = 50
        self.autolinefreq = 1
        self.prompts = 0
        self.prompts4882 = 1
        self.showerrors = 0
        self.password = ""
        self.passwordmode = 1

    def tsp_set(self, name: str, value: Any) -> None:
        if name == "linefreq":
            self.linefreq = check_choice(name, value, (50, 60))
        elif name in ("prompts", "prompts4882", "showerrors", "autolinefreq"):
            setattr(self, name, check_choice(name, value, (0, 1)))
        elif name == "passwordmode":
            self.passwordmode = check_choice(name, value, (0, 1, 2, 3))
        else:
            super().tsp_set(name, value)


def _noop(*args: Any) -> None:
    return None


def _lua_get(obj: Any, key: Any) -> Any:
    if isinstance(key, str):
        if key.startswith("_"):
            raise TspError(f"attempt to index unknown field '{key}'")
        if isinstance(obj, TspObject):
            return obj.tsp_get(key)
        raise TspError(f"attempt to index unknown field '{key}'")
    if isinstance(key, int | float) and hasattr(obj, "__getitem__"):
        return obj[int(key)]
    raise TspError(f"cannot index with {key!r}")


def _lua_set(obj: Any, key: Any, value: Any) -> None:
    if not isinstance(key, str) or key.startswith("_") or not isinstance(obj, TspObject):
        raise TspError(f"cannot set '{key}'")
    obj.tsp_set(key, value)


class TspInstrument(InstrumentServer):
    """A TSP instrument: messages are Lua chunks run against the instrument's tables.

    Subclasses add their tables in :meth:`install` (called on every reset) and set
    :attr:`idn`.
    """

    idn: str = "Keithley Instruments Inc., Model TSP, 0, 1.0"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float | None = None,
        faults: Iterable[Fault] = (),
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(host, port, latency_s, faults, on_message)
        self.errorqueue = ErrorQueue(self._on_error)
        self.status = Status(self)
        self.format = Format()
        self._output: list[str] = []
        self._collecting: tuple[str, bool, list[str]] | None = None
        self._deadline = float("inf")
        self.lua: Any = None
        self.reset_state()

    # ------------------------------------------------------------------ lua runtime
    def _new_runtime(self) -> None:
        lua = lua54.LuaRuntime(
            unpack_returned_tuples=True,
            register_eval=False,
            register_builtins=False,
            attribute_handlers=(_lua_get, _lua_set),
            max_memory=LUA_MAX_MEMORY,
        )
        g = lua.globals()
        # a runaway chunk is stopped: every million instructions the deadline is checked
        lua.execute("local check = ...; debug.sethook(function() check() end, '', 1000000)", self._watchdog)
        for name in _REMOVED_GLOBALS:
            g[name] = None
        lua.execute(LUA_PRELUDE)
        g.print = self._print
        g.printbuffer = self._printbuffer
        g.printnumber = self._printnumber
        g.errorqueue = self.errorqueue
        g.delay = self.delay
        g.waitcomplete = _noop
        g.opc = self._opc
        g.reset = self.tsp_reset
        g.display = Display()
        g.beeper = Beeper()
        g.status = self.status
        g.format = self.format
        self.lua = lua
        self.install(g)

    def _watchdog(self) -> None:
        if time.monotonic() > self._deadline:
            raise TspError(f"script stopped: ran longer than {CHUNK_TIME_LIMIT_S:g} s")

    def install(self, g: Any) -> None:
        """Define the instrument's own globals (subclasses)."""

    def reset_state(self) -> None:
        with self.lock:
            self.errorqueue.clear()
            self.status = Status(self)
            self.format = Format()
            self._collecting = None
            self._new_runtime()

    def tsp_reset(self, *args: Any) -> None:
        """``reset()``: the instrument's power-on state (the script globals stay defined)."""
        self.format.reset()
        self.reset_instrument()

    def reset_instrument(self) -> None:
        """Reset the instrument tables (subclasses); ``*RST`` and ``reset()`` call it."""

    def delay(self, seconds: Any) -> None:
        """``delay(s)``: instrument-side wait (plays out on the bench clock, no sleeping)."""
        tsp_number(seconds)

    def _opc(self) -> None:
        """``opc()``/``*OPC``: set the operation complete bit once pending work is done."""
        self.status.standard.set_bits(ESR_OPC)

    def _on_error(self, code: int) -> None:
        self.status.standard.set_bits(_esr_bits(code))

    # ------------------------------------------------------------------ output
    def _print(self, *values: Any) -> None:
        p = self.format.asciiprecision
        self._output.append("\t".join(format_value(v, p) for v in values))

    def _printnumber(self, *values: Any) -> None:
        self._output.append(self.format.numbers([tsp_number(v) for v in values]))

    def _printbuffer(self, start: Any, end: Any, *buffers: Any) -> None:
        lo, hi = int(tsp_number(start)), int(tsp_number(end))
        if not buffers:
            raise TspError("printbuffer: bad argument (buffer expected)")
        columns = []
        for buf in buffers:
            values = buf.to_list() if hasattr(buf, "to_list") else None
            if values is None:
                raise TspError("printbuffer: bad argument (buffer expected)")
            if lo < 1 or hi > len(values) or lo > hi:
                raise TspError(f"printbuffer: index {lo}..{hi} outside buffer of {len(values)} readings")
            columns.append(values[lo - 1 : hi])
        items = [col[k] for k in range(hi - lo + 1) for col in columns]
        self._output.append(self.format.numbers(items))

    # ------------------------------------------------------------------ messages
    def handle_message(self, message: str) -> str | None:
        self._output = []
        text = message.strip()
        if self._collecting is not None:
            name, run, lines = self._collecting
            if text == "endscript":
                self._collecting = None
                anonymous = name == ""
                self._run_lua(
                    f"rramhil_make_script({_lua_string(name or 'anonymous')}, "
                    f"{_lua_string(chr(10).join(lines))}, {'true' if anonymous else 'false'})"
                    + (".run()" if run and anonymous else "")
                )
                if run and not anonymous:
                    self._run_lua(f"{name}()")
            else:
                lines.append(message)
            return self._reply()
        words = text.split()
        if words and words[0] in ("loadscript", "loadandrunscript"):
            name = words[1] if len(words) > 1 else ""
            self._collecting = (name, words[0] == "loadandrunscript", [])
            return None
        upper = text.upper()
        if upper.startswith("*"):
            return self._common_command(upper)
        self._run_lua(text)
        return self._reply()

    def _common_command(self, upper: str) -> str | None:
        """IEEE 488.2 common commands (2600B Reference Manual, "Common commands")."""
        head, _, arg = upper.partition(" ")
        if head == "*IDN?":
            return self.idn
        if head == "*RST":
            self.tsp_reset()
            return None
        if head == "*CLS":
            self.errorqueue.clear()
            self.status.clear_events()
            return None
        if head == "*OPC?":
            return "1"
        if head == "*OPC":
            self._opc()
            return None
        if head in ("*WAI", "*TRG"):
            return None
        if head == "*TST?":
            return "0"
        if head == "*STB?":
            return str(self.status.condition)
        if head == "*ESR?":
            return str(self.status.standard.event)
        if head == "*ESE?":
            return str(int(self.status.standard.enable))
        if head == "*SRE?":
            return str(int(self.status.request_enable))
        if head in ("*ESE", "*SRE"):
            try:
                value = int(check_range(head, float(arg), 0, 255))
            except (ValueError, TspError) as exc:
                code = exc.code if isinstance(exc, TspError) else TSP_SYNTAX_ERROR
                self.errorqueue.push(code, f"{head} {arg}: {exc}")
                return None
            if head == "*ESE":
                self.status.standard.enable = value
            else:
                self.status.request_enable = value
            return None
        self.errorqueue.push(
            TSP_SYNTAX_ERROR, f"TSP Syntax error at line 1: unexpected symbol near '{upper[:20]}'"
        )
        return None

    def _reply(self) -> str | None:
        if not self._output:
            return None
        if any(isinstance(part, RawReply) for part in self._output):
            return RawReply("\n".join(self._output))
        return "\n".join(self._output)

    def _run_lua(self, chunk: str) -> None:
        self._deadline = time.monotonic() + CHUNK_TIME_LIMIT_S
        try:
            self.lua.execute(chunk)
        except lua54.LuaSyntaxError as exc:
            self.errorqueue.push(TSP_SYNTAX_ERROR, f"TSP Syntax error at line 1: {_first_line(exc)}")
        except TspError as exc:
            if exc.code == TSP_RUNTIME_ERROR:
                self.errorqueue.push(exc.code, f"TSP Runtime error at line 1: {_first_line(exc)}")
            else:
                self.errorqueue.push(exc.code, _first_line(exc))
        except Exception as exc:  # runtime errors of the chunk: to the error queue, like the instrument
            self.errorqueue.push(TSP_RUNTIME_ERROR, f"TSP Runtime error at line 1: {_first_line(exc)}")
        finally:
            self._deadline = float("inf")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _lua_string(text: str) -> str:
    """A Lua long-bracket string literal holding ``text`` exactly."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[\n{text}]{eq}]"
