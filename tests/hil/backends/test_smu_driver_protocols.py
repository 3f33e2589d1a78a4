"""The SMU and switch-matrix drivers have what the SMU + matrix backend's driver protocols ask for.

mypy cannot check this (pymeasure's classes are untyped, so every driver class derives from
``Any``): the members of :class:`~hil.backends.smu_matrix.SourceMeter` and
:class:`~hil.backends.smu_matrix.SwitchMatrix` are checked here on the driver classes, methods
with every parameter the protocol names, in the same order.
"""

from __future__ import annotations

import inspect

import pytest
from pymeasure.test import expected_protocol

from drivers.b2900 import KeysightB2900
from drivers.e5250a import KeysightE5250A
from drivers.keithley707b import Keithley707B
from drivers.keithley2450 import Keithley2450
from drivers.keithley2600 import Keithley2600
from hil.backends.smu_matrix import InstrumentClock, SourceMeter, SwitchMatrix


def _methods(protocol: type) -> dict[str, list[str]]:
    """Public methods a protocol declares, with their parameter names (``self`` left out)."""
    found: dict[str, list[str]] = {}
    for klass in protocol.__mro__:
        if klass is object or not getattr(klass, "_is_protocol", False):
            continue
        for name, value in vars(klass).items():
            if not name.startswith("_") and inspect.isfunction(value) and name not in found:
                found[name] = list(inspect.signature(value).parameters)[1:]
    return found


def _attributes(protocol: type) -> list[str]:
    return [n for n in getattr(protocol, "__annotations__", {}) if not n.startswith("_")]


def _check(cls: type, protocol: type) -> None:
    for name, params in _methods(protocol).items():
        method = getattr(cls, name, None)
        assert callable(method), f"{cls.__name__} has no method {name}() of {protocol.__name__}"
        have = list(inspect.signature(method).parameters)[1:]
        assert have[: len(params)] == params, f"{cls.__name__}.{name}{tuple(have)} != {tuple(params)}"
    with expected_protocol(cls, []) as driver:
        for name in _attributes(protocol):
            # on the class where it is a pymeasure property (id would ask the instrument)
            assert hasattr(cls, name) or name in vars(driver), f"{cls.__name__} has no {name}"


@pytest.mark.parametrize("cls", [Keithley2600, KeysightB2900, Keithley2450])
def test_smu_drivers_are_source_meters(cls: type) -> None:
    _check(cls, SourceMeter)


@pytest.mark.parametrize("cls", [Keithley707B, KeysightE5250A])
def test_matrix_drivers_are_switch_matrices(cls: type) -> None:
    _check(cls, SwitchMatrix)


def test_the_2600_keeps_instrument_time_and_the_others_do_not() -> None:
    _check(Keithley2600, InstrumentClock)
    assert not all(hasattr(KeysightB2900, n) for n in _methods(InstrumentClock))


def test_the_checks_can_fail() -> None:
    with pytest.raises(AssertionError, match="Keithley2600 has no method"):
        _check(Keithley2600, SwitchMatrix)
