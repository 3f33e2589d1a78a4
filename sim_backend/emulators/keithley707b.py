"""Emulated Keithley 707B / 708B Switching Matrix (TSP): relays the emulated SMUs see through.

What runs: ``channel.close``, ``channel.open``, ``channel.exclusiveclose``,
``channel.exclusiveslotclose``, ``channel.getclose``, ``channel.getstate``, ``channel.reset``,
``channel.connectrule``, ``channel.pattern.setimage/getimage/delete``; channel lists with
single channels (``1A01``), rectangular ranges (``1A01:1B12``), ``slotN``, ``allslots`` and
pattern names, with the manual's rules (``close`` refuses ``slotN``/``allslots``;
``exclusiveclose("")`` opens everything); ``reset()``, ``errorqueue``, ``print``, scripts;
``*IDN?``, ``*RST``, ``*CLS``, ``*OPC?``.

Fault ``stuck_relay`` (see :class:`~sim_backend.emulators.scpi_server.Fault`): the named relay
closes normally but never opens again.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sim_backend.emulators.scpi_server import Fault
from sim_backend.emulators.tsp import TspError, TspInstrument, TspObject
from sim_backend.emulators.wiring import Wiring
from sim_backend.twin import TwinBackend

ROWS = "ABCDEFGH"
COLUMNS = 12
_CHANNEL = re.compile(r"^([1-6])([A-H])(\d{2})$")
#: Every channel of each slot, in the matrix's order.
_SLOT_CHANNELS = {s: [f"{s}{r}{c:02d}" for r in ROWS for c in range(1, COLUMNS + 1)] for s in range(1, 7)}


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
    """The ``channel`` table of the 707B."""

    WRITABLE = frozenset({"connectrule", "connectsequential"})
    CONSTANTS = {"BREAK_BEFORE_MAKE": 1, "MAKE_BEFORE_BREAK": 2, "OFF": 0, "ON": 1}

    def __init__(self, matrix: Keithley707BEmulator) -> None:
        self._m = matrix
        self.connectrule = 1
        self.connectsequential = 0
        self.pattern = Pattern(matrix)

    def _list(self, channel_list: Any, allow_slots: bool) -> set[str]:
        return self._m.expand(channel_list, allow_slots)

    def close(self, channel_list: Any) -> None:
        self._m.close(self._list(channel_list, False))

    def open(self, channel_list: Any) -> None:
        self._m.open(self._list(channel_list, True))

    def exclusiveclose(self, channel_list: Any) -> None:
        wanted = set() if not str(channel_list).strip() else self._list(channel_list, False)
        self._m.open(self._m.closed - wanted)
        self._m.close(wanted)

    def exclusiveslotclose(self, channel_list: Any) -> None:
        wanted = self._list(channel_list, False)
        slots = {c[0] for c in wanted}
        self._m.open({c for c in self._m.closed if c[0] in slots} - wanted)
        self._m.close(wanted)

    def getclose(self, channel_list: Any) -> str | None:
        if str(channel_list).strip().lower() == "allslots":
            closed = sorted(self._m.closed)
        else:
            closed = sorted(self._m.closed & self._list(channel_list, True))
        return ";".join(closed) if closed else None

    def getstate(self, channel_list: Any) -> str:
        items = self._m.expand(channel_list, True, ordered=True)
        return ",".join("1" if c in self._m.closed else "0" for c in items)

    def reset(self, channel_list: Any = "allslots") -> None:
        self._m.open(self._list(channel_list, True))
        self.connectrule = 1


class Pattern(TspObject):
    """``channel.pattern``: named channel images."""

    def __init__(self, matrix: Keithley707BEmulator) -> None:
        self._m = matrix

    def setimage(self, channel_list: Any, name: Any) -> None:
        self._m.patterns[str(name)] = self._m.expand(channel_list, False)

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
        self.relay_lock = threading.Lock()
        self.wiring = wiring or Wiring(twin)
        self.wiring.attach_matrix(name, self)
        super().__init__(host, port, latency_s, faults, on_message)

    # ------------------------------------------------------------------ relays
    def install(self, g: Any) -> None:
        self.channel = Channel(self)
        g.channel = self.channel

    def reset_instrument(self) -> None:
        self.open(set(self.closed))
        self.channel.connectrule = 1

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
        for item in (i.strip() for i in str(channel_list).split(",")):
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
