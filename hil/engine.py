"""The run engine: validates, opens the backend, records the run, runs the protocol, always
leaves the hardware safe, and marks how the run ended.

Order of a run:

1. parameters are validated and checked against the station and, read only, against what they
   refer to in the store (nothing is written on failure);
2. the backend is opened behind the safety layer;
3. a ``runs`` row is committed with status ``running``;
4. the protocol executes, committing its readings as it takes them;
5. whatever happens (return, exception, Ctrl-C, SIGTERM) the backend is put in its safe state
   (outputs off, routes open) and closed, and the run is marked ``completed``, ``failed`` or
   ``interrupted``;
6. the protocol's plot is written and recorded as an artifact.
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from hil.backend import Backend, SafeStateNotConfirmed
from hil.backends.registry import BackendFactory, backend_kind, build_backend
from hil.errors import ConfigError, format_validation_error
from hil.protocol import NullProgress, Progress, Protocol, RunContext, get_protocol
from hil.safety import SafeBackend
from hil.station import Station, parse_station
from hil.store import Store
from hil.types import SafeStateReport


class RunInterrupted(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM during a run, or when the run
    sees an abort request (:class:`AbortWatch`)."""


#: how often (at most) a running run looks in the store for an abort request, in seconds
ABORT_CHECK_S = 0.25


def abort_message(request: Mapping[str, Any]) -> str:
    """The run's error line for an abort request: who asked, from where."""
    origin = request.get("origin") or {}
    via = str(origin.get("via") or "another process")
    where = ", ".join(str(origin[k]) for k in ("user", "client", "host") if origin.get(k))
    return f"aborted on request from {via}" + (f" ({where})" if where else "")


class AbortWatch:
    """Stops a run when someone asks (:meth:`Store.request_abort`: the web application, ``rram-hil
    abort``, from any process or machine sharing the database).

    The store calls :meth:`check` after each commit, and the engine at each progress step; at
    most every ``interval_s`` it looks for an ``abort-requested`` event (newer than the run's
    last ``resumed`` event; one indexed query), and if there is one raises
    :class:`RunInterrupted` in the run's thread. That lands after a commit has returned, never
    inside a write, so the engine then does what it does for Ctrl-C: safe state (outputs off,
    routes open), every committed reading kept, the run marked ``interrupted``. A request from
    before a resume (one left by a process killed before it saw it) is not seen again.

    It also raises again, at the next commit, an interrupt signal that :func:`interrupt_signals`
    recorded in :attr:`signalled`: Python drops a ``KeyboardInterrupt`` that its handler raises
    inside a finaliser (``__del__``, a weakref callback), printing "Exception ignored", and the run
    would go on as if Ctrl-C had never been pressed.
    """

    def __init__(self, store: Store, run_id: int, interval_s: float | None = ABORT_CHECK_S) -> None:
        self.store = store
        self.run_id = run_id
        self.interval_s = interval_s
        self.after_event_id = 0
        self.armed = False
        self._next = 0.0
        self._thread: threading.Thread | None = None
        self._previous: Callable[[], None] | None = None
        #: an interrupt signal received during the run, not yet seen by the engine
        self.signalled: KeyboardInterrupt | None = None

    def __enter__(self) -> AbortWatch:
        if self.interval_s is not None:
            # a new run sees every request; a resumed one those since it was resumed (an older
            # one was for the run's earlier process, which was killed before it saw it)
            self.after_event_id = self.store.last_event_id(self.run_id, kind="resumed")
        self._thread = threading.current_thread()
        self._previous = self.store.after_commit
        self.store.after_commit = self.check
        self._next = time.monotonic() + (self.interval_s or 0.0)
        self.armed = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.disarm()

    def disarm(self) -> None:
        """No more checks (the engine makes the backend safe and records the end)."""
        if self.armed:
            self.armed = False
            self.store.after_commit = self._previous

    def check(self) -> None:
        """Raise :class:`RunInterrupted` if an abort was requested (looked up at most every
        ``interval_s``; otherwise this costs one clock read), or the interrupt signal recorded in
        :attr:`signalled` if its own raise was lost."""
        if not self.armed or threading.current_thread() is not self._thread:
            return
        if self.signalled is not None and not self.store.conn.in_transaction():
            interrupt, self.signalled = self.signalled, None
            self.disarm()
            raise interrupt
        if self.interval_s is None:
            return
        now = time.monotonic()
        if now < self._next:
            return
        if self.store.conn.in_transaction():  # inside a write: at its commit
            return
        self._next = now + self.interval_s
        request = self.store.abort_request(self.run_id, self.after_event_id)
        if request is not None:
            self.disarm()
            raise RunInterrupted(abort_message(request))


class _WatchedProgress:
    """A run's progress display whose steps are also where an abort request is seen."""

    def __init__(self, inner: Progress, watch: AbortWatch) -> None:
        self.inner = inner
        self.watch = watch

    def start(self, total: float | None, description: str) -> None:
        self.inner.start(total, description)
        self.watch.check()

    def advance(self, amount: float = 1, status: str | None = None) -> None:
        self.inner.advance(amount, status)
        self.watch.check()


@dataclass
class RunOutcome:
    """How a run ended: its id, status, error message (if any) and plot path (if any)."""

    run_id: int
    status: str
    error: str | None = None
    plot: Path | None = None


def parse_params(protocol: Protocol, values: Mapping[str, Any] | BaseModel) -> Any:
    """Validate protocol parameters; a bad one raises :class:`ConfigError` naming it and its range."""
    if isinstance(values, protocol.Params):
        return values
    data = values.model_dump() if isinstance(values, BaseModel) else dict(values)
    try:
        return protocol.Params.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, protocol.Params)) from None


@contextmanager
def interrupt_signals(watch: AbortWatch | None = None) -> Iterator[None]:
    """For the duration of a run (main thread only): SIGTERM raises :class:`RunInterrupted`, as
    Ctrl-C (SIGINT) raises ``KeyboardInterrupt``. With ``watch``, each signal is also recorded in
    ``watch.signalled``, which raises it again at the run's next commit should the first raise be
    lost (see :class:`AbortWatch`). A process started with SIGINT ignored (a shell's background
    job) goes on ignoring it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: Any) -> None:
        interrupt = (
            KeyboardInterrupt()
            if signum == signal.SIGINT
            else RunInterrupted(f"received signal {signal.Signals(signum).name}")
        )
        if watch is not None:
            watch.signalled = interrupt
        raise interrupt

    kinds = [signal.SIGTERM]
    if watch is not None and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        kinds.append(signal.SIGINT)  # a process told to ignore Ctrl-C (a background job) still does
    previous = {kind: signal.signal(kind, on_signal) for kind in kinds}
    try:
        yield
    finally:
        for kind, handler in previous.items():
            signal.signal(kind, handler)


def prepare(
    protocol: Protocol | str,
    station: Station,
    params: Mapping[str, Any] | BaseModel,
    store: Store | None = None,
) -> tuple[Protocol, Any, Station]:
    """Validate everything a run needs without touching the backend or writing to the store.

    The station's backend kind provisions the arrays the protocol asks for (the twin fabricates
    them; a hardware station must declare them), then the protocol checks the result; given the
    ``store`` the run will be recorded in, the protocol also checks what its parameters refer to
    there (:meth:`~hil.protocol.Protocol.preflight_store`, read only).
    """
    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    checked = parse_params(proto, params)
    requests = proto.required_arrays(checked, station)
    station = backend_kind(station.backend).provision(station, requests, proto.name)
    proto.preflight(checked, station)
    if store is not None:
        proto.preflight_store(checked, store)
    return proto, checked, station


def run_seed(proto: Protocol, params: Any, station: Station, seed: int | None) -> int | None:
    """The seed a run records: the one given, else the protocol's, else the station's default."""
    if seed is not None:
        return seed
    own = proto.seed(params)
    return own if own is not None else backend_kind(station.backend).default_seed(station)


def db_stem(store: Store) -> str:
    """The database's name for file names: a file's stem, a server database's name."""
    url = store.engine.url
    name = url.database or ""
    if not name or name == ":memory:":
        return "memory"
    return Path(name).stem or "db"


def default_plot_path(
    store: Store, run_id: int, protocol: str, folder: Path = Path("rram-hil-plots")
) -> Path:
    """``rram-hil-plots/<db-stem>-run-0001-<protocol>.png``: two databases never share a name.

    If that file already exists and is not this run's own plot (another database with the same
    stem drew it), a short hash of the database URL is added, so it is not overwritten.
    """
    stem = db_stem(store)
    path = folder / f"{stem}-run-{run_id:04d}-{protocol}.png"
    if path.exists() and str(path.resolve()) not in store.artifacts(run_id, "plot"):
        tag = hashlib.sha1(store.url.encode()).hexdigest()[:6]
        path = folder / f"{stem}-{tag}-run-{run_id:04d}-{protocol}.png"
    return path


class RunEngine:
    """Runs protocols against a station and records them in a store.

    Args:
        store: where runs are recorded.
        progress: factory of a progress display per run (default: none).
        plot_dir: where plots are written (default: ``./rram-hil-plots``).
        backend_factory: builds a station's raw backend from ``(station, seed)`` (default: the
            station's backend kind, :func:`hil.backends.build_backend`); the engine always puts
            the safety layer of the station's limits around what it returns.
        abort_check_s: how often (at most) a run looks for an abort request at its commits and
            progress steps (:class:`AbortWatch`); None: never (the run stops only by signal).
    """

    def __init__(
        self,
        store: Store,
        progress: Callable[[], Progress] | None = None,
        plot_dir: str | Path = "rram-hil-plots",
        backend_factory: BackendFactory = build_backend,
        abort_check_s: float | None = ABORT_CHECK_S,
    ) -> None:
        self.store = store
        self.progress = progress or NullProgress
        self.plot_dir = Path(plot_dir)
        self.backend_factory = backend_factory
        self.abort_check_s = abort_check_s

    def open_backend(self, station: Station, seed: int | None) -> SafeBackend:
        """The station's backend behind its safety limits."""
        return SafeBackend(self.backend_factory(station, seed), station.limits)

    def run(
        self,
        protocol: Protocol | str,
        station: Station,
        params: Mapping[str, Any] | BaseModel | None = None,
        seed: int | None = None,
        plot: Path | bool = True,
    ) -> RunOutcome:
        """Run a protocol. Raises :class:`ConfigError`/``LimitError`` before anything is written
        if the input is bad; otherwise always returns the outcome (the run row tells the same)."""
        proto, checked, station = prepare(protocol, station, params or {}, self.store)
        seed = run_seed(proto, checked, station, seed)
        backend = self.open_backend(station, seed)
        try:
            run_id = self.store.create_run(
                proto.name,
                checked.model_dump(mode="json"),
                station.snapshot(),
                station.backend,
                backend.identify(),
                seed,
            )
        except BaseException:  # no run to record it in (a database locked, read-only): outputs off all the same
            _make_safe(backend)
            raise
        ctx = RunContext(run_id, backend, self.store, station, seed, self.progress())
        return self._execute(proto, checked, ctx, plot)

    def resume(self, run_id: int, plot: Path | bool = True) -> RunOutcome:
        """Continue an interrupted or failed run from its last checkpoint."""
        info = self.store.run(run_id)
        proto = get_protocol(info.protocol)
        if not proto.supports_resume:
            raise ConfigError(
                f"resume: protocol '{info.protocol}' cannot be resumed (run {run_id} is {info.status})"
            )
        if info.status == "running":
            raise self.store.refusal(run_id)  # another process owns it
        if info.status not in ("interrupted", "failed"):
            raise ConfigError(
                f"resume: run {run_id} is '{info.status}'; only interrupted or failed runs resume"
            )
        station = parse_station(info.station, f"run {run_id} station")
        checked = parse_params(proto, info.parameters)
        proto.preflight(checked, station)
        proto.preflight_store(checked, self.store)
        before = self.store.claim_run(run_id)  # one owner: a second resume of this run is refused here
        try:
            backend = self.open_backend(station, info.seed)
        except BaseException:
            self.store.release_run(run_id, before)
            raise
        try:
            state = self.store.load_checkpoint(run_id) or {}  # read by the owner, after the claim
            self.store.reopen_run(run_id)
            self.store.add_event(run_id, "resumed", {"checkpoint": state}, t_s=backend.now())
        except BaseException:
            _make_safe(backend)
            raise
        ctx = RunContext(run_id, backend, self.store, station, info.seed, self.progress(), resume_state=state)
        return self._execute(proto, checked, ctx, plot)

    def _execute(self, proto: Protocol, params: Any, ctx: RunContext, plot: Path | bool) -> RunOutcome:
        status, error = "completed", None
        backend = ctx.backend
        report: SafeStateReport | None = None
        watch = AbortWatch(self.store, ctx.run_id, self.abort_check_s)
        try:
            with interrupt_signals(watch):
                try:
                    with watch:
                        ctx.progress = _WatchedProgress(ctx.progress, watch)
                        proto.execute(ctx, params)
                finally:
                    watch.disarm()  # the cleanup is never cut short by a request
                    report = _make_safe(backend)
        except KeyboardInterrupt as exc:
            self.store.abandon_pending()  # the signal may have landed inside a write's commit
            status, error = "interrupted", str(exc) or "interrupted by the user (Ctrl-C)"
        except Exception as exc:  # the run is recorded as failed; the caller gets the message
            self.store.abandon_pending()
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            if isinstance(exc, SafeStateNotConfirmed):
                report = exc.report
            self.store.add_event(ctx.run_id, "error", {"traceback": traceback.format_exc(limit=20)})
        if report is None:
            report = SafeStateReport.unconfirmed(f"the safe state was not reached: {error}")
        self.store.add_event(ctx.run_id, "safe-state", report.record())
        self.store.finish_run(ctx.run_id, status, error)
        plot_path = self._plot(proto, ctx.run_id, plot)
        return RunOutcome(ctx.run_id, status, error, plot_path)

    def _plot(self, proto: Protocol, run_id: int, plot: Path | bool) -> Path | None:
        if plot is False:
            return None
        path = (
            Path(plot)
            if not isinstance(plot, bool)
            else default_plot_path(self.store, run_id, proto.name, self.plot_dir)
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        written = proto.plot(self.store, run_id, path)
        if written is not None:
            self.store.add_artifact(run_id, "plot", written.resolve())
        return written


def _make_safe(backend: Backend) -> SafeStateReport:
    """Safe state then close, returning what the instruments confirmed; a second Ctrl-C during
    cleanup is ignored until it is done. Raises what the safe state raised, after closing."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            report = backend.safe_state()
        finally:
            backend.close()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if not isinstance(report, SafeStateReport):  # a backend that reports nothing confirmed nothing
        return SafeStateReport.unconfirmed(f"{type(backend).__name__}.safe_state() reported nothing")
    return report
