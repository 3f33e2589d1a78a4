"""``sequence``: a user-written YAML program of pulse / read / ramp / delay / loop blocks.

For experiments no built-in protocol covers, the way lab sequencers let one script them. The
program is validated completely (every field, every array and cell, every voltage against the
station's limits, the total number of operations) before the run row is created; it then runs
under the same safety layer and logging as every protocol. Example (``--set program=FILE``)::

    array: A                 # default array and cells of every block
    cells: "0:2,0:2"
    steps:
      - read: {voltage_V: 0.5, label: before}
      - loop:
          count: 3
          steps:
            - pulse: {amplitude_V: 2.0, width_s: 1.0e-4, count: 10, read_after: true}
            - pulse: {amplitude_V: -4.0, width_s: 1.0e-4, count: 5}
      - delay: {seconds: 60}
      - ramp: {cells: "0,0", start_V: 0, stop_V: 1.5, step_V: 0.05, compliance_A: 1.0e-4}
      - read: {label: after}

Blocks (each may name its own ``array`` and ``cells`` and a ``label``):

- ``pulse``: ``amplitude_V``, ``width_s``, ``count`` (1), ``read_after`` (false),
  ``read_voltage_V`` (0.5), ``compliance_A`` (station default): one train on every cell.
- ``read``: ``voltage_V`` (0.5): read every cell.
- ``ramp``: ``start_V``, ``stop_V``, ``step_V``, ``compliance_A``, ``dwell_s`` (1e-3),
  ``return_sweep`` (false): a DC I-V sweep of each cell in turn.
- ``delay``: ``seconds``: wait (simulated on the twin).
- ``loop``: ``count``, ``steps``: repeat the nested blocks.

Logging: readings carry ``kind`` = the block's label (or ``read`` / ``pulse-read`` / ``ramp``),
``step`` = the block's number in the program (depth-first, from 0) and ``cycle`` = the iteration of
the innermost enclosing loop; pulses carry ``purpose`` = label or ``sequence``. The parsed program
is committed as the run's first event (``program``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hil.errors import ConfigError, format_validation_error
from hil.protocol import Params, Protocol, RunContext
from hil.station import Station
from hil.store import Store
from hil.types import DEFAULT_READ_VOLTAGE_V, Pulse
from protocols.analysis.extract import analyze_readings
from protocols.params import parse_cells, quantity, station_array
from protocols.plots import use_agg
from protocols.steps import check_sweep_steps, signed_extreme, sweep_iv, sweep_points

#: Most operations (pulse trains, reads, sweeps, delays) one program may expand to.
MAX_OPERATIONS = 1_000_000

#: Most loops one program may nest inside each other.
MAX_LOOP_DEPTH = 16

#: Most YAML mappings and lists one program file may nest (16 loops in the block form take 50).
MAX_NESTING = 64


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid")

    array: str | None = Field(None, description="array (default: the program's)")
    cells: str | None = Field(None, description="cells (default: the program's)")
    label: str | None = Field(None, max_length=32, pattern=r"^[A-Za-z0-9_.+-]+$", description="kind/purpose")


class PulseBlock(_Block):
    type: Literal["pulse"] = "pulse"
    amplitude_V: float = Field(ge=-200, le=200, json_schema_extra={"unit": "V"})
    width_s: float = Field(gt=0, le=100, json_schema_extra={"unit": "s"})
    count: int = Field(1, ge=1, le=10_000_000)
    read_after: bool = False
    read_voltage_V: float = Field(DEFAULT_READ_VOLTAGE_V, gt=0, le=200, json_schema_extra={"unit": "V"})
    compliance_A: float | None = Field(None, gt=0, le=10, json_schema_extra={"unit": "A"})


class ReadBlock(_Block):
    type: Literal["read"] = "read"
    voltage_V: float = Field(DEFAULT_READ_VOLTAGE_V, gt=0, le=200, json_schema_extra={"unit": "V"})


class RampBlock(_Block):
    type: Literal["ramp"] = "ramp"
    start_V: float = Field(ge=-200, le=200, json_schema_extra={"unit": "V"})
    stop_V: float = Field(ge=-200, le=200, json_schema_extra={"unit": "V"})
    step_V: float = Field(gt=0, le=100, json_schema_extra={"unit": "V"})
    compliance_A: float = Field(gt=0, le=10, json_schema_extra={"unit": "A"})
    dwell_s: float = Field(1e-3, gt=0, le=3600, json_schema_extra={"unit": "s"})
    return_sweep: bool = False

    @model_validator(mode="after")
    def _points(self) -> RampBlock:
        check_sweep_steps(self.start_V, self.stop_V, self.step_V, step_name="step_V", single_point_ok=True)
        return self

    def voltages(self) -> np.ndarray:
        """The ramp's voltages (V), with the return sweep if asked for."""
        return sweep_points(self.start_V, self.stop_V, self.step_V, self.return_sweep)


class DelayBlock(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["delay"] = "delay"
    seconds: float = Field(ge=0, le=1e12, json_schema_extra={"unit": "s"})
    label: str | None = None


class LoopBlock(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["loop"] = "loop"
    count: int = Field(ge=1, le=10_000_000)
    steps: list[Block] = Field(min_length=1)
    label: str | None = None

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, value: Any) -> Any:
        return _tagged(value)


Block = Annotated[PulseBlock | ReadBlock | RampBlock | DelayBlock | LoopBlock, Field(discriminator="type")]
BLOCK_TYPES = ("pulse", "read", "ramp", "delay", "loop")


def _tagged(value: Any) -> Any:
    """``[{pulse: {...}}, ...]`` (the YAML form) to ``[{type: pulse, ...}, ...]``."""
    if not isinstance(value, list):
        return value
    out = []
    for item in value:
        if isinstance(item, dict) and len(item) == 1 and "type" not in item:
            ((kind, body),) = item.items()
            if kind not in BLOCK_TYPES:
                raise ValueError(f"unknown block '{kind}' (blocks: {', '.join(BLOCK_TYPES)})")
            if body is None:
                body = {}
            if not isinstance(body, dict):
                raise ValueError(f"block '{kind}' must hold a mapping of its fields, got {body!r}")
            out.append({"type": kind, **body})
        else:
            out.append(item)
    return out


class Program(BaseModel):
    """A sequence program: default array and cells, and the blocks."""

    model_config = ConfigDict(extra="forbid")

    array: str = Field("A", description="default array of every block")
    cells: str = Field("0,0", description="default cells of every block")
    steps: list[Block] = Field(min_length=1)

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, value: Any) -> Any:
        return _tagged(value)


LoopBlock.model_rebuild()
Program.model_rebuild()


def load_program(path: str | Path) -> Program:
    """Read and validate a program file; any problem is one :class:`ConfigError` line."""
    if not str(path).strip():
        raise ConfigError("program: give the YAML program file: --set program=FILE")
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"program: cannot read '{p}' ({exc.strerror})") from None
    try:
        check_nesting(text, p)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"program: '{p}' is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"program: '{p}' must be a mapping with 'steps'")
    try:
        return Program.model_validate(data)
    except ValidationError as exc:
        detail = format_validation_error(exc).replace("Value error, ", "")
        raise ConfigError(f"program '{p.name}': {detail}") from None


@dataclass
class _Node:
    """A mapping or list open while :func:`check_nesting` walks the YAML events."""

    mapping: bool
    loop: bool = False
    key: str | None = None  # mappings: the key whose value comes next (None: a key comes next)


def check_nesting(text: str, path: Path) -> None:
    """Refuse a program whose loops nest more than :data:`MAX_LOOP_DEPTH` deep (or whose YAML
    nests more than :data:`MAX_NESTING` levels) before it is built: the YAML events are read one
    by one, without recursion, so no depth exhausts Python's stack (building the program, which
    recurses, only follows).

    A loop is the value of a ``loop:`` key (the YAML form) or a mapping with ``type: loop``.

    Raises:
        ConfigError: naming the depth found and the limit; ``yaml.YAMLError`` for bad YAML.
    """
    stack: list[_Node] = []
    deepest_loops = deepest = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            parent = stack[-1] if stack else None
            is_mapping = isinstance(event, yaml.MappingStartEvent)
            stack.append(_Node(is_mapping, loop=is_mapping and parent is not None and parent.key == "loop"))
            deepest = max(deepest, len(stack))
            deepest_loops = max(deepest_loops, sum(node.loop for node in stack))
        elif isinstance(event, yaml.CollectionEndEvent):
            stack.pop()
            if stack and stack[-1].mapping:
                stack[-1].key = None
        elif isinstance(event, yaml.ScalarEvent | yaml.AliasEvent) and stack and stack[-1].mapping:
            node = stack[-1]
            value = event.value if isinstance(event, yaml.ScalarEvent) else None
            if node.key is None:
                node.key = value or ""
            else:
                if node.key == "type" and value == "loop":
                    node.loop = True
                    deepest_loops = max(deepest_loops, sum(n.loop for n in stack))
                node.key = None
    if deepest_loops > MAX_LOOP_DEPTH:
        raise ConfigError(
            f"program: '{path}' nests loops {deepest_loops} deep; allowed: at most {MAX_LOOP_DEPTH}"
        )
    if deepest > MAX_NESTING:
        raise ConfigError(
            f"program: '{path}' nests mappings and lists {deepest} deep; allowed: at most {MAX_NESTING}"
        )


@dataclass
class Op:
    """One operation of the expanded program."""

    block: Any
    number: int  # block number in the program, depth-first
    path: str  # where it is, e.g. steps[1].steps[0]
    iteration: int | None  # iteration of the innermost loop


def expand(program: Program) -> Iterator[Op]:
    """Every operation in execution order (loops unrolled lazily)."""
    numbers: dict[int, int] = {}
    counter = 0

    def assign(blocks: list[Any]) -> None:
        nonlocal counter
        for b in blocks:
            numbers[id(b)] = counter
            counter += 1
            if isinstance(b, LoopBlock):
                assign(b.steps)

    assign(program.steps)

    def walk(blocks: list[Any], path: str, iteration: int | None) -> Iterator[Op]:
        for i, b in enumerate(blocks):
            where = f"{path}[{i}]"
            if isinstance(b, LoopBlock):
                for k in range(b.count):
                    yield from walk(b.steps, f"{where}.steps", k)
            else:
                yield Op(b, numbers[id(b)], where, iteration)

    yield from walk(program.steps, "steps", None)


def count_operations(blocks: list[Any]) -> int:
    """Operations the blocks expand to (without unrolling)."""
    total = 0
    for b in blocks:
        total += b.count * count_operations(b.steps) if isinstance(b, LoopBlock) else 1
    return total


def _unique_blocks(blocks: list[Any], path: str = "steps") -> Iterator[tuple[str, Any]]:
    for i, b in enumerate(blocks):
        where = f"{path}[{i}]"
        if isinstance(b, LoopBlock):
            yield from _unique_blocks(b.steps, f"{where}.steps")
        else:
            yield where, b


def check_program(program: Program, station: Station) -> int:
    """Check every block against the station (arrays, cells, limits); return the operation count."""
    limits = station.limits
    n_ops = count_operations(program.steps)
    if n_ops > MAX_OPERATIONS:
        raise ConfigError(f"program: expands to {n_ops} operations; allowed: at most {MAX_OPERATIONS}")
    for where, b in _unique_blocks(program.steps):
        if isinstance(b, DelayBlock):
            continue
        array = b.array or program.array
        try:
            spec = station_array(station, array, f"{where}.array")
            parse_cells(b.cells or program.cells, spec)
        except ConfigError as exc:
            raise ConfigError(f"program {where}: {exc}") from None
        if isinstance(b, PulseBlock):
            limits.check_pulse(Pulse(b.amplitude_V, b.width_s, b.compliance_A), b.count, f"{where}.")
            if b.read_after:
                limits.check_read_voltage(b.read_voltage_V, f"{where}.read_voltage_V")
        elif isinstance(b, ReadBlock):
            limits.check_read_voltage(b.voltage_V, f"{where}.voltage_V")
        elif isinstance(b, RampBlock):
            peak = signed_extreme(b.voltages())
            limits.check_voltage(peak, f"{where}.stop_V")
            limits.check_compliance(b.compliance_A, f"{where}.compliance_A")
            limits.check_dwell(b.dwell_s, f"{where}.dwell_s")
    return n_ops


class SequenceParams(Params):
    program: str = quantity(
        "", "", "YAML program file (pulse / read / ramp / delay / loop blocks)", validate_default=True
    )

    @field_validator("program")
    @classmethod
    def _valid_program(cls, program: str) -> str:
        try:
            load_program(program)
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("program: ")) from None
        return program


class Sequence(Protocol):
    name = "sequence"
    title = "A user-written YAML program of pulse / read / ramp / delay / loop blocks, validated first"
    Params = SequenceParams
    analysis = staticmethod(analyze_readings)

    def preflight(self, params: SequenceParams, station: Station) -> None:
        check_program(load_program(params.program), station)

    def execute(self, ctx: RunContext, params: SequenceParams) -> None:
        program = load_program(params.program)
        n_ops = check_program(program, ctx.station)
        ctx.log_event("program", file=str(params.program), program=program.model_dump(mode="json"))
        backend = ctx.backend
        ctx.progress.start(n_ops, f"{self.name}: {n_ops} operations")
        for op in expand(program):
            b = op.block
            idx = {"step": op.number, "cycle": op.iteration}
            if isinstance(b, DelayBlock):
                backend.delay(b.seconds)
                ctx.progress.advance(1, status=f"{op.path}: delay {b.seconds:g} s")
                continue
            array = b.array or program.array
            cells = parse_cells(b.cells or program.cells, backend.spec(array))
            if isinstance(b, PulseBlock):
                train = backend.pulse(
                    array, cells, Pulse(b.amplitude_V, b.width_s, b.compliance_A), b.count,
                    read_after=b.read_after, read_voltage_V=b.read_voltage_V,
                )  # fmt: skip
                ctx.log_train(train, purpose=b.label or "sequence", kind=b.label or "pulse-read", **idx)
            elif isinstance(b, ReadBlock):
                ctx.log_readout(backend.read(array, cells, b.voltage_V), kind=b.label or "read", **idx)
            elif isinstance(b, RampBlock):
                volts = b.voltages()
                for row, col in cells.tolist():
                    sweep_iv(
                        ctx, array, row, col, volts, b.compliance_A, b.dwell_s,
                        kind=b.label or "ramp", pulse=np.arange(len(volts)), **idx,
                    )  # fmt: skip
            ctx.progress.advance(1, status=f"{op.path}: {b.type}")

    def plot(self, store: Store, run_id: int, path: Path) -> Path | None:
        df = store.readings_df(run_id)
        if df.empty:
            return None
        plt = use_agg()
        fig, ax = plt.subplots(figsize=(10, 4.5))
        reads = df[df["current_A"].notna()]
        for kind, part in reads.groupby("kind", sort=False):
            ax.plot(part["t_s"].to_numpy(), part["conductance_S"].to_numpy(), ".", ms=2, label=str(kind))
        ax.set_yscale("log")
        ax.set(xlabel="backend time (s)", ylabel="conductance (S)", title=f"run {run_id}: sequence")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)
        return path
