"""Every command the drivers send is in ``docs/instrument-commands.md``, and every row there is sent.

Two observations, both checked against the tables parsed from the markdown
(:mod:`tests.drivers.command_table`):

* each project driver, every public method and control it defines (and ``id``, the
  identification query the backend reads), driven through a recording adapter that answers with
  plausible replies: every sent command must be in the model's table, every row of the table
  must have been sent by some method, and the list of driven members must be the class's own;
* whole runs of the SMU + switch-matrix backend on an emulated bench, one per stack (2600B + 707B,
  B2900 + E5250A, 2450 + 708B): connect, read, pulse trains with and without reads, program,
  I-V sweep, a delay (instrument clock on the 2600B) and the safe state, every message recorded
  where the emulator receives it.

The parsers are tested too: they must refuse commands the table lacks.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from pymeasure.adapters import Adapter

from drivers.b2900 import B2900Channel, KeysightB2900
from drivers.e5250a import KeysightE5250A
from drivers.keithley707b import Keithley707B
from drivers.keithley2450 import Keithley2450
from drivers.keithley2600 import SCRIPT_LINES, Keithley2600
from hil.backends.smu_matrix import build_smu_matrix_backend
from hil.types import Pulse
from tests.drivers.command_table import (
    DIALECTS,
    CommandTable,
    TspSession,
    command_tables,
    scpi_commands,
)
from tests.helpers import emulated, station_dict


class RecordingAdapter(Adapter):
    """Records every message written; answers each read with the next queued reply."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []
        self.replies: deque[str] = deque()

    def _write(self, command: str, **kwargs: Any) -> None:
        self.sent.append(command)

    def _read(self, **kwargs: Any) -> str:
        if not self.replies:
            raise AssertionError(f"a read with no reply queued; last message: {self.sent[-1:]}")
        return self.replies.popleft()

    def _read_bytes(self, count: int, break_on_termchar: bool, **kwargs: Any) -> bytes:
        return self._read().encode()

    def close(self) -> None:
        pass


#: one driven member: (member name, action on the driver, replies it needs)
Step = tuple[str, Callable[[Any], object], list[str]]


def _drive(driver: Any, adapter: RecordingAdapter, steps: list[Step]) -> set[str]:
    """Run every step with its replies queued; every reply must have been read."""
    for name, action, replies in steps:
        adapter.replies.extend(replies)
        action(driver)
        assert not adapter.replies, f"{name}: replies left unread: {list(adapter.replies)}"
    return {name for name, _, _ in steps}


def _own_members(*classes: type) -> set[str]:
    """The public methods and properties (pymeasure controls included) the classes define."""
    return {
        name
        for cls in classes
        for name, value in vars(cls).items()
        if not name.startswith("_") and (inspect.isfunction(value) or isinstance(value, property))
    }


def _set(attr: str, value: object) -> Callable[[Any], None]:
    return lambda d: setattr(d, attr, value)


def _get(attr: str) -> Callable[[Any], object]:
    return lambda d: getattr(d, attr)


def _channel(attr: str, value: object = None) -> Callable[[Any], object]:
    """Set (or, with ``None``, read) a B2900 channel control on ``ch_1``."""
    if value is None:
        return lambda d: getattr(d.ch_1, attr)
    return lambda d: setattr(d.ch_1, attr, value)


@pytest.fixture(scope="module")
def tables() -> dict[str, CommandTable]:
    return command_tables()


# --------------------------------------------------------------------------- the tables
def test_every_model_has_a_table_with_a_manual_and_sections(tables):
    assert set(tables) == set(DIALECTS)
    for model, table in tables.items():
        assert table.table.manual, model
        for row in table.table.rows:
            assert row.use and row.section, f"{model}: {row.command} needs a use and a manual section"
        commands = [row.command for row in table.table.rows]
        assert len(commands) == len(set(commands)), f"{model}: a command is listed twice"


def test_scpi_parser_normalises_forms_suffixes_and_optional_nodes(tables):
    b2900 = tables["b2900"]
    accepted = [
        ":SOUR1:VOLT 0.5",
        ":SOURCE2:VOLTAGE:LEVEL:IMMEDIATE:AMPLITUDE 1",
        ":sour:volt:trig 2",
        ":VOLT 0",  # [:SOURce] is optional
        ":OUTP2 OFF;:OUTP2?;:OUTPUT1:STATE ON",
        ":SENS1:CURR:PROT 1e-3;NPLC 0.1",  # relative header: continues :SENS1:CURR
        ":MEAS:CURR? (@1)",
    ]
    assert b2900.unknown(accepted) == []
    assert scpi_commands(':SENS1:FUNC "CURR;VOLT";:OUTP1?') == [
        (("SENS", "FUNC"), "set"),
        (("OUTP",), "query"),
    ]


@pytest.mark.parametrize(
    "model,message",
    [
        ("b2900", ":SOUR1:VOLT:BOGUS 1"),  # unknown node
        ("b2900", ":SOURC1:VOLT 1"),  # neither short nor long form
        ("b2900", ":SOUR1:VOLT 0;:SOUR1:PULS:PER 1"),  # one bad unit among good ones
        ("b2900", ":FETC:ARR:CURR (@1)"),  # a query-only command sent as a set
        ("keithley2450", ":SOUR:VOLT:ILIM 1;ILIM:BOGUS 2"),  # relative header continues the path
        ("keithley2450", "*RST"),  # a common command the drivers never send
        ("e5250a", ":ROUT:SCAN (@10101)"),
        ("e5250a", ":ROUT:CLOS:CARD 1"),  # query-only
        ("keithley2600", "smua.source.bogus = 1"),
        ("keithley2600", "smua.source.levelv = smua.OUTPUT_BOGUS"),
        ("keithley2600", "print(smua.measure.v())"),  # a real 2600B function the drivers do not use
        ("keithley2600", "smua.source.limiti()"),  # an attribute called as a function
        ("keithley2600", "rramhil_train(smua, 1, 1, 1, 0, 1, 1, false)"),  # no script loaded here
        ("keithley2600", "smu.source.levelv = 1"),  # 'smu' is only a parameter inside the script
        ("keithley707b", 'channel.setforbidden("1A01")'),
        ("keithley707b", "channel.connectrule = channel.MAKE_BEFORE_BREAK"),
        ("keithley707b", "*RST"),
    ],
)
def test_the_check_refuses_a_command_missing_from_the_table(tables, model, message):
    assert tables[model].unknown([message]), f"{message!r} passed as a {model} command"


def test_the_same_commands_spelled_as_documented_pass(tables):
    """The controls of the test above: documented commands pass."""
    assert tables["keithley707b"].unknown(['print(channel.getclose("allslots"))', "reset()"]) == []
    assert tables["keithley2600"].unknown(["smua.source.levelv = 1", "print(smub.measure.i())"]) == []
    assert tables["e5250a"].unknown([":ROUT:CLOS:CARD? 1", ":ROUTE:CLOSE (@10101)"]) == []
    assert tables["keithley2450"].unknown([":SOURCE:VOLTAGE:ILIMIT 1;:sour:volt:ilim:lev 2"]) == []


def test_the_check_refuses_a_message_it_cannot_parse(tables):
    assert tables["b2900"].unknown([":SOUR1:VOLT$:X 1"])
    assert tables["keithley2600"].unknown(["*IDN#?"])


def test_tsp_parser_knows_script_functions_and_their_locals():
    session = TspSession()
    items = [item for line in SCRIPT_LINES for item in session.commands(line)]
    assert ("smuX.trigger.source.listv", "call") in items
    assert ("smuX.trigger.endpulse.stimulus", "set") in items
    assert ("trigger.timer[N].EVENT_ID", "value") in items
    assert ("smuX.nvbufferY.appendmode", "set") in items
    assert ("scriptVar.run", "call") in items
    names = {path for path, _ in items}
    assert not names & {"vp", "w", "n", "reads", "k", "levels", "rramhil_train", "smu"}
    after = session.commands('rramhil_train(smub, 2, 0.0001, 3, 0, 0.005, 0.001, false) print("done")')
    assert after == [("smuX", "value"), ("print", "call")]


# --------------------------------------------------------------------------- each driver, every method
def _check_driver(tables: dict[str, CommandTable], model: str, adapter: RecordingAdapter) -> None:
    table = CommandTable(tables[model].table, tables[model].dialect)  # own 'used' record
    problems = table.unknown(adapter.sent)
    assert problems == [], "\n".join(problems)
    assert table.unused() == [], f"{model}: table rows no driver method sends: {table.unused()}"


def test_keithley2600_sends_only_tabled_commands(tables):
    adapter = RecordingAdapter()
    smu = Keithley2600(adapter)
    idn = "Keithley Instruments Inc., Model 2636B, 4123456, 3.3.5"
    steps: list[Step] = [
        ("id", _get("id"), [idn]),
        ("load_scripts", lambda d: d.load_scripts(), []),
        ("arm", lambda d: d.arm("a", 1e-3, 0.1), []),
        ("read_current", lambda d: d.read_current("b", 0.5), ["1.0e-06"]),
        ("start_read_current", lambda d: d.start_read_current("a", 0.2), []),
        ("finish_read_current", lambda d: d.finish_read_current(), ["2.0e-06"]),
        ("pulse_train", lambda d: d.pulse_train("a", 2.0, 1e-4, 3, 5e-3, 1e-3, 0.5), ["1e-6, 2e-6, 3e-6"]),
        ("pulse_train", lambda d: d.pulse_train("b", -2.0, 1e-4, 2, 5e-3, 1e-3), ["done"]),
        ("voltage_sweep", lambda d: d.voltage_sweep("a", [0.0, 0.5], 1e-3, 1e-3), ["1e-9, 0, 2e-6, 0.5"]),
        ("reset_timer", lambda d: d.reset_timer(), []),
        ("elapsed_s", lambda d: d.elapsed_s(), ["1.25"]),
        ("wait", lambda d: d.wait(1.0, 0.4), ["done", "done"]),
        ("outputs_off_nowait", lambda d: d.outputs_off_nowait(["a", "b"]), []),
        ("outputs_off", lambda d: d.outputs_off(["a", "b"]), ["0.000000e+00\t0.000000e+00"]),
    ]
    driven = _drive(smu, adapter, steps)
    assert driven - {"id"} == _own_members(Keithley2600)
    # a fresh connection loads the scripts again before its first train
    assert adapter.sent.count(SCRIPT_LINES[0]) == 1
    _check_driver(tables, "keithley2600", adapter)


def test_keithley2450_sends_only_tabled_commands(tables):
    adapter = RecordingAdapter()
    smu = Keithley2450(adapter)
    steps: list[Step] = [
        ("id", _get("id"), ["KEITHLEY INSTRUMENTS,MODEL 2450,04096218,1.7.12b"]),
        ("arm", lambda d: d.arm("1", 1e-3, 0.1), []),
        ("read_current", lambda d: d.read_current("1", 0.5), ["2.5E-05"]),
        ("start_read_current", lambda d: d.start_read_current("1", 0.2), []),
        ("finish_read_current", lambda d: d.finish_read_current(), ["1.0E-05"]),
        ("pulse_train", lambda d: d.pulse_train("1", 2.0, 1e-3, 3, 5e-3, 1e-3, 0.5), ["1e-6,2e-6,3e-6"]),
        ("pulse_train", lambda d: d.pulse_train("1", -2.0, 1e-3, 2, 5e-3, 1e-3), ["1"]),
        ("voltage_sweep", lambda d: d.voltage_sweep("1", [0.0, 0.5], 1e-3, 1e-3), ["0,1e-9,0.5,2e-6"]),
        ("outputs_off_nowait", lambda d: d.outputs_off_nowait(["1"]), []),
        ("outputs_off", lambda d: d.outputs_off(["1"]), ["0"]),
    ]
    driven = _drive(smu, adapter, steps)
    assert driven - {"id"} == _own_members(Keithley2450)
    _check_driver(tables, "keithley2450", adapter)


_B2900_CONTROLS: dict[str, object] = {
    "source_mode": "voltage",
    "source_shape": "pulse",
    "source_voltage": 0.5,
    "source_voltage_triggered": 2.0,
    "source_current": 1e-3,
    "compliance_current": 1e-3,
    "compliance_voltage": 2.0,
    "pulse_width": 1e-4,
    "pulse_delay": 0.0,
    "output_enabled": False,
    "current_nplc": 0.1,
    "current_aperture": 1e-3,
    "trigger_count": 3,
}
_B2900_REPLIES: dict[str, str] = {"source_mode": "VOLT", "source_shape": "PULS", "output_enabled": "0"}


def test_b2900_sends_only_tabled_commands(tables):
    adapter = RecordingAdapter()
    smu = KeysightB2900(adapter)
    steps: list[Step] = [("id", _get("id"), ["Keysight Technologies,B2902A,MY00000001,3.4.2011.5100"])]
    for attr, value in _B2900_CONTROLS.items():
        steps.append((attr, _channel(attr, value), []))
        steps.append((attr, _channel(attr), [_B2900_REPLIES.get(attr, "+1.000000E-03")]))
    steps += [
        ("current", _channel("current"), ["+1.000000E-06"]),
        ("voltage", _channel("voltage"), ["+5.000000E-01"]),
        ("arm", lambda d: d.arm("1", 1e-3, 0.1), []),
        ("read_current", lambda d: d.read_current("2", 0.5), ["+2.5E-05"]),
        ("start_read_current", lambda d: d.start_read_current("1", 0.2), []),
        ("finish_read_current", lambda d: d.finish_read_current(), ["+1.0E-05"]),
        ("pulse_train", lambda d: d.pulse_train("1", 2.0, 1e-4, 3, 5e-3, 1e-3, 0.5), ["1e-6,2e-6,3e-6"]),
        ("pulse_train", lambda d: d.pulse_train("1", -2.0, 1e-4, 2, 5e-3, 1e-3), ["+1"]),
        ("voltage_sweep", lambda d: d.voltage_sweep("1", [0.0, 0.5], 1e-3, 1e-3), ["0,0.5;1e-9,2e-6"]),
        ("outputs_off_nowait", lambda d: d.outputs_off_nowait(["1", "2"]), []),
        ("outputs_off", lambda d: d.outputs_off(["1", "2"]), ["0;0"]),
    ]
    driven = _drive(smu, adapter, steps)
    assert driven - {"id"} == _own_members(KeysightB2900, B2900Channel)
    _check_driver(tables, "b2900", adapter)


def test_keithley707b_sends_only_tabled_commands(tables):
    adapter = RecordingAdapter()
    matrix = Keithley707B(adapter)
    steps: list[Step] = [
        ("id", _get("id"), ["Keithley Instruments Inc., Model 707B, 1234567, 1.8.0"]),
        ("closed_channels", _get("closed_channels"), ["1A01;1B12"]),
        ("next_error", _get("next_error"), ["0.00000e+00\tQueue Is Empty"]),
        ("check_errors", lambda d: d.check_errors(), ["-285\tsyntax error", "0\tQueue Is Empty"]),
        ("reset", lambda d: d.reset(), []),
        ("setup", lambda d: d.setup(), []),
        ("close_channels", lambda d: d.close_channels(["1A01", "1B02"]), []),
        ("open_channels", lambda d: d.open_channels(["1A01"]), []),
        ("route", lambda d: d.route([("A", 1), ("B", 14)]), ["1A01;2B02"]),
        ("start_route", lambda d: d.start_route([("A", 2), ("B", 14)]), []),
        ("finish_route", lambda d: d.finish_route(), ["1A02;2B02"]),
        ("open_all_nowait", lambda d: d.open_all_nowait(), []),
        ("open_all", lambda d: d.open_all(), ["nil"]),
    ]
    driven = _drive(matrix, adapter, steps)
    assert driven == _own_members(Keithley707B)
    _check_driver(tables, "keithley707b", adapter)


def test_e5250a_sends_only_tabled_commands(tables):
    adapter = RecordingAdapter()
    matrix = KeysightE5250A(adapter, cards=(1, 2))
    steps: list[Step] = [
        ("id", _get("id"), ["Agilent Technologies,E5250A,0,A.01.00"]),
        ("configuration_mode", _set("configuration_mode", "normal"), []),
        ("configuration_mode", _get("configuration_mode"), ["NCON"]),
        ("setup", lambda d: d.setup(), []),
        ("close_channels", lambda d: d.close_channels([10101, 10212]), []),
        ("open_channels", lambda d: d.open_channels([10101]), []),
        ("closed_crosspoints", _get("closed_crosspoints"), ["(@10212);(@)"]),
        ("route", lambda d: d.route([("1", 1), ("2", 14)]), ["(@10101);(@20202)"]),
        ("start_route", lambda d: d.start_route([("1", 2), ("2", 14)]), []),
        ("finish_route", lambda d: d.finish_route(), ["(@10102);(@20202)"]),
        ("open_all_nowait", lambda d: d.open_all_nowait(), []),
        ("open_all", lambda d: d.open_all(), ["(@);(@)"]),
    ]
    driven = _drive(matrix, adapter, steps)
    assert driven - {"id"} == _own_members(KeysightE5250A)
    _check_driver(tables, "e5250a", adapter)


# --------------------------------------------------------------------------- whole runs on an emulated bench
#: the table model of each station instrument model
_TABLE_OF = {
    "keithley2600": "keithley2600",
    "keithley2450": "keithley2450",
    "b2900": "b2900",
    "keithley707b": "keithley707b",
    "keithley708b": "keithley707b",
    "e5250a": "e5250a",
}


@pytest.mark.parametrize("stack", ["2600+707b", "b2900+e5250a", "2450+708b"])
def test_a_whole_run_sends_only_tabled_commands(tables, stack):
    data = station_dict(stack, rows=3, cols=3)
    if stack == "2600+707b":
        data["instruments"]["smu"]["options"]["clock"] = "instrument"
    smu_model, matrix_model = data["instruments"]["smu"]["model"], data["instruments"]["matrix"]["model"]
    received: dict[str, list[str]] = {"smu": [], "matrix": []}
    width = 1e-3 if smu_model == "keithley2450" else 1e-4
    with emulated(data, seed=3, on_message={k: v.append for k, v in received.items()}) as bench:
        backend = build_smu_matrix_backend(bench.station)
        try:
            backend.read("A", None, 0.2)
            backend.pulse("A", [(0, 1), (2, 2)], Pulse(2.0, width), 3, read_after=True, read_voltage_V=0.2)
            backend.pulse("A", [(1, 1)], Pulse(-2.0, width), 2)
            backend.program("A", np.array([[0, 2, 0], [1, 0, 0], [0, 0, 0]]), Pulse(2.0, width))
            backend.iv_sweep("A", 1, 2, np.linspace(0.0, 0.5, 4), 1e-3, dwell_s=1e-3)
            backend.delay(0.01)
            report = backend.safe_state()  # read back from every instrument: all sent has arrived
        finally:
            backend.close()
    assert report.outputs == "off" and report.routes == "open"
    for name, model in (("smu", smu_model), ("matrix", matrix_model)):
        messages = list(received[name])
        assert messages, f"{name}: no message recorded"
        problems = tables[_TABLE_OF[model]].unknown(messages)
        assert problems == [], "\n".join(problems)


# --------------------------------------------------------------------------- split round trips
@pytest.mark.parametrize(
    ("driver_class", "channel", "reply"),
    [(Keithley2600, "a", "1.5e-06"), (Keithley2450, "1", "1.5E-06"), (KeysightB2900, "2", "+1.5E-06")],
)
def test_a_read_split_in_two_is_the_same_round_trip(driver_class: type, channel: str, reply: str) -> None:
    """``start_read_current`` + ``finish_read_current`` put the same message on the wire as
    ``read_current`` and read the same reply (the backend works in between)."""
    whole, split = RecordingAdapter(), RecordingAdapter()
    whole.replies.append(reply)
    split.replies.append(reply)
    current = driver_class(whole).read_current(channel, 0.3)
    smu = driver_class(split)
    smu.start_read_current(channel, 0.3)
    assert split.replies, "the reply was read before finish_read_current"
    assert smu.finish_read_current() == current == pytest.approx(1.5e-6)
    assert split.sent == whole.sent and len(whole.sent) == 1


@pytest.mark.parametrize(
    ("driver_class", "crosspoints", "reply"),
    [
        (Keithley707B, [("A", 3), ("B", 14)], "1A03;2B02"),
        (KeysightE5250A, [("1", 3), ("2", 14)], "(@10103);(@20202)"),
    ],
)
def test_a_route_split_in_two_is_the_same_round_trip(
    driver_class: type, crosspoints: list[tuple[str, int]], reply: str
) -> None:
    whole, split = RecordingAdapter(), RecordingAdapter()
    whole.replies.append(reply)
    split.replies.append(reply)
    closed = driver_class(whole).route(crosspoints)
    matrix = driver_class(split)
    matrix.start_route(crosspoints)
    assert split.replies, "the read-back was read before finish_route"
    assert matrix.finish_route() == closed == set(crosspoints)
    assert split.sent == whole.sent and len(whole.sent) == 1
