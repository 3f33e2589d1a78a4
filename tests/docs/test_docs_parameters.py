"""The docs agree with the code: every protocol parameter the docs name, set or give a default for
is one of the protocol's own (its ``Params`` model), with that default and that unit; every file
the docs point to is in the repository.

What counts as a parameter mention (``docs/*.md`` and ``README.md``):

1. ``--set name=value`` in a command (a code block line or an inline code span, which may wrap):
   ``name`` must be a parameter of the command's protocol (``rram-hil run PROTOCOL``;
   ``rram-hil reproduce choi2021`` runs ``hybrid-training``; a span without a command: any
   protocol), and the command's values together must validate, as ``--set`` text, against it
   (placeholders such as ``K`` or ``...`` are checked by name only).
2. an inline ``` `name=value` ``` whose name is a protocol parameter: the value must validate for
   the document's protocol (``training.md``: ``hybrid-training``), else for some protocol that has
   the parameter.
3. ``` `name` (NUMBER [unit]) ```, the docs' way to state a default, where ``name`` is a parameter of
   the document's protocol (or, without one, of some protocol): the number must be its default
   and a unit given must be the field's.
4. a row of the protocols table (first cell a protocol's name): every plain identifier with an
   underscore in backticks in "what it does" must be a parameter of that protocol.
5. a table whose header's first cell is a parameter in backticks lists values of it: each row's
   first cell must be an allowed value.
6. a unit in a parameter's name (``_V``, ``_A``, ``_S``, ``_s``, ``_m``, ``_m2``, ``_pp``, ``_nm``)
   is the field's ``unit`` (what ``rram-hil protocols`` shows).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hil.protocol import available_protocols

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
PROTOCOLS = {name: cls for name, cls in available_protocols().items()}
#: The protocol a document is about, where it is about one.
DOC_PROTOCOL = {"training.md": "hybrid-training"}
#: Commands that run a protocol under another name.
COMMAND_PROTOCOL = {"reproduce": "hybrid-training"}
UNIT_WORDS = {"percentage points": "pp", "pp": "pp"}
UNIT_SUFFIX = re.compile(r"_(V|A|S|s|m|m2|pp|nm)$")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+(?:\n[^`\n]+)?)`")
SET = re.compile(r"--set\s+([A-Za-z_][A-Za-z0-9_]*)=(\S*)")
ASSIGN = re.compile(r"^([a-z_][a-z0-9_]*)=(\S.*)$")
DEFAULT = re.compile(r"`([a-z_][a-z0-9_]*)` \((-?\d+(?:\.\d+)?(?:e-?\d+)?)(?:\s+([A-Za-z ]+?))?\)")
IDENT = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9A-Z]+)+$")


def fields_of(name: str) -> dict[str, Any]:
    return dict(PROTOCOLS[name].Params.model_fields)


def having(parameter: str) -> list[str]:
    return [name for name in PROTOCOLS if parameter in fields_of(name)]


def accepts(protocol: str, values: dict[str, str]) -> str | None:
    """``None`` if ``values`` (``--set`` text) validate for ``protocol``, else why not."""
    try:
        PROTOCOLS[protocol].Params.model_validate(values)
    except ValidationError as exc:
        return str(exc).splitlines()[1] + " " + str(exc).splitlines()[2].strip()
    return None


def placeholder(value: str) -> bool:
    """A value the docs leave to the reader: ``...``, ``K``, or a file of the user's."""
    if re.search(r"\.(yaml|yml|csv|txt)$", value) and not (ROOT / value).exists():
        return True
    return value in ("", "...", "value") or "..." in value or bool(re.fullmatch(r"[A-Z][A-Z_]*", value))


@dataclass
class Mention:
    doc: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.text}"


def lines_of(path: Path) -> Iterator[tuple[int, str]]:
    yield from enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)


def commands(path: Path) -> Iterator[tuple[Mention, str | None, list[tuple[str, str]]]]:
    """Every command or code span with ``--set``: where, its protocol (or None) and its sets."""
    text = path.read_text(encoding="utf-8")
    chunks: list[tuple[int, str]] = []
    for block in FENCE.finditer(text):
        first = text.count("\n", 0, block.start()) + 1
        for i, line in enumerate(block.group(0).splitlines()):
            chunks.append((first + i, line))
    prose = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for span in SPAN.finditer(prose):
        chunks.append((prose.count("\n", 0, span.start()) + 1, span.group(1).replace("\n", " ")))
    for line, chunk in chunks:
        sets = SET.findall(chunk)
        if not sets:
            continue
        protocol = None
        m = re.search(r"rram-hil\s+(run|reproduce)\s+([a-z0-9-]+)", chunk)
        if m:
            protocol = COMMAND_PROTOCOL.get(m.group(1), m.group(2))
        yield Mention(path.name, line, chunk.strip()), protocol, [(n, v.rstrip("`.,;:)")) for n, v in sets]


def test_every_set_names_a_parameter_of_its_protocol_and_its_values_validate() -> None:
    problems = []
    for path in DOCS:
        for where, protocol, sets in commands(path):
            if protocol is not None and protocol not in PROTOCOLS:
                problems.append(f"{where}: protocol '{protocol}' does not exist")
                continue
            candidates = [protocol] if protocol else None
            values: dict[str, str] = {}
            for name, value in sets:
                if name == "name":  # the generic `--set name=value`
                    continue
                owners = having(name)
                if not owners or (candidates and not set(candidates) & set(owners)):
                    problems.append(f"{where}: '{name}' is not a parameter of {protocol or 'any protocol'}")
                    continue
                if not placeholder(value):
                    values[name] = value
            if not values:
                continue
            targets = candidates or [p for p in PROTOCOLS if set(values) <= set(fields_of(p))]
            reasons = [accepts(p, values) for p in targets]
            if all(r is not None for r in reasons):
                problems.append(f"{where}: refused by {', '.join(targets)}: {reasons[0]}")
    assert not problems, "\n".join(problems)


def test_every_name_equals_value_span_is_accepted() -> None:
    problems = []
    for path in DOCS:
        own = DOC_PROTOCOL.get(path.name)
        prose = FENCE.sub("", path.read_text(encoding="utf-8"))
        for paragraph in re.split(r"\n\s*\n", prose):
            spans = [ASSIGN.match(s.strip()) for s in SPAN.findall(paragraph)]
            pairs = [(m.group(1), m.group(2).strip()) for m in spans if m and having(m.group(1))]
            for name, value in pairs:
                if placeholder(value):
                    continue
                # the other settings of the same paragraph go with it (`hidden=...` with `w_max=...`)
                values = {n: v for n, v in pairs if n != name and not placeholder(v)} | {name: value}
                targets = [own] if own and name in fields_of(own) else having(name)
                alone = [accepts(p, {name: value}) for p in targets]
                if all(
                    r is not None and accepts(p, values) is not None
                    for p, r in zip(targets, alone, strict=True)
                ):
                    problems.append(
                        f"{path.name}: `{name}={value}`: refused by {', '.join(targets)}: {alone[0]}"
                    )
    assert not problems, "\n".join(problems)


def _same(doc_value: str, default: Any) -> bool:
    number = float(doc_value)
    if isinstance(default, list) and len(default) == 1:
        default = default[0]
    if isinstance(default, bool) or not isinstance(default, int | float):
        return False
    return math.isclose(number, float(default), rel_tol=1e-9)


def test_every_stated_default_and_unit_is_the_code_s() -> None:
    problems = []
    checked = 0
    for path in DOCS:
        own = DOC_PROTOCOL.get(path.name)
        prose = FENCE.sub("", path.read_text(encoding="utf-8")).replace("\n", " ")
        for m in DEFAULT.finditer(prose):
            name, number, unit = m.group(1), m.group(2), (m.group(3) or "").strip()
            targets = [own] if own and name in fields_of(own) else [] if own else having(name)
            if not targets:
                continue
            checked += 1
            infos = [fields_of(p)[name] for p in targets]
            if not any(_same(number, i.get_default(call_default_factory=True)) for i in infos):
                defaults = sorted({repr(i.get_default(call_default_factory=True)) for i in infos})
                problems.append(f"{path.name}: {m.group(0)}: the default is {', '.join(defaults)}")
            if unit:
                word = next((u for w, u in UNIT_WORDS.items() if unit.startswith(w)), unit.split()[0])
                units = {(i.json_schema_extra or {}).get("unit", "") for i in infos}  # type: ignore[union-attr]
                if word not in units and len(word) <= 3:
                    problems.append(f"{path.name}: {m.group(0)}: the unit is {', '.join(sorted(units))}")
    assert checked >= 5, f"the rule found only {checked} stated defaults: is it still matching the docs?"
    assert not problems, "\n".join(problems)


def table_rows(path: Path) -> Iterator[tuple[int, list[str], list[str]]]:
    """``(line, header cells, row cells)`` of every markdown table row."""
    header: list[str] | None = None
    for line, text in lines_of(path):
        if not text.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in text.strip().strip("|").split("|")]
        if header is None:
            header = cells
        elif not all(set(c) <= set("-: ") for c in cells):
            yield line, header, cells


def test_protocol_table_rows_name_only_their_own_parameters() -> None:
    problems = []
    rows = 0
    for path in DOCS:
        for line, header, cells in table_rows(path):
            name = cells[0].strip("`").split(" ")[0].strip("`")
            if header[0] != "protocol" or name not in PROTOCOLS or len(cells) < 2:
                continue
            rows += 1
            for span in re.findall(r"`([^`]+)`", cells[1]):
                if IDENT.match(span) and span not in fields_of(name):
                    problems.append(f"{path.name}:{line}: `{span}` is not a parameter of {name}")
    assert rows >= len(PROTOCOLS) - 1, "the protocols table was not found"
    assert not problems, "\n".join(problems)


def test_tables_of_a_parameter_s_values_list_allowed_values() -> None:
    problems = []
    for path in DOCS:
        own = DOC_PROTOCOL.get(path.name)
        for line, header, cells in table_rows(path):
            m = re.fullmatch(r"`([a-z_][a-z0-9_]*)`", header[0])
            if not m or not having(m.group(1)):
                continue
            name = m.group(1)
            value = cells[0].strip("`")
            targets = [own] if own and name in fields_of(own) else having(name)
            if all(accepts(p, {name: value}) is not None for p in targets):
                problems.append(f"{path.name}:{line}: `{value}` is not a value of {name}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
def test_a_unit_in_a_parameter_s_name_is_its_unit(protocol: str) -> None:
    for name, info in fields_of(protocol).items():
        m = UNIT_SUFFIX.search(name)
        unit = (info.json_schema_extra or {}).get("unit", "")  # type: ignore[union-attr]
        if m:
            assert unit == m.group(1), f"{protocol}.{name}: unit '{unit}'"


def test_literal_choices_are_accepted_as_set_text() -> None:
    """What ``--set name=value`` hands over is text: every allowed value of a parameter with a
    fixed set of choices (``input_pool``: 1, 2, 4, 7, 14, 28) is accepted as its text."""
    from typing import Literal, get_args, get_origin

    for protocol in PROTOCOLS:
        for name, info in fields_of(protocol).items():
            if get_origin(info.annotation) is not Literal:
                continue
            for choice in get_args(info.annotation):
                assert accepts(protocol, {name: str(choice)}) is None, f"{protocol}: {name}={choice}"


def test_input_pool_7_gives_16_inputs() -> None:
    params = PROTOCOLS["hybrid-training"].Params.model_validate({"input_pool": "7"})
    assert params.sizes[0] == 16  # type: ignore[attr-defined]


def test_endurance_pulses_are_not_each_followed_by_a_read() -> None:
    description = fields_of("endurance")["pulses"].description or ""
    assert "followed by a read" not in description
    assert "each followed by a read" in (fields_of("potentiation-cycling")["pulses"].description or "")


PATH_SPAN = re.compile(
    r"`([A-Za-z0-9_.\-]*/[A-Za-z0-9_.\-/]*\.(?:py|md|yaml|yml|txt|csv|png|toml|ipynb|json))`"
)
LINK = re.compile(r"\]\(([^)#\s]+)")


def test_every_file_the_docs_point_to_is_in_the_repository() -> None:
    problems = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for ref in set(PATH_SPAN.findall(text)) | set(LINK.findall(text)):
            if "://" in ref:
                continue
            found = [p.resolve() for p in (path.parent / ref, ROOT / ref) if p.exists()]
            inside = [p for p in found if p.is_relative_to(ROOT)]
            if not inside:
                problems.append(f"{path.name}: '{ref}' is not a file of the repository")
        if "../shared" in text:
            problems.append(f"{path.name}: refers to ../shared (outside the repository)")
    assert not problems, "\n".join(problems)
