"""Conformance of the Keithley 707B/708B emulator: the Reference Manual's channel examples over
raw pyvisa.

Manual: Models 707B and 708B Switching Matrix Reference Manual 707B-901-01 Rev. B (section 4
"Channel list syntax"; section 7 "TSP command reference", command entries cited by name).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pyvisa

from hil.types import ArraySpec
from sim_backend.emulators.keithley707b import Keithley707BEmulator
from sim_backend.preset import load_preset
from sim_backend.twin import TwinBackend


def make_twin() -> TwinBackend:
    spec = ArraySpec("A", 4, 4, ArraySpec.area_from_diameter(1e-6))
    return TwinBackend([spec], load_preset("mo_tiox_choi2021"), seed=3)


class Raw:
    def __init__(self, emu: Keithley707BEmulator) -> None:
        self.rm = pyvisa.ResourceManager("@py")
        self.inst: Any = self.rm.open_resource(emu.resource, read_termination="\n", write_termination="\n")
        self.inst.timeout = 3000

    def write(self, text: str) -> None:
        self.inst.write(text)

    def query(self, text: str) -> str:
        return str(self.inst.query(text))

    def errors(self) -> list[int]:
        codes = []
        while True:
            code = int(float(self.query("print(errorqueue.next())").split("\t")[0]))
            if code == 0:
                return codes
            codes.append(code)

    def close(self) -> None:
        self.inst.close()
        self.rm.close()


@pytest.fixture(params=["707B", "708B"])
def matrix(request: pytest.FixtureRequest) -> Iterator[tuple[Raw, Keithley707BEmulator]]:
    with Keithley707BEmulator(make_twin(), latency_s=0, model=request.param) as emu:
        raw = Raw(emu)
        yield raw, emu
        raw.close()


def test_manual_open_getclose_roundtrip(matrix: tuple[Raw, Keithley707BEmulator]) -> None:
    """707B manual, "channel.getclose()" returns closed channels separated by semicolons, and
    "Channel list syntax" lets that list be fed back: ``channel.open(channel.getclose(...))``."""
    raw, emu = matrix
    raw.write('channel.close("1A01,1B02,1H12")')
    assert raw.query('print(channel.getclose("allslots"))') == "1A01;1B02;1H12"
    raw.write('channel.open(channel.getclose("allslots"))')
    assert raw.query('print(channel.getclose("allslots"))') == "nil"
    raw.write('channel.close("1A01;1A02")')  # semicolons separate a list too
    assert raw.query('print(channel.getstate("1A01:1A03"))') == "1,1,0"
    assert raw.errors() == []


def test_manual_close_range_and_exclusiveclose(matrix: tuple[Raw, Keithley707BEmulator]) -> None:
    """707B manual, "channel.close()" with a range (``1A01:1A05``) and "channel.exclusiveclose()"
    (every other channel opens)."""
    raw, emu = matrix
    raw.write('channel.close("1A01:1A05")')
    assert raw.query('print(channel.getclose("slot1"))') == "1A01;1A02;1A03;1A04;1A05"
    raw.write('channel.exclusiveclose("1B03")')
    assert raw.query('print(channel.getclose("allslots"))') == "1B03"
    assert emu.crosspoints() == {("B", 3)}
    raw.write('channel.open("allslots")')
    assert raw.query('print(channel.getclose("allslots"))') == "nil"  # the write has been handled
    assert emu.closed_channels() == set()
    assert raw.errors() == []


def test_manual_pattern(matrix: tuple[Raw, Keithley707BEmulator]) -> None:
    """707B manual, "channel.pattern.setimage()" and a pattern name in a channel list."""
    raw, emu = matrix
    raw.write('channel.pattern.setimage("1B02,1B04,1B06", "Chans")')
    raw.write('channel.close("Chans")')
    assert raw.query('print(channel.getclose("allslots"))') == "1B02;1B04;1B06"
    assert raw.query('print(channel.pattern.getimage("Chans"))') == "1B02;1B04;1B06"
    assert raw.errors() == []


def test_manual_close_refuses_slot_keywords(matrix: tuple[Raw, Keithley707BEmulator]) -> None:
    """707B manual, "channel.close()": ``slotX`` and ``allslots`` are not allowed (an error,
    nothing closes)."""
    raw, emu = matrix
    raw.write('channel.close("allslots")')
    assert raw.errors() == [-286]
    assert emu.closed_channels() == set()


def test_model_slots_and_identity(matrix: tuple[Raw, Keithley707BEmulator]) -> None:
    """707B: six slots; 708B: one (Reference Manual section 1). ``*IDN?`` and ``localnode.model``
    name the model."""
    raw, emu = matrix
    model = emu.model_name
    assert raw.query("print(localnode.model)") == model
    assert f"Model {model}" in raw.query("*IDN?")
    raw.write('channel.close("2A01")')
    if model == "708B":
        assert raw.errors() == [-286]
        assert emu.closed_channels() == set()
    else:
        assert raw.errors() == []
        assert emu.closed_channels() == {"2A01"}


def test_manual_forbidden_count_and_reset(matrix: tuple[Raw, Keithley707BEmulator]) -> None:
    """707B manual, "channel.setforbidden()" (a forbidden channel will not close),
    "channel.getcount()" (closures per channel), "channel.reset()" and ``reset()``."""
    raw, emu = matrix
    raw.write('channel.setforbidden("1A02")')
    raw.write('channel.close("1A02")')
    assert raw.errors() == [-286]
    assert raw.query('print(channel.getforbidden("allslots"))') == "1A02"
    raw.write('channel.close("1A01") channel.open("1A01") channel.close("1A01")')
    assert raw.query('print(channel.getcount("1A01,1A02"))') == "2,0"
    raw.write('channel.reset("allslots")')
    assert raw.query('print(channel.getforbidden("allslots"))') == "nil"
    raw.write('channel.close("1C01") reset()')
    assert raw.query('print(channel.getclose("allslots"))') == "nil"
    raw.write("channel.connectrule = channel.MAKE_BEFORE_BREAK")
    assert raw.query("print(channel.connectrule)") == "2.000000e+00"
    raw.write("channel.connectrule = 7")
    assert raw.errors() == [1101]
