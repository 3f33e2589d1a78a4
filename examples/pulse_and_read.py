"""Open the built-in twin station, pulse a few cells and read them back as a DataFrame.

    python examples/pulse_and_read.py [--station FILE] [--seed N] [-o readings.csv]

The steps of docs/python-api.md (sections 1 and 2) as a script. Every command passes the
station's safety limits, and the station is left in its safe state however the script ends.
"""

from __future__ import annotations

import argparse

import pandas as pd

import hil.api as rh


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--station", default=None, help="station YAML file (default: the built-in twin)")
    parser.add_argument("--seed", type=int, default=1, help="twin seed")
    parser.add_argument("--cells", default="0:2,0:2", help="cells, as --set takes them")
    parser.add_argument("-o", "--output", default=None, help="CSV file of the readings")
    args = parser.parse_args(argv)

    with rh.station(args.station, seed=args.seed) as bench:
        before = rh.to_df(bench.read("A", args.cells))
        train = bench.pulse("A", args.cells, amplitude_V=2.0, width_s=100e-6, count=10, read_after=True)
        bench.pulse("A", args.cells, amplitude_V=-4.0, width_s=100e-6, count=5)  # strong reset
        after = rh.to_df(bench.read("A", args.cells))
    print(f"safe state confirmed: {bench.safe_state_report.confirmed if bench.safe_state_report else False}")

    df = rh.to_df(train)
    summary = df.groupby(["row", "col"])["conductance_S"].agg(["first", "last"])
    summary["before_S"] = before.set_index(["row", "col"])["conductance_S"]
    summary["after_reset_S"] = after.set_index(["row", "col"])["conductance_S"]
    print(summary.to_string(float_format=lambda v: f"{v * 1e6:.2f} uS"))
    if args.output:
        df.to_csv(args.output, index=False)
        print(f"{len(df)} readings written to {args.output}")
    return df


if __name__ == "__main__":
    main()
