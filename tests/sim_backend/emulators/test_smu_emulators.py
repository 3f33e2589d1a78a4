"""The wire-level emulators: instrument command sets (pymeasure's drivers, manual-style scripts),
their physics through the matrix, faults, and the launcher's contract."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pymeasure.instruments.keithley import Keithley2450 as PymeasureKeithley2450
from pymeasure.instruments.keithley import Keithley2600 as PymeasureKeithley2600
from pyvisa.errors import VisaIOError

from drivers.b2900 import KeysightB2900
from drivers.common import ReplyError
from drivers.e5250a import KeysightE5250A
from drivers.keithley707b import Keithley707B
from drivers.keithley2600 import Keithley2600
from hil.errors import ConfigError
from hil.station import load_station, parse_station
from hil.types import ArraySpec
from sim_backend.emulators.b2900 import KeysightB2900Emulator
from sim_backend.emulators.e5250a import KeysightE5250AEmulator
from sim_backend.emulators.keithley707b import Keithley707BEmulator
from sim_backend.emulators.keithley2450 import Keithley2450Emulator
from sim_backend.emulators.keithley2600 import Keithley2600Emulator
from sim_backend.emulators.launcher import emulator_class, launch_instrument, launch_station, socket_address
from sim_backend.emulators.scpi_server import Fault, garble, parse_fault
from sim_backend.emulators.wiring import OPEN_LEAKAGE_S
from sim_backend.preset import load_preset
from sim_backend.twin import TwinBackend
from tests.helpers import emulated, station_dict

VISA = {"timeout": 2000, "visa_library": "@py"}


@pytest.fixture
def twin() -> TwinBackend:
    spec = ArraySpec("A", 4, 4, ArraySpec.area_from_diameter(1e-6))
    return TwinBackend([spec], load_preset("mo_tiox_choi2021"), seed=3)


def g00(twin: TwinBackend) -> float:
    model = twin.model("A")
    return float(model.conductance(twin.now(), np.array([0]))[0])


# --------------------------------------------------------------------------- command sets


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_pymeasure_keithley2600_driver_runs_against_the_emulator(twin):
    with Keithley2600Emulator(twin, latency_s=0) as emu:
        smu = PymeasureKeithley2600(emu.resource, read_termination="\n", write_termination="\n", **VISA)
        assert "2636B" in smu.id
        smu.ChA.apply_voltage(compliance_current=1e-3)
        smu.ChA.source_voltage = 0.5
        smu.ChA.source_output = "ON"
        assert smu.ChA.source_output == "ON"
        assert smu.ChA.compliance_current == pytest.approx(1e-3)
        current = smu.ChA.current
        smu.ChA.source_output = "OFF"
        assert smu.ChA.source_output == "OFF"  # a query: the write before it has been executed
        assert emu.outputs() == {"a": False, "b": False}
        assert smu.check_errors() == []
        smu.adapter.close()
    # the channel is cabled straight to cell (0, 0): I = G V with 0.2 % read noise
    assert current == pytest.approx(g00(twin) * 0.5, rel=0.02)


def test_pymeasure_keithley2450_driver_runs_against_the_emulator(twin):
    with Keithley2450Emulator(twin, latency_s=0) as emu:
        smu = PymeasureKeithley2450(emu.resource, read_termination="\n", write_termination="\n", **VISA)
        assert "2450" in smu.id
        smu.apply_voltage(compliance_current=1e-3)
        smu.measure_current(nplc=0.1)
        smu.source_voltage = 0.5
        smu.enable_source()
        assert smu.source_enabled
        current = smu.current
        smu.disable_source()
        assert smu.source_mode == "voltage"
        assert smu.compliance_current == pytest.approx(1e-3)
        smu.use_rear_terminals()
        smu.beep(440, 0.1)
        smu.reset()
        assert smu.check_errors() == []
        smu.adapter.close()
    assert current == pytest.approx(g00(twin) * 0.5, rel=0.02)
    assert not emu.ch.output_on


def test_2600_manual_style_script_loop_and_factory_sweep(twin):
    """A user script as in the 2600B manual: loadscript, a loop with delay, printbuffer."""
    with Keithley2600Emulator(twin, latency_s=0) as emu:
        smu = Keithley2600(emu.resource, **VISA)
        for line in (
            "loadscript MySweep",
            "smua.reset()",
            "smua.source.func = smua.OUTPUT_DCVOLTS",
            "smua.source.limiti = 1e-3",
            "smua.nvbuffer1.clear()",
            "smua.nvbuffer1.appendmode = 1",
            "smua.source.output = smua.OUTPUT_ON",
            "for v = 1, 3 do",
            "  smua.source.levelv = v * 0.1",
            "  delay(0.001)",
            "  smua.measure.i(smua.nvbuffer1)",
            "end",
            "smua.source.output = smua.OUTPUT_OFF",
            "endscript",
        ):
            smu.write(line)
        smu.write("MySweep.run()")
        reply = smu.ask("printbuffer(1, smua.nvbuffer1.n, smua.nvbuffer1.readings)")
        values = [float(x) for x in reply.split(",")]
        assert len(values) == 3 and values[0] < values[1] < values[2]
        smu.write("SweepVLinMeasureI(smua, 0.1, 0.5, 0.001, 5)")
        values = [float(x) for x in smu.ask("printbuffer(1, 5, smua.nvbuffer1)").split(",")]
        assert len(values) == 5 and all(b > a for a, b in zip(values, values[1:], strict=False))
        assert smu.ask("print(smua.source.output)") == "0.000000e+00"
        smu.adapter.close()


def test_tsp_errors_go_to_the_error_queue_and_the_sandbox_holds(twin):
    with Keithley2600Emulator(twin, latency_s=0) as emu:
        smu = Keithley2600(emu.resource, **VISA)
        smu.write("x = = 1")
        smu.write("smua.source.bogus = 1")
        smu.write('os.execute("echo unsafe")')
        smu.write("y = smua.__class__")
        codes = [smu.next_error[0] for _ in range(5)]
        assert codes == [-285, -286, -286, -286, 0]
        smu.adapter.close()


def test_2450_manual_style_linear_sweep(twin):
    with Keithley2450Emulator(twin, latency_s=0) as emu:
        smu = PymeasureKeithley2450(emu.resource, read_termination="\n", write_termination="\n", **VISA)
        smu.write("*RST")
        smu.write(':SOUR:FUNC VOLT;:SOUR:VOLT:ILIM 0.01;:SENS:FUNC "CURR";:SENS:CURR:RANG:AUTO ON')
        smu.write(":SOUR:SWE:VOLT:LIN 0.1, 0.5, 5, 0.01")
        smu.write(":INIT")
        smu.write("*WAI")
        reply = smu.ask(':TRAC:DATA? 1, 5, "defbuffer1", READ, SOUR')
        values = np.array([float(x) for x in reply.split(",")]).reshape(5, 2)
        np.testing.assert_allclose(values[:, 1], [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-6)
        assert np.all(np.diff(values[:, 0]) > 0)
        smu.write(":BOGUS:COMMAND 1")
        code, _ = smu.next_error
        assert int(code) == -113
        smu.adapter.close()


def test_2450_buffers_are_made_and_deleted_without_a_reply(twin):
    with Keithley2450Emulator(twin, latency_s=0) as emu:
        assert emu.handle_message(':TRAC:MAKE "mybuf", 100') is None
        assert emu.handle_message(':TRAC:ACT? "mybuf"') == "0"
        assert emu.handle_message(':TRAC:DEL "mybuf"') is None
        assert emu.handle_message(':TRAC:DEL "mybuf"') is None  # absent: nothing happens
        assert emu.handle_message(":SYST:ERR?") == '+0,"No error"'
        emu.handle_message(':TRAC:ACT? "mybuf"')
        assert emu.handle_message(":SYST:ERR?").startswith("-224,")


def test_b2900_manual_style_spot_measurement_and_list_sweep(twin):
    with KeysightB2900Emulator(twin, latency_s=0) as emu:
        smu = KeysightB2900(emu.resource, **VISA)
        assert "B2902A" in smu.id
        smu.write(":SOUR:FUNC:MODE VOLT;:SOUR:VOLT 0.5;:SENS:CURR:PROT 0.1;:OUTP ON")
        spot = float(smu.ask(":MEAS:CURR? (@1)"))
        smu.write(
            ":SOUR:VOLT:MODE LIST;:SOUR:LIST:VOLT 0.1,0.2,0.3;:TRIG:SOUR TIM;:TRIG:TIM 0.001;:TRIG:COUN 3"
        )
        smu.write(":INIT (@1)")
        currents = [float(x) for x in smu.ask(":FETC:ARR:CURR? (@1)").split(",")]
        smu.write(":OUTP OFF")
        assert smu.check_errors() == []
        smu.adapter.close()
    assert spot == pytest.approx(g00(twin) * 0.5, rel=0.02)
    assert len(currents) == 3 and currents[0] < currents[1] < currents[2]
    assert emu.outputs() == {"1": False, "2": False}


def test_707b_manual_examples(twin):
    with Keithley707BEmulator(twin, latency_s=0) as emu:
        m = Keithley707B(emu.resource, **VISA)
        m.write('channel.open("allslots")')
        m.write('channel.pattern.setimage("1B02,1B04,1B06", "Chans")')
        m.write('channel.close("1A01:1A05, 1C03, Chans")')
        assert m.ask('print(channel.getclose("slot1"))') == "1A01;1A02;1A03;1A04;1A05;1B02;1B04;1B06;1C03"
        m.write('channel.exclusiveclose("2D07")')
        assert m.closed_channels == ["2D07"]
        m.write('channel.close("allslots")')  # not allowed: an error, nothing closes
        assert m.check_errors()[0][0] == -286
        m.write('channel.exclusiveclose("")')
        assert m.closed_channels == []
        assert emu.crosspoints() == set()
        m.adapter.close()


def test_e5250a_channel_lists_and_queries(twin):
    with KeysightE5250AEmulator(twin, latency_s=0, cards=2) as emu:
        m = KeysightE5250A(emu.resource, cards=(1, 2), **VISA)
        m.write(":ROUT:CLOS (@10101:10103,20412)")
        assert m.ask(":ROUT:CLOS? (@10101,10104,20412)") == "1,0,1"
        assert m.ask(":ROUT:OPEN? (@10101,10104)") == "0,1"
        assert m.closed_crosspoints == {("1", 1), ("1", 2), ("1", 3), ("4", 24)}
        m.write(":ROUT:CLOS (@30101)")  # card 3 is not installed
        assert int(m.next_error[0]) == -224
        assert m.open_all() == set()
        m.adapter.close()


# --------------------------------------------------------------------------- physics through the matrix


def test_smu_sees_only_what_the_matrix_connects(tmp_path):
    with emulated(station_dict("2600+707b", rows=4, cols=4), seed=5) as bench:
        emu_smu, emu_matrix = bench.emulators["smu"], bench.emulators["matrix"]
        smu = Keithley2600(bench.resources["smu"], **VISA)
        matrix = Keithley707B(bench.resources["matrix"], **VISA)
        smu.arm("a", 1e-3)
        # every relay open: only the leakage of the open matrix
        open_current = smu.read_current("a", 0.5)
        assert abs(open_current) <= 2 * OPEN_LEAKAGE_S * 0.5
        # cell (1, 2): row 1 on matrix column 2, column 2 on matrix column 37 + 2
        assert matrix.route([("A", 2), ("B", 39)]) == {("A", 2), ("B", 39)}
        i12 = smu.read_current("a", 0.5)
        assert i12 == pytest.approx(bench.wiring.conductance("A", 1, 2) * 0.5, rel=0.01)
        # a different cell reads a different device
        matrix.route([("A", 3), ("B", 37)])
        i20 = smu.read_current("a", 0.5)
        assert i20 == pytest.approx(bench.wiring.conductance("A", 2, 0) * 0.5, rel=0.01)
        assert i20 != pytest.approx(i12, rel=1e-4)
        # two rows switched in at once: two devices in parallel
        matrix.route([("A", 2), ("A", 3), ("B", 37)])
        both = smu.read_current("a", 0.5)
        expected = (bench.wiring.conductance("A", 1, 0) + bench.wiring.conductance("A", 2, 0)) * 0.5
        assert both == pytest.approx(expected, rel=0.01)
        # HI shorted to ground through one column: the SMU sits in compliance
        matrix.route([("A", 2), ("B", 2)])
        assert smu.read_current("a", 0.5) == pytest.approx(1e-3)
        smu.outputs_off(["a"])
        matrix.open_all()
        assert emu_smu.outputs() == {"a": False, "b": False}
        assert emu_matrix.closed_channels() == set()
        smu.adapter.close()
        matrix.adapter.close()


def test_pulses_through_the_matrix_program_only_the_routed_cell():
    with emulated(station_dict("b2900+e5250a", rows=4, cols=4), seed=5) as bench:
        smu = KeysightB2900(bench.resources["smu"], **VISA)
        matrix = KeysightE5250A(bench.resources["matrix"], cards=(1, 2, 3), **VISA)
        before = {(r, c): bench.wiring.conductance("A", r, c) for r in range(4) for c in range(4)}
        matrix.route([("1", 2), ("2", 17 + 3)])  # cell (1, 3)
        smu.arm("1", 1e-3)
        smu.pulse_train("1", 2.0, 1e-4, 20, 5e-3, 1e-3)
        after = {(r, c): bench.wiring.conductance("A", r, c) for r in range(4) for c in range(4)}
        # open matrix: a pulse reaches nothing
        matrix.open_all()
        smu.pulse_train("1", 2.0, 1e-4, 20, 5e-3, 1e-3)
        unchanged = {(r, c): bench.wiring.conductance("A", r, c) for r in range(4) for c in range(4)}
        smu.adapter.close()
        matrix.adapter.close()
        calls = [c for c in bench.wiring.twin_calls if c[0] == "pulse"]
    assert after[(1, 3)] > 3 * before[(1, 3)]
    assert all(after[k] == before[k] for k in before if k != (1, 3))
    # (the programmed cell drifts back by retention, tau = 1e7 s, over the test's seconds)
    assert unchanged == pytest.approx(after, rel=1e-6)
    # 20 identical pulses without reads reach the twin as one 20-pulse train
    assert calls == [("pulse", "A", 20)]


# --------------------------------------------------------------------------- faults


def test_parse_fault():
    assert parse_fault("timeout@40") == Fault("timeout", after=40)
    assert parse_fault("garbled:print") == Fault("garbled", match="print")
    assert parse_fault("stuck_relay:1A03") == Fault("stuck_relay", channel="1A03", once=False)
    with pytest.raises(ValueError, match="is not one of timeout"):
        parse_fault("explode")
    with pytest.raises(ValueError):
        Fault("stuck_relay")
    assert garble("1.234567e-06") != "1.234567e-06"
    assert len(garble("1.234567e-06")) == len("1.234567e-06")


def test_emulator_faults_timeout_garbled_disconnect(twin):
    faults = [Fault("timeout", match="measure", after=0), Fault("garbled", match="measure", after=1)]
    with Keithley2600Emulator(twin, latency_s=0, faults=faults) as emu:
        smu = Keithley2600(emu.resource, timeout=300, visa_library="@py")
        smu.arm("a", 1e-3)
        with pytest.raises(VisaIOError):
            smu.read_current("a", 0.5)  # no reply: the VISA timeout
        with pytest.raises(ReplyError):
            smu.read_current("a", 0.5)  # a reply, garbled
        assert smu.read_current("a", 0.5) > 0  # both fired once
        emu.inject(Fault("disconnect", match="measure"))
        with pytest.raises((VisaIOError, OSError)):
            smu.read_current("a", 0.5)
        smu.adapter.close()
        again = Keithley2600(emu.resource, **VISA)  # a new connection is accepted
        assert again.read_current("a", 0.5) > 0
        again.adapter.close()
        assert emu.connections_accepted == 2


def test_stuck_relay_stays_closed(twin):
    with Keithley707BEmulator(twin, latency_s=0, faults=[Fault("stuck_relay", channel="1A03")]) as emu:
        m = Keithley707B(emu.resource, **VISA)
        assert m.route([("A", 3), ("B", 5)]) == {("A", 3), ("B", 5)}
        assert m.route([("A", 4), ("B", 5)]) == {("A", 3), ("A", 4), ("B", 5)}
        assert m.open_all() == {("A", 3)}
        m.adapter.close()


# --------------------------------------------------------------------------- launcher


def test_emulator_contract_and_launcher_errors(twin):
    for model in ("keithley2450", "keithley2600", "b2900", "keithley707b", "keithley708b", "e5250a"):
        cls, fixed = emulator_class(model)
        with cls(twin, latency_s=0, **fixed) as emu:
            resource = emu.resource
            assert socket_address(resource) == ("127.0.0.1", emu.port)
        assert emu._listener is None
    with pytest.raises(ConfigError, match="no emulator"):
        emulator_class("keithley9999")
    with pytest.raises(ConfigError, match="twin"):
        launch_station(load_station(None))
    remote = station_dict()
    remote["instruments"]["smu"]["resource"] = "TCPIP0::192.168.0.10::5025::SOCKET"
    with pytest.raises(ConfigError, match="not on this computer"):
        launch_station(parse_station(remote))
    bad = station_dict()
    bad["instruments"]["smu"]["options"]["emulator"] = {"faults": ["explode"]}
    with pytest.raises(ConfigError, match="emulator.faults"):
        launch_station(parse_station(bad))


def test_board_model_is_a_clear_error_until_its_emulator_exists():
    try:
        import sim_backend.emulators.board  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="board"):
            emulator_class("board")
    else:
        cls, _ = emulator_class("board")
        assert cls.__name__ == "BoardEmulator"


def test_launch_instrument_alone_is_cabled_to_cell_0_0():
    bench = launch_instrument("keithley2600", port=0, seed=2, latency_s=0)
    with bench:
        smu = Keithley2600(bench.resources["keithley2600"], **VISA)
        smu.arm("a", 1e-3)
        current = smu.read_current("a", 0.5)
        smu.outputs_off(["a"])
        smu.adapter.close()
    assert current == pytest.approx(bench.wiring.conductance("A", 0, 0) * 0.5, rel=0.01)


# --------------------------------------------------------------------------- robustness

_SCPI_WORDS = [
    ":SOUR", ":SOUR2", ":VOLT", ":CURR", ":ILIM", ":OUTP", ":READ?", ":MEAS:CURR?", ":TRAC:DATA?",
    ":TRIG:BLOC:MEAS", ":INIT", ":ROUT:CLOS", ":ROUT:OPEN:CARD", "*IDN?", "*RST", " ", ";", ",",
    "(@10101:10103)", "(@1)", '"defbuffer1"', "ON", "OFF", "1e-3", "-4", "MAX", "abc", "?", ":",
]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.sampled_from(_SCPI_WORDS), max_size=12), noise=st.text(max_size=20))
@example(words=[":ROUT:OPEN:CARD", " ", ":SOUR"], noise="")  # a card that is not a number
def test_scpi_emulators_never_crash_on_any_message(twin, words, noise):
    """Any message: a reply or nothing, errors to the error queue, never an exception."""
    message = "".join(words) + noise
    emulators = [Keithley2450Emulator(twin, latency_s=0), KeysightB2900Emulator(twin, latency_s=0)]
    emulators.append(KeysightE5250AEmulator(twin, latency_s=0))
    for emu in emulators:
        reply = emu.handle_message(message)
        assert reply is None or isinstance(reply, str)
        while True:  # the error queue drains
            code, _ = emu.scpi.next_error()
            if code == 0:
                break


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    message=st.one_of(
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
        st.lists(
            st.sampled_from(
                ["smua.", "source.", "levelv", "=", "1", "print(", ")", "channel.close(", '"1A01"', " "]
                + ["format.data", "format.REAL32", "printbuffer(1, 1, ", "smua.nvbuffer1", "status.", "*STB?"]
                + ["smua.measure.count", "smub.", "lan.", "channel.getclose(", '"allslots"', ";", "nil"]
            ),
            max_size=10,
        ).map("".join),
    )
)
def test_tsp_emulators_never_crash_on_any_message(twin, message):
    for emu in (Keithley2600Emulator(twin, latency_s=0), Keithley707BEmulator(twin, latency_s=0)):
        reply = emu.handle_message(message)
        assert reply is None or isinstance(reply, str)
        while emu.errorqueue.next()[0] != 0:  # the error queue drains
            pass


#: Commands the manuals document that the emulators do not implement: each must answer -113
#: "Undefined header" (never silence with a wrong reply), and the connection must stay up.
_UNIMPLEMENTED = [
    ":DISPlay:SCREen HOME",  # 2450 RM 6-10
    ":TRACe:SAVE \"/usb1/data.csv\", \"defbuffer1\"",  # 2450 RM 6-116 (no USB drive)
    ":SYSTem:TIME?",
    ":TRIGger:BLOCk:LOG:EVENt 1, INFO1, \"note\"",
    ":SENSe:CURRent:UNIT WATT",
    "*SAV 1",
    "*RCL 1",
    ":CALCulate:MATH:STATe ON",
    ":DIGital:LINE1:MODE DIG, IN",
    ":SCRipt:RUN \"x\"",
]


@pytest.mark.parametrize("command", _UNIMPLEMENTED)
def test_scpi_emulators_answer_113_to_unimplemented_commands(twin, command):
    for emu in (Keithley2450Emulator(twin, latency_s=0), KeysightB2900Emulator(twin, latency_s=0),
                KeysightE5250AEmulator(twin, latency_s=0)):  # fmt: skip
        with emu:
            smu = PymeasureKeithley2450(emu.resource, read_termination="\n", write_termination="\n", **VISA)
            smu.write(command)
            assert [int(e[0]) for e in smu.check_errors()] == [-113], (emu.model, command)
            assert smu.ask("*IDN?") == emu.idn  # the same connection answers
            smu.adapter.close()
        assert emu.internal_errors == [] and emu.scpi.internal_errors == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    words=st.lists(st.sampled_from(_SCPI_WORDS + _UNIMPLEMENTED + [":TRAC:MAKE", ":TRAC:STAT:AVER?", "*ESR?", "*STB?"]), max_size=6),
    noise=st.text(max_size=10),
)
def test_scpi_emulators_never_crash_on_valid_but_unimplemented_commands(twin, words, noise):
    """Manual commands the emulators lack, mixed with the fuzz words: errors, never exceptions."""
    message = ";".join(words) + noise
    for emu in (Keithley2450Emulator(twin, latency_s=0), KeysightB2900Emulator(twin, latency_s=0),
                KeysightE5250AEmulator(twin, latency_s=0)):  # fmt: skip
        reply = emu.handle_message(message)
        assert reply is None or isinstance(reply, str)
        while emu.scpi.next_error()[0] != 0:
            pass
        if isinstance(emu, Keithley2450Emulator):  # its handlers fail only by SCPI errors
            assert emu.scpi.internal_errors == []


#: Commands the 2600B / 707B manuals document that the emulators do not implement (LAN, TSP-Link,
#: digital I/O, calibration, file system, the 2600B's contact check and overlapped readings).
UNIMPLEMENTED_TSP = [
    "lan.config.dhcp = lan.ENABLE",
    "print(lan.status.ipaddress)",
    "tsplink.reset()",
    "digio.writebit(3, 0)",
    "smua.cal.unlock('KI0026XX')",
    "print(smua.contact.check())",
    "smua.measure.overlappedi(smua.nvbuffer1)",
    "fs.chdir('/usb1')",
    "print(smua.source.bogus)",
    "smua.buffer.getstats(smua.nvbuffer1)",
    "channel.setbackplane('1A01', 1)",
    "print(slot[1].idn)",
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(UNIMPLEMENTED_TSP), prefix=st.sampled_from(["", "x = 1 ", "print(1) "]))
def test_tsp_emulators_refuse_valid_but_unimplemented_commands(twin, command, prefix):
    """A documented command the emulator lacks is a TSP error in the queue, never a silent
    nil or a crash; the message's earlier statements ran."""
    for emu in (Keithley2600Emulator(twin, latency_s=0), Keithley707BEmulator(twin, latency_s=0)):
        reply = emu.handle_message(prefix + command)
        assert reply in (None, "1.000000e+00")
        assert emu.errorqueue.count >= 1
        assert emu.errorqueue.next()[0] in (-285, -286)


def test_tsp_emulators_keep_the_connection_after_unimplemented_commands(twin):
    with (
        Keithley2600Emulator(twin, latency_s=0) as smu_emu,
        Keithley707BEmulator(twin, latency_s=0) as mx_emu,
    ):
        for emu, driver in ((smu_emu, Keithley2600), (mx_emu, Keithley707B)):
            inst = driver(emu.resource, **VISA)
            for command in UNIMPLEMENTED_TSP:
                inst.write(command)
            codes = [code for code, _ in inst.check_errors()]
            assert len(codes) == len(UNIMPLEMENTED_TSP) and set(codes) <= {-285, -286}
            assert "Keithley" in inst.ask("*IDN?")  # the same connection still answers
            inst.adapter.close()
            assert emu.connections_accepted == 1
