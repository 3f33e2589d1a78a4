"""What a protocol is, and the context the run engine hands it.

A protocol is a plan: it declares its parameters (a pydantic model whose fields carry units and
limits), checks them against the station before anything runs (:meth:`Protocol.preflight`), and
then talks to the backend and the store through a :class:`RunContext`. The
:class:`~hil.engine.RunEngine` does the rest (run rows, safe state, signals, plots, resume),
the way bluesky splits plans from the engine that runs them.
"""

from __future__ import annotations

import importlib.metadata
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from typing import Protocol as TypingProtocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from hil.backend import Backend
from hil.errors import ConfigError
from hil.station import Station
from hil.store import Store
from hil.types import ArrayRequest, PulseTrainResult, Readout

ENTRY_POINT_GROUP = "rram_hil.protocols"


class Params(BaseModel):
    """Base of protocol parameter models: unknown names are an error, values are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Progress(TypingProtocol):
    """What a protocol may tell the user about its progress."""

    def start(self, total: float | None, description: str) -> None: ...

    def advance(self, amount: float = 1, status: str | None = None) -> None: ...


class NullProgress:
    """Progress that shows nothing (tests, library use)."""

    def start(self, total: float | None, description: str) -> None:
        return None

    def advance(self, amount: float = 1, status: str | None = None) -> None:
        return None


@dataclass
class RunContext:
    """Everything a running protocol may use: the (safety-wrapped) backend, the store, its run id.

    ``resume_state`` is the last checkpoint when the run is being resumed, else ``None``.
    """

    run_id: int
    backend: Backend
    store: Store
    station: Station
    seed: int | None
    progress: Progress = field(default_factory=NullProgress)
    resume_state: dict[str, Any] | None = None
    _seq: dict[str, int] = field(default_factory=dict)

    def _next_seq(self, table: str, n: int) -> np.ndarray:
        start = self._seq.get(table)
        if start is None:
            start = self.store.max_seq(self.run_id, table) + 1
        self._seq[table] = start + n
        return np.arange(start, start + n, dtype=np.int64)

    # -- logging (each call commits)
    def log_readings(self, **columns: Any) -> int:
        """Commit readings given column-wise; ``run_id`` and ``seq`` are filled in."""
        n = _length(columns)
        return self.store.add_readings(
            {"run_id": self.run_id, "seq": self._next_seq("readings", n), **columns}
        )

    def log_pulses(self, **columns: Any) -> int:
        """Commit pulse records given column-wise; ``run_id`` and ``seq`` are filled in."""
        n = _length(columns)
        return self.store.add_pulses({"run_id": self.run_id, "seq": self._next_seq("pulses", n), **columns})

    def log_readout(self, readout: Readout, kind: str = "read", **indices: Any) -> int:
        """Commit every cell of a :class:`Readout` as one reading each."""
        return self.log_readings(
            kind=kind,
            array=readout.array,
            row=readout.cells[:, 0],
            col=readout.cells[:, 1],
            voltage_V=readout.voltage_V,
            current_A=readout.flat_current_A,
            conductance_S=readout.flat_conductance_S,
            t_s=readout.t_s,
            **indices,
        )

    def log_train(
        self, result: PulseTrainResult, purpose: str, kind: str = "pulse-read", **indices: Any
    ) -> None:
        """Commit a pulse train: one pulse record per cell, and its per-pulse reads if it had any
        (one transaction: the pulses and the readings they produced land together)."""
        with self.store.batch():
            self._log_train(result, purpose, kind, **indices)

    def _log_train(self, result: PulseTrainResult, purpose: str, kind: str, **indices: Any) -> None:
        n_cells = len(result.cells)
        self.log_pulses(
            purpose=purpose,
            array=result.array,
            row=result.cells[:, 0],
            col=result.cells[:, 1],
            amplitude_V=result.pulse.amplitude_V,
            width_s=result.pulse.width_s,
            count=result.count,
            t_s=float(result.t_s[0]) if result.t_s.size else self.backend.now(),
            **indices,
        )
        if result.conductance_S is None:
            return
        count = result.count
        g = result.conductance_S.reshape(-1)  # cell-major: all pulses of cell 0, then cell 1, ...
        v = float(result.read_voltage_V or 0.0)
        self.log_readings(
            kind=kind,
            array=result.array,
            row=np.repeat(result.cells[:, 0], count),
            col=np.repeat(result.cells[:, 1], count),
            voltage_V=v,
            current_A=g * v,
            conductance_S=g,
            t_s=np.tile(result.t_s, n_cells),
            pulse=np.tile(np.arange(count), n_cells),
            **indices,
        )

    def log_event(self, kind: str, **detail: Any) -> None:
        self.store.add_event(self.run_id, kind, detail, t_s=self.backend.now())

    def checkpoint(self, **state: Any) -> None:
        """Commit how far the run got; ``rram-hil resume`` hands it back as ``resume_state``."""
        self.store.save_checkpoint(self.run_id, state)


def _length(columns: Mapping[str, Any]) -> int:
    for value in columns.values():
        if isinstance(value, np.ndarray | list | tuple) and np.ndim(value) > 0:
            return len(value)
    return 1


class Protocol(ABC):
    """A measurement or training procedure. Subclasses set the class attributes and ``execute``."""

    #: command-line name, e.g. ``potentiation-cycling``
    name: ClassVar[str]
    #: one-line description
    title: ClassVar[str]
    #: the parameter model
    Params: ClassVar[type[Params]]
    #: whether ``rram-hil resume`` can continue an interrupted run
    supports_resume: ClassVar[bool] = False

    def required_arrays(self, params: Any, station: Station) -> list[ArrayRequest]:
        """The arrays the protocol needs, with what it asks of their devices (default: none).

        The station's backend kind provisions them before :meth:`preflight`: the twin fabricates
        them, a hardware station must declare them with these shapes.
        """
        return []

    def seed(self, params: Any) -> int | None:
        """The seed the run's randomness gets from the parameters (default: none; the station's)."""
        return None

    def preflight(self, params: Any, station: Station) -> None:  # noqa: B027 - optional hook
        """Check the parameters against the station (arrays, limits) before anything runs.

        Raise :class:`~hil.safety.LimitError` or :class:`~hil.errors.ConfigError`.
        """

    def preflight_store(self, params: Any, store: Store) -> None:  # noqa: B027 - optional hook
        """Check what the parameters refer to in the run's database (e.g. an earlier run) before
        the run is recorded; read only. The engine calls it after :meth:`preflight` with the
        store the run goes to (:func:`~hil.engine.prepare` when handed one).

        Raise :class:`~hil.errors.ConfigError`.
        """

    @abstractmethod
    def execute(self, ctx: RunContext, params: Any) -> None:
        """Run the procedure. Log readings as they are taken; call ``ctx.checkpoint`` as it goes."""

    def plot(self, store: Store, run_id: int, path: Path) -> Path | None:
        """Write the run's plot to ``path`` (PNG) and return it; ``None`` when there is nothing to plot."""
        return None


def available_protocols() -> dict[str, type[Protocol]]:
    """Every installed protocol by name (entry-point group ``rram_hil.protocols``)."""
    found: dict[str, type[Protocol]] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        found[ep.name] = cls
    return dict(sorted(found.items()))


def get_protocol(name: str) -> Protocol:
    """An instance of the protocol called ``name``; a clear error lists the known ones."""
    protocols = available_protocols()
    try:
        return protocols[name]()
    except KeyError:
        raise ConfigError(
            f"protocol: '{name}' is not known (known: {', '.join(protocols) or 'none'})"
        ) from None
