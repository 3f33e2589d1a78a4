"""Keysight (Agilent) E5250A Low-Leakage Switch Mainframe with E5252A 10x12 matrix cards (SCPI).

In normal configuration mode (``:ROUT:FUNC NCON``) a channel is five digits: card (1-4), input
port (01-10), output port (01-12); ``10312`` joins input 3 to output 12 of card 1. This driver
also speaks in *crosspoints* ``(input, global column)``, the global column numbering the outputs
across the cards: column ``n`` is card ``(n - 1) // 12 + 1``, output ``(n - 1) % 12 + 1``.

:meth:`KeysightE5250A.route` opens every relay, closes the given crosspoints and reads back the
closed channels of every card in one message (``:ROUT:CLOS:CARD?``), so a stuck relay shows up
at once; :meth:`KeysightE5250A.open_all` opens everything and reads it back,
:meth:`KeysightE5250A.open_all_nowait` opens everything without waiting for a reply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from pymeasure.instruments import Instrument, SCPIMixin
from pymeasure.instruments.validators import strict_discrete_set

from drivers.common import TERMINATION, ReplyError

INPUTS = 10
OUTPUTS_PER_CARD = 12
CARDS = 4
#: SCPI that opens every relay of every card.
_OPEN_ALL = ":ROUT:OPEN:CARD ALL"


def channel_number(row: str | int, column: int) -> int:
    """The E5250A channel of crosspoint ``(input, global column)``, e.g. ``("3", 14) -> 20302``."""
    inp = int(row)
    if not 1 <= inp <= INPUTS:
        raise ValueError(f"input: {row} is outside 1..{INPUTS}")
    if not 1 <= int(column) <= CARDS * OUTPUTS_PER_CARD:
        raise ValueError(f"column: {column} is outside 1..{CARDS * OUTPUTS_PER_CARD}")
    card, out = divmod(int(column) - 1, OUTPUTS_PER_CARD)
    return (card + 1) * 10000 + inp * 100 + out + 1


def crosspoint(channel: int | str) -> tuple[str, int]:
    """The crosspoint ``(input, global column)`` of a channel number such as ``20302``."""
    text = str(channel).strip()
    if not re.fullmatch(r"[1-4]\d{4}", text):
        raise ValueError(f"'{channel}' is not an E5250A channel (card, input, output: e.g. 10312)")
    n = int(text)
    card, inp, out = n // 10000, (n // 100) % 100, n % 100
    if not (1 <= inp <= INPUTS and 1 <= out <= OUTPUTS_PER_CARD):
        raise ValueError(f"'{channel}': input {inp} or output {out} is out of range")
    return str(inp), (card - 1) * OUTPUTS_PER_CARD + out


def channel_list(channels: Iterable[int]) -> str:
    """A SCPI channel list, ``(@10101,10203)``."""
    return "(@" + ",".join(str(c) for c in channels) + ")"


def parse_channel_list(reply: str) -> set[tuple[str, int]]:
    """Crosspoints from one or more ``(@...)`` replies joined by ``;``."""
    result: set[tuple[str, int]] = set()
    for part in reply.strip().split(";"):
        m = re.fullmatch(r"\s*\(@([\d,:\s]*)\)\s*", part)
        if not m:
            raise ReplyError(f"E5250A closed channels: malformed reply {reply[:80]!r}")
        try:
            result |= {crosspoint(item) for item in m.group(1).split(",") if item.strip()}
        except ValueError:
            raise ReplyError(f"E5250A closed channels: malformed reply {reply[:80]!r}") from None
    return result


class KeysightE5250A(SCPIMixin, Instrument):
    """Keysight E5250A switch mainframe with E5252A matrix cards.

    Args:
        adapter: VISA resource string or adapter.
        name: instrument name for logs.
        cards: the installed card slots (1..4) whose relays are read back.
        **kwargs: passed to pymeasure's VISA adapter.
    """

    def __init__(
        self,
        adapter: Any,
        name: str = "Keysight E5250A Switch Mainframe",
        cards: Sequence[int] = (1,),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("read_termination", TERMINATION)
        kwargs.setdefault("write_termination", TERMINATION)
        super().__init__(adapter, name, **kwargs)
        self.cards = tuple(int(c) for c in cards)

    configuration_mode = Instrument.control(
        ":ROUT:FUNC?",
        ":ROUT:FUNC %s",
        """Control the channel configuration mode: 'normal' (NCON) or 'auto' (ACON).""",
        validator=strict_discrete_set,
        values={"normal": "NCON", "auto": "ACON"},
        map_values=True,
    )

    def setup(self) -> None:
        """Normal configuration, free connection rule, break-before-make sequence on all cards."""
        self.write(":ROUT:FUNC NCON;:ROUT:CONN:RULE ALL,FREE;:ROUT:CONN:SEQ ALL,BBM")

    def close_channels(self, channels: Iterable[int]) -> None:
        """Close channels (others stay as they are)."""
        self.write(f":ROUT:CLOS {channel_list(channels)}")

    def open_channels(self, channels: Iterable[int]) -> None:
        """Open channels."""
        self.write(f":ROUT:OPEN {channel_list(channels)}")

    def _readback(self) -> str:
        return ";".join(f":ROUT:CLOS:CARD? {c}" for c in self.cards)

    @property
    def closed_crosspoints(self) -> set[tuple[str, int]]:
        """Every closed crosspoint of the installed cards."""
        return parse_channel_list(self.ask(self._readback()))

    def route(self, crosspoints: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
        """Close exactly these crosspoints (every other opens first); returns what is closed after."""
        self.start_route(crosspoints)
        return self.finish_route()

    def start_route(self, crosspoints: Iterable[tuple[str, int]]) -> None:
        """The message of :meth:`route`; its read-back is left for :meth:`finish_route` (the host
        can work while the relays settle)."""
        chans = channel_list(channel_number(r, c) for r, c in crosspoints)
        self.write(f"{_OPEN_ALL};:ROUT:CLOS {chans};{self._readback()}")

    def finish_route(self) -> set[tuple[str, int]]:
        """What is closed after the route :meth:`start_route` sent."""
        return parse_channel_list(self.read())

    def open_all_nowait(self) -> None:
        """Open every relay of every card: one message, no reply awaited (no read-back)."""
        self.write(_OPEN_ALL)

    def open_all(self) -> set[tuple[str, int]]:
        """Open every relay; returns what is still closed (empty unless a relay is stuck)."""
        return parse_channel_list(self.ask(f"{_OPEN_ALL};{self._readback()}"))
