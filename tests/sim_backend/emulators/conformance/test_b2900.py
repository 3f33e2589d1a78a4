"""The Keysight B2900 emulator against clients the project did not write, and against its manual.

* QCoDeS's ``KeysightB2962A`` driver, unmodified, through pyvisa-py: every parameter of both
  channels, reset, errors;
* the examples of the *Agilent B2900 SCPI Command Reference* (B2910-90030, Edition 2: 4-44,
  4-45, 4-105, verbatim) and SCPI sequences written after the example programs of the
  *Keysight B2900 Series Programming Guide* (its text was not available here, so those
  sequences are not verbatim; each test names the example it follows); raw pyvisa;
* the status model (``*ESR?``/``*STB?`` after an error) and robustness on this model.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import pyvisa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qcodes.instrument import Instrument
from qcodes.instrument_drivers.Keysight import KeysightB2962A

from hil.types import ArraySpec
from sim_backend.emulators.b2900 import KeysightB2900Emulator
from sim_backend.preset import load_preset
from sim_backend.twin import TwinBackend

NAN = 9.91e37


@pytest.fixture
def twin_b2900() -> TwinBackend:
    spec = ArraySpec("A", 4, 4, ArraySpec.area_from_diameter(1e-6))
    return TwinBackend([spec], load_preset("mo_tiox_choi2021"), seed=3)


@pytest.fixture
def emu(twin_b2900: TwinBackend) -> Iterator[KeysightB2900Emulator]:
    with KeysightB2900Emulator(twin_b2900, latency_s=0, model="B2962A") as e:
        yield e
    assert e.internal_errors == [] and e.scpi.internal_errors == []


@pytest.fixture
def smu(emu: KeysightB2900Emulator) -> Iterator[pyvisa.resources.MessageBasedResource]:
    rm = pyvisa.ResourceManager("@py")
    res = rm.open_resource(emu.resource, read_termination="\n", write_termination="\n", timeout=3000)
    yield res  # type: ignore[misc]
    res.close()
    rm.close()


@pytest.fixture
def qc(emu: KeysightB2900Emulator) -> Iterator[KeysightB2962A]:
    inst = KeysightB2962A("b2962a_emulated", emu.resource, visalib="@py", timeout=3)
    yield inst
    inst.close()
    Instrument.close_all()


def floats(reply: str) -> list[float]:
    return [float(v) for v in reply.split(",")]


def errors(res: pyvisa.resources.MessageBasedResource) -> list[int]:
    codes = []
    while (code := int(res.query(":SYST:ERR?").split(",")[0])) != 0:
        codes.append(code)
    return codes


# --------------------------------------------------------------------------- QCoDeS KeysightB2962A


def test_qcodes_b2962a_opens_and_identifies(qc: KeysightB2962A) -> None:
    idn = qc.get_idn()
    assert idn["vendor"] == "Keysight Technologies" and idn["model"] == "B2962A"


@pytest.mark.parametrize("ch", ["ch1", "ch2"])
def test_qcodes_b2962a_every_channel_parameter(qc: KeysightB2962A, ch: str) -> None:
    c = getattr(qc, ch)
    c.source_mode("voltage")
    assert c.source_mode() == "voltage"
    c.source_voltage(0.25)
    assert c.source_voltage() == pytest.approx(0.25)
    c.source_current(1.5e-6)
    assert c.source_current() == pytest.approx(1.5e-6)
    c.current_limit(2e-3)
    assert c.current_limit() == pytest.approx(2e-3)
    c.voltage_limit(5.0)
    assert c.voltage_limit() == pytest.approx(5.0)
    c.remote_sensing(True)
    assert c.remote_sensing() is True
    c.remote_sensing(False)
    assert c.remote_sensing() is False
    c.enable(True)
    assert c.enable() is True
    current, voltage, resistance = c.current(), c.voltage(), c.resistance()
    assert voltage == pytest.approx(0.25, abs=1e-6)
    assert 0 < current < 2e-3 and resistance == pytest.approx(voltage / current, rel=0.02)
    c.source_mode("current")
    assert c.source_mode() == "current"
    c.enable(False)
    assert c.enable() is False
    assert qc.ask(":SYST:ERR?").startswith("+0")


def test_qcodes_b2962a_reset_and_errors(qc: KeysightB2962A) -> None:
    qc.ch1.source_voltage(1.0)
    qc.ch2.enable(True)
    qc.write("*RST")
    assert qc.ch1.source_voltage() == 0.0 and qc.ch2.enable() is False
    assert qc.ch1.current_limit() == pytest.approx(
        1e-4
    )  # *RST limit (SCPI Ref. command summary, reset settings)
    qc.ch1.source_voltage(500.0)  # beyond +-210 V: -222 Data out of range, value kept
    assert qc.ch1.source_voltage() == 0.0
    assert qc.ask(":SYST:ERR?").startswith("-222,")
    qc.write(":SOUR1:VOLT:BOGUS 1")
    assert qc.ask(":SYST:ERR?").startswith("-113,")


def test_one_channel_models_refuse_channel_2(twin_b2900: TwinBackend) -> None:
    """SCPI Ref. 1-8: the B2901A has channel 1 only (header suffix and channel list)."""
    emu = KeysightB2900Emulator(twin_b2900, latency_s=0, model="B2901A")
    assert emu.handle_message(":SOUR2:VOLT 1") is None
    assert emu.handle_message(":SYST:ERR?").startswith("-114,")
    emu.handle_message(":MEAS:CURR? (@2)")
    assert emu.handle_message(":SYST:ERR?").startswith("-224,")
    assert emu.handle_message(":OUTP1?") == "0"


def test_ranges_follow_the_model(twin_b2900: TwinBackend) -> None:
    """SCPI Ref. 2-24 to 2-28: 10 nA only on the B2911A/B2912A (and B2961A/B2962A); the
    6 V range only on the B2961A/B2962A."""
    b2902 = KeysightB2900Emulator(twin_b2900, latency_s=0, model="B2902A")
    b2912 = KeysightB2900Emulator(twin_b2900, latency_s=0, model="B2912A")
    b2962 = KeysightB2900Emulator(twin_b2900, latency_s=0, model="B2962A")
    b2902.handle_message(":SENS:CURR:RANG 5e-9")
    b2912.handle_message(":SENS:CURR:RANG 5e-9")
    assert float(b2902.handle_message(":SENS:CURR:RANG?") or "") == pytest.approx(1e-7)
    assert float(b2912.handle_message(":SENS:CURR:RANG?") or "") == pytest.approx(1e-8)
    b2902.handle_message(":SOUR:VOLT:RANG 5")
    b2962.handle_message(":SOUR:VOLT:RANG 5")
    assert float(b2902.handle_message(":SOUR:VOLT:RANG?") or "") == 20.0
    assert float(b2962.handle_message(":SOUR:VOLT:RANG?") or "") == 6.0
    b2902.handle_message(":SOUR:VOLT:RANG 250")  # beyond the 200 V range
    assert b2902.handle_message(":SYST:ERR?").startswith("-222,")
    # pulse width: 50 us on the B2902A, 10 us on the B2912A ([:SOURce]:PULSe:WIDTh)
    b2902.handle_message(":SOUR:PULS:WIDT 2e-5")
    assert b2902.handle_message(":SYST:ERR?").startswith("-222,")
    b2912.handle_message(":SOUR:PULS:WIDT 2e-5")
    assert float(b2912.handle_message(":SOUR:PULS:WIDT?") or "") == pytest.approx(2e-5)


# --------------------------------------------------------------------------- settings read back


def test_every_setting_reads_back(smu: pyvisa.resources.MessageBasedResource) -> None:
    """Settings the issue found accepted and not kept, and their neighbours (SCPI Ref.
    chapter 4), with the optional [:SOURce] root, long forms and channel suffixes."""
    cases = [
        (":SOUR2:VOLT:RANG 20", ":SOURce2:VOLTage:RANGe?", "+2.000000E+01"),
        (":VOLT:RANG:AUTO OFF", ":SOUR1:VOLT:RANG:AUTO?", "0"),
        (":SENS1:CURR:RANG 1e-6", ":SENS:CURR:DC:RANG:UPP?", "+1.000000E-06"),
        (":SENS:CURR:RANG:AUTO ON", ":SENS:CURR:RANG:AUTO?", "1"),
        (":SENS:CURR:RANG:AUTO:LLIM 1e-5", ":SENS:CURR:RANG:AUTO:LLIM?", "+1.000000E-05"),
        (":OUTP2:OFF:MODE HIZ", ":OUTPut2:OFF:MODE?", "HIZ"),
        (":OUTP:OFF:MODE ZERO", ":OUTP1:OFF:MODE?", "ZERO"),
        (":SENS2:REM ON", ":SENS2:REM?", "1"),
        (":OUTP:LOW FLO", ":OUTP:LOW?", "FLO"),
        (":OUTP:ON:AUTO OFF", ":OUTP:ON:AUTO?", "0"),
        (":OUTP:PROT ON", ":OUTP:PROT?", "1"),
        (":CURR:MODE SWE", ":SOUR:CURR:MODE?", "SWE"),
        (":SOUR:CURR:STAR 1e-6;STOP 1e-5", ":SOUR:CURR:STOP?", "+1.000000E-05"),
        (":SOUR:SWE:POIN 10", ":SOUR:CURR:POIN?", "10"),
        (":SOUR:SWE:SPAC LOG", ":SWE:SPAC?", "LOG"),
        (":SOUR:SWE:STA DOUB", ":SOUR:SWE:STA?", "DOUB"),
        (":SOUR:SWE:DIR DOWN", ":SOUR:SWE:DIR?", "DOWN"),
        (":SOUR:FUNC:SHAP PULS", ":SOUR:FUNC?", "PULS"),
        (":PULS:WIDT 1e-3;DEL 5e-4", ":SOUR:PULS:DEL?", "+5.000000E-04"),
        (":SENS:FUNC:OFF:ALL;:SENS:FUNC 'RES'", ":SENS:FUNC?", '"RES"'),
        (":SENS:CURR:NPLC 1", ":SENS:CURR:APER?", "+2.000000E-02"),
        (":TRIG:ACQ:DEL 1e-3", ":TRIG:ACQ:DEL?", "+1.000000E-03"),
        (":TRIG2:TRAN:COUN 7", ":TRIG2:TRAN:COUN?", "7"),
        (":ARM:COUN 3", ":ARM:ACQ:COUN?", "3"),
        (":TRIG:SOUR TIM", ":TRIG:TRAN:SOUR?", "TIM"),
        (":FORM:ELEM:SENS CURR,VOLT", ":FORM:ELEM:SENS?", "VOLT,CURR"),
        (":FORM REAL,64", ":FORM?", "REAL,64"),
        (":FORM:BORD SWAP", ":FORM:BORD?", "SWAP"),
        (":SYST:LFR 60", ":SYST:LFR?", "60"),
    ]
    for command, query, expected in cases:
        smu.write(command)
        assert smu.query(query) == expected, command
    smu.write(":FORM ASC")
    assert errors(smu) == []
    assert smu.query(":SOUR:VOLT? MAX") == "+2.100000E+02"  # MIN|MAX|DEF queries


def test_unimplemented_and_bad_commands_are_errors_not_silence(
    smu: pyvisa.resources.MessageBasedResource,
) -> None:
    for command, code in [
        (":TRAC:FEED SENS", -113),  # TRACe is not emulated: undefined header, not a wrong reply
        (":CALC:MATH:STAT ON", -113),
        (":SOUR:VOLT:MODE WAVE", -224),
        (":SENS:CURR:PROT 5", -222),
        (":SOUR3:VOLT 1", -114),
        (":FORM REAL,16", -224),
        (":SOUR:LIST:VOLT", -109),
    ]:
        smu.write(command)
        assert errors(smu) == [code], command
    smu.write(":TRAC:DATA?")
    assert errors(smu) == [-113]
    assert smu.query("*IDN?").startswith("Keysight")  # the connection stays


def test_esr_and_stb_after_an_error(smu: pyvisa.resources.MessageBasedResource) -> None:
    """IEEE 488.2 11.5.1 and the B2900's status byte (SCPI Ref. "Status Byte Register"): a
    command error sets CME in *ESR?, EAV in *STB? while the queue holds it; *CLS clears."""
    smu.write("*CLS;*ESE 60")
    smu.write(":SOUR:VOLT:BOGUS 1")
    assert int(smu.query("*STB?")) & 0b0010_0100 == 0b0010_0100  # ESB and EAV
    assert int(smu.query("*ESR?")) == 32  # CME, read and cleared
    assert int(smu.query("*ESR?")) == 0
    smu.write(":SENS:CURR:PROT 9")  # execution error
    assert int(smu.query("*ESR?")) == 16
    assert errors(smu) == [-113, -222]
    assert int(smu.query("*STB?")) & 4 == 0


def test_rst_keeps_the_error_queue(smu: pyvisa.resources.MessageBasedResource) -> None:
    """IEEE 488.2 10.32: *RST does not clear the error queue or the ESR."""
    smu.write("*CLS")
    smu.write(":BOGUS")
    smu.write("*RST")
    assert int(smu.query("*ESR?")) == 32
    assert errors(smu) == [-113]


# --------------------------------------------------------------------------- the manual's examples


def test_guide_spot_measurement(smu: pyvisa.resources.MessageBasedResource) -> None:
    """After the Keysight B2900 Series Programming Guide, "Spot measurement" example: voltage source, current
    limit, output on, :MEAS? of the enabled functions in :FORM:ELEM:SENS order."""
    for cmd in [
        ":SOUR:FUNC:MODE VOLT",
        ":SOUR:VOLT 0.5",
        ':SENS:FUNC "CURR"',
        ":SENS:CURR:PROT 0.1",
        ":SENS:CURR:NPLC 0.1",
        ":FORM:ELEM:SENS VOLT,CURR",
        ":OUTP ON",
    ]:
        smu.write(cmd)
    volt, curr = floats(smu.query(":MEAS? (@1)"))
    assert volt == pytest.approx(0.5, abs=1e-6) and curr > 0
    smu.write(":OUTP OFF")
    assert errors(smu) == []


def test_ref_meas_two_channels_current_and_source(smu: pyvisa.resources.MessageBasedResource) -> None:
    """Agilent B2900 SCPI Command Reference (B2910-90030), Edition 2, 4-44, :MEASure? example: ``:FORM:ELEM:SENS CURR,SOUR`` then ``:MEAS? (@1,2)``
    answers ch1curr,ch1sour,ch2curr,ch2sour."""
    smu.write(":SOUR1:VOLT 0.2;:SOUR2:VOLT 0.3;:OUTP1 ON;:OUTP2 ON")
    smu.write(":FORM:ELEM:SENS CURR,SOUR")
    values = floats(smu.query(":MEAS? (@1,2)"))
    assert len(values) == 4 and values[1] == pytest.approx(0.2) and values[3] == pytest.approx(0.3)
    assert floats(smu.query(":MEAS:CURR? (@2,1)"))[0] == pytest.approx(values[0], rel=0.05)


def test_ref_disabled_function_reads_nan(smu: pyvisa.resources.MessageBasedResource) -> None:
    """Agilent B2900 SCPI Command Reference (B2910-90030), Edition 2, 4-44: a function that is not enabled reads +9.910000E+37."""
    smu.write(":SENS:FUNC:OFF:ALL;:SENS:FUNC 'CURR';:FORM:ELEM:SENS VOLT,CURR,RES;:OUTP ON")
    volt, curr, res = floats(smu.query(":MEAS?"))
    assert volt == NAN and res == NAN and curr != NAN


def test_guide_staircase_sweep_voltage(smu: pyvisa.resources.MessageBasedResource) -> None:
    """After the Keysight B2900 Series Programming Guide, "Staircase sweep measurement": :SOUR:VOLT:MODE SWE, START/STOP/POIN, trigger
    count = points, :INIT, :FETC:ARR?."""
    for cmd in [
        ":SOUR:FUNC:MODE VOLT",
        ":SOUR:VOLT:MODE SWE",
        ":SOUR:VOLT:STAR 0",
        ":SOUR:VOLT:STOP 1",
        ":SOUR:VOLT:POIN 11",
        ':SENS:FUNC "CURR"',
        ":SENS:CURR:APER 1E-4",
        ":SENS:CURR:PROT 0.1",
        ":TRIG:SOUR AINT",
        ":TRIG:COUN 11",
        ":FORM:ELEM:SENS VOLT,CURR",
        ":OUTP ON",
        ":INIT (@1)",
    ]:
        smu.write(cmd)
    data = floats(smu.query(":FETC:ARR? (@1)"))
    volts, currs = data[0::2], data[1::2]
    assert volts == pytest.approx([k / 10 for k in range(11)], abs=1e-9)
    assert all(b >= a for a, b in zip(currs, currs[1:], strict=False))
    assert smu.query(":SOUR:VOLT:STEP?") == "+1.000000E-01"
    assert errors(smu) == []


def test_guide_current_sweep(smu: pyvisa.resources.MessageBasedResource) -> None:
    """After the Keysight B2900 Series Programming Guide, "Staircase sweep measurement" with a current source (:SOUR:CURR:MODE SWE),
    voltage limit :SENS:VOLT:PROT; the issue's "current sweeps are impossible"."""
    for cmd in [
        ":SOUR:FUNC:MODE CURR",
        ":SOUR:CURR:MODE SWE",
        ":SOUR:CURR:STAR 1E-6",
        ":SOUR:CURR:STOP 5E-6",
        ":SOUR:CURR:POIN 5",
        ':SENS:FUNC "VOLT"',
        ":SENS:VOLT:PROT 2",
        ":TRIG:COUN 5",
        ":OUTP ON",
    ]:
        smu.write(cmd)
    smu.write(":INIT (@1)")
    sources = floats(smu.query(":FETC:ARR:SOUR? (@1)"))
    assert sources == pytest.approx([1e-6, 2e-6, 3e-6, 4e-6, 5e-6])
    volts = floats(smu.query(":FETC:ARR:VOLT? (@1)"))
    assert len(volts) == 5 and volts[-1] > volts[0] > 0
    assert errors(smu) == []


def test_guide_list_sweep(smu: pyvisa.resources.MessageBasedResource) -> None:
    """After the Keysight B2900 Series Programming Guide, "List sweep measurement": :SOUR:VOLT:MODE LIST, :SOUR:LIST:VOLT, :LIST:VOLT:APP
    (SCPI Ref. 4-105), timer trigger."""
    smu.write(":SOUR:VOLT:MODE LIST;:SOUR:LIST:VOLT 0.1,0.2,0.3")
    smu.write(":SOUR:LIST:VOLT:APP 0.4,0.5")
    assert smu.query(":SOUR:LIST:VOLT:POIN?") == "5"
    smu.write(":TRIG:SOUR TIM;:TRIG:TIM 1E-3;:TRIG:COUN 5;:TRIG:ACQ:DEL 5E-4;:OUTP ON")
    smu.write(":INIT (@1)")
    assert floats(smu.query(":FETC:ARR:SOUR? (@1)")) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    times = floats(smu.query(":FETC:ARR:TIME? (@1)"))
    assert [round(b - a, 9) for a, b in zip(times, times[1:], strict=False)] == [1e-3] * 4


def test_guide_pulsed_measurement(smu: pyvisa.resources.MessageBasedResource) -> None:
    """After the Keysight B2900 Series Programming Guide, "Pulsed spot measurement": :SOUR:FUNC:SHAP PULS, base :SOUR:VOLT, peak
    :SOUR:VOLT:TRIG, :PULS:DEL/:PULS:WIDT, acquire delay inside the pulse."""
    for cmd in [
        ":SOUR:FUNC:MODE VOLT",
        ":SOUR:FUNC:SHAP PULS",
        ":SOUR:VOLT 0",
        ":SOUR:VOLT:TRIG 0.5",
        ":SOUR:PULS:DEL 0",
        ":SOUR:PULS:WIDT 1E-3",
        ':SENS:FUNC "CURR"',
        ":SENS:CURR:APER 1E-4",
        ":TRIG:TRAN:DEL 0",
        ":TRIG:ACQ:DEL 5E-4",
        ":OUTP ON",
        ":INIT (@1)",
    ]:
        smu.write(cmd)
    volt, curr = floats(smu.query(":FETC:ARR:VOLT? (@1);:FETC:ARR:CURR? (@1)").replace(";", ","))
    assert volt == pytest.approx(0.5) and curr > 0
    assert float(smu.query(":SOUR:VOLT?")) == 0.0  # back on the base level


def test_guide_current_pulses(smu: pyvisa.resources.MessageBasedResource) -> None:
    """After the Keysight B2900 Series Programming Guide, "Pulsed sweep measurement" with a current source: list of current pulse peaks."""
    smu.write(":SOUR:FUNC:MODE CURR;:SOUR:FUNC:SHAP PULS;:SOUR:CURR 0;:SOUR:CURR:MODE LIST")
    smu.write(":SOUR:LIST:CURR 1E-6,2E-6,3E-6;:SOUR:PULS:WIDT 1E-3;:SENS:VOLT:PROT 5")
    smu.write(":TRIG:SOUR TIM;:TRIG:TIM 4E-3;:TRIG:COUN 3;:TRIG:ACQ:DEL 8E-4;:OUTP ON;:INIT")
    peaks = floats(smu.query(":FETC:ARR:SOUR?"))
    assert peaks == pytest.approx([1e-6, 2e-6, 3e-6])
    assert float(smu.query(":SOUR:CURR?")) == 0.0


def test_ref_read_and_fetch(smu: pyvisa.resources.MessageBasedResource) -> None:
    """Agilent B2900 SCPI Command Reference (B2910-90030), Edition 2, FETCh and READ subsystems: :READ? = :INIT + :FETC?; :FETC? and :FETC:SCAL:CURR? give
    the last reading; :READ:ARR:CURR? all of them."""
    smu.write(":SOUR:VOLT 0.4;:FORM:ELEM:SENS VOLT,CURR;:TRIG:COUN 3;:OUTP ON")
    last = floats(smu.query(":READ?"))
    assert len(last) == 2 and last[0] == pytest.approx(0.4)
    assert len(floats(smu.query(":FETC:ARR?"))) == 6
    assert floats(smu.query(":FETC?")) == last
    assert float(smu.query(":FETC:SCAL:CURR?")) == last[1]
    assert len(floats(smu.query(":READ:ARR:CURR?"))) == 3


def test_ref_binary_data_real32_and_real64(smu: pyvisa.resources.MessageBasedResource) -> None:
    """Agilent B2900 SCPI Command Reference (B2910-90030), Edition 2, FORMat subsystem: :FORM REAL,32|REAL,64 sends IEEE 754 data in a definite-length block,
    :FORM:BORD NORM (big endian) or SWAP; NaN for disabled functions."""
    smu.write(":SOUR:LIST:VOLT 0.1,0.2,0.3;:SOUR:VOLT:MODE LIST;:TRIG:COUN 3;:OUTP ON;:INIT")
    smu.write(":FORM:ELEM:SENS SOUR")
    smu.write(":FORM REAL,32")
    big = smu.query_binary_values(":FETC:ARR?", datatype="f", is_big_endian=True)
    smu.write(":FORM REAL,64;:FORM:BORD SWAP")
    little = smu.query_binary_values(":FETC:ARR?", datatype="d", is_big_endian=False)
    assert list(big) == pytest.approx([0.1, 0.2, 0.3], rel=1e-6)
    assert list(little) == pytest.approx([0.1, 0.2, 0.3])
    smu.write(":SENS:FUNC:OFF:ALL;:FORM:ELEM:SENS CURR")
    nan = smu.query_binary_values(":MEAS?", datatype="d", is_big_endian=False)
    assert math.isnan(nan[0])
    smu.write(":FORM ASC")
    assert smu.query(":FORM?") == "ASC"


def test_guide_bus_trigger(smu: pyvisa.resources.MessageBasedResource) -> None:
    """After the Keysight B2900 Series Programming Guide, "Trigger system": with :TRIG:SOUR BUS the run waits (:IDLE? 0) for *TRG."""
    smu.write(":SOUR:VOLT:TRIG 0.3;:TRIG:SOUR BUS;:OUTP ON;:INIT (@1)")
    assert smu.query(":IDLE? (@1)") == "0"
    smu.write("*TRG")
    assert smu.query(":IDLE? (@1)") == "1"
    assert float(smu.query(":FETC:SCAL:SOUR? (@1)")) == pytest.approx(0.3)


def test_guide_two_channel_synchronous_sweep(smu: pyvisa.resources.MessageBasedResource) -> None:
    """After the Keysight B2900 Series Programming Guide, "Multi channel sweep": both channels list-swept by one :INIT (@1,2)."""
    for c in (1, 2):
        smu.write(f":SOUR{c}:VOLT:MODE LIST;:SOUR{c}:LIST:VOLT 0.1,0.2;:TRIG{c}:COUN 2;:OUTP{c} ON")
    smu.write(":INIT (@1,2)")
    assert floats(smu.query(":FETC:ARR:SOUR? (@1,2)")) == pytest.approx([0.1, 0.2, 0.1, 0.2])
    assert smu.query(":SOUR2:LIST:VOLT?") == "+1.000000E-01,+2.000000E-01"


def test_guide_output_auto_on_and_off(smu: pyvisa.resources.MessageBasedResource) -> None:
    """Agilent B2900 SCPI Command Reference (B2910-90030), Edition 2, :OUTPut:ON:AUTO and :OUTPut:OFF:AUTO: :OUTP:ON:AUTO (ON at *RST) turns the output on at :INIT/:MEAS;
    :OUTP:OFF:AUTO ON turns it off when the action ends."""
    assert smu.query(":OUTP:ON:AUTO?") == "1"
    smu.write(":OUTP:OFF:AUTO ON")
    smu.query(":MEAS:CURR?")
    assert smu.query(":OUTP?") == "0"
    smu.write(":OUTP:OFF:AUTO OFF")
    smu.query(":MEAS:CURR?")
    assert smu.query(":OUTP?") == "1"


def test_ref_error_queue_queries(smu: pyvisa.resources.MessageBasedResource) -> None:
    """Agilent B2900 SCPI Command Reference (B2910-90030), Edition 2, SYSTem subsystem: :SYST:ERR:COUN?, :SYST:ERR:CODE?, :SYST:ERR:ALL?."""
    smu.write(":BOGUS1;:BOGUS2")  # the message ends at the first error
    smu.write(":SOUR:VOLT 999")
    assert smu.query(":SYST:ERR:COUN?") == "2"
    assert smu.query(":SYST:ERR:CODE?") == "-113"
    assert smu.query(":SYST:ERR:ALL?").startswith("-222,")
    assert smu.query(":SYST:ERR:ALL?") == '+0,"No error"'


# --------------------------------------------------------------------------- robustness

_WORDS = [
    ":SOUR", ":SOUR2", ":VOLT", ":CURR", ":LIST", ":SWE", ":POIN", ":STAR", ":STEP", ":MODE",
    " SWE", " LIST", ":FUNC", ":SHAP", " PULS", ":PULS:WIDT", ":SENS", ":PROT", ":RANG", ":AUTO",
    ":LLIM", ":APER", ":NPLC", ":OUTP", ":OFF:MODE", " HIZ", ":TRIG", ":ARM", ":ACQ", ":TRAN",
    ":COUN", ":TIM", ":SOUR BUS", ":INIT", ":ABOR", ":IDLE?", ":MEAS?", ":FETC:ARR?", ":READ?",
    ":FORM", " REAL,32", ":BORD", ":ELEM:SENS", ":TRAC:DATA?", ":CALC", "*TRG", "*RST", "*ESR?",
    "?", " ", ";", ",", "(@1)", "(@1,2)", "(@2:1)", "(@", "MAX", "DEF", "1e-3", "-5", "0", "abc",
]  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.sampled_from(_WORDS), max_size=14))
def test_no_message_crashes_the_b2900(twin_b2900: TwinBackend, words: list[str]) -> None:
    """Valid, valid-but-unimplemented and broken messages: a reply or nothing, errors to the
    queue, never an exception inside the emulator."""
    emu = KeysightB2900Emulator(twin_b2900, latency_s=0)
    for message in ("".join(words), ":OUTP ON;" + "".join(words)):
        reply = emu.handle_message(message)
        assert reply is None or isinstance(reply, str)
    assert emu.scpi.internal_errors == []
