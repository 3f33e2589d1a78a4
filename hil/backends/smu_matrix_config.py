"""Station configuration of the SMU + switch-matrix backend: instrument options and array routing.

A station with ``backend: smu-matrix`` names its instruments (SMUs and switch matrices) under
``instruments`` and, for every array, how its lines reach them under ``routing``::

    instruments:
      smu:    {model: keithley2600, resource: "TCPIP0::192.168.0.10::5025::SOCKET"}
      matrix: {model: keithley707b, resource: "TCPIP0::192.168.0.11::5025::SOCKET", options: {slots: 6}}
    arrays:
      - name: A
        rows: 32
        cols: 32
        diameter_m: 1.0e-6
        routing:
          matrix: matrix              # the switch matrix the array's lines are cabled to
          row_pins: 1                 # matrix column of array row 0 (rows 1..31 follow), or a list
          col_pins: 33                # matrix column of array column 0, or a list
          drive: {smu: smu, channel: a, matrix_row: A}   # SMU HI terminal -> matrix row A
          ground_row: B               # matrix row cabled to the SMU LO (0 V return)

Matrix columns are numbered across the whole mainframe: on a 707B/708B (12 columns per card)
column ``n`` is slot ``(n - 1) // 12 + 1``, card column ``(n - 1) % 12 + 1``; on an E5250A
(E5252A cards, 12 outputs each) it is card ``(n - 1) // 12 + 1``, output ``(n - 1) % 12 + 1``.
Matrix rows are ``A``..``H`` on a 707B/708B and input ports ``1``..``10`` on an E5250A.

To reach cell ``(r, c)`` the backend closes exactly two crosspoints: ``(drive.matrix_row,
row_pins[r])`` and ``(ground_row, col_pins[c])``. Everything here is validated when the
backend is built; a bad field gives one line naming it and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hil.errors import ConfigError, format_validation_error
from hil.station import InstrumentConfig, Station

#: SMU models and the channel names each has.
SMU_CHANNELS: dict[str, tuple[str, ...]] = {
    "keithley2450": ("1",),
    "keithley2600": ("a", "b"),
    "b2900": ("1", "2"),
}


@dataclass(frozen=True)
class MatrixGeometry:
    """Rows and columns of a switch-matrix model.

    Attributes:
        rows: the row (input) labels in order.
        columns_per_card: columns (outputs) of one card.
        max_cards: card slots of the mainframe.
    """

    rows: tuple[str, ...]
    columns_per_card: int
    max_cards: int


MATRIX_GEOMETRY: dict[str, MatrixGeometry] = {
    # 707B: six slots of 7174A-type cards, 8 rows (A-H) x 12 columns each; 708B: one slot
    "keithley707b": MatrixGeometry(tuple("ABCDEFGH"), 12, 6),
    "keithley708b": MatrixGeometry(tuple("ABCDEFGH"), 12, 1),
    # E5250A with E5252A 10x12 matrix cards: inputs 1-10, 12 outputs per card, four slots
    "e5250a": MatrixGeometry(tuple(str(i) for i in range(1, 11)), 12, 4),
}

SMU_MODELS = tuple(SMU_CHANNELS)
#: SMUs that can keep the backend's time (a script timer and instrument-side waits).
INSTRUMENT_CLOCK_MODELS = ("keithley2600",)
MATRIX_MODELS = tuple(MATRIX_GEOMETRY)


class EmulatorOptions(BaseModel):
    """How ``rram-hil emulate`` runs this instrument's emulator (ignored on real hardware)."""

    model_config = ConfigDict(extra="forbid")

    latency_s: float | None = Field(
        None, ge=0, le=10, description="per-message latency (s); None: the model's realistic default"
    )
    faults: list[str] = Field(
        default_factory=list, description="faults to inject, KIND[@AFTER][:ARG] (see sim_backend)"
    )
    model: str | None = Field(
        None,
        description=(
            "the exact model an emulated SMU presents (e.g. 2601B, B2901A); None: the SMU's "
            "options.instrument_model, else the emulator's default"
        ),
    )


class SmuOptions(BaseModel):
    """``options`` of an SMU instrument."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(5.0, gt=0, le=600, json_schema_extra={"unit": "s"})
    visa_library: str = Field(
        "@py", description="pyvisa backend: @py (pyvisa-py) or a VISA library path/@ivi"
    )
    nplc: float = Field(0.1, ge=0.001, le=25, description="integration time of a read, in power-line cycles")
    instrument_model: str | None = Field(
        None,
        description=(
            "the exact model (e.g. 2636B, B2901A) whose ratings the station's limits are checked against "
            "before connecting; None: the family's largest, then the model the instrument names when it connects"
        ),
    )
    min_pulse_width_s: float | None = Field(
        None, gt=0, le=1, description="shortest pulse this SMU is asked for (s); None: the model's own"
    )
    clock: Literal["host", "instrument"] = Field(
        "host",
        description=(
            "what keeps the backend's time (now, delay): host, the computer's clock; instrument, this "
            "SMU's timer and instrument-side waits (keithley2600 only), so an emulated bench can "
            "fast-forward long waits such as retention"
        ),
    )
    emulator: EmulatorOptions = Field(default_factory=EmulatorOptions)


class MatrixOptions(BaseModel):
    """``options`` of a switch-matrix instrument."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(5.0, gt=0, le=600, json_schema_extra={"unit": "s"})
    visa_library: str = Field(
        "@py", description="pyvisa backend: @py (pyvisa-py) or a VISA library path/@ivi"
    )
    slots: int = Field(1, ge=1, le=6, description="matrix cards installed (707B slots, E5250A cards)")
    emulator: EmulatorOptions = Field(default_factory=EmulatorOptions)


class SmuTerminal(BaseModel):
    """An SMU channel whose HI terminal is cabled to a matrix row."""

    model_config = ConfigDict(extra="forbid")

    smu: str = Field(min_length=1, description="instrument name of the SMU")
    channel: str | None = Field(None, description="SMU channel (2600: a/b, B2900: 1/2); None: the first")
    matrix_row: str = Field(min_length=1, description="matrix row / input port the HI terminal is on")

    @field_validator("matrix_row", "channel", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class ArrayRouting(BaseModel):
    """How one array's lines reach the instruments (``arrays[].routing``)."""

    model_config = ConfigDict(extra="forbid")

    matrix: str = Field(min_length=1, description="instrument name of the switch matrix")
    row_pins: list[int] | int = Field(
        description="matrix column of every array row, or the first of consecutive columns"
    )
    col_pins: list[int] | int = Field(
        description="matrix column of every array column, or the first of consecutive columns"
    )
    drive: SmuTerminal
    ground_row: str = Field(min_length=1, description="matrix row cabled to the SMU LO (0 V)")
    read_compliance_A: float = Field(
        1e-3, gt=0, le=1, description="current compliance of reads (A)", json_schema_extra={"unit": "A"}
    )
    pulse_compliance_A: float = Field(
        5e-3,
        gt=0,
        le=1,
        description="current compliance of pulses without their own (A)",
        json_schema_extra={"unit": "A"},
    )

    @field_validator("ground_row", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


@dataclass(frozen=True)
class InstrumentPlan:
    """A validated instrument: name, model, resource, options."""

    name: str
    model: str
    resource: str
    options: SmuOptions | MatrixOptions


@dataclass(frozen=True)
class ArrayPlan:
    """A validated array route: pins expanded, instruments resolved."""

    array: str
    rows: int
    cols: int
    routing: ArrayRouting
    row_pins: tuple[int, ...]
    col_pins: tuple[int, ...]
    smu: str
    channel: str
    matrix: str

    def crosspoints(self, row: int, col: int) -> tuple[tuple[str, int], tuple[str, int]]:
        """The two (matrix row, matrix column) crosspoints that reach cell ``(row, col)``."""
        return (
            (self.routing.drive.matrix_row, self.row_pins[row]),
            (self.routing.ground_row, self.col_pins[col]),
        )


@dataclass(frozen=True)
class SmuMatrixPlan:
    """Everything the SMU + matrix backend (and its emulators) need, validated."""

    station: Station
    instruments: dict[str, InstrumentPlan]
    arrays: dict[str, ArrayPlan]

    def smus(self) -> list[InstrumentPlan]:
        return [p for p in self.instruments.values() if p.model in SMU_CHANNELS]

    def matrices(self) -> list[InstrumentPlan]:
        return [p for p in self.instruments.values() if p.model in MATRIX_GEOMETRY]


def _pins(value: list[int] | int, n: int, where: str) -> tuple[int, ...]:
    pins = tuple(range(value, value + n)) if isinstance(value, int) else tuple(value)
    if len(pins) != n:
        raise ConfigError(f"{where}: {len(pins)} matrix columns given for {n} lines (give {n}, or the first)")
    return pins


def _options(kind: type[SmuOptions] | type[MatrixOptions], cfg: InstrumentConfig, name: str) -> Any:
    try:
        return kind.model_validate(cfg.options)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, kind, f"instruments.{name}.options.")) from None


def instrument_plan(name: str, cfg: InstrumentConfig) -> InstrumentPlan:
    """Validate one SMU or matrix instrument entry."""
    model = cfg.model.lower()
    if model in SMU_CHANNELS:
        options = _options(SmuOptions, cfg, name)
        if options.clock == "instrument" and model not in INSTRUMENT_CLOCK_MODELS:
            raise ConfigError(
                f"instruments.{name}.options.clock: 'instrument' needs an SMU with a script timer "
                f"({', '.join(INSTRUMENT_CLOCK_MODELS)}); a {model} keeps time on the host ('host')"
            )
        return InstrumentPlan(name, model, cfg.resource, options)
    if model in MATRIX_GEOMETRY:
        return InstrumentPlan(name, model, cfg.resource, _options(MatrixOptions, cfg, name))
    known = ", ".join((*SMU_MODELS, *MATRIX_MODELS))
    raise ConfigError(f"instruments.{name}.model: '{cfg.model}' is not an SMU or switch matrix ({known})")


def plan_smu_matrix(station: Station) -> SmuMatrixPlan:
    """Validate a ``smu-matrix`` station: instruments, options and every array's routing.

    Raises:
        ConfigError: one line naming the bad field and what is allowed.
    """
    instruments = {name: instrument_plan(name, cfg) for name, cfg in station.instruments.items()}
    smus = {n for n, p in instruments.items() if p.model in SMU_CHANNELS}
    matrices = {n for n, p in instruments.items() if p.model in MATRIX_GEOMETRY}
    if not smus:
        raise ConfigError(
            "instruments: backend 'smu-matrix' needs at least one SMU (" + ", ".join(SMU_MODELS) + ")"
        )
    if not matrices:
        raise ConfigError(
            "instruments: backend 'smu-matrix' needs a switch matrix (" + ", ".join(MATRIX_MODELS) + ")"
        )
    arrays: dict[str, ArrayPlan] = {}
    used: dict[tuple[str, int], str] = {}
    for a in station.arrays:
        where = f"arrays.{a.name}.routing"
        if a.routing is None:
            raise ConfigError(f"{where}: missing; backend 'smu-matrix' needs every array's routing")
        try:
            routing = ArrayRouting.model_validate(a.routing)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, ArrayRouting, f"{where}.")) from None
        if routing.matrix not in matrices:
            raise ConfigError(
                f"{where}.matrix: '{routing.matrix}' is not a switch matrix of this station "
                f"(matrices: {', '.join(sorted(matrices))})"
            )
        drive = routing.drive
        if drive.smu not in smus:
            raise ConfigError(
                f"{where}.drive.smu: '{drive.smu}' is not an SMU of this station (SMUs: {', '.join(sorted(smus))})"
            )
        smu_model = instruments[drive.smu].model
        channels = SMU_CHANNELS[smu_model]
        channel = channels[0] if drive.channel is None else drive.channel.lower()
        if channel not in channels:
            raise ConfigError(
                f"{where}.drive.channel: '{drive.channel}' is not a channel of a {smu_model} "
                f"(channels: {', '.join(channels)})"
            )
        mplan = instruments[routing.matrix]
        geometry = MATRIX_GEOMETRY[mplan.model]
        assert isinstance(mplan.options, MatrixOptions)
        slots = mplan.options.slots
        if slots > geometry.max_cards:
            raise ConfigError(
                f"instruments.{routing.matrix}.options.slots: {slots} exceeds a {mplan.model}'s "
                f"{geometry.max_cards} card slot(s)"
            )
        n_cols = slots * geometry.columns_per_card
        for field, label in ((drive.matrix_row, "drive.matrix_row"), (routing.ground_row, "ground_row")):
            if field.upper() not in geometry.rows:
                raise ConfigError(
                    f"{where}.{label}: '{field}' is not a row of a {mplan.model} "
                    f"(rows: {', '.join(geometry.rows)})"
                )
        if drive.matrix_row.upper() == routing.ground_row.upper():
            raise ConfigError(f"{where}.ground_row: '{routing.ground_row}' must differ from drive.matrix_row")
        row_pins = _pins(routing.row_pins, a.rows, f"{where}.row_pins")
        col_pins = _pins(routing.col_pins, a.cols, f"{where}.col_pins")
        for label, pins in (("row_pins", row_pins), ("col_pins", col_pins)):
            bad = [p for p in pins if not 1 <= p <= n_cols]
            if bad:
                raise ConfigError(
                    f"{where}.{label}: matrix column {bad[0]} is outside 1..{n_cols} "
                    f"({slots} card(s) x {geometry.columns_per_card} columns)"
                )
        for pin in (*row_pins, *col_pins):
            other = used.get((routing.matrix, pin))
            if other is not None:
                raise ConfigError(
                    f"{where}: matrix column {pin} of '{routing.matrix}' is wired to two lines ({other} and {a.name})"
                )
            used[(routing.matrix, pin)] = a.name
        routing = routing.model_copy(
            update={
                "drive": drive.model_copy(
                    update={"matrix_row": drive.matrix_row.upper(), "channel": channel}
                ),
                "ground_row": routing.ground_row.upper(),
            }
        )
        arrays[a.name] = ArrayPlan(
            a.name, a.rows, a.cols, routing, row_pins, col_pins, drive.smu, channel, routing.matrix
        )
    limit = station.limits.max_compliance_A
    for plan in arrays.values():
        for label in ("read_compliance_A", "pulse_compliance_A"):
            value = getattr(plan.routing, label)
            if value > limit:
                raise ConfigError(
                    f"arrays.{plan.array}.routing.{label}: {value:g} A exceeds the station limit "
                    f"max_compliance_A = {limit:g} A"
                )
    return SmuMatrixPlan(station, instruments, arrays)
