"""Conformance of the Keithley 2600B emulator: pymeasure's and QCoDeS's drivers, unmodified, and
the Reference Manual's example programs.

Manual: Keithley Series 2600B System SourceMeter Instrument Reference Manual 2600BS-901-01
Rev. D (section 7 "TSP command reference"; command entries are cited by name).

Each client check is one test case (``pytest -k pymeasure`` / ``-k qcodes`` / ``-k manual``
counts them). Where a third-party driver disagrees with the manual the check says so and tests
the manual's behaviour.
"""

from __future__ import annotations

import struct
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import pyvisa

from hil.types import ArraySpec
from sim_backend.emulators.keithley2600 import Keithley2600Emulator
from sim_backend.preset import load_preset
from sim_backend.twin import TwinBackend

VISA = {"timeout": 3000, "visa_library": "@py", "read_termination": "\n", "write_termination": "\n"}
MANUAL = "Keithley Series 2600B Reference Manual 2600BS-901-01 Rev. D"


def make_twin() -> TwinBackend:
    spec = ArraySpec("A", 4, 4, ArraySpec.area_from_diameter(1e-6))
    return TwinBackend([spec], load_preset("mo_tiox_choi2021"), seed=3)


@pytest.fixture
def emu() -> Iterator[Keithley2600Emulator]:
    with Keithley2600Emulator(make_twin(), latency_s=0) as e:
        yield e


def errors(emu: Keithley2600Emulator) -> list[int]:
    codes = []
    while True:
        code = int(emu.errorqueue.next()[0])
        if code == 0:
            return codes
        codes.append(code)


# =========================================================================== pymeasure

pymeasure_k2600 = pytest.importorskip("pymeasure.instruments.keithley.keithley2600")


def _pm(emu: Keithley2600Emulator) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return pymeasure_k2600.Keithley2600(emu.resource, **VISA)


def _pm_channel_controls(smu: Any, emu: Keithley2600Emulator) -> None:
    for ch in (smu.ChA, smu.ChB):
        ch.source_output = "ON"
        assert ch.source_output == "ON"
        ch.source_output = "OFF"
        assert ch.source_output == "OFF"


def _pm_source_mode(smu: Any, emu: Keithley2600Emulator) -> None:
    for mode in ("current", "voltage"):
        smu.ChA.source_mode = mode
        assert smu.ChA.source_mode == mode


def _pm_nplc(smu: Any, emu: Keithley2600Emulator) -> None:
    # pymeasure 0.16 is wrong here: measure_nplc has map_values=True with the range [0.001, 25],
    # so it sends the *index* of the value in that list (0.1 raises ValueError, 25 sends
    # "measure.nplc=1") and reads the reply back as an index. The manual ("smuX.measure.nplc":
    # 0.001 to 25) is tested with the same commands the driver's other methods send.
    with pytest.raises(ValueError):
        smu.ChA.measure_nplc = 0.1
    smu.ChA.measure_nplc = 25
    assert smu.ask("print(smua.measure.nplc)") == "1.000000e+00"  # the index, not 25
    smu.ChA.write("measure.nplc=0.100000")
    assert float(smu.ask("print(smua.measure.nplc)")) == pytest.approx(0.1)
    smu.ChA.write("measure.nplc=30.000000")  # beyond 25: refused, error 1101
    assert smu.next_error[0] == 1101
    assert float(smu.ask("print(smua.measure.nplc)")) == pytest.approx(0.1)


def _pm_current(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.apply_voltage(compliance_current=1e-3)
    smu.ChA.source_voltage = 0.5
    smu.ChA.source_output = "ON"
    i = smu.ChA.current
    g = float(emu.twin.model("A").conductance(emu.twin.now(), np.array([0]))[0])
    assert i == pytest.approx(g * 0.5, rel=0.02)


def _pm_source_current(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.source_current = 1e-6
    assert smu.ChA.source_current == pytest.approx(1e-6)


def _pm_compliance_current(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.compliance_current = 2e-3
    assert smu.ChA.compliance_current == pytest.approx(2e-3)


def _pm_source_current_range(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.source_current_range = 1e-3
    assert smu.ChA.source_current_range == pytest.approx(1e-3)
    # "smuX.source.rangei": the instrument picks the range that holds the value
    smu.ChA.source_current_range = 5e-3
    assert smu.ChA.source_current_range == pytest.approx(10e-3)


def _pm_current_range(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.current_range = 1e-6
    assert smu.ChA.current_range == pytest.approx(1e-6)
    assert smu.ask("print(smua.measure.autorangei)") == "0.000000e+00"  # setting a range turns it off


def _pm_voltage(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.apply_voltage(compliance_current=1e-3)
    smu.ChA.source_voltage = 0.3
    smu.ChA.source_output = "ON"
    assert smu.ChA.voltage == pytest.approx(0.3, rel=0.01)


def _pm_source_voltage(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChB.source_voltage = 1.25
    assert smu.ChB.source_voltage == pytest.approx(1.25)


def _pm_compliance_voltage(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.compliance_voltage = 5
    assert smu.ChA.compliance_voltage == pytest.approx(5)


def _pm_source_voltage_range(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.source_voltage_range = 2
    assert smu.ChA.source_voltage_range == pytest.approx(2)
    smu.ChA.source_voltage_range = 5  # 2636B ranges 0.2/2/20/200 V: 5 V selects 20 V
    assert smu.ChA.source_voltage_range == pytest.approx(20)


def _pm_voltage_range(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.voltage_range = 200
    assert smu.ChA.voltage_range == pytest.approx(200)


def _pm_resistance(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.apply_voltage(compliance_current=1e-3)
    smu.ChA.source_voltage = 0.5
    smu.ChA.source_output = "ON"
    r = smu.ChA.resistance
    assert r == pytest.approx(0.5 / smu.ChA.current, rel=0.02)


def _pm_wires_mode(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.wires_mode = "4"
    assert smu.ChA.wires_mode == "4"
    smu.ChA.wires_mode = "2"
    assert smu.ChA.wires_mode == "2"


def _pm_measure_voltage(smu: Any, emu: Keithley2600Emulator) -> None:
    # pymeasure's measure_voltage() "configures" by sending measure.v(): on the instrument that
    # takes a reading ("smuX.measure.Y()"); harmless, and no error
    smu.ChA.measure_voltage(nplc=0.5, voltage=2, auto_range=False)
    assert float(smu.ask("print(smua.measure.nplc)")) == pytest.approx(0.5)  # (see _pm_nplc)
    assert smu.ChA.voltage_range == pytest.approx(2)


def _pm_measure_current(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.measure_current(nplc=0.2)
    assert float(smu.ask("print(smua.measure.nplc)")) == pytest.approx(0.2)
    assert smu.ask("print(smua.measure.autorangei)") == "1.000000e+00"
    smu.ChA.measure_current(current=1.05e-4, auto_range=False)  # the 1 mA range holds 105 uA
    assert smu.ChA.current_range == pytest.approx(1e-3)


def _pm_auto_range_source(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.source_voltage_range = 2
    smu.ChA.auto_range_source()
    assert smu.ask("print(smua.source.autorangev)") == "1.000000e+00"


def _pm_apply_current(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.apply_current(current_range=1e-4, compliance_voltage=2)
    assert smu.ChA.source_mode == "current"
    assert smu.ChA.source_current_range == pytest.approx(1e-4)
    assert smu.ChA.compliance_voltage == pytest.approx(2)


def _pm_apply_voltage(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChB.apply_voltage(voltage_range=20, compliance_current=1e-2)
    assert smu.ChB.source_mode == "voltage"
    assert smu.ChB.source_voltage_range == pytest.approx(20)
    assert smu.ChB.compliance_current == pytest.approx(1e-2)


def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    # pymeasure's ramps wait with time.sleep between steps: the driver's own module gets a
    # time without waits (the bench clock needs none)
    monkeypatch.setattr(pymeasure_k2600, "time", types.SimpleNamespace(sleep=lambda s: None))


def _pm_ramp_to_voltage(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.ramp_to_voltage(1.0, steps=5, pause=0)
    assert smu.ChA.source_voltage == pytest.approx(1.0)


def _pm_ramp_to_current(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.source_mode = "current"
    smu.ChA.ramp_to_current(1e-5, steps=5, pause=0)
    assert smu.ChA.source_current == pytest.approx(1e-5)


def _pm_shutdown(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.ChA.source_voltage = 0.5
    smu.ChA.source_output = "ON"
    smu.ChA.shutdown()
    assert smu.ChA.source_output == "OFF"
    assert smu.ChA.source_voltage == pytest.approx(0)
    assert emu.outputs() == {"a": False, "b": False}


def _pm_errors(smu: Any, emu: Keithley2600Emulator) -> None:
    assert smu.check_errors() == []
    smu.write("smua.source.bogus = 1")
    code, message = smu.next_error
    assert code == -286 and "bogus" in message
    assert smu.next_error[0] == 0


def _pm_error_deprecated(smu: Any, emu: Keithley2600Emulator) -> None:
    smu.write("x = = 1")
    with pytest.warns(FutureWarning):
        assert smu.error[0] == -285


def _pm_out_of_range(smu: Any, emu: Keithley2600Emulator) -> None:
    # pymeasure's validators are the 2636B's (+-200 V) whatever the model: the instrument's own
    # check refuses what its ranges do not hold ("smuX.source.levelv"): error 1101, level kept
    smu.ChA.source_voltage = 1.0
    smu.write("smua.source.levelv = 300")
    assert smu.next_error[0] == 1101
    assert smu.ChA.source_voltage == pytest.approx(1.0)


def _pm_reset_and_id(smu: Any, emu: Keithley2600Emulator) -> None:
    assert smu.id.startswith("Keithley Instruments Inc., Model 2636B")
    smu.ChA.source_voltage = 1.0
    smu.reset()
    assert smu.ChA.source_voltage == pytest.approx(0)
    smu.clear()


PYMEASURE_CHECKS: dict[str, Callable[[Any, Keithley2600Emulator], None]] = {
    name[4:]: fn for name, fn in sorted(globals().items()) if name.startswith("_pm_") and callable(fn)
}


@pytest.mark.parametrize("check", sorted(PYMEASURE_CHECKS))
def test_pymeasure_keithley2600(
    check: str, emu: Keithley2600Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pymeasure 0.16 ``Keithley2600``, unmodified: every public control and measurement."""
    _no_sleep(monkeypatch)
    smu = _pm(emu)
    try:
        PYMEASURE_CHECKS[check](smu, emu)
        assert smu.check_errors() == []
    finally:
        smu.adapter.close()


def test_pymeasure_on_a_single_channel_2601b() -> None:
    """A 2601B has only smua: pymeasure's ``ChB`` reaches a missing table, a TSP error
    (the model's channels, Reference Manual section 1)."""
    with Keithley2600Emulator(make_twin(), latency_s=0, model="2601B") as emu:
        smu = _pm(emu)
        smu.ChA.source_voltage = 40.0  # the 2601B's top range is 40 V
        smu.ChB.source_voltage = 1.0
        assert smu.next_error[0] == -286
        smu.ChA.source_voltage = 41.0  # beyond 40 V + 1 %: refused
        assert smu.next_error[0] == 1101
        assert smu.ChA.source_voltage == pytest.approx(40.0)
        assert smu.ask("print(localnode.model)") == "2601B"
        smu.adapter.close()


# =========================================================================== QCoDeS

qcodes_k2636b = pytest.importorskip("qcodes.instrument_drivers.Keithley")


@pytest.fixture(scope="module")
def qc() -> Iterator[tuple[Any, Keithley2600Emulator]]:
    from qcodes.instrument_drivers.Keithley import Keithley2636B

    with Keithley2600Emulator(make_twin(), latency_s=0) as e:
        keith = Keithley2636B("k2636b_conformance", e.resource, visalib="@py", terminator="\n", timeout=5)
        try:
            yield keith, e
        finally:
            keith.close()


def _qc_idn(k: Any, emu: Keithley2600Emulator) -> None:
    idn = k.get_idn()
    assert idn["vendor"] == "Keithley Instruments Inc."
    assert idn["model"] == "2636B"
    assert k.model == "2636B"


def _qc_volt(k: Any, emu: Keithley2600Emulator) -> None:
    k.smua.mode("voltage")
    k.smua.limiti(1e-3)
    k.smua.volt(0.4)
    k.smua.output("on")
    assert k.smua.volt() == pytest.approx(0.4, rel=0.01)
    assert k.smua.volt.measurement_status == "No error occured."


def _qc_curr(k: Any, emu: Keithley2600Emulator) -> None:
    k.smua.mode("voltage")
    k.smua.limiti(1e-3)
    k.smua.volt(0.5)
    k.smua.output("on")
    i = k.smua.curr()
    assert 0 < i < 1e-3
    assert k.smua.curr.measurement_status == "No error occured."


def _qc_curr_compliance(k: Any, emu: Keithley2600Emulator) -> None:
    k.smua.mode("voltage")
    k.smua.limiti(1e-9)
    k.smua.volt(2)
    k.smua.output("on")
    assert k.smua.curr() == pytest.approx(1e-9)
    assert k.smua.curr.measurement_status == "Reached current compliance limit."


def _qc_volt_compliance(k: Any, emu: Keithley2600Emulator) -> None:
    k.smua.mode("current")
    k.smua.limitv(0.1)
    k.smua.curr(1e-3)
    k.smua.output("on")
    assert k.smua.volt() == pytest.approx(0.1)
    assert k.smua.volt.measurement_status == "Reached voltage compliance limit."


def _qc_res(k: Any, emu: Keithley2600Emulator) -> None:
    k.smua.mode("voltage")
    k.smua.volt(0.5)
    k.smua.output("on")
    assert k.smua.res() == pytest.approx(0.5 / k.smua.curr(), rel=0.02)


def _qc_mode_output(k: Any, emu: Keithley2600Emulator) -> None:
    for ch in (k.smua, k.smub):
        ch.mode("current")
        assert ch.mode() == "current"
        ch.mode("voltage")
        assert ch.mode() == "voltage"
        ch.output("on")
        assert ch.output() is True
        ch.output("off")
        assert ch.output() is False


def _qc_linefreq_nplc(k: Any, emu: Keithley2600Emulator) -> None:
    assert k.smua.linefreq() == 50
    k.smua.nplc(0.05)
    assert k.smua.nplc() == pytest.approx(0.05)


def _qc_four_wire(k: Any, emu: Keithley2600Emulator) -> None:
    k.smub.four_wire_measurement(True)
    assert k.smub.four_wire_measurement() is True
    k.smub.four_wire_measurement(False)
    assert k.smub.four_wire_measurement() is False


def _qc_ranges_v(k: Any, emu: Keithley2600Emulator) -> None:
    k.smua.sourcerange_v(2)
    assert k.smua.sourcerange_v() == 2
    assert k.smua.source_autorange_v_enabled() is False
    k.smua.source_autorange_v_enabled(True)
    assert k.smua.source_autorange_v_enabled() is True
    k.smua.measurerange_v(20)
    assert k.smua.measurerange_v() == 20
    assert k.smua.measure_autorange_v_enabled() is False
    k.smua.measure_autorange_v_enabled(True)
    assert k.smua.measure_autorange_v_enabled() is True


def _qc_ranges_i(k: Any, emu: Keithley2600Emulator) -> None:
    k.smua.sourcerange_i(1e-6)
    assert k.smua.sourcerange_i() == pytest.approx(1e-6)
    assert k.smua.source_autorange_i_enabled() is False
    k.smua.source_autorange_i_enabled(True)
    k.smua.measurerange_i(1e-9)
    assert k.smua.measurerange_i() == pytest.approx(1e-9)
    assert k.smua.measure_autorange_i_enabled() is False
    k.smua.measure_autorange_i_enabled(True)
    assert k.smua.measure_autorange_i_enabled() is True


def _qc_range_10mA(k: Any, emu: Keithley2600Emulator) -> None:
    # QCoDeS 0.58 lists the 2636B's current ranges with 10e-6 twice and no 10e-3 (a typo), so
    # sourcerange_i(10e-3) is refused by its validator; the 2636B has a 10 mA range
    # (Reference Manual section 1, "smuX.source.rangei"): the manual's behaviour, sent raw
    with pytest.raises(ValueError):
        k.smua.sourcerange_i(10e-3)
    k.write("smua.source.rangei = 10e-3")
    assert k.smua.sourcerange_i() == pytest.approx(10e-3)


def _qc_limits(k: Any, emu: Keithley2600Emulator) -> None:
    k.smua.limitv(12.5)
    assert k.smua.limitv() == pytest.approx(12.5)
    k.smua.limiti(2e-4)
    assert k.smua.limiti() == pytest.approx(2e-4)


def _qc_fastsweep_iv(k: Any, emu: Keithley2600Emulator) -> None:
    from qcodes.dataset import LinSweep

    k.smua.nplc(0.01)
    k.smua.limiti(1e-3)
    k.smua.setup_fastsweep(LinSweep(k.smua.volt, 0.1, 0.5, 5))
    data = k.smua.fastsweep()
    assert data.shape == (5,)
    assert np.all(np.diff(data) > 0)
    assert np.all(data > 0)


def _qc_fastsweep_vi(k: Any, emu: Keithley2600Emulator) -> None:
    from qcodes.dataset import LinSweep

    k.smua.nplc(0.01)
    k.smua.limitv(2)
    k.smua.setup_fastsweep(LinSweep(k.smua.curr, 1e-7, 5e-7, 3), mode="VI")
    data = k.smua.fastsweep()
    assert data.shape == (3,) and np.all(np.diff(data) > 0)


def _qc_fastsweep_2d(k: Any, emu: Keithley2600Emulator) -> None:
    from qcodes.dataset import LinSweep

    k.smua.nplc(0.01)
    k.smua.setup_fastsweep(LinSweep(k.smua.volt, 0.1, 0.3, 3), LinSweep(k.smub.volt, 0, 0.2, 2))
    data = k.smua.fastsweep()
    assert data.shape == (2, 3)


def _qc_timetrace(k: Any, emu: Keithley2600Emulator) -> None:
    k.smua.nplc(0.01)
    k.smua.volt(0.5)
    k.smua.output("on")
    k.smua.timetrace_npts(20)
    k.smua.timetrace_dt(1e-3)
    trace = k.smua.timetrace()
    assert trace.shape == (20,)
    assert np.all(trace > 0)
    np.testing.assert_allclose(k.smua.time_axis(), np.arange(20) * 1e-3)
    # measure.count and measure.interval were restored by the script
    assert k.ask("smua.measure.count") == "1.000000e+00"
    k.smua.timetrace_mode("voltage")
    assert k.smua.timetrace() == pytest.approx(np.full(20, 0.5), rel=0.01)
    k.smua.timetrace_mode("current")


def _qc_channel_reset(k: Any, emu: Keithley2600Emulator) -> None:
    k.smua.volt(1.0)
    k.smua.reset()
    assert k.ask("smua.source.levelv") == "0.000000e+00"


def _qc_display(k: Any, emu: Keithley2600Emulator) -> None:
    k.display_settext("rram-hil")
    k.display_clear()
    k.display_normal()
    k.exit_key()


def _qc_snapshot(k: Any, emu: Keithley2600Emulator) -> None:
    snap = k.snapshot(update=True)
    assert snap["submodules"]["smua"]["parameters"]["limiti"]["value"] == pytest.approx(0.1)


def _qc_errors(k: Any, emu: Keithley2600Emulator) -> None:
    k.write("smua.source.limiti = 20")  # beyond the 10 A pulse ceiling
    assert k.ask("errorqueue.count") == "1.000000e+00"
    assert k.ask("errorqueue.next()").startswith("1.101000e+03\tParameter too big")


QCODES_CHECKS: dict[str, Callable[[Any, Keithley2600Emulator], None]] = {
    name[4:]: fn for name, fn in sorted(globals().items()) if name.startswith("_qc_") and callable(fn)
}


@pytest.mark.parametrize("check", sorted(QCODES_CHECKS))
def test_qcodes_keithley2636b(check: str, qc: tuple[Any, Keithley2600Emulator]) -> None:
    """QCoDeS 0.58 ``Keithley2636B`` through pyvisa-py, unmodified (``doFastSweep`` is gone
    from QCoDeS 0.58: ``setup_fastsweep``/``fastsweep`` replace it)."""
    k, emu = qc
    k.reset()
    QCODES_CHECKS[check](k, emu)
    assert k.ask("errorqueue.count") == "0.000000e+00"


# =========================================================================== the manual's examples


class Raw:
    """Raw pyvisa, as a lab user sends the manual's lines."""

    def __init__(self, emu: Keithley2600Emulator) -> None:
        self.rm = pyvisa.ResourceManager("@py")
        self.inst: Any = self.rm.open_resource(emu.resource, read_termination="\n", write_termination="\n")
        self.inst.timeout = 3000

    def write(self, text: str) -> None:
        for line in text.strip().splitlines():
            self.inst.write(line.strip())

    def query(self, text: str) -> str:
        return str(self.inst.query(text))

    def read_raw(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            data += self.inst.read_raw()
        return data

    def errors(self) -> list[int]:
        """Every queued error code, read over the wire (so every earlier write has run)."""
        codes = []
        while True:
            code = int(float(self.query("print(errorqueue.next())").split("\t")[0]))
            if code == 0:
                return codes
            codes.append(code)

    def close(self) -> None:
        self.inst.close()
        self.rm.close()


@pytest.fixture
def raw(emu: Keithley2600Emulator) -> Iterator[Raw]:
    r = Raw(emu)
    yield r
    r.close()


def test_manual_format_asciiprecision(raw: Raw, emu: Keithley2600Emulator) -> None:
    """2600B Reference Manual 2600BS-901-01 Rev. D, "format.asciiprecision" example."""
    raw.write("format.asciiprecision = 10\nx = 2.54\nprintnumber(x)")
    assert raw.inst.read() == "2.540000000e+00"
    raw.write("format.asciiprecision = 3\nprintnumber(x)")
    assert raw.inst.read() == "2.54e+00"
    assert raw.errors() == []


def test_manual_format_data(raw: Raw, emu: Keithley2600Emulator) -> None:
    """2600B Reference Manual, "format.data" example: ASCII, then REAL64 (``#0`` + 8 bytes)."""
    raw.write("format.asciiprecision = 10\nx = 3.14159265\nformat.data = format.ASCII\nprintnumber(x)")
    assert raw.inst.read() == "3.141592650e+00"
    raw.write("format.data = format.REAL64\nprintnumber(x)")
    data = raw.read_raw(11)
    assert data[:2] == b"#0" and data[-1:] == b"\n"
    assert struct.unpack("<d", data[2:10])[0] == 3.14159265  # format.byteorder powers on SWAPPED


def test_manual_format_byteorder(raw: Raw, emu: Keithley2600Emulator) -> None:
    """2600B Reference Manual, "format.byteorder" example."""
    raw.write("x = 1.23\nformat.data = format.REAL32\nformat.byteorder = format.LITTLEENDIAN\nprintnumber(x)")
    little = raw.read_raw(7)
    raw.write("format.byteorder = format.BIGENDIAN\nprintnumber(x)")
    big = raw.read_raw(7)
    assert struct.unpack("<f", little[2:6])[0] == pytest.approx(1.23)
    assert struct.unpack(">f", big[2:6])[0] == pytest.approx(1.23)
    assert little[2:6] == big[2:6][::-1]


def test_manual_offmode(raw: Raw, emu: Keithley2600Emulator) -> None:
    """2600B Reference Manual, "smuX.source.offmode" example, and its values (0 NORMAL, 1 ZERO,
    2 HIGH_Z)."""
    raw.write("smua.source.offmode = smua.OUTPUT_HIGH_Z")
    assert raw.query("print(smua.source.offmode)") == "2.000000e+00"
    assert raw.query("print(smua.OUTPUT_NORMAL, smua.OUTPUT_ZERO, smua.OUTPUT_HIGH_Z)") == (
        "0.000000e+00\t1.000000e+00\t2.000000e+00"
    )
    assert raw.errors() == []


def test_manual_status_measurement_instrument_enable(raw: Raw, emu: Keithley2600Emulator) -> None:
    """2600B Reference Manual, "status.measurement.instrument.smuX.*" example: enable VLMT; a
    voltage-limited current source sets the bit and the summaries up to the status byte."""
    raw.write("status.measurement.instrument.smua.enable = status.measurement.instrument.smua.VLMT")
    raw.write("status.measurement.instrument.enable = status.measurement.instrument.SMUA")
    raw.write("status.measurement.enable = status.measurement.INST")
    raw.write("smua.source.func = smua.OUTPUT_DCAMPS smua.source.limitv = 0.1 smua.source.leveli = 1e-3")
    raw.write("smua.source.output = smua.OUTPUT_ON")
    assert raw.query("print(smua.measure.v(), status.measurement.instrument.smua.condition)") == (
        "1.000000e-01\t1.000000e+00"
    )
    assert int(raw.query("*STB?")) & 1  # MSB: measurement summary bit
    assert raw.errors() == []


def test_manual_sweep_v_list_measure_i(raw: Raw, emu: Keithley2600Emulator) -> None:
    """2600B Reference Manual, "SweepVListMeasureI()" example (KISweep factory script)."""
    raw.write("myvlist = {-0.1, 0.1, -1, 1, -6, 6, -40, 40, 0, 0}")
    raw.write("SweepVListMeasureI(smua, myvlist, 500E-3, 10)")
    assert raw.query("print(smua.nvbuffer1.n)") == "1.000000e+01"
    assert raw.errors() == []


def test_manual_sweep_v_lin_measure_i(raw: Raw, emu: Keithley2600Emulator) -> None:
    """2600B Reference Manual, "SweepVLinMeasureI()" example (1000 points, -1 V to 1 V)."""
    raw.write("SweepVLinMeasureI(smua, -1, 1, 1E-3, 1000)")
    assert raw.query("print(smua.nvbuffer1.n)") == "1.000000e+03"
    first, last = raw.query("printbuffer(1, 1000, smua.nvbuffer1.readings)").split(", ")[::999]
    assert float(first) < 0 < float(last)


def test_manual_sweep_i_log_measure_v(raw: Raw, emu: Keithley2600Emulator) -> None:
    """2600B Reference Manual, "SweepILogMeasureV()" example: 10 mA to 100 mA, five points."""
    raw.write("SweepILogMeasureV(smua, 0.01, 0.1, 0.001, 5)")
    assert raw.query("print(smua.nvbuffer1.n)") == "5.000000e+00"
    assert raw.errors() == []


def test_manual_trigger_measure_y(raw: Raw, emu: Keithley2600Emulator) -> None:
    """2600B Reference Manual, "smuX.trigger.measure.Y()" example (the buffer it names made
    first with "smuX.makebuffer()")."""
    raw.write("vbuffername = smua.makebuffer(100)")
    raw.write("smua.trigger.measure.v(vbuffername)\nsmua.trigger.measure.action = smua.ENABLE")
    raw.write("smua.trigger.source.linearv(0.1, 0.5, 5) smua.trigger.source.action = smua.ENABLE")
    raw.write(
        "smua.trigger.count = 5 smua.source.output = smua.OUTPUT_ON smua.trigger.initiate() waitcomplete()"
    )
    values = [float(x) for x in raw.query("printbuffer(1, vbuffername.n, vbuffername)").split(", ")]
    assert values == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5], rel=0.01)
    assert raw.errors() == []


def test_manual_trigger_event_ids(raw: Raw, emu: Keithley2600Emulator) -> None:
    """2600B Reference Manual, "smuX.trigger.MEASURE_COMPLETE_EVENT_ID",
    "smuX.trigger.PULSE_COMPLETE_EVENT_ID" and "smuX.trigger.measure.stimulus" examples."""
    raw.write("trigger.timer[1].stimulus = smua.trigger.MEASURE_COMPLETE_EVENT_ID")
    raw.write("trigger.timer[1].stimulus = smua.trigger.PULSE_COMPLETE_EVENT_ID")
    raw.write("smua.trigger.measure.stimulus = trigger.timer[1].EVENT_ID")
    assert raw.query("print(smua.trigger.measure.stimulus == trigger.timer[1].EVENT_ID)") == "true"
    assert raw.errors() == []


def test_manual_measure_count_and_interval(raw: Raw, emu: Keithley2600Emulator) -> None:
    """2600B Reference Manual, "smuX.measure.count" (``smua.measure.count = 10``) and
    "smuX.measure.interval" (``smua.measure.interval = 0.5``) examples: ten readings, 0.5 s
    apart, in the buffer."""
    raw.write("smua.measure.count = 10")
    raw.write("smua.measure.interval = 0.5")
    raw.write("smua.source.levelv = 0.5 smua.source.output = smua.OUTPUT_ON")
    raw.write("smua.nvbuffer1.clear() smua.measure.i(smua.nvbuffer1)")
    assert raw.query("print(smua.nvbuffer1.n)") == "1.000000e+01"
    stamps = [float(x) for x in raw.query("printbuffer(1, 10, smua.nvbuffer1.timestamps)").split(", ")]
    assert stamps == pytest.approx([0.5 * k for k in range(10)], abs=1e-6)


def test_manual_beeper_and_syntax_rules(raw: Raw, emu: Keithley2600Emulator) -> None:
    """2600B Reference Manual, section 2 "Syntax rules": ``beeper.beep(0.5, 2400)``; white space
    in parameter lists is optional."""
    raw.write("beeper.beep(0.5, 2400)")
    raw.write("beeper.beep (0.5,2400)")
    assert raw.errors() == []


def test_manual_errorqueue_next(raw: Raw, emu: Keithley2600Emulator) -> None:
    """2600B Reference Manual, "errorqueue.next()" example: code, message, severity, node."""
    raw.write("smua.source.levelv = 1000")
    raw.write("errorCode, message, severity, errorNode = errorqueue.next()")
    assert raw.query("print(errorCode, message)").startswith("1.101000e+03\tParameter too big")
    assert raw.query("print(errorqueue.count)") == "0.000000e+00"


def test_manual_status_condition(raw: Raw, emu: Keithley2600Emulator) -> None:
    """2600B Reference Manual, "status.condition" example (``print(status.condition)``): EAV
    (4) while the error queue holds an error; *ESR? shows the error class (EXE for -2xx)."""
    assert raw.query("print(status.condition)") == "0.000000e+00"
    raw.write("smua.source.bogus = 1")
    assert int(float(raw.query("print(status.condition)"))) & 4
    assert int(raw.query("*ESR?")) & 16
    assert int(raw.query("*ESR?")) == 0  # reading clears it
    raw.write("*CLS")
    assert raw.query("print(status.condition)") == "0.000000e+00"


def test_manual_localnode_model_and_idn(raw: Raw, emu: Keithley2600Emulator) -> None:
    """2600B Reference Manual, "localnode.model" and "*IDN?"."""
    assert raw.query("print(localnode.model)") == "2636B"
    assert raw.query("*IDN?").startswith("Keithley Instruments Inc., Model 2636B,")


def test_manual_buffer_columns(raw: Raw, emu: Keithley2600Emulator) -> None:
    """2600B Reference Manual, "smuX.nvbufferY" and "Reading buffers": readings, timestamps and
    (with collectsourcevalues) source values, printed side by side."""
    raw.write("smua.nvbuffer1.clear() smua.nvbuffer1.collectsourcevalues = 1 smua.nvbuffer1.appendmode = 1")
    raw.write("smua.source.output = smua.OUTPUT_ON")
    raw.write("for v = 1, 3 do smua.source.levelv = v / 10 smua.measure.i(smua.nvbuffer1) end")
    reply = raw.query(
        "printbuffer(1, smua.nvbuffer1.n, smua.nvbuffer1.readings, smua.nvbuffer1.sourcevalues)"
    )
    values = [float(x) for x in reply.split(", ")]
    assert values[1::2] == pytest.approx([0.1, 0.2, 0.3])
    assert raw.query("print(smua.nvbuffer1.measurefunctions[1])") == "Current"
    raw.write("smua.nvbuffer1.collectsourcevalues = 0")  # not while the buffer holds readings
    assert raw.errors() == [-286]


def test_manual_model_ranges() -> None:
    """2600B Reference Manual section 1: the 2602B's top ranges are 40 V and 3 A; smub exists."""
    with Keithley2600Emulator(make_twin(), latency_s=0, model="2602B") as emu:
        h = emu.handle_message
        h("smub.source.rangev = 40 smub.source.rangei = 3")
        assert h("print(smub.source.rangev, smub.source.rangei)") == "4.000000e+01\t3.000000e+00"
        h("smub.source.rangev = 200")
        assert errors(emu) == [1101]
        assert h("print(smub.source.rangev)") == "4.000000e+01"
