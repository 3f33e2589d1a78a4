"""One emulated SMU channel: source state, and what it does to the devices it is wired to.

Every SMU emulator (2450, 2600B, B2900) keeps one :class:`SourceChannel` per channel and maps
its own command set onto it. The channel turns state changes into physics through the bench
:class:`~sim_backend.emulators.wiring.Wiring`:

* while the output is on, the source level held from one change to the next is a *segment*:
  a segment that can switch the devices (a held programming voltage) is applied as a pulse of
  that duration; idle and read levels change nothing;
* :meth:`SourceChannel.pulse` is an instrument-side pulse of exact width from the idle level
  (trigger models, pulse mode);
* :meth:`SourceChannel.measure` measures at the present level (instantaneous on the bench
  clock; the per-message latency stands in for the integration time).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim_backend.emulators.wiring import Measurement, Wiring


@dataclass
class SourceDefaults:
    """Power-on values of a channel (model specific)."""

    limit_i_A: float = 1.05e-4
    limit_v_V: float = 21.0
    nplc: float = 1.0


class SourceChannel:
    """State and physics of one SMU channel.

    Attributes:
        output_on: the output relay state.
        func: ``"VOLT"`` (voltage source) or ``"CURR"`` (current source).
        level_v / level_i: the DC source level (V / A).
        limit_i / limit_v: compliance of the voltage / current source (A / V).
        nplc: measurement integration time in power-line cycles.
        in_compliance: whether the last measurement hit the compliance.
    """

    def __init__(
        self, wiring: Wiring, smu: str, channel: str, defaults: SourceDefaults | None = None
    ) -> None:
        self.wiring = wiring
        self.smu = smu
        self.channel = channel
        self.defaults = defaults or SourceDefaults()
        self.reset()

    def reset(self) -> None:
        """Power-on state: output off, 0 V voltage source, default limits."""
        self.output_on = False
        self.func = "VOLT"
        self.level_v = 0.0
        self.level_i = 0.0
        self.limit_i = self.defaults.limit_i_A
        self.limit_v = self.defaults.limit_v_V
        self.nplc = self.defaults.nplc
        self.in_compliance = False
        self.last = Measurement(0.0, 0.0, False)
        self._since = self.wiring.now()

    # ------------------------------------------------------------------ segments
    def _close_segment(self) -> None:
        t = self.wiring.now()
        if self.output_on and self.func == "VOLT" and t > self._since:
            # durations come from clock differences: drop the float rounding of the clock
            duration = float(f"{t - self._since:.10g}")
            self.wiring.stimulus(self.smu, self.channel, self.level_v, duration, self.limit_i)
        self._since = t

    def set_output(self, on: bool) -> None:
        if bool(on) != self.output_on:
            self._close_segment()
            self.output_on = bool(on)

    def set_func(self, func: str) -> None:
        if func not in ("VOLT", "CURR"):
            raise ValueError(f"source function '{func}'")
        if func != self.func:
            self._close_segment()
            self.func = func

    def set_level_v(self, volts: float) -> None:
        if float(volts) != self.level_v:
            self._close_segment()
            self.level_v = float(volts)

    def set_level_i(self, amps: float) -> None:
        if float(amps) != self.level_i:
            self._close_segment()
            self.level_i = float(amps)

    def set_limit_i(self, amps: float) -> None:
        if abs(float(amps)) != self.limit_i:
            self._close_segment()
            self.limit_i = abs(float(amps))

    def set_limit_v(self, volts: float) -> None:
        self._close_segment()
        self.limit_v = abs(float(volts))

    def hold(self, seconds: float) -> None:
        """Time passes at the present level (instrument-side wait)."""
        self.wiring.advance(seconds)

    # ------------------------------------------------------------------ actions
    def pulse(self, amplitude_V: float, width_s: float, limit_A: float | None = None) -> None:
        """An instrument-side pulse of exactly ``width_s`` (s) at ``amplitude_V`` (V), back to the
        present (idle) level afterwards. Nothing happens with the output off."""
        self._close_segment()
        if self.output_on and width_s > 0:
            limit = self.limit_i if limit_A is None else abs(limit_A)
            self.wiring.stimulus(self.smu, self.channel, amplitude_V, width_s, limit)
        self.wiring.advance(max(width_s, 0.0))
        self._since = self.wiring.now()

    def measure(self) -> Measurement:
        """Measure at the present level: current and voltage at the HI terminal.

        With the output off the terminals are disconnected: 0 A, 0 V."""
        self._close_segment()
        if not self.output_on:
            m = Measurement(0.0, 0.0, False)
        elif self.func == "VOLT":
            m = self.wiring.measure_v(self.smu, self.channel, self.level_v, self.limit_i)
        else:
            m = self.wiring.measure_i(self.smu, self.channel, self.level_i, self.limit_v)
        self.in_compliance = m.in_compliance
        self.last = m
        return m

    def measure_at(self, amplitude_V: float, width_s: float, limit_A: float | None = None) -> Measurement:
        """A pulse to ``amplitude_V`` (V) for ``width_s`` (s) measured at its end (pulsed I-V)."""
        self._close_segment()
        saved = (self.level_v, self.limit_i)
        self.level_v = float(amplitude_V)
        if limit_A is not None:
            self.limit_i = abs(limit_A)
        self._since = self.wiring.now()
        self.wiring.advance(max(width_s, 0.0))
        m = self.measure()
        self.level_v, self.limit_i = saved
        self._since = self.wiring.now()
        return m
