"""Keithley 707B / 708B Switching Matrix (TSP).

Channels are named ``<slot><row><column>`` (``1A01`` is slot 1, row A, column 1; 7174A-type cards
have rows A-H and columns 1-12; the 708B has one slot). This driver also speaks in
*crosspoints* ``(row, global column)`` where the global column numbers the columns across the
mainframe: column ``n`` is slot ``(n - 1) // 12 + 1``, card column ``(n - 1) % 12 + 1``.

:meth:`Keithley707B.route` closes exactly the given crosspoints (``channel.exclusiveclose``
opens every other one) and reads back what is closed in the same message, so a relay that is
stuck closed (or did not close) shows up at once; :meth:`Keithley707B.open_all` opens everything
and reads it back, :meth:`Keithley707B.open_all_nowait` opens everything without waiting for a
reply.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pymeasure.instruments import Instrument

from drivers.common import TERMINATION, ReplyError

ROWS = "ABCDEFGH"
COLUMNS_PER_CARD = 12
_CHANNEL = re.compile(r"^([1-6])([A-H])(\d{2})$")
#: TSP that opens every channel of every slot.
_OPEN_ALL = 'channel.open("allslots")'


def channel_name(row: str, column: int) -> str:
    """The 707B channel of crosspoint ``(row, global column)``, e.g. ``("B", 14) -> "2B02"``."""
    r = str(row).upper()
    if r not in ROWS:
        raise ValueError(f"row: '{row}' is not one of {', '.join(ROWS)}")
    if not 1 <= int(column) <= 6 * COLUMNS_PER_CARD:
        raise ValueError(f"column: {column} is outside 1..{6 * COLUMNS_PER_CARD}")
    slot, col = divmod(int(column) - 1, COLUMNS_PER_CARD)
    return f"{slot + 1}{r}{col + 1:02d}"


def crosspoint(name: str) -> tuple[str, int]:
    """The crosspoint ``(row, global column)`` of a 707B channel name such as ``"2B02"``."""
    m = _CHANNEL.match(name.strip().upper())
    if not m:
        raise ValueError(f"'{name}' is not a 707B matrix channel (slot, row, column: e.g. 1A01)")
    slot, row, col = int(m.group(1)), m.group(2), int(m.group(3))
    if not 1 <= col <= COLUMNS_PER_CARD:
        raise ValueError(f"'{name}': column {col} is outside 1..{COLUMNS_PER_CARD}")
    return row, (slot - 1) * COLUMNS_PER_CARD + col


def parse_closed(reply: str) -> set[tuple[str, int]]:
    """Crosspoints from a ``channel.getclose`` reply (``nil`` when nothing is closed)."""
    text = reply.strip()
    if text in ("nil", ""):
        return set()
    try:
        return {crosspoint(item) for item in re.split(r"[;,]", text) if item.strip()}
    except ValueError:
        raise ReplyError(f"707B closed channels: malformed reply {reply[:80]!r}") from None


class Keithley707B(Instrument):
    """Keithley 707B (six slots) or 708B (one slot) switching matrix.

    Args:
        adapter: VISA resource string (``TCPIP0::host::5025::SOCKET``) or adapter.
        name: instrument name for logs.
        **kwargs: passed to pymeasure's VISA adapter.
    """

    def __init__(self, adapter: Any, name: str = "Keithley 707B Switching Matrix", **kwargs: Any) -> None:
        kwargs.setdefault("read_termination", TERMINATION)
        kwargs.setdefault("write_termination", TERMINATION)
        super().__init__(adapter, name, includeSCPI=False, **kwargs)

    id = Instrument.measurement("*IDN?", """Get the identification string.""", cast=str, maxsplit=0)

    @property
    def closed_channels(self) -> list[str]:
        """The closed channels in the matrix's order, e.g. ``['1A01', '1B13']`` (empty: all open)."""
        reply = self.ask('print(channel.getclose("allslots"))').strip()
        if reply in ("nil", ""):
            return []
        names = [item.strip() for item in re.split(r"[;,]", reply) if item.strip()]
        for name in names:
            try:
                crosspoint(name)
            except ValueError:
                raise ReplyError(f"{self.name} closed channels: malformed reply {reply[:80]!r}") from None
        return names

    @property
    def next_error(self) -> tuple[int, str]:
        """The next error of the queue as ``(code, message)``; code 0 means none."""
        reply = self.ask("print(errorqueue.next())")
        parts = reply.split("\t")
        try:
            return int(float(parts[0])), parts[1] if len(parts) > 1 else ""
        except ValueError:
            raise ReplyError(f"{self.name} error queue: malformed reply {reply[:80]!r}") from None

    def check_errors(self) -> list[tuple[int, str]]:
        """Read every queued error (an empty list when there is none)."""
        errors: list[tuple[int, str]] = []
        while True:
            code, message = self.next_error
            if code == 0:
                return errors
            errors.append((code, message))

    def reset(self) -> None:
        """Reset the matrix: every channel opens."""
        self.write("reset()")

    def setup(self) -> None:
        """Break-before-make switching (a new route never touches the old one)."""
        self.write("channel.connectrule = channel.BREAK_BEFORE_MAKE")

    def close_channels(self, channels: Iterable[str]) -> None:
        """Close channels (others stay as they are)."""
        self.write(f'channel.close("{",".join(channels)}")')

    def open_channels(self, channels: Iterable[str]) -> None:
        """Open channels."""
        self.write(f'channel.open("{",".join(channels)}")')

    def route(self, crosspoints: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
        """Close exactly these crosspoints (every other opens); returns what is closed after."""
        self.start_route(crosspoints)
        return self.finish_route()

    def start_route(self, crosspoints: Iterable[tuple[str, int]]) -> None:
        """The message of :meth:`route`; its read-back is left for :meth:`finish_route` (the host
        can work while the relays settle)."""
        names = ",".join(channel_name(r, c) for r, c in crosspoints)
        self.write(f'channel.exclusiveclose("{names}") print(channel.getclose("allslots"))')

    def finish_route(self) -> set[tuple[str, int]]:
        """What is closed after the route :meth:`start_route` sent."""
        return parse_closed(self.read())

    def open_all_nowait(self) -> None:
        """Open every channel: one message, no reply awaited (no read-back)."""
        self.write(_OPEN_ALL)

    def open_all(self) -> set[tuple[str, int]]:
        """Open every channel; returns what is still closed (empty unless a relay is stuck)."""
        reply = self.ask(f'{_OPEN_ALL} print(channel.getclose("allslots"))')
        return parse_closed(reply)
