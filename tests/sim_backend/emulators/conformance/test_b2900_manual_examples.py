"""The examples of the Keysight B2900 manuals, sent verbatim to a B2962A emulator with raw pyvisa.

Sources (the printed text was read in stored copies of the manual pages):

* *Agilent B2900 Series Precision Source/Measure Unit SCPI Command Reference*, B2910-90030,
  Edition 2, July 2011 ("SCPI Ref."), chapter 4 "Subsystem Commands": each command entry ends
  with an "Example" of one to three lines, usually a setting on channel 1 (no suffix) and a
  query on channel 2;
* *Keysight B2961A/B2962A SCPI Command Reference*, Edition 6 ("B2960 SCPI Ref."), for the
  OUTPut entries (the emulated model here is the B2962A).

Each test sends the example's lines exactly as printed, one message per line, then checks the
queries' replies against the manual's definition of the setting (defaults per the entry's
"Parameter" text) and reads the setting back on the channel the example set (inspection
queries, not the manual's). The *Keysight B2900 Series Programming Guide*'s example programs
were not found in the stored material; the examples of ``test_b2900.py`` (SCPI Ref. 4-44, 4-45)
are not repeated here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pyvisa

from hil.types import ArraySpec
from sim_backend.emulators.b2900 import KeysightB2900Emulator
from sim_backend.preset import load_preset
from sim_backend.twin import TwinBackend

Resource = pyvisa.resources.MessageBasedResource


@pytest.fixture
def smu() -> Iterator[Resource]:
    spec = ArraySpec("A", 4, 4, ArraySpec.area_from_diameter(1e-6))
    twin = TwinBackend([spec], load_preset("mo_tiox_choi2021"), seed=3)
    with KeysightB2900Emulator(twin, latency_s=0, model="B2962A") as emu:
        rm = pyvisa.ResourceManager("@py")
        res = rm.open_resource(emu.resource, read_termination="\n", write_termination="\n", timeout=3000)
        assert isinstance(res, pyvisa.resources.MessageBasedResource)
        yield res
        res.close()
        rm.close()
    assert emu.internal_errors == [] and emu.scpi.internal_errors == []


def errors(res: Resource) -> list[int]:
    codes = []
    while (code := int(res.query(":SYST:ERR?").split(",")[0])) != 0:
        codes.append(code)
    return codes


def floats(reply: str) -> list[float]:
    return [float(v) for v in reply.split(",")]


def send(res: Resource, lines: list[str]) -> list[str]:
    """Send the lines one message each; the replies of the queries, in order."""
    replies = []
    for line in lines:
        if "?" in line.split(" ")[0]:
            replies.append(res.query(line))
        else:
            res.write(line)
    return replies


def test_scpi_ref_4_93_output_level(smu: Resource) -> None:
    """SCPI Ref. 4-93, [:SOURce]:<CURRent|VOLTage>[:LEVel][:IMMediate][:AMPLitude], example
    (verbatim): ``:VOLT 3`` sets channel 1 to 3 V; the fully spelled query of channel 2's
    current level reads its default, 0 (NR3)."""
    assert send(smu, [":VOLT 3", ":SOUR2:CURR:LEV:IMM:AMPL?"]) == ["+0.000000E+00"]
    assert float(smu.query(":SOUR1:VOLT?")) == 3.0
    assert errors(smu) == []


def test_scpi_ref_4_95_sweep_points(smu: Resource) -> None:
    """SCPI Ref. 4-95, [:SOURce]:<CURRent|VOLTage>:POINts, example (verbatim): 51 points on
    channel 1; channel 2 reads its default, 1 point (NR1)."""
    assert send(smu, [":CURR:POIN 51", ":SOUR2:VOLT:POIN?"]) == ["1"]
    assert smu.query(":SOUR1:CURR:POIN?") == "51"
    assert errors(smu) == []


def test_scpi_ref_4_97_range_auto_lower_limit(smu: Resource) -> None:
    """SCPI Ref. 4-97, [:SOURce]:<CURRent|VOLTage>:RANGe:AUTO:LLIMit, example (verbatim): the
    current-output autorange floor of channel 1 to 1 uA; channel 2's voltage floor reads the
    lowest voltage output range of the B2962A (200 mV, "Source Output Ranges", SCPI Ref. 2-24)."""
    assert send(smu, [":CURR:RANG:AUTO:LLIM 1E-6", ":SOUR2:VOLT:RANG:AUTO:LLIM?"]) == ["+2.000000E-01"]
    assert float(smu.query(":SOUR1:CURR:RANG:AUTO:LLIM?")) == 1e-6
    assert errors(smu) == []


def test_scpi_ref_4_98_sweep_start_and_stop(smu: Resource) -> None:
    """SCPI Ref. 4-97/4-98, [:SOURce]:<CURRent|VOLTage>:<STARt|STOP>, example (verbatim): a
    10 V voltage-sweep stop on channel 1; channel 2's current start reads the default 0.0."""
    assert send(smu, [":VOLT:STOP 10", ":SOUR2:CURR:STAR?"]) == ["+0.000000E+00"]
    assert float(smu.query(":SOUR1:VOLT:STOP?")) == 10.0
    assert errors(smu) == []


def test_scpi_ref_4_105_list(smu: Resource) -> None:
    """SCPI Ref. 4-105, [:SOURce]:LIST:<CURRent|VOLTage>, example (verbatim): a 3-value voltage
    list on channel 1; channel 2's current list is queried. The entry gives the list's default
    as 0 but the emulator answers an untouched list with no values (the B2900's reply to an
    empty list is not printed), so only the reply's presence is checked there; the channel-1
    list reads back as set (NR3, comma-separated)."""
    replies = send(smu, [":LIST:VOLT 0.1,0.2,0.3", ":SOUR2:LIST:CURR?"])
    assert len(replies) == 1
    assert floats(smu.query(":SOUR1:LIST:VOLT?")) == pytest.approx([0.1, 0.2, 0.3])
    assert smu.query(":SOUR1:LIST:VOLT:POIN?") == "3"
    assert errors(smu) == []


def test_scpi_ref_4_105_list_append(smu: Resource) -> None:
    """SCPI Ref. 4-105, [:SOURce]:LIST:<CURRent|VOLTage>:APPend, example (verbatim): 1.1, 1.2,
    1.3 V appended to channel 1's voltage list (here after the 4-105 :LIST:VOLT example, as
    the entry describes: "Adds ... to the end of the list set by" :LIST:VOLT), and three
    currents appended to channel 2's current list."""
    send(smu, [":LIST:VOLT 0.1,0.2,0.3"])  # the :LIST:VOLT example first
    send(smu, [":LIST:VOLT:APP 1.1,1.2,1.3", ":SOUR2:LIST:CURR:APP 1E-6,2E-6,3E-6"])
    assert floats(smu.query(":SOUR1:LIST:VOLT?")) == pytest.approx([0.1, 0.2, 0.3, 1.1, 1.2, 1.3])
    assert floats(smu.query(":SOUR2:LIST:CURR?")) == pytest.approx([1e-6, 2e-6, 3e-6])
    assert smu.query(":SOUR1:LIST:VOLT:POIN?") == "6"
    assert errors(smu) == []


def test_scpi_ref_4_108_sweep_direction(smu: Resource) -> None:
    """SCPI Ref. 4-108, [:SOURce]:SWEep:DIRection, example (verbatim): channel 1 sweeps DOWN;
    channel 2 reads its default, UP (CRD)."""
    assert send(smu, [":SWE:DIR DOWN", ":SOUR2:SWE:DIR?"]) == ["UP"]
    assert smu.query(":SOUR1:SWE:DIR?") == "DOWN"
    assert errors(smu) == []


def test_scpi_ref_4_109_sweep_points_max(smu: Resource) -> None:
    """SCPI Ref. 4-108/4-109, [:SOURce]:SWEep:POINts, example (verbatim): 51 sweep points on
    channel 1; ``? MAX`` on channel 2 reads the maximum, 2500 ("value (1 to 2500)", NR1)."""
    assert send(smu, [":SWE:POIN 51", ":SOUR2:SWE:POIN? MAX"]) == ["2500"]
    assert smu.query(":SOUR1:SWE:POIN?") == "51"
    assert errors(smu) == []


def test_b2960_scpi_ref_4_67_output_off_mode(smu: Resource) -> None:
    """B2960 SCPI Ref. 4-66/4-67, :OUTPut:OFF:MODE, example (verbatim): channel 1 goes high
    impedance at output off; channel 2 reads its default, NORM (CRD)."""
    assert send(smu, [":OUTP:OFF:MODE HIZ", ":OUTP2:OFF:MODE?"]) == ["NORM"]
    assert smu.query(":OUTP1:OFF:MODE?") == "HIZ"
    assert errors(smu) == []


def test_b2960_scpi_ref_4_67_output_on_auto(smu: Resource) -> None:
    """B2960 SCPI Ref. 4-67, :OUTPut:ON:AUTO, example (verbatim): automatic output-on off on
    channel 1; channel 2 reads its default, 1 ("1|ON (default)", NR1). With it off, a
    :MEASure on channel 1 leaves the output off (inspection)."""
    assert send(smu, [":OUTP:ON:AUTO 0", ":OUTP2:ON:AUTO?"]) == ["1"]
    assert smu.query(":OUTP1:ON:AUTO?") == "0"
    smu.query(":MEAS:CURR? (@1)")
    assert smu.query(":OUTP1?") == "0"
    assert errors(smu) == []
