"""Committed readings per second on PostgreSQL, beside SQLite: the store's bulk logging on a
server vs the strongest plain client (psycopg 3 ``COPY``), and the store on a SQLite file.

All three write the same readings (default 200,000, as in ``bench_store_throughput.py``) in
batches of 1,024, one committed transaction per batch (as a whole-array read is logged). The
server is a throwaway one this script starts in a temporary directory (Debian's
``postgresql-15`` binaries, PostgreSQL's durable defaults: fsync on, synchronous commit), on
127.0.0.1 as a lab server on the same machine; ``--db URL`` measures an existing (empty) server
database instead. The baseline is ``COPY ... FROM STDIN`` of each batch into a table of the same
shape and indexes: PostgreSQL's fastest path, without any of the store's bookkeeping.

    python benchmarks/bench_store_postgresql.py [--readings N] [--db postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import best_of
from bench_store_throughput import BATCH, columns

from hil.store import Store

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("run_id", "seq", "kind", "array", "row", "col", "voltage_V", "current_A", "conductance_S", "t_s",
         "cycle", "pulse", "step")  # fmt: skip


def store_writer(url_of: Callable[[], str], n: int) -> Callable[[], None]:
    def write() -> None:
        store = Store(url_of())
        run_id = store.create_run("bench", {}, {"name": "bench"}, "twin")
        for start in range(0, n, BATCH):
            store.add_readings(columns(run_id, start, min(BATCH, n - start)))
        store.close()

    return write


def copy_writer(conninfo_of: Callable[[], dict[str, object]], n: int) -> Callable[[], None]:
    import psycopg

    def write() -> None:
        with psycopg.connect(**conninfo_of()) as conn:  # type: ignore[arg-type]
            conn.execute("DROP TABLE IF EXISTS plain_readings")
            conn.execute(
                "CREATE TABLE plain_readings (id bigserial PRIMARY KEY, run_id int, seq int, kind text, "
                '"array" text, "row" int, col int, "voltage_V" float8, "current_A" float8, '
                '"conductance_S" float8, t_s float8, cycle int, pulse int, step int)'
            )
            conn.execute("CREATE UNIQUE INDEX plain_ix ON plain_readings (run_id, seq)")
            conn.commit()
            cols = ", ".join(f'"{c}"' for c in NAMES)
            for start in range(0, n, BATCH):
                batch = columns(1, start, min(BATCH, n - start))
                m = len(batch["seq"])  # type: ignore[arg-type]
                lists = [
                    batch[k].tolist() if isinstance(batch[k], np.ndarray) else [batch[k]] * m  # type: ignore[union-attr]
                    for k in NAMES
                ]
                with conn.cursor() as cur, cur.copy(f"COPY plain_readings ({cols}) FROM STDIN") as copy:
                    for row in zip(*lists, strict=True):
                        copy.write_row(row)
                conn.commit()

    return write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=200_000, help="readings per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--db", help="an empty PostgreSQL database to use instead of a throwaway server")
    args = parser.parse_args()
    n = args.readings
    server = None
    if args.db is None:
        sys.path.insert(0, str(ROOT))
        from tests.helpers import PostgresServer

        server = PostgresServer(durable=True).start()
    try:
        counter = iter(range(1_000_000))

        def pg_url() -> str:
            if server is None:
                return str(args.db)
            return server.create_database(f"bench{next(counter)}")

        def conninfo() -> dict[str, object]:
            from sqlalchemy.engine import make_url

            url = make_url(pg_url())
            return {"host": url.host, "port": url.port, "user": url.username, "password": url.password,
                    "dbname": url.database}  # fmt: skip

        if server is None:  # one database: the store's tables are reused, the run ids go on
            t_pg, m_pg = best_of(store_writer(lambda: str(args.db), n), args.repeats)
        else:
            t_pg, m_pg = best_of(store_writer(pg_url, n), args.repeats)
        t_copy, m_copy = best_of(copy_writer(conninfo, n), args.repeats)
        with tempfile.TemporaryDirectory() as d:
            files = iter(range(1_000_000))
            t_lite, m_lite = best_of(store_writer(lambda: str(Path(d) / f"s{next(files)}.sqlite"), n), args.repeats)
    finally:
        if server is not None:
            server.stop()
    print(f"readings: {n} in batches of {BATCH}, one commit per batch; PostgreSQL on 127.0.0.1, durable")
    print(f"rram-hil store, PostgreSQL : {n / t_pg:>10,.0f} readings/s (best; median {n / m_pg:,.0f})")
    print(f"psycopg COPY baseline      : {n / t_copy:>10,.0f} readings/s (best; median {n / m_copy:,.0f})")
    print(f"rram-hil store, SQLite     : {n / t_lite:>10,.0f} readings/s (best; median {n / m_lite:,.0f})")
    print(f"store on PostgreSQL / COPY : {t_copy / t_pg:.2f}; PostgreSQL / SQLite: {t_lite / t_pg:.2f}")
    print(f"store_postgresql_committed_readings_per_s: {n / t_pg:.0f} readings/s")


if __name__ == "__main__":
    main()
