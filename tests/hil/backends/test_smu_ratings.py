"""Limits know the instrument: a station's limits and routing compliances beyond what its SMUs
can source (their datasheet ratings, stated by each driver) are refused when the station is
checked, and again against the exact model the instrument names when it connects."""

from __future__ import annotations

import copy

import pytest
from typer.testing import CliRunner

from drivers.b2900 import KeysightB2900
from drivers.common import SourceRatings, model_from_idn, model_ratings
from drivers.keithley2450 import Keithley2450
from drivers.keithley2600 import Keithley2600
from hil.backends import backend_kind, build_backend
from hil.backends.smu_matrix import check_ratings, smu_ratings
from hil.backends.smu_matrix_config import plan_smu_matrix
from hil.cli import app
from hil.errors import ConfigError
from hil.station import parse_station
from tests.helpers import emulated, station_dict


def _station(stack: str, **limits: float) -> dict:
    data = copy.deepcopy(station_dict(stack, rows=2, cols=2))
    data["limits"].update(limits)
    return data


def test_each_driver_states_its_models_ratings() -> None:
    assert Keithley2450.RATINGS["2450"] == SourceRatings("2450", 210.0, 1.05)
    assert Keithley2600.RATINGS["2601B"].max_voltage_V == 40.4 and Keithley2600.RATINGS["2601B"].max_current_A == 3.03
    assert Keithley2600.RATINGS["2636B"].max_voltage_V == 202.0 and Keithley2600.RATINGS["2636B"].max_current_A == 1.515
    assert {r.max_voltage_V for r in KeysightB2900.RATINGS.values()} == {210.0}
    envelope = model_ratings(Keithley2600.RATINGS, None, "Keithley 2600B")
    assert (envelope.max_voltage_V, envelope.max_current_A) == (202.0, 3.03)
    with pytest.raises(KeyError, match="'2699X' is not a Keithley 2600B model"):
        model_ratings(Keithley2600.RATINGS, "2699X", "Keithley 2600B")


def test_model_named_in_the_identification_string() -> None:
    assert model_from_idn("Keithley Instruments Inc., Model 2636B, 4123456, 3.3.5", Keithley2600.RATINGS) == "2636B"
    assert model_from_idn("KEITHLEY INSTRUMENTS,MODEL 2450,04512345,1.7.12b", Keithley2450.RATINGS) == "2450"
    assert model_from_idn("Keysight Technologies,B2902A,MY51140001,3.4", KeysightB2900.RATINGS) == "B2902A"
    assert model_from_idn("ACME,Model 9,1,1", Keithley2600.RATINGS) is None


def test_a_2450_station_cannot_ask_for_more_current_than_a_2450_sources() -> None:
    station = parse_station(_station("2450+708b", max_compliance_A=5.0))
    plan_smu_matrix(station)  # the schema alone accepts it (5 A is within the generic cap)
    with pytest.raises(ConfigError) as info:
        backend_kind("smu-matrix").check(station)
    assert str(info.value) == (
        "limits.max_compliance_A: 5 A is more than smu (keithley2450 2450) can source (at most 1.05 A)"
    )


def test_the_stated_model_of_a_family_sets_the_ratings() -> None:
    data = _station("2600+707b", max_abs_voltage_V=100.0)
    backend_kind("smu-matrix").check(parse_station(data))  # some 2600B models source 200 V
    data["instruments"]["smu"]["options"]["instrument_model"] = "2601B"
    with pytest.raises(ConfigError, match=r"^limits.max_abs_voltage_V: 100 V is more than smu \(keithley2600 2601B\) can source \(at most 40.4 V\)$"):
        backend_kind("smu-matrix").check(parse_station(data))
    data["instruments"]["smu"]["options"]["instrument_model"] = "2699X"
    with pytest.raises(ConfigError, match=r"^instruments.smu.options.instrument_model: '2699X' is not a Keithley 2600B model \("):
        backend_kind("smu-matrix").check(parse_station(data))


def test_routing_compliance_is_checked_against_the_driving_smu() -> None:
    plan = plan_smu_matrix(parse_station(_station("2450+708b", max_compliance_A=1.0)))
    smu = plan.instruments["smu"]
    assert smu_ratings(smu).max_current_A == 1.05
    routing = plan.arrays["A"].routing.model_copy(update={"pulse_compliance_A": 1.2})
    arrays = {"A": type(plan.arrays["A"])(**{**plan.arrays["A"].__dict__, "routing": routing})}
    bigger = type(plan)(plan.station, plan.instruments, arrays)
    with pytest.raises(ConfigError, match=r"arrays.A.routing.pulse_compliance_A: 1.2 A is more than smu"):
        check_ratings(bigger)


def test_check_station_refuses_in_one_line(tmp_path) -> None:
    import yaml

    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(_station("2450+708b", max_compliance_A=5.0)))
    result = CliRunner().invoke(app, ["check-station", str(path)])
    assert result.exit_code == 2
    assert "error: limits.max_compliance_A: 5 A is more than smu (keithley2450 2450) can source" in " ".join(
        result.output.split()
    )
    assert "Traceback" not in result.output


def test_connecting_checks_the_model_the_instrument_names() -> None:
    # nothing claimed: the family's largest (200 V) passes the check before connecting; the
    # emulated instrument then names itself a 2601B (40 V), and the backend refuses to go on
    data = _station("2600+707b", max_abs_voltage_V=100.0)
    data["instruments"]["smu"]["options"]["emulator"] = {"model": "2601B"}
    backend_kind("smu-matrix").check(parse_station(data))
    with emulated(data, seed=1) as bench:
        assert "2601B" in bench.emulators["smu"].idn
        with pytest.raises(
            ConfigError,
            match=r"^limits.max_abs_voltage_V: 100 V is more than smu \(keithley2600 2601B\) can source \(at most 40.4 V\)$",
        ):
            build_backend(bench.station)
        data["limits"]["max_abs_voltage_V"] = 40.0
    with emulated(data, seed=1) as bench:
        backend = build_backend(bench.station)
        try:
            assert "2601B" in backend.identify()["smu"]
        finally:
            backend.close()
