"""A run started from the web, in a process of its own: ``python -m hil.web.runner``.

The web server validates the form first (the same :func:`hil.engine.prepare` as ``rram-hil run``;
nothing is written on failure), then starts this process, which runs the protocol through the
same :class:`~hil.engine.RunEngine` and safety layer as the command line. As soon as the run's row
is committed it prints ``run-id N`` on standard output and records a ``web-start`` event naming
where the request came from. Aborting it is a SIGUSR1 (:class:`_Abort`): an interrupt of the
protocol between two commits, which the engine handles as it handles Ctrl-C of ``rram-hil run``:
the backend goes to its safe state (outputs off, routes open), every committed reading is kept
and the run is marked ``interrupted``. A SIGTERM is still the engine's own (the same as ``kill``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from hil.backend import Backend
from hil.backends.registry import build_backend
from hil.engine import RunEngine, RunInterrupted
from hil.station import Station, load_station
from hil.store import Store
from hil.types import SafeStateReport

RUN_ID_PREFIX = "run-id "
EXIT_BAD_INPUT = 2


class _Abort:
    """The abort of this run: SIGUSR1 from the web server, turned into an interrupt of the
    protocol at a moment where it is safe, the way Ctrl-C stops ``rram-hil run``.

    - while the store writes (one commit) it waits, and lands when the write has returned: an
      interrupt inside a database call would leave the connection unusable, and the engine could
      then record neither the safe state nor the ``interrupted`` status;
    - before the protocol starts it waits for the protocol's first step;
    - once the engine puts the backend in its safe state it is ignored (the cleanup is never
      interrupted), and it fires at most once.
    """

    def __init__(self) -> None:
        self.armed = False
        self.cleaning = False
        self.pending = False
        self.fired = False
        self.depth = 0

    def handler(self, signum: int, frame: Any) -> None:
        if self.fired or self.cleaning:
            return
        self.pending = True
        self.check()

    def check(self) -> None:
        if self.pending and self.armed and not self.depth and not self.cleaning and not self.fired:
            self.fired = True
            raise RunInterrupted("aborted from the web application")

    @contextmanager
    def waits(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        self.check()


ABORT = _Abort()
ABORT_SIGNAL = signal.SIGUSR1


def _guarded(name: str) -> Any:
    method = getattr(Store, name)

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        with ABORT.waits():
            return method(self, *args, **kwargs)

    return wrapper


class _ReportingStore(Store):
    """A store that announces the run id the engine creates (and records who asked for it), and
    whose writes an abort does not cut in two."""

    origin: dict[str, Any] = {}

    add_readings = _guarded("add_readings")
    add_pulses = _guarded("add_pulses")
    add_event = _guarded("add_event")
    add_artifact = _guarded("add_artifact")
    save_checkpoint = _guarded("save_checkpoint")
    relabel_readings = _guarded("relabel_readings")
    finish_run = _guarded("finish_run")
    reopen_run = _guarded("reopen_run")
    claim_run = _guarded("claim_run")
    max_seq = _guarded("max_seq")
    load_checkpoint = _guarded("load_checkpoint")
    run = _guarded("run")

    @contextmanager
    def batch(self) -> Iterator[None]:
        with ABORT.waits(), super().batch():
            yield

    def create_run(
        self,
        protocol: str,
        parameters: Mapping[str, Any],
        station: Mapping[str, Any],
        backend: str,
        backend_info: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> int:
        with ABORT.waits():
            run_id = super().create_run(protocol, parameters, station, backend, backend_info, seed)
            self.add_event(run_id, "web-start", {"origin": self.origin, "runner_pid": os.getpid()})
        announce(run_id)
        return run_id


class _Progress:
    """The protocol's progress (shown nowhere): its steps are where a waiting abort lands."""

    def start(self, total: float | None, description: str) -> None:
        ABORT.check()

    def advance(self, amount: float = 1, status: str | None = None) -> None:
        ABORT.check()


def _progress() -> _Progress:
    ABORT.armed = True  # the engine makes the progress right before the protocol runs
    return _Progress()


def _backend(station: Station, seed: int | None) -> Backend:
    """The station's backend; once the engine asks for its safe state, an abort is ignored."""
    raw = build_backend(station, seed)
    original = raw.safe_state

    def safe_state() -> SafeStateReport:
        ABORT.cleaning = True
        return original()

    raw.safe_state = safe_state  # type: ignore[method-assign]
    return raw


def announce(run_id: int) -> None:
    sys.stdout.write(f"{RUN_ID_PREFIX}{run_id}\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hil.web.runner")
    parser.add_argument("--db", required=True)
    parser.add_argument("--plot-dir", required=True)
    parser.add_argument("--origin", default="{}", help="JSON: where the request came from")
    sub = parser.add_subparsers(dest="action", required=True)
    start = sub.add_parser("run")
    start.add_argument("protocol")
    start.add_argument("--station", default=None)
    start.add_argument("--params", default="{}", help="JSON object of parameter values")
    resume = sub.add_parser("resume")
    resume.add_argument("run_id", type=int)
    args = parser.parse_args(argv)

    from hil.errors import ConfigError
    from hil.safety import LimitError

    _ReportingStore.origin = json.loads(args.origin)
    store = _ReportingStore(args.db)
    signal.signal(ABORT_SIGNAL, ABORT.handler)
    engine = RunEngine(store, progress=_progress, plot_dir=args.plot_dir, backend_factory=_backend)
    try:
        if args.action == "run":
            outcome = engine.run(args.protocol, load_station(args.station), json.loads(args.params))
        else:
            announce(args.run_id)
            outcome = engine.resume(args.run_id)
    except (ConfigError, LimitError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_BAD_INPUT
    finally:
        store.close()
    sys.stdout.write(f"status {outcome.status}\n")
    return 0 if outcome.status == "completed" else 1


if __name__ == "__main__":  # pragma: no cover - the web server starts it as a process
    raise SystemExit(main())
