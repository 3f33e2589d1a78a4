"""The ``rram-hil`` application: every command module registered on one Typer app.

Bad input (an option, a ``--set`` value, a station field) prints one line naming the field and
its allowed range, exits with status 2, and changes nothing. A run that fails exits 1, an
interrupted one 130.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from hil import __version__
from hil.cli import analysis, db, emulate, runs, serve, training
from hil.cli.common import Group, out

app = typer.Typer(
    name="rram-hil",
    help="Hardware-in-the-loop experiments on RRAM devices and crossbar arrays.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=Group,
)


def version_callback(value: bool) -> None:
    if value:
        out.print(f"rram-hil {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="print the version")
    ] = False,
) -> None:
    """Hardware-in-the-loop experiments on RRAM devices and crossbar arrays."""


runs.register(app)
emulate.register(app)
training.register(app)
analysis.register(app)
db.register(app)
serve.register(app)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    app()
