"""The registry of backend kinds: what ``station.backend`` names, and how each kind is opened.

A backend kind is a small object (:class:`BackendKind`) that builds the raw backend of a station,
provisions the arrays a protocol asks for (:meth:`BackendKind.provision`), names the seed a run
gets by default and checks a station without connecting. Kinds are found through the entry-point
group ``rram_hil.backends`` (see ``pyproject.toml``): the hardware kinds of :mod:`hil.backends`
and the twin of :mod:`sim_backend` register there the same way, so this module imports none of
them and another package can add its own.
"""

from __future__ import annotations

import importlib.metadata
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import ClassVar

from hil.backend import Backend
from hil.errors import ConfigError
from hil.safety import SafeBackend
from hil.station import Station
from hil.types import ArrayRequest

ENTRY_POINT_GROUP = "rram_hil.backends"

#: What the run engine calls to get a station's raw backend (no safety layer): ``(station, seed)``.
BackendFactory = Callable[[Station, "int | None"], Backend]


class BackendKind(ABC):
    """One kind of backend. Subclasses set :attr:`name` and implement :meth:`build`.

    The defaults describe a backend on physical arrays: the station must declare every array a
    protocol needs, with the shape it needs; device fabrication requests are ignored and
    variability requests refused.
    """

    #: the ``backend`` value of a station, e.g. ``twin``, ``smu-matrix``, ``board``
    name: ClassVar[str]
    #: whether the arrays of this kind are made to order (a twin fabricates the arrays a run needs)
    fabricates_arrays: ClassVar[bool] = False

    @abstractmethod
    def build(self, station: Station, seed: int | None = None) -> Backend:
        """The raw backend of ``station`` (no safety layer), connected and in its safe state."""

    def default_seed(self, station: Station) -> int | None:
        """The seed a run on ``station`` records when none is given (``None``: no randomness)."""
        return None

    def check(self, station: Station) -> None:
        """Validate everything of ``station`` this kind needs, without connecting (``check-station``)."""
        return None

    def provision(self, station: Station, requests: Sequence[ArrayRequest], protocol: str) -> Station:
        """The station a run of ``protocol`` uses, given the arrays it asks for.

        Raises:
            ConfigError: an array is missing or of another shape, or a device request cannot be met.
        """
        have = {a.name: a for a in station.arrays}
        for request in requests:
            spec = request.spec
            cfg = have.get(spec.name)
            if cfg is None:
                raise ConfigError(
                    f"station: protocol '{protocol}' needs array '{spec.name}' "
                    f"({spec.rows} x {spec.cols}), which station '{station.name}' does not declare"
                )
            if (cfg.rows, cfg.cols) != (spec.rows, spec.cols):
                raise ConfigError(
                    f"station: array '{spec.name}' is {cfg.rows} x {cfg.cols}, protocol "
                    f"'{protocol}' needs {spec.rows} x {spec.cols}"
                )
            for field in request.device.variability():
                raise ConfigError(
                    f"{field}: a twin device parameter; station '{station.name}' is {station.backend}"
                )
        return station


def backend_kinds() -> dict[str, BackendKind]:
    """Every installed backend kind by name (entry-point group ``rram_hil.backends``)."""
    found: dict[str, BackendKind] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        found[ep.name] = cls()
    return dict(sorted(found.items()))


def backend_kind(name: str) -> BackendKind:
    """The backend kind called ``name``; a clear error names the installed ones."""
    kinds = backend_kinds()
    try:
        return kinds[name]
    except KeyError:
        raise ConfigError(
            f"backend: '{name}' is not available in this installation (installed: {', '.join(kinds) or 'none'})"
        ) from None


def build_backend(station: Station, seed: int | None = None) -> Backend:
    """The raw backend of ``station`` (no safety layer). Prefer :func:`open_backend`."""
    return backend_kind(station.backend).build(station, seed)


def open_backend(station: Station, seed: int | None = None) -> SafeBackend:
    """The backend of ``station`` behind the station's safety limits. Use it as a context manager."""
    return SafeBackend(build_backend(station, seed), station.limits)
