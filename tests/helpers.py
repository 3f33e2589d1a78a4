"""Helpers shared by the tests (fixtures built on them live in ``tests/conftest.py``).

* stations and twins: :func:`twin_station` (a direct-twin station with chosen arrays, seed and
  preset overrides), :func:`board_station`, :func:`station_dict` (an SMU + switch-matrix stack),
  :func:`make_twin` (a bare :class:`TwinBackend`);
* running: :func:`run` (store + protocol + station + params -> outcome), :func:`new_store`;
* emulated benches: :func:`emulated` (SMU and matrix emulators on free ports),
  :func:`emulated_board` (the FPGA board emulator);
* :class:`RecordingBackend`, a backend that records every call reaching it;
* :func:`write_tiny_mnist` / :func:`synthetic_digits`, a tiny separable MNIST in IDX files;
* :class:`PostgresServer`, a throwaway PostgreSQL server in a temporary directory (the
  ``postgres_server`` fixture holds one per session, ``pg_url`` a new database per test).
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hil.backend import Backend
from hil.engine import RunEngine, RunOutcome
from hil.protocol import Protocol
from hil.station import Station, load_station, parse_station
from hil.store import Store
from hil.types import (
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
from protocols.training.mnist import MNIST_FILES, write_idx
from sim_backend.emulators.board import BoardEmulator, BoardFault, twin_for_station
from sim_backend.emulators.launcher import Bench, launch_station
from sim_backend.emulators.scpi_server import Fault
from sim_backend.preset import DevicePreset, load_preset
from sim_backend.twin import TwinBackend

ROOT = Path(__file__).resolve().parents[1]
#: the emulated SMU + switch-matrix example station
EXAMPLE = ROOT / "examples" / "station-smu-matrix-emulated.yaml"

PRESET = "mo_tiox_choi2021"

#: 1 um diameter, the preset's reference device
REF_AREA_M2 = ArraySpec.area_from_diameter(1e-6)

#: preset overrides for a twin without any randomness: closed forms apply exactly
IDEAL: dict[str, Any] = {
    "c2c_sigma_over_mu": 0.0,
    "d2d_sigma": 0.0,
    "stuck_fraction": 0.0,
    "read_noise_rel": 0.0,
    "nonlinearity_potentiation": 0.0,
    "iv_v0_V": None,
    "retention_tau_s": None,
}

#: the default arrays of :func:`twin_station`: one 8 x 8 array A of 1 um devices
ONE_ARRAY: list[dict[str, Any]] = [{"name": "A", "rows": 8, "cols": 8, "diameter_m": 1e-6}]

#: the arrays of :func:`board_station`, a subset of the twin station's, so that a board station
#: and ``twin_station(BOARD_ARRAYS)`` of the same seed fabricate the same devices
BOARD_ARRAYS: list[dict[str, Any]] = [
    {"name": "A", "rows": 32, "cols": 32, "diameter_m": 1.0e-6},
    {"name": "N30", "rows": 8, "cols": 8, "diameter_m": 30.0e-9},
    {"name": "P", "rows": 8, "cols": 8, "diameter_m": 1.0e-6},
]

#: (SMU model, matrix model, SMU channel, matrix rows for HI and ground, first row pin, first col pin)
STACKS: dict[str, tuple[str, str, str, str, str, int, int]] = {
    "2600+707b": ("keithley2600", "keithley707b", "a", "A", "B", 1, 37),
    "b2900+e5250a": ("b2900", "e5250a", "1", "1", "2", 1, 17),
    "2450+708b": ("keithley2450", "keithley708b", "1", "C", "D", 1, 7),
}

#: the pulse-width floor of the emulated SMU stations (the direct twin of a seam test keeps it)
SMU_LIMITS: dict[str, Any] = {"min_pulse_width_s": 1e-5}


# --------------------------------------------------------------------------- stations and twins
def twin_station(
    overrides: Mapping[str, Any] | None = None,
    arrays: Sequence[Mapping[str, Any]] | None = None,
    seed: int = 0,
    name: str = "test-twin",
    preset: str = PRESET,
    **top: Any,
) -> Station:
    """A direct-twin station: ``preset`` with ``overrides``, ``arrays`` (default :data:`ONE_ARRAY`;
    :data:`BOARD_ARRAYS` to match :func:`board_station`), ``seed``, and other top-level keys
    (``limits=...``) as given."""
    return parse_station(
        {
            "name": name,
            "backend": "twin",
            "twin": {"preset": preset, "overrides": dict(overrides or {}), "seed": seed},
            "arrays": [dict(a) for a in (arrays or ONE_ARRAY)],
            **top,
        }
    )


def board_station(resource: str = "/tmp/unused", seed: int = 0, **options: Any) -> Station:
    """A board station (:data:`BOARD_ARRAYS`) whose emulator twin matches ``twin_station(BOARD_ARRAYS,
    seed=seed)``; ``options`` are the board instrument's."""
    return parse_station(
        {
            "name": "board-test",
            "backend": "board",
            "twin": {"preset": PRESET, "seed": seed},
            "instruments": {
                "board": {
                    "model": "board",
                    "resource": resource,
                    "options": {"timeout_s": 0.5, "retries": 2, **options},
                }
            },
            "arrays": BOARD_ARRAYS,
        },
        "board-test",
    )


def station_dict(
    stack: str = "2600+707b", rows: int = 8, cols: int = 8, seed: int = 0, fast_timeout: bool = True
) -> dict[str, Any]:
    """A smu-matrix station (as a dict) for one instrument stack, ports to be chosen on start."""
    smu, matrix, channel, hi, lo, row0, col0 = STACKS[stack]
    slots = {"keithley707b": 6, "keithley708b": 1, "e5250a": 3}[matrix]
    timeout = 2.0 if fast_timeout else 10.0
    return {
        "name": f"emulated-{stack}",
        "backend": "smu-matrix",
        "twin": {"preset": PRESET, "seed": seed},
        "instruments": {
            "smu": {
                "model": smu,
                "resource": "TCPIP0::127.0.0.1::0::SOCKET",
                "options": {"timeout_s": timeout},
            },
            "matrix": {
                "model": matrix,
                "resource": "TCPIP0::127.0.0.1::0::SOCKET",
                "options": {"timeout_s": timeout, "slots": slots},
            },
        },
        "arrays": [
            {
                "name": "A",
                "rows": rows,
                "cols": cols,
                "diameter_m": 1e-6,
                "routing": {
                    "matrix": "matrix",
                    "row_pins": row0,
                    "col_pins": col0,
                    "drive": {"smu": "smu", "channel": channel, "matrix_row": hi},
                    "ground_row": lo,
                },
            }
        ],
        "limits": dict(SMU_LIMITS),
    }


def make_twin(
    arrays: Sequence[ArraySpec] | None = None,
    seed: int = 0,
    preset: DevicePreset | None = None,
    array_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    **overrides: Any,
) -> TwinBackend:
    """A bare twin: ``arrays`` (default one 8 x 8 array A of reference devices) of ``preset`` (default
    the shipped one) with ``overrides``; ``array_overrides`` change the preset further per array."""
    base = preset if preset is not None else load_preset(PRESET)
    p = base.with_overrides(**overrides) if overrides else base
    presets = {name: p.with_overrides(**more) for name, more in (array_overrides or {}).items()}
    return TwinBackend(arrays or [ArraySpec("A", 8, 8, REF_AREA_M2)], p, seed=seed, presets=presets)


# --------------------------------------------------------------------------- running
def new_store(tmp_path: Path, name: str = "runs.sqlite") -> Store:
    return Store(tmp_path / name)


def run(
    store: Store,
    protocol: str | Protocol,
    station: Station,
    *,
    run_seed: int | None = None,
    expect: str | None = "completed",
    **params: Any,
) -> RunOutcome:
    """Run a protocol without a plot; the run row must tell the outcome's status, and that status
    must be ``expect`` (``None``: any). ``run_seed`` is the engine's seed (``seed`` is a parameter)."""
    outcome = RunEngine(store).run(protocol, station, params, seed=run_seed, plot=False)
    assert store.run(outcome.run_id).status == outcome.status
    if expect is not None:
        assert outcome.status == expect, outcome.error
    return outcome


# --------------------------------------------------------------------------- emulated benches
@contextmanager
def emulated(
    station: Station | dict[str, Any] | str | Path,
    seed: int | None = None,
    latency_s: float | None = 0.0,
    faults: Mapping[str, list[Fault]] | None = None,
    on_message: Mapping[str, Callable[[str], None]] | None = None,
) -> Iterator[Bench]:
    """Run a station's emulators on free loopback ports; ``bench.station`` points at them."""
    st = (
        station
        if isinstance(station, Station)
        else (load_station(station) if isinstance(station, str | Path) else parse_station(station))
    )
    bench = launch_station(
        st, seed=seed, latency_s=latency_s, faults=faults, free_ports=True, on_message=on_message
    )
    with bench:
        yield bench


@contextmanager
def emulated_board(
    seed: int = 0,
    faults: Sequence[BoardFault] = (),
    rx_max_payload: int | None = None,
    **options: Any,
) -> Iterator[tuple[Station, BoardEmulator]]:
    """A running board emulator (no latency) and a board station pointing at it."""
    template = board_station(seed=seed)
    twin = twin_for_station(template)
    extra = {} if rx_max_payload is None else {"rx_max_payload": rx_max_payload}
    emulator = BoardEmulator(twin, latency=0, faults=faults, **extra)
    resource = emulator.start()
    try:
        yield board_station(resource, seed=seed, **options), emulator
    finally:
        emulator.stop()


# --------------------------------------------------------------------------- a recording backend
class Call(tuple[str, tuple[Any, ...]]):
    """One call that reached a :class:`RecordingBackend`: the tuple ``(name, key arguments)``,
    with every argument by name in :attr:`kwargs`."""

    kwargs: dict[str, Any]

    def __new__(cls, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call:
        call = super().__new__(cls, (name, args))
        call.kwargs = kwargs
        return call

    @property
    def name(self) -> str:
        return self[0]


class RecordingBackend(Backend):
    """Records every call that reaches it, then hands it to ``inner`` or, without one, answers with
    zeros on ``arrays`` (a stand-in behind the safety layer).

    ``calls`` lists :class:`Call` s. Their key arguments: ``read`` ``(array,)``, ``pulse``
    ``(array, pulse, count)``, ``program`` ``(array, counts)``, ``program_cells`` ``(array, cells,
    counts)``, ``program_outer`` ``(array, r, c)``, ``vmm`` ``(arrays, direction, signs)``,
    ``iv_sweep`` ``(array, row, col)``, ``delay`` ``(seconds,)`` (arrays copied). ``safe_state`` is
    counted in ``safe_calls``. Operations named in ``refuse`` fail the test with their reason.
    """

    def __init__(
        self,
        inner: Backend | None = None,
        arrays: Mapping[str, ArraySpec] | None = None,
        refuse: Mapping[str, str] | None = None,
    ) -> None:
        self.inner = inner
        self._arrays = arrays
        self._refuse = dict(refuse or {})
        self.calls: list[Call] = []
        self.safe_calls = 0

    def _record(self, name: str, args: tuple[Any, ...], **kwargs: Any) -> None:
        if name in self._refuse:
            raise AssertionError(self._refuse[name])
        self.calls.append(Call(name, args, kwargs))

    @property
    def arrays(self) -> Mapping[str, ArraySpec]:
        if self.inner is not None:
            return self.inner.arrays
        assert self._arrays is not None, "a RecordingBackend without an inner backend needs arrays"
        return self._arrays

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities if self.inner is not None else Capabilities()

    def now(self) -> float:
        return self.inner.now() if self.inner is not None else 0.0

    def read(self, array: str, cells: CellsLike = None, voltage_V: float = 0.5) -> Readout:
        self._record("read", (array,), array=array, cells=cells, voltage_V=voltage_V)
        if self.inner is not None:
            return self.inner.read(array, cells, voltage_V)
        arr = as_cells(cells, self.arrays[array])
        return Readout(array, arr, voltage_V, np.zeros(len(arr)), np.zeros(len(arr)), 0.0)

    def pulse(
        self,
        array: str,
        cells: CellsLike,
        pulse: Pulse,
        count: int = 1,
        read_after: bool = False,
        read_voltage_V: float = 0.5,
    ) -> PulseTrainResult:
        self._record(
            "pulse", (array, pulse, count), array=array, cells=cells, pulse=pulse, count=count,
            read_after=read_after, read_voltage_V=read_voltage_V,
        )  # fmt: skip
        if self.inner is not None:
            return self.inner.pulse(array, cells, pulse, count, read_after, read_voltage_V)
        return PulseTrainResult(array, np.asarray(cells), pulse, count, None, None, np.zeros(count))

    def program(self, array: str, counts: np.ndarray, pulse: Pulse) -> ProgramResult:
        copied = np.array(counts)
        self._record("program", (array, copied), array=array, counts=copied, pulse=pulse)
        if self.inner is not None:
            return self.inner.program(array, counts, pulse)
        return ProgramResult(array, pulse, int(np.sum(counts)), 0, 0, 0.0)

    def program_cells(self, array: str, cells: CellsLike, counts: np.ndarray, pulse: Pulse) -> ProgramResult:
        if self.inner is None:
            # the interface's default: program of the count matrix (recorded as such)
            return super().program_cells(array, cells, counts, pulse)
        copied_cells, copied = np.array(cells), np.array(counts)
        self._record(
            "program_cells", (array, copied_cells, copied), array=array, cells=copied_cells, counts=copied,
            pulse=pulse,
        )  # fmt: skip
        return self.inner.program_cells(array, cells, counts, pulse)

    def program_outer(self, array: str, r: np.ndarray, c: np.ndarray, pulse: Pulse) -> ProgramResult:
        r_copy, c_copy = np.array(r), np.array(c)
        self._record("program_outer", (array, r_copy, c_copy), array=array, r=r_copy, c=c_copy, pulse=pulse)
        if self.inner is not None:
            return self.inner.program_outer(array, r, c, pulse)
        return ProgramResult(array, pulse, 0, 0, 0, 0.0)

    def program_streams(self, array: str, rows: np.ndarray, cols: np.ndarray, pulse: Pulse) -> ProgramResult:
        r_copy, c_copy = np.array(rows), np.array(cols)
        self._record(
            "program_streams", (array, r_copy, c_copy), array=array, rows=r_copy, cols=c_copy, pulse=pulse
        )  # fmt: skip
        if self.inner is not None:
            return self.inner.program_streams(array, rows, cols, pulse)
        return ProgramResult(array, pulse, 0, 0, 0, 0.0)

    def vmm(
        self,
        arrays: str | Sequence[str],
        voltages_V: np.ndarray,
        direction: Direction = "forward",
        signs: Sequence[float] | None = None,
    ) -> np.ndarray:
        names = (arrays,) if isinstance(arrays, str) else tuple(arrays)
        self._record(
            "vmm", (names, direction, tuple(signs or ())), arrays=arrays, voltages_V=np.array(voltages_V),
            direction=direction, signs=signs,
        )  # fmt: skip
        if self.inner is not None:
            return self.inner.vmm(arrays, voltages_V, direction, signs)
        return np.zeros(1)

    def iv_sweep(
        self,
        array: str,
        row: int,
        col: int,
        voltages_V: np.ndarray,
        compliance_A: float,
        dwell_s: float = 1e-3,
    ) -> IVResult:
        self._record(
            "iv_sweep", (array, row, col), array=array, row=row, col=col, voltages_V=np.array(voltages_V),
            compliance_A=compliance_A, dwell_s=dwell_s,
        )  # fmt: skip
        if self.inner is not None:
            return self.inner.iv_sweep(array, row, col, voltages_V, compliance_A, dwell_s)
        return IVResult(array, row, col, np.zeros(1), np.zeros(1), np.zeros(1), compliance_A)

    def delay(self, seconds: float) -> None:
        self._record("delay", (seconds,), seconds=seconds)
        if self.inner is not None:
            self.inner.delay(seconds)

    def safe_state(self) -> SafeStateReport:
        self.safe_calls += 1
        if self.inner is not None:
            return self.inner.safe_state()
        return SafeStateReport("off", "open", {"recording": "no instruments"})


# --------------------------------------------------------------------------- a tiny MNIST
def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28 x 28 uint8 images whose class c lights up rows 2c+3 .. 2c+5 (plus a little noise)."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    images = (rng.random((n, 28, 28)) < 0.03).astype(np.uint8) * 80
    for i, c in enumerate(labels):
        images[i, 2 * c + 3 : 2 * c + 6, 4:24] = 255
    return images, labels


def write_tiny_mnist(directory: Path, n_train: int = 200, n_test: int = 50, gz: bool = True) -> Path:
    """Write the four IDX files of a tiny synthetic MNIST into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    tr_x, tr_y = synthetic_digits(n_train, 1)
    te_x, te_y = synthetic_digits(n_test, 2)
    suffix = ".gz" if gz else ""
    write_idx(directory / (MNIST_FILES["train_images"] + suffix), tr_x)
    write_idx(directory / (MNIST_FILES["train_labels"] + suffix), tr_y)
    write_idx(directory / (MNIST_FILES["test_images"] + suffix), te_x)
    write_idx(directory / (MNIST_FILES["test_labels"] + suffix), te_y)
    return directory


# --------------------------------------------------------------------------- a writer in another process
def wait_for_readings(
    db: Path, at_least: int, proc: subprocess.Popen[str] | None = None, deadline_s: float = 60.0
) -> int:
    """Poll ``db``'s ``readings`` table with plain sqlite3 until it holds ``at_least`` rows, the
    deadline passes or ``proc`` (the writer) ends; returns the last count (the caller asserts)."""
    return wait_for_count(db, "select count(*) from readings", at_least, proc, deadline_s)


def wait_for_count(
    db: Path, query: str, at_least: int, proc: subprocess.Popen[str] | None = None, deadline_s: float = 60.0
) -> int:
    """Poll ``db`` with plain sqlite3 until the count ``query`` returns reaches ``at_least``, the
    deadline passes or ``proc`` (the writer) ends; returns the last count (the caller asserts)."""
    deadline = time.monotonic() + deadline_s
    seen = 0
    while seen < at_least and time.monotonic() < deadline and (proc is None or proc.poll() is None):
        if db.exists():
            con = sqlite3.connect(db, timeout=10)
            try:
                seen = con.execute(query).fetchone()[0]
            except sqlite3.OperationalError:  # the table is not there yet
                seen = 0
            con.close()
    return seen


# --------------------------------------------------------------------------- a throwaway PostgreSQL server
#: where Debian's ``postgresql-15`` package puts the server binaries (``.ci/run`` installs it)
PG_BIN = Path(os.environ.get("RRAM_HIL_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_SUPERUSER = "rram"
PG_DEADLINE_S = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at this moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A PostgreSQL cluster of its own in a temporary directory, on a free port of 127.0.0.1
    (its unix socket in that directory too), with ``trust`` authentication for the superuser
    :data:`PG_SUPERUSER`: :meth:`start` it, :meth:`create_database` per test, :meth:`stop` it.

    ``initdb`` refuses to run as root: when this process is root, the server's commands run as
    the unprivileged ``postgres`` system user (created by the Debian package), which then owns
    the temporary directory. Raises ``RuntimeError`` (the test fails, it is not skipped) when the
    server binaries are missing.

    ``durable=False`` (tests) runs without fsync; benchmarks keep PostgreSQL's defaults.
    """

    def __init__(self, durable: bool = False, bin_dir: Path = PG_BIN) -> None:
        if not (bin_dir / "initdb").exists():
            raise RuntimeError(
                f"PostgreSQL server binaries not found at {bin_dir} (install Debian's postgresql-15: "
                "apt-get install -y postgresql-15); the PostgreSQL tests need a real server"
            )
        self.bin = bin_dir
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="rram-hil-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self.started = False

    def _cmd(self, *args: str | Path, timeout: float = PG_DEADLINE_S) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self._as_user, *(str(a) for a in args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{Path(str(args[0])).name} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def start(self) -> PostgresServer:
        self._cmd(
            self.bin / "initdb", "-D", self.data, "-U", PG_SUPERUSER, "--auth=trust", "-E", "UTF8",
            "--locale=C", "--no-sync",
        )  # fmt: skip
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        # pg_ctl -w waits until the server accepts connections, at most -t seconds
        self._cmd(
            self.bin / "pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-o", options, "-w",
            "-t", str(int(PG_DEADLINE_S)), "start",
        )  # fmt: skip
        self.started = True
        self._cmd(self.bin / "pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-t", str(int(PG_DEADLINE_S)))
        return self

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        """The SQLAlchemy URL of ``database`` on this server (psycopg 3)."""
        auth = PG_SUPERUSER if password is None else f"{PG_SUPERUSER}:{password}"
        return f"postgresql+psycopg://{auth}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run one statement outside a transaction (``CREATE DATABASE``, ``CREATE ROLE``, ...)."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=PG_SUPERUSER, dbname=database, autocommit=True
        ) as conn:
            conn.execute(sql.encode())

    def create_database(self, prefix: str = "test") -> str:
        """A new, empty database; returns its SQLAlchemy URL."""
        name = f"{prefix}_{next(self._names)}"
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    _names = itertools.count(1)

    def stop(self) -> None:
        try:
            if self.started:
                self._cmd(self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
                self.started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- a Dask cluster of processes
@dataclass
class DaskProcesses:
    """A ``dask scheduler`` process and ``dask worker`` processes (see :func:`dask_processes`)."""

    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]

    @property
    def worker_pids(self) -> set[int]:
        return {w.pid for w in self.workers}


@contextmanager
def dask_processes(
    directory: Path, n_workers: int = 2, deadline_s: float = 120.0, nanny: bool = False
) -> Iterator[DaskProcesses]:
    """A real Dask cluster on 127.0.0.1 (not a LocalCluster): the ``dask`` command line starts a
    scheduler on a free port (``--port 0``, its address in a scheduler file) and ``n_workers``
    workers of one process and one thread each, by default without a nanny (a killed worker stays
    dead, so its task must run elsewhere; the worker's pid is the pid of the process that runs the
    tasks; with ``nanny`` the pids are the nannies', which restart a killed worker).
    Waits for every worker with a deadline; kills them all at the end."""
    from distributed import Client

    dask = str(Path(sys.executable).with_name("dask"))
    directory.mkdir(parents=True, exist_ok=True)
    scheduler_file = directory / "scheduler.json"
    env = {**os.environ, "MPLBACKEND": "Agg"}
    log = open(directory / "dask.log", "wb")  # noqa: SIM115 - closed at the end
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        procs.append(
            subprocess.Popen([dask, *args], stdout=log, stderr=subprocess.STDOUT, cwd=directory, env=env)
        )
        return procs[-1]

    try:
        scheduler = start(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(scheduler_file),
        )
        workers = [
            start(
                "worker",
                "--scheduler-file",
                str(scheduler_file),
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--nanny" if nanny else "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
                "--memory-limit",
                "0",
                "--local-directory",
                str(directory / f"worker-{i}"),
                "--name",
                f"worker-{i}",
            )  # fmt: skip
            for i in range(n_workers)
        ]
        with Client(scheduler_file=str(scheduler_file), timeout=deadline_s) as client:
            client.wait_for_workers(n_workers, timeout=deadline_s)
            address = client.scheduler.address
        yield DaskProcesses(address, scheduler, workers)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait(timeout=deadline_s)
        log.close()
