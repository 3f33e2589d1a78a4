"""The Keysight E5250A emulator against QCoDeS's B2200/B2201 driver (``KeysightB220X``, the same
SCPI family) and against the *Agilent E5250A User's Guide* (Edition 9/11).

The B220X driver works in auto configuration (card 0). Where the E5250A differs from the B2200
by its manual the E5250A's behaviour is tested:

* the E5252A card has 10 inputs and 12 outputs (B2200: 14 inputs, up to 48 outputs): the
  driver's inputs 11-14 are refused by the instrument (-224);
* the E5250A has no Ground Mode (``:AGND...``, the driver's ``gnd_*`` parameters) and no
  Kelvin autodetection (``:COUP:PORT:DET``): -113 undefined header;
* couple ports are the odd inputs 1, 3, 5, 7, 9 (the driver allows 11 and 13).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
import pyvisa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qcodes.instrument import Instrument
from qcodes.instrument_drivers.Keysight import KeysightB220X

from hil.types import ArraySpec
from sim_backend.emulators.e5250a import KeysightE5250AEmulator
from sim_backend.preset import load_preset
from sim_backend.twin import TwinBackend


@pytest.fixture
def emu() -> Iterator[KeysightE5250AEmulator]:
    spec = ArraySpec("A", 4, 4, ArraySpec.area_from_diameter(1e-6))
    twin = TwinBackend([spec], load_preset("mo_tiox_choi2021"), seed=3)
    with KeysightE5250AEmulator(twin, latency_s=0, cards=2) as e:
        yield e
    assert e.internal_errors == [] and e.scpi.internal_errors == []


@pytest.fixture
def res(emu: KeysightE5250AEmulator) -> Iterator[pyvisa.resources.MessageBasedResource]:
    rm = pyvisa.ResourceManager("@py")
    r = rm.open_resource(emu.resource, read_termination="\n", write_termination="\n", timeout=3000)
    yield r  # type: ignore[misc]
    r.close()
    rm.close()


@pytest.fixture
def qc(res: pyvisa.resources.MessageBasedResource, emu: KeysightE5250AEmulator) -> Iterator[KeysightB220X]:
    res.write(":ROUT:FUNC ACON")  # the driver speaks auto configuration only (its docstring)
    inst = KeysightB220X("e5250a_emulated", emu.resource, visalib="@py", timeout=3)
    yield inst
    inst.close()
    Instrument.close_all()


def errors(r: pyvisa.resources.MessageBasedResource) -> list[int]:
    codes = []
    while (code := int(r.query(":SYST:ERR?").split(",")[0])) != 0:
        codes.append(code)
    return codes


# --------------------------------------------------------------------------- QCoDeS KeysightB220X


def test_qcodes_b220x_opens_in_auto_configuration(qc: KeysightB220X) -> None:
    assert qc.get_idn()["model"] == "E5250A"
    assert qc.get_status() == 128  # *ESR?: PON after power-on (IEEE 488.2 11.5.1.1.2), cleared by the read
    assert qc.get_status() == 0
    assert qc.connections() == set()


def test_qcodes_b220x_connect_and_disconnect(qc: KeysightB220X, emu: KeysightE5250AEmulator) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the driver warns when *ESR? shows an error
        qc.connect(1, 2)
        qc.connect(3, 14)  # output 14: card 2, output 2 in auto configuration
        assert qc.connections() == {(1, 2), (3, 14)}
        assert emu.closed_channels() == {"10102", "20302"}
        qc.disconnect(1, 2)
        assert qc.connections() == {(3, 14)}
        qc.connect_paths([(4, 5), (5, 6)])
        qc.disconnect_paths([(4, 5)])
        assert qc.connections() == {(3, 14), (5, 6)}
        qc.disconnect_all()
        assert qc.connections() == set()


def test_qcodes_b220x_connection_rule_and_sequence(qc: KeysightB220X) -> None:
    qc.connection_rule("single")
    assert qc.connection_rule() == "single"
    qc.connect(1, 2)
    qc.connect(1, 3)  # single route: input 1 leaves output 2
    assert qc.connections() == {(1, 3)}
    with pytest.warns(UserWarning, match="not released"):
        qc.connection_rule("free")
        qc.connection_rule("single")
    for value in ("none", "bbm", "mbb"):
        qc.connection_sequence(value)
        assert qc.connection_sequence() == value


def test_qcodes_b220x_bias_and_couple(qc: KeysightB220X, emu: KeysightE5250AEmulator) -> None:
    qc.bias_input_port(9)
    assert qc.bias_input_port() == 9
    qc.bias_disable_all_outputs()
    qc.bias_enable_output(4)
    qc.bias_mode(True)
    assert qc.bias_mode() is True
    # chapter 5 "Bias Mode": the bias port joins every bias-enabled free output
    assert qc.connections() == {(9, 4)}
    qc.connect(1, 4)  # another input takes output 4: the bias port leaves it
    assert qc.connections() == {(1, 4)}
    qc.disconnect(1, 4)
    assert qc.connections() == {(9, 4)}
    qc.bias_enable_all_outputs()
    assert len(qc.connections()) == 24
    qc.bias_disable_output(4)
    assert (9, 4) not in qc.connections()
    qc.bias_mode(False)
    assert qc.connections() == set()
    qc.couple_ports([1, 3])
    assert qc.couple_ports() == [1, 3]
    qc.couple_mode(True)
    assert qc.couple_mode() is True
    qc.connect(1, 5)  # couple: inputs 1 and 2 to outputs 5 and 6
    assert qc.connections() == {(1, 5), (2, 6)}
    qc.disconnect_all()


def test_qcodes_b220x_where_the_e5250a_differs(qc: KeysightB220X) -> None:
    """The driver accepts inputs 1-14, outputs 1-48, ground mode and couple ports 11/13: the
    E5250A (10 inputs per E5252A card; no Ground Mode) refuses them with its errors."""
    with pytest.warns(UserWarning, match="status byte"):
        qc.connect(12, 1)
    assert qc.get_error().startswith("-224,")
    with pytest.warns(UserWarning, match="status byte"):
        qc.connect(1, 30)  # two cards: 24 outputs
    assert qc.get_error().startswith("-224,")
    qc.write("*CLS")
    qc.gnd_mode(True)  # not on the E5250A
    assert qc.get_error().startswith("-113,")
    qc.couple_ports([11])
    assert qc.get_error().startswith("-224,")
    with pytest.warns(UserWarning, match="status byte"):
        qc.couple_port_autodetect()
    assert qc.get_error().startswith("-113,")
    assert qc.get_error().startswith("+0,")


def test_qcodes_b220x_reset(qc: KeysightB220X) -> None:
    qc.connect(1, 1)
    qc.connection_rule("single")
    qc.reset()
    # *RST: normal configuration again, card 0 is no longer a card
    qc.write(":ROUT:FUNC ACON")
    assert qc.connections() == set() and qc.connection_rule() == "free"


# --------------------------------------------------------------------------- the guide's examples


def test_guide_semicolon_path_example(
    res: pyvisa.resources.MessageBasedResource, emu: KeysightE5250AEmulator
) -> None:
    """Agilent E5250A User's Guide, Edition 9, 6-4 "SCPI Command Hierarchy": ``:ROUT:CONN:RULE ALL,FREE;SEQ ALL,BBM``."""
    res.write(":ROUT:CONN:RULE ALL,FREE;SEQ ALL,BBM")
    assert res.query(":ROUT:CONN:RULE? 1;:ROUT:CONN:SEQ? 2") == "FREE;BBM"
    assert errors(res) == []


def test_guide_channel_lists(res: pyvisa.resources.MessageBasedResource) -> None:
    """Agilent E5250A User's Guide, Edition 9, 5-6 "Channel List and Channel Configuration": ``(@card+input+output)``, lists
    and ranges; the ``:ROUT:OPEN?`` example is the one of ``[:ROUTe]:OPEN[:LIST]`` in the Agilent
    B2200 User's Guide, Edition 4, 5-39 (the same command in the E5250A's chapter 7)."""
    res.write(":ROUT:OPEN:CARD ALL")
    res.write(":ROUT:CLOS (@10101,10202)")
    assert res.query(":ROUT:OPEN? (@10101,10102,10201,10202)") == "0,1,1,0"
    res.write(":ROUT:CLOS (@20301:20303)")
    assert res.query(":ROUT:CLOS:CARD? 2") == "(@20301,20302,20303)"
    res.write(":ROUT:CLOS (@00101)")  # card 0 outside auto configuration
    assert errors(res) == [-224]


def test_guide_auto_configuration(
    res: pyvisa.resources.MessageBasedResource, emu: KeysightE5250AEmulator
) -> None:
    """Agilent E5250A User's Guide, Edition 9, 5-6 Table 5-2: in auto configuration the cards are card 0, outputs 1-48."""
    res.write(":ROUT:FUNC ACON")
    assert res.query(":ROUT:FUNC?") == "ACON"
    res.write(":ROUT:CLOS (@00313,00101)")
    assert res.query(":ROUT:CLOS:CARD? 0") == "(@00101,00313)"
    assert emu.closed_channels() == {"10101", "20301"}
    res.write(":ROUT:CONN:RULE 0,SROU")
    assert res.query(":ROUT:CONN:RULE? 0") == "SROU"
    res.write(":ROUT:CONN:RULE 1,FREE")  # card 1 is no card in auto configuration
    assert errors(res) == [-224]
    res.write(":ROUT:FUNC NCON")  # changing the mode opens every relay
    assert res.query(":ROUT:CLOS:CARD? 1") == "(@)"


def test_guide_bias_mode_example(res: pyvisa.resources.MessageBasedResource) -> None:
    """Agilent E5250A User's Guide, Edition 9, 5-11 "Bias Mode" and the ``[:ROUTe]:BIAS...`` commands of chapter 7 (sequence not verbatim): bias port, bias-enabled outputs,
    Bias Mode ON; the bias port cannot be switched directly while it is ON."""
    res.write(":ROUT:BIAS:PORT 1,10")
    res.write(":ROUT:BIAS:CHAN:DIS:CARD 1")
    res.write(":ROUT:BIAS:CHAN:ENAB (@11001,11002)")
    res.write(":ROUT:BIAS:STAT 1,ON")
    assert res.query(":ROUT:BIAS:STAT? 1;:ROUT:BIAS:PORT? 1") == "1;10"
    assert res.query(":ROUT:BIAS:CHAN:ENAB? (@11001,11002,11003)") == "1,1,0"
    assert res.query(":ROUT:CLOS:CARD? 1") == "(@11001,11002)"
    res.write(":ROUT:CLOS (@10101)")
    assert res.query(":ROUT:CLOS:CARD? 1") == "(@10101,11002)"
    res.write(":ROUT:CLOS (@11003)")
    assert errors(res) == [-221]
    res.write(":ROUT:COUP:PORT 1,'9';:ROUT:COUP 1,ON")  # input 10 is the bias port
    assert errors(res) == [-221]


def test_guide_couple_mode(res: pyvisa.resources.MessageBasedResource) -> None:
    """Agilent E5250A User's Guide, Edition 9, chapter 5 "Couple Mode": coupled inputs 2k-1/2k switch to output pairs."""
    res.write(":ROUT:COUP:PORT 1,'1,5';:ROUT:COUP:STAT 1,ON")
    assert res.query(":ROUT:COUP:PORT? 1;:ROUT:COUP? 1") == "1,5;1"
    res.write(":ROUT:CLOS (@10603)")
    assert res.query(":ROUT:CLOS:CARD? 1") == "(@10503,10604)"
    res.write(":ROUT:OPEN (@10503)")
    assert res.query(":ROUT:CLOS:CARD? 1") == "(@)"
    assert errors(res) == []


def test_guide_cpon_tst_and_status(res: pyvisa.resources.MessageBasedResource) -> None:
    """Chapter 7: ``:SYST:CPON`` (power-on state of a card), ``*TST?`` (0: passed); a command
    error shows in *ESR? and *STB? (IEEE 488.2 11.5)."""
    res.write(":ROUT:CLOS (@10101,20101);:ROUT:CONN:RULE 1,SROU")
    res.write(":SYST:CPON 1")
    assert res.query(":ROUT:CLOS:CARD? 1;:ROUT:CLOS:CARD? 2") == "(@);(@20101)"
    assert res.query(":ROUT:CONN:RULE? 1") == "FREE"
    assert res.query("*TST?") == "0"
    res.write("*CLS;*ESE 255")
    res.write(":ROUT:AGND 1,ON")
    assert int(res.query("*STB?")) & 0b0010_0100 == 0b0010_0100
    assert int(res.query("*ESR?")) == 32
    assert errors(res) == [-113]
    res.write("*RST")
    assert res.query(":ROUT:CLOS:CARD? 2") == "(@)"


_WORDS = [
    ":ROUT", ":CLOS", ":OPEN", ":CARD", "? ", " ALL", " 0", " 1", ",", "(@10101:10112)", "(@00148)",
    "(@20101)", "(@", ":FUNC ACON", ":FUNC NCON", ":CONN:RULE", " SROU", ":BIAS", ":PORT", ":STAT",
    ":CHAN:ENAB", ":CHAN:DIS", ":COUP", "'1,3'", "'11'", ":AGND", ":SYST:CPON", "*TST?", "*RST",
    ";", " ", "abc", "1e9", "-3",
]  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.sampled_from(_WORDS), max_size=14))
def test_no_message_crashes_the_e5250a(words: list[str]) -> None:
    spec = ArraySpec("A", 4, 4, ArraySpec.area_from_diameter(1e-6))
    emu = KeysightE5250AEmulator(TwinBackend([spec], load_preset("mo_tiox_choi2021"), seed=3), cards=4)
    for message in ("".join(words), ":ROUT:FUNC ACON;" + "".join(words)):
        reply = emu.handle_message(message)
        assert reply is None or isinstance(reply, str)
        emu.crosspoints()
    assert emu.scpi.internal_errors == []
