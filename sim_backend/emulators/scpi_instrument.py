"""Base of the emulated SCPI instruments: a TCP server whose messages a :class:`ScpiInterpreter` runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sim_backend.emulators.scpi import ScpiInterpreter
from sim_backend.emulators.scpi_server import Fault, InstrumentServer
from sim_backend.emulators.wiring import Wiring


class ScpiInstrument(InstrumentServer):
    """An emulated SCPI instrument. Subclasses declare their commands in :meth:`declare`.

    Common commands every instrument answers: ``*IDN?``, ``*RST``, ``*CLS``, ``*OPC?``,
    ``*OPC``, ``*WAI``, ``*TRG``, ``*ESR?``, ``*STB?``, ``*SRE``, ``*ESE``, ``:SYST:ERR?``.
    """

    idn: str = "Emulated,SCPI,0,1.0"

    def __init__(
        self,
        wiring: Wiring,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float | None = None,
        faults: Iterable[Fault] = (),
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(host, port, latency_s, faults, on_message)
        self.wiring = wiring
        self.scpi = ScpiInterpreter()
        s = self.scpi
        s.add_common("*IDN?", lambda p, x: self.idn)
        s.add_common("*RST", lambda p, x: self.reset_state())
        s.add_common("*CLS", lambda p, x: s.errors.clear())
        s.add_common("*OPC?", lambda p, x: "1")
        for name in ("*OPC", "*WAI", "*TRG", "*SRE", "*ESE"):
            s.add_common(name, lambda p, x: None)
        s.add_common("*ESR?", lambda p, x: "0")
        s.add_common("*STB?", lambda p, x: "0")
        s.add(":SYSTem:ERRor[:NEXT]", None, lambda p, x: self.format_error(*s.next_error()))
        s.add(":SYSTem:CLEar", lambda p, x: s.errors.clear())
        s.add(":STATus:PRESet", lambda p, x: None)
        self.declare()
        self.reset_state()

    def declare(self) -> None:
        """Declare the model's commands on ``self.scpi`` (subclasses)."""

    def format_error(self, code: int, message: str) -> str:
        return f"{code:+d},{message}"

    def handle_message(self, message: str) -> str | None:
        with self.wiring.frozen():
            return self.scpi.execute(message)
