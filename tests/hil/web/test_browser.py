"""``rram-hil serve`` in a real headless Chromium (Debian's ``chromium``, driven by Playwright):
the runs list, a run started from the form plotting live, a run started from the command line in
another process appearing and updating, an abort, a bad value. Each test saves a screenshot
(``RRAM_HIL_WEB_SCREENSHOTS=DIR`` copies them there; ``docs/web/`` holds one of each page).

The server runs as ``rram-hil serve`` in a subprocess on a free port; every wait is on a
condition with a deadline.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from hil.engine import RunEngine
from hil.station import load_station
from hil.store import Store

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
TOKEN = "browser-test-token-0123456789"
RRAM_HIL = str(Path(sys.executable).with_name("rram-hil"))
WAIT_MS = 120_000

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lab")
    with Store(root / "lab.sqlite") as store:
        RunEngine(store, plot_dir=root / "rram-hil-plots").run(
            "potentiation-cycling", load_station(None), {"cycles": 5, "pulses": 20, "cells": "0:3,0:3"}
        )
    return root


@pytest.fixture(scope="module")
def server(lab: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "RRAM_HIL_TOKEN": TOKEN}
    proc = subprocess.Popen([RRAM_HIL, "serve", "--db", "lab.sqlite", "--port", str(port)], cwd=lab, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    up = False
    for _ in range(600):  # at most 600 x 0.1 s: each try waits on the process, not a fixed sleep
        try:
            up = httpx.get(f"{base}/healthz", timeout=1).text == "ok"
        except httpx.HTTPError:
            up = False
        if up:
            break
        try:
            proc.wait(timeout=0.1)
            break  # it exited: fail below with its output
        except subprocess.TimeoutExpired:
            pass
    if not up:
        proc.kill()
        pytest.fail(f"rram-hil serve did not start: {proc.communicate()[0]}")
    yield base
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0]
    assert f"{base}/login?token={TOKEN}" in out  # the token was printed, once
    assert out.count(TOKEN) == 1


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server)
    pg = context.new_page()
    pg.set_default_timeout(WAIT_MS)
    pg.goto("/login?token=" + TOKEN)
    yield pg
    context.close()


def shot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 10_000
    keep = os.environ.get("RRAM_HIL_WEB_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


def goto(page: Page, path: str) -> None:
    """Open ``path`` (the runs list updates itself in place: no reload races a navigation)."""
    page.goto(path)


def points(page: Page) -> int:
    return int(page.get_attribute("#point-count", "data-points") or 0)


def wait_points_above(page: Page, n: int) -> int:
    page.wait_for_function(f"() => Number(document.getElementById('point-count').dataset.points) > {n}")
    return points(page)


def wait_committed(server: str, run_id: int, proc: subprocess.Popen[bytes], deadline_s: float = 120.0) -> None:
    """Until run ``run_id`` has committed readings (the server's run list says so), or fail at the
    deadline or when ``proc`` has ended."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        runs = {r["id"]: r for r in httpx.get(f"{server}/api/runs").json()}
        if runs.get(run_id, {}).get("readings", 0) > 0:
            return
        try:
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"run {run_id} ended (exit {proc.returncode}) before its page was opened")
    pytest.fail(f"run {run_id} committed no reading within {deadline_s} s")


def start_from_form(page: Page, **values: str) -> int:
    goto(page, "/protocols/potentiation-cycling")
    for name, value in values.items():
        page.fill(f"#f-{name}", value)
    page.click("#start")
    page.wait_for_url("**/runs/*")
    return int(page.url.rsplit("/", 1)[1])


def test_runs_list(page: Page, tmp_path: Path) -> None:
    goto(page, "/runs")
    row = page.locator("tr[data-run='1']")
    assert row.locator("td.status").inner_text() == "completed"
    assert "potentiation-cycling" in row.inner_text()
    assert page.locator("#runs tbody tr").count() >= 1
    page.select_option("select[name=status]", "failed")
    page.click("#filters button")
    page.wait_for_url("**status=failed**")
    assert page.locator("tr[data-run='1']").count() == 0
    goto(page, "/runs")
    shot(page, tmp_path, "runs")
    goto(page, "/runs/1")
    page.wait_for_selector("#plot[data-exact='1']")
    assert points(page) == 5 * 20  # cycles x pulses, each the mean of the cells
    shot(page, tmp_path, "run")


def test_start_from_the_form_and_watch_it_grow(page: Page, tmp_path: Path) -> None:
    run_id = start_from_form(page, cells="all", cycles="400")
    first = wait_points_above(page, 0)
    later = wait_points_above(page, first)
    assert later > first and page.inner_text("#status") == "running"
    assert later % 50 == 0  # whole trains: one point per pulse of each committed cycle
    shot(page, tmp_path, "run-live")
    page.click("#abort")  # leave nothing running for the next test
    page.wait_for_function("() => document.getElementById('status')?.textContent === 'interrupted'")
    assert run_id > 1


def test_run_from_the_cli_appears_and_updates(page: Page, server: str, lab: Path, tmp_path: Path) -> None:
    next_id = max(r["id"] for r in httpx.get(f"{server}/api/runs").json()) + 1
    cycles = 60
    goto(page, "/runs")  # open before the run exists: it appears in the list as it is
    page.evaluate("window.sameList = true")  # gone if the page reloaded
    cli = subprocess.Popen([RRAM_HIL, "run", "potentiation-cycling", "--set", "cells=all",
                            "--set", f"cycles={cycles}", "--db", "lab.sqlite", "--no-plot"], cwd=lab,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        # the run is paused (SIGSTOP) once it has committed readings and carries on (SIGCONT) once
        # its page shows it running: however fast the twin, the page sees it before it ends
        wait_committed(server, next_id, cli)
        os.kill(cli.pid, signal.SIGSTOP)
        page.wait_for_selector(f"tr[data-run='{next_id}'][data-status='running']")  # updated in place
        assert page.evaluate("window.sameList === true && window.rramRuns.updates > 0")
        page.click(f"tr[data-run='{next_id}'] a")
        page.wait_for_selector("#plot[data-rendered='1']")
        assert page.inner_text("#status") == "running"
        first = wait_points_above(page, 0)
        shot(page, tmp_path, "run-cli")
        os.kill(cli.pid, signal.SIGCONT)
        assert wait_points_above(page, first) > first
        assert cli.wait(timeout=600) == 0
    finally:
        if cli.poll() is None:
            cli.kill()
    page.wait_for_function("() => document.getElementById('status')?.textContent === 'completed'")
    page.wait_for_selector("#plot[data-exact='1']")
    # the status shows at once, the points at the next draw (at most 4 a second): wait for that draw
    # of every pulse of every cycle, once; a point lost or doubled times out here. (One check in the
    # page: a signed-in page reloads itself once the run has ended, and a second read could land
    # on the reloaded page before its first draw.)
    total = cycles * 50
    page.wait_for_function(f"() => Number(document.getElementById('point-count').dataset.points) === {total}")


def test_abort_keeps_the_readings(page: Page, server: str, tmp_path: Path) -> None:
    run_id = start_from_form(page, cells="all", cycles="1000")
    wait_points_above(page, 0)
    page.click("#abort")
    page.wait_for_function("() => document.getElementById('status')?.textContent === 'interrupted'")
    page.wait_for_selector("#plot[data-exact='1']")
    shown = int(page.inner_text("#reading-count"))
    run = httpx.get(f"{server}/api/runs/{run_id}").json()
    assert run["status"] == "interrupted" and run["readings"] == shown and shown >= 1024 * 50
    kinds = [e["kind"] for e in run["events"]]
    assert kinds.index("abort-requested") < kinds.index("safe-state")
    assert points(page) >= 50
    assert page.locator("#resume").count() == 1  # potentiation-cycling resumes
    shot(page, tmp_path, "run-interrupted")


def test_abort_of_a_run_started_from_the_cli(page: Page, server: str, lab: Path, tmp_path: Path) -> None:
    """The run is another process's: the page's abort goes through the store to that run's engine."""
    next_id = max(r["id"] for r in httpx.get(f"{server}/api/runs").json()) + 1
    cli = subprocess.Popen([RRAM_HIL, "run", "potentiation-cycling", "--set", "cells=all", "--set", "cycles=100000",
                            "--db", "lab.sqlite", "--no-plot"], cwd=lab,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_committed(server, next_id, cli)
        goto(page, f"/runs/{next_id}")
        wait_points_above(page, 0)
        assert page.inner_text("#status") == "running"
        page.click("#abort")
        page.wait_for_function("() => document.getElementById('status')?.textContent === 'interrupted'")
        assert cli.wait(timeout=120) == 130  # the CLI run ended as Ctrl-C ends it
    finally:
        if cli.poll() is None:
            cli.kill()
    page.wait_for_selector("#plot[data-exact='1']")
    run = httpx.get(f"{server}/api/runs/{next_id}").json()
    assert run["status"] == "interrupted" and run["readings"] == int(page.inner_text("#reading-count")) > 0
    assert run["error"].startswith("aborted on request from web (")
    kinds = [e["kind"] for e in run["events"]]
    assert kinds[-2:] == ["abort-requested", "safe-state"]
    assert run["events"][-1]["detail"]["confirmed"] is True
    assert page.locator("#resume").count() == 1
    shot(page, tmp_path, "run-cli-aborted")


def test_bad_value_shows_the_field_error(page: Page, server: str, tmp_path: Path) -> None:
    runs_before = len(httpx.get(f"{server}/api/runs").json())
    goto(page, "/protocols/potentiation-cycling")
    shot(page, tmp_path, "start")
    page.fill("#f-amplitude_V", "50")
    page.click("#start")
    error = page.locator("#form-error")
    assert error.inner_text() == (
        "amplitude_V: Input should be less than or equal to 20 (got '50'; allowed: 0 < amplitude_V <= 20 V)"
    )
    assert error.get_attribute("data-field") == "amplitude_V"
    assert page.get_attribute("#f-amplitude_V", "aria-invalid") == "true"
    assert page.input_value("#f-amplitude_V") == "50"
    assert len(httpx.get(f"{server}/api/runs").json()) == runs_before  # nothing written
    shot(page, tmp_path, "start-error")
    goto(page, "/runs")  # the list after the other tests: finished, interrupted and CLI runs
    assert page.locator("#runs tbody tr").count() == runs_before
    shot(page, tmp_path, "runs-after")
