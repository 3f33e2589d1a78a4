"""Emulated Keysight E5250A switch mainframe with E5252A 10 x 12 matrix cards (SCPI).

Behaviour follows the *Agilent E5250A Low Leakage Switch Mainframe User's Guide* (Edition
9/11): chapter 5 "Controlling the E5250A" (channel list and channel configuration,
connection rule and sequence, Bias Mode, Couple Mode) and chapter 7 "Command Reference".

What runs:

* channel configuration (chapter 5 "Channel List and Channel Configuration"; ``[:ROUT]:FUNC
  NCON|ACON``): in normal configuration a channel is ``card input output`` with card 1-4
  (``10312``: card 1, input 3, output 12); in auto configuration the installed cards are one
  card, card ``0``, whose outputs 1-48 run across the cards (``00114``: input 1, output 2 of
  card 2). A ``card_number`` parameter is ``1-4|ALL`` in normal and ``0|ALL`` in auto
  configuration (``ALL`` not for queries). Changing the mode opens every relay;
* ``[:ROUT]:CLOS[:LIST] (@list)``, ``[:ROUT]:OPEN[:LIST] (@list)``, their queries (1/0 per
  channel, in the order asked), ``[:ROUT]:OPEN:CARD``, ``[:ROUT]:CLOS:CARD?`` (the closed
  channels as a channel list); channel lists with ranges (``(@10101:10112)``);
* ``[:ROUT]:CONN:RULE card,FREE|SROU`` (single route: an input joins at most one output and an
  output at most one input; a new connection releases the old one) and
  ``[:ROUT]:CONN:SEQ card,NSEQ|BBM|MBBR``;
* Bias Mode (chapter 5 "Bias Mode"; chapter 7 ``[:ROUTe]:BIAS...``): ``[:ROUT]:BIAS:PORT
  card,port`` (an input 1-10, 10 at *RST), ``[:ROUT]:BIAS[:STAT] card,ON|OFF`` (OFF at *RST),
  ``[:ROUT]:BIAS:CHAN:ENAB|DIS[:LIST] (@list)`` and ``...:CARD card`` (the output ports taking
  part; all at *RST; the input digits of the list are not used), their queries. With Bias
  Mode ON the bias port is connected to every bias-enabled output that no other input is
  connected to, and cannot be closed or opened directly;
* Couple Mode (chapter 5 "Couple Mode"; chapter 7 ``[:ROUTe]:COUPle...``):
  ``[:ROUT]:COUP:PORT card,'1,3'`` (the odd input of each coupled pair: 1, 3, 5, 7, 9),
  ``[:ROUT]:COUP[:STAT] card,ON|OFF``: with Couple Mode ON, closing or opening a coupled input
  to an output switches the pair (input ``2k-1``/``2k``) to the output pair (odd/even) at
  once. The bias port may not be a coupled port;
* ``:SYST:CPON card|ALL`` (power-on state of the cards), ``:SYST:ERR?``, ``:SYST:VERS?``;
  ``*IDN?``, ``*RST``, ``*CLS``, ``*OPC?``, ``*TST?`` (0: passed) and the status registers of
  the shared SCPI model.

Not on the E5250A (B2200 only; ``-113``): Ground Mode (``:AGND...``), ``:COUP:PORT:DET``
(Kelvin autodetection) and ``:ROUT:SYMB``.

Fault ``stuck_relay``: the named channel (normal-configuration number, e.g. ``10103``) closes
normally but never opens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from sim_backend.emulators.scpi import (
    ScpiError,
    boolean,
    channel_list,
    choice,
    illegal_value,
    missing_parameter,
    string,
)
from sim_backend.emulators.scpi_instrument import ScpiInstrument
from sim_backend.emulators.scpi_server import Fault
from sim_backend.emulators.wiring import Wiring
from sim_backend.twin import TwinBackend

INPUTS = 10
OUTPUTS = 12
#: input port used as the bias port at *RST (E5252A)
DEFAULT_BIAS_PORT = 10
COUPLE_PORTS = (1, 3, 5, 7, 9)


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
        self._reset_groups(range(5))

    def _reset_groups(self, groups: Iterable[int]) -> None:
        """Power-on settings of the cards (groups: 1-4, and 0 for the auto configuration)."""
        if not hasattr(self, "rule"):
            self.rule: dict[int, str] = {}
            self.sequence: dict[int, str] = {}
            self.bias_port: dict[int, int] = {}
            self.bias_on: dict[int, bool] = {}
            self.bias_enabled: dict[int, set[int]] = {}
            self.couple_ports: dict[int, list[int]] = {}
            self.couple_on: dict[int, bool] = {}
        for g in groups:
            self.rule[g] = "FREE"
            self.sequence[g] = "BBM"
            self.bias_port[g] = DEFAULT_BIAS_PORT
            self.bias_on[g] = False
            self.bias_enabled[g] = set(range(1, self._outputs(g) + 1))
            self.couple_ports[g] = []
            self.couple_on[g] = False

    # ------------------------------------------------------------------ channels
    def _outputs(self, group: int) -> int:
        return OUTPUTS * self.cards if group == 0 else OUTPUTS

    def _group(self, normal: int) -> int:
        """The settings group of a normal-form channel: its card, or 0 in auto configuration."""
        return 0 if self.config == "ACON" else normal // 10000

    def _group_output(self, normal: int) -> int:
        """The output number of a normal-form channel within its group."""
        card, out = normal // 10000, normal % 100
        return (card - 1) * OUTPUTS + out if self.config == "ACON" else out

    def _to_normal(self, group: int, inp: int, out: int) -> int:
        if group == 0:
            card, out = (out - 1) // OUTPUTS + 1, (out - 1) % OUTPUTS + 1
            return card * 10000 + inp * 100 + out
        return group * 10000 + inp * 100 + out

    def _shown(self, normal: int) -> str:
        """A normal-form channel as this configuration mode writes it (five digits)."""
        inp = (normal // 100) % 100
        if self.config == "ACON":
            return f"0{inp:02d}{self._group_output(normal):02d}"
        return f"{normal // 10000}{inp:02d}{normal % 100:02d}"

    def _normal(self, channel: int) -> int:
        """A channel number of the present configuration mode, validated, in normal form."""
        card, inp, out = channel // 10000, (channel // 100) % 100, channel % 100
        if self.config == "ACON":
            if card != 0 or not (1 <= inp <= INPUTS and 1 <= out <= OUTPUTS * self.cards):
                raise ScpiError(
                    -224,
                    f'"Illegal parameter value; channel {channel:05d} (auto configuration: card 0, '
                    f'inputs 1-{INPUTS}, outputs 1-{OUTPUTS * self.cards})"',
                )
            return self._to_normal(0, inp, out)
        if not (1 <= card <= self.cards and 1 <= inp <= INPUTS and 1 <= out <= OUTPUTS):
            raise ScpiError(-224, f'"Illegal parameter value; channel {channel} (cards 1-{self.cards})"')
        return card * 10000 + inp * 100 + out

    def _list(self, p: list[str]) -> list[int]:
        if not p:
            raise missing_parameter("channel list")
        try:
            chans = channel_list(p[0])
        except ValueError:
            raise illegal_value(f"channel list {p[0]}") from None
        return [self._normal(c) for c in chans]

    def _stuck(self) -> set[int]:
        stuck = set()
        for f in self.faults:
            if f.kind == "stuck_relay" and f.channel and self.messages_received > f.after:
                try:
                    stuck.add(int(f.channel))
                except ValueError:
                    continue
        return stuck

    def _coupled(self, channels: list[int]) -> list[int]:
        """Couple Mode: a coupled input switches with its pair to the output pair."""
        out: list[int] = []
        for ch in channels:
            g = self._group(ch)
            inp = (ch // 100) % 100
            first = inp if inp % 2 else inp - 1
            if not (self.couple_on[g] and first in self.couple_ports[g]):
                out.append(ch)
                continue
            o = self._group_output(ch)
            o_first = o if o % 2 else o - 1
            if o_first + 1 > self._outputs(g):
                raise ScpiError(-221, f'"Settings conflict; output {o} has no couple partner"')
            out += [self._to_normal(g, first + k, o_first + k) for k in (0, 1)]
        return out

    def _check_bias(self, channels: list[int]) -> None:
        for ch in channels:
            g = self._group(ch)
            if self.bias_on[g] and (ch // 100) % 100 == self.bias_port[g]:
                raise ScpiError(
                    -221,
                    f'"Settings conflict; input {self.bias_port[g]} is the bias port (Bias Mode ON)"',
                )

    def _open(self, channels: Iterable[int]) -> None:
        stuck = self._stuck()
        with self.relay_lock:
            self.closed -= set(channels) - stuck

    def _close(self, channels: list[int]) -> None:
        with self.relay_lock:
            for ch in channels:
                g = self._group(ch)
                if self.rule[g] == "SROU":
                    inp, out = (ch // 100) % 100, self._group_output(ch)
                    self.closed = {
                        c
                        for c in self.closed
                        if not (
                            self._group(c) == g and ((c // 100) % 100 == inp or self._group_output(c) == out)
                        )
                    }
                self.closed.add(ch)

    def _bias_connections(self) -> set[int]:
        """Bias Mode: the bias port joins every bias-enabled output no other input reaches."""
        result: set[int] = set()
        with self.relay_lock:
            closed = set(self.closed)
        groups = [0] if self.config == "ACON" else list(range(1, self.cards + 1))
        for g in groups:
            if not self.bias_on[g]:
                continue
            busy = {self._group_output(c) for c in closed if self._group(c) == g}
            for o in self.bias_enabled[g] - busy:
                result.add(self._to_normal(g, self.bias_port[g], o))
        return result

    def _all_closed(self) -> set[int]:
        with self.relay_lock:
            closed = set(self.closed)
        return closed | self._bias_connections()

    def _cards(self, text: str, query: bool = False) -> list[int]:
        """A ``card_number`` parameter as settings groups (chapter 7: ``1-4|ALL`` in normal,
        ``0|ALL`` in auto configuration; ``ALL`` is not for queries)."""
        t = string(text).upper()
        if t == "ALL" and not query:
            return [0] if self.config == "ACON" else list(range(1, self.cards + 1))
        try:
            card = int(float(t))
        except (ValueError, OverflowError):
            raise ScpiError(-104, f'"Data type error; card {text}"') from None
        if self.config == "ACON":
            if card != 0:
                raise ScpiError(-224, f'"Illegal parameter value; card {text} (auto configuration: 0)"')
            return [0]
        if not 1 <= card <= self.cards:
            raise ScpiError(-224, f'"Illegal parameter value; card {text}"')
        return [card]

    def _card_query(self, p: list[str]) -> int:
        if not p:
            raise missing_parameter("card_number")
        return self._cards(p[0], query=True)[0]

    def _card_setting(
        self, attr: str, parse: Callable[[str], object]
    ) -> Callable[[list[str], list[int]], None]:
        def handler(p: list[str], x: list[int]) -> None:
            if len(p) < 2:
                raise missing_parameter("card_number,setting")
            value = parse(p[1])
            table: dict[int, object] = getattr(self, attr)
            for card in self._cards(p[0]):
                table[card] = value

        return handler

    def _shown_list(self, chans: Iterable[int]) -> str:
        return "(@" + ",".join(self._shown(c) for c in sorted(chans, key=self._shown)) + ")"

    def _closed_on(self, group: int) -> str:
        closed = self._all_closed()
        return self._shown_list(c for c in closed if self._group(c) == group)

    # ------------------------------------------------------------------ commands
    def declare(self) -> None:
        s = self.scpi
        s.add("[:ROUTe]:CLOSe[:LIST]", self._close_cmd, self._query_closed)
        s.add("[:ROUTe]:OPEN[:LIST]", self._open_cmd, self._query_open)
        s.add("[:ROUTe]:OPEN:CARD", lambda p, x: self._open_cards(p))
        s.add("[:ROUTe]:CLOSe:CARD", None, lambda p, x: self._closed_on(self._card_query(p)))
        s.add("[:ROUTe]:FUNCtion", lambda p, x: self._set_config(p), lambda p, x: self.config)
        s.add(
            "[:ROUTe]:CONNection:RULE",
            self._card_setting(
                "rule", lambda t: choice(t, {"FREE": "FREE", "SROU": "SROU", "SROUTE": "SROU"})
            ),
            lambda p, x: self.rule[self._card_query(p)],
        )
        s.add(
            "[:ROUTe]:CONNection:SEQuence",
            self._card_setting(
                "sequence", lambda t: choice(t, {"NSEQ": "NSEQ", "BBM": "BBM", "MBBR": "MBBR"})
            ),
            lambda p, x: self.sequence[self._card_query(p)],
        )
        # Bias Mode
        s.add(
            "[:ROUTe]:BIAS:PORT", self._set_bias_port, lambda p, x: str(self.bias_port[self._card_query(p)])
        )
        s.add(
            "[:ROUTe]:BIAS[:STATe]",
            self._card_setting("bias_on", boolean),
            lambda p, x: "1" if self.bias_on[self._card_query(p)] else "0",
        )
        for verb, enable in (("ENABle", True), ("DISable", False)):
            s.add(
                f"[:ROUTe]:BIAS:CHANnel:{verb}[:LIST]",
                self._bias_list(enable),
                self._bias_list_query(enable),
            )
            s.add(f"[:ROUTe]:BIAS:CHANnel:{verb}:CARD", self._bias_card(enable))
        # Couple Mode
        s.add("[:ROUTe]:COUPle:PORT", self._set_couple_ports, self._couple_ports_query)
        s.add(
            "[:ROUTe]:COUPle[:STATe]",
            self._card_setting("couple_on", boolean),
            lambda p, x: "1" if self.couple_on[self._card_query(p)] else "0",
        )
        s.add(":SYSTem:CPON", lambda p, x: self._power_on(p))
        s.add(":SYSTem:VERSion", None, lambda p, x: "1993.0")

    def _close_cmd(self, p: list[str], x: list[int]) -> None:
        chans = self._list(p)
        self._check_bias(chans)
        self._close(self._coupled(chans))

    def _open_cmd(self, p: list[str], x: list[int]) -> None:
        chans = self._list(p)
        self._check_bias(chans)
        self._open(self._coupled(chans))

    def _set_config(self, p: list[str]) -> None:
        if not p:
            raise missing_parameter(":ROUT:FUNC")
        config = choice(p[0], {"NCON": "NCON", "ACON": "ACON"})
        self._open_cards(["ALL"])
        self.config = config

    def _open_cards(self, p: list[str]) -> None:
        groups = self._cards(p[0] if p else "ALL")
        with self.relay_lock:
            targets = {c for c in self.closed if self._group(c) in groups}
        self._open(targets)

    def _power_on(self, p: list[str]) -> None:
        """``:SYST:CPON``: the cards' relays open and their settings to the power-on state."""
        groups = self._cards(p[0] if p else "ALL")
        self._open_cards([p[0]] if p else ["ALL"])
        self._reset_groups(groups)

    def _set_bias_port(self, p: list[str], x: list[int]) -> None:
        if len(p) < 2:
            raise missing_parameter("card_number,bias_port")
        port = int(_integer(p[1]))
        if not 1 <= port <= INPUTS:
            raise ScpiError(-224, f'"Illegal parameter value; bias port {p[1]} (1-{INPUTS})"')
        for g in self._cards(p[0]):
            first = port if port % 2 else port - 1
            if self.couple_on[g] and first in self.couple_ports[g]:
                # chapter 5, Bias Mode: Bias Port and Couple Port cannot be the same port
                raise ScpiError(-221, f'"Settings conflict; input {port} is a couple port"')
            self.bias_port[g] = port

    def _bias_outputs(self, p: list[str]) -> list[tuple[int, int]]:
        """(group, output) of a bias channel list (the input digits are not used)."""
        if not p:
            raise missing_parameter("channel list")
        try:
            chans = channel_list(p[0])
        except ValueError:
            raise illegal_value(f"channel list {p[0]}") from None
        result = []
        for c in chans:
            n = self._normal(c if (c // 100) % 100 else c + 100)  # input 00: read as input 1
            result.append((self._group(n), self._group_output(n)))
        return result

    def _bias_list(self, enable: bool) -> Callable[[list[str], list[int]], None]:
        def handler(p: list[str], x: list[int]) -> None:
            for g, o in self._bias_outputs(p):
                (self.bias_enabled[g].add if enable else self.bias_enabled[g].discard)(o)

        return handler

    def _bias_list_query(self, enable: bool) -> Callable[[list[str], list[int]], str]:
        def handler(p: list[str], x: list[int]) -> str:
            return ",".join(
                "1" if (o in self.bias_enabled[g]) == enable else "0" for g, o in self._bias_outputs(p)
            )

        return handler

    def _bias_card(self, enable: bool) -> Callable[[list[str], list[int]], None]:
        def handler(p: list[str], x: list[int]) -> None:
            if not p:
                raise missing_parameter("card_number")
            for g in self._cards(p[0]):
                self.bias_enabled[g] = set(range(1, self._outputs(g) + 1)) if enable else set()

        return handler

    def _set_couple_ports(self, p: list[str], x: list[int]) -> None:
        if len(p) < 2:
            raise missing_parameter("card_number,'couple_ports'")
        text = string(",".join(p[1:]))
        ports = []
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            port = int(_integer(item))
            if port not in COUPLE_PORTS:
                raise ScpiError(-224, f'"Illegal parameter value; couple port {item} (1, 3, 5, 7 or 9)"')
            ports.append(port)
        for g in self._cards(p[0]):
            bias = self.bias_port[g]
            if self.bias_on[g] and (bias if bias % 2 else bias - 1) in ports:
                raise ScpiError(-221, f'"Settings conflict; the bias port {bias} cannot be coupled"')
            self.couple_ports[g] = sorted(set(ports))

    def _couple_ports_query(self, p: list[str], x: list[int]) -> str:
        return ",".join(str(v) for v in self.couple_ports[self._card_query(p)])

    def _query_closed(self, p: list[str], x: list[int]) -> str:
        chans = self._list(p)
        closed = self._all_closed()
        return ",".join("1" if c in closed else "0" for c in chans)

    def _query_open(self, p: list[str], x: list[int]) -> str:
        chans = self._list(p)
        closed = self._all_closed()
        return ",".join("0" if c in closed else "1" for c in chans)

    def handle_message(self, message: str) -> str | None:
        # relays do not depend on the bench clock: no need to hold the bench
        return self.scpi.execute(message)

    # ------------------------------------------------------------------ state
    def crosspoints(self) -> set[tuple[str, int]]:
        """Closed crosspoints as ``(input, global column)`` (for the wiring), bias connections
        included."""
        return {(str((c // 100) % 100), (c // 10000 - 1) * OUTPUTS + c % 100) for c in self._all_closed()}

    def closed_channels(self) -> set[str]:
        """Closed channel numbers (normal configuration form) as text (for tests)."""
        return {str(c) for c in self._all_closed()}


def _integer(text: str) -> float:
    try:
        return float(string(text))
    except (ValueError, OverflowError):
        raise ScpiError(-104, f'"Data type error; {text}"') from None
