"""The example programs of the Keithley 2450 manuals, sent verbatim to the emulator with raw pyvisa.

Sources (the printed text was read in stored copies of the manual pages):

* *Model 2450 Interactive SourceMeter Instrument Reference Manual*, 2450-901-01 Rev. B,
  September 2013 ("RM");
* for commands the 2450 shares with its successors, where the 2450 page's example lines were
  not legible: the *Model 2461 Reference Manual* (2461-901-01 Rev. A, November 2015) and the
  *2470 Reference Manual* (2470-901-01 Rev. A, May 2019); each test says which.

Each test sends the example's lines exactly as printed, one message per line, and checks what
the manual says the example does. Lines a test adds to set up or inspect (queries after the
example) are marked as such. The verbatim examples of ``test_keithley2450.py`` (RM 6-78, 6-115,
6-119 to 6-123, and the 2470 :MEASure example) are not repeated here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pyvisa

from sim_backend.emulators.keithley2450 import Keithley2450Emulator
from sim_backend.emulators.scpi_server import InstrumentServer

TERM = {"read_termination": "\n", "write_termination": "\n"}


@pytest.fixture
def raw(start_emulator: Callable[[str], InstrumentServer]) -> Iterator[Any]:
    emu = start_emulator("keithley2450")
    assert isinstance(emu, Keithley2450Emulator)
    rm = pyvisa.ResourceManager("@py")
    res = rm.open_resource(emu.resource, timeout=3000, **TERM)
    assert isinstance(res, pyvisa.resources.MessageBasedResource)
    yield res
    res.close()
    rm.close()


def errors(res: Any) -> list[int]:
    """Drain the error queue; the codes."""
    codes = []
    while (code := int(str(res.query(":SYST:ERR?")).split(",")[0])) != 0:
        codes.append(code)
    return codes


def floats(reply: str) -> list[float]:
    return [float(v) for v in reply.split(",")]


def send(res: Any, lines: list[str]) -> list[str]:
    """Send the lines one message each; the replies of the queries, in order."""
    replies = []
    for line in lines:
        if "?" in line.split(" ")[0]:
            replies.append(str(res.query(line)))
        else:
            res.write(line)
    return replies


def test_rm_6_77_source_readback(raw: Any) -> None:
    """RM 6-77, :SOURce[1]:<function>:READ:BACK, example (verbatim, whole): reset, a 100-reading
    buffer, source 10 V with readback on, 100 readings of current, then the buffer's source and
    reading elements. With readback on "the buffer records the measured source value": the
    cell draws more than the default 105 uA limit at 10 V, so the measured source is below the
    programmed 10 V and every current reading sits at the limit."""
    replies = send(
        raw,
        [
            "*RST",
            'TRAC:MAKE "MyBuffer", 100',
            "SOUR:FUNC VOLT",
            'SENS:FUNC "CURR"',
            "SOUR:VOLT:READ:BACK ON",
            "SOUR:VOLT 10",
            "COUNT 100",
            "OUTP ON",
            'READ? "MyBuffer"',
            "OUTP OFF",
            'TRAC:DATA? 1, 100, "MyBuffer", SOUR, READ',
        ],
    )
    last = float(replies[0])
    data = floats(replies[1])
    assert len(data) == 200  # 100 points, source and reading each
    sources, readings = data[0::2], data[1::2]
    assert readings[-1] == last
    assert all(0 < v < 10 for v in sources)  # the measured (limited) source, not the set 10 V
    assert all(0 < i <= 105e-6 * 1.001 for i in readings)
    # (inspection) the settings the example made
    assert raw.query('TRAC:ACT? "MyBuffer"') == "100"
    assert raw.query("SOUR:VOLT:READ:BACK?") == "1"
    assert float(raw.query("SOUR:VOLT?")) == 10.0
    assert errors(raw) == []


def test_rm_6_77_readback_off_records_the_programmed_value(raw: Any) -> None:
    """RM 6-77, the same example (verbatim) with the one line changed that the entry's Details
    contrast ("When source readback is off, ... the buffer records the configured source
    value"): ``SOUR:VOLT:READ:BACK OFF``. Not counted as a separate example."""
    replies = send(
        raw,
        [
            "*RST",
            'TRAC:MAKE "MyBuffer", 100',
            "SOUR:FUNC VOLT",
            'SENS:FUNC "CURR"',
            "SOUR:VOLT:READ:BACK OFF",
            "SOUR:VOLT 10",
            "COUNT 100",
            "OUTP ON",
            'READ? "MyBuffer"',
            "OUTP OFF",
            'TRAC:DATA? 1, 100, "MyBuffer", SOUR, READ',
        ],
    )
    sources = floats(replies[1])[0::2]
    assert sources == [10.0] * 100
    assert errors(raw) == []


def test_rm_6_112_trace_fill_mode(raw: Any) -> None:
    """RM 6-112, :TRACe:FILL:MODE, example (verbatim, whole): a user buffer fills ONCE by
    default, is set to CONT; defbuffer1 reads CONT (the 2450 page's last "Output:" is not
    legible in the stored copy; the 2470 Reference Manual 12-125 prints CONT for the same
    lines, and RM 6-112's default column gives CONT for the default buffers)."""
    replies = send(
        raw,
        [
            'TRACe:MAKE "testData", 100',
            'TRACe:FILL:MODE? "testData"',
            'TRACe:FILL:MODE CONT, "testData"',
            'TRACe:FILL:MODE? "testData"',
            "TRACe:FILL:MODE?",
        ],
    )
    assert replies == ["ONCE", "CONT", "CONT"]
    assert errors(raw) == []


def test_rm_2_84_setting_the_output_off_state(raw: Any) -> None:
    """RM 2-84, "Setting the output-off state", Using SCPI commands (verbatim, each of the four
    commands): normal, zero, high impedance, guard. Sent without a function, the command "will
    set the output-off state for all functions" (RM 6-32, :OUTPut[1]:<function>:SMODe); each is
    read back on both functions with the query form of RM 6-32 (inspection)."""
    for line, mode in (
        (":OUTPut:SMODe NORMal", "NORM"),
        (":OUTPut:SMODe ZERO", "ZERO"),
        (":OUTPut:SMODe HIMPedance", "HIMP"),
        (":OUTPut:SMODe GUARd", "GUAR"),
    ):
        raw.write(line)
        assert raw.query(":OUTPut:VOLTage:SMODe?") == mode
        assert raw.query(":OUTPut:CURRent:SMODe?") == mode
    assert errors(raw) == []


def test_rm_3_26_clearing_buffers(raw: Any) -> None:
    """RM 3-26, "Clearing buffers", Using SCPI commands to clear a buffer (verbatim):
    ``TRACE:CLEar "testData"`` clears all readings and statistics from the buffer. The buffer
    and its readings are made first (set-up lines, not the manual's)."""
    raw.write('TRAC:MAKE "testData", 100')  # set-up
    raw.write(':SOUR:VOLT 0.2;:OUTP ON;:SENS:COUN 5;:READ? "testData"')  # set-up
    raw.read()
    raw.write(":OUTP OFF")  # set-up
    assert raw.query('TRAC:ACT? "testData"') == "5"
    raw.write('TRACE:CLEar "testData"')
    assert raw.query('TRAC:ACT? "testData"') == "0"
    assert float(raw.query('TRAC:STAT:AVER? "testData"')) == pytest.approx(9.91e37)
    assert errors(raw) == []


def test_2461_rm_6_166_trace_make_example_2(raw: Any) -> None:
    """:TRACe:MAKE, Example 2 (verbatim, whole) of the Model 2461 Reference Manual
    (2461-901-01 Rev. A, 6-166; the 2450 shares the command, RM 6-114): make a 100-reading
    buffer, query its size (Output: 100), delete it, make it again for 1000 readings. The last
    line, ``TRACe:POINts?`` without a name, queries defbuffer1 ("if no buffer is specified,
    defbuffer1 is used"; RM 6-115): 10000 on the 2450, whose default buffers hold 10000
    readings initially. The 1000 is checked on the named buffer (inspection)."""
    replies = send(
        raw,
        [
            'TRACe:MAKE "bufferVolts", 100',
            'TRACe:POINts? "bufferVolts"',
            'TRACe:DELete "bufferVolts"',
            'TRACe:MAKE "bufferVolts", 1000',
            "TRACe:POINts?",
        ],
    )
    assert replies == ["100", "10000"]
    assert raw.query('TRACe:POINts? "bufferVolts"') == "1000"
    assert errors(raw) == []


def test_2461_rm_6_166_trace_make_example_3(raw: Any) -> None:
    """:TRACe:MAKE, Example 3 (verbatim, whole) of the Model 2461 Reference Manual
    (2461-901-01 Rev. A, 6-166): resize an existing buffer to 5000 readings. As in example 2
    the unnamed query reads defbuffer1; the resize is checked on the named buffer. The buffer
    is made first as Example 2 leaves it (set-up line)."""
    raw.write('TRACe:MAKE "bufferVolts", 1000')  # set-up: the state Example 2 ends in
    replies = send(raw, ['TRACe:POINts 5000, "bufferVolts"', "TRACe:POINts?"])
    assert replies == ["10000"]
    assert raw.query('TRACe:POINts? "bufferVolts"') == "5000"
    assert errors(raw) == []


def test_2470_rm_6_9_create_a_full_reading_buffer(raw: Any) -> None:
    """2470 Reference Manual (2470-901-01 Rev. A, 6-9), "Using SCPI commands to create a reading
    buffer" (verbatim): a full-style buffer named testData for 200 readings (the FULL style is
    an option of RM 6-114 :TRACe:MAKE as well). It stores readings like a standard one."""
    raw.write('TRACe:MAKE "testData", 200, FULL')
    assert raw.query('TRACe:POINts? "testData"') == "200"
    raw.write(':OUTP ON;:READ? "testData"')  # inspection: one reading into it
    raw.read()
    raw.write(":OUTP OFF")
    assert raw.query('TRAC:ACT? "testData"') == "1"
    assert errors(raw) == []
