"""Peak memory of a full 784-250-10 hybrid training run, against a float run of the same network.

Each run is a child process (``rram-hil run hybrid-training``), so its peak resident set size
(ru_maxrss) is its own. Last line: ``peak_memory_hybrid_784_250_10: MiB MiB``.

    python benchmarks/bench_training_memory.py [--epochs N] [--train-limit N]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_mib(synapse: str, epochs: int, train_limit: int | None, db: Path) -> tuple[float, float]:
    args = [sys.executable, "-m", "hil.cli", "run", "hybrid-training", "--db", str(db), "--no-plot",
            "--set", f"synapse={synapse}", "--set", f"epochs={epochs}"]  # fmt: skip
    if train_limit:
        args += ["--set", f"train_limit={train_limit}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far (KiB on Linux): run the small one first
    return max(after, before) / 1024.0, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--train-limit", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fp, t_fp = peak_mib("fp", args.epochs, args.train_limit, Path(tmp) / "m.sqlite")
        hy, t_hy = peak_mib("hybrid", args.epochs, args.train_limit, Path(tmp) / "m.sqlite")
        size = (Path(tmp) / "m.sqlite").stat().st_size / 2**20
    print(f"float 784-250-10 run: peak {fp:.0f} MiB ({t_fp:.0f} s)")
    print(f"hybrid 784-250-10 run ({args.epochs} epoch(s), 8 arrays): peak {hy:.0f} MiB ({t_hy:.0f} s)")
    print(f"database after both runs: {size:.1f} MiB")
    print(f"peak_memory_hybrid_784_250_10: {hy:.0f} MiB")


if __name__ == "__main__":
    main()
