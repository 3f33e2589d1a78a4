"""Emulated Keysight E5250A switch mainframe with E5252A 10 x 12 matrix cards (SCPI).

What runs: ``:ROUT:CLOS (@list)``, ``:ROUT:OPEN (@list)``, their queries ``:ROUT:CLOS? (@list)``
and ``:ROUT:OPEN? (@list)`` (1/0 per channel), ``:ROUT:OPEN:CARD <card>|ALL``,
``:ROUT:CLOS:CARD? <card>|ALL`` (the closed channels as a channel list), ``:ROUT:FUNC NCON|ACON``,
``:ROUT:CONN:RULE <card>|ALL,FREE|SROU`` (single route: an input joins at most one output and
an output at most one input), ``:ROUT:CONN:SEQ <card>|ALL,NSEQ|BBM|MBBR``; channel lists with
ranges (``(@10101:10112)``); ``*IDN?``, ``*RST``, ``*CLS``, ``*OPC?``, ``:SYST:ERR?``.

Channels are ``card input output`` (``10312``: card 1, input 3, output 12) in normal
configuration mode; in auto configuration mode (``ACON``) card ``0`` addresses outputs
1-48 across the cards.

Fault ``stuck_relay``: the named channel (e.g. ``10103``) closes normally but never opens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from sim_backend.emulators.scpi import ScpiError, channel_list, choice, missing_parameter, string
from sim_backend.emulators.scpi_instrument import ScpiInstrument
from sim_backend.emulators.scpi_server import Fault
from sim_backend.emulators.wiring import Wiring
from sim_backend.twin import TwinBackend

INPUTS = 10
OUTPUTS = 12


class KeysightE5250AEmulator(ScpiInstrument):
    """An emulated E5250A whose relays decide what the emulated SMUs reach.

    Args:
        twin: the shared twin (the switch itself does nothing to it).
        wiring: the bench; the switch registers itself under ``name``. ``None``: alone.
        name: the instrument's name in the station.
        cards: E5252A cards installed (1-4).
        host, port, latency_s, faults, on_message: see :class:`InstrumentServer`.
    """

    model = "e5250a"
    #: per-message latency (a reed-relay change with its settling time: about 5 ms)
    default_latency_s = 5e-3
    idn = "Agilent Technologies,E5250A,0,A.01.10"

    def __init__(
        self,
        twin: TwinBackend,
        *,
        wiring: Wiring | None = None,
        name: str = "matrix",
        cards: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float | None = None,
        faults: Iterable[Fault] = (),
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        if not 1 <= int(cards) <= 4:
            raise ValueError(f"cards: {cards} is outside 1..4")
        self.twin = twin
        self.name = name
        self.cards = int(cards)
        self.closed: set[int] = set()
        self.relay_lock = threading.Lock()
        wiring = wiring or Wiring(twin)
        wiring.attach_matrix(name, self)
        super().__init__(wiring, host, port, latency_s, faults, on_message)

    def reset_state(self) -> None:
        with self.relay_lock:
            self.closed = set()
        self.config = "NCON"
        self.rule = {c: "FREE" for c in range(1, 5)}
        self.sequence = {c: "BBM" for c in range(1, 5)}
        if hasattr(self, "scpi"):
            self.scpi.errors.clear()

    # ------------------------------------------------------------------ channels
    def _normal(self, channel: int) -> int:
        """A channel number in normal configuration (card 1-4), validated."""
        card, inp, out = channel // 10000, (channel // 100) % 100, channel % 100
        if self.config == "ACON":
            if card != 0 or not 1 <= out <= OUTPUTS * self.cards:
                raise ScpiError(-224, f'"Illegal parameter value; channel {channel}"')
            card, out = (out - 1) // OUTPUTS + 1, (out - 1) % OUTPUTS + 1
        if not (1 <= card <= self.cards and 1 <= inp <= INPUTS and 1 <= out <= OUTPUTS):
            raise ScpiError(-224, f'"Illegal parameter value; channel {channel} (cards 1-{self.cards})"')
        return card * 10000 + inp * 100 + out

    def _list(self, p: list[str]) -> list[int]:
        if not p:
            raise missing_parameter("channel list")
        return [self._normal(c) for c in channel_list(p[0])]

    def _stuck(self) -> set[int]:
        stuck = set()
        for f in self.faults:
            if f.kind == "stuck_relay" and f.channel and self.messages_received > f.after:
                try:
                    stuck.add(int(f.channel))
                except ValueError:
                    continue
        return stuck

    def _open(self, channels: Iterable[int]) -> None:
        stuck = self._stuck()
        with self.relay_lock:
            self.closed -= set(channels) - stuck

    def _close(self, channels: list[int]) -> None:
        with self.relay_lock:
            for ch in channels:
                card = ch // 10000
                if self.rule[card] == "SROU":
                    inp, out = (ch // 100) % 100, ch % 100
                    self.closed = {
                        c
                        for c in self.closed
                        if not (c // 10000 == card and ((c // 100) % 100 == inp or c % 100 == out))
                    }
                self.closed.add(ch)

    def _cards(self, text: str) -> list[int]:
        t = string(text).upper()
        if t == "ALL":
            return list(range(1, self.cards + 1))
        try:
            card = int(float(t))
        except (ValueError, OverflowError):
            raise ScpiError(-104, f'"Data type error; card {text}"') from None
        if not 1 <= card <= self.cards:
            raise ScpiError(-224, f'"Illegal parameter value; card {text}"')
        return [card]

    def _card_setting(self, attr: str, options: dict[str, str]) -> Callable[[list[str], list[int]], None]:
        def handler(p: list[str], x: list[int]) -> None:
            if len(p) < 2:
                raise missing_parameter("card,setting")
            value = choice(p[1], options)
            table: dict[int, str] = getattr(self, attr)
            for card in self._cards(p[0]):
                table[card] = value

        return handler

    def _closed_on(self, cards: list[int]) -> str:
        with self.relay_lock:
            chans = sorted(c for c in self.closed if c // 10000 in cards)
        return "(@" + ",".join(str(c) for c in chans) + ")"

    # ------------------------------------------------------------------ commands
    def declare(self) -> None:
        s = self.scpi
        s.add("[:ROUTe]:CLOSe[:LIST]", lambda p, x: self._close(self._list(p)), self._query_closed)
        s.add("[:ROUTe]:OPEN[:LIST]", lambda p, x: self._open(self._list(p)), self._query_open)
        s.add("[:ROUTe]:OPEN:CARD", lambda p, x: self._open_cards(p))
        s.add(
            "[:ROUTe]:CLOSe:CARD",
            None,
            lambda p, x: ";".join(self._closed_on([c]) for c in self._cards(p[0] if p else "ALL")),
        )
        s.add(
            "[:ROUTe]:FUNCtion",
            lambda p, x: self._set_config(p),
            lambda p, x: self.config,
        )
        s.add(
            "[:ROUTe]:CONNection:RULE",
            self._card_setting("rule", {"FREE": "FREE", "SROU": "SROU", "SROUTE": "SROU"}),
            lambda p, x: self.rule[self._cards(p[0] if p else "1")[0]],
        )
        s.add(
            "[:ROUTe]:CONNection:SEQuence",
            self._card_setting("sequence", {"NSEQ": "NSEQ", "BBM": "BBM", "MBBR": "MBBR"}),
            lambda p, x: self.sequence[self._cards(p[0] if p else "1")[0]],
        )
        s.add(":SYSTem:CPON", lambda p, x: self._open_cards(["ALL"]))

    def _set_config(self, p: list[str]) -> None:
        if not p:
            raise missing_parameter(":ROUT:FUNC")
        self.config = choice(p[0], {"NCON": "NCON", "ACON": "ACON"})
        self._open_cards(["ALL"])

    def _open_cards(self, p: list[str]) -> None:
        cards = self._cards(p[0] if p else "ALL")
        with self.relay_lock:
            targets = {c for c in self.closed if c // 10000 in cards}
        self._open(targets)

    def _query_closed(self, p: list[str], x: list[int]) -> str:
        chans = self._list(p)
        with self.relay_lock:
            return ",".join("1" if c in self.closed else "0" for c in chans)

    def _query_open(self, p: list[str], x: list[int]) -> str:
        chans = self._list(p)
        with self.relay_lock:
            return ",".join("0" if c in self.closed else "1" for c in chans)

    def handle_message(self, message: str) -> str | None:
        # relays do not depend on the bench clock: no need to hold the bench
        return self.scpi.execute(message)

    # ------------------------------------------------------------------ state
    def crosspoints(self) -> set[tuple[str, int]]:
        """Closed crosspoints as ``(input, global column)`` (for the wiring)."""
        with self.relay_lock:
            closed = set(self.closed)
        return {(str((c // 100) % 100), (c // 10000 - 1) * OUTPUTS + c % 100) for c in closed}

    def closed_channels(self) -> set[str]:
        """Closed channel numbers as text (for tests)."""
        with self.relay_lock:
            return {str(c) for c in self.closed}
