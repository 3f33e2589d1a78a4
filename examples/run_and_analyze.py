"""Run a protocol on the built-in twin, get its readings as a DataFrame, analyze it and write a report.

    python examples/run_and_analyze.py [--db rram-hil.sqlite] [--out DIR] [--cycles N] [--pulses N]

The steps of docs/python-api.md (sections 3 to 5) as a script: potentiation cycling with strong
reset (Fig. 3E of Choi et al. 2021) on four devices, the extracted device parameters, and a
self-contained HTML report; the run is recorded in the database like `rram-hil run` records it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import hil.api as rh


def main(argv: list[str] | None = None) -> rh.Run:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="rram-hil.sqlite", help="database file or SQLAlchemy URL")
    parser.add_argument("--out", default=".", help="folder of the plot and the report")
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--pulses", type=int, default=20)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    run = rh.run(
        "potentiation-cycling",
        cells="0:2,0:2",
        cycles=args.cycles,
        pulses=args.pulses,
        seed=1,
        db=args.db,
        plot_dir=out / "plots",
    )
    print(f"run {run.id}: {run.status}" + (f" ({run.error})" if run.error else ""))
    if run.status != "completed":
        raise SystemExit(1)
    readings = run.readings()
    print(f"{len(readings)} readings; max conductance per cycle (uS):")
    print((readings.groupby("cycle")["conductance_S"].max() * 1e6).round(2).to_string())

    analysis = run.analyze()
    for key in ("g_min_S", "g_max_S", "n_states", "step_mean_S", "sigma_over_mu", "nonlinearity"):
        print(f"{key:>14}: {analysis.summary.get(key)}")
    print(f"plot: {run.plot}")
    print(f"report: {run.report(out / f'report-{run.id}.html')}")
    return run


if __name__ == "__main__":
    main()
