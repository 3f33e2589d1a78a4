"""Starting, aborting and resuming runs from the web: each run in a process of its own
(:mod:`hil.web.runner`), through the same engine and safety layer as ``rram-hil run``.

Validation happens here first, with the command line's own code (:func:`hil.engine.prepare`
against a read-only validation store), so a bad value gets the same one-line message and nothing
is written; only then is the runner started. The station is the server's (``--station``): the
form carries protocol parameters only, never limits.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hil.engine import prepare
from hil.errors import ConfigError
from hil.protocol import get_protocol
from hil.station import Station
from hil.store import validation_store
from hil.web.runner import ABORT_SIGNAL, RUN_ID_PREFIX

#: how long a runner may take to record its run before the start is reported as failed
START_TIMEOUT_S = 120.0


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

    def running_here(self, run_id: int) -> bool:
        job = self.jobs.get(run_id)
        return job is not None and job.process.poll() is None

    def abort(self, run_id: int, origin: Mapping[str, Any], timeout_s: float = 60.0) -> str:
        """Interrupt a run this server started: the runner's abort signal, which the engine
        handles as Ctrl-C (safe state, readings kept, run ``interrupted``); returns the status."""
        from hil.store import Store

        job = self.jobs.get(run_id)
        if job is None or job.process.poll() is not None:
            raise ConfigError(f"abort: run {run_id} is not running from this server")
        with Store(self.db, reap_stale=False, must_exist=True) as store:
            status = store.run(run_id).status
            if status != "running":  # it ended (or is drawing its plot): nothing to interrupt
                raise ConfigError(f"abort: run {run_id} is '{status}', not running")
            store.add_event(run_id, "web-abort", dict(origin))
        job.process.send_signal(ABORT_SIGNAL)
        job.done.wait(timeout_s)
        deadline = time.monotonic() + 5
        with Store(self.db, reap_stale=False, must_exist=True) as store:
            status = store.run(run_id).status
            while status == "running" and time.monotonic() < deadline:
                store.conn.rollback()
                time.sleep(0.05)
                status = store.run(run_id).status
        return status

    def shutdown(self) -> None:
        """Interrupt every run still going (the server is stopping), as an abort does."""
        for job in list(self.jobs.values()):
            if job.process.poll() is None:
                job.process.send_signal(ABORT_SIGNAL)
        for job in list(self.jobs.values()):
            job.done.wait(30)
