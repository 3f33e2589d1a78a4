"""`rram-hil analyze`, `report` and `calibrate` from the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.cli import app
from sim_backend.preset import load_preset
from tests.helpers import new_store, run, twin_station

runner = CliRunner()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    store = new_store(tmp)
    station = twin_station()
    run(store, "pulse-response", station, cells="0:3,0:3", cycles=2, pulses=70)  # run 1
    run(store, "retention", station, cells="0,0", points=8, t_last_s=1e8)  # run 2
    run(store, "area-scaling", station, rows=1, cols=2, cycles=1, pulses=70, diameters_nm="100,1000")  # run 3
    store.close()
    return tmp / "runs.sqlite"


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_analyze_json_has_the_issue_keys(db: Path) -> None:
    code, out, _ = invoke("analyze", "1", "--db", str(db), "--json")
    assert code == 0
    data = json.loads(out)
    for key in (
        "g_min_S",
        "g_max_S",
        "on_off_ratio",
        "n_states",
        "step_mean_S",
        "sigma_over_mu",
        "nonlinearity",
    ):
        assert isinstance(data[key], float), key
    assert data["run_id"] == 1 and data["protocol"] == "pulse-response"
    code, out, _ = invoke("analyze", "3", "--db", str(db), "--json")
    area = json.loads(out)
    assert area["area_slope_range"] == pytest.approx(1.0, abs=0.05) and "area_slope_step" in area
    code, out, _ = invoke("analyze", "1", "2", "--db", str(db), "--json")
    both = json.loads(out)
    assert [d["run_id"] for d in both] == [1, 2] and both[1]["retention_tau_s"] > 0
    assert both[1]["n_states"] is None  # keys a run does not measure are null


def test_analyze_csv_one_row_per_run_and_quantity(db: Path) -> None:
    import io

    import pandas as pd

    code, out, _ = invoke("analyze", "1", "2", "--db", str(db), "--csv")
    assert code == 0
    df = pd.read_csv(io.StringIO(out))
    assert list(df.columns) == ["run_id", "protocol", "quantity", "value", "unit", "description"]
    assert set(df.run_id) == {1, 2} and "g_max_S" in set(df[df.run_id == 1].quantity)
    code, out, _ = invoke("analyze", "1", "--db", str(db), "--json")
    assert code == 0 and json.loads(out)["run_id"] == 1  # --json as before


def test_analyze_table_at_80_columns_keeps_quantities_and_values_whole(db: Path) -> None:
    result = runner.invoke(app, ["analyze", "1", "--db", str(db)], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    assert re.search(r"│ sigma_over_mu\s+│\s+\S+ │", result.stdout)


def test_analyze_table(db: Path) -> None:
    code, out, _ = invoke("analyze", "1", "--db", str(db))
    assert code == 0
    assert "g_min_S" in out and "sigma_over_mu" in out and "uS" in out


def test_report_is_self_contained_html(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    code, out, _ = invoke("report", "1", "2", "3", "--db", str(db), "-o", str(path))
    assert code == 0 and "report:" in out
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    images = re.findall(r'<img [^>]*src="([^"]+)"', text)
    assert len(images) >= 5 and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(https?:|//)', text)  # nothing fetched from elsewhere
    for key in ("run-1", "run-2", "run-3", "Fig. 3F", "Retention fit", "area_slope_range"):
        assert key in text


def test_calibrate_writes_a_preset_any_twin_loads(db: Path, tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    code, out, err = invoke("calibrate", "1", "2", "3", "--db", str(db), "-o", str(path))
    assert code == 0, err
    preset = load_preset(path)
    assert preset.name == "mine"
    # measured on the shipped preset: its numbers come back
    assert preset.n_states == pytest.approx(50, rel=0.06)
    assert preset.g_max_S == pytest.approx(50e-6, rel=0.05)
    assert preset.retention_tau_s == pytest.approx(1e7, rel=0.1)
    assert "n_states" in out
    code, out, _ = invoke("check-station", str(_station_with(tmp_path, path)))
    assert code == 0 and "is valid" in out


def _station_with(tmp_path: Path, preset: Path) -> Path:
    station = tmp_path / "station.yaml"
    station.write_text(
        f"name: calibrated\nbackend: twin\ntwin: {{preset: {preset}}}\n"
        "arrays:\n  - {name: A, rows: 4, cols: 4, diameter_m: 1.0e-6}\n"
    )
    return station


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("analyze", "99"), "no run with id 99"),
        (("report", "99"), "no run with id 99"),
        (
            ("calibrate", "2", "-o", "{tmp}/x.yaml"),
            "no potentiation-cycling, pulse-response or area-scaling run",
        ),
        (("calibrate", "1", "-o", "{tmp}/x.txt"), "must end in .yaml"),
        (("calibrate", "1", "-o", "{tmp}/x.yaml", "--base", "nosuch"), "base: preset: 'nosuch'"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    db: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    filled = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, _, err = invoke(*filled, "--db", str(db))
    assert code == 2
    assert message in err and err.strip().count("\n") == 0
    assert not any(tmp_path.iterdir())
