"""The instrument command tables of ``docs/instrument-commands.md`` and a parser of what a driver sends.

The markdown file holds one table per instrument model; its section heading names the model key
in backticks (``## Keithley 2450 SourceMeter (`keithley2450`)``). Each table row is
``| `command` | forms | what the driver uses it for | manual section |``:

* SCPI commands are written in the manual's notation: long form with the short form in capitals,
  optional nodes in brackets, a numeric suffix as ``[c]`` or ``[n]``
  (``[:SOURce[c]]:VOLTage[:LEVel][:IMMediate][:AMPLitude]``); common commands as ``*IDN?``;
* TSP commands are attribute or function paths with ``smuX`` for ``smua``/``smub``, ``[N]`` for an
  index and ``nvbufferY`` for ``nvbuffer1``/``nvbuffer2`` (``smuX.trigger.source.listv()``);
* forms, comma-separated: ``set`` (SCPI command form, or a TSP assignment), ``query`` (SCPI ``?``
  form, or a TSP attribute read), ``call`` (a TSP function call), ``value`` (a TSP constant or
  object used as a value), ``keyword`` (``loadscript``/``endscript``).

:func:`scpi_commands` and :class:`TspSession` turn a message into ``(command, form)`` items;
:class:`CommandTable` says which of them the table lacks. Anything the parsers cannot place is an
unknown command, never silently accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The table file.
TABLE_PATH = ROOT / "docs" / "instrument-commands.md"

#: The models the file must describe, and the command language of each.
DIALECTS: dict[str, str] = {
    "keithley2450": "scpi",
    "keithley2600": "tsp",
    "b2900": "scpi",
    "keithley707b": "tsp",
    "e5250a": "scpi",
}

FORMS = ("set", "query", "call", "value", "keyword")

#: One command as the parser found it in a message: (canonical command, form).
Item = tuple[str, str]


@dataclass(frozen=True)
class Row:
    """One table row."""

    command: str
    forms: frozenset[str]
    use: str
    section: str


@dataclass
class ModelTable:
    """The table of one model: its heading, the manual it cites and its rows."""

    model: str
    heading: str
    manual: str
    rows: list[Row] = field(default_factory=list)


_HEADING = re.compile(r"^##\s+(?P<title>.*\(`(?P<model>[a-z0-9]+)`\).*)$")
_MANUAL = re.compile(r"^\*\*Manual:\*\*\s*(?P<manual>.+)$")


def _cells(line: str) -> list[str]:
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|"):
        body = body[:-1]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", body)]


def load_tables(path: Path = TABLE_PATH) -> dict[str, ModelTable]:
    """Every model table of the markdown file, by model key.

    Raises:
        ValueError: a malformed row (not four cells, command not in backticks, unknown form).
    """
    tables: dict[str, ModelTable] = {}
    current: ModelTable | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("## "):
            m = _HEADING.match(line)
            current = None
            if m:
                current = ModelTable(m.group("model"), m.group("title"), "")
                if current.model in tables:
                    raise ValueError(f"{path.name}:{number}: model '{current.model}' has two tables")
                tables[current.model] = current
            continue
        if current is None:
            continue
        m = _MANUAL.match(line.strip())
        if m:
            current.manual = m.group("manual").strip()
            continue
        if not line.lstrip().startswith("|"):
            continue
        cells = _cells(line)
        if cells and (cells[0].lower() == "command" or set(cells[0]) <= set("-: ")):
            continue  # header or separator
        if len(cells) != 4:
            raise ValueError(f"{path.name}:{number}: a row needs 4 cells, has {len(cells)}: {line!r}")
        command = cells[0]
        if not (command.startswith("`") and command.endswith("`") and len(command) > 2):
            raise ValueError(f"{path.name}:{number}: the command must be in backticks: {command!r}")
        forms = frozenset(f.strip() for f in cells[1].split(",") if f.strip())
        if not forms or not forms <= set(FORMS):
            raise ValueError(f"{path.name}:{number}: forms {cells[1]!r} are not among {', '.join(FORMS)}")
        current.rows.append(Row(command[1:-1], forms, cells[2], cells[3]))
    return tables


# --------------------------------------------------------------------------- SCPI
@dataclass(frozen=True)
class ScpiNode:
    """A table node: its long form, short form and whether it may be left out."""

    long: str
    short: str
    optional: bool

    def matches(self, mnemonic: str) -> bool:
        return mnemonic in (self.long, self.short)


_TABLE_NODE = re.compile(r"(\[:(?P<opt>[A-Za-z]+)\])|(:(?P<req>[A-Za-z]+))")
_SUFFIX_PLACEHOLDER = re.compile(r"\[(?:[cn]|\d)\]|<n>")


def scpi_pattern(command: str) -> tuple[ScpiNode, ...] | str:
    """The nodes of a table command (a SCPI header in the manual's notation), or for a common
    command its upper-case mnemonic (``*IDN``)."""
    text = command.strip().rstrip("?")
    if text.startswith("*"):
        return text.upper()
    text = _SUFFIX_PLACEHOLDER.sub("", text)
    nodes: list[ScpiNode] = []
    pos = 0
    for m in _TABLE_NODE.finditer(text):
        if m.start() != pos:
            raise ValueError(f"'{command}' is not a SCPI header in manual notation")
        name = m.group("opt") or m.group("req")
        short = re.match(r"[A-Z]+", name)
        if short is None:
            raise ValueError(f"'{command}': node '{name}' has no short form (capitals)")
        nodes.append(ScpiNode(name.upper(), short.group(0), m.group("opt") is not None))
        pos = m.end()
    if pos != len(text) or not nodes:
        raise ValueError(f"'{command}' is not a SCPI header in manual notation")
    return tuple(nodes)


def _scpi_matches(pattern: tuple[ScpiNode, ...], mnemonics: tuple[str, ...]) -> bool:
    """Whether the sent nodes spell the pattern (optional nodes present or left out)."""
    if not pattern:
        return not mnemonics
    head, rest = pattern[0], pattern[1:]
    if mnemonics and head.matches(mnemonics[0]) and _scpi_matches(rest, mnemonics[1:]):
        return True
    return head.optional and _scpi_matches(rest, mnemonics)


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts, buf, quote = [], [], ""
    for ch in text:
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            buf.append(ch)
        elif ch == separator:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


_SENT_NODE = re.compile(r"^(?P<name>[A-Za-z]+)(?P<suffix>\d*)$")


def scpi_commands(message: str) -> list[tuple[tuple[str, ...] | str, str]]:
    """The headers of a SCPI message with their forms: ``(nodes, form)`` where ``nodes`` are the
    sent mnemonics in capitals without numeric suffixes, or a common command's mnemonic.

    Program message units are split on ``;`` (outside quotes); a header without a leading colon
    continues the path of the previous one (SCPI's compound-command rule); arguments go.

    Raises:
        ValueError: a header that is not SCPI (an empty node, a character a mnemonic cannot have).
    """
    found: list[tuple[tuple[str, ...] | str, str]] = []
    path: tuple[str, ...] = ()
    for unit in _split_outside_quotes(message.strip(), ";"):
        unit = unit.strip()
        if not unit:
            continue
        header = unit.split(None, 1)[0]
        form = "query" if header.endswith("?") else "set"
        header = header.rstrip("?")
        if header.startswith("*"):
            if not re.fullmatch(r"\*[A-Za-z]+", header):
                raise ValueError(f"'{unit}' is not a SCPI common command")
            found.append((header.upper(), form))
            continue
        absolute = header.startswith(":")
        names = header[1:].split(":") if absolute else header.split(":")
        mnemonics: list[str] = []
        for name in names:
            m = _SENT_NODE.match(name)
            if m is None:
                raise ValueError(f"'{unit}': '{name}' is not a SCPI mnemonic")
            mnemonics.append(m.group("name").upper())
        nodes = tuple(mnemonics) if absolute else path + tuple(mnemonics)
        found.append((nodes, form))
        path = nodes[:-1]
    return found


# --------------------------------------------------------------------------- TSP
LUA_KEYWORDS = frozenset(
    {
        "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "if", "in",
        "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
    }
)  # fmt: skip
_STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
_COMMENT = re.compile(r"--[^\n]*")
_PATH = re.compile(r"(?<![\w.\]])[A-Za-z_]\w*(?:\[[^\]]*\])?(?:\.[A-Za-z_]\w*(?:\[[^\]]*\])?)*")
_SMU = re.compile(r"^smu[ab]$")


@dataclass
class TspSession:
    """What one TSP connection has defined so far: scripts, user functions and their locals.

    Lua names the parser knows are not instrument commands: names a ``function`` statement
    defines (and its parameters, for that function's body), ``for`` and ``local`` variables, and
    scripts named by ``loadscript``. A parameter whose name starts with ``smu`` that is used
    with dotted access inside a function body stands for the SMU passed in (``smuX``); any other
    name is looked up as an instrument command.
    """

    scripts: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    locals: set[str] = field(default_factory=set)

    def commands(self, message: str) -> list[Item]:
        """``(command, form)`` items of one TSP message (common commands such as ``*IDN?`` too)."""
        text = message.strip()
        if text.startswith("*"):
            return [(header, form) for header, form in _common_only(text)]
        words = text.split()
        if words and words[0] in ("loadscript", "loadandrunscript"):
            if len(words) != 2:
                raise ValueError(f"'{text}': loadscript takes one script name")
            self.scripts.add(words[1])
            return [(words[0], "keyword")]
        if text == "endscript":
            return [("endscript", "keyword")]
        code = _COMMENT.sub("", _STRING.sub('""', text))
        items: list[Item] = []
        for m in _PATH.finditer(code):
            raw = m.group(0)
            after = code[m.end() :].lstrip()
            before = code[: m.start()].rstrip()
            head = raw.split(".")[0].split("[")[0]
            if raw in LUA_KEYWORDS:
                continue
            if re.search(r"\bfunction\s+$", before + " "):
                self.functions.add(raw)
                params = re.match(r"\s*\(([^)]*)\)", code[m.end() :])
                if params:
                    self.locals |= {p.strip() for p in params.group(1).split(",") if p.strip()}
                continue
            if re.search(r"\b(for|local)\s+$", before + " "):
                self.locals.add(raw)
                continue
            if after.startswith("("):
                form = "call"
            elif after.startswith("=") and not after.startswith("=="):
                form = "set"
            else:
                form = "query"
            if raw in self.functions and form == "call":
                continue
            if head in self.scripts and "." in raw:
                items.append((_normalise("scriptVar" + raw[len(head) :]), form))
                continue
            if head in self.locals:
                if "." not in raw:
                    continue  # a local, or an index into one
                if not head.startswith("smu"):
                    items.append((raw, form))  # a field of a local: no instrument command
                    continue
                raw = "smuX" + raw[len(head) :]
            path = _normalise(raw)
            if form == "query" and re.fullmatch(r"[A-Z][A-Z0-9_]*", path.split(".")[-1]):
                form = "value"
            if form == "query" and (path == "smuX" or path.endswith(".nvbufferY")):
                form = "value"  # an SMU or a reading buffer passed as an object
            items.append((path, form))
        return items


def _common_only(text: str) -> list[Item]:
    items: list[Item] = []
    for header, form in scpi_commands(text):
        if not isinstance(header, str):
            raise ValueError(f"'{text}': only common commands (*IDN?) are SCPI on a TSP instrument")
        items.append((header + ("?" if form == "query" else ""), form))
    return items


def _normalise(path: str) -> str:
    """``smua``/``smub`` -> ``smuX``, ``nvbuffer1``/``2`` -> ``nvbufferY``, ``[1]`` -> ``[N]``."""
    parts = path.split(".")
    if _SMU.match(parts[0]):
        parts[0] = "smuX"
    parts = ["nvbufferY" if re.fullmatch(r"nvbuffer[12]", p) else p for p in parts]
    return re.sub(r"\[[^\]]*\]", "[N]", ".".join(parts))


# --------------------------------------------------------------------------- checking
class CommandTable:
    """The table of one model, to look sent commands up in.

    Args:
        table: the parsed markdown table.
        dialect: ``scpi`` or ``tsp``.
    """

    def __init__(self, table: ModelTable, dialect: str) -> None:
        self.table = table
        self.dialect = dialect
        self.scpi: list[tuple[tuple[ScpiNode, ...] | str, Row]] = []
        self.tsp: dict[str, Row] = {}
        for row in table.rows:
            command = row.command
            if dialect == "scpi":
                self.scpi.append((scpi_pattern(command), row))
            else:
                self.tsp[command[:-2] if command.endswith("()") else command] = row
        #: rows some checked message used
        self.used: set[str] = set()

    def unknown(self, messages: Iterable[str], session: TspSession | None = None) -> list[str]:
        """What ``messages`` send that the table lacks (``[]``: everything is in it), one line per
        command, naming the message; a message the parser cannot read is reported too."""
        problems: list[str] = []
        tsp = session if session is not None else TspSession()
        for message in messages:
            try:
                found = list(self._items(message, tsp))
            except ValueError as exc:
                problems.append(f"unparsable message {message!r}: {exc}")
                continue
            for what, form, row in found:
                if row is None:
                    problems.append(f"{what} ({form}) is not in the {self.table.model} table: {message!r}")
                elif form not in row.forms:
                    problems.append(
                        f"{what}: the {self.table.model} table lists it for {', '.join(sorted(row.forms))}, "
                        f"not {form}: {message!r}"
                    )
                else:
                    self.used.add(row.command)
        return problems

    def _items(self, message: str, tsp: TspSession) -> Iterator[tuple[str, str, Row | None]]:
        if self.dialect == "scpi":
            for header, form in scpi_commands(message):
                shown = header if isinstance(header, str) else ":" + ":".join(header)
                yield shown, form, self._scpi_row(header)
            return
        for path, form in tsp.commands(message):
            yield path, form, self.tsp.get(path)

    def _scpi_row(self, header: tuple[str, ...] | str) -> Row | None:
        for pattern, row in self.scpi:
            if isinstance(header, str) or isinstance(pattern, str):
                if header == pattern:
                    return row
            elif _scpi_matches(pattern, header):
                return row
        return None

    def unused(self) -> list[str]:
        """Rows no checked message used."""
        return [row.command for row in self.table.rows if row.command not in self.used]


def command_tables(path: Path = TABLE_PATH) -> dict[str, CommandTable]:
    """A :class:`CommandTable` per model of :data:`DIALECTS`.

    Raises:
        ValueError: a model without a table, or a table without rows or a manual.
    """
    tables = load_tables(path)
    result: dict[str, CommandTable] = {}
    for model, dialect in DIALECTS.items():
        if model not in tables:
            raise ValueError(f"{path.name}: no table for '{model}'")
        table = tables[model]
        if not table.rows or not table.manual:
            raise ValueError(f"{path.name}: the '{model}' table needs rows and a **Manual:** line")
        result[model] = CommandTable(table, dialect)
    return result
