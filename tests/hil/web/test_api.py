"""Every endpoint of ``rram-hil serve``, through FastAPI's TestClient: what it shows, bad input,
a missing or wrong token, cross-site requests, path traversal."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from hil.store import Store
from hil.web import live
from hil.web.query import readings_after
from hil.web.security import COOKIE, csrf_value, resolve_token
from tests.helpers import wait_for_readings
from tests.hil.web.conftest import ORIGIN, TOKEN, control_headers, csrf

# ---------------------------------------------------------------------- reading


def test_runs_list_json_and_filters(client: TestClient) -> None:
    runs = client.get("/api/runs").json()
    assert [r["protocol"] for r in runs] == ["iv-sweep", "potentiation-cycling"]  # newest first
    assert all(r["status"] == "completed" and r["readings"] > 0 for r in runs)
    only = client.get("/api/runs", params={"protocol": "iv-sweep"}).json()
    assert [r["protocol"] for r in only] == ["iv-sweep"]
    assert client.get("/api/runs", params={"status": "running"}).json() == []
    assert len(client.get("/api/runs", params={"station": "twin"}).json()) == 2
    assert client.get("/api/runs", params={"station": "elsewhere"}).json() == []
    today = runs[0]["started_at"][:10]
    assert len(client.get("/api/runs", params={"since": today, "until": today}).json()) == 2
    assert client.get("/api/runs", params={"until": "2000-01-01"}).json() == []


def test_runs_list_bad_date_is_one_line_error(client: TestClient) -> None:
    r = client.get("/api/runs", params={"since": "yesterday"})
    assert r.status_code == 400
    assert r.json() == {"error": "since: 'yesterday' is not a date (YYYY-MM-DD)"}


def test_runs_page_lists_runs(client: TestClient) -> None:
    r = client.get("/runs", headers={"accept": "text/html"})
    assert r.status_code == 200
    assert 'href="/runs/1"' in r.text and 'href="/runs/2"' in r.text
    assert "potentiation-cycling" in r.text
    assert client.get("/", follow_redirects=False).headers["location"] == "/runs"


def test_run_record_has_parameters_with_units_events_artifacts(client: TestClient) -> None:
    run = client.get("/api/runs/1").json()
    assert run["protocol"] == "potentiation-cycling" and run["status"] == "completed"
    params = {p["name"]: p for p in run["parameters_with_units"]}
    assert params["amplitude_V"]["unit"] == "V" and params["cycles"]["value"] == 3
    assert run["readings"] == 3 * 10 * 4
    assert run["station"]["name"] == "twin"
    assert "safe-state" in [e["kind"] for e in run["events"]]
    [plot] = run["artifacts"]
    assert plot["url"] == f"/artifacts/{plot['name']}"
    assert client.get(plot["url"]).content[:8] == b"\x89PNG\r\n\x1a\n"
    assert run["abortable"] is False and run["resumable"] is False


def test_run_page_and_unknown_run(client: TestClient) -> None:
    page = client.get("/runs/1", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "amplitude_V" in page.text and "/static/plotly-cartesian.min.js?v=" in page.text
    assert 'id="abort"' not in page.text  # not signed in, not running here
    missing = client.get("/api/runs/99")
    assert missing.status_code == 404 and "no run with id 99" in missing.json()["error"]
    assert client.get("/runs/99", headers={"accept": "text/html"}).status_code == 404


def test_static_files_are_served_locally(client: TestClient) -> None:
    js = client.get("/static/plotly-cartesian.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000 and b"plotly" in js.content[:2000].lower()
    assert js.headers["content-encoding"] == "gzip" and int(js.headers["content-length"]) < len(js.content) / 2
    assert "immutable" in js.headers["cache-control"]
    plain = client.get("/static/plotly-cartesian.min.js", headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == js.content
    assert client.get("/static/app.js").status_code == 200
    runs_js = client.get("/static/runs.js")
    assert runs_js.status_code == 200 and b'fetch("/api/runs"' in runs_js.content
    assert '<script src="/static/runs.js">' in client.get("/runs", headers={"accept": "text/html"}).text
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/secret.txt").status_code == 404


def test_csv_export_is_the_cli_export(client: TestClient, settings: object) -> None:
    from hil.cli.runs import ExportTable, _write_csv

    r = client.get("/runs/1/export.csv", params={"table": "readings"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    with Store(settings.db, must_exist=True) as store:  # type: ignore[attr-defined]
        buf = io.StringIO()
        _write_csv(store, 1, ExportTable.readings, buf)
    assert r.text == buf.getvalue()
    assert len(pd.read_csv(io.StringIO(r.text))) == 120
    events = client.get("/runs/1/export.csv", params={"table": "events"})
    assert "safe-state" in events.text
    bad = client.get("/runs/1/export.csv", params={"table": "secrets"})
    assert bad.status_code == 400 and bad.json()["error"].startswith("table: 'secrets' is not one of")
    assert client.get("/runs/99/export.csv").status_code == 404


def test_csv_export_streams_in_pieces(client: TestClient, settings: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from hil.cli.runs import ExportTable, _write_csv
    from hil.web import app as web_app

    monkeypatch.setattr(web_app._QueueWriter, "PIECE", 256)  # many pieces for a small run
    with client.stream("GET", "/runs/1/export.csv") as r:
        pieces = list(r.iter_text())
    with Store(settings.db, must_exist=True) as store:  # type: ignore[attr-defined]
        buf = io.StringIO()
        _write_csv(store, 1, ExportTable.readings, buf)
    assert "".join(pieces) == buf.getvalue()
    assert len(buf.getvalue()) > 10 * 256


def test_report_is_html(client: TestClient) -> None:
    r = client.get("/runs/1/report")
    assert r.status_code == 200 and "<html" in r.text.lower() and "run 1" in r.text.lower()


def test_protocols_listing_and_form(client: TestClient) -> None:
    protos = {p["name"]: p for p in client.get("/api/protocols").json()}
    assert "potentiation-cycling" in protos and "hybrid-training" in protos
    amp = {r["name"]: r for r in protos["potentiation-cycling"]["parameters"]}["amplitude_V"]
    assert amp["unit"] == "V" and amp["default"] == 2.0 and amp["max"] == 20
    assert amp["station_limit"] == "max_abs_voltage_V"
    form = client.get("/protocols/potentiation-cycling", headers={"accept": "text/html"})
    assert form.status_code == 200 and 'name="amplitude_V"' in form.text and 'value="2"' in form.text
    assert client.get("/protocols/no-such", headers={"accept": "text/html"}).status_code == 400


# ---------------------------------------------------------------------- live data


def _events(client: TestClient, url: str) -> list[dict[str, object]]:
    messages = []
    with client.stream("GET", url) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                messages.append(json.loads(line[6:]))
    return messages


def test_live_stream_of_a_finished_run(client: TestClient) -> None:
    messages = _events(client, "/api/runs/1/live")
    assert [m["type"] for m in messages] == ["reset", "end"]
    reset = messages[0]
    assert reset["sampled"] is False and reset["readings"] == 120
    groups = reset["groups"]  # cycles x pulses points, each the mean of 4 cells
    assert len(groups) == 3 * 10 and {g[4] for g in groups} == {4}
    assert {g[0] for g in groups} == {0, 1, 2}
    assert messages[1] == {"type": "end", "status": "completed"}
    iv = _events(client, "/api/runs/2/live")[0]
    assert iv["spec"]["mode"] == "raw" and len(iv["points"]) > 10


def test_view_matches_the_readings(client: TestClient, settings: object) -> None:
    view = client.get("/api/runs/1/view").json()
    with Store(settings.db, must_exist=True) as store:  # type: ignore[attr-defined]
        df = store.readings_df(1)
    df = df[df["kind"] == "potentiation"]
    means = df.groupby(["cycle", "pulse"])["conductance_S"].mean()
    for s, g, _xs, ys, n in view["groups"]:
        assert ys / n == pytest.approx(means[(s, g)], rel=1e-12)


def test_sampled_first_view_of_a_large_run(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "SAMPLE_ABOVE", 50)
    monkeypatch.setattr(live, "SAMPLE_BLOCKS", 3)  # the run's three trains, 8 readings of each
    monkeypatch.setattr(live, "SAMPLE_READINGS", 24)
    sampled = client.get("/api/runs/1/view", params={"sampled": "true"}).json()
    assert sampled["sampled"] is True and sampled["sampled_readings"] == 24
    assert sum(g[4] for g in sampled["groups"]) == 24
    messages = _events(client, "/api/runs/1/live")
    assert [(m["type"], m.get("sampled")) for m in messages] == [("reset", True), ("reset", False), ("end", None)]


def test_readings_after_returns_only_newer_readings(settings: object) -> None:
    with Store(settings.db, must_exist=True) as store:  # type: ignore[attr-defined]
        every = store.readings_df(1)
        got = readings_after(store, 1, 100, ["conductance_S", "kind"], limit=5)
        assert got["seq"].tolist() == every["seq"][every["seq"] > 100].head(5).tolist()
        assert got["kind"].tolist() == every["kind"][every["seq"] > 100].head(5).tolist()
        assert len(readings_after(store, 1, int(every["seq"].max()), ["conductance_S"])["seq"]) == 0
        with pytest.raises(ValueError, match="unknown columns"):
            readings_after(store, 1, -1, ["password"])


# ---------------------------------------------------------------------- security


def test_login_sets_a_strict_http_only_cookie(client: TestClient) -> None:
    bad = client.get("/login", params={"token": "nope"})
    assert bad.status_code == 403 and client.cookies.get(COOKIE) is None
    ok = client.get("/login", params={"token": TOKEN}, follow_redirects=False)
    assert ok.status_code == 303
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


START = "/protocols/potentiation-cycling/start"


def test_control_without_token_is_refused(client: TestClient) -> None:
    for url in (START, "/runs/1/abort", "/runs/1/resume"):
        r = client.post(url, data=csrf(), headers=control_headers())
        assert r.status_code == 401, url
        assert r.json()["error"].startswith("token: this action needs the access token")


def test_wrong_token_is_refused(client: TestClient) -> None:
    r = client.post(START, headers={"authorization": "Bearer wrong", "accept": "application/json"})
    assert r.status_code == 403 and r.json()["error"] == "token: the access token is wrong"
    client.cookies.set(COOKIE, "wrong")
    r = client.post(START, data=csrf(), headers=control_headers())
    assert r.status_code == 403


def test_cross_site_requests_are_refused(signed_in: TestClient) -> None:
    evil = signed_in.post(START, data=csrf(), headers={"origin": "http://evil.example", "accept": "application/json"})
    assert evil.status_code == 403 and "cross-site request from 'http://evil.example'" in evil.json()["error"]
    referer = signed_in.post(START, data=csrf(), headers={"referer": "http://evil.example/x", "accept": "application/json"})
    assert referer.status_code == 403
    neither = signed_in.post(START, data=csrf(), headers={"accept": "application/json"})
    assert neither.status_code == 403 and "no Origin or Referer" in neither.json()["error"]
    no_csrf = signed_in.post(START, data={}, headers=control_headers())
    assert no_csrf.status_code == 403 and no_csrf.json()["error"].startswith("csrf:")
    wrong_csrf = signed_in.post(START, data={"csrf": "0" * 64}, headers=control_headers())
    assert wrong_csrf.status_code == 403
    fetch_site = signed_in.post(START, data=csrf(), headers={**control_headers(), "sec-fetch-site": "cross-site"})
    assert fetch_site.status_code == 403


def test_bad_value_is_the_cli_message_and_writes_nothing(signed_in: TestClient, settings: object) -> None:
    before = signed_in.get("/api/runs").json()
    r = signed_in.post(START, data={**csrf(), "amplitude_V": "50"}, headers=control_headers())
    assert r.status_code == 400
    assert r.json()["error"] == "amplitude_V: Input should be less than or equal to 20 (got '50'; allowed: 0 < amplitude_V <= 20 V)"
    page = signed_in.post(START, data={**csrf(), "pulses": "many"},
                          headers={"origin": ORIGIN, "accept": "text/html"})  # fmt: skip
    assert page.status_code == 400 and 'id="form-error" data-field="pulses"' in page.text
    unknown = signed_in.post(START, data={**csrf(), "voltage": "1"}, headers=control_headers())
    assert unknown.status_code == 400 and unknown.json()["error"].startswith("voltage: unknown name")
    station_limit = signed_in.post(START, data={**csrf(), "read_voltage_V": "1.9"}, headers=control_headers())
    assert station_limit.status_code == 400 and "read" in station_limit.json()["error"]
    assert signed_in.get("/api/runs").json() == before


def test_abort_and_resume_of_runs_not_running_here(signed_in: TestClient) -> None:
    abort = signed_in.post("/runs/1/abort", data=csrf(), headers=control_headers())
    assert abort.status_code == 400
    assert abort.json()["error"] == "abort: run 1 is 'completed', not running; nothing changed"
    assert "abort-requested" not in [e["kind"] for e in signed_in.get("/api/runs/1").json()["events"]]
    resume = signed_in.post("/runs/1/resume", data=csrf(), headers=control_headers())
    assert resume.status_code == 400
    assert resume.json()["error"] == "resume: run 1 is 'completed'; only interrupted or failed runs resume"
    iv = signed_in.post("/runs/2/resume", data=csrf(), headers=control_headers())
    assert iv.status_code == 400 and "cannot be resumed" in iv.json()["error"]


@pytest.mark.parametrize(
    "path",
    ["/artifacts/..%2F..%2Fetc%2Fpasswd", "/artifacts/%2e%2e/%2e%2e/etc/passwd", "/artifacts/%2Fetc%2Fpasswd",
     "/artifacts/../lab.sqlite", "/artifacts/..%2Flab.sqlite"],
)  # fmt: skip
def test_artifact_path_traversal_is_refused(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert b"root:" not in r.content and b"SQLite format" not in r.content


def test_artifact_symlink_out_of_the_folder_is_refused(client: TestClient, web_db: tuple[Path, Path]) -> None:
    db, plots = web_db
    link = plots / "escape.sqlite"
    if not link.exists():
        os.symlink(db, link)
    assert client.get("/artifacts/escape.sqlite").status_code == 404
    assert client.get("/artifacts/missing.png").status_code == 404


def test_non_loopback_server_needs_the_token_for_every_page(make_client: Callable[..., TestClient]) -> None:
    public = make_client(loopback=False)
    r = public.get("/api/runs")
    assert r.status_code == 401 and r.json()["error"].startswith("token:")
    assert public.get("/runs/1", headers={"accept": "text/html"}).status_code == 401
    assert public.get("/static/app.js").status_code == 200  # scripts carry no data
    assert public.get("/api/runs", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    public.get("/login", params={"token": TOKEN})
    assert public.get("/api/runs").status_code == 200


def test_token_from_the_environment_or_generated() -> None:
    assert resolve_token({"RRAM_HIL_TOKEN": "x" * 20}) == ("x" * 20, False)
    token, generated = resolve_token({})
    assert generated and len(token) >= 16 and token != resolve_token({})[0]
    with pytest.raises(ValueError, match="at least 16 characters"):
        resolve_token({"RRAM_HIL_TOKEN": "short"})
    assert csrf_value("a" * 16) != csrf_value("b" * 16)


# ---------------------------------------------------------------------- running from the web


def _wait(predicate: Callable[[], bool], deadline_s: float = 120.0) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if predicate():
            return True
    return predicate()


def test_start_abort_resume_through_the_engine(make_client: Callable[..., TestClient], tmp_path: Path) -> None:
    db = tmp_path / "control.sqlite"
    c = make_client(signed_in=True, db=str(db), artifact_dir=tmp_path / "plots")
    r = c.post(START, data={**csrf(), "cells": "all", "cycles": "400"}, headers=control_headers())
    assert r.status_code == 201, r.text
    run_id = r.json()["run_id"]
    assert _wait(lambda: c.get(f"/api/runs/{run_id}").json()["readings"] >= 1024 * 50)
    run = c.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "running" and run["abortable"] is True
    start_event = [e for e in run["events"] if e["kind"] == "web-start"]
    assert start_event and start_event[0]["detail"]["origin"]["via"] == "web"
    abort = c.post(f"/runs/{run_id}/abort", data=csrf(), headers=control_headers())
    j = c.get(f"/api/runs/{run_id}").json()
    assert abort.status_code == 200 and abort.json()["status"] == "interrupted", (j["error"], j["events"][-4:])
    after = c.get(f"/api/runs/{run_id}").json()
    kinds = [e["kind"] for e in after["events"]]
    assert kinds.index("abort-requested") < kinds.index("safe-state")
    request = [e for e in after["events"] if e["kind"] == "abort-requested"][0]["detail"]
    assert request["origin"]["via"] == "web" and request["origin"]["origin"] == ORIGIN
    assert after["error"].startswith("aborted on request from web (")
    safe = [e for e in after["events"] if e["kind"] == "safe-state"][-1]["detail"]
    assert safe.get("confirmed") is True, safe
    assert after["readings"] >= run["readings"]  # every committed reading kept
    assert after["resumable"] is True
    resume = c.post(f"/runs/{run_id}/resume", data=csrf(), headers=control_headers())
    assert resume.status_code == 202
    assert _wait(lambda: c.get(f"/api/runs/{run_id}").json()["readings"] > after["readings"])
    assert "web-resume" in [e["kind"] for e in c.get(f"/api/runs/{run_id}").json()["events"]]
    again = c.post(f"/runs/{run_id}/abort", data=csrf(), headers=control_headers())
    j = c.get(f"/api/runs/{run_id}").json()
    assert again.status_code == 200 and again.json()["status"] == "interrupted", (j["error"], j["events"][-4:])


def _cli_run(db: Path, cycles: int = 1_000_000) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("rram-hil")
    return subprocess.Popen([str(exe), "run", "potentiation-cycling", "--db", str(db), "--set", f"cycles={cycles}",
                             "--no-plot"], cwd=db.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def test_abort_of_a_run_started_from_the_cli(make_client: Callable[..., TestClient], tmp_path: Path) -> None:
    """The run is another process's: the request goes through the store, its engine stops it."""
    db = tmp_path / "cli.sqlite"
    cli = _cli_run(db)
    try:
        c = make_client(signed_in=True, db=str(db), artifact_dir=tmp_path)
        assert _wait(lambda: wait_for_readings(db, 500, cli, deadline_s=1.0) >= 500)
        run = c.get("/api/runs/1").json()
        assert run["status"] == "running" and run["abortable"] is True
        abort = c.post("/runs/1/abort", data=csrf(), headers=control_headers())
        assert abort.status_code == 200 and abort.json() == {"run_id": 1, "status": "interrupted"}
        assert cli.wait(timeout=120) == 130
    finally:
        if cli.poll() is None:
            cli.kill()
    after = c.get("/api/runs/1").json()
    assert after["status"] == "interrupted" and after["readings"] >= run["readings"]
    kinds = [e["kind"] for e in after["events"]]
    assert kinds[-2:] == ["abort-requested", "safe-state"]
    assert after["events"][-2]["detail"]["origin"]["via"] == "web"
    assert after["events"][-1]["detail"]["confirmed"] is True


def _pause_outside_a_write(proc: subprocess.Popen[bytes], db: Path, deadline_s: float = 60.0) -> None:
    """SIGSTOP ``proc`` at a moment it holds no write lock on ``db`` (tried again, with SIGCONT
    in between, while a write of another connection cannot begin)."""
    import sqlite3

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        os.kill(proc.pid, signal.SIGSTOP)
        con = sqlite3.connect(db, timeout=0.05, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            os.kill(proc.pid, signal.SIGCONT)
        finally:
            con.close()
    pytest.fail(f"the run held the write lock whenever it was paused, for {deadline_s} s")


def test_abort_pending_when_the_run_is_killed(make_client: Callable[..., TestClient], tmp_path: Path) -> None:
    """A paused run cannot see the request (pending: 202); killed then, it is marked interrupted, and
    a second abort says so in one line and writes nothing."""
    db = tmp_path / "killed.sqlite"
    cli = _cli_run(db)
    try:
        c = make_client(signed_in=True, db=str(db), artifact_dir=tmp_path)
        assert _wait(lambda: wait_for_readings(db, 500, cli, deadline_s=1.0) >= 500)
        _pause_outside_a_write(cli, db)
        c.app.state.manager.abort_wait_s = 0.3  # type: ignore[attr-defined]
        pending = c.post("/runs/1/abort", data=csrf(), headers=control_headers())
        assert pending.status_code == 202 and pending.json()["status"] == "running"
        assert pending.json()["message"] == "abort: requested; run 1 has not stopped yet (it stops at its next commit)"
        kept = c.get("/api/runs/1").json()["readings"]
        cli.kill()
        cli.wait(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    again = c.post("/runs/1/abort", data=csrf(), headers=control_headers())
    assert again.status_code == 400
    assert again.json()["error"] == "abort: run 1 is 'interrupted', not running; nothing changed"
    after = c.get("/api/runs/1").json()
    assert after["status"] == "interrupted" and after["readings"] == kept  # every committed reading kept
    assert [e["kind"] for e in after["events"]] == ["abort-requested", "marked-interrupted"]
    assert after["abortable"] is False and after["resumable"] is True


# ---------------------------------------------------------------------- plots per protocol kind


@pytest.fixture(scope="module")
def kinds_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A conductance map, a retention run and a training run with two epochs (rows written directly)."""
    from hil.engine import RunEngine
    from hil.station import load_station
    from hil.store.training import EpochRecord, commit_epoch

    db = tmp_path_factory.mktemp("kinds") / "kinds.sqlite"
    station = load_station(None)
    with Store(db) as store:
        engine = RunEngine(store)
        engine.run("conductance-map", station, {}, plot=False)
        engine.run("retention", station, {}, plot=False)
        run_id = store.create_run("hybrid-training", {}, {"name": "twin"}, "twin")
        for epoch, acc in ((0, 0.5), (1, 0.8)):
            commit_epoch(store, run_id, EpochRecord({
                "epoch": epoch, "phase": "train", "train_accuracy": acc, "test_accuracy": acc - 0.1,
                "mse": 1 - acc, "update_frequency": 0.2}))  # fmt: skip
        store.finish_run(run_id, "completed")
    return db


def test_conductance_map_is_a_heat_map_of_every_cell(make_client: Callable[..., TestClient], kinds_db: Path) -> None:
    view = make_client(db=str(kinds_db)).get("/api/runs/1/view").json()
    assert view["spec"]["mode"] == "heatmap"
    with Store(kinds_db, must_exist=True) as store:
        df = store.readings_df(1)
    last = df[df["kind"] == "map"].groupby(["row", "col"])["conductance_S"].last()
    assert len(view["cells"]) == len(last) == 32 * 32
    for row, col, g in view["cells"]:
        assert g == pytest.approx(last[(row, col)])


def test_retention_is_on_log_time_since_the_first_reading(make_client: Callable[..., TestClient],
                                                         kinds_db: Path) -> None:  # fmt: skip
    view = make_client(db=str(kinds_db)).get("/api/runs/2/view").json()
    assert view["spec"]["mode"] == "mean" and view["spec"]["xlog"] is True
    times = [xs / n for _s, _g, xs, _ys, n in view["groups"]]
    assert min(times) > 0 and times == sorted(times)  # every point can be shown on a log axis


def test_training_plots_accuracy_per_epoch(make_client: Callable[..., TestClient], kinds_db: Path) -> None:
    c = make_client(db=str(kinds_db))
    messages = _events(c, "/api/runs/3/live")
    assert messages[0]["spec"]["mode"] == "epochs"
    assert [(e["epoch"], e["train_accuracy"], e["mse"]) for e in messages[0]["epochs"]] == [(0, 0.5, 0.5), (1, 0.8, pytest.approx(0.2))]
    assert messages[-1] == {"type": "end", "status": "completed"}


def _train(store: Store, run_id: int, cycle: int, seq0: int, cells: int = 4, pulses: int = 5) -> int:
    import numpy as np

    n = cells * pulses
    g = 1e-5 * (cycle + 1) + 1e-7 * np.arange(n)
    store.add_readings({"run_id": run_id, "seq": np.arange(seq0, seq0 + n), "kind": "potentiation",
                        "array": "A", "row": np.repeat(np.arange(cells), pulses), "col": 0, "voltage_V": 0.5,
                        "current_A": g * 0.5, "conductance_S": g, "t_s": 0.0, "cycle": cycle,
                        "pulse": np.tile(np.arange(pulses), cells)})  # fmt: skip
    return seq0 + n


def test_live_stream_sends_only_what_is_new(make_client: Callable[..., TestClient], tmp_path: Path) -> None:
    db = tmp_path / "live.sqlite"
    writer = Store(db)
    run_id = writer.create_run("potentiation-cycling", {}, {"name": "twin"}, "twin")
    seq = _train(writer, run_id, 0, 0)
    c = make_client(db=str(db))
    seen: list[dict[str, object]] = []
    with c.stream("GET", f"/api/runs/{run_id}/live") as r:
        lines = r.iter_lines()
        for line in lines:
            if not line.startswith("data: "):
                continue
            msg = json.loads(line[6:])
            seen.append(msg)
            if len(seen) == 1:  # the first view: cycle 0 only; now cycle 1 is committed
                seq = _train(writer, run_id, 1, seq)
            elif msg["type"] == "delta" and msg.get("groups"):
                writer.finish_run(run_id, "completed")
            elif msg["type"] == "end":
                break
    writer.close()
    first, delta = seen[0], next(m for m in seen if m["type"] == "delta" and m.get("groups"))
    assert first["type"] == "reset" and {g[0] for g in first["groups"]} == {0}  # type: ignore[index, union-attr]
    assert {g[0] for g in delta["groups"]} == {1} and len(delta["groups"]) == 5  # type: ignore[arg-type, union-attr]
    assert all(g[4] == 4 for g in delta["groups"])  # type: ignore[index, union-attr]
    assert delta["readings"] == 40
    assert seen[-1] == {"type": "end", "status": "completed"}


def test_a_foreign_host_header_is_refused_on_loopback(make_client: Callable[..., TestClient]) -> None:
    """A page on another site whose name was re-bound to 127.0.0.1 sends its own Host: refused."""
    guarded = make_client(allowed_hosts=["127.0.0.1", "localhost"])
    assert guarded.get("/api/runs").status_code == 400  # Host: testserver
    assert guarded.get("/api/runs", headers={"host": "evil.example:8000"}).status_code == 400
    assert guarded.get("/api/runs", headers={"host": "127.0.0.1:8000"}).status_code == 200
