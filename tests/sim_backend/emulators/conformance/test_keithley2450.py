"""Conformance of the Keithley 2450 emulator to clients this project did not write, and to the
Keithley 2450 Reference Manual (2450-901-01 Rev. B, September 2013; "RM" below). Page numbers
are given where they were checked against that revision; otherwise the command's entry in
section 6 "SCPI command reference" is named.

Three clients, unmodified: pymeasure 0.16's ``Keithley2450``, QCoDeS's ``Keithley2450`` (through
pyvisa-py), and the manual's own example programs sent verbatim with raw pyvisa.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import pyvisa
from pymeasure.instruments.keithley import Keithley2450 as PymeasureKeithley2450

from sim_backend.emulators.keithley2450 import Keithley2450Emulator
from sim_backend.emulators.scpi_server import InstrumentServer

TERM = {"read_termination": "\n", "write_termination": "\n"}


@pytest.fixture
def emu(start_emulator: Callable[[str], InstrumentServer]) -> Keithley2450Emulator:
    e = start_emulator("keithley2450")
    assert isinstance(e, Keithley2450Emulator)
    return e


@pytest.fixture
def raw(emu: Keithley2450Emulator) -> Iterator[pyvisa.resources.MessageBasedResource]:
    rm = pyvisa.ResourceManager("@py")
    res = rm.open_resource(emu.resource, timeout=3000, **TERM)
    assert isinstance(res, pyvisa.resources.MessageBasedResource)
    yield res
    res.close()
    rm.close()


@pytest.fixture
def pm(emu: Keithley2450Emulator) -> Iterator[PymeasureKeithley2450]:
    smu = PymeasureKeithley2450(emu.resource, visa_library="@py", timeout=3000, **TERM)
    yield smu
    smu.adapter.close()


def errors(res: Any) -> list[int]:
    """Drain the error queue; the codes."""
    codes = []
    while True:
        code = int(str(res.query(":SYST:ERR?")).split(",")[0])
        if code == 0:
            return codes
        codes.append(code)


def floats(reply: str) -> list[float]:
    return [float(v) for v in reply.split(",")]


# =========================================================================== pymeasure
# Controls: (attribute, value set, value read back). Ranges read back the 2450 range that
# holds the value (RM 6-50 and :SOURce[1]:<function>:RANGe).
PYMEASURE_CONTROLS: list[tuple[str, Any, Any]] = [
    ("source_mode", "current", "current"),
    ("source_mode", "voltage", "voltage"),
    ("source_voltage", 0.25, 0.25),
    ("source_voltage", -1.5, -1.5),
    ("source_current", 1e-6, 1e-6),
    ("compliance_current", 1e-3, 1e-3),
    ("compliance_current", 0.5, 0.5),
    ("compliance_voltage", 5.0, 5.0),
    ("compliance_voltage", 0.1, 0.1),
    ("source_voltage_range", 2.0, 2.0),
    ("source_voltage_range", 15.0, 20.0),
    ("source_voltage_range", 200.0, 200.0),
    ("source_current_range", 1e-3, 1e-3),
    ("source_current_range", 5e-6, 1e-5),
    ("source_current_range", 1.0, 1.0),
    ("current_range", 1e-6, 1e-6),
    ("current_range", 1e-8, 1e-8),
    ("current_range", 0.05, 0.1),
    ("voltage_range", 0.2, 0.2),
    ("voltage_range", 20.0, 20.0),
    ("resistance_range", 2e3, 2e3),
    ("resistance_range", 2e8, 2e8),
    ("current_nplc", 0.01, 0.01),
    ("current_nplc", 10.0, 10.0),
    ("voltage_nplc", 0.5, 0.5),
    ("resistance_nplc", 2.0, 2.0),
    ("source_voltage_delay", 0.05, 0.05),
    ("source_current_delay", 0.002, 0.002),
    ("source_voltage_delay_auto", True, 1),
    ("source_voltage_delay_auto", False, 0),
    ("source_current_delay_auto", True, 1),
    ("wires", 4, 4),
    ("wires", 2, 2),
    ("buffer_points", 10, 10),
    ("buffer_points", 5000, 5000),
    ("current_filter_type", "MOV", "MOV"),
    ("current_filter_type", "REP", "REP"),
    ("current_filter_count", 25, 25),
    ("current_filter_state", "ON", 1),
    ("current_filter_state", "OFF", 0),
    ("voltage_filter_type", "MOV", "MOV"),
    ("voltage_filter_count", 100, 100),
    ("current_output_off_state", "HIMP", "HIMP"),
    ("current_output_off_state", "ZERO", "ZERO"),
    ("voltage_output_off_state", "GUAR", "GUAR"),
    ("voltage_output_off_state", "NORM", "NORM"),
]


@pytest.mark.parametrize(("attr", "value", "expected"), PYMEASURE_CONTROLS)
def test_pymeasure_control_reads_back(
    pm: PymeasureKeithley2450, attr: str, value: Any, expected: Any
) -> None:
    setattr(pm, attr, value)
    got = getattr(pm, attr)
    if isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-6)
    else:
        assert got == expected
    assert pm.check_errors() == []


@pytest.mark.parametrize(
    ("configure", "source", "measured", "level"),
    [
        ("measure_current", "apply_voltage", "current", 0.5),
        ("measure_voltage", "apply_voltage", "voltage", 0.5),
        ("measure_resistance", "apply_voltage", "resistance", 0.5),
        ("measure_voltage", "apply_current", "voltage", 1e-7),
        ("measure_current", "apply_current", "current", 1e-7),
    ],
)
def test_pymeasure_measurements(
    pm: PymeasureKeithley2450,
    emu: Keithley2450Emulator,
    configure: str,
    source: str,
    measured: str,
    level: float,
) -> None:
    getattr(pm, source)()
    getattr(pm, configure)(nplc=0.1)
    if source == "apply_voltage":
        pm.source_voltage = level
    else:
        pm.source_current = level
    pm.enable_source()
    assert pm.source_enabled
    value = getattr(pm, measured)
    pm.disable_source()
    assert not pm.source_enabled
    g = emu.wiring.conductance("A", 0, 0)
    expected = {
        ("apply_voltage", "current"): g * level,
        ("apply_voltage", "voltage"): level,
        ("apply_voltage", "resistance"): 1 / g,
        ("apply_current", "voltage"): level / g,
        ("apply_current", "current"): level,
    }[(source, measured)]
    # a current source reads V of the (non-linear) device: I / G(0.5 V) holds to some %
    assert value == pytest.approx(expected, rel=0.02 if source == "apply_voltage" else 0.1)
    assert pm.check_errors() == []


def test_pymeasure_buffer_statistics(pm: PymeasureKeithley2450, emu: Keithley2450Emulator) -> None:
    """pymeasure's ``means``/``maximums``/``minimums``/``standard_devs`` are
    ``:TRAC:STAT:AVER?`` etc.: one value, the statistic of the readings of the buffer (RM 6-119
    to 6-123).

    Driver deviation: pymeasure's ``mean_current`` (and ``mean_voltage``, ``max_current``, ...)
    index that reply as a list ``[voltage, current, resistance]`` (the Model 2400's
    ``:CALC3`` layout); against a 2450 ``means`` is one number and ``mean_current`` raises. The
    manual's behaviour is tested here instead."""
    pm.apply_voltage(compliance_current=1e-3)
    pm.measure_current(nplc=0.1)
    pm.source_voltage = 0.5
    pm.enable_source()
    pm.write(":TRAC:CLE;:SENS:COUN 5")
    pm.current  # noqa: B018  (five readings into defbuffer1)
    readings = np.array(floats(pm.ask(':TRAC:DATA? 1, 5, "defbuffer1"')))
    pm.disable_source()
    assert pm.means == pytest.approx(readings.mean(), rel=1e-5)
    assert pm.maximums == pytest.approx(readings.max(), rel=1e-5)
    assert pm.minimums == pytest.approx(readings.min(), rel=1e-5)
    assert pm.standard_devs == pytest.approx(readings.std(ddof=1), rel=1e-3)
    with pytest.raises(TypeError):
        pm.mean_current  # noqa: B018  (the driver's deviation, above)
    assert pm.check_errors() == []


def test_pymeasure_methods(pm: PymeasureKeithley2450, emu: Keithley2450Emulator) -> None:
    assert "MODEL 2450" in pm.id
    pm.apply_current(compliance_voltage=2.0)
    assert pm.source_mode == "current" and pm.compliance_voltage == pytest.approx(2.0)
    pm.apply_voltage(voltage_range=20, compliance_current=1e-3)
    assert pm.source_voltage_range == pytest.approx(20.0)
    pm.auto_range_source()
    assert pm.ask(":SOUR:VOLT:RANG:AUTO?") == "1"
    pm.use_rear_terminals()
    assert pm.ask(":ROUT:TERM?") == "REAR"
    pm.use_front_terminals()
    assert pm.ask(":ROUT:TERM?") == "FRON"
    pm.beep(440, 0.1)
    pm.trigger()
    pm.ramp_to_voltage(0.2, steps=3, pause=0)
    assert pm.source_voltage == pytest.approx(0.2)
    pm.source_mode = "current"
    pm.ramp_to_current(1e-6, steps=3, pause=0)
    assert pm.source_current == pytest.approx(1e-6)
    pm.enable_source()
    pm.reset()  # "*RST;:stat:pres;:*CLS;"
    assert pm.source_mode == "voltage"  # a query: the reset has run
    assert not emu.ch.output_on
    assert pm.check_errors() == []


def test_pymeasure_errors_are_reported(pm: PymeasureKeithley2450) -> None:
    pm.write(":SOUR:VOLT 500")  # beyond the 2450's 210 V
    pm.write(":NOT:A:COMMAND")
    assert [int(e[0]) for e in pm.check_errors()] == [-222, -113]


def test_pymeasure_2400_buffer_methods_are_refused(pm: PymeasureKeithley2450) -> None:
    """Driver deviation: pymeasure's ``KeithleyBuffer`` mixin (``config_buffer``,
    ``start_buffer``, ``buffer_data``, ``disable_buffer``) sends the Model 2400 command set
    (``:TRAC:FEED``, ``:STAT:MEAS:ENAB``), which the 2450 does not have in its SCPI set (RM
    appendix D, "Model 2450 in a Model 2400 application": only with ``*LANG SCPI2400``). The
    emulator refuses those headers with -113 and keeps the connection; ``buffer_data``'s
    ``:TRAC:DATA?`` without indices is -109 (RM 6-109: start and end are required)."""
    pm.config_buffer(points=10)
    pm.disable_buffer()
    codes = [int(e[0]) for e in pm.check_errors()]
    assert codes and set(codes) == {-113}
    pm.write(":TRAC:DATA?")
    assert [int(e[0]) for e in pm.check_errors()] == [-109]
    assert "2450" in pm.id


# =========================================================================== QCoDeS
@pytest.fixture
def qc(emu: Keithley2450Emulator) -> Iterator[Any]:
    qcodes_2450 = pytest.importorskip("qcodes.instrument_drivers.Keithley")
    inst = qcodes_2450.Keithley2450(
        f"k2450_{emu.port}", emu.resource, visalib="@py", terminator="\n", timeout=5
    )
    yield inst
    inst.close()


def test_qcodes_opens_and_identifies(
    qc: Any, emu: Keithley2450Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """QCoDeS checks ``*LANG?`` == SCPI before adding any parameter (RM section 6, ``*LANG``)."""
    idn = qc.get_idn()
    assert idn["vendor"] == "KEITHLEY INSTRUMENTS" and idn["model"] == "2450"
    assert "source" in dir(qc) and qc.sense_function() == "current"
    with caplog.at_level(logging.WARNING):
        assert qc._has_correct_language_mode()


QCODES_SOURCE: list[tuple[str, str, Any, Any]] = [
    ("voltage", "range", 2.0, 2.0),
    ("voltage", "range", 200.0, 200.0),
    ("voltage", "auto_range", True, True),
    ("voltage", "limit", 1e-3, 1e-3),
    ("voltage", "delay", 0.01, 0.01),
    ("voltage", "auto_delay", False, False),
    ("voltage", "auto_delay", True, True),
    ("voltage", "read_back_enabled", False, False),
    ("voltage", "read_back_enabled", True, True),
    ("voltage", "voltage", 0.3, 0.3),
    ("current", "range", 1e-4, 1e-4),
    ("current", "auto_range", False, False),
    ("current", "limit", 2.0, 2.0),
    ("current", "delay", 0.5, 0.5),
    ("current", "current", 2e-6, 2e-6),
]


@pytest.mark.parametrize(("func", "name", "value", "expected"), QCODES_SOURCE)
def test_qcodes_source_parameters(qc: Any, func: str, name: str, value: Any, expected: Any) -> None:
    qc.source_function(func)
    param = getattr(qc.source, name)
    param(value)
    got = param()
    if isinstance(expected, float):  # (QCoDeS parses no float from ``delay``: a string)
        assert float(got) == pytest.approx(expected)
    else:
        assert got == expected
    assert errors(qc.visa_handle) == []


QCODES_SENSE: list[tuple[str, str, Any, Any]] = [
    ("current", "range", 1e-6, 1e-6),
    ("current", "auto_range", True, True),
    ("current", "four_wire_measurement", True, True),
    ("current", "four_wire_measurement", False, False),
    ("current", "nplc", 0.1, 0.1),
    ("current", "auto_zero_enabled", False, False),
    ("current", "count", 10, 10),
    ("voltage", "range", 20.0, 20.0),
    ("voltage", "nplc", 5.0, 5.0),
    ("voltage", "auto_zero_enabled", True, True),
    ("resistance", "range", 2e4, 2e4),
    ("resistance", "four_wire_measurement", False, False),
]


@pytest.mark.parametrize(("func", "name", "value", "expected"), QCODES_SENSE)
def test_qcodes_sense_parameters(qc: Any, func: str, name: str, value: Any, expected: Any) -> None:
    qc.sense_function(func)
    param = getattr(qc.sense, name)
    param(value)
    got = param()
    if isinstance(expected, float):
        assert float(got) == pytest.approx(expected)
    else:
        assert got == expected or str(got) == str(expected)
    assert errors(qc.visa_handle) == []


def test_qcodes_user_delays_and_terminals(qc: Any) -> None:
    qc.sense_function("current")
    qc.sense.user_number(3)
    qc.sense.user_delay(0.25)
    assert float(qc.sense.user_delay()) == pytest.approx(0.25)
    qc.source.user_number(2)
    qc.source.user_delay(0.125)
    assert qc.source.user_delay() == pytest.approx(0.125)
    qc.terminals("rear")
    assert qc.ask("ROUT:TERM?") == "REAR"
    qc.terminals("front")
    assert qc.line_frequency() in ("50", "60")
    assert errors(qc.visa_handle) == []


def test_qcodes_measure_keeps_the_chosen_function(qc: Any, emu: Keithley2450Emulator) -> None:
    """``sense.<f>()`` is ``:MEASure? 'defbuffer1'``: the function the user chose, unchanged."""
    qc.source_function("voltage")
    qc.source.limit(1e-3)
    qc.source.voltage(0.5)
    qc.sense_function("voltage")
    qc.output_enabled(True)
    v = qc.sense.voltage()
    assert qc.sense_function() == "voltage"
    qc.sense_function("current")
    i = qc.sense.current()
    qc.sense_function("resistance")
    r = qc.sense.resistance()
    qc.output_enabled(False)
    g = emu.wiring.conductance("A", 0, 0)
    assert v == pytest.approx(0.5, rel=1e-3)
    assert i == pytest.approx(g * 0.5, rel=0.02)
    assert r == pytest.approx(1 / g, rel=0.02)
    assert errors(qc.visa_handle) == []


@pytest.mark.parametrize("dual", ["OFF", "ON"])
def test_qcodes_sweep(qc: Any, dual: str) -> None:
    qc.source_function("voltage")
    qc.sense_function("current")
    qc.source.limit(1e-3)
    qc.source.sweep_setup(0.1, 0.5, 5, delay=-1, dual=dual)
    axis = qc.source.sweep_axis()
    data = qc.sense.sweep()
    assert np.allclose(axis, [0.1, 0.2, 0.3, 0.4, 0.5])
    assert len(data) == 5 and np.all(np.diff(data) > 0)
    assert errors(qc.visa_handle) == []


def test_qcodes_buffers(qc: Any, emu: Keithley2450Emulator) -> None:
    """``buffer(name, size)`` sends ``:TRACe:MAKE 'name', size, `` (an empty style: the default
    STANdard, RM 6-114); elements, last reading, data, clear, delete."""
    qc.source_function("voltage")
    qc.source.voltage(0.5)
    qc.output_enabled(True)
    with qc.buffer("userbuf", 100) as buf:
        assert buf.size() == 100
        buf.size(300)
        assert buf.size() == 300
        qc.sense.count(4)
        buf.trigger_start()
        assert buf.number_of_readings() == 4
        buf.elements(["measurement", "source_value", "relative_time", "measurement_unit"])
        last = buf.get_last_reading().split(",")
        assert float(last[1]) == pytest.approx(0.5) and last[3] == "Amp DC"
        data = buf.get_data(1, 4)
        assert len(data) == 16
        assert len(buf.get_data(1, 4, readings_only=True)) == 4
        buf.clear_buffer()
        assert buf.number_of_readings() == 0
    # leaving the block writes :TRACe:DELete (no reply): a query after it has run
    assert qc.ask(":TRACe:ACTual? 'defbuffer1'") == "0"
    assert "userbuf" not in emu.buffers
    qc.output_enabled(False)
    assert errors(qc.visa_handle) == []


def test_qcodes_reset_abort_and_status(qc: Any, emu: Keithley2450Emulator) -> None:
    qc.output_enabled(True)
    qc.reset()
    assert qc.output_enabled() is False
    qc.abort()
    qc.initiate()
    qc.wait()
    qc.write(":BOGUS")
    qc.clear_event_register()  # :STATus:CLEar clears the event registers and queue
    assert int(qc.ask("*ESR?")) == 0
    qc.clear_event_log()
    assert errors(qc.visa_handle) == []


# =========================================================================== the manual's examples
def test_rm_6_78_source_list_sweep(raw: Any) -> None:
    """RM 6-78, :SOURce[1]:LIST:<function>, example (verbatim)."""
    for line in (
        'SENS:FUNC "CURR"',
        "SENS:CURR:RANG:AUTO ON",
        "SENS:CURR:RSEN OFF",
        "SOUR:FUNC VOLT",
        "SOUR:VOLT:RANG 20",
        "SOUR:VOLT:ILIM 1",
        "SOUR:LIST:VOLT 1, 5, 1, 5, 1, 5",
        "SOUR:SWE:VOLT:LIST 1, 0.2",
        "INIT",
        "*WAI",
    ):
        raw.write(line)
    values = floats(raw.query('TRAC:DATA? 1, 6, "defbuffer1", SOUR, READ'))
    sources = values[0::2]
    assert sources == pytest.approx([1, 5, 1, 5, 1, 5], rel=1e-3)
    assert errors(raw) == []


def test_rm_6_115_trace_points(raw: Any) -> None:
    """RM 6-115, :TRACe:POINts, example (verbatim); default buffers store 10000 initially."""
    raw.write('TRACe:MAKE "testData", 100')
    raw.write('TRACe:POINts 300, "testData"')
    assert raw.query('TRACe:POINts? "testData"') == "300"
    assert raw.query("TRACe:POINts?") == "10000"
    assert errors(raw) == []


def test_rm_6_119_statistics(raw: Any) -> None:
    """RM 6-119 to 6-123, :TRACe:STATistics:AVERage?/MAXimum?/MINimum?/PK2Pk?/STDDev?, the
    examples' queries (verbatim), on readings made first."""
    raw.write('TRAC:MAKE "testData", 100')
    raw.write(":SOUR:VOLT 0.5;:OUTP ON;:SENS:COUN 5")
    raw.query(':READ? "testData"')
    raw.write(":OUTP OFF")
    data = np.array(floats(raw.query('TRAC:DATA? 1, 5, "testData"')))
    assert float(raw.query('TRACe:STAT:AVERage? "testData"')) == pytest.approx(data.mean(), rel=1e-5)
    assert float(raw.query('TRACe:STAT:MAXimum? "testData"')) == pytest.approx(data.max(), rel=1e-5)
    assert float(raw.query('TRAC:STAT:MINimum? "testData"')) == pytest.approx(data.min(), rel=1e-5)
    assert float(raw.query('TRAC:STAT:PK2Pk? "testData"')) == pytest.approx(np.ptp(data), rel=1e-3, abs=1e-15)
    assert float(raw.query('TRAC:STAT:STDDev? "testData"')) == pytest.approx(data.std(ddof=1), rel=1e-3)
    raw.write('TRACe:STATistics:CLEar "testData"')
    assert float(raw.query('TRAC:STAT:AVER? "testData"')) == pytest.approx(9.91e37)
    assert raw.query('TRAC:ACT? "testData"') == "5"  # the readings stay
    assert errors(raw) == []


def test_rm_6_81_linear_sweep_with_defaults(raw: Any) -> None:
    """RM 6-81, :SOURce[1]:SWEep:<function>:LINear: delay -1 (autodelay, the default), count,
    range type, fail-abort, dual and buffer, all given."""
    raw.write('TRAC:MAKE "sweep", 100')
    raw.write('SOUR:SWE:VOLT:LIN 0, 1, 3, -1, 2, BEST, ON, ON, "sweep"')
    raw.write("INIT")
    raw.write("*WAI")
    assert raw.query('TRAC:ACT? "sweep"') == "12"  # 3 up, 3 down, twice
    src = floats(raw.query('TRAC:DATA? 1, 12, "sweep", SOUR'))
    assert src == pytest.approx([0, 0.5, 1, 1, 0.5, 0] * 2, abs=1e-6)
    assert float(raw.query("SOUR:VOLT:RANG?")) == 2.0  # BEST: the range that holds 1 V
    assert errors(raw) == []


def test_rm_6_83_linear_step_and_log_sweeps(raw: Any) -> None:
    """RM 6-83 :SOURce[1]:SWEep:<function>:LINear:STEP and :SOURce[1]:SWEep:<function>:LOG."""
    raw.write("SOUR:SWE:VOLT:LIN:STEP -1, 1, 0.5")
    raw.write("INIT;*WAI")
    assert floats(raw.query('TRAC:DATA? 1, 5, "defbuffer1", SOUR')) == pytest.approx(
        [-1, -0.5, 0, 0.5, 1], abs=1e-6
    )
    raw.write("SOUR:SWE:VOLT:LOG 0.01, 1, 3, 0.001")
    raw.write("INIT;*WAI")
    assert floats(raw.query('TRAC:DATA? 1, 3, "defbuffer1", SOUR')) == pytest.approx([0.01, 0.1, 1], rel=1e-5)
    raw.write(":SOUR:SWE:CURR:LIN 1e-7, 5e-7, 5")
    raw.write("INIT;*WAI")
    assert raw.query(":SOUR:FUNC?") == "CURR"
    assert floats(raw.query('TRAC:DATA? 1, 5, "defbuffer1", SOUR')) == pytest.approx(
        np.linspace(1e-7, 5e-7, 5), rel=1e-2
    )
    assert errors(raw) == []


def test_rm_measure_current_into_buffer(raw: Any) -> None:
    """The :MEASure:<function>? example of the 2470 Reference Manual (2470-901-01 Rev. A, 12-133;
    same command set, the 2450's own :MEASure entry was not checked): a buffer, 5 readings, the
    fifth with relative time and source value (verbatim but the USB ``TRACe:SAVE`` lines)."""
    raw.write('TRACe:MAKE "testData", 100')
    raw.write("SENSe:COUNt 5")
    raw.write(":SOUR:VOLT 0.5;:OUTP ON")
    reply = raw.query('MEASure:CURRent:DC? "testData", READ, REL, SOUR')
    raw.write(":OUTP OFF")
    read, rel, src = floats(reply)
    # (time stamps come from the bench clock, on which a reading itself takes no time)
    assert rel >= 0 and src == pytest.approx(0.5, rel=1e-3)
    assert raw.query('TRAC:ACT? "testData"') == "5"
    assert errors(raw) == []


def test_rm_measure_keeps_the_function(raw: Any, emu: Keithley2450Emulator) -> None:
    """RM section 6, :MEASure:<function>?: :MEASure? with no function measures the present function and leaves it."""
    raw.write('SENS:FUNC "VOLT"')
    raw.write(":SOUR:VOLT 0.5;:OUTP ON")
    v = float(raw.query(":MEASure? 'defbuffer1'"))
    assert v == pytest.approx(0.5, rel=1e-3)
    assert raw.query(":SENS:FUNC?") == '"VOLT:DC"'
    raw.write(":OUTP OFF")
    assert errors(raw) == []


def test_rm_3_27_remote_buffer_access(raw: Any) -> None:
    """RM 3-29 "Accessing the data in buffers": five readings with measurement, source value
    and relative time from a user buffer; then :TRACe:ACTual:STARt?/END?."""
    raw.write('TRAC:MAKE "testData", 100')
    raw.write('SENS:COUN 5;:OUTP ON;:READ? "testData"')
    raw.read()
    raw.write(":OUTP OFF")
    values = floats(raw.query('TRAC:DATA? 1, 5, "testData", READ, SOUR, REL'))
    assert len(values) == 15
    assert (raw.query('TRAC:ACT:STAR? "testData"'), raw.query('TRAC:ACT:END? "testData"')) == ("1", "5")
    assert errors(raw) == []


def test_rm_6_114_make_existing_name_is_refused(raw: Any) -> None:
    """RM 6-114 :TRACe:MAKE: a size under 10 is refused; an existing name generates event 1115
    (the code of the 2461/2470 manuals' :TRACe:MAKE entries, 2461-901-01 A 6-165)."""
    raw.write('TRACe:MAKE "mybuf", 100')
    raw.write('TRACe:MAKE "mybuf", 100')
    raw.write('TRACe:MAKE "tiny", 5')
    assert errors(raw) == [1115, -222]
    raw.write('TRACe:MAKE "full", 200, FULL')
    raw.write('TRACe:FILL:MODE CONT, "full"')
    assert raw.query('TRACe:FILL:MODE? "full"') == "CONT"
    assert errors(raw) == []


def test_rm_simple_loop_trigger_model(raw: Any) -> None:
    """RM section 6, :TRIGger:LOAD "SimpleLoop", <count>, <delay>, "<buffer>"."""
    raw.write('TRAC:MAKE "loop", 100')
    raw.write(':OUTP ON;:TRIG:LOAD "SimpleLoop", 7, 0.001, "loop"')
    raw.write(":INIT;*WAI")
    raw.write(":OUTP OFF")
    assert raw.query('TRAC:ACT? "loop"') == "7"
    assert raw.query(":TRIG:STAT?").startswith("IDLE;IDLE")
    assert errors(raw) == []


def test_rm_source_configuration_list(raw: Any) -> None:
    """RM section 6, :SOURce[1]:CONFiguration:LIST:CREate/STORe/RECall/SIZE?/DELete."""
    raw.write('SOUR:CONF:LIST:CRE "MySourceList"')
    raw.write("SOUR:VOLT 1")
    raw.write('SOUR:CONF:LIST:STOR "MySourceList"')
    raw.write("SOUR:VOLT 2")
    raw.write('SOUR:CONF:LIST:STOR "MySourceList"')
    assert raw.query('SOUR:CONF:LIST:SIZE? "MySourceList"') == "2"
    raw.write('SOUR:CONF:LIST:REC "MySourceList", 1')
    assert float(raw.query("SOUR:VOLT?")) == 1.0
    raw.write('SOUR:CONF:LIST:DEL "MySourceList", 2')
    assert raw.query('SOUR:CONF:LIST:SIZE? "MySourceList"') == "1"
    assert errors(raw) == []


def test_rm_trigger_model_blocks(raw: Any) -> None:
    """RM section 6, :TRIGger:BLOCk commands: a trigger model built block by block: clear, output on, delay, measure, branch on counter, output off."""
    for line in (
        ':TRIG:LOAD "Empty"',
        ':TRIG:BLOC:BUFF:CLE 1, "defbuffer1"',
        ":TRIG:BLOC:SOUR:STAT 2, ON",
        ":TRIG:BLOC:DEL:CONS 3, 0.01",
        ':TRIG:BLOC:MEAS 4, "defbuffer1", 2',
        ":TRIG:BLOC:BRAN:COUN 5, 3, 3",
        ":TRIG:BLOC:SOUR:STAT 6, OFF",
        ":INIT",
        "*WAI",
    ):
        raw.write(line)
    assert raw.query(":TRAC:ACT?") == "6"
    assert raw.query(":OUTP?") == "0"
    assert errors(raw) == []


def test_rm_binary_data_format(raw: Any) -> None:
    """RM section 6, :FORMat[:DATA] REAL and :FORMat:BORDer (default SWAPped as in the 2461
    manual, 2461-901-01 A, 6-45): the readings as an IEEE 488.2
    definite-length block of doubles, little-endian by default (SWAPped)."""
    raw.write(":SOUR:SWE:VOLT:LIN 0.1, 0.5, 5, 0")
    raw.write(":INIT;*WAI")
    ascii_ = floats(raw.query(':TRAC:DATA? 1, 5, "defbuffer1", SOUR'))
    raw.write(":FORM:DATA REAL")
    assert raw.query(":FORM:DATA?") == "REAL" and raw.query(":FORM:BORD?") == "SWAP"
    values = raw.query_binary_values(
        ':TRAC:DATA? 1, 5, "defbuffer1", SOUR', datatype="d", is_big_endian=False
    )
    assert list(values) == pytest.approx(ascii_, rel=1e-6)
    raw.write(":FORM:DATA SREAL;:FORM:BORD NORM")
    values = raw.query_binary_values(':TRAC:DATA? 1, 5, "defbuffer1", SOUR', datatype="f", is_big_endian=True)
    assert list(values) == pytest.approx(ascii_, rel=1e-6)
    raw.write(':TRAC:DATA? 1, 5, "defbuffer1", UNIT')  # not a binary element
    raw.write(":FORM:DATA ASC")
    assert errors(raw) == [-224]
    assert struct.calcsize("<d") == 8


def test_rm_settings_read_back_and_syntax_variants(raw: Any) -> None:
    """Every setting reads back what was set, with the manual's syntax variants (optional roots
    ``[:SENSe[1]]``, ``:SOURce[1]``, short/long forms, any case)."""
    raw.write(":SENS:CURR:RSEN ON;:SENS:CURR:AVER ON;:SENS:CURR:AZER OFF;:TRAC:POIN 10")
    assert raw.query(":SENS:CURR:RSEN?;:SENS:CURR:AVER?;:SENS:CURR:AZER?;:TRAC:POIN?") == "1;1;0;10"
    raw.write(":sense1:current:dc:nplcycles 0.5")
    assert float(raw.query("CURR:NPLC?")) == 0.5
    raw.write(":SOURce1:VOLTage:LEVel:IMMediate:AMPLitude 1.25")
    assert float(raw.query(":sour:volt?")) == 1.25
    raw.write(":SOUR:VOLT:PROT PROT20;:SENS:RES:OCOM ON;:SENS:CURR:RANG:AUTO:LLIM 1e-6")
    assert raw.query(":SOUR:VOLT:PROT?;:SENS:RES:OCOM?") == "PROT20;ON"
    assert float(raw.query(":SENS:CURR:RANG:AUTO:LLIM?")) == 1e-6
    raw.write(":FORM:ASC:PREC 4")
    assert raw.query(":FORM:ASC:PREC?") == "4"
    raw.write(":SOUR2:VOLT 1")  # the 2450 has one channel
    raw.write(":SENS:CURR:RANG 5")  # beyond the 2450's 1 A range
    raw.write(":SOUR:VOLT:ILIM 2")  # beyond 1.05 A
    raw.write(":SENS:CURR:NPLC 20")
    assert errors(raw) == [-113, -222, -222, -222]
    assert raw.query("*LANG?") == "SCPI"
