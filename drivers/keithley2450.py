"""Keithley 2450 SourceMeter (SCPI): pymeasure's driver plus trigger-model pulse trains.

pymeasure's :class:`pymeasure.instruments.keithley.Keithley2450` covers the DC controls
(source function, levels, limits, ranges, NPLC, ``:READ?``). This subclass adds, in the 2450's
native SCPI command set:

* :meth:`arm` - voltage source at 0 V, current limit set *before* the output turns on;
* :meth:`read_current` - source a read voltage, ``:READ?``, back to 0 V: one round trip;
* :meth:`pulse_train` - pulses made by the 2450's trigger model: a source configuration list
  holds the pulse level and the idle level; the model recalls the pulse level, waits the
  width (constant-delay block), recalls the idle level, optionally measures there, and loops
  ``count`` times. Two messages per train: the setup, then ``:INIT;*WAI`` and the readings from
  ``defbuffer1`` with ``:TRAC:DATA?``;
* :meth:`voltage_sweep` - the 2450's list sweep with source readback, two messages;
* :meth:`outputs_off` - ``:OUTP OFF`` and read back; :meth:`outputs_off_nowait` - ``:OUTP OFF``
  alone (one message, no reply awaited).

**Shortest pulse.** The 2450 has no pulse mode and Keithley specifies no pulse width for it.
A pulse here is a configuration-list recall, a constant delay and a recall back: its edges take
the source's settling time (tens of microseconds up to about 100 us depending on range and
load) and each trigger-model block adds some tens of microseconds of latency. So that the
programmed delay dominates the width (edges below 10 % of it), this driver refuses pulses
shorter than 1 ms by default (``min_pulse_width_s``). Use a 2600B (from 100 us) or a B2900
(from 50 us) for the paper's 100 us pulses.

The configuration list is created on first use (``:SOUR:CONF:LIST:CRE``) and overwritten by
index afterwards; the setup is sent with the output off so that storing the pulse level never
drives the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pymeasure.instruments.keithley import Keithley2450 as _PymeasureKeithley2450

from drivers.common import (
    TERMINATION,
    ReplyError,
    SourceRatings,
    check_choice,
    fmt,
    fmt_list,
    parse_float,
    parse_floats,
)

#: Name of the source configuration list that holds the pulse (index 1) and idle (2) levels.
CONFIG_LIST = "rramhil"

#: 2450 voltage source ranges (V).
VOLTAGE_RANGES_V: tuple[float, ...] = (0.02, 0.2, 2.0, 20.0, 200.0)


def voltage_range(*levels: float) -> float:
    """The smallest 2450 source range (V) that holds every level (ranges go 5 % over)."""
    peak = max(abs(v) for v in levels)
    for r in VOLTAGE_RANGES_V:
        if peak <= 1.05 * r:
            return r
    raise ValueError(f"voltage {peak:g} V exceeds the 2450's 210 V")


class Keithley2450(_PymeasureKeithley2450):
    """Keithley 2450 SourceMeter with trigger-model pulse trains and list sweeps.

    Args:
        adapter: VISA resource string (``TCPIP0::host::5025::SOCKET``) or adapter.
        name: instrument name for logs.
        min_pulse_width_s: shortest pulse :meth:`pulse_train` accepts (s), 1 ms by default.
        **kwargs: passed to pymeasure's VISA adapter.
    """

    #: Datasheet maximums of the 2450 (200 V range to 210 V, 1 A range to 1.05 A). The 2460 and
    #: 2461 (105 V, 7.35 A) speak the same commands but are other instruments: not this driver's.
    RATINGS: ClassVar[dict[str, SourceRatings]] = {"2450": SourceRatings("2450", 210.0, 1.05)}
    FAMILY: ClassVar[str] = "Keithley 2450"


    channels_available: tuple[str, ...] = ("1",)
    default_min_pulse_width_s: float = 1e-3

    def __init__(
        self,
        adapter: Any,
        name: str = "Keithley 2450 SourceMeter",
        min_pulse_width_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("read_termination", TERMINATION)
        kwargs.setdefault("write_termination", TERMINATION)
        super().__init__(adapter, name, **kwargs)
        self.min_pulse_width_s = (
            self.default_min_pulse_width_s if min_pulse_width_s is None else min_pulse_width_s
        )
        self.config_list_created = False

    def _check(self, channel: str) -> None:
        check_choice(channel, self.channels_available, "channel")

    # ------------------------------------------------------------------ operations
    def arm(self, channel: str, compliance_A: float, nplc: float = 0.1) -> None:
        """Voltage source at 0 V, current limit ``compliance_A`` (A), then output on (one message)."""
        self._check(channel)
        self.write(
            f":SOUR:FUNC VOLT;:SOUR:VOLT:RANG:AUTO ON;:SOUR:VOLT:ILIM {fmt(compliance_A)};:SOUR:VOLT 0;"
            f':SENS:FUNC "CURR";:SENS:CURR:RANG:AUTO ON;:SENS:CURR:NPLC {fmt(nplc)};:OUTP ON'
        )

    def read_current(self, channel: str, voltage_V: float) -> float:
        """Source ``voltage_V`` (V), ``:READ?`` the current (A), return to 0 V: one round trip."""
        self.start_read_current(channel, voltage_V)
        return self.finish_read_current()

    def start_read_current(self, channel: str, voltage_V: float) -> None:
        """The message of :meth:`read_current`; its reply is left for :meth:`finish_read_current`
        (the host can work while the instrument measures)."""
        self._check(channel)
        self.write(f":SOUR:VOLT {fmt(voltage_V)};:READ?;:SOUR:VOLT 0")

    def finish_read_current(self) -> float:
        """The current (A) that :meth:`start_read_current` asked for."""
        return parse_float(self.read(), f"{self.name} read current")

    def pulse_train(
        self,
        channel: str,
        amplitude_V: float,
        width_s: float,
        count: int,
        pulse_compliance_A: float,
        idle_compliance_A: float,
        read_voltage_V: float | None = None,
        nplc: float = 0.1,
    ) -> np.ndarray | None:
        """``count`` pulses of ``amplitude_V`` (V), ``width_s`` (s) from the idle level, by the
        trigger model; with ``read_voltage_V`` the idle level is the read voltage and the current
        (A) is measured there after every pulse. Two messages per train."""
        self._check(channel)
        if width_s < self.min_pulse_width_s:
            raise ValueError(
                f"width_s = {width_s:g} s is below this {self.name}'s minimum pulse width "
                f"{self.min_pulse_width_s:g} s (the 2450 has no pulse mode; see drivers/keithley2450.py)"
            )
        count = int(count)
        if count < 1:
            raise ValueError(f"count = {count} must be >= 1")
        reads = read_voltage_V is not None
        idle = 0.0 if read_voltage_V is None else float(read_voltage_V)
        rng = voltage_range(amplitude_V, idle)
        create = "" if self.config_list_created else f':SOUR:CONF:LIST:CRE "{CONFIG_LIST}";'
        blocks = [
            ':TRIG:LOAD "Empty"',
            ":TRIG:BLOC:BUFF:CLE 1",
            f':TRIG:BLOC:CONF:REC 2, "{CONFIG_LIST}", 1',
            f":TRIG:BLOC:DEL:CONS 3, {fmt(width_s)}",
            f':TRIG:BLOC:CONF:REC 4, "{CONFIG_LIST}", 2',
        ]
        blocks += (
            [":TRIG:BLOC:MEAS 5", f":TRIG:BLOC:BRAN:COUN 6, {count}, 2"]
            if reads
            else [f":TRIG:BLOC:BRAN:COUN 5, {count}, 2"]
        )
        self.write(
            f":OUTP OFF;:SOUR:FUNC VOLT;:SOUR:VOLT:RANG {fmt(rng)};"
            f':SENS:FUNC "CURR";:SENS:CURR:RANG:AUTO ON;:SENS:CURR:NPLC {fmt(nplc)};{create}'
            f":SOUR:VOLT:ILIM {fmt(pulse_compliance_A)};:SOUR:VOLT {fmt(amplitude_V)};"
            f':SOUR:CONF:LIST:STOR "{CONFIG_LIST}", 1;'
            f":SOUR:VOLT:ILIM {fmt(idle_compliance_A)};:SOUR:VOLT {fmt(idle)};"
            f':SOUR:CONF:LIST:STOR "{CONFIG_LIST}", 2;' + ";".join(blocks) + ";:OUTP ON"
        )
        self.config_list_created = True
        if not reads:
            reply = self.ask(":INIT;*WAI;*OPC?;:SOUR:VOLT 0")
            if reply.strip() != "1":
                raise ReplyError(f"{self.name} pulse train: unexpected reply {reply!r}")
            return None
        reply = self.ask(f':INIT;*WAI;:TRAC:DATA? 1, {count}, "defbuffer1", READ;:SOUR:VOLT 0')
        return parse_floats(reply, count, f"{self.name} pulse-train readings")

    def voltage_sweep(
        self, channel: str, voltages_V: Sequence[float] | np.ndarray, dwell_s: float, compliance_A: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """List sweep: each voltage (V) held ``dwell_s`` (s) then measured. Returns
        ``(source readback V, current A)``; two messages."""
        self._check(channel)
        levels = list(voltages_V)
        if not levels:
            raise ValueError("voltages_V: give at least one voltage")
        n = len(levels)
        self.write(
            f":OUTP OFF;:SOUR:FUNC VOLT;:SOUR:VOLT:RANG {fmt(voltage_range(*levels))};"
            f":SOUR:VOLT:ILIM {fmt(compliance_A)};:SOUR:VOLT:READ:BACK ON;:SOUR:VOLT 0;"
            f':SENS:FUNC "CURR";:SENS:CURR:RANG:AUTO ON;'
            f":SOUR:LIST:VOLT {fmt_list(levels)};:SOUR:SWE:VOLT:LIST 1, {fmt(dwell_s)};:OUTP ON"
        )
        reply = self.ask(f':INIT;*WAI;:TRAC:DATA? 1, {n}, "defbuffer1", SOUR, READ;:SOUR:VOLT 0')
        values = parse_floats(reply, 2 * n, f"{self.name} sweep readings")
        return values[0::2], values[1::2]

    def outputs_off_nowait(self, channels: Sequence[str] = ("1",)) -> None:
        """Output off: one message, no reply awaited (no read-back)."""
        for c in channels:
            self._check(c)
        self.write(":OUTP OFF")

    def outputs_off(self, channels: Sequence[str] = ("1",)) -> list[bool]:
        """Output off and read back (``[True]`` if it is still on)."""
        for c in channels:
            self._check(c)
        reply = self.ask(":OUTP OFF;:OUTP?")
        return [parse_float(reply, f"{self.name} output state") != 0]
