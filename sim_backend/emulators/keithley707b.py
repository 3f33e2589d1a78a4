"""Emulated Keithley 707B / 708B Switching Matrix (TSP): relays the emulated SMUs see through.

Behaviour follows the Models 707B and 708B Switching Matrix Reference Manual (707B-901-01
Rev. B, section 7 "TSP command reference", and section 4 "Channel list syntax"): the 707B has six
slots, the 708B one; each 7174A-type card has rows A-H and columns 1-12 (channel ``1A01`` is
slot 1, row A, column 1).

What runs: ``channel.close``, ``channel.open``, ``channel.exclusiveclose``,
``channel.exclusiveslotclose``, ``channel.getclose`` (the closed channels, separated by
semicolons, or ``nil``), ``channel.getstate`` (``"1"``/``"0"`` per channel, comma separated),
``channel.getcount`` (closures of each channel, comma separated), ``channel.reset``,
``channel.setforbidden``/``getforbidden``/``clearforbidden`` (a forbidden channel refuses to
close), ``channel.setdelay``/``getdelay``, ``channel.connectrule`` (``OFF`` 0,
``BREAK_BEFORE_MAKE`` 1, ``MAKE_BEFORE_BREAK`` 2), ``channel.connectsequential``,
``channel.pattern.setimage/getimage/snapshot/delete``; channel lists are channels separated by
commas or semicolons (so ``getclose``'s reply can be fed back), rectangular ranges
(``1A01:1B12``), ``slotN``, ``allslots`` and pattern names, with the manual's rules (``close``
refuses ``slotN``/``allslots``; ``exclusiveclose("")`` opens everything); ``reset()``,
``localnode`` (``model``, ``serialno``, ``revision``, ``linefreq``...), ``errorqueue``,
``status``, ``format``, ``print``, scripts; ``*IDN?``, ``*RST``, ``*CLS``, ``*OPC?``, ``*STB?``,
``*ESR?`` (see :mod:`sim_backend.emulators.tsp`). A malformed or out-of-mainframe channel list
is a TSP runtime error (-286) and changes nothing.

Fault ``stuck_relay`` (see :class:`~sim_backend.emulators.scpi_server.Fault`): the named relay
closes normally but never opens again.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sim_backend.emulators.scpi_server import Fault
from sim_backend.emulators.tsp import (
    LocalNode,
    TspError,
    TspInstrument,
    TspObject,
    check_choice,
    check_range,
)
from sim_backend.emulators.wiring import Wiring
from sim_backend.twin import TwinBackend

ROWS = "ABCDEFGH"
COLUMNS = 12
_CHANNEL = re.compile(r"^([1-6])([A-H])(\d{2})$")
#: Every channel of each slot, in the matrix's order.
_SLOT_CHANNELS = {s: [f"{s}{r}{c:02d}" for r in ROWS for c in range(1, COLUMNS + 1)] for s in range(1, 7)}


def tsp_kind(value: Any) -> str:
    return "number" if isinstance(value, int | float) else type(value).__name__


def _parse_channel(text: str, slots: int) -> tuple[int, str, int]:
    m = _CHANNEL.match(text.strip().upper())
    if not m:
        raise TspError(f"invalid channel '{text}'")
    slot, row, col = int(m.group(1)), m.group(2), int(m.group(3))
    if slot > slots:
        raise TspError(f"slot {slot} of channel '{text}' is empty")
    if not 1 <= col <= COLUMNS:
        raise TspError(f"invalid column in channel '{text}'")
    return slot, row, col


class Channel(TspObject):
    """The ``channel`` table of the 707B ("channel.*")."""

    WRITABLE = frozenset({"connectrule", "connectsequential"})
    CONSTANTS = {"BREAK_BEFORE_MAKE": 1, "MAKE_BEFORE_BREAK": 2, "OFF": 0, "ON": 1}

    def __init__(self, matrix: Keithley707BEmulator) -> None:
        self._m = matrix
        self.connectrule = 1
        self.connectsequential = 0
        self.pattern = Pattern(matrix)

    def tsp_set(self, name: str, value: Any) -> None:
        if name == "connectrule":
            self.connectrule = check_choice(name, value, (0, 1, 2))
        elif name == "connectsequential":
            self.connectsequential = check_choice(name, value, (0, 1))
        else:
            super().tsp_set(name, value)

    def _list(self, channel_list: Any, allow_slots: bool) -> set[str]:
        return self._m.expand(channel_list, allow_slots)

    def _closable(self, channels: set[str]) -> set[str]:
        forbidden = channels & self._m.forbidden
        if forbidden:
            raise TspError(f"channel {sorted(forbidden)[0]} is forbidden to close")
        return channels

    def close(self, channel_list: Any) -> None:
        self._m.close(self._closable(self._list(channel_list, False)))

    def open(self, channel_list: Any) -> None:
        self._m.open(self._list(channel_list, True))

    def exclusiveclose(self, channel_list: Any) -> None:
        wanted = set() if not str(channel_list).strip() else self._closable(self._list(channel_list, False))
        self._m.open(self._m.closed - wanted)
        self._m.close(wanted)

    def exclusiveslotclose(self, channel_list: Any) -> None:
        wanted = self._closable(self._list(channel_list, False))
        slots = {c[0] for c in wanted}
        self._m.open({c for c in self._m.closed if c[0] in slots} - wanted)
        self._m.close(wanted)

    def getclose(self, channel_list: Any) -> str | None:
        closed = sorted(self._m.closed & self._list(channel_list, True))
        return ";".join(closed) if closed else None

    def getstate(self, channel_list: Any) -> str:
        items = self._m.expand(channel_list, True, ordered=True)
        return ",".join("1" if c in self._m.closed else "0" for c in items)

    def getcount(self, channel_list: Any) -> str:
        """Closures of each channel since power-on ("channel.getcount")."""
        items = self._m.expand(channel_list, True, ordered=True)
        return ",".join(str(self._m.counts.get(c, 0)) for c in items)

    def setforbidden(self, channel_list: Any) -> None:
        self._m.forbidden |= self._list(channel_list, True)

    def clearforbidden(self, channel_list: Any) -> None:
        self._m.forbidden -= self._list(channel_list, True)

    def getforbidden(self, channel_list: Any) -> str | None:
        chans = sorted(self._m.forbidden & self._list(channel_list, True))
        return ";".join(chans) if chans else None

    def setdelay(self, channel_list: Any, delay: Any) -> None:
        d = check_range("delay", delay, 0, 1e3)
        for c in self._list(channel_list, True):
            self._m.delays[c] = d

    def getdelay(self, channel_list: Any) -> str:
        items = self._m.expand(channel_list, True, ordered=True)
        return ",".join(f"{self._m.delays.get(c, 0.0):g}" for c in items)

    def reset(self, channel_list: Any = "allslots") -> None:
        chans = self._list(channel_list, True)
        self._m.open(chans)
        self._m.forbidden -= chans
        for c in chans:
            self._m.delays.pop(c, None)
        self.connectrule = 1


class Pattern(TspObject):
    """``channel.pattern``: named channel images."""

    def __init__(self, matrix: Keithley707BEmulator) -> None:
        self._m = matrix

    def setimage(self, channel_list: Any, name: Any) -> None:
        if not isinstance(name, str) or not name.strip():
            raise TspError("bad argument (pattern name expected)")
        self._m.patterns[name] = self._m.expand(channel_list, False)

    def getimage(self, name: Any) -> str | None:
        chans = sorted(self._m.patterns.get(str(name), set()))
        return ";".join(chans) if chans else None

    def delete(self, name: Any) -> None:
        self._m.patterns.pop(str(name), None)

    def snapshot(self, name: Any) -> None:
        self._m.patterns[str(name)] = set(self._m.closed)


class Keithley707BEmulator(TspInstrument):
    """An emulated 707B (or 708B) whose relays decide what the emulated SMUs reach.

    Args:
        twin: the shared twin (the matrix itself does nothing to it).
        wiring: the bench; the matrix registers itself under ``name``. ``None``: a bench of its
            own (the matrix alone).
        name: the instrument's name in the station.
        model: ``707B`` (six slots) or ``708B`` (one slot).
        slots: installed cards (default: all slots of the model).
        host, port, latency_s, faults, on_message: see :class:`InstrumentServer`.
    """

    model = "keithley707b"
    #: per-message latency (a relay change with its settling time: about 3 ms)
    default_latency_s = 3e-3

    def __init__(
        self,
        twin: TwinBackend,
        *,
        wiring: Wiring | None = None,
        name: str = "matrix",
        model: str = "707B",
        slots: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float | None = None,
        faults: Iterable[Fault] = (),
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        self.twin = twin
        self.name = name
        self.model_name = model.upper()
        max_slots = 1 if self.model_name == "708B" else 6
        self.slots = max_slots if slots is None else int(slots)
        if not 1 <= self.slots <= max_slots:
            raise ValueError(f"slots: {slots} is outside 1..{max_slots} for a {self.model_name}")
        self.idn = f"Keithley Instruments Inc., Model {self.model_name}, 4012345, 1.4.2"
        self.closed: set[str] = set()
        self.patterns: dict[str, set[str]] = {}
        self.forbidden: set[str] = set()
        self.delays: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.relay_lock = threading.Lock()
        self.wiring = wiring or Wiring(twin)
        self.wiring.attach_matrix(name, self)
        super().__init__(host, port, latency_s, faults, on_message)

    # ------------------------------------------------------------------ relays
    def install(self, g: Any) -> None:
        self.channel = Channel(self)
        g.channel = self.channel
        self.localnode = LocalNode(
            self.model_name, "4012345", "1.4.2", f"Switching Matrix Model {self.model_name} - 4012345"
        )
        g.localnode = self.localnode

    def reset_instrument(self) -> None:
        self.open(set(self.closed))
        self.channel.connectrule = 1
        self.channel.connectsequential = 0
        self.forbidden = set()
        self.delays = {}

    def reset_state(self) -> None:
        with self.relay_lock:
            self.closed = set()
        self.patterns = {}
        super().reset_state()

    def _stuck(self) -> set[str]:
        return {
            f.channel.upper()
            for f in self.faults
            if f.kind == "stuck_relay" and f.channel and self.messages_received > f.after
        }

    def close(self, channels: set[str]) -> None:
        with self.relay_lock:
            for c in channels - self.closed:
                self.counts[c] = self.counts.get(c, 0) + 1
            self.closed = self.closed | channels

    def open(self, channels: set[str]) -> None:
        stuck = self._stuck()
        with self.relay_lock:
            self.closed = self.closed - (channels - stuck)

    def expand(self, channel_list: Any, allow_slots: bool, ordered: bool = False) -> Any:
        """The channel names a TSP channel list means (a set, or a list in order)."""
        if channel_list is None:
            raise TspError("bad argument (channel list expected, got nil)")
        out: list[str] = []
        if not isinstance(channel_list, str):
            raise TspError(f"bad argument (channel list string expected, got {tsp_kind(channel_list)})")
        for item in (i.strip() for i in re.split(r"[,;]", channel_list)):
            if not item:
                continue
            low = item.lower()
            if low == "allslots" or re.fullmatch(r"slot[1-6]", low):
                if not allow_slots:
                    raise TspError(f"'{item}' is not allowed in this command")
                slots = range(1, self.slots + 1) if low == "allslots" else [int(low[4])]
                for s in slots:
                    if s > self.slots:
                        raise TspError(f"slot {s} is empty")
                    out += _SLOT_CHANNELS[s]
            elif item in self.patterns:
                out += sorted(self.patterns[item])
            elif ":" in item:
                a, b = item.split(":", 1)
                s1, r1, c1 = _parse_channel(a, self.slots)
                s2, r2, c2 = _parse_channel(b, self.slots)
                if s1 != s2:
                    raise TspError(f"range '{item}' spans slots")
                rows = ROWS[min(ROWS.index(r1), ROWS.index(r2)) : max(ROWS.index(r1), ROWS.index(r2)) + 1]
                out += [f"{s1}{r}{c:02d}" for r in rows for c in range(min(c1, c2), max(c1, c2) + 1)]
            else:
                s, r, c = _parse_channel(item, self.slots)
                out.append(f"{s}{r}{c:02d}")
        return out if ordered else set(out)

    def crosspoints(self) -> set[tuple[str, int]]:
        """Closed crosspoints as ``(row, global column)`` (for the wiring)."""
        with self.relay_lock:
            closed = set(self.closed)
        result = set()
        for name in closed:
            slot, row, col = int(name[0]), name[1], int(name[2:])
            result.add((row, (slot - 1) * COLUMNS + col))
        return result

    def closed_channels(self) -> set[str]:
        """Closed channel names (for tests)."""
        with self.relay_lock:
            return set(self.closed)
