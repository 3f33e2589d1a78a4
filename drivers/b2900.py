"""Keysight B2900 series Precision Source/Measure Units (B2901A/B2902A/B2911A/B2912A ...), SCPI.

pymeasure has no B2900 driver, so this one is complete in itself: per-channel declarative
controls (:class:`B2900Channel`, reached as ``smu.ch_1`` / ``smu.ch_2``) and the operations an RRAM
experiment needs, each one SCPI message:

* :meth:`KeysightB2900.arm` - voltage source, current compliance (``:SENS:CURR:PROT``) set
  *before* ``:OUTP ON``;
* :meth:`KeysightB2900.read_current` - ``:SOUR:VOLT``, ``:MEAS:CURR?``, back to 0 V;
* :meth:`KeysightB2900.pulse_train` - pulse mode (``:SOUR:FUNC:SHAP PULS``): the base level is
  the idle level (the read voltage, or 0 V), every transient trigger of the timer makes one
  pulse to ``:SOUR:VOLT:TRIG`` of ``:SOUR:PULS:WIDT``, and with reads every acquire trigger
  measures at the base level after the pulse (``:TRIG:ACQ:DEL`` past the pulse's end). The
  readings come back from the instrument's buffer with ``:FETC:ARR:CURR?``, in the same
  message: one round trip per train;
* :meth:`KeysightB2900.voltage_sweep` - list sweep (``:SOUR:VOLT:MODE LIST``), one message;
* :meth:`KeysightB2900.outputs_off` - ``:OUTP OFF`` and read back;
  :meth:`KeysightB2900.outputs_off_nowait` - ``:OUTP OFF`` alone (no reply awaited).

Pulse width: the B2900's pulse widths run from 50 us (B2901A/B2902A; 10 us on the B2910
models) to 100000 s; 50 us is the default lower bound here (``min_pulse_width_s``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pymeasure.instruments import Channel, Instrument, SCPIMixin
from pymeasure.instruments.validators import strict_discrete_set, strict_range

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

#: Time (s) after a pulse's trailing edge before the base-level measurement starts.
SETTLE_AFTER_PULSE_S = 20e-6
#: Shortest and longest measurement aperture (s) of the B2900.
APERTURE_RANGE_S = (8e-6, 2.0)


class B2900Channel(Channel):
    """One source/measure channel of a B2900 (``{ch}`` is 1 or 2)."""

    source_mode = Channel.control(
        ":SOUR{ch}:FUNC:MODE?",
        ":SOUR{ch}:FUNC:MODE %s",
        """Control the source function: 'voltage' or 'current'.""",
        validator=strict_discrete_set,
        values={"voltage": "VOLT", "current": "CURR"},
        map_values=True,
    )
    source_shape = Channel.control(
        ":SOUR{ch}:FUNC:SHAP?",
        ":SOUR{ch}:FUNC:SHAP %s",
        """Control the output shape: 'dc' or 'pulse'.""",
        validator=strict_discrete_set,
        values={"dc": "DC", "pulse": "PULS"},
        map_values=True,
    )
    source_voltage = Channel.control(
        ":SOUR{ch}:VOLT?",
        ":SOUR{ch}:VOLT %g",
        """Control the output voltage (V), the base level in pulse mode.""",
        validator=strict_range,
        values=[-210, 210],
    )
    source_voltage_triggered = Channel.control(
        ":SOUR{ch}:VOLT:TRIG?",
        ":SOUR{ch}:VOLT:TRIG %g",
        """Control the voltage (V) applied at a trigger: the pulse peak in pulse mode.""",
        validator=strict_range,
        values=[-210, 210],
    )
    source_current = Channel.control(
        ":SOUR{ch}:CURR?",
        ":SOUR{ch}:CURR %g",
        """Control the output current (A).""",
        validator=strict_range,
        values=[-3.03, 3.03],
    )
    compliance_current = Channel.control(
        ":SENS{ch}:CURR:PROT?",
        ":SENS{ch}:CURR:PROT %g",
        """Control the current compliance (A) of the voltage source.""",
        validator=strict_range,
        values=[1e-12, 3.03],
    )
    compliance_voltage = Channel.control(
        ":SENS{ch}:VOLT:PROT?",
        ":SENS{ch}:VOLT:PROT %g",
        """Control the voltage compliance (V) of the current source.""",
        validator=strict_range,
        values=[0, 210],
    )
    pulse_width = Channel.control(
        ":SOUR{ch}:PULS:WIDT?",
        ":SOUR{ch}:PULS:WIDT %g",
        """Control the pulse width (s), 50 us to 100000 s.""",
        validator=strict_range,
        values=[1e-5, 1e5],
    )
    pulse_delay = Channel.control(
        ":SOUR{ch}:PULS:DEL?",
        ":SOUR{ch}:PULS:DEL %g",
        """Control the delay (s) from the trigger to the pulse's leading edge.""",
        validator=strict_range,
        values=[0, 99999.9],
    )
    output_enabled = Channel.control(
        ":OUTP{ch}?",
        ":OUTP{ch} %d",
        """Control the output relay (True: on).""",
        validator=strict_discrete_set,
        values={True: 1, False: 0},
        map_values=True,
    )
    current_nplc = Channel.control(
        ":SENS{ch}:CURR:NPLC?",
        ":SENS{ch}:CURR:NPLC %g",
        """Control the current measurement integration time in power-line cycles.""",
        validator=strict_range,
        values=[4e-4, 100],
    )
    current_aperture = Channel.control(
        ":SENS{ch}:CURR:APER?",
        ":SENS{ch}:CURR:APER %g",
        """Control the current measurement aperture (s), 8 us to 2 s.""",
        validator=strict_range,
        values=list(APERTURE_RANGE_S),
    )
    trigger_count = Channel.control(
        ":TRIG{ch}:COUN?",
        ":TRIG{ch}:COUN %d",
        """Control the trigger count (transient and acquire).""",
        validator=strict_range,
        values=[1, 100000],
        cast=int,
    )
    current = Channel.measurement(":MEAS:CURR? (@{ch})", """Measure the current (A) (spot measurement).""")
    voltage = Channel.measurement(":MEAS:VOLT? (@{ch})", """Measure the voltage (V) (spot measurement).""")


class KeysightB2900(SCPIMixin, Instrument):
    """Keysight B2900 series SMU.

    Args:
        adapter: VISA resource string (``TCPIP0::host::5025::SOCKET``) or adapter.
        name: instrument name for logs.
        min_pulse_width_s: shortest pulse :meth:`pulse_train` accepts (s), 50 us by default.
        line_frequency_Hz: power-line frequency used to turn NPLC into an aperture.
        **kwargs: passed to pymeasure's VISA adapter.
    """

    #: Datasheet maximums per model of the B2900 series (every model: 200 V range to 210 V,
    #: 3 A DC to 3.03 A; the 10.5 A pulse rating is not used).
    RATINGS: ClassVar[dict[str, SourceRatings]] = {
        m: SourceRatings(m, 210.0, 3.03)
        for m in ("B2901A", "B2902A", "B2911A", "B2912A", "B2961A", "B2962A", "B2901B", "B2902B", "B2911B", "B2912B")
    }
    FAMILY: ClassVar[str] = "Keysight B2900"


    ch_1 = Instrument.ChannelCreator(B2900Channel, "1")
    ch_2 = Instrument.ChannelCreator(B2900Channel, "2")

    channels_available: tuple[str, ...] = ("1", "2")
    default_min_pulse_width_s: float = 50e-6

    def __init__(
        self,
        adapter: Any,
        name: str = "Keysight B2900 SMU",
        min_pulse_width_s: float | None = None,
        line_frequency_Hz: float = 50.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("read_termination", TERMINATION)
        kwargs.setdefault("write_termination", TERMINATION)
        super().__init__(adapter, name, **kwargs)
        self.min_pulse_width_s = (
            self.default_min_pulse_width_s if min_pulse_width_s is None else min_pulse_width_s
        )
        self.line_frequency_Hz = line_frequency_Hz

    def _ch(self, channel: str) -> str:
        return check_choice(channel, self.channels_available, "channel")

    def _aperture(self, nplc: float) -> float:
        lo, hi = APERTURE_RANGE_S
        return min(max(nplc / self.line_frequency_Hz, lo), hi)

    # ------------------------------------------------------------------ operations
    def arm(self, channel: str, compliance_A: float, nplc: float = 0.1) -> None:
        """DC voltage source at 0 V, current compliance ``compliance_A`` (A), then output on."""
        c = self._ch(channel)
        self.write(
            f":SOUR{c}:FUNC:MODE VOLT;:SOUR{c}:FUNC:SHAP DC;:SOUR{c}:VOLT:MODE FIX;"
            f":SOUR{c}:VOLT:RANG:AUTO ON;:SENS{c}:CURR:PROT {fmt(compliance_A)};:SOUR{c}:VOLT 0;"
            f':SENS{c}:FUNC "CURR";:SENS{c}:CURR:RANG:AUTO ON;:SENS{c}:CURR:NPLC {fmt(nplc)};:OUTP{c} ON'
        )

    def read_current(self, channel: str, voltage_V: float) -> float:
        """Source ``voltage_V`` (V), measure the current (A), back to 0 V: one round trip."""
        self.start_read_current(channel, voltage_V)
        return self.finish_read_current()

    def start_read_current(self, channel: str, voltage_V: float) -> None:
        """The message of :meth:`read_current`; its reply is left for :meth:`finish_read_current`
        (the host can work while the instrument measures)."""
        c = self._ch(channel)
        self.write(f":SOUR{c}:VOLT {fmt(voltage_V)};:MEAS:CURR? (@{c});:SOUR{c}:VOLT 0")

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
        """``count`` pulses of ``amplitude_V`` (V) and ``width_s`` (s) on the idle (base) level.

        With ``read_voltage_V`` the base is the read voltage and the current (A) is measured on
        it after every pulse; the ``count`` readings come from the buffer in the same message.
        The compliance during the train is ``max(pulse_compliance_A, idle_compliance_A)`` (the
        B2900 has one limit per channel). One round trip.
        """
        c = self._ch(channel)
        if width_s < self.min_pulse_width_s:
            raise ValueError(
                f"width_s = {width_s:g} s is below this {self.name}'s minimum pulse width "
                f"{self.min_pulse_width_s:g} s"
            )
        count = int(count)
        if count < 1:
            raise ValueError(f"count = {count} must be >= 1")
        reads = read_voltage_V is not None
        base = 0.0 if read_voltage_V is None else float(read_voltage_V)
        aperture = self._aperture(nplc)
        acquire_delay = width_s + SETTLE_AFTER_PULSE_S
        period = acquire_delay + aperture + 50e-6 if reads else 2 * width_s + 50e-6
        compliance = max(pulse_compliance_A, idle_compliance_A)
        setup = (
            f":OUTP{c} OFF;:SOUR{c}:FUNC:MODE VOLT;:SOUR{c}:VOLT:MODE FIX;"
            f":SENS{c}:CURR:PROT {fmt(compliance)};:SOUR{c}:VOLT {fmt(base)};"
            f":SOUR{c}:VOLT:TRIG {fmt(amplitude_V)};:SOUR{c}:FUNC:SHAP PULS;:SOUR{c}:PULS:DEL 0;"
            f":SOUR{c}:PULS:WIDT {fmt(width_s)};:SENS{c}:CURR:APER {fmt(aperture)};"
            f":TRIG{c}:SOUR TIM;:TRIG{c}:TIM {fmt(period)};:TRIG{c}:COUN {count};"
            f":TRIG{c}:TRAN:DEL 0;:TRIG{c}:ACQ:DEL {fmt(acquire_delay)};:OUTP{c} ON"
        )
        restore = f":SOUR{c}:FUNC:SHAP DC;:SOUR{c}:VOLT 0"
        if not reads:
            reply = self.ask(f"{setup};:INIT:TRAN (@{c});*WAI;*OPC?;{restore}")
            if reply.strip() not in ("1", "+1"):
                raise ReplyError(f"{self.name} pulse train: unexpected reply {reply!r}")
            return None
        reply = self.ask(f"{setup};:INIT (@{c});*WAI;:FETC:ARR:CURR? (@{c});{restore}")
        return parse_floats(reply, count, f"{self.name} pulse-train readings")

    def voltage_sweep(
        self,
        channel: str,
        voltages_V: Sequence[float] | np.ndarray,
        dwell_s: float,
        compliance_A: float,
        nplc: float = 0.1,
    ) -> tuple[np.ndarray, np.ndarray]:
        """List sweep: each voltage (V) held ``dwell_s`` (s), measured at the end of the point.

        Returns ``(measured voltage V, current A)``; one round trip.
        """
        c = self._ch(channel)
        levels = list(voltages_V)
        if not levels:
            raise ValueError("voltages_V: give at least one voltage")
        n = len(levels)
        aperture = min(self._aperture(nplc), max(0.5 * dwell_s, APERTURE_RANGE_S[0]))
        acquire_delay = max(dwell_s - aperture - 10e-6, 0.0)
        reply = self.ask(
            f":OUTP{c} OFF;:SOUR{c}:FUNC:MODE VOLT;:SOUR{c}:FUNC:SHAP DC;"
            f":SENS{c}:CURR:PROT {fmt(compliance_A)};:SOUR{c}:VOLT 0;:SOUR{c}:VOLT:MODE LIST;"
            f":SOUR{c}:LIST:VOLT {fmt_list(levels)};:SENS{c}:CURR:APER {fmt(aperture)};"
            f":TRIG{c}:SOUR TIM;:TRIG{c}:TIM {fmt(dwell_s)};:TRIG{c}:COUN {n};:TRIG{c}:TRAN:DEL 0;"
            f":TRIG{c}:ACQ:DEL {fmt(acquire_delay)};:OUTP{c} ON;:INIT (@{c});*WAI;"
            f":FETC:ARR:VOLT? (@{c});:FETC:ARR:CURR? (@{c});:SOUR{c}:VOLT:MODE FIX;:SOUR{c}:VOLT 0"
        )
        parts = reply.split(";")
        if len(parts) != 2:
            raise ReplyError(f"{self.name} sweep: expected voltages;currents, got {reply[:80]!r}")
        volts = parse_floats(parts[0], n, f"{self.name} sweep voltages")
        amps = parse_floats(parts[1], n, f"{self.name} sweep currents")
        return volts, amps

    @staticmethod
    def _outputs_off_command(chans: Sequence[str]) -> str:
        return ";".join(f":OUTP{c} OFF" for c in chans)

    def outputs_off_nowait(self, channels: Sequence[str]) -> None:
        """Turn the outputs of ``channels`` off: one message, no reply awaited (no read-back)."""
        self.write(self._outputs_off_command([self._ch(c) for c in channels]))

    def outputs_off(self, channels: Sequence[str]) -> list[bool]:
        """Turn the outputs of ``channels`` off and read them back (True: still on)."""
        chans = [self._ch(c) for c in channels]
        offs = self._outputs_off_command(chans)
        queries = ";".join(f":OUTP{c}?" for c in chans)
        reply = self.ask(f"{offs};{queries}")
        values = parse_floats(reply, len(chans), f"{self.name} output states", separator=";")
        return [bool(v != 0) for v in values]
