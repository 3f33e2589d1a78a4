"""TSP (Test Script Processor) emulation: Keithley's Lua-based command language, run by real Lua.

Keithley's TSP instruments (2600B SMUs, 707B/708B matrices) execute every message as a Lua
chunk against instrument tables (``smua.source.levelv = 1``, ``channel.close("1A01")``). The
emulators do the same with an embedded Lua interpreter (lupa): the instrument tables are Python
objects (:class:`TspObject`) exposed to Lua, so scripts from the instrument manuals run as they
are - loops, functions, ``loadscript``/``endscript`` script definitions and all.

The interpreter is sandboxed: no ``os``, ``io``, ``require``, ``debug`` or Python bridge, and
Lua cannot reach attributes of the Python objects that start with an underscore.

Output: ``print`` sends one line per call (numbers formatted with 7 significant digits, like
an instrument's 6.5-digit read-out), ``printbuffer``/``printnumber`` one comma-separated line.
Errors go to ``errorqueue`` (code -285 syntax error, -286 runtime error) and produce no output,
as on the instrument (prompts off).
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Iterable
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


class TspError(RuntimeError):
    """An error a TSP command raises on the instrument (goes to the error queue)."""


def tsp_number(value: Any) -> float:
    """A Lua number (or boolean) as a Python float; anything else is a TSP error."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    raise TspError(f"bad argument (number expected, got {type(value).__name__})")


def format_number(value: float) -> str:
    """A number as TSP prints it: 7 significant digits, exponent form."""
    return f"{float(value):.6e}"


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_number(value)
    if value is None:
        return "nil"
    if isinstance(value, str):
        return value
    return f"{type(value).__name__}: {id(value):#x}"


class TspObject:
    """A table of an emulated instrument as Lua sees it.

    Lua may read every public attribute and call every public method; it may set only the
    attribute names listed in ``WRITABLE`` (other assignments are TSP errors, as on the
    instrument). ``CONSTANTS`` are read-only numbers (``smua.OUTPUT_ON``...), usually per class;
    an object whose numbers depend on its instance (``smua.trigger``'s event ids) sets its own.
    """

    WRITABLE: ClassVar[frozenset[str]] = frozenset()
    CONSTANTS: dict[str, float] = {}

    def tsp_get(self, name: str) -> Any:
        if name in self.CONSTANTS:
            return self.CONSTANTS[name]
        try:
            value = getattr(self, name)
        except AttributeError:
            return None  # Lua: an absent field is nil
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
    """A read-only, 1-based array (buffer readings, timestamps...)."""

    def __init__(self, values: list[float]) -> None:
        self._values = values

    def __getitem__(self, index: int) -> float | None:
        i = int(index)
        return self._values[i - 1] if 1 <= i <= len(self._values) else None

    def to_list(self) -> list[float]:
        return list(self._values)


class ErrorQueue(TspObject):
    """``errorqueue``: TSP's error queue."""

    def __init__(self) -> None:
        self._queue: deque[tuple[int, str]] = deque(maxlen=100)

    def push(self, code: int, message: str) -> None:
        self._queue.append((code, message))

    @property
    def count(self) -> int:
        return len(self._queue)

    def clear(self) -> None:
        self._queue.clear()

    def next(self) -> tuple[int, str, int, int]:
        if not self._queue:
            return 0, "Queue Is Empty", 0, 0
        code, message = self._queue.popleft()
        return code, message, 2, 0


class Anything(TspObject):
    """A table that accepts any attribute and any call (``display``, ``beeper``...): front-panel
    and sound features that have no effect on the emulated bench."""

    def tsp_get(self, name: str) -> Any:
        return _noop

    def tsp_set(self, name: str, value: Any) -> None:
        return None


def _noop(*args: Any) -> None:
    return None


def _lua_get(obj: Any, key: Any) -> Any:
    if isinstance(key, str):
        if key.startswith("_"):
            raise AttributeError(f"no attribute '{key}'")
        if isinstance(obj, TspObject):
            return obj.tsp_get(key)
        raise AttributeError(f"no attribute '{key}'")
    if isinstance(key, int | float) and hasattr(obj, "__getitem__"):
        return obj[int(key)]
    raise AttributeError(f"cannot index with {key!r}")


def _lua_set(obj: Any, key: Any, value: Any) -> None:
    if not isinstance(key, str) or key.startswith("_") or not isinstance(obj, TspObject):
        raise AttributeError(f"cannot set '{key}'")
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
        self.errorqueue = ErrorQueue()
        self._output: list[str] = []
        self._collecting: tuple[str, bool, list[str]] | None = None
        self.lua: Any = None
        self.reset_state()

    # ------------------------------------------------------------------ lua runtime
    def _new_runtime(self) -> None:
        lua = lua54.LuaRuntime(
            unpack_returned_tuples=True,
            register_eval=False,
            register_builtins=False,
            attribute_handlers=(_lua_get, _lua_set),
        )
        g = lua.globals()
        for name in _REMOVED_GLOBALS:
            g[name] = None
        lua.execute(LUA_PRELUDE)
        g.print = self._print
        g.printbuffer = self._printbuffer
        g.printnumber = self._printnumber
        g.errorqueue = self.errorqueue
        g.delay = self.delay
        g.waitcomplete = _noop
        g.opc = _noop
        g.reset = self.tsp_reset
        g.display = Anything()
        g.beeper = Anything()
        g.status = Anything()
        g.format = Anything()
        self.lua = lua
        self.install(g)

    def install(self, g: Any) -> None:
        """Define the instrument's own globals (subclasses)."""

    def reset_state(self) -> None:
        with self.lock:
            self.errorqueue.clear()
            self._collecting = None
            self._new_runtime()

    def tsp_reset(self, *args: Any) -> None:
        """``reset()``: the instrument's power-on state (the script globals stay defined)."""
        self.reset_instrument()

    def reset_instrument(self) -> None:
        """Reset the instrument tables (subclasses); ``*RST`` and ``reset()`` call it."""

    def delay(self, seconds: Any) -> None:
        """``delay(s)``: instrument-side wait (plays out on the bench clock, no sleeping)."""
        tsp_number(seconds)

    # ------------------------------------------------------------------ output
    def _print(self, *values: Any) -> None:
        self._output.append("\t".join(format_value(v) for v in values))

    def _printnumber(self, *values: Any) -> None:
        self._output.append(", ".join(format_number(tsp_number(v)) for v in values))

    def _printbuffer(self, start: Any, end: Any, *buffers: Any) -> None:
        lo, hi = int(tsp_number(start)), int(tsp_number(end))
        columns = []
        for buf in buffers:
            values = buf.to_list() if hasattr(buf, "to_list") else None
            if values is None:
                raise TspError("printbuffer: bad argument (buffer expected)")
            if lo < 1 or hi > len(values):
                raise TspError(f"printbuffer: index {lo}..{hi} outside buffer of {len(values)} readings")
            columns.append(values[lo - 1 : hi])
        items = [format_number(col[k]) for k in range(hi - lo + 1) for col in columns]
        self._output.append(", ".join(items))

    # ------------------------------------------------------------------ messages
    def handle_message(self, message: str) -> str | None:
        self._output = []
        text = message.strip()
        if self._collecting is not None:
            name, run, lines = self._collecting
            if text == "endscript":
                self._collecting = None
                self._run_lua(
                    f"rramhil_make_script({_lua_string(name)}, {_lua_string(chr(10).join(lines))}, false)"
                )
                if run:
                    self._run_lua(f"{name}()")
            else:
                lines.append(message)
            return self._reply()
        words = text.split()
        if words and words[0] in ("loadscript", "loadandrunscript"):
            name = words[1] if len(words) > 1 else "anonymous"
            self._collecting = (name, words[0] == "loadandrunscript", [])
            return None
        upper = text.upper()
        if upper == "*IDN?":
            return self.idn
        if upper == "*RST":
            self.reset_instrument()
            return None
        if upper == "*CLS":
            self.errorqueue.clear()
            return None
        if upper == "*OPC?":
            return "1"
        if upper in ("*OPC", "*WAI", "*TRG", "ABORT", "ENDFLASH"):
            return None
        self._run_lua(text)
        return self._reply()

    def _reply(self) -> str | None:
        return "\n".join(self._output) if self._output else None

    def _run_lua(self, chunk: str) -> None:
        try:
            self.lua.execute(chunk)
        except lua54.LuaSyntaxError as exc:
            self.errorqueue.push(-285, f"TSP Syntax error at line 1: {_first_line(exc)}")
        except Exception as exc:  # runtime errors of the chunk: to the error queue, like the instrument
            self.errorqueue.push(-286, f"TSP Runtime error at line 1: {_first_line(exc)}")


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
