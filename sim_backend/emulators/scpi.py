"""A small SCPI command interpreter for the emulated SCPI instruments (2450, B2900, E5250A).

Commands are declared in the notation of the programming manuals::

    interp.add("[:SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", set_level, get_level)

Upper-case letters are the short form; either the short or the long form is accepted, in any
letter case. ``[...]`` marks an optional node, ``#`` an optional numeric suffix (a channel
number: ``:SOUR2:VOLT``), passed to the handler in ``suffixes``. A message holds program units
separated by ``;``; a unit without a leading colon continues the path of the unit before it
(``:SOUR:VOLT 1;CURR 2`` sets ``:SOUR:CURR``), as SCPI has it. Replies of the queries of one
message are joined by ``;`` into one line. An unknown header or a bad parameter puts an error
in the queue (``:SYST:ERR?``) and ends the message.

The IEEE 488.2 status model (IEEE Std 488.2-1992 section 11, "Device Status Reporting"; the
same registers in the Keithley 2450 Reference Manual 2450-901-01, "Status model", and the
Keysight B2900 and E5250A programming guides) lives in :class:`StatusRegisters`: every error put
in the queue sets its class's bit of the Standard Event Status Register (command error -1xx:
CME, execution error -2xx: EXE, device-dependent -3xx and positive codes: DDE, query error
-4xx: QYE), and :meth:`ScpiInterpreter.status_byte` sums the status byte (EAV, QSB, MAV, ESB,
MSS, OSB). No exception escapes :meth:`ScpiInterpreter.execute`: a handler that fails
unexpectedly reports a SCPI error and the message ends, the connection stays.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

#: A command handler: ``(parameters, suffixes) -> reply`` (``None`` for no reply).
Handler = Callable[[list[str], list[int]], "str | None"]


class ScpiError(Exception):
    """A SCPI error: code and message as ``:SYST:ERR?`` reports them."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code},{message}")
        self.code = code
        self.message = message


# Standard Event Status Register bits (IEEE 488.2 section 11.5.1.1)
ESR_OPC = 1  #: bit 0, operation complete (``*OPC``)
ESR_RQC = 2  #: bit 1, request control (not used)
ESR_QYE = 4  #: bit 2, query error (-400 to -499)
ESR_DDE = 8  #: bit 3, device-dependent error (-300 to -399, and positive codes)
ESR_EXE = 16  #: bit 4, execution error (-200 to -299)
ESR_CME = 32  #: bit 5, command error (-100 to -199)
ESR_URQ = 64  #: bit 6, user request (not used)
ESR_PON = 128  #: bit 7, power on

# Status Byte bits (IEEE 488.2 section 11.2; SCPI-99 volume 1 section 9)
STB_EAV = 4  #: bit 2, error/event queue not empty
STB_QSB = 8  #: bit 3, questionable status summary
STB_MAV = 16  #: bit 4, message available
STB_ESB = 32  #: bit 5, standard event status summary (``*ESR`` and ``*ESE``)
STB_MSS = 64  #: bit 6, master summary status (``*STB?``; RQS in a serial poll)
STB_OSB = 128  #: bit 7, operation status summary


def esr_bit(code: int) -> int:
    """The Standard Event Status Register bit an error code sets (IEEE 488.2 section 11.5.1.1;
    SCPI-99 volume 2 section 21.8: -1xx command, -2xx execution, -3xx device-dependent, -4xx
    query errors; instrument-specific positive codes are device-dependent)."""
    if -199 <= code <= -100:
        return ESR_CME
    if -299 <= code <= -200:
        return ESR_EXE
    if -399 <= code <= -300 or code > 0:
        return ESR_DDE
    if -499 <= code <= -400:
        return ESR_QYE
    return 0


@dataclass
class EventRegister:
    """A SCPI status register: condition, event (latched) and enable (SCPI-99 volume 1 9.3)."""

    condition: int = 0
    event: int = 0
    enable: int = 0

    def read_event(self) -> int:
        """The event register, cleared by the read."""
        value, self.event = self.event, 0
        return value

    def summary(self) -> bool:
        return bool(self.event & self.enable)


@dataclass
class StatusRegisters:
    """The IEEE 488.2 / SCPI status registers of one instrument.

    ``esr``: the Standard Event Status Register (``*ESR?`` reads and clears it); ``ese``: its
    enable register (``*ESE``); ``sre``: the Service Request Enable register (``*SRE``; bit 6
    is not used, IEEE 488.2 section 11.3.2.3); ``operation`` and ``questionable``: the SCPI
    operation and questionable status registers (``:STATus:OPERation|QUEStionable``).
    The power-on state has PON set in the ESR (IEEE 488.2 section 11.5.1.1.2)."""

    esr: int = ESR_PON
    ese: int = 0
    sre: int = 0
    operation: EventRegister = field(default_factory=EventRegister)
    questionable: EventRegister = field(default_factory=EventRegister)

    def clear_events(self) -> None:
        """``*CLS``: clear the event registers (enable registers are kept)."""
        self.esr = 0
        self.operation.event = 0
        self.questionable.event = 0

    def preset(self) -> None:
        """``:STATus:PRESet``: the SCPI enable registers to their preset (0) values
        (SCPI-99 volume 2 section 20.7; ``*ESE``/``*SRE`` are not affected)."""
        self.operation.enable = 0
        self.questionable.enable = 0


def undefined_header(header: str) -> ScpiError:
    return ScpiError(-113, f'"Undefined header; {header}"')


def illegal_value(detail: str) -> ScpiError:
    return ScpiError(-224, f'"Illegal parameter value; {detail}"')


def missing_parameter(header: str) -> ScpiError:
    return ScpiError(-109, f'"Missing parameter; {header}"')


def parameter_not_allowed(header: str) -> ScpiError:
    return ScpiError(-108, f'"Parameter not allowed; {header}"')


def out_of_range(detail: str) -> ScpiError:
    return ScpiError(-222, f'"Data out of range; {detail}"')


def settings_conflict(detail: str) -> ScpiError:
    return ScpiError(-221, f'"Settings conflict; {detail}"')


def _node_regex(node: str) -> str:
    """Regex of one mnemonic like ``VOLTage`` (short ``VOLT`` or long ``VOLTAGE``) or ``SOURce#``."""
    suffix = node.endswith("#")
    word = node.rstrip("#")
    short = "".join(ch for ch in word if ch.isupper() or ch.isdigit() or ch == "*")
    rest = word[len(short) :].upper()
    body = re.escape(short) + (f"(?:{re.escape(rest)})?" if rest else "")
    return body + (r"(\d*)" if suffix else "")


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a manual-style header pattern to a full-match, case-insensitive regex.

    The regex matches headers written with a leading colon (``execute`` adds one)."""
    out = ""
    for optional, node in re.findall(r"(\[?):?([A-Za-z0-9#*]+)\]?", pattern):
        part = ":" + _node_regex(node)
        out += f"(?:{part})?" if optional else part
    return re.compile(out, re.IGNORECASE)


def split_units(message: str) -> list[str]:
    """Split a program message at ``;`` outside quotes and parentheses."""
    return _split(message, ";")


def split_params(text: str) -> list[str]:
    """Split a parameter list at ``,`` outside quotes and parentheses."""
    return [p.strip() for p in _split(text, ",")] if text.strip() else []


def _split(text: str, sep: str) -> list[str]:
    parts, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur.append(ch)
        elif ch == "(":
            depth += 1
            cur.append(ch)
        elif ch == ")":
            depth -= 1
            cur.append(ch)
        elif ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


# --------------------------------------------------------------------- parameter parsing
def number(
    text: str, default: float | None = None, lo: float | None = None, hi: float | None = None
) -> float:
    """A numeric parameter; ``MIN``/``MAX``/``DEF`` map to ``lo``/``hi``/``default``."""
    t = text.strip().upper()
    special = {"MIN": lo, "MINIMUM": lo, "MAX": hi, "MAXIMUM": hi, "DEF": default, "DEFAULT": default}
    if t in special:
        value = special[t]
        if value is None:
            raise illegal_value(text)
        return float(value)
    try:
        value = float(t)
    except ValueError:
        raise ScpiError(-104, f'"Data type error; {text}"') from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ScpiError(-222, f'"Data out of range; {text}"')
    return value


def boolean(text: str) -> bool:
    t = text.strip().upper()
    if t in ("ON", "1", "TRUE"):
        return True
    if t in ("OFF", "0", "FALSE"):
        return False
    try:
        return float(t) != 0
    except ValueError:
        raise illegal_value(text) from None


def string(text: str) -> str:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return t[1:-1]
    return t


def choice(text: str, options: dict[str, str]) -> str:
    """A character parameter: ``options`` maps accepted spellings (upper case) to values."""
    t = string(text).upper()
    if t not in options:
        raise illegal_value(text)
    return options[t]


def channel_list(text: str) -> list[int]:
    """``(@1,2)`` or ``(@10101:10103,10205)`` as a list of integers (ranges expanded)."""
    m = re.fullmatch(r"\s*\(@([\d,:\s]*)\)\s*", text)
    if not m:
        raise illegal_value(f"channel list {text}")
    result: list[int] = []
    for item in m.group(1).split(","):
        item = item.strip()
        if not item:
            continue
        if ":" in item:
            a, b = (int(x) for x in item.split(":"))
            result += list(range(min(a, b), max(a, b) + 1))
        else:
            result.append(int(item))
    return result


def fmt(value: float) -> str:
    """A measured number with 7 significant digits (a 6.5-digit instrument read-out)."""
    return f"{float(value):.6E}"


@dataclass
class _Command:
    regex: re.Pattern[str]
    setter: Handler | None
    getter: Handler | None
    pattern: str


class ScpiInterpreter:
    """Parses program messages and dispatches their units to the declared handlers."""

    #: error queue length; when it is full the last entry becomes -350 "Queue overflow"
    #: (SCPI-99 volume 2 section 21.8.9)
    queue_capacity = 100

    def __init__(self) -> None:
        self._commands: list[_Command] = []
        self._common: dict[str, Handler] = {}
        self.errors: deque[tuple[int, str]] = deque(maxlen=self.queue_capacity)
        self.status = StatusRegisters()
        #: replies of the message being executed are waiting (MAV, for ``*STB?``)
        self.output_pending = False
        #: unexpected exceptions a handler raised (reported as SCPI errors; tests check it)
        self.internal_errors: list[str] = []

    def add(self, pattern: str, setter: Handler | None = None, getter: Handler | None = None) -> None:
        """Declare a command: ``setter`` runs for ``HEADER params``, ``getter`` for ``HEADER? params``."""
        self._commands.append(_Command(compile_pattern(pattern), setter, getter, pattern))

    def add_common(self, name: str, handler: Handler) -> None:
        """Declare a common command such as ``*IDN?`` or ``*RST``."""
        self._common[name.upper()] = handler

    def push_error(self, code: int, message: str) -> None:
        """Queue an error and set its bit in the Standard Event Status Register.

        A full queue keeps its entries and its last one becomes -350 "Queue overflow"
        (SCPI-99 volume 2 section 21.8.9)."""
        self.status.esr |= esr_bit(code)
        if len(self.errors) < self.queue_capacity - 1:
            self.errors.append((code, message))
        elif len(self.errors) == self.queue_capacity - 1:
            self.status.esr |= esr_bit(-350)
            self.errors.append((-350, '"Queue overflow"'))

    def clear_status(self) -> None:
        """``*CLS``: event registers and error queue cleared (IEEE 488.2 section 10.3)."""
        self.status.clear_events()
        self.errors.clear()

    def status_byte(self) -> int:
        """The status byte (IEEE 488.2 section 11.2): EAV (bit 2) while the error queue holds
        an error, QSB (3) and OSB (7) the enabled summaries of the questionable and operation
        registers, MAV (4) while a reply waits, ESB (5) when ``*ESR & *ESE``, and MSS (6)
        when any other bit is enabled in ``*SRE``."""
        st = self.status
        stb = STB_EAV if self.errors else 0
        stb |= STB_QSB if st.questionable.summary() else 0
        stb |= STB_MAV if self.output_pending else 0
        stb |= STB_ESB if st.esr & st.ese else 0
        stb |= STB_OSB if st.operation.summary() else 0
        if stb & st.sre & ~STB_MSS:
            stb |= STB_MSS
        return stb

    def next_error(self) -> tuple[int, str]:
        return self.errors.popleft() if self.errors else (0, '"No error"')

    def _find(self, header: str) -> tuple[_Command, list[int]] | None:
        for cmd in self._commands:
            m = cmd.regex.fullmatch(header)
            if m:
                return cmd, [int(g) for g in m.groups() if g]
        return None

    def execute(self, message: str) -> str | None:
        """Run one program message; returns the joined replies, or ``None`` if none."""
        replies: list[str] = []
        path = ""
        self.output_pending = False
        for unit in split_units(message):
            unit = unit.strip()
            if not unit:
                continue
            head, rest = _header(unit)
            try:
                params = split_params(rest)
                if head.lstrip(":").startswith("*"):
                    common = head.lstrip(":").upper()
                    handler = self._common.get(common)
                    if handler is None:
                        raise undefined_header(head)
                    reply = handler(params, [])
                else:
                    query = head.endswith("?")
                    bare = head[:-1] if query else head
                    absolute = ":" + bare.lstrip(":")
                    full = absolute if bare.startswith(":") or not path else path + bare
                    found = self._find(full) or (self._find(absolute) if full != absolute else None)
                    if found is None:
                        raise undefined_header(head)
                    cmd, suffixes = found
                    path = full[: full.rfind(":") + 1]
                    handler = cmd.getter if query else cmd.setter
                    if handler is None:
                        raise undefined_header(head)
                    reply = handler(params, suffixes)
            except ScpiError as exc:
                self.push_error(exc.code, exc.message)
                break
            except Exception as exc:  # a handler's bug must not take the connection down
                self.internal_errors.append(f"{unit!r}: {type(exc).__name__}: {exc}")
                code, text = _unexpected(exc)
                self.push_error(code, f'"{text}; {head}"')
                break
            if reply is not None:
                replies.append(reply)
                self.output_pending = True
        self.output_pending = False
        return ";".join(replies) if replies else None


def _header(unit: str) -> tuple[str, str]:
    """A program message unit split into its header and its parameter text (IEEE 488.2
    section 7.1: the header ends at the first white space)."""
    m = re.match(r"(\S*)\s*(.*)", unit, re.DOTALL)
    assert m is not None  # the pattern matches any text
    return m.group(1), m.group(2)


def _unexpected(exc: Exception) -> tuple[int, str]:
    """The SCPI error an unexpected handler failure is reported as."""
    if isinstance(exc, IndexError):
        return -109, "Missing parameter"
    if isinstance(exc, ValueError | OverflowError):
        return -224, "Illegal parameter value"
    return -200, "Execution error"
