"""The IEEE 488.2 status model shared by every SCPI emulator (Keithley 2450, Keysight B2900 and
E5250A), checked on the wire against the standard's definitions:

* IEEE Std 488.2-1992 section 10 (common commands), 11.2 (status byte), 11.5.1 (Standard Event
  Status Register), 12.5 (``*OPC``);
* SCPI-99 volume 2 section 21.8 (error classes and the ESR bit each sets) and 21.8.9 (queue
  overflow);
* Keithley 2450 Reference Manual 2450-901-01 Rev. B, section 6 "Common commands" and appendix C
  "Status model" (same bits).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import pyvisa

from sim_backend.emulators.scpi import (
    ESR_CME,
    ESR_DDE,
    ESR_EXE,
    ESR_OPC,
    ESR_PON,
    ESR_QYE,
    STB_EAV,
    STB_ESB,
    STB_MAV,
    STB_MSS,
    esr_bit,
)
from sim_backend.emulators.scpi_instrument import ScpiInstrument
from sim_backend.emulators.scpi_server import InstrumentServer

MODELS = ("keithley2450", "b2900", "e5250a")


@pytest.fixture(params=MODELS)
def inst(
    request: pytest.FixtureRequest, start_emulator: Callable[[str], InstrumentServer]
) -> Iterator[tuple[pyvisa.resources.MessageBasedResource, ScpiInstrument]]:
    emu = start_emulator(request.param)
    assert isinstance(emu, ScpiInstrument)
    rm = pyvisa.ResourceManager("@py")
    res = rm.open_resource(emu.resource, read_termination="\n", write_termination="\n", timeout=2000)
    assert isinstance(res, pyvisa.resources.MessageBasedResource)
    yield res, emu
    res.close()
    rm.close()


def q(res: pyvisa.resources.MessageBasedResource, text: str) -> int:
    return int(res.query(text))


def test_esr_bit_of_each_error_class() -> None:
    """SCPI-99 vol. 2 21.8: -1xx command (CME, bit 5), -2xx execution (EXE, bit 4), -3xx
    device-dependent (DDE, bit 3), -4xx query (QYE, bit 2); 0 sets nothing."""
    assert (esr_bit(-113), esr_bit(-100), esr_bit(-199)) == (32, 32, 32)
    assert (esr_bit(-222), esr_bit(-200), esr_bit(-299)) == (16, 16, 16)
    assert (esr_bit(-350), esr_bit(-300), esr_bit(5076)) == (8, 8, 8)
    assert (esr_bit(-410), esr_bit(-420), esr_bit(-499)) == (4, 4, 4)
    assert esr_bit(0) == 0
    assert (ESR_CME, ESR_EXE, ESR_DDE, ESR_QYE, ESR_OPC, ESR_PON) == (32, 16, 8, 4, 1, 128)


def test_power_on_then_clear(inst) -> None:
    """IEEE 488.2 11.5.1.1.2: PON (bit 7) is set at power-on; ``*ESR?`` reads and clears it."""
    res, _ = inst
    assert q(res, "*ESR?") == ESR_PON
    assert q(res, "*ESR?") == 0
    assert q(res, "*STB?") == 0
    assert q(res, "*TST?") == 0  # 10.38: 0 is a passed self-test


def test_undefined_header_sets_cme_eav_and_esb(inst) -> None:
    """A command the emulator does not know: -113 in the queue, CME in the ESR, EAV in the
    status byte while the error waits; ESB only once ``*ESE`` enables CME (11.2.2.2)."""
    res, _ = inst
    res.write("*CLS")
    res.write(":NOT:A:COMMand 1")
    assert q(res, "*STB?") == STB_EAV
    res.write("*ESE 32")
    assert q(res, "*ESE?") == 32
    assert q(res, "*STB?") == STB_EAV | STB_ESB
    assert q(res, "*ESR?") == ESR_CME
    assert q(res, "*ESR?") == 0  # read and clear
    assert q(res, "*STB?") == STB_EAV  # the error is still in the queue
    code = int(res.query(":SYST:ERR?").split(",")[0])
    assert code == -113
    assert q(res, "*STB?") == 0
    assert int(res.query(":SYST:ERR?").split(",")[0]) == 0


def test_each_error_class_sets_its_bit(inst) -> None:
    res, emu = inst
    res.write("*CLS")
    res.write("*ESE 999")  # -222: *ESE takes 0 to 255
    assert q(res, "*ESR?") == ESR_EXE
    assert int(res.query(":SYST:ERR?").split(",")[0]) == -222
    res.write("*IDN? 5")  # -108 parameter not allowed: a command error
    assert q(res, "*ESR?") == ESR_CME
    # -3xx and -4xx are raised by conditions the wire cannot produce here (a queue overflow,
    # an interrupted query): pushed as the instrument would
    with emu.lock:
        emu.scpi.push_error(-410, '"Query INTERRUPTED"')
        emu.scpi.push_error(-310, '"System error"')
    assert q(res, "*ESR?") == ESR_QYE | ESR_DDE
    res.write("*CLS")
    assert q(res, "*STB?") == 0


def test_sre_sets_mss(inst) -> None:
    """IEEE 488.2 11.3.2: MSS (bit 6) when a bit of the status byte is enabled in ``*SRE``; bit
    6 of ``*SRE`` itself is not used and reads 0 (11.3.2.3)."""
    res, _ = inst
    res.write("*CLS;*SRE 255")
    assert q(res, "*SRE?") == 255 - 64
    assert q(res, "*STB?") == 0
    res.write(":BOGUS")
    assert q(res, "*STB?") == STB_EAV | STB_MSS
    res.write("*SRE 16")  # only MAV enabled: an error alone does not summarise
    assert q(res, "*STB?") == STB_EAV
    res.write("*CLS")


def test_mav_while_a_reply_waits(inst) -> None:
    """MAV (bit 4): a query's reply is in the output queue when ``*STB?`` runs after it in the
    same message (IEEE 488.2 11.2.1.2)."""
    res, _ = inst
    res.write("*CLS")
    idn, stb = res.query("*IDN?;*STB?").rsplit(";", 1)
    assert idn and int(stb) & STB_MAV
    assert q(res, "*STB?") & STB_MAV == 0


def test_opc_and_opc_query(inst) -> None:
    """``*OPC`` sets OPC (bit 0) when pending operations are done (12.5.2); ``*OPC?`` answers 1."""
    res, _ = inst
    res.write("*CLS")
    res.write("*OPC")
    assert q(res, "*ESR?") == ESR_OPC
    assert q(res, "*WAI;*OPC?") == 1


def test_cls_clears_events_not_enables(inst) -> None:
    res, _ = inst
    res.write("*ESE 60;*SRE 32")
    res.write(":BOGUS")
    res.write("*CLS")
    assert (q(res, "*ESR?"), q(res, "*STB?")) == (0, 0)
    assert (q(res, "*ESE?"), q(res, "*SRE?")) == (60, 32)
    assert int(res.query(":SYST:ERR?").split(",")[0]) == 0


def test_rst_keeps_status_and_queue(inst) -> None:
    """IEEE 488.2 10.32: ``*RST`` does not affect the status byte, the ESR and its enable, or the
    error queue."""
    res, emu = inst
    res.write("*CLS;*ESE 32")
    res.write(":BOGUS")
    res.write("*RST")
    assert q(res, "*ESE?") == 32
    assert q(res, "*ESR?") == ESR_CME
    assert int(res.query(":SYST:ERR?").split(",")[0]) == -113


def test_status_operation_and_questionable_registers(inst) -> None:
    """SCPI-99 vol. 2 20.1-20.7: enable registers read back; ``:STAT:PRES`` zeroes them."""
    res, _ = inst
    res.write(":STAT:OPER:ENAB 4096;:STAT:QUES:ENAB 8")
    assert (q(res, ":STAT:OPER:ENAB?"), q(res, ":STAT:QUES:ENAB?")) == (4096, 8)
    assert (q(res, ":STAT:OPER?"), q(res, ":STAT:QUES:EVEN?"), q(res, ":STAT:OPER:COND?")) == (0, 0, 0)
    res.write(":STAT:PRES")
    assert (q(res, ":STAT:OPER:ENAB?"), q(res, ":STAT:QUES:ENAB?")) == (0, 0)


def test_queue_overflow_replaces_the_last_entry(inst) -> None:
    """SCPI-99 vol. 2 21.8.9: a full queue keeps its errors and the last one is -350."""
    res, emu = inst
    assert q(res, "*CLS;*OPC?") == 1  # a query: *CLS has run before the errors are pushed
    n = emu.scpi.queue_capacity
    with emu.lock:
        for _ in range(n + 5):
            emu.scpi.push_error(-113, '"Undefined header"')
    codes = [int(res.query(":SYST:ERR?").split(",")[0]) for _ in range(n + 1)]
    assert codes[: n - 1] == [-113] * (n - 1)
    assert codes[n - 1 :] == [-350, 0]
    assert q(res, "*ESR?") & (ESR_CME | ESR_DDE) == ESR_CME | ESR_DDE


def test_nothing_drops_the_connection(inst) -> None:
    """Malformed and unimplemented messages: errors in the queue, the connection stays."""
    res, emu = inst
    for text in ("*ESE", "*ESE abc", "*SRE 1,2", "*XYZ?", ":::", ";;", "*IDN", "\t*CLS\t1", "*ESR? 1;*IDN?"):
        res.write(text)
    assert res.query("*IDN?") == emu.idn
    res.write("*CLS")
