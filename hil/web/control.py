"""Starting, aborting and resuming runs from the web: each run in a process of its own
(:mod:`hil.web.runner`), through the same engine and safety layer as ``rram-hil run``.

Validation happens here first, with the command line's own code (:func:`hil.engine.prepare`
against a read-only validation store), so a bad value gets the same one-line message and nothing
is written; only then is the runner started. The station is the server's (``--station``): the
form carries protocol parameters only, never limits.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.engine import prepare
from hil.errors import ConfigError
from hil.protocol import get_protocol
from hil.station import Station
from hil.store import validation_store
from hil.web.runner import RUN_ID_PREFIX

#: how long a runner may take to record its run before the start is reported as failed
START_TIMEOUT_S = 120.0
#: how long an abort waits for the run to end before it answers (the run stops at its next
#: commit, within a fraction of a second while it logs; the request stays pending otherwise)
ABORT_WAIT_S = 30.0


@dataclass
class Job:
    """A runner process and what it said."""

    process: subprocess.Popen[str]
    run_id: int | None = None
    lines: list[str] = field(default_factory=list)
    stderr: str = ""
    announced: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


class RunManager:
    """The runs this server started, by run id."""

    def __init__(self, db: str, station_file: str | None, station: Station, plot_dir: Path) -> None:
        self.db = db
        self.station_file = station_file
        self.station = station
        self.plot_dir = plot_dir
        self.jobs: dict[int, Job] = {}
        self.abort_wait_s = ABORT_WAIT_S
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ validation
    def validate(self, protocol: str, values: Mapping[str, str]) -> dict[str, str]:
        """Check a form's values as ``rram-hil run`` checks ``--set`` ones (nothing is written).

        Raises:
            ConfigError, LimitError: the one-line message naming the field and its range.
        """
        get_protocol(protocol)
        params = dict(values)
        with validation_store(self.db) as checks:
            prepare(protocol, self.station, params, store=checks)
        return params

    # ------------------------------------------------------------------ processes
    def _spawn(self, args: list[str], origin: Mapping[str, Any]) -> Job:
        cmd = [sys.executable, "-m", "hil.web.runner", "--db", self.db, "--plot-dir", str(self.plot_dir),
               "--origin", json.dumps(dict(origin)), *args]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        job = Job(proc)

        def read_out() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.strip()
                job.lines.append(line)
                if line.startswith(RUN_ID_PREFIX) and job.run_id is None:
                    job.run_id = int(line[len(RUN_ID_PREFIX):])
                    with self._lock:
                        self.jobs[job.run_id] = job
                    job.announced.set()

        def read_err() -> None:
            assert proc.stderr is not None
            job.stderr = proc.stderr.read()[-4000:]

        readers = [threading.Thread(target=f, daemon=True) for f in (read_out, read_err)]
        for t in readers:
            t.start()

        def reap() -> None:
            proc.wait()
            for t in readers:
                t.join()
            job.announced.set()
            job.done.set()

        threading.Thread(target=reap, daemon=True).start()
        return job

    def _wait_started(self, job: Job) -> int:
        job.announced.wait(START_TIMEOUT_S)
        if job.run_id is None:
            if job.process.poll() is None:
                job.process.terminate()
            job.done.wait(10)
            last = job.stderr.strip().splitlines()[-1:] or ["the run did not start"]
            raise ConfigError(last[0].removeprefix("error: "))
        return job.run_id

    def start(self, protocol: str, values: Mapping[str, str], origin: Mapping[str, Any]) -> int:
        """Validate, then start the run in its own process; returns its run id once recorded."""
        params = self.validate(protocol, values)
        args = ["run", protocol, "--params", json.dumps(params)]
        if self.station_file is not None:
            args += ["--station", self.station_file]
        return self._wait_started(self._spawn(args, origin))

    def resume(self, run_id: int, origin: Mapping[str, Any]) -> int:
        """Resume a resumable run in its own process (the engine refuses what cannot resume)."""
        from hil.store import Store

        with Store(self.db, reap_stale=False, must_exist=True) as store:
            info = store.run(run_id)
            proto = get_protocol(info.protocol)
            if not proto.supports_resume:
                raise ConfigError(f"resume: protocol '{info.protocol}' cannot be resumed")
            if info.status not in ("interrupted", "failed"):
                raise ConfigError(f"resume: run {run_id} is '{info.status}'; only interrupted or failed runs resume")
            store.add_event(run_id, "web-resume", dict(origin))
        job = self._spawn(["resume", str(run_id)], origin)
        self._wait_started(job)
        return run_id

    def abort(self, run_id: int, origin: Mapping[str, Any], wait_s: float | None = None) -> str:
        """Ask a running run to stop, wherever it runs (this server, the command line in another
        process, another machine on a shared database): an ``abort-requested`` event with
        ``origin`` (:meth:`~hil.store.Store.request_abort`), which the run's engine sees at its
        next commit and handles as Ctrl-C (safe state, readings kept, run ``interrupted``).
        Waits up to ``wait_s`` (default :attr:`abort_wait_s`) for the run to end and returns its
        status then (``running``: the request is pending, the run stops at its next commit).

        Raises:
            ConfigError: no such run, or it is not running (one line; nothing is written). A run
                whose process on this host is gone is marked ``interrupted`` first, as on open.
        """
        from hil.store import Store

        wait_s = self.abort_wait_s if wait_s is None else wait_s
        with Store(self.db, reap_stale=True, must_exist=True) as store:
            store.request_abort(run_id, origin)
            return store.wait_until_ended(run_id, wait_s)

    def shutdown(self) -> None:
        """Ask every run this server started and still going to stop (the server is stopping),
        as an abort does, and wait for them."""
        from hil.store import Store

        going = [(run_id, job) for run_id, job in list(self.jobs.items()) if job.process.poll() is None]
        if not going:
            return
        with Store(self.db, reap_stale=False, must_exist=True) as store:
            for run_id, _job in going:
                with contextlib.suppress(ConfigError):  # it ended meanwhile
                    store.request_abort(run_id, {"via": "web", "reason": "the server is stopping"})
        for _run_id, job in going:
            if not job.done.wait(30):
                job.process.terminate()  # the engine's own SIGTERM: interrupted all the same
                job.done.wait(30)
