"""Base of the emulated SCPI instruments: a TCP server whose messages a :class:`ScpiInterpreter` runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sim_backend.emulators.scpi import (
    ESR_OPC,
    EventRegister,
    Handler,
    ScpiInterpreter,
    missing_parameter,
    number,
    parameter_not_allowed,
)
from sim_backend.emulators.scpi_server import Fault, InstrumentServer
from sim_backend.emulators.wiring import Wiring


class ScpiInstrument(InstrumentServer):
    """An emulated SCPI instrument. Subclasses declare their commands in :meth:`declare`.

    The IEEE 488.2 common commands every instrument answers (IEEE Std 488.2-1992 section 10;
    the same list in the Keithley 2450 Reference Manual 2450-901-01, "Common commands"):
    ``*IDN?``, ``*RST``, ``*TST?`` (0: passed), ``*CLS`` (event registers and error queue
    cleared, enable registers kept), ``*ESR?`` (read and clear), ``*ESE``/``*ESE?``,
    ``*SRE``/``*SRE?``, ``*STB?``, ``*OPC`` (sets OPC in the ESR: every command runs to
    completion before the next, so at once), ``*OPC?`` (1), ``*WAI``, ``*TRG``; and the SCPI-99
    mandatory ``:SYSTem:ERRor[:NEXT]?`` and ``:STATus`` registers (``:OPERation`` and
    ``:QUEStionable`` ``[:EVENt]?``, ``:CONDition?``, ``:ENABle``; ``:PRESet``).
    A common command takes no parameter unless the standard gives it one (-108 otherwise).
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
        st = s.status
        s.add_common("*IDN?", _no_params("*IDN?", lambda: self.idn))
        s.add_common("*RST", _no_params("*RST", self.reset_state))
        s.add_common("*TST?", _no_params("*TST?", lambda: "0"))
        s.add_common("*CLS", _no_params("*CLS", s.clear_status))
        s.add_common("*OPC?", _no_params("*OPC?", lambda: "1"))
        s.add_common("*OPC", _no_params("*OPC", self._operation_complete))
        s.add_common("*WAI", _no_params("*WAI", lambda: None))
        s.add_common("*TRG", _no_params("*TRG", self.bus_trigger))
        s.add_common("*ESR?", _no_params("*ESR?", lambda: str(self._read_esr())))
        s.add_common("*STB?", _no_params("*STB?", lambda: str(s.status_byte())))
        s.add_common("*ESE", lambda p, x: setattr(st, "ese", _register_value("*ESE", p)))
        s.add_common("*ESE?", _no_params("*ESE?", lambda: str(st.ese)))
        s.add_common("*SRE", lambda p, x: setattr(st, "sre", _register_value("*SRE", p) & ~64))
        s.add_common("*SRE?", _no_params("*SRE?", lambda: str(st.sre)))
        s.add(":SYSTem:ERRor[:NEXT]", None, lambda p, x: self.format_error(*s.next_error()))
        s.add(":SYSTem:CLEar", lambda p, x: s.errors.clear())
        s.add(":STATus:PRESet", lambda p, x: st.preset())
        for name, reg in (("OPERation", st.operation), ("QUEStionable", st.questionable)):
            s.add(f":STATus:{name}[:EVENt]", None, _read_event(reg))
            s.add(f":STATus:{name}:CONDition", None, _read_attr(reg, "condition"))
            s.add(f":STATus:{name}:ENABle", _set_enable(reg, name), _read_attr(reg, "enable"))
        self.declare()
        self.reset_state()

    def _operation_complete(self) -> None:
        """``*OPC``: operation complete is set in the ESR once every pending operation is done
        (IEEE 488.2 section 12.5.2): this emulator runs each command to completion."""
        self.scpi.status.esr |= ESR_OPC

    def _read_esr(self) -> int:
        st = self.scpi.status
        value, st.esr = st.esr, 0
        return value

    def bus_trigger(self) -> None:
        """``*TRG`` (IEEE 488.2 section 10.37): a bus trigger event; models that wait for it
        override this."""

    def declare(self) -> None:
        """Declare the model's commands on ``self.scpi`` (subclasses)."""

    def format_error(self, code: int, message: str) -> str:
        return f"{code:+d},{message}"

    def handle_message(self, message: str) -> str | None:
        with self.wiring.frozen():
            return self.scpi.execute(message)


def _no_params(name: str, action: Callable[[], str | None]) -> Handler:
    """A common command that takes no parameter (-108 "Parameter not allowed" otherwise)."""

    def handler(p: list[str], x: list[int]) -> str | None:
        if p:
            raise parameter_not_allowed(name)
        return action()

    return handler


def _register_value(name: str, p: list[str]) -> int:
    """The <NRf> of ``*ESE``/``*SRE``: 0 to 255, rounded (IEEE 488.2 sections 10.10, 10.34)."""
    if not p:
        raise missing_parameter(name)
    if len(p) > 1:
        raise parameter_not_allowed(name)
    return int(round(number(p[0], lo=0, hi=255)))


def _read_event(reg: EventRegister) -> Handler:
    return lambda p, x: str(reg.read_event())


def _read_attr(reg: EventRegister, attr: str) -> Handler:
    return lambda p, x: str(getattr(reg, attr))


def _set_enable(reg: EventRegister, name: str) -> Handler:
    def handler(p: list[str], x: list[int]) -> None:
        if not p:
            raise missing_parameter(f":STATus:{name}:ENABle")
        reg.enable = int(round(number(p[0], lo=0, hi=65535)))

    return handler
