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
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

#: A command handler: ``(parameters, suffixes) -> reply`` (``None`` for no reply).
Handler = Callable[[list[str], list[int]], "str | None"]


class ScpiError(Exception):
    """A SCPI error: code and message as ``:SYST:ERR?`` reports them."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code},{message}")
        self.code = code
        self.message = message


def undefined_header(header: str) -> ScpiError:
    return ScpiError(-113, f'"Undefined header; {header}"')


def illegal_value(detail: str) -> ScpiError:
    return ScpiError(-224, f'"Illegal parameter value; {detail}"')


def missing_parameter(header: str) -> ScpiError:
    return ScpiError(-109, f'"Missing parameter; {header}"')


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

    def __init__(self) -> None:
        self._commands: list[_Command] = []
        self._common: dict[str, Handler] = {}
        self.errors: deque[tuple[int, str]] = deque(maxlen=100)

    def add(self, pattern: str, setter: Handler | None = None, getter: Handler | None = None) -> None:
        """Declare a command: ``setter`` runs for ``HEADER params``, ``getter`` for ``HEADER? params``."""
        self._commands.append(_Command(compile_pattern(pattern), setter, getter, pattern))

    def add_common(self, name: str, handler: Handler) -> None:
        """Declare a common command such as ``*IDN?`` or ``*RST``."""
        self._common[name.upper()] = handler

    def push_error(self, code: int, message: str) -> None:
        self.errors.append((code, message))

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
        for unit in split_units(message):
            unit = unit.strip()
            if not unit:
                continue
            head, _, rest = unit.partition(" ")
            head = head.strip()
            params = split_params(rest)
            try:
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
            if reply is not None:
                replies.append(reply)
        return ";".join(replies) if replies else None
