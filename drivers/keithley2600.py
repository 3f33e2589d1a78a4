"""Keithley 2600B series System SourceMeter (TSP): pymeasure's driver plus instrument-side trains.

pymeasure's :class:`pymeasure.instruments.keithley.Keithley2600` covers the DC controls of each
channel (``ChA`` / ``ChB``: source mode, levels, limits, ranges, NPLC, output). This subclass adds
what an RRAM experiment needs and pymeasure lacks, all as single TSP messages:

* :meth:`arm` - voltage source, current compliance set *before* the output turns on;
* :meth:`read_current` - source a read voltage, measure, back to 0 V, in one round trip;
* :meth:`pulse_train` - ``count`` pulses made by the instrument's trigger model (source action,
  timer-timed end pulse back to the idle level) with, optionally, a current measurement at the
  idle level after every pulse, all run by a TSP function on the instrument: one round trip
  per train, the readings returned from ``nvbuffer1`` with ``printbuffer``;
* :meth:`voltage_sweep` - a staircase I-V sweep with a dwell per point, one round trip;
* :meth:`outputs_off` - outputs off and read back; :meth:`outputs_off_nowait` - the same
  command without the read-back (one message, no reply awaited).

The TSP functions are loaded once per connection (:meth:`load_scripts`) as the script
``rramhil``. Pulse widths: the 2600B makes pulses with its trigger model and a timer; its
pulse specifications start at 100 us, which is the default lower bound here
(:attr:`min_pulse_width_s`). Shorter widths are possible on the instrument but not specified.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from pymeasure.instruments.keithley import Keithley2600 as _PymeasureKeithley2600

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

#: Name of the TSP script holding the functions below.
SCRIPT_NAME = "rramhil"

#: The TSP functions, one line per message, between ``loadscript`` and ``endscript``.
#: TSP is Lua 5.0: ``table.getn`` counts a table, there is no ``#`` operator.
SCRIPT_LINES: tuple[str, ...] = (
    f"loadscript {SCRIPT_NAME}",
    "function rramhil_train(smu, vp, w, n, vidle, ip, ir, reads)",
    "  smu.source.func = smu.OUTPUT_DCVOLTS",
    "  smu.source.limiti = ir",
    "  smu.source.levelv = vidle",
    "  smu.trigger.source.limiti = ip",
    "  smu.trigger.source.listv({vp})",
    "  smu.trigger.source.action = smu.ENABLE",
    "  smu.trigger.measure.action = smu.DISABLE",
    "  smu.trigger.endpulse.action = smu.SOURCE_IDLE",
    "  trigger.timer[1].reset()",
    "  trigger.timer[1].delay = w",
    "  trigger.timer[1].count = 1",
    "  trigger.timer[1].passthrough = false",
    "  trigger.timer[1].stimulus = smu.trigger.SOURCE_COMPLETE_EVENT_ID",
    "  smu.trigger.endpulse.stimulus = trigger.timer[1].EVENT_ID",
    "  smu.trigger.source.stimulus = 0",
    "  smu.trigger.arm.stimulus = 0",
    "  smu.trigger.arm.count = 1",
    "  smu.source.output = smu.OUTPUT_ON",
    "  smu.nvbuffer1.clear()",
    "  smu.nvbuffer1.appendmode = 1",
    "  if reads then",
    "    smu.trigger.count = 1",
    "    for k = 1, n do",
    "      smu.trigger.initiate()",
    "      waitcomplete()",
    "      smu.measure.i(smu.nvbuffer1)",
    "    end",
    "  else",
    "    smu.trigger.count = n",
    "    smu.trigger.initiate()",
    "    waitcomplete()",
    "  end",
    "  smu.source.levelv = 0",
    "end",
    "function rramhil_sweep(smu, levels, dwell, ilim)",
    "  smu.source.func = smu.OUTPUT_DCVOLTS",
    "  smu.source.limiti = ilim",
    "  smu.source.levelv = 0",
    "  smu.source.output = smu.OUTPUT_ON",
    "  smu.nvbuffer1.clear()",
    "  smu.nvbuffer2.clear()",
    "  smu.nvbuffer1.appendmode = 1",
    "  smu.nvbuffer2.appendmode = 1",
    "  for k = 1, table.getn(levels) do",
    "    smu.source.levelv = levels[k]",
    "    delay(dwell)",
    "    smu.measure.iv(smu.nvbuffer1, smu.nvbuffer2)",
    "  end",
    "  smu.source.levelv = 0",
    "end",
    "endscript",
    f"{SCRIPT_NAME}.run()",
)


class Keithley2600(_PymeasureKeithley2600):
    """Keithley 2600B SourceMeter (TSP) with instrument-side pulse trains and sweeps.

    Args:
        adapter: VISA resource string (e.g. ``TCPIP0::192.168.0.10::5025::SOCKET``) or adapter.
        name: instrument name for logs.
        min_pulse_width_s: shortest pulse :meth:`pulse_train` accepts (s).
        **kwargs: passed to pymeasure's VISA adapter (``timeout`` in ms, ...).
    """

    #: Datasheet maximums per model of the 2600B series (2601B/2602B/2604B: 40 V range to
    #: 40.4 V, 3 A DC to 3.03 A; 2611B/2612B/2614B and 2634B/2635B/2636B: 200 V range to 202 V,
    #: 1.5 A DC to 1.515 A; the 10 A pulse ratings are not used).
    RATINGS: ClassVar[dict[str, SourceRatings]] = {
        **{m: SourceRatings(m, 40.4, 3.03) for m in ("2601B", "2602B", "2604B")},
        **{m: SourceRatings(m, 202.0, 1.515) for m in ("2611B", "2612B", "2614B", "2634B", "2635B", "2636B")},
    }
    FAMILY: ClassVar[str] = "Keithley 2600B"


    channels_available: tuple[str, ...] = ("a", "b")
    #: The 2600B pulse specifications start at 100 us.
    default_min_pulse_width_s: float = 100e-6

    def __init__(
        self,
        adapter: Any,
        name: str = "Keithley 2600B SourceMeter",
        min_pulse_width_s: float | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("read_termination", TERMINATION)
        kwargs.setdefault("write_termination", TERMINATION)
        with warnings.catch_warnings():
            # pymeasure flags the 2600 as "not known to support SCPI"; it answers *IDN? etc.
            warnings.simplefilter("ignore", FutureWarning)
            super().__init__(adapter, name, **kwargs)
        self.min_pulse_width_s = (
            self.default_min_pulse_width_s if min_pulse_width_s is None else min_pulse_width_s
        )
        self.scripts_loaded = False

    # ------------------------------------------------------------------ helpers
    def _smu(self, channel: str) -> str:
        return "smu" + check_choice(channel, self.channels_available, "channel")

    def load_scripts(self) -> None:
        """Load (or reload) the ``rramhil`` TSP functions; once per connection is enough."""
        for line in SCRIPT_LINES:
            self.write(line)
        self.scripts_loaded = True

    def _ensure_scripts(self) -> None:
        if not self.scripts_loaded:
            self.load_scripts()

    # ------------------------------------------------------------------ operations
    def arm(self, channel: str, compliance_A: float, nplc: float = 0.1) -> None:
        """Voltage source at 0 V with current compliance ``compliance_A`` (A), output on.

        The compliance and the level are set before the output turns on, in one message.
        """
        s = self._smu(channel)
        self.write(
            f"{s}.source.func={s}.OUTPUT_DCVOLTS {s}.source.limiti={fmt(compliance_A)} "
            f"{s}.source.levelv=0 {s}.measure.autorangei={s}.AUTORANGE_ON "
            f"{s}.measure.nplc={fmt(nplc)} {s}.source.output={s}.OUTPUT_ON"
        )

    def read_current(self, channel: str, voltage_V: float) -> float:
        """Source ``voltage_V`` (V), measure the current (A), return to 0 V: one round trip."""
        self.start_read_current(channel, voltage_V)
        return self.finish_read_current()

    def start_read_current(self, channel: str, voltage_V: float) -> None:
        """The message of :meth:`read_current`; its reply is left for :meth:`finish_read_current`
        (the host can work while the instrument measures)."""
        s = self._smu(channel)
        self.write(f"{s}.source.levelv={fmt(voltage_V)} print({s}.measure.i()) {s}.source.levelv=0")

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
    ) -> np.ndarray | None:
        """``count`` pulses of ``amplitude_V`` (V) and ``width_s`` (s) from the idle level.

        With ``read_voltage_V`` the idle level is the read voltage and the current (A) is
        measured there after every pulse; the ``count`` currents come back from the buffer.
        Without it the idle level is 0 V and nothing is measured. One round trip either way.
        """
        if width_s < self.min_pulse_width_s:
            raise ValueError(
                f"width_s = {width_s:g} s is below this {self.name}'s minimum pulse width "
                f"{self.min_pulse_width_s:g} s"
            )
        count = int(count)
        if count < 1:
            raise ValueError(f"count = {count} must be >= 1")
        self._ensure_scripts()
        s = self._smu(channel)
        reads = read_voltage_V is not None
        idle = 0.0 if read_voltage_V is None else float(read_voltage_V)
        call = (
            f"rramhil_train({s}, {fmt(amplitude_V)}, {fmt(width_s)}, {count}, {fmt(idle)}, "
            f"{fmt(pulse_compliance_A)}, {fmt(idle_compliance_A)}, {'true' if reads else 'false'})"
        )
        if not reads:
            reply = self.ask(f'{call} print("done")')
            if reply.strip() != "done":
                raise ReplyError(f"{self.name} pulse train: unexpected reply {reply!r}")
            return None
        reply = self.ask(f"{call} printbuffer(1, {count}, {s}.nvbuffer1.readings)")
        return parse_floats(reply, count, f"{self.name} pulse-train readings")

    def voltage_sweep(
        self, channel: str, voltages_V: Sequence[float] | np.ndarray, dwell_s: float, compliance_A: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Staircase sweep: each voltage (V) held ``dwell_s`` (s), then current and voltage measured.

        Returns ``(measured voltage V, current A)``; one round trip.
        """
        levels = list(voltages_V)
        if not levels:
            raise ValueError("voltages_V: give at least one voltage")
        self._ensure_scripts()
        s = self._smu(channel)
        n = len(levels)
        reply = self.ask(
            f"rramhil_sweep({s}, {{{fmt_list(levels)}}}, {fmt(dwell_s)}, {fmt(compliance_A)}) "
            f"printbuffer(1, {n}, {s}.nvbuffer1.readings, {s}.nvbuffer2.readings)"
        )
        values = parse_floats(reply, 2 * n, f"{self.name} sweep readings")
        return values[1::2], values[0::2]

    def reset_timer(self) -> None:
        """Zero the instrument's script timer (``timer.reset()``)."""
        self.write("timer.reset()")

    def elapsed_s(self) -> float:
        """Seconds (s) on the instrument's script timer since :meth:`reset_timer`."""
        return parse_float(self.ask("print(timer.measure.t())"), f"{self.name} timer")

    def wait(self, seconds: float, chunk_s: float) -> None:
        """Wait ``seconds`` (s) on the instrument (TSP ``delay``), in waits of at most ``chunk_s``.

        Each wait is one round trip that returns when the instrument has waited, so no reply is
        ever due later than ``chunk_s`` plus latency (keep it below the VISA timeout). An
        instrument that answers much faster than it was asked to wait (an emulated bench playing
        waits out on its own clock) gets the remainder in one message.
        """
        left = float(seconds)
        if left < 0:
            raise ValueError(f"seconds = {seconds:g} must be >= 0")
        if chunk_s <= 0:
            raise ValueError(f"chunk_s = {chunk_s:g} must be > 0")
        fast_forwarding = False
        while left > 0:
            step = left if fast_forwarding else min(left, chunk_s)
            t0 = time.monotonic()
            reply = self.ask(f'delay({fmt(step)}) print("done")')
            if reply.strip() != "done":
                raise ReplyError(f"{self.name} wait: unexpected reply {reply!r}")
            fast_forwarding = time.monotonic() - t0 < 0.5 * step
            left -= step

    @staticmethod
    def _outputs_off_command(smus: Sequence[str]) -> str:
        return " ".join(f"{s}.source.output={s}.OUTPUT_OFF" for s in smus)

    def outputs_off_nowait(self, channels: Sequence[str]) -> None:
        """Turn the outputs of ``channels`` off: one message, no reply awaited (no read-back)."""
        self.write(self._outputs_off_command([self._smu(c) for c in channels]))

    def outputs_off(self, channels: Sequence[str]) -> list[bool]:
        """Turn the outputs of ``channels`` off and read back their states (True: still on)."""
        smus = [self._smu(c) for c in channels]
        offs = self._outputs_off_command(smus)
        states = ", ".join(f"{s}.source.output" for s in smus)
        reply = self.ask(f"{offs} print({states})")
        values = parse_floats(reply, len(smus), f"{self.name} output states", separator="\t")
        return [bool(v != 0) for v in values]
