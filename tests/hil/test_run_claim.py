"""A run is owned while it runs: a resume claims the run in one conditional UPDATE, and a second
resume of the same run (another process, at the same moment) is refused in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hil.backends import build_backend
from hil.engine import RunEngine
from hil.store import RunClaimed, Store
from tests import helpers

DEADLINE_S = 300


class InterruptAfter:
    """Passes ``n`` pulse trains to the twin, then raises KeyboardInterrupt (a Ctrl-C mid-run)."""

    def __init__(self, inner: Any, n: int) -> None:
        self.inner, self.n = inner, n

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def pulse(self, *args: Any, **kwargs: Any) -> Any:
        self.n -= 1
        if self.n < 0:
            raise KeyboardInterrupt
        return self.inner.pulse(*args, **kwargs)


def interrupted_run(path: Path, cycles: int = 5, pulses: int = 10, after: int = 6) -> int:
    with Store(path) as store:
        engine = RunEngine(
            store, backend_factory=lambda st, seed=None: InterruptAfter(build_backend(st, seed), after)
        )
        out = engine.run(
            "potentiation-cycling", helpers.twin_station(), {"cycles": cycles, "pulses": pulses}, plot=False
        )
        assert out.status == "interrupted"
        return out.run_id


def test_a_claimed_run_cannot_be_claimed_again(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    run_id = interrupted_run(path)
    with Store(path) as first, Store(path) as second:
        assert first.claim_run(run_id) == "interrupted"
        with pytest.raises(RunClaimed) as refused:
            second.claim_run(run_id)
        message = str(refused.value)
        assert "\n" not in message and message.startswith(f"resume: run {run_id} is already running (pid ")
        with pytest.raises(RunClaimed, match="is already running"):
            RunEngine(second).resume(run_id, plot=False)
        first.release_run(run_id, "interrupted")
        assert second.run(run_id).status == "interrupted"
        assert RunEngine(second).resume(run_id, plot=False).status == "completed"
        assert second.run(run_id).resumes == 1


def test_a_backend_that_does_not_open_gives_the_claim_back(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    run_id = interrupted_run(path)

    def broken(station: Any, seed: int | None = None) -> Any:
        raise OSError("no instrument at the address")

    with Store(path) as store:
        with pytest.raises(OSError):
            RunEngine(store, backend_factory=broken).resume(run_id, plot=False)
        assert store.run(run_id).status == "interrupted" and store.run(run_id).resumes == 0


RESUMER = """
import sys
from hil.cli import main
print("ready", flush=True)
sys.stdin.readline()  # the barrier: both processes are started before either claims the run
sys.argv = ["rram-hil", "resume", sys.argv[1], "--db", sys.argv[2], "--no-plot"]
main()
"""


def test_two_concurrent_resumes_one_completes_the_other_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    # a long remainder (cycles 2..39 of 50-pulse trains on every cell), so the two overlap
    run_id = interrupted_run(path, cycles=40, pulses=50, after=6)
    with Store(path) as store:
        checkpoint = store.load_checkpoint(run_id)
        before = store.count_readings(run_id)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RESUMER, str(run_id), str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [(p.wait(timeout=DEADLINE_S), *p.communicate(timeout=DEADLINE_S)) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    (_, won, _), (_, _, lost) = sorted(results, key=lambda r: r[0])
    assert f"run {run_id}: completed" in won
    refusal = lost.strip()
    assert len(refusal.splitlines()) == 1, refusal
    # refused while the other runs, or (had it already finished) because it is completed
    assert refusal.startswith(f"error: resume: run {run_id} is ")
    assert "already running (pid" in refusal or "is 'completed'" in refusal
    with Store(path) as store:
        info = store.run(run_id)
        assert info.status == "completed" and info.resumes == 1
        df = store.readings_df(run_id)
        assert df.seq.is_unique and df.seq.is_monotonic_increasing
        assert len(df) > before
        done = df[df.kind == "potentiation"]
        assert sorted(done.cycle.unique()) == list(range(40))
        assert done.groupby("cycle").size().nunique() == 1  # every cycle once, none twice
        assert checkpoint == {"next_cycle": 2}
        assert list(store.events_df(run_id)["kind"]).count("resumed") == 1
