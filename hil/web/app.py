"""The web application: runs list, run pages with live plots, protocol forms, control actions.

Everything is read through the public :class:`~hil.store.Store` API (plus
:func:`hil.web.query.readings_after` for live deltas); every run is started through
:class:`~hil.web.control.RunManager`, i.e. the run engine and the station's safety layer.
Scripts and styles are served by the application itself (plotly.js's cartesian bundle, the
page's own script and styles, all in ``hil/web/static``): nothing comes from the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import json
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError

from hil.errors import ConfigError
from hil.safety import LimitError
from hil.station import Station
from hil.store import Store
from hil.web import live
from hil.web.control import RunManager
from hil.web.security import (
    COOKIE,
    CSRF_FIELD,
    Forbidden,
    check_control,
    csrf_value,
    has_token,
    origin_record,
)

HERE = Path(__file__).resolve().parent
#: the live loop's period: at most this many pushes per second to each page
PUSHES_PER_S = 4.0
STATUSES = ("running", "completed", "interrupted", "failed")


@dataclass
class Settings:
    """What ``rram-hil serve`` was started with."""

    db: str
    station: Station
    station_file: str | None
    token: str
    loopback: bool
    artifact_dir: Path
    #: Host headers accepted (None: any); on loopback, the loopback names only (no DNS rebinding)
    allowed_hosts: list[str] | None = None


#: the plotting library the pages load: plotly.js's "cartesian" partial bundle (scatter, heat
#: maps, ...; MIT, from npm's ``plotly.js-cartesian-dist-min``, the same plotly.js release as the
#: ``plotly`` package's full bundle), kept in ``hil/web/static``. A third of the full bundle, it is
#: evaluated in a third of the time (0.5 s against 1.3 s here), which is most of a first view
PLOTLY_BUNDLE = "plotly-cartesian.min.js"
PLOTLY_VERSION = "4.1.1"


@functools.cache
def plotly_gzip() -> bytes:
    """The plotting bundle, gzip-compressed (once per server process)."""
    return gzip.compress(plotly_js().read_bytes(), compresslevel=6, mtime=0)


def plotly_version() -> str:
    return PLOTLY_VERSION


def plotly_js() -> Path:
    """The plotting bundle the pages load (:data:`PLOTLY_BUNDLE`, served under that name)."""
    return HERE / "static" / PLOTLY_BUNDLE


class _Stores:
    """One read store per thread (a Store holds one connection; threads never share it)."""

    def __init__(self, db: str) -> None:
        self.db = db
        self._local = threading.local()

    def get(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = Store(self.db, reap_stale=False, must_exist=True)
            self._local.store = store
        store.conn.rollback()  # a fresh snapshot for every request
        return store


def _plain(value: Any) -> Any:
    from hil.cli.common import plain

    return plain(value)


def _json(payload: Any) -> str:
    return json.dumps(_plain(payload), allow_nan=False, separators=(",", ":"))


def create_app(settings: Settings) -> FastAPI:
    """The application for ``settings`` (the server's database, station, token)."""
    manager = RunManager(settings.db, settings.station_file, settings.station, settings.artifact_dir)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(_warm_up)  # the first page is as quick as the next ones
        yield
        await anyio.to_thread.run_sync(manager.shutdown)  # runs still going are interrupted cleanly

    app = FastAPI(title="rram-hil", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    stores = _Stores(settings.db)
    if settings.allowed_hosts is not None:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    app.state.settings = settings
    app.state.manager = manager
    csrf = csrf_value(settings.token)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return _error(request, str(exc), exc.status)

    @app.exception_handler(ConfigError)
    async def config_error(request: Request, exc: ConfigError) -> Response:
        return _error(request, str(exc), 404 if "no run with id" in str(exc) else 400)

    def _error(request: Request, message: str, status: int) -> Response:
        if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"error": message}, status_code=status)
        return templates.TemplateResponse(
            request, "error.html", {"message": message, "status": status}, status_code=status
        )

    @app.middleware("http")
    async def gate(request: Request, call_next: Any) -> Response:
        path = request.url.path
        open_paths = path.startswith("/static/") or path == "/login"
        if not settings.loopback and not open_paths and not has_token(request, settings.token):
            return _error(request, "token: this server needs the access token (open /login?token=...)", 401)
        response: Response = await call_next(request)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    def ctx(request: Request, **extra: Any) -> dict[str, Any]:
        return {"csrf_field": CSRF_FIELD, "csrf": csrf, "signed_in": has_token(request, settings.token),
                "station": settings.station.name, "plotly_version": plotly_version(), **extra}  # fmt: skip

    # ------------------------------------------------------------------ static, login
    @app.get(f"/static/{PLOTLY_BUNDLE}")
    async def static_plotly(request: Request) -> Response:
        # the page asks for it with the plotly version in the URL: cached for a year, never
        # revalidated (the browser also keeps its compiled code); gzip-compressed once (4.6 MB
        # -> 1.4 MB: what a lab PC on a slow network waits for on its first visit)
        headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
        if "gzip" not in request.headers.get("accept-encoding", ""):
            return FileResponse(plotly_js(), media_type="application/javascript", headers=headers)
        body = await anyio.to_thread.run_sync(plotly_gzip)
        return Response(body, media_type="application/javascript",
                        headers={**headers, "Content-Encoding": "gzip"})  # fmt: skip

    @app.get("/static/{name}")
    async def static(name: str) -> FileResponse:
        files = {"app.js": "application/javascript", "runs.js": "application/javascript", "style.css": "text/css"}
        if name not in files:
            raise HTTPException(404)
        return FileResponse(HERE / "static" / name, media_type=files[name])

    @app.get("/login")
    async def login(token: str = "") -> Response:
        if not has_token_value(token, settings.token):
            raise Forbidden("token: the access token is wrong", 403)
        response = RedirectResponse("/runs", status_code=303)
        response.set_cookie(COOKIE, settings.token, httponly=True, samesite="strict", max_age=30 * 86400)
        return response

    @app.get("/")
    async def index() -> RedirectResponse:
        return RedirectResponse("/runs", status_code=303)

    # ------------------------------------------------------------------ runs
    def runs_records(filters: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
        df = stores.get().runs_df()
        choices = {
            "protocol": sorted(df["protocol"].dropna().unique().tolist()),
            "status": sorted(set(STATUSES) | set(df["status"].dropna().unique().tolist())),
            "station": sorted(df["station_name"].dropna().unique().tolist()),
        }
        if filters.get("protocol"):
            df = df[df["protocol"] == filters["protocol"]]
        if filters.get("status"):
            df = df[df["status"] == filters["status"]]
        if filters.get("station"):
            df = df[df["station_name"] == filters["station"]]
        for key, op in (("since", "ge"), ("until", "le")):
            if filters.get(key):
                try:
                    day = datetime.strptime(filters[key], "%Y-%m-%d").date()
                except ValueError:
                    raise ConfigError(f"{key}: '{filters[key]}' is not a date (YYYY-MM-DD)") from None
                dates = df["started_at"].map(lambda t: t.date() if hasattr(t, "date") else None)
                df = df[dates >= day] if op == "ge" else df[dates <= day]
        records = [_plain(r) for r in df.sort_values("id", ascending=False).to_dict("records")]
        return records, choices

    def filters_of(request: Request) -> dict[str, str]:
        return {k: request.query_params.get(k, "") for k in ("protocol", "status", "station", "since", "until")}

    @app.get("/api/runs")
    async def api_runs(request: Request) -> JSONResponse:
        records, _ = await anyio.to_thread.run_sync(runs_records, filters_of(request))
        return JSONResponse(records)

    @app.get("/runs", response_class=HTMLResponse)
    async def runs_page(request: Request) -> Response:
        filters = filters_of(request)
        records, choices = await anyio.to_thread.run_sync(runs_records, filters)
        return templates.TemplateResponse(
            request, "runs.html", ctx(request, runs=records, filters=filters, choices=choices)
        )

    def run_record(run_id: int) -> dict[str, Any]:
        import dataclasses

        from hil.cli.listing import parameter_records
        from hil.protocol import available_protocols

        store = stores.get()
        info = store.run(run_id)
        record = _plain(dataclasses.asdict(info))
        cls = available_protocols().get(info.protocol)
        units = {r["name"]: r["unit"] for r in parameter_records(cls.Params)} if cls else {}
        record["parameters_with_units"] = [
            {"name": k, "value": _plain(v), "unit": units.get(k, "")} for k, v in info.parameters.items()
        ]
        record["readings"] = store.count_readings(run_id)
        record["pulse_records"] = store.count_pulses(run_id)
        record["events"] = [_plain(e) for e in store.events_df(run_id).to_dict("records")]
        record["artifacts"] = [artifact_link(p) for p in store.artifacts(run_id)]
        record["resumable"] = bool(cls and cls.supports_resume and info.status in ("interrupted", "failed"))
        record["abortable"] = info.status == "running"  # wherever it runs: the request is in the store
        record["plot"] = live.spec_for(info.protocol).public()
        store.conn.rollback()
        return record

    def artifact_link(path: str) -> dict[str, Any]:
        p = Path(path)
        try:
            rel = p.resolve().relative_to(settings.artifact_dir.resolve())
        except (ValueError, OSError):
            return {"path": path, "url": None, "name": p.name}
        return {"path": path, "url": f"/artifacts/{rel.as_posix()}", "name": p.name}

    @app.get("/api/runs/{run_id}")
    async def api_run(run_id: int) -> JSONResponse:
        return JSONResponse(await anyio.to_thread.run_sync(run_record, run_id))

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run_page(request: Request, run_id: int) -> Response:
        record = await anyio.to_thread.run_sync(run_record, run_id)
        return templates.TemplateResponse(
            request, "run.html",
            ctx(request, run=record, station_json=json.dumps(record["station"], indent=2)),
        )  # fmt: skip

    @app.get("/api/runs/{run_id}/view")
    async def api_view(run_id: int, sampled: bool = False) -> JSONResponse:
        def compute() -> dict[str, Any]:
            store = stores.get()
            state = live.LiveState(run_id, live.spec_for(store.run(run_id).protocol))
            view = live.sampled_view(store, state) if sampled else None
            return view or live.full_view(store, state)

        return JSONResponse(json.loads(_json(await anyio.to_thread.run_sync(compute))))

    @app.get("/api/runs/{run_id}/live")
    async def api_live(request: Request, run_id: int) -> StreamingResponse:
        await anyio.to_thread.run_sync(lambda: stores.get().run(run_id))  # 404 before streaming

        async def events() -> AsyncIterator[str]:
            def first() -> tuple[live.LiveState, dict[str, Any] | None]:
                store = stores.get()
                state = live.LiveState(run_id, live.spec_for(store.run(run_id).protocol))
                return state, live.sampled_view(store, state)

            state, sample = await anyio.to_thread.run_sync(first)
            if sample is not None:
                yield f"data: {_json(sample)}\n\n"
            view = await anyio.to_thread.run_sync(lambda: live.full_view(stores.get(), state))
            yield f"data: {_json(view)}\n\n"
            period = 1.0 / PUSHES_PER_S
            while state.status == "running":
                if await request.is_disconnected():
                    return
                t0 = time.monotonic()
                message = await anyio.to_thread.run_sync(lambda: live.delta(stores.get(), state))
                if message is not None:
                    yield f"data: {_json(message)}\n\n"
                else:
                    yield ": idle\n\n"
                await asyncio.sleep(max(period - (time.monotonic() - t0), 0.0))
            yield f"data: {_json({'type': 'end', 'status': state.status})}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})  # fmt: skip

    # ------------------------------------------------------------------ downloads
    @app.get("/runs/{run_id}/export.csv")
    async def export_csv(run_id: int, table: str = "readings") -> StreamingResponse:
        from hil.cli.runs import ExportTable

        try:
            which = ExportTable(table)
        except ValueError:
            raise ConfigError(
                f"table: '{table}' is not one of {', '.join(t.value for t in ExportTable)}"
            ) from None
        await anyio.to_thread.run_sync(lambda: stores.get().run(run_id))

        def rows() -> Iterator[str]:
            yield from _csv_chunks(settings.db, run_id, which)

        return StreamingResponse(rows(), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="run-{run_id:04d}-{which.value}.csv"'})  # fmt: skip

    @app.get("/runs/{run_id}/report", response_class=HTMLResponse)
    async def report(run_id: int) -> HTMLResponse:
        from protocols.analysis.report import build_report

        def build() -> str:
            store = stores.get()
            store.run(run_id)
            return build_report(store, [run_id])

        return HTMLResponse(await anyio.to_thread.run_sync(build))

    @app.get("/artifacts/{name:path}")
    async def artifact(name: str) -> FileResponse:
        root = settings.artifact_dir.resolve()
        try:
            path = (root / name).resolve()
            path.relative_to(root)
        except (ValueError, OSError):
            raise HTTPException(404, "artifact: outside the artifact directory") from None
        if not path.is_file():
            raise HTTPException(404, "artifact: no such file")
        return FileResponse(path)

    # ------------------------------------------------------------------ protocols and control
    def protocol_forms(name: str | None = None) -> list[dict[str, Any]]:
        from hil.cli.listing import default_text, parameter_records, public
        from hil.protocol import available_protocols, get_protocol

        found = {name: type(get_protocol(name))} if name else available_protocols()
        listing = []
        for proto_name, cls in found.items():
            records = []
            for r in parameter_records(cls.Params, settings.station.limits):
                records.append({**public(r), "default_text": default_text(r["default"])})
            listing.append({"name": proto_name, "title": cls.title, "resumable": bool(cls.supports_resume),
                            "parameters": records})  # fmt: skip
        return listing

    @app.get("/api/protocols")
    async def api_protocols() -> JSONResponse:
        return JSONResponse(_plain(protocol_forms()))

    @app.get("/protocols", response_class=HTMLResponse)
    async def protocols_page(request: Request) -> Response:
        return templates.TemplateResponse(request, "protocols.html", ctx(request, protocols=protocol_forms()))

    @app.get("/protocols/{name}", response_class=HTMLResponse)
    async def protocol_form(request: Request, name: str) -> Response:
        form = protocol_forms(name)[0]
        return templates.TemplateResponse(request, "start.html", ctx(request, p=form, values={}, error=None))

    async def form_of(request: Request) -> dict[str, str]:
        body = (await request.body()).decode("utf-8", "replace")
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                data = json.loads(body or "{}")
            except json.JSONDecodeError:
                raise ConfigError("body: not a JSON object") from None
            if not isinstance(data, dict):
                raise ConfigError("body: not a JSON object")
            return {str(k): str(v) for k, v in data.items()}
        return dict(parse_qsl(body, keep_blank_values=True))

    def wants_json(request: Request) -> bool:
        return "text/html" not in request.headers.get("accept", "")

    @app.post("/protocols/{name}/start")
    async def start(request: Request, name: str) -> Response:
        form = await form_of(request)
        check_control(request, settings.token, form.pop(CSRF_FIELD, None))
        proto = protocol_forms(name)[0]
        defaults = {r["name"]: r["default_text"] for r in proto["parameters"]}
        # like --set: only what differs from the default is given; an unknown name is an error
        values = {k: v.strip() for k, v in form.items() if k not in defaults or v.strip() != defaults[k]}
        origin = origin_record(request, "web")
        try:
            run_id = await anyio.to_thread.run_sync(manager.start, name, values, origin)
        except (ConfigError, LimitError, ValidationError) as exc:
            message = str(exc).splitlines()[0]
            if wants_json(request):
                return JSONResponse({"error": message}, status_code=400)
            shown = {r["name"]: form.get(r["name"], r["default_text"]) for r in proto["parameters"]}
            return templates.TemplateResponse(
                request, "start.html",
                ctx(request, p=proto, values=shown, error=message, error_field=message.split(":", 1)[0]),
                status_code=400,
            )  # fmt: skip
        if wants_json(request):
            return JSONResponse({"run_id": run_id, "url": f"/runs/{run_id}"}, status_code=201)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    @app.post("/runs/{run_id}/abort")
    async def abort(request: Request, run_id: int) -> Response:
        form = await form_of(request)
        check_control(request, settings.token, form.get(CSRF_FIELD))
        status = await anyio.to_thread.run_sync(manager.abort, run_id, origin_record(request, "web"))
        if wants_json(request):
            answer: dict[str, Any] = {"run_id": run_id, "status": status}
            if status == "running":
                answer["message"] = (f"abort: requested; run {run_id} has not stopped yet "
                                     "(it stops at its next commit)")  # fmt: skip
            return JSONResponse(answer, status_code=200 if status != "running" else 202)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    @app.post("/runs/{run_id}/resume")
    async def resume(request: Request, run_id: int) -> Response:
        form = await form_of(request)
        check_control(request, settings.token, form.get(CSRF_FIELD))
        await anyio.to_thread.run_sync(manager.resume, run_id, origin_record(request, "web"))
        if wants_json(request):
            return JSONResponse({"run_id": run_id, "status": "running"}, status_code=202)
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    @app.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        return "ok"

    return app


def _warm_up() -> None:
    """Import what the pages use (protocols, parameter listings, report) before the first request."""
    from hil.cli.listing import parameter_records
    from hil.protocol import available_protocols

    for cls in available_protocols().values():
        parameter_records(cls.Params)
    import protocols.analysis.report  # noqa: F401

    plotly_gzip()  # the first page that plots does not wait for the compression


def has_token_value(given: str, token: str) -> bool:
    import hmac

    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


class _QueueWriter:
    """A text file whose writes go, in pieces of about 1 MiB, to a bounded queue (a CSV streamed
    while the export code writes it: memory stays at a few pieces whatever the run's size)."""

    PIECE = 1 << 20
    TIMEOUT_S = 60.0

    def __init__(self, out: queue.Queue[str | BaseException | None]) -> None:
        self.out = out
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> int:
        self.parts.append(text)
        self.size += len(text)
        if self.size >= self.PIECE:
            self.flush()
        return len(text)

    def flush(self) -> None:
        if self.parts:
            self.out.put("".join(self.parts), timeout=self.TIMEOUT_S)  # a reader gone: give up
            self.parts, self.size = [], 0


def _csv_chunks(db: str, run_id: int, table: Any) -> Iterator[str]:
    """The CSV ``rram-hil export`` writes, through its own code (``_write_csv``), handed on as it
    is written."""
    from hil.cli.runs import _write_csv

    pieces: queue.Queue[str | BaseException | None] = queue.Queue(maxsize=4)

    def produce() -> None:
        try:
            with Store(db, reap_stale=False, must_exist=True) as store:
                fh = _QueueWriter(pieces)
                _write_csv(store, run_id, table, fh)
                fh.flush()
            pieces.put(None)
        except BaseException as exc:  # handed to the response, which ends there
            with contextlib.suppress(queue.Full):
                pieces.put(exc, timeout=1)

    threading.Thread(target=produce, daemon=True).start()
    while True:
        piece = pieces.get()
        if piece is None:
            return
        if isinstance(piece, BaseException):
            raise piece
        yield piece
