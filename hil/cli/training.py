"""Command-line commands for training: ``rram-hil reproduce choi2021`` and ``rram-hil data fetch mnist``.

Registered on the main app by :func:`register` (from :mod:`hil.cli.app`).
"""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from hil.cli.common import Command, Group, bad_input, fail, open_store, out, parse_sets

#: what ``reproduce choi2021 --sweep`` accepts as a sweep's name
SWEEP_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

StationOption = Annotated[
    str | None, typer.Option("--station", help="station YAML file (default: the built-in twin)")
]

data_app = typer.Typer(help="Data sets for training protocols.", no_args_is_help=True, cls=Group)
fetch_app = typer.Typer(help="Download a data set.", no_args_is_help=True, cls=Group)
reproduce_app = typer.Typer(
    help="Reproduce a paper's results as one sweep of runs.", no_args_is_help=True, cls=Group
)
data_app.add_typer(fetch_app, name="fetch")


class Dataset(StrEnum):
    mnist = "mnist"


@fetch_app.command("mnist", cls=Command)
def fetch_mnist_command(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="where to put the files (default: $RRAM_HIL_DATA or ../shared/data/mnist)"
        ),
    ] = None,
    url: Annotated[
        str | None, typer.Option("--url", help="base URL of a mirror holding the four .gz files")
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="check the md5 of the original distribution")
    ] = True,
) -> None:
    """Download the four MNIST IDX files (gzipped), checked before they are kept."""
    from protocols.training.mnist import DEFAULT_MNIST_URL, default_data_dirs, fetch_mnist

    target = directory or default_data_dirs()[0]
    with bad_input():
        files = fetch_mnist(target, url or DEFAULT_MNIST_URL, verify_md5=verify)
    for f in files:
        out.print(f"{f}")
    out.print(f"MNIST ready in {target}")


@reproduce_app.command("choi2021", cls=Command)
def reproduce_choi2021(
    epochs: Annotated[
        int | None,
        typer.Option("--epochs", min=1, help="training epochs of every case (default 10; search: 4)"),
    ] = None,
    train_limit: Annotated[
        int | None,
        typer.Option(
            "--train-limit", min=1, help="first N training images (default: all 60,000; search: 10,000)"
        ),
    ] = None,
    test_limit: Annotated[
        int | None, typer.Option("--test-limit", min=1, help="first N test images (default: all 10,000)")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="local Dask workers (one case each)")] = 2,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="address of a running Dask scheduler (tcp://host:port); its workers need the same --db",
        ),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out", help="where table.md, table.csv and the figures go")
    ] = Path("choi2021"),
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="database of the runs (default: OUT/choi2021.sqlite; a shared URL with --scheduler)"
        ),
    ] = None,
    cases: Annotated[
        str | None, typer.Option("--cases", help="comma list of case names (default: all)")
    ] = None,
    data_dir: Annotated[
        str | None, typer.Option("--data-dir", help="MNIST directory (default: $RRAM_HIL_DATA)")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1, help="seed of every case")] = 0,
    station: StationOption = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="extra hybrid-training parameter for every case (name=value)"),
    ] = None,
    search: Annotated[
        int | None,
        typer.Option(
            "--search",
            min=1,
            max=10_000,
            help="search the paper's open choices: this many trials, each the scored cases on the short budget",
        ),
    ] = None,
    sweep: Annotated[
        str | None,
        typer.Option(
            "--sweep",
            help="name of the sweep: run again under the same name (and --db), it reuses the cases that "
            "completed and resumes the interrupted ones (default: a new name, printed)",
        ),
    ] = None,
    resume_search: Annotated[
        int | None, typer.Option("--resume-search", min=1, help="continue the interrupted search run RUN")
    ] = None,
) -> None:
    """Run the cases of Choi et al. 2021 on Dask, each its own run, and write the reproduced table
    (with --search: search the choices the paper leaves open, trials scored against the paper)."""
    if sweep is not None and not SWEEP_NAME.fullmatch(sweep):
        raise fail(f"--sweep: {sweep!r} is not a name (1-64 of A-Z a-z 0-9 _ . -)", 2)
    if search is not None or resume_search is not None:
        if sweep is not None:
            raise fail("--sweep: a search names the sweeps of its trials itself; leave --sweep out", 2)
        _search_choi2021(
            search, resume_search, epochs, train_limit, test_limit, workers, scheduler, out_dir, db,
            cases, data_dir, seed, station, set_,
        )  # fmt: skip
        return
    epochs = 10 if epochs is None else epochs
    from hil.engine import prepare
    from hil.station import load_station
    from hil.store.schema import shown_db
    from protocols.training.choi2021 import case_parameters, run_sweep, select_cases

    common: dict[str, Any] = {"epochs": epochs, "seed": seed}
    if train_limit is not None:
        common["train_limit"] = train_limit
    if test_limit is not None:
        common["test_limit"] = test_limit
    if data_dir is not None:
        common["data_dir"] = str(Path(data_dir).expanduser().resolve())
    with bad_input():
        common.update(parse_sets(set_))
        chosen = select_cases(cases)
        st = load_station(station)
        for case in chosen:  # every case is validated before anything runs
            prepare("hybrid-training", st, case_parameters(case, common))
    out_dir.mkdir(parents=True, exist_ok=True)
    # workers open the database themselves: a file path is made absolute (their working directory differs)
    database = _database(db, out_dir)
    station_path = str(Path(station).resolve()) if station else None
    sweep = sweep or uuid.uuid4().hex
    out.print(
        f"sweep {sweep}: {len(chosen)} case(s), {epochs} epoch(s) each, on "
        f"{scheduler or f'{workers} local worker(s)'} (continue it with --sweep {sweep})",
        soft_wrap=True,
    )

    def report(row: dict[str, Any]) -> None:
        acc = row["measured_test_accuracy"]
        shown = "-" if acc is None else f"{acc:.2f} %"
        run = "-" if row["run_id"] is None else row["run_id"]
        why = f" ({row['error']})" if row["status"] != "completed" and row.get("error") else ""
        out.print(f"  {row['case']:<18} run {run:>4} {row['status']:<10} test {shown}{why}", soft_wrap=True)

    from hil.engine import interrupt_signals

    try:
        # an unreachable scheduler, a database that cannot be opened: one line; SIGTERM (a job
        # scheduler's stop, `kill`) ends the sweep as Ctrl-C does
        with bad_input(), interrupt_signals():
            result = run_sweep(
                chosen, common, out_dir, database, workers, scheduler, station_path, report, sweep=sweep
            )
    except KeyboardInterrupt:
        raise fail(f"interrupted: continue with --sweep {sweep}", 130) from None
    out.print(f"table: {result.table_md}")
    out.print(f"table: {result.table_csv}")
    for f in result.figures:
        out.print(f"figure: {f}")
    out.print(f"wall time: {result.wall_s:.1f} s")
    failed = [r["case"] for r in result.rows if r["status"] != "completed"]
    if failed:
        raise fail(
            f"case(s) did not complete: {', '.join(failed)} (see `rram-hil show RUN --db {shown_db(database)}`)",
            1,
        )


def _database(db: str | None, out_dir: Path) -> str:
    """``--db`` as a URL or an absolute path (workers open it from another directory; default
    ``OUT/choi2021.sqlite``)."""
    database = str(Path(db).expanduser().resolve()) if db and "://" not in db else db
    return database or str((out_dir / "choi2021.sqlite").resolve())


def _search_choi2021(
    trials: int | None,
    resume: int | None,
    epochs: int | None,
    train_limit: int | None,
    test_limit: int | None,
    workers: int,
    scheduler: str | None,
    out_dir: Path,
    db: str | None,
    cases: str | None,
    data_dir: str | None,
    seed: int,
    station: str | None,
    set_: list[str] | None,
) -> None:
    """``reproduce choi2021 --search N`` / ``--resume-search RUN``: see :mod:`protocols.training.search`."""
    from hil.engine import interrupt_signals, prepare
    from hil.station import load_station
    from protocols.training.choi2021 import case_parameters, select_cases
    from protocols.training.search import (
        SEARCH_EPOCHS,
        SEARCH_TRAIN_LIMIT,
        TrialRecord,
        claim_search,
        free_space,
        run_search,
        scored_cases,
        start_search,
        sweep_trials,
        write_search_table,
    )

    if cases:
        raise fail("--cases: a search runs the cases its score needs; leave --cases out", 2)
    database = _database(db, out_dir)
    station_path = str(Path(station).resolve()) if station else None

    def check(settings: dict[str, Any]) -> dict[str, Any]:
        """The budget every trial's cases share; every scored case validated before anything runs."""
        common = {k: v for k, v in settings.items() if k != "trials"}
        for case in select_cases(",".join(scored_cases())):
            prepare("hybrid-training", st, case_parameters(case, common))
        return common

    with bad_input():
        st = load_station(station)
        if resume is None:
            settings: dict[str, Any] = {
                "trials": trials,
                "epochs": SEARCH_EPOCHS if epochs is None else epochs,
                "train_limit": SEARCH_TRAIN_LIMIT if train_limit is None else train_limit,
                "seed": seed,
                **({"test_limit": test_limit} if test_limit is not None else {}),
                **({"data_dir": str(Path(data_dir).expanduser().resolve())} if data_dir else {}),
                **parse_sets(set_),
            }
            common = check(settings)
            out_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(database, must_exist=resume is not None)
    with store:
        with bad_input():
            if resume is None:
                search_id = start_search(store, settings, st.snapshot())
            else:
                settings = claim_search(store, resume)
                if trials is not None:
                    settings["trials"] = trials
                search_id = resume
                try:
                    common = check(settings)
                except Exception:
                    store.release_run(resume, "interrupted")
                    raise
        out.print(
            f"search run {search_id}: {settings['trials']} trial(s) of {len(scored_cases())} cases, "
            f"{common['epochs']} epoch(s) on {common['train_limit']} images, on "
            f"{scheduler or f'{workers} local worker(s)'}"
        )
        space = free_space(common)
        searched = ", ".join(c.name for c in space) or "(nothing: every choice is set)"
        out.print(f"searching: {searched}", soft_wrap=True)

        def report(t: TrialRecord) -> None:
            out.print(f"  trial {t.number:>3}: score {t.score:6.2f} (RMS {t.rms_pp:.2f} pp)", soft_wrap=True)

        runner = sweep_trials(
            common, out_dir / "search", database, search_id, workers, scheduler, station_path
        )
        try:
            with bad_input(), interrupt_signals():  # SIGTERM ends it as Ctrl-C does
                outcome = run_search(
                    store, int(settings["trials"]), runner, search_id, int(settings["seed"]), report, common
                )
        except KeyboardInterrupt:
            raise fail(f"interrupted: continue with --resume-search {search_id}", 130) from None
        table = write_search_table(outcome, out_dir, settings)
    best = outcome.best
    out.print(f"best: trial {best.number}, score {best.score:.2f}")
    out.print(f"table: {table}")


def register(app: typer.Typer) -> None:
    """Add ``data`` and ``reproduce`` to the main command line."""
    app.add_typer(data_app, name="data")
    app.add_typer(reproduce_app, name="reproduce")
