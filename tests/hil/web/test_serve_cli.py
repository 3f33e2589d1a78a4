"""``rram-hil serve`` on the command line: its options, and what it refuses before listening."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.cli import app

runner = CliRunner()


def test_serve_is_a_command_with_the_issue_s_options() -> None:
    result = runner.invoke(app, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for option in ("--db", "--station", "--host", "--port"):
        assert option in result.output
    assert "127.0.0.1" in result.output and "8000" in result.output


def test_a_short_token_from_the_environment_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RRAM_HIL_TOKEN", "short")
    result = runner.invoke(app, ["serve", "--db", str(tmp_path / "x.sqlite"), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: RRAM_HIL_TOKEN: the access token must be at least 16 characters (got 5)"
    ]
    assert not (tmp_path / "x.sqlite").exists()  # refused before anything was created


def test_a_bad_station_or_port_is_one_line(tmp_path: Path) -> None:
    bad = runner.invoke(app, ["serve", "--station", str(tmp_path / "missing.yaml")])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1
    assert "missing.yaml" in bad.output
    port = runner.invoke(app, ["serve", "--port", "70000"])
    assert port.exit_code == 2 and "65535" in port.output  # click names the range, as for --seed
