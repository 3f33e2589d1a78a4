"""Wire-level tests of the SMU and switch-matrix drivers: the exact messages sent, the replies parsed.

Each test feeds the driver through pymeasure's ``expected_protocol``: a list of
``(message sent, reply)`` pairs that must be consumed exactly, in order.
"""

from __future__ import annotations

import numpy as np
import pytest
from pymeasure.test import expected_protocol

from drivers.b2900 import KeysightB2900
from drivers.common import ReplyError, fmt, parse_floats
from drivers.e5250a import KeysightE5250A, channel_number, crosspoint, parse_channel_list
from drivers.keithley707b import Keithley707B, channel_name
from drivers.keithley707b import crosspoint as crosspoint_707b
from drivers.keithley2450 import CONFIG_LIST, Keithley2450, voltage_range
from drivers.keithley2600 import SCRIPT_LINES, Keithley2600

# --------------------------------------------------------------------------- common helpers


def test_parse_floats_is_strict():
    np.testing.assert_array_equal(parse_floats("1.5e-06, 2e-06", 2), [1.5e-6, 2e-6])
    with pytest.raises(ReplyError, match="malformed reply"):
        parse_floats("1.2#4%6e-0?")
    with pytest.raises(ReplyError, match="expected 3"):
        parse_floats("1,2", 3)
    with pytest.raises(ReplyError, match="non-finite"):
        parse_floats("nan")
    with pytest.raises(ReplyError):
        parse_floats("")


def test_fmt_sends_exact_short_numbers():
    assert fmt(1e-4) == "0.0001"
    assert fmt(-4.0) == "-4"
    assert fmt(5e-3) == "0.005"
    assert fmt(1.23456789012e-7) == "1.23456789e-07"
    assert fmt(-0.0) == "0"
    with pytest.raises(ValueError):
        fmt(float("nan"))


# --------------------------------------------------------------------------- Keithley 2600B


def test_2600_arm_sets_compliance_before_output_on():
    msg = (
        "smua.source.func=smua.OUTPUT_DCVOLTS smua.source.limiti=0.001 smua.source.levelv=0 "
        "smua.measure.autorangei=smua.AUTORANGE_ON smua.measure.nplc=0.1 smua.source.output=smua.OUTPUT_ON"
    )
    with expected_protocol(Keithley2600, [(msg, None)]) as smu:
        smu.arm("a", 1e-3, 0.1)
    assert msg.index("limiti") < msg.index("source.output")


def test_2600_read_current_is_one_round_trip():
    with expected_protocol(
        Keithley2600,
        [("smub.source.levelv=0.5 print(smub.measure.i()) smub.source.levelv=0", "2.500000e-05")],
    ) as smu:
        assert smu.read_current("b", 0.5) == pytest.approx(2.5e-5)


def test_2600_rejects_unknown_channel():
    with expected_protocol(Keithley2600, []) as smu, pytest.raises(ValueError, match="channel"):
        smu.read_current("c", 0.5)


def test_2600_train_with_reads_loads_script_once_then_one_message_per_train():
    readings = ", ".join(f"{1e-6 * (k + 1):.6e}" for k in range(3))
    call = "rramhil_train(smua, 2, 0.0001, 3, 0.5, 0.005, 0.001, true) printbuffer(1, 3, smua.nvbuffer1.readings)"
    pairs = [(line, None) for line in SCRIPT_LINES] + [(call, readings), (call, readings)]
    with expected_protocol(Keithley2600, pairs) as smu:
        first = smu.pulse_train("a", 2.0, 1e-4, 3, 5e-3, 1e-3, read_voltage_V=0.5)
        second = smu.pulse_train("a", 2.0, 1e-4, 3, 5e-3, 1e-3, read_voltage_V=0.5)
    np.testing.assert_allclose(first, [1e-6, 2e-6, 3e-6])
    np.testing.assert_allclose(second, first)


def test_2600_script_measures_at_idle_after_each_pulse_and_appends():
    script = "\n".join(SCRIPT_LINES)
    assert SCRIPT_LINES[0] == "loadscript rramhil" and SCRIPT_LINES[-2] == "endscript"
    train = script[script.index("function rramhil_train") : script.index("function rramhil_sweep")]
    # compliance and idle level before the output turns on; pulses end at the idle level
    assert train.index("smu.source.limiti = ir") < train.index("smu.source.output = smu.OUTPUT_ON")
    assert "smu.trigger.endpulse.action = smu.SOURCE_IDLE" in train
    assert "trigger.timer[1].delay = w" in train
    assert "smu.nvbuffer1.appendmode = 1" in train
    assert train.index("smu.trigger.initiate()") < train.index("smu.measure.i(smu.nvbuffer1)")


def test_2600_train_without_reads_waits_for_done():
    call = 'rramhil_train(smua, -4, 0.0001, 5, 0, 0.005, 0.001, false) print("done")'
    pairs = [(line, None) for line in SCRIPT_LINES] + [(call, "done")]
    with expected_protocol(Keithley2600, pairs) as smu:
        assert smu.pulse_train("a", -4.0, 1e-4, 5, 5e-3, 1e-3) is None


def test_2600_train_garbled_reply_raises():
    call = "rramhil_train(smua, 2, 0.0001, 2, 0.5, 0.005, 0.001, true) printbuffer(1, 2, smua.nvbuffer1.readings)"
    pairs = [(line, None) for line in SCRIPT_LINES] + [(call, "#.0$0~0^e-06, 1.0e-06")]
    with expected_protocol(Keithley2600, pairs) as smu, pytest.raises(ReplyError, match="malformed"):
        smu.pulse_train("a", 2.0, 1e-4, 2, 5e-3, 1e-3, read_voltage_V=0.5)


def test_2600_train_refuses_pulses_below_its_minimum_width_without_sending():
    with expected_protocol(Keithley2600, []) as smu, pytest.raises(ValueError, match="minimum pulse width"):
        smu.pulse_train("a", 2.0, 50e-6, 3, 5e-3, 1e-3)


def test_2600_sweep_returns_measured_voltage_and_current():
    call = "rramhil_sweep(smua, {0,1.5}, 0.001, 0.001) printbuffer(1, 2, smua.nvbuffer1.readings, smua.nvbuffer2.readings)"
    reply = "1.000000e-13, 0.000000e+00, 3.000000e-05, 1.500000e+00"
    pairs = [(line, None) for line in SCRIPT_LINES] + [(call, reply)]
    with expected_protocol(Keithley2600, pairs) as smu:
        v, i = smu.voltage_sweep("a", [0.0, 1.5], 1e-3, 1e-3)
    np.testing.assert_allclose(v, [0.0, 1.5])
    np.testing.assert_allclose(i, [1e-13, 3e-5])


def test_2600_outputs_off_reads_back():
    msg = "smua.source.output=smua.OUTPUT_OFF smub.source.output=smub.OUTPUT_OFF print(smua.source.output, smub.source.output)"
    with expected_protocol(Keithley2600, [(msg, "0.000000e+00\t1.000000e+00")]) as smu:
        assert smu.outputs_off(["a", "b"]) == [False, True]


def test_2600_outputs_off_nowait_is_the_off_command_alone():
    """The fast path after every operation: the read-back's off command, one message, no reply."""
    msg = "smua.source.output=smua.OUTPUT_OFF smub.source.output=smub.OUTPUT_OFF"
    with expected_protocol(Keithley2600, [(msg, None), ("smua.source.output=smua.OUTPUT_OFF", None)]) as smu:
        smu.outputs_off_nowait(["a", "b"])
        smu.outputs_off_nowait(["a"])
    with expected_protocol(Keithley2600, []) as smu, pytest.raises(ValueError, match="channel"):
        smu.outputs_off_nowait(["c"])


def test_2600_pymeasure_channel_controls_still_work():
    with expected_protocol(
        Keithley2600,
        [
            ("smua.source.levelv=1.500000", None),
            ("print(smua.measure.i())", "1.0e-06"),
            ("print(smub.source.output)", "1"),
        ],
    ) as smu:
        smu.ChA.source_voltage = 1.5
        assert smu.ChA.current == pytest.approx(1e-6)
        assert smu.ChB.source_output == "ON"


# --------------------------------------------------------------------------- Keithley 2450


def test_2450_arm_and_read():
    arm = (
        ":SOUR:FUNC VOLT;:SOUR:VOLT:RANG:AUTO ON;:SOUR:VOLT:ILIM 0.001;:SOUR:VOLT 0;"
        ':SENS:FUNC "CURR";:SENS:CURR:RANG:AUTO ON;:SENS:CURR:NPLC 0.1;:OUTP ON'
    )
    with expected_protocol(
        Keithley2450, [(arm, None), (":SOUR:VOLT 0.5;:READ?;:SOUR:VOLT 0", "2.500000E-05")]
    ) as smu:
        smu.arm("1", 1e-3, 0.1)
        assert smu.read_current("1", 0.5) == pytest.approx(2.5e-5)
    assert arm.index("ILIM") < arm.index(":OUTP ON")


def test_2450_train_builds_trigger_model_with_output_off_then_two_messages():
    setup = (
        ':OUTP OFF;:SOUR:FUNC VOLT;:SOUR:VOLT:RANG 2;:SENS:FUNC "CURR";:SENS:CURR:RANG:AUTO ON;'
        f':SENS:CURR:NPLC 0.1;:SOUR:CONF:LIST:CRE "{CONFIG_LIST}";'
        f':SOUR:VOLT:ILIM 0.005;:SOUR:VOLT 2;:SOUR:CONF:LIST:STOR "{CONFIG_LIST}", 1;'
        f':SOUR:VOLT:ILIM 0.001;:SOUR:VOLT 0.5;:SOUR:CONF:LIST:STOR "{CONFIG_LIST}", 2;'
        ':TRIG:LOAD "Empty";:TRIG:BLOC:BUFF:CLE 1;'
        f':TRIG:BLOC:CONF:REC 2, "{CONFIG_LIST}", 1;:TRIG:BLOC:DEL:CONS 3, 0.001;'
        f':TRIG:BLOC:CONF:REC 4, "{CONFIG_LIST}", 2;:TRIG:BLOC:MEAS 5;:TRIG:BLOC:BRAN:COUN 6, 3, 2;:OUTP ON'
    )
    fetch = ':INIT;*WAI;:TRAC:DATA? 1, 3, "defbuffer1", READ;:SOUR:VOLT 0'
    second_setup = setup.replace(f':SOUR:CONF:LIST:CRE "{CONFIG_LIST}";', "")
    with expected_protocol(
        Keithley2450,
        [
            (setup, None),
            (fetch, "1.0E-06,2.0E-06,3.0E-06"),
            (second_setup, None),
            (fetch, "1.0E-06,2.0E-06,3.0E-06"),
        ],
    ) as smu:
        got = smu.pulse_train("1", 2.0, 1e-3, 3, 5e-3, 1e-3, read_voltage_V=0.5)
        smu.pulse_train("1", 2.0, 1e-3, 3, 5e-3, 1e-3, read_voltage_V=0.5)
    np.testing.assert_allclose(got, [1e-6, 2e-6, 3e-6])


def test_2450_train_without_reads_has_no_measure_block():
    with expected_protocol(
        Keithley2450,
        [
            (
                ':OUTP OFF;:SOUR:FUNC VOLT;:SOUR:VOLT:RANG 20;:SENS:FUNC "CURR";:SENS:CURR:RANG:AUTO ON;'
                f':SENS:CURR:NPLC 0.1;:SOUR:CONF:LIST:CRE "{CONFIG_LIST}";'
                f':SOUR:VOLT:ILIM 0.005;:SOUR:VOLT -4;:SOUR:CONF:LIST:STOR "{CONFIG_LIST}", 1;'
                f':SOUR:VOLT:ILIM 0.001;:SOUR:VOLT 0;:SOUR:CONF:LIST:STOR "{CONFIG_LIST}", 2;'
                ':TRIG:LOAD "Empty";:TRIG:BLOC:BUFF:CLE 1;'
                f':TRIG:BLOC:CONF:REC 2, "{CONFIG_LIST}", 1;:TRIG:BLOC:DEL:CONS 3, 0.002;'
                f':TRIG:BLOC:CONF:REC 4, "{CONFIG_LIST}", 2;:TRIG:BLOC:BRAN:COUN 5, 5, 2;:OUTP ON',
                None,
            ),
            (":INIT;*WAI;*OPC?;:SOUR:VOLT 0", "1"),
        ],
    ) as smu:
        assert smu.pulse_train("1", -4.0, 2e-3, 5, 5e-3, 1e-3) is None


def test_2450_minimum_pulse_width_is_one_millisecond_by_default():
    with expected_protocol(Keithley2450, []) as smu:
        assert smu.min_pulse_width_s == 1e-3
        with pytest.raises(ValueError, match="no pulse mode"):
            smu.pulse_train("1", 2.0, 100e-6, 5, 5e-3, 1e-3)


def test_2450_sweep():
    with expected_protocol(
        Keithley2450,
        [
            (
                ":OUTP OFF;:SOUR:FUNC VOLT;:SOUR:VOLT:RANG 2;:SOUR:VOLT:ILIM 0.001;:SOUR:VOLT:READ:BACK ON;"
                ':SOUR:VOLT 0;:SENS:FUNC "CURR";:SENS:CURR:RANG:AUTO ON;'
                ":SOUR:LIST:VOLT 0.5,1;:SOUR:SWE:VOLT:LIST 1, 0.01;:OUTP ON",
                None,
            ),
            (
                ':INIT;*WAI;:TRAC:DATA? 1, 2, "defbuffer1", SOUR, READ;:SOUR:VOLT 0',
                "5.0E-01,1.0E-06,1.0E+00,3.0E-06",
            ),
        ],
    ) as smu:
        v, i = smu.voltage_sweep("1", [0.5, 1.0], 1e-2, 1e-3)
    np.testing.assert_allclose(v, [0.5, 1.0])
    np.testing.assert_allclose(i, [1e-6, 3e-6])


def test_2450_outputs_off_and_pymeasure_controls():
    with expected_protocol(
        Keithley2450, [(":OUTP OFF;:OUTP?", "0"), (":SOUR:VOLT:ILIM 0.002", None), (":SOUR:FUNC?", "VOLT")]
    ) as smu:
        assert smu.outputs_off(["1"]) == [False]
        smu.compliance_current = 2e-3
        assert smu.source_mode == "voltage"


def test_2450_outputs_off_nowait_is_one_message_without_reply():
    with expected_protocol(Keithley2450, [(":OUTP OFF", None), (":OUTP OFF", None)]) as smu:
        smu.outputs_off_nowait(["1"])
        smu.outputs_off_nowait()
    with expected_protocol(Keithley2450, []) as smu, pytest.raises(ValueError, match="channel"):
        smu.outputs_off_nowait(["2"])


def test_2450_voltage_range():
    assert voltage_range(0.5) == 2.0
    assert voltage_range(2.0, 0.5) == 2.0
    assert voltage_range(-4.0) == 20.0
    with pytest.raises(ValueError):
        voltage_range(300)


# --------------------------------------------------------------------------- Keysight B2900


def test_b2900_arm_and_read():
    arm = (
        ":SOUR2:FUNC:MODE VOLT;:SOUR2:FUNC:SHAP DC;:SOUR2:VOLT:MODE FIX;:SOUR2:VOLT:RANG:AUTO ON;"
        ':SENS2:CURR:PROT 0.001;:SOUR2:VOLT 0;:SENS2:FUNC "CURR";:SENS2:CURR:RANG:AUTO ON;'
        ":SENS2:CURR:NPLC 0.1;:OUTP2 ON"
    )
    with expected_protocol(
        KeysightB2900, [(arm, None), (":SOUR2:VOLT 0.5;:MEAS:CURR? (@2);:SOUR2:VOLT 0", "+2.500000E-05")]
    ) as smu:
        smu.arm("2", 1e-3, 0.1)
        assert smu.read_current("2", 0.5) == pytest.approx(2.5e-5)
    assert arm.index(":SENS2:CURR:PROT") < arm.index(":OUTP2 ON")


def test_b2900_train_with_reads_is_one_message():
    # base level = read voltage; pulse to the triggered level; measure after the pulse
    msg = (
        ":OUTP1 OFF;:SOUR1:FUNC:MODE VOLT;:SOUR1:VOLT:MODE FIX;:SENS1:CURR:PROT 0.005;:SOUR1:VOLT 0.5;"
        ":SOUR1:VOLT:TRIG 2;:SOUR1:FUNC:SHAP PULS;:SOUR1:PULS:DEL 0;:SOUR1:PULS:WIDT 0.0001;"
        ":SENS1:CURR:APER 0.002;:TRIG1:SOUR TIM;:TRIG1:TIM 0.00217;:TRIG1:COUN 3;:TRIG1:TRAN:DEL 0;"
        ":TRIG1:ACQ:DEL 0.00012;:OUTP1 ON;:INIT (@1);*WAI;:FETC:ARR:CURR? (@1);:SOUR1:FUNC:SHAP DC;:SOUR1:VOLT 0"
    )
    with expected_protocol(KeysightB2900, [(msg, "+1.0E-06,+2.0E-06,+3.0E-06")]) as smu:
        got = smu.pulse_train("1", 2.0, 1e-4, 3, 5e-3, 1e-3, read_voltage_V=0.5, nplc=0.1)
    np.testing.assert_allclose(got, [1e-6, 2e-6, 3e-6])
    assert msg.index(":SENS1:CURR:PROT") < msg.index(":OUTP1 ON")


def test_b2900_train_without_reads_runs_the_transient_only():
    msg = (
        ":OUTP1 OFF;:SOUR1:FUNC:MODE VOLT;:SOUR1:VOLT:MODE FIX;:SENS1:CURR:PROT 0.005;:SOUR1:VOLT 0;"
        ":SOUR1:VOLT:TRIG -4;:SOUR1:FUNC:SHAP PULS;:SOUR1:PULS:DEL 0;:SOUR1:PULS:WIDT 0.0001;"
        ":SENS1:CURR:APER 0.002;:TRIG1:SOUR TIM;:TRIG1:TIM 0.00025;:TRIG1:COUN 5;:TRIG1:TRAN:DEL 0;"
        ":TRIG1:ACQ:DEL 0.00012;:OUTP1 ON;:INIT:TRAN (@1);*WAI;*OPC?;:SOUR1:FUNC:SHAP DC;:SOUR1:VOLT 0"
    )
    with expected_protocol(KeysightB2900, [(msg, "1")]) as smu:
        assert smu.pulse_train("1", -4.0, 1e-4, 5, 5e-3, 1e-3) is None


def test_b2900_short_reply_raises():
    with (
        expected_protocol(KeysightB2900, [(":SOUR1:VOLT 0.5;:MEAS:CURR? (@1);:SOUR1:VOLT 0", "")]) as smu,
        pytest.raises(ReplyError),
    ):
        smu.read_current("1", 0.5)


def test_b2900_sweep_and_outputs_off():
    sweep = (
        ":OUTP1 OFF;:SOUR1:FUNC:MODE VOLT;:SOUR1:FUNC:SHAP DC;:SENS1:CURR:PROT 0.001;:SOUR1:VOLT 0;"
        ":SOUR1:VOLT:MODE LIST;:SOUR1:LIST:VOLT 0.5,1;:SENS1:CURR:APER 0.002;:TRIG1:SOUR TIM;"
        ":TRIG1:TIM 0.01;:TRIG1:COUN 2;:TRIG1:TRAN:DEL 0;:TRIG1:ACQ:DEL 0.00799;:OUTP1 ON;:INIT (@1);*WAI;"
        ":FETC:ARR:VOLT? (@1);:FETC:ARR:CURR? (@1);:SOUR1:VOLT:MODE FIX;:SOUR1:VOLT 0"
    )
    with expected_protocol(
        KeysightB2900,
        [(sweep, "+5.0E-01,+1.0E+00;+1.0E-06,+3.0E-06"), (":OUTP1 OFF;:OUTP2 OFF;:OUTP1?;:OUTP2?", "0;0")],
    ) as smu:
        v, i = smu.voltage_sweep("1", [0.5, 1.0], 1e-2, 1e-3, nplc=0.1)
        assert smu.outputs_off(["1", "2"]) == [False, False]
    np.testing.assert_allclose(v, [0.5, 1.0])
    np.testing.assert_allclose(i, [1e-6, 3e-6])


def test_b2900_outputs_off_nowait_is_the_off_command_alone():
    with expected_protocol(KeysightB2900, [(":OUTP1 OFF;:OUTP2 OFF", None), (":OUTP2 OFF", None)]) as smu:
        smu.outputs_off_nowait(["1", "2"])
        smu.outputs_off_nowait(["2"])
    with expected_protocol(KeysightB2900, []) as smu, pytest.raises(ValueError, match="channel"):
        smu.outputs_off_nowait(["3"])


def test_b2900_channel_controls():
    with expected_protocol(
        KeysightB2900,
        [
            (":SOUR1:FUNC:SHAP PULS", None),
            (":SOUR2:PULS:WIDT 0.0001", None),
            (":SENS1:CURR:PROT 0.01", None),
            (":OUTP2 1", None),
            (":MEAS:CURR? (@1)", "+1.234567E-06"),
            (":SOUR2:FUNC:MODE?", "VOLT"),
        ],
    ) as smu:
        smu.ch_1.source_shape = "pulse"
        smu.ch_2.pulse_width = 1e-4
        smu.ch_1.compliance_current = 1e-2
        smu.ch_2.output_enabled = True
        assert smu.ch_1.current == pytest.approx(1.234567e-6)
        assert smu.ch_2.source_mode == "voltage"
    with expected_protocol(KeysightB2900, []) as smu, pytest.raises(ValueError):
        smu.ch_1.source_voltage = 500


# --------------------------------------------------------------------------- Keithley 707B


def test_707b_channel_names():
    assert channel_name("A", 1) == "1A01"
    assert channel_name("b", 14) == "2B02"
    assert channel_name("H", 72) == "6H12"
    assert crosspoint_707b("2B02") == ("B", 14)
    with pytest.raises(ValueError):
        channel_name("I", 1)
    with pytest.raises(ValueError):
        crosspoint_707b("1A13")


def test_707b_route_is_exclusive_close_with_readback():
    with expected_protocol(
        Keithley707B,
        [('channel.exclusiveclose("1A01,4B01") print(channel.getclose("allslots"))', "1A01;4B01")],
    ) as matrix:
        assert matrix.route([("A", 1), ("B", 37)]) == {("A", 1), ("B", 37)}


def test_707b_open_all_reports_stuck_relays():
    with expected_protocol(
        Keithley707B,
        [
            ('channel.open("allslots") print(channel.getclose("allslots"))', "nil"),
            ('channel.open("allslots") print(channel.getclose("allslots"))', "1A03"),
        ],
    ) as matrix:
        assert matrix.open_all() == set()
        assert matrix.open_all() == {("A", 3)}


def test_707b_open_all_nowait_is_one_message_without_readback():
    with expected_protocol(Keithley707B, [('channel.open("allslots")', None)]) as matrix:
        matrix.open_all_nowait()


def test_707b_setup_errors_and_closed_channels():
    with expected_protocol(
        Keithley707B,
        [
            ("channel.connectrule = channel.BREAK_BEFORE_MAKE", None),
            ('print(channel.getclose("allslots"))', "1A01;1B12"),
            ("print(errorqueue.next())", "-2.860000e+02\tTSP Runtime error\t2.000000e+00\t0.000000e+00"),
            ("print(errorqueue.next())", "0.000000e+00\tQueue Is Empty\t0.000000e+00\t0.000000e+00"),
        ],
    ) as matrix:
        matrix.setup()
        assert matrix.closed_channels == ["1A01", "1B12"]
        assert matrix.check_errors() == [(-286, "TSP Runtime error")]


def test_707b_malformed_readback_raises():
    with (
        expected_protocol(
            Keithley707B,
            [('channel.exclusiveclose("1A01,1B02") print(channel.getclose("allslots"))', "1A0#;~B02")],
        ) as matrix,
        pytest.raises(ReplyError),
    ):
        matrix.route([("A", 1), ("B", 2)])


# --------------------------------------------------------------------------- Keysight E5250A


def test_e5250a_channel_numbers():
    assert channel_number("1", 1) == 10101
    assert channel_number(3, 14) == 20302
    assert crosspoint(20302) == ("3", 14)
    assert parse_channel_list("(@10101,10212);(@)") == {("1", 1), ("2", 12)}
    with pytest.raises(ValueError):
        channel_number(11, 1)
    with pytest.raises(ReplyError):
        parse_channel_list("@10101")


def test_e5250a_route_opens_closes_and_reads_back_every_card():
    with expected_protocol(
        KeysightE5250A,
        [
            (":ROUT:FUNC NCON;:ROUT:CONN:RULE ALL,FREE;:ROUT:CONN:SEQ ALL,BBM", None),
            (
                ":ROUT:OPEN:CARD ALL;:ROUT:CLOS (@10101,20205);:ROUT:CLOS:CARD? 1;:ROUT:CLOS:CARD? 2",
                "(@10101);(@20205)",
            ),
            (":ROUT:OPEN:CARD ALL;:ROUT:CLOS:CARD? 1;:ROUT:CLOS:CARD? 2", "(@);(@)"),
        ],
        cards=(1, 2),
    ) as matrix:
        matrix.setup()
        assert matrix.route([("1", 1), ("2", 17)]) == {("1", 1), ("2", 17)}
        assert matrix.open_all() == set()


def test_e5250a_open_all_nowait_is_one_message_without_readback():
    with expected_protocol(KeysightE5250A, [(":ROUT:OPEN:CARD ALL", None)], cards=(1, 2)) as matrix:
        matrix.open_all_nowait()


def test_e5250a_configuration_mode_control():
    with expected_protocol(KeysightE5250A, [(":ROUT:FUNC NCON", None), (":ROUT:FUNC?", "ACON")]) as matrix:
        matrix.configuration_mode = "normal"
        assert matrix.configuration_mode == "auto"


# --------------------------------------------------------------------------- 2600B instrument clock
def test_2600_timer_reset_and_read():
    pairs = [("timer.reset()", None), ("print(timer.measure.t())", "12.5")]
    with expected_protocol(Keithley2600, pairs) as smu:
        smu.reset_timer()
        assert smu.elapsed_s() == 12.5


def test_2600_wait_fast_forwards_on_an_instrument_that_answers_at_once():
    """An emulated bench plays waits out on its own clock: after one bounded wait the rest goes in one."""
    pairs = [('delay(2) print("done")', "done"), ('delay(98) print("done")', "done")]
    with expected_protocol(Keithley2600, pairs) as smu:
        smu.wait(100.0, chunk_s=2.0)


class _SlowInstrumentClock:
    """time.monotonic of a host talking to a real instrument: each wait takes its full length."""

    def __init__(self, steps: list[float]) -> None:
        self.t = 0.0
        self.calls = 0
        self.steps = steps

    def monotonic(self) -> float:
        self.calls += 1
        if self.calls % 2 == 0:  # the call after the reply: the instrument really waited
            self.t += self.steps[self.calls // 2 - 1]
        return self.t


def test_2600_wait_never_asks_a_real_instrument_for_more_than_a_chunk(monkeypatch):
    import drivers.keithley2600 as k2600

    monkeypatch.setattr(k2600, "time", _SlowInstrumentClock([2.0, 2.0, 1.0]))
    pairs = [('delay(2) print("done")', "done")] * 2 + [('delay(1) print("done")', "done")]
    with expected_protocol(Keithley2600, pairs) as smu:
        smu.wait(5.0, chunk_s=2.0)


def test_2600_wait_checks_its_reply_and_arguments():
    with (
        expected_protocol(Keithley2600, [('delay(1) print("done")', "oops")]) as smu,
        pytest.raises(ReplyError),
    ):
        smu.wait(1.0, chunk_s=2.0)
    with expected_protocol(Keithley2600, []) as smu, pytest.raises(ValueError, match="seconds"):
        smu.wait(-1.0, chunk_s=2.0)
