"""``rram-hil serve`` in headless Chromium: first view of a 1.5 M-reading run, and the latency from
a committed reading to its point on screen.

1. First render: a ``potentiation-cycling --set cells=all`` run (30 cycles x 50 pulses x 1,024
   cells = 1,536,000 readings) opened in the browser; the time from navigation start to the
   plot's first drawing (a sampled view), and to the exact one. Baseline, same run: what a careful
   user's page would do without the sample, the exact aggregate of every reading (the
   server's own ``full_view``, timed in process, no browser or network in it).
2. Live latency: a writer process commits one potentiation train (16 cells x 50 pulses) every
   0.5 s on average (jittered) to a running run; the page records when its point count changes (a MutationObserver,
   wall clock); latency = that moment - the moment the writer's commit returned. Baseline: the
   floor of polling in Python, a loop reading the new rows every 1/4 s (the page's push cap) and
   timing when they arrive, without browser, JSON or drawing.

    python benchmarks/bench_web_live.py [--db FILE_WITH_A_1.5M_RUN] [--run ID] [--trains N]

The last line is ``live_latency_median: VALUE ms``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RRAM_HIL = str(Path(sys.executable).with_name("rram-hil"))
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
TOKEN = "bench-web-live-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db: Path, cwd: Path) -> tuple[subprocess.Popen[str], str]:
    import httpx2 as httpx

    port = free_port()
    proc = subprocess.Popen([RRAM_HIL, "serve", "--db", str(db), "--port", str(port)], cwd=cwd,
                            env={**os.environ, "RRAM_HIL_TOKEN": TOKEN}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).text == "ok":
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("rram-hil serve did not start")


def make_big_run(db: Path) -> int:
    print(f"making a 1.5 M-reading run in {db} ...", flush=True)
    subprocess.run([RRAM_HIL, "run", "potentiation-cycling", "--set", "cells=all", "--db", str(db), "--no-plot"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return 1


def first_render(base: str, run_id: int, browser: object, visits: int = 3) -> list[tuple[float, float]]:
    """(first view, exact view) in seconds after navigation, for ``visits`` visits in one browser
    profile: the first with an empty cache, the later ones as a lab PC that opened the page before."""
    context = browser.new_context()  # type: ignore[attr-defined]
    times = []
    for _ in range(visits):
        page = context.new_page()
        page.set_default_timeout(300_000)
        page.goto(f"{base}/runs/{run_id}", wait_until="commit")
        page.wait_for_selector("#plot[data-rendered='1']")
        first_ms = page.evaluate("window.rramLive.firstRenderMs")
        page.wait_for_selector("#plot[data-exact='1']")
        exact_ms = page.evaluate("performance.now()")
        page.close()
        times.append((first_ms / 1e3, exact_ms / 1e3))
    context.close()
    return times


def exact_view_in_process(db: Path, run_id: int) -> float:
    from hil.store import Store
    from hil.web import live

    with Store(db, reap_stale=False, must_exist=True) as store:
        state = live.LiveState(run_id, live.spec_for(store.run(run_id).protocol))
        t0 = time.perf_counter()
        live.full_view(store, state)
        return time.perf_counter() - t0


WRITER = r"""
import json, sys, time
import numpy as np
from hil.store import Store
db, trains, period = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
store = Store(db)
run_id = store.create_run("potentiation-cycling", {"pulses": 50, "cells": "0:4,0:4"}, {"name": "bench"}, "twin")
print(run_id, flush=True)
sys.stdin.readline()  # the page is open
cells, pulses, seq = 16, 50, 0
rng = np.random.default_rng(0)
times = []
for cycle in range(trains):
    n = cells * pulses
    g = 40e-6 + 1e-7 * np.arange(n)
    store.add_readings({"run_id": run_id, "seq": np.arange(seq, seq + n), "kind": "potentiation", "array": "A",
                        "row": np.repeat(np.arange(cells) // 4, pulses), "col": np.repeat(np.arange(cells) % 4, pulses),
                        "voltage_V": 0.5, "current_A": g * 0.5, "conductance_S": g, "t_s": 0.0,
                        "cycle": cycle, "pulse": np.tile(np.arange(pulses), cells)})
    times.append(time.time())
    seq += n
    time.sleep(period * (0.5 + rng.random()))  # jittered: no phase lock with a 4/s poll
store.finish_run(run_id, "completed")
print(json.dumps(times), flush=True)
"""

OBSERVE = """() => { window.seen = []; const el = document.getElementById('point-count');
  new MutationObserver(() => window.seen.push([Date.now(), Number(el.dataset.points)]))
    .observe(el, {attributes: true, attributeFilter: ['data-points']}); }"""


def live_latency(base: str, db: Path, browser: object, trains: int, period: float) -> list[float]:
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(trains), str(period)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert writer.stdout is not None and writer.stdin is not None
    run_id = int(writer.stdout.readline())
    page = browser.new_page()  # type: ignore[attr-defined]
    page.set_default_timeout(120_000)
    page.goto(f"{base}/runs/{run_id}")
    page.wait_for_function("() => window.rramLive && window.rramLive.messages > 0")
    page.evaluate(OBSERVE)
    writer.stdin.write("go\n")
    writer.stdin.flush()
    commits = json.loads(writer.stdout.readline())
    writer.wait()
    page.wait_for_function(f"() => window.seen.length && window.seen[window.seen.length - 1][1] >= {trains * 50}")
    seen = page.evaluate("window.seen")
    page.close()
    latencies = []
    for k, t_commit in enumerate(commits):  # train k is on screen once the count reaches (k + 1) x 50
        shown = next(t for t, n in seen if n >= (k + 1) * 50)
        latencies.append(shown - t_commit * 1e3)
    return latencies


def poll_floor(db: Path, trains: int, period: float) -> list[float]:
    from hil.store import Store
    from hil.web.query import readings_after

    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(trains), str(period)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert writer.stdout is not None and writer.stdin is not None
    run_id = int(writer.stdout.readline())
    store = Store(db, reap_stale=False, must_exist=True)
    writer.stdin.write("go\n")
    writer.stdin.flush()
    arrived: list[float] = []
    last = -1
    while len(arrived) < trains:
        t0 = time.monotonic()
        got = readings_after(store, run_id, last, ["cycle"])
        if len(got["seq"]):
            last = int(got["seq"][-1])
            arrived.extend([time.time()] * len(np.unique(got["cycle"])))
        time.sleep(max(0.25 - (time.monotonic() - t0), 0))
    commits = json.loads(writer.stdout.readline())
    writer.wait()
    store.close()
    return [(a - c) * 1e3 for a, c in zip(arrived, commits, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", type=Path, default=None, help="a database holding a 1.5 M-reading run")
    parser.add_argument("--run", type=int, default=1)
    parser.add_argument("--trains", type=int, default=20)
    parser.add_argument("--period", type=float, default=0.5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench-web-"))
    big = args.db or tmp / "big.sqlite"
    run_id = args.run if args.db else make_big_run(big)
    live_db = tmp / "live.sqlite"
    from hil.store import Store

    Store(live_db).close()
    baseline_s = exact_view_in_process(big, run_id)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        proc, base = start_server(big, tmp)
        try:
            visits = first_render(base, run_id, browser)
            (first_s, exact_s), (warm_s, warm_exact_s) = visits[0], visits[-1]
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        proc, base = start_server(live_db, tmp)
        try:
            lat = live_latency(base, live_db, browser, args.trains, args.period)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        browser.close()
    floor = poll_floor(tmp / "floor.sqlite", args.trains, args.period)
    from hil.store import Store as S

    with S(big, reap_stale=False, must_exist=True) as store:
        n = store.count_readings(run_id)
    print(f"run of {n:,} readings: first view on screen {first_s:.2f} s after navigation (sampled, empty "
          f"browser cache), exact view {exact_s:.2f} s; page opened before (cache warm): {warm_s:.2f} s / "
          f"{warm_exact_s:.2f} s; baseline (exact aggregate of every reading, in process, no browser) "
          f"{baseline_s:.2f} s")  # fmt: skip
    print(f"first_render_1.5M: {first_s:.2f} s")
    print(f"live latency, commit -> point on screen, {len(lat)} trains: median {statistics.median(lat):.0f} ms, "
          f"p90 {np.percentile(lat, 90):.0f} ms, max {max(lat):.0f} ms; "
          f"polling floor in Python at the same 4/s: median {statistics.median(floor):.0f} ms")  # fmt: skip
    print(f"live_latency_median: {statistics.median(lat):.0f} ms")


if __name__ == "__main__":
    main()
