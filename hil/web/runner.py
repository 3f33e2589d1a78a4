"""A run started from the web, in a process of its own: ``python -m hil.web.runner``.

The web server validates the form first (the same :func:`hil.engine.prepare` as ``rram-hil run``;
nothing is written on failure), then starts this process, which runs the protocol through the
same :class:`~hil.engine.RunEngine` and safety layer as the command line. As soon as the run's row
is committed it prints ``run-id N`` on standard output and records a ``web-start`` event naming
where the request came from. It is aborted like any run, wherever it was started: an
``abort-requested`` event in the store (:meth:`hil.store.Store.request_abort`), which the engine
sees at the run's next commit (:class:`hil.engine.AbortWatch`) and handles as Ctrl-C of
``rram-hil run``: the backend goes to its safe state (outputs off, routes open), every committed
reading is kept and the run is marked ``interrupted``. A SIGTERM is still the engine's own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from hil.engine import RunEngine
from hil.station import load_station
from hil.store import Store

RUN_ID_PREFIX = "run-id "
EXIT_BAD_INPUT = 2


class _ReportingStore(Store):
    """A store that announces the run id the engine creates (and records who asked for it)."""

    origin: dict[str, Any] = {}

    def create_run(
        self,
        protocol: str,
        parameters: Mapping[str, Any],
        station: Mapping[str, Any],
        backend: str,
        backend_info: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> int:
        run_id = super().create_run(protocol, parameters, station, backend, backend_info, seed)
        self.add_event(run_id, "web-start", {"origin": self.origin, "runner_pid": os.getpid()})
        announce(run_id)
        return run_id


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
    engine = RunEngine(store, plot_dir=args.plot_dir)
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
