"""The one backend interface that hides where the devices are.

Every protocol talks to a :class:`Backend`: the simulated twin, source-measure units routed by
a switch matrix, or an FPGA crossbar board. Every operation covers many cells in one call so a
backend can run it in parallel (or at least with the fewest host round trips it can).

Units are SI throughout: V, A, S, s, m^2.

A backend is a context manager: leaving the ``with`` block, by any route, calls
:meth:`Backend.safe_state` (outputs off, every route open) and then :meth:`Backend.close`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from types import TracebackType

import numpy as np

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
    as_cells,
)


class BackendError(RuntimeError):
    """An instrument or backend failed (timeout, lost connection, malformed reply)."""


class SafeStateNotConfirmed(BackendError):
    """The instruments did not confirm the safe state; :attr:`report` says what they did confirm."""

    def __init__(self, message: str, report: SafeStateReport) -> None:
        super().__init__(message)
        self.report = report


class UnknownArrayError(ValueError):
    """An array name that the station does not declare."""


def outer_counts(r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Pulse counts of the crossbar outer-product update: ``count_ij = round(r_i * c_j)``.

    ``r`` (rows) and ``c`` (cols) are non-negative pulse-rate vectors; rounding is half to even
    (numpy's ``rint``), the same everywhere so every backend programs the same counts.
    """
    return np.rint(np.multiply.outer(np.asarray(r, dtype=float), np.asarray(c, dtype=float))).astype(np.int64)


def coincidence_counts(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Pulse counts of a stream update: ``count_ij`` = the slots in which row ``i`` and column
    ``j`` both fire, ``rows`` ``(n_rows, bit_length)`` and ``cols`` ``(n_cols, bit_length)`` bool.

    One float32 matrix product of the two streams (exact: a count is at most ``bit_length``,
    far below float32's 2**24 integer range), as int64.
    """
    r = np.asarray(rows, dtype=np.float32)
    c = np.asarray(cols, dtype=np.float32)
    return np.rint(r @ c.T).astype(np.int64)


class Backend(ABC):
    """Abstract backend. Subclasses implement the abstract methods; see each docstring."""

    # ----------------------------------------------------------------- description
    @property
    @abstractmethod
    def arrays(self) -> Mapping[str, ArraySpec]:
        """The arrays this backend reaches, by name."""

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities:
        """What this backend does natively."""

    def spec(self, array: str) -> ArraySpec:
        """The :class:`ArraySpec` of ``array``.

        Raises:
            UnknownArrayError: no such array; the message lists the names that exist.
        """
        try:
            return self.arrays[array]
        except KeyError:
            names = ", ".join(sorted(self.arrays)) or "(none)"
            raise UnknownArrayError(f"array: '{array}' is not in this station (arrays: {names})") from None

    def identify(self) -> dict[str, str]:
        """Identification of the instruments or model behind this backend (for run metadata)."""
        return {"backend": type(self).__name__}

    @abstractmethod
    def now(self) -> float:
        """The backend clock (s): simulated time on the twin, monotonic wall time on hardware."""

    # ----------------------------------------------------------------- measurements
    @abstractmethod
    def read(self, array: str, cells: CellsLike = None, voltage_V: float = DEFAULT_READ_VOLTAGE_V) -> Readout:
        """Read conductance (S) of one cell, a list of cells or the whole array (``cells=None``).

        The conductance is the measured current over the read voltage, ``I(V_read) / V_read``.
        """

    @abstractmethod
    def pulse(
        self,
        array: str,
        cells: CellsLike,
        pulse: Pulse,
        count: int = 1,
        read_after: bool = False,
        read_voltage_V: float = DEFAULT_READ_VOLTAGE_V,
    ) -> PulseTrainResult:
        """Apply ``count`` identical pulses to every addressed cell, as one train.

        With ``read_after`` every pulse is followed by a read at ``read_voltage_V``; the train
        runs instrument-side where the hardware allows it (no host round trip per pulse).
        """

    @abstractmethod
    def program(self, array: str, counts: np.ndarray, pulse: Pulse) -> ProgramResult:
        """Program a whole array: cell ``(i, j)`` receives ``counts[i, j]`` identical pulses.

        ``counts`` is a non-negative integer matrix of the array's shape.
        """

    def program_cells(self, array: str, cells: CellsLike, counts: np.ndarray, pulse: Pulse) -> ProgramResult:
        """Program some cells: ``cells[n]`` (distinct ``(row, col)`` pairs) receives ``counts[n]``
        identical pulses; every other cell none. The same as :meth:`program` of the count matrix
        (the default builds it); backends may skip the untouched cells.
        """
        spec = self.spec(array)
        arr = as_cells(cells, spec)
        matrix = np.zeros(spec.shape, dtype=np.int64)
        matrix[arr[:, 0], arr[:, 1]] = np.asarray(counts, dtype=np.int64)
        return self.program(array, matrix, pulse)

    def program_outer(self, array: str, r: np.ndarray, c: np.ndarray, pulse: Pulse) -> ProgramResult:
        """Parallel outer-product update by pulse coincidence: ``count_ij = round(r_i * c_j)``.

        ``r`` has one non-negative entry per row and ``c`` one per column. Backends with
        parallel programming may skip zero rows and columns; the default builds the count
        matrix and calls :meth:`program`.
        """
        return self.program(array, outer_counts(r, c), pulse)

    def program_streams(self, array: str, rows: np.ndarray, cols: np.ndarray, pulse: Pulse) -> ProgramResult:
        """Update by stochastic pulse coincidence (Gokmen & Vlasov 2016): the crossbar's fully
        parallel outer product.

        ``rows`` is ``(n_rows, bit_length)`` bool and ``cols`` ``(n_cols, bit_length)`` bool,
        one pulse stream per row and per column over ``bit_length`` time slots. In every slot
        each cell whose row and column both fire receives one ``pulse``, so cell ``(i, j)``
        receives :func:`coincidence_counts` ``[i, j]`` pulses, at most ``bit_length``. One call
        programs one array.

        The default computes the coincidence counts on the host and calls :meth:`program` with
        them: a backend whose :meth:`program` is parallel (the board, the twin) applies them in
        one operation; one that programs cell by cell (source-measure units behind a switch
        matrix) applies each cell's count in turn, sequentially rather than slot by slot in
        parallel. Each cell gets the same pulses either way; only their timing differs.
        """
        return self.program(array, coincidence_counts(rows, cols), pulse)

    def vmm(
        self,
        arrays: str | Sequence[str],
        voltages_V: np.ndarray,
        direction: Direction = "forward",
        signs: Sequence[float] | None = None,
    ) -> np.ndarray:
        """Vector-matrix multiply: drive voltages (V), sense currents (A).

        ``forward`` drives the rows (``voltages_V`` of shape ``(rows,)`` or ``(batch, rows)``)
        and returns column currents ``(cols,)`` / ``(batch, cols)``; ``backward`` drives the
        columns and returns row currents. Several arrays of one shape may be given with
        ``signs`` (e.g. ``+1, -1`` for a differential pair): their sensed currents are summed
        with those signs, as a differential read-out circuit does.

        The default implementation reads every conductance and computes ``V @ G`` on the host
        (what a backend without native VMM must do). Backends with native VMM override it.
        """
        names = [arrays] if isinstance(arrays, str) else list(arrays)
        weights = [1.0] * len(names) if signs is None else [float(s) for s in signs]
        if len(weights) != len(names):
            raise ValueError(f"signs: {len(weights)} given for {len(names)} arrays")
        v = np.asarray(voltages_V, dtype=float)
        total: np.ndarray | None = None
        for name, weight in zip(names, weights, strict=True):
            g = self.read(name).conductance_S
            part = v @ g if direction == "forward" else v @ g.T
            total = weight * part if total is None else total + weight * part
        assert total is not None
        return total

    @abstractmethod
    def iv_sweep(
        self,
        array: str,
        row: int,
        col: int,
        voltages_V: np.ndarray,
        compliance_A: float,
        dwell_s: float = 1e-3,
    ) -> IVResult:
        """DC I-V sweep of one cell: source each voltage (V) for ``dwell_s`` (s), measure current (A).

        The current compliance (A) is set before the output turns on and honoured at every point.
        """

    @abstractmethod
    def delay(self, seconds: float) -> None:
        """Wait ``seconds`` (s): simulated on the twin, wall time on hardware."""

    # ----------------------------------------------------------------- safety and lifetime
    @abstractmethod
    def safe_state(self) -> SafeStateReport:
        """Outputs off, every route open. Must be safe to call at any time, more than once.

        Returns what the instruments confirmed. Raises :class:`SafeStateNotConfirmed` (with the
        report) when something could not be confirmed.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. Called after :meth:`safe_state` on exit."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.safe_state()
        finally:
            self.close()
