"""``rram-hil serve``: the web application on the store and the run engine (``docs/web.md``)."""

from __future__ import annotations

from typing import Annotated

import typer

from hil.cli.common import PLOT_DIR, Command, DbOption, StationOption, bad_input, fail, out
from hil.errors import ConfigError
from hil.store import DEFAULT_DB


def serve(
    db: DbOption = DEFAULT_DB,
    station: StationOption = None,
    host: Annotated[str, typer.Option(help="address to listen on (not loopback: every page needs the token)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=0, max=65535)] = 8000,
) -> None:
    """Serve the lab in a browser: runs, live plots, start / abort / resume (needs the access token)."""
    import uvicorn

    from hil.station import load_station
    from hil.store import Store
    from hil.web.app import Settings, create_app
    from hil.web.security import TOKEN_ENV, is_loopback, resolve_token

    with bad_input():
        st = load_station(station)
        try:
            token, generated = resolve_token()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        Store(db, reap_stale=True).close()  # created if new; a database this version cannot use is refused
    loopback = is_loopback(host)
    settings = Settings(db=db, station=st, station_file=station, token=token, loopback=loopback,
                        artifact_dir=PLOT_DIR.resolve(),
                        allowed_hosts=sorted({host, "127.0.0.1", "localhost", "::1", "[::1]"}) if loopback else None)  # fmt: skip
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    out.print(f"rram-hil serve: {url}/ (database {db}, station {st.name})", highlight=False, soft_wrap=True)
    where = "every page and control action" if not loopback else "control actions (start, abort, resume)"
    source = "generated for this session" if generated else f"from {TOKEN_ENV}"
    out.print(f"access token ({source}; needed for {where}):", highlight=False, soft_wrap=True)
    out.print(f"  {url}/login?token={token}", highlight=False, soft_wrap=True, markup=False)
    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
    except OSError as exc:
        raise fail(f"port: cannot listen on {host}:{port} ({exc.strerror or exc})") from None


def register(app: typer.Typer) -> None:
    app.command(cls=Command)(serve)
