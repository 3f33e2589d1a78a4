"""Every YAML file the project reads refuses a repeated key (PyYAML alone keeps the last one)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hil.errors import ConfigError
from hil.station import load_station
from hil.yaml_loader import load_yaml
from sim_backend.preset import PresetError, load_preset

STATION = """\
name: bench
arrays:
  - {name: A, rows: 2, cols: 2, diameter_m: 1.0e-6}
limits:
  max_abs_voltage_V: 2.0
  max_abs_voltage_V: 20.0
"""


def test_plain_pyyaml_keeps_the_later_key_which_is_why_this_loader_exists() -> None:
    assert yaml.safe_load(STATION)["limits"]["max_abs_voltage_V"] == 20.0


def test_repeated_key_is_an_error_naming_the_key_and_both_lines() -> None:
    with pytest.raises(yaml.YAMLError) as info:
        load_yaml(STATION)
    assert "duplicate key 'max_abs_voltage_V' (first on line 5)" in str(info.value)
    assert info.value.problem_mark.line + 1 == 6  # type: ignore[attr-defined]


def test_nested_and_flow_mappings_are_checked_and_distinct_keys_pass() -> None:
    assert load_yaml("a: {x: 1, y: 2}\nb: [ {x: 1}, {x: 2} ]\n") == {"a": {"x": 1, "y": 2}, "b": [{"x": 1}, {"x": 2}]}
    with pytest.raises(yaml.YAMLError, match="duplicate key 'x'"):
        load_yaml("a: {x: 1, x: 2}\n")
    with pytest.raises(yaml.YAMLError, match="duplicate key 'x'"):
        load_yaml("b:\n  - x: 1\n    x: 2\n")


def test_station_with_a_repeated_limit_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bench.yaml"
    path.write_text(STATION)
    with pytest.raises(ConfigError) as info:
        load_station(path)
    message = str(info.value)
    assert message == (
        f"station: '{path}' is not valid YAML (line 6): duplicate key 'max_abs_voltage_V' (first on line 5)"
    )


def test_binary_station_and_preset_files_are_one_line_errors(tmp_path: Path) -> None:
    blob = tmp_path / "bench.yaml"
    blob.write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError, match=r"^station: '.*bench.yaml' is not a text \(YAML\) file$"):
        load_station(blob)
    with pytest.raises(ConfigError, match="is a directory"):
        load_station(tmp_path)
    with pytest.raises(PresetError, match="is not a text"):
        load_preset(str(blob))


def test_preset_with_a_repeated_parameter_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nn_states: 10\nn_states: 50\n")
    with pytest.raises(PresetError, match="duplicate key 'n_states'"):
        load_preset(str(path))
