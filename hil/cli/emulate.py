"""``rram-hil emulate``: run wire-level emulators of a station's instruments (or of one).

``rram-hil emulate STATION [--seed N]`` starts every emulator the station needs around one twin
seeded with N, prints one line per instrument with its resource string, then ``ready``, and
runs until interrupted (Ctrl-C or SIGTERM). ``rram-hil emulate --instrument MODEL [--port P]``
starts one emulator alone.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from hil.cli.common import Command, bad_input, fail, out
from hil.errors import ConfigError
from sim_backend.emulators.models import EMULATORS


def _parse_faults(specs: list[str], station_mode: bool) -> dict[str, list[Any]]:
    from sim_backend.emulators.scpi_server import parse_fault

    faults: dict[str, list[Any]] = {}
    for spec in specs:
        name, text = ("", spec)
        if station_mode:
            name, sep, text = spec.partition(":")
            if not sep or not text:
                raise ConfigError(f"--fault: '{spec}' is not NAME:KIND[@AFTER][:ARG] (e.g. smu:timeout@40)")
        try:
            faults.setdefault(name, []).append(parse_fault(text))
        except ValueError as exc:
            raise ConfigError(f"--fault: {exc}") from None
    return faults


@contextmanager
def _until_interrupted() -> Iterator[threading.Event]:
    """An event set by Ctrl-C (SIGINT) or SIGTERM; the handlers are in place from the start,
    so a signal sent as soon as ``ready`` is printed is not lost."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def emulate(
    station: Annotated[
        str | None, typer.Argument(metavar="STATION", help="station YAML file whose instruments to emulate")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="twin seed (default: the station's twin.seed)", min=0, max=2**32 - 1)
    ] = None,
    instrument: Annotated[
        str | None,
        typer.Option(
            "--instrument",
            help=f"emulate one instrument model alone ({', '.join(EMULATORS)}); the board on a pseudo-terminal",
        ),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", help="TCP port of --instrument (0: a free one)", min=0, max=65535)
    ] = 0,
    latency: Annotated[
        float | None,
        typer.Option("--latency", help="per-message latency of every emulator (s)", min=0, max=10),
    ] = None,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            help="inject a fault: NAME:KIND, NAME:KIND@AFTER or NAME:KIND@AFTER:ARG (no NAME with --instrument); repeatable",
        ),
    ] = None,
) -> None:
    """Run wire-level emulators of a station's instruments (or one alone) until interrupted."""
    from sim_backend.emulators.launcher import launch_instrument, launch_station

    with bad_input():
        if (station is None) == (instrument is None):
            raise ConfigError("emulate: give a STATION file or --instrument MODEL (one of them)")
        if station is not None and port:
            raise ConfigError(
                "--port: only with --instrument (a station's ports are in its resource strings)"
            )
        faults = _parse_faults(fault or [], station_mode=station is not None)
        if station is not None:
            bench = launch_station(station, seed=seed, latency_s=latency, faults=faults)
        else:
            assert instrument is not None
            bench = launch_instrument(
                instrument, port=port, seed=seed, latency_s=latency, faults=faults.get("", [])
            )
    with _until_interrupted() as stop:
        try:
            resources = bench.start()
        except OSError as exc:
            raise fail(str(exc)) from None
        try:
            for name, resource in resources.items():
                out.print(f"{name}: {bench.models[name]} {resource}", highlight=False, soft_wrap=True)
            out.print("ready")
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
        finally:
            bench.stop()
    out.print("stopped")


def register(app: typer.Typer) -> None:
    """Add ``emulate`` to ``app``."""
    app.command("emulate", cls=Command)(emulate)
