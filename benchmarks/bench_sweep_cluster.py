"""A small Choi 2021 sweep on a real two-worker Dask cluster against the same sweep on a LocalCluster.

The cluster is what ``docs/cluster.md`` describes: a ``dask scheduler`` process and two ``dask
worker`` processes (one process, one thread each) on this machine, already running, the sweep
submitted with ``--scheduler`` (:func:`run_sweep` with ``scheduler=``). The baseline is what the
command does without ``--scheduler``: a LocalCluster of two worker processes of one thread,
started and closed by the sweep (its start is part of its wall time, as for a user; the real
cluster's start is printed apart). Both sweeps: the same cases and parameters, each into a
database of its own, alternated over ``--repeats`` rounds (each first in turn); the best wall time of each is compared.
Prints ``sweep_cluster_over_localcluster: RATIO x`` last (below 1: the real cluster is faster).

    python benchmarks/bench_sweep_cluster.py [--cases a,b,c] [--train-limit N] [--epochs N] [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.helpers: the cluster launcher and the tiny MNIST

from protocols.training.choi2021 import SweepResult, run_sweep, select_cases  # noqa: E402
from tests.helpers import dask_processes, write_tiny_mnist  # noqa: E402

DEFAULT_CASES = "fp,single_s10,hybrid_s50_k10,hybrid_s10_k10"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=DEFAULT_CASES)
    ap.add_argument("--train-limit", type=int, default=600)
    ap.add_argument("--test-limit", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--no-nanny", action="store_true", help="workers without a nanny (as the fault test)")
    args = ap.parse_args()
    os.environ.setdefault("MPLBACKEND", "Agg")
    cases = select_cases(args.cases)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = write_tiny_mnist(work / "mnist", args.train_limit, args.test_limit)
        common = {"epochs": args.epochs, "train_limit": args.train_limit, "test_limit": args.test_limit,
                  "data_dir": str(data), "seed": 0}  # fmt: skip
        print(
            f"{len(cases)} case(s), {args.epochs} epoch(s), {args.train_limit} training images, two workers"
        )
        t0 = time.perf_counter()
        with dask_processes(work / "dask", n_workers=2, nanny=not args.no_nanny) as cluster:
            print(f"cluster start (scheduler + 2 worker processes): {time.perf_counter() - t0:.2f} s")
            local: list[float] = []
            remote: list[float] = []

            def sweep(name: str, scheduler: str | None) -> SweepResult:
                db = str(work / f"{name}.sqlite")
                t = time.perf_counter()
                result = run_sweep(cases, common, work / name, db, workers=2, scheduler=scheduler)
                wall = time.perf_counter() - t
                assert all(r["status"] == "completed" for r in result.rows), result.rows
                in_cases = sum(r["wall_s"] for r in result.rows)
                print(f"  {name:<22} {wall:7.2f} s (cases {in_cases:.2f} s of worker time)")
                (remote if scheduler else local).append(wall)
                return result

            for i in range(args.repeats):  # alternated, and in turn first, against drifting load
                order = [(f"localcluster-{i}", None), (f"cluster-{i}", cluster.address)]
                for name, scheduler in order if i % 2 == 0 else order[::-1]:
                    sweep(name, scheduler)
    best_local, best_remote = min(local), min(remote)
    print(
        f"LocalCluster (2 worker processes, started by the sweep): best {best_local:.2f} s, "
        f"median {statistics.median(local):.2f} s"
    )
    print(
        f"dask scheduler + 2 dask worker processes (running):      best {best_remote:.2f} s, "
        f"median {statistics.median(remote):.2f} s"
    )
    print(f"sweep_cluster_over_localcluster: {best_remote / best_local:.2f} x")


if __name__ == "__main__":
    main()
