"""The Python API of rram-hil: what a notebook or a script imports (``import hil.api as rh``).

The names are the command line's words: :func:`station` (open one), :func:`check_station`,
:func:`protocols`, :func:`run`, :func:`resume`, :func:`runs`, :func:`show`, :func:`export`,
:func:`analyze`, :func:`report`, :func:`calibrate` and :func:`db` (open a database). Everything goes
through the same code the ``rram-hil`` commands use: the safety layer checks every command against
the station's limits, the run engine records every run, and bad input raises the same one-line
:class:`ConfigError` or :class:`LimitError` (both ``ValueError``) the command line prints, before
anything is written.

Units are SI throughout, and every quantity's name ends in its unit: ``amplitude_V`` (V),
``width_s`` (s), ``compliance_A`` (A), ``conductance_S`` (S), ``area_m2`` (m^2).

This module sits on top of the layers, like the command line: it imports the protocols and the
analysis, and nothing but the command line imports it (``lint-imports`` checks both).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hil.backends.registry import backend_kind, open_backend
from hil.engine import RunEngine, RunOutcome, prepare
from hil.errors import ConfigError, field_range
from hil.protocol import available_protocols
from hil.safety import LimitError, SafeBackend, SafetyLimits
from hil.station import Station, load_station
from hil.store import DEFAULT_DB, RunInfo, Store, validation_store
from hil.types import (
    DEFAULT_READ_VOLTAGE_V,
    ArraySpec,
    Capabilities,
    CellsLike,
    Direction,
    IVResult,
    ProgramResult,
    Pulse,
    PulseTrainResult,
    Readout,
    SafeStateReport,
)

__all__ = [
    "Bench",
    "Calibration",
    "ConfigError",
    "Database",
    "LimitError",
    "Run",
    "analyze",
    "calibrate",
    "check_station",
    "db",
    "export",
    "protocols",
    "report",
    "resume",
    "run",
    "runs",
    "show",
    "station",
    "to_df",
]

#: Where plots go unless a call says otherwise (the command line's default too).
DEFAULT_PLOT_DIR = "rram-hil-plots"

#: The preset :func:`calibrate` starts from unless told otherwise.
DEFAULT_BASE_PRESET = "mo_tiox_choi2021"

StationLike = str | Path | Station | None
CellsArg = str | CellsLike


# ---------------------------------------------------------------------------------- stations
def check_station(station: StationLike = None) -> Station:
    """Load and validate a station without connecting to anything (``rram-hil check-station``).

    Args:
        station: a station YAML file, ``None`` or ``"twin"`` (the built-in twin station), or a
            :class:`~hil.station.Station` already loaded.

    Returns:
        The validated :class:`~hil.station.Station` (arrays, limits, instruments).

    Raises:
        ConfigError: the file is missing, not YAML, or a field is outside its allowed range.
    """
    st = station if isinstance(station, Station) else load_station(station)
    backend_kind(st.backend).check(st)
    return st


class Bench:
    """An open station: its backend behind the station's safety limits.

    Use it as a context manager (``with rh.station() as bench:``): leaving the block, by any
    route, puts the hardware in its safe state (outputs off, every route open) and closes the
    connections; :attr:`safe_state_report` then tells what the instruments confirmed.
    Every operation is checked against :attr:`limits` before anything is sent: a command outside
    them raises :class:`LimitError` and the instruments never see it.

    Cells are given as the command line takes them (``"0,0"``, ``"0,0;1,2"``, ranges
    ``"0:4,0:4"`` with the stop excluded, ``"all"``) or as ``(row, col)`` pairs; ``None`` means
    every cell of the array.
    """

    def __init__(self, station: Station, seed: int | None = None) -> None:
        self.station: Station = station
        self.seed: int | None = seed
        self.backend: SafeBackend = open_backend(station, seed)
        self.safe_state_report: SafeStateReport | None = None
        self._closed = False

    # ------------------------------------------------------------------ description
    @property
    def arrays(self) -> Mapping[str, ArraySpec]:
        """The arrays this station reaches, by name (shape and device area in m^2)."""
        return self.backend.arrays

    @property
    def limits(self) -> SafetyLimits:
        """The station's safety limits (V, A, s); every command is checked against them."""
        return self.station.limits

    @property
    def capabilities(self) -> Capabilities:
        """What the backend does natively (VMM, parallel programming, instrument-side trains)."""
        return self.backend.capabilities

    def identify(self) -> dict[str, str]:
        """Identification of the instruments (or the twin model) behind the station."""
        return self.backend.identify()

    def now(self) -> float:
        """The backend clock (s): simulated time on the twin, monotonic wall time on hardware."""
        return self.backend.now()

    def _cells(self, array: str, cells: CellsArg) -> CellsLike:
        if isinstance(cells, str):
            from protocols.params import parse_cells

            return parse_cells(cells, self.backend.spec(array))
        return cells

    # ------------------------------------------------------------------ measurements
    def read(
        self, array: str = "A", cells: CellsArg = None, *, voltage_V: float = DEFAULT_READ_VOLTAGE_V
    ) -> Readout:
        """Read the conductance (S) of cells at ``voltage_V`` (V); ``cells=None``: the whole array.

        Returns a :class:`~hil.types.Readout` (``conductance_S``, ``current_A``, ``cells``, ``t_s``);
        :func:`to_df` turns it into one row per cell.
        """
        return self.backend.read(array, self._cells(array, cells), voltage_V)

    def pulse(
        self,
        array: str = "A",
        cells: CellsArg = "0,0",
        *,
        amplitude_V: float,
        width_s: float,
        count: int = 1,
        compliance_A: float | None = None,
        read_after: bool = False,
        read_voltage_V: float = DEFAULT_READ_VOLTAGE_V,
    ) -> PulseTrainResult:
        """Apply ``count`` identical pulses (``amplitude_V`` V, ``width_s`` s, signed: negative
        depresses) to every addressed cell, as one train.

        With ``read_after`` every pulse is followed by a read at ``read_voltage_V`` (V), run
        instrument-side where the hardware allows it. ``compliance_A`` (A) of ``None`` uses the
        station's pulse compliance. :func:`to_df` gives one row per cell and read.
        """
        return self.backend.pulse(
            array,
            self._cells(array, cells),
            Pulse(amplitude_V, width_s, compliance_A),
            count,
            read_after,
            read_voltage_V,
        )

    def program(
        self,
        array: str,
        counts: np.ndarray,
        *,
        amplitude_V: float,
        width_s: float,
        compliance_A: float | None = None,
    ) -> ProgramResult:
        """Program a whole array: cell ``(i, j)`` receives ``counts[i, j]`` identical pulses
        (``amplitude_V`` V, ``width_s`` s); ``counts`` has the array's shape."""
        return self.backend.program(array, np.asarray(counts), Pulse(amplitude_V, width_s, compliance_A))

    def program_cells(
        self,
        array: str,
        cells: CellsArg,
        counts: Sequence[int] | np.ndarray,
        *,
        amplitude_V: float,
        width_s: float,
        compliance_A: float | None = None,
    ) -> ProgramResult:
        """Program some cells: ``cells[n]`` (distinct cells) receives ``counts[n]`` identical
        pulses (``amplitude_V`` V, ``width_s`` s); every other cell none."""
        return self.backend.program_cells(
            array, self._cells(array, cells), np.asarray(counts), Pulse(amplitude_V, width_s, compliance_A)
        )

    def program_outer(
        self,
        array: str,
        r: Sequence[float] | np.ndarray,
        c: Sequence[float] | np.ndarray,
        *,
        amplitude_V: float,
        width_s: float,
        compliance_A: float | None = None,
    ) -> ProgramResult:
        """The crossbar's outer-product update: cell ``(i, j)`` receives ``round(r[i] * c[j])``
        pulses (``amplitude_V`` V, ``width_s`` s); ``r`` has one entry >= 0 per row, ``c`` per column."""
        return self.backend.program_outer(
            array,
            np.asarray(r, dtype=float),
            np.asarray(c, dtype=float),
            Pulse(amplitude_V, width_s, compliance_A),
        )

    def program_streams(
        self,
        array: str,
        rows: np.ndarray,
        cols: np.ndarray,
        *,
        amplitude_V: float,
        width_s: float,
        compliance_A: float | None = None,
    ) -> ProgramResult:
        """The update by pulse coincidence: ``rows`` ``(n_rows, bit_length)`` and ``cols``
        ``(n_cols, bit_length)`` bool streams; in every slot each cell whose row and column both
        fire receives one pulse (``amplitude_V`` V, ``width_s`` s)."""
        return self.backend.program_streams(
            array, np.asarray(rows), np.asarray(cols), Pulse(amplitude_V, width_s, compliance_A)
        )

    def vmm(
        self,
        arrays: str | Sequence[str],
        voltages_V: Sequence[float] | np.ndarray,
        *,
        direction: Direction = "forward",
        signs: Sequence[float] | None = None,
    ) -> np.ndarray:
        """Vector-matrix multiply: drive ``voltages_V`` (V, within the read limit), sense currents (A).

        ``forward`` drives the rows (shape ``(rows,)`` or ``(batch, rows)``) and returns the column
        currents; ``backward`` drives the columns. Several arrays of one shape are summed with
        ``signs`` (e.g. ``[+1, -1]`` for a differential pair).
        """
        return self.backend.vmm(arrays, np.asarray(voltages_V, dtype=float), direction, signs)

    def iv_sweep(
        self,
        array: str,
        row: int,
        col: int,
        voltages_V: Sequence[float] | np.ndarray,
        *,
        compliance_A: float,
        dwell_s: float = 1e-3,
    ) -> IVResult:
        """DC I-V sweep of one cell: source each voltage (V) for ``dwell_s`` (s) with the current
        compliance ``compliance_A`` (A) set before the output turns on; measure the current (A)."""
        return self.backend.iv_sweep(
            array, row, col, np.asarray(voltages_V, dtype=float), compliance_A, dwell_s
        )

    def delay(self, seconds: float) -> None:
        """Wait ``seconds`` (s): simulated (instantly) on the twin, wall time on hardware."""
        self.backend.delay(seconds)

    # ------------------------------------------------------------------ safety and lifetime
    def safe_state(self) -> SafeStateReport:
        """Outputs off and every route open now (the station stays open); what was confirmed."""
        return self.backend.safe_state()

    def close(self) -> SafeStateReport:
        """Safe state, then close the connections; returns (and keeps in :attr:`safe_state_report`)
        what the instruments confirmed. A second call returns the first report."""
        if self._closed and self.safe_state_report is not None:
            return self.safe_state_report
        self._closed = True
        try:
            report = self.backend.safe_state()
        finally:
            self.backend.close()
        self.safe_state_report = report
        return report

    def __enter__(self) -> Bench:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Bench station={self.station.name!r} backend={self.station.backend!r} {state}>"


def station(station: StationLike = None, *, seed: int | None = None) -> Bench:
    """Open a station: its backend behind the station's safety limits, as a context manager.

    Args:
        station: a station YAML file, ``None`` or ``"twin"`` (the built-in twin station), or a
            :class:`~hil.station.Station`.
        seed: the twin's seed (default: the station's); ignored by hardware.

    Example::

        with rh.station(seed=1) as bench:
            g = bench.read("A", "0:2,0:2").conductance_S      # S

    Raises:
        ConfigError: the station file is bad. An instrument that does not answer raises
        :class:`~hil.backend.BackendError`.
    """
    return Bench(check_station(station), seed)


# ---------------------------------------------------------------------------------- DataFrames
def to_df(result: Readout | PulseTrainResult | IVResult) -> pd.DataFrame:
    """A backend result as a DataFrame with the columns of the store's ``readings`` table.

    - :class:`~hil.types.Readout`: one row per cell (``array, row, col, voltage_V, current_A,
      conductance_S, t_s``);
    - :class:`~hil.types.PulseTrainResult` read after every pulse: one row per cell and pulse
      (``pulse`` numbers them from 0); without reads, one row per cell with the pulse applied
      (``amplitude_V, width_s, count, t_s``);
    - :class:`~hil.types.IVResult`: one row per sweep point (``in_compliance`` marks points the
      compliance limited).
    """
    if isinstance(result, Readout):
        return pd.DataFrame(
            {
                "array": result.array,
                "row": result.cells[:, 0],
                "col": result.cells[:, 1],
                "voltage_V": result.voltage_V,
                "current_A": result.flat_current_A,
                "conductance_S": result.flat_conductance_S,
                "t_s": result.t_s,
            }
        )
    if isinstance(result, PulseTrainResult):
        n = len(result.cells)
        if result.conductance_S is None:
            t0 = float(result.t_s[0]) if result.t_s.size else math.nan
            return pd.DataFrame(
                {
                    "array": result.array,
                    "row": result.cells[:, 0],
                    "col": result.cells[:, 1],
                    "amplitude_V": result.pulse.amplitude_V,
                    "width_s": result.pulse.width_s,
                    "count": result.count,
                    "t_s": np.full(n, t0),
                }
            )
        g = result.conductance_S.reshape(-1)
        v = float(result.read_voltage_V or 0.0)
        return pd.DataFrame(
            {
                "array": result.array,
                "row": np.repeat(result.cells[:, 0], result.count),
                "col": np.repeat(result.cells[:, 1], result.count),
                "pulse": np.tile(np.arange(result.count), n),
                "voltage_V": v,
                "current_A": g * v,
                "conductance_S": g,
                "t_s": np.tile(result.t_s, n),
            }
        )
    if isinstance(result, IVResult):
        frame = pd.DataFrame(
            {
                "array": result.array,
                "row": result.row,
                "col": result.col,
                "voltage_V": result.voltage_V,
                "current_A": result.current_A,
                "t_s": result.t_s,
            }
        )
        if result.in_compliance.size == len(frame):
            frame["in_compliance"] = result.in_compliance
        return frame
    raise TypeError(f"to_df: a Readout, PulseTrainResult or IVResult, not {type(result).__name__}")


# ---------------------------------------------------------------------------------- protocols
def protocols() -> pd.DataFrame:
    """Every protocol's parameters (``rram-hil protocols``): one row per parameter with columns
    ``protocol, parameter, default, unit, allowed, description`` (units SI)."""
    rows = []
    for name, cls in available_protocols().items():
        for parameter, info in cls.Params.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            rows.append(
                {
                    "protocol": name,
                    "parameter": parameter,
                    "default": info.get_default(call_default_factory=True),
                    "unit": str(extra.get("unit", "")),
                    "allowed": field_range(cls.Params, parameter),
                    "description": info.description or "",
                }
            )
    return pd.DataFrame(rows, columns=["protocol", "parameter", "default", "unit", "allowed", "description"])


# ---------------------------------------------------------------------------------- the database
class Database:
    """One database of runs (``--db``): a SQLite file path or a SQLAlchemy URL.

    Every table comes back as a pandas DataFrame, in the columns of ``docs/schema.md``. Use it as
    a context manager, or call :meth:`close`, to release the connection.
    """

    def __init__(self, db: str | Path = DEFAULT_DB) -> None:
        self.store: Store = Store(db)

    @property
    def url(self) -> str:
        """The database's SQLAlchemy URL, its password (if any) masked as ``***``."""
        return self.store.url

    def runs(self) -> pd.DataFrame:
        """Every run (``rram-hil runs``): ``id, protocol, status, backend, station_name, seed,
        started_at, ended_at, readings``, oldest first."""
        return self.store.runs_df()

    def show(self, run_id: int) -> Run:
        """The run ``run_id`` (``rram-hil show``). Raises :class:`ConfigError` if there is none."""
        info = self.store.run(run_id)
        plots = self.store.artifacts(run_id, "plot")
        return Run(info.id, info.protocol, info.status, info.error, Path(plots[-1]) if plots else None, self)

    def readings(self, run_id: int) -> pd.DataFrame:
        """Every reading of a run in ``seq`` order (``voltage_V``, ``current_A``, ``conductance_S``, ``t_s``, ...)."""
        self.store.run(run_id)
        return self.store.readings_df(run_id)

    def pulses(self, run_id: int) -> pd.DataFrame:
        """Every pulse record of a run (``amplitude_V``, ``width_s``, ``count``, ``t_s``, ...)."""
        self.store.run(run_id)
        return self.store.pulses_df(run_id)

    def events(self, run_id: int) -> pd.DataFrame:
        """A run's events (settings, state changes, the safe state): ``at, t_s, kind, detail``."""
        self.store.run(run_id)
        return self.store.events_df(run_id)

    def epochs(self, run_id: int) -> pd.DataFrame:
        """A training run's ``epochs`` rows (accuracy, MSE, pulses, resets, ...); empty for other runs."""
        from hil.store.training import epochs_df

        self.store.run(run_id)
        return epochs_df(self.store, run_id)

    def export(self, run_id: int, path: str | Path | None = None, *, table: str = "readings") -> pd.DataFrame:
        """A run's ``readings``, ``pulses`` or ``events`` (``rram-hil export``); with ``path``, also
        written there as CSV (JSON columns as JSON text). Returns the table."""
        tables = {"readings": self.readings, "pulses": self.pulses, "events": self.events}
        if table not in tables:
            raise ConfigError(f"table: '{table}' is not one of {', '.join(tables)}")
        frame = tables[table](run_id)
        if path is not None:
            _write_csv(frame, Path(path))
        return frame

    def close(self) -> None:
        """Release the connection."""
        self.store.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Database {self.url}>"


def db(db: str | Path = DEFAULT_DB) -> Database:
    """Open a database of runs: a file path (``rram-hil.sqlite``) or a SQLAlchemy URL.

    Raises:
        ConfigError: a malformed URL or a directory that does not exist.
    """
    return Database(db)


def _database(db: str | Path | Database) -> Database:
    return db if isinstance(db, Database) else Database(db)


@dataclass
class Run:
    """A run as recorded: its id, protocol, how it ended, its plot, and its tables as DataFrames.

    Attributes:
        id: the run id (``rram-hil show ID``).
        protocol: the protocol's name.
        status: ``completed``, ``failed``, ``interrupted`` (or ``running``).
        error: why it failed or was interrupted, else ``None``.
        plot: the plot file written for it, if any.
        db: the database it is recorded in.
    """

    id: int
    protocol: str
    status: str
    error: str | None
    plot: Path | None
    db: Database = field(repr=False)

    @property
    def info(self) -> RunInfo:
        """The full run row: parameters, station snapshot, seed, times, resumes, ..."""
        return self.db.store.run(self.id)

    @property
    def parameters(self) -> dict[str, Any]:
        """The validated parameters the run used (every default filled in)."""
        return self.info.parameters

    def readings(self) -> pd.DataFrame:
        """Every reading of the run (see :meth:`Database.readings`)."""
        return self.db.readings(self.id)

    def pulses(self) -> pd.DataFrame:
        """Every pulse record of the run."""
        return self.db.pulses(self.id)

    def events(self) -> pd.DataFrame:
        """The run's events."""
        return self.db.events(self.id)

    def epochs(self) -> pd.DataFrame:
        """The run's training epochs (empty unless it is a ``hybrid-training`` run)."""
        return self.db.epochs(self.id)

    def analyze(self) -> Any:
        """The run's extracted device parameters (see :func:`analyze`)."""
        return analyze(self.id, db=self.db)

    def report(self, path: str | Path | None = None) -> Path:
        """Write the run's HTML report (see :func:`report`)."""
        return report(self.id, path, db=self.db)


def _run_of(outcome: RunOutcome, database: Database) -> Run:
    info = database.store.run(outcome.run_id)
    return Run(outcome.run_id, info.protocol, outcome.status, outcome.error, outcome.plot, database)


def _plot_arg(plot: bool | str | Path) -> bool | Path:
    return plot if isinstance(plot, bool) else Path(plot)


def run(
    protocol: str,
    params: Mapping[str, Any] | None = None,
    *,
    station: StationLike = None,
    db: str | Path | Database = DEFAULT_DB,
    seed: int | None = None,
    plot: bool | str | Path = True,
    plot_dir: str | Path = DEFAULT_PLOT_DIR,
    **parameters: Any,
) -> Run:
    """Run a protocol by name (``rram-hil run PROTOCOL --set name=value ...``) and get the run back.

    Parameters are keywords with the names ``rram-hil protocols`` (or :func:`protocols`) lists,
    e.g. ``rh.run("potentiation-cycling", cycles=3, pulses=20, cells="0:2,0:2")``; text values
    are accepted as ``--set`` takes them. A parameter named like one of this function's own
    keywords (``hybrid-training``'s ``seed``) goes in ``params={"seed": 3}``.

    Args:
        protocol: the protocol's name.
        params: parameters as a mapping (merged with the keywords; a name in both is an error).
        station: a station YAML file, ``None``/``"twin"`` (the built-in twin), or a ``Station``.
        db: where the run is recorded: a file path, a SQLAlchemy URL or an open :class:`Database`.
        seed: the twin's seed for this run (default: the protocol's, else the station's).
        plot: ``True`` writes the protocol's plot under ``plot_dir``, ``False`` none, a path writes it there.
        plot_dir: folder of the default plot files.

    Returns:
        The :class:`Run` (``id``, ``status``, ``error``, ``plot`` and its tables). A run that
        fails or is interrupted is returned too, with its ``status`` and ``error``, as recorded.

    Raises:
        ConfigError, LimitError: a bad parameter or station, before anything is written.
    """
    given = dict(params or {})
    repeated = sorted(set(given) & set(parameters))
    if repeated:
        raise ConfigError(f"{repeated[0]}: given both in params and as a keyword")
    given.update(parameters)
    st = check_station(station)
    if isinstance(db, Database):
        prepare(protocol, st, given, store=db.store)
    else:
        with validation_store(db) as checks:  # validate everything before the database is touched
            prepare(protocol, st, given, store=checks)
    database = _database(db)
    engine = RunEngine(database.store, plot_dir=plot_dir)
    outcome = engine.run(protocol, st, given, seed=seed, plot=_plot_arg(plot))
    return _run_of(outcome, database)


def resume(
    run_id: int,
    *,
    db: str | Path | Database = DEFAULT_DB,
    plot: bool | str | Path = True,
    plot_dir: str | Path = DEFAULT_PLOT_DIR,
) -> Run:
    """Continue an interrupted or failed run from its last checkpoint (``rram-hil resume RUN``).

    Raises:
        ConfigError: no such run, a protocol that cannot resume, or a run that is not
        interrupted or failed.
    """
    database = _database(db)
    engine = RunEngine(database.store, plot_dir=plot_dir)
    return _run_of(engine.resume(run_id, plot=_plot_arg(plot)), database)


def runs(db: str | Path | Database = DEFAULT_DB) -> pd.DataFrame:
    """Every run of a database as a DataFrame (``rram-hil runs``)."""
    return _database(db).runs()


def show(run_id: int, db: str | Path | Database = DEFAULT_DB) -> Run:
    """One run of a database (``rram-hil show RUN``); raises :class:`ConfigError` if there is none."""
    return _database(db).show(run_id)


def export(
    run_id: int,
    path: str | Path | None = None,
    *,
    table: str = "readings",
    db: str | Path | Database = DEFAULT_DB,
) -> pd.DataFrame:
    """A run's ``readings``, ``pulses`` or ``events`` table (``rram-hil export``), also written to
    ``path`` as CSV when given."""
    return _database(db).export(run_id, path, table=table)


# ---------------------------------------------------------------------------------- analysis
def analyze(run_id: int, db: str | Path | Database = DEFAULT_DB) -> Any:
    """Extract device parameters from a run (``rram-hil analyze RUN``).

    Returns an :class:`~protocols.analysis.extract.Analysis`: ``summary`` (a flat dict, the keys
    of ``analyze --json``: ``g_min_S``, ``g_max_S`` (S), ``n_states``, ``step_mean_S`` (S),
    ``sigma_over_mu``, ``nonlinearity``, ...; ``None`` for what the run does not measure),
    ``summary_df()`` (quantity, value, unit, description), ``to_json()`` and ``tables``
    (DataFrames: ``per_device``, ``per_array``, ``curve``, ``heatmap``, ...).
    """
    from protocols.analysis.extract import analyze as extract

    database = _database(db)
    return extract(database.store, run_id)


def report(
    runs: int | Sequence[int],
    path: str | Path | None = None,
    *,
    db: str | Path | Database = DEFAULT_DB,
) -> Path:
    """Write a self-contained HTML report of one or more runs (``rram-hil report RUN ... -o FILE``).

    Args:
        runs: a run id or several.
        path: the HTML file (default: ``report-RUN[-RUN...].html`` in the current directory).
        db: the database.

    Returns:
        The path written.

    Raises:
        ConfigError: no such run, or the file cannot be written.
    """
    from protocols.analysis.report import build_report

    ids = [runs] if isinstance(runs, int) else list(runs)
    database = _database(db)
    for run_id in ids:
        database.store.run(run_id)
    text = build_report(database.store, ids)
    out = Path(path) if path is not None else Path(f"report-{'-'.join(str(r) for r in ids)}.html")
    _write_text(out, text)
    return out


_CSV_CHUNK_ROWS = 100_000


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as CSV (JSON columns as JSON text), ``_CSV_CHUNK_ROWS`` rows at a time: no
    copy of the frame and no whole-file string (the bytes are those of ``frame.to_csv``)."""
    json_cols = [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, dict | list)).any()]
    try:
        with open(path, "w", encoding="utf-8") as fh:
            for start in range(0, max(len(frame), 1), _CSV_CHUNK_ROWS):
                chunk = frame.iloc[start : start + _CSV_CHUNK_ROWS]
                if json_cols:
                    chunk = chunk.assign(**{c: chunk[c].map(json.dumps) for c in json_cols})
                chunk.to_csv(fh, index=False, header=start == 0)
    except OSError as exc:
        raise ConfigError(f"output: cannot write '{path}' ({exc.strerror})") from None


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"output: cannot write '{path}' ({exc.strerror})") from None


@dataclass
class Calibration:
    """What :func:`calibrate` fitted and wrote.

    Attributes:
        path: the preset YAML file written.
        preset: the fitted preset as loaded back (a ``sim_backend.preset.DevicePreset``).
        base: the preset the fit started from.
        fit: the fitted values, where each came from (``sources``) and the analyses behind them
            (a ``protocols.analysis.preset_fit.PresetFit``).
    """

    path: Path
    preset: Any
    base: Any
    fit: Any

    def table(self) -> pd.DataFrame:
        """One row per fitted parameter: ``parameter, fitted, base, from``."""
        return pd.DataFrame(
            [
                {
                    "parameter": key,
                    "fitted": getattr(self.preset, key),
                    "base": getattr(self.base, key),
                    "from": self.fit.sources.get(key, ""),
                }
                for key in self.fit.values
            ],
            columns=["parameter", "fitted", "base", "from"],
        )


def check_preset_output(path: str | Path) -> Path:
    """The preset file to write, which must end in ``.yaml`` or ``.yml``; else :class:`ConfigError`."""
    out = Path(path)
    if out.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"output: '{out}' must end in .yaml or .yml (load_preset reads YAML files)")
    return out


def write_preset(values: dict[str, Any], path: Path, comments: dict[str, str]) -> Any:
    """Validate ``values`` as a twin preset, write it as YAML with a comment per fitted field, and
    load it back with :func:`sim_backend.preset.load_preset` (the check that any station can use it).

    Raises:
        ConfigError: the values do not make a valid preset, or the file cannot be written.
    """
    from sim_backend.preset import DevicePreset, PresetError, load_preset

    try:
        preset = DevicePreset.model_validate(values)
    except Exception as exc:  # pydantic ValidationError: one line
        raise ConfigError(
            f"calibrate: the fitted values do not make a valid preset ({str(exc).splitlines()[0]})"
        ) from None
    data = preset.model_dump(mode="json")
    lines = [
        f"# Twin preset fitted by `rram-hil calibrate` ({preset.description})",
        "# Load it in a station: `twin: {preset: " + str(path) + "}`.",
    ]
    for key, value in data.items():
        if key in comments:
            lines.append(f"# fitted: {comments[key]}")
        lines.append(
            yaml.safe_dump({key: value}, default_flow_style=True, sort_keys=False, width=1000).strip()[1:-1]
        )
    try:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"output: cannot write '{path}' ({exc.strerror})") from None
    try:
        return load_preset(path)
    except PresetError as exc:
        raise ConfigError(f"calibrate: the written preset does not load back ({exc})") from None


def calibrate_store(
    store: Store, runs: Sequence[int], path: Path, base: str = DEFAULT_BASE_PRESET, name: str | None = None
) -> Calibration:
    """Fit a twin preset from the runs of ``store`` and write it to ``path`` (validated, loaded
    back): what ``rram-hil calibrate`` and :func:`calibrate` both do once the database is open.

    Raises:
        ConfigError: an unknown base preset, no such run, runs the conductance range cannot be
        fitted from, or a file that cannot be written.
    """
    from protocols.analysis.preset_fit import fit_preset
    from sim_backend.preset import PresetError, load_preset

    try:
        base_preset = load_preset(base)
    except PresetError as exc:
        raise ConfigError(f"base: {exc}") from None
    for run_id in runs:
        store.run(run_id)
    try:
        result = fit_preset(store, runs, base_preset.model_dump())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    values = result.preset(base_preset.model_dump(), name or path.stem)
    preset = write_preset(values, path, result.sources)
    return Calibration(path, preset, base_preset, result)


def calibrate(
    runs: int | Sequence[int],
    path: str | Path,
    *,
    base: str = DEFAULT_BASE_PRESET,
    name: str | None = None,
    db: str | Path | Database = DEFAULT_DB,
) -> Calibration:
    """Fit the twin's device parameters from measured runs and write a preset YAML file any twin
    station loads (``rram-hil calibrate RUN ... -o PRESET.yaml``; use it with
    ``twin: {preset: PRESET.yaml}`` in a station).

    Args:
        runs: the run ids to fit from (cycling runs give the conductance range and steps;
            retention, forming and threshold runs add what they measure).
        path: the preset file, ``.yaml`` or ``.yml``.
        base: the preset the fit starts from (a shipped name or a YAML file); its values stay
            where the runs do not measure them.
        name: the preset's name (default: the file's stem).
        db: the database.

    Returns:
        A :class:`Calibration` (``preset``, ``base``, ``fit``, ``table()``).
    """
    out = check_preset_output(path)
    ids = [runs] if isinstance(runs, int) else list(runs)
    return calibrate_store(_database(db).store, ids, out, base, name)
