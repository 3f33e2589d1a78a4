"""A whole ``hybrid-training`` run, 784-250-10, on the twin: wall time from start to finish.

What a user waits for with ``rram-hil run hybrid-training`` (default 10 epochs, the full MNIST
training and test sets): the engine, the safety layer, calibration, every epoch's training,
evaluation on the training and test sets, snapshots and commits; the plot is not drawn. MNIST from
$RRAM_HIL_DATA or --data-dir. Prints how the wall time splits (the epochs' own training time
against everything else) and, last line, ``hybrid_training_run_wall: SECONDS s``.

    python benchmarks/bench_training_run.py [--epochs N] [--train-limit N] [--test-limit N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any


def training_run(
    epochs: int, train_limit: int | None, test_limit: int | None, data_dir: str | None
) -> tuple[float, Any]:
    """Wall seconds of one hybrid run and its ``epochs`` rows."""
    from hil.engine import RunEngine
    from hil.station import load_station
    from hil.store import Store
    from hil.store.training import epochs_df

    params: dict[str, Any] = {"synapse": "hybrid", "epochs": epochs}
    if train_limit:
        params["train_limit"] = train_limit
    if test_limit:
        params["test_limit"] = test_limit
    if data_dir:
        params["data_dir"] = data_dir
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.sqlite")
        station = load_station(None)
        t0 = time.perf_counter()
        outcome = RunEngine(store).run("hybrid-training", station, params, plot=False)
        wall = time.perf_counter() - t0
        assert outcome.status == "completed", outcome.error
        ep = epochs_df(store, outcome.run_id)
        store.close()
    return wall, ep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (default: 10)")
    parser.add_argument("--train-limit", type=int, default=None, help="training images (default: all 60,000)")
    parser.add_argument("--test-limit", type=int, default=None, help="test images (default: all 10,000)")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    data_dir = args.data_dir or os.environ.get("RRAM_HIL_DATA")
    wall, ep = training_run(args.epochs, args.train_limit, args.test_limit, data_dir)
    trained = ep[ep["epoch"] >= 1]
    train_s = float(trained["wall_s"].sum())
    last = trained.iloc[-1]
    print(
        f"hybrid 784-250-10, {args.epochs} epoch(s), train_limit {args.train_limit or 'all'}, "
        f"test_limit {args.test_limit or 'all'}"
    )
    print(
        f"epochs' training: {train_s:.1f} s ({100 * train_s / wall:.0f} %); calibration, evaluation, "
        f"snapshots and commits: {wall - train_s:.1f} s"
    )
    phases = ", ".join(f"{int(r.epoch)}:{r.phase}" for r in trained.itertuples())
    print(f"phases: {phases}; final test accuracy {float(last['test_accuracy']):.2f} %")
    print(f"hybrid_training_run_wall: {wall:.1f} s")


if __name__ == "__main__":
    main()
