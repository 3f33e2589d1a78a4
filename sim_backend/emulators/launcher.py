"""Start the emulators a station needs, around one shared twin.

:func:`launch_station` builds one :class:`~sim_backend.twin.TwinBackend` from the station's
``twin`` section (its preset, overrides and seed; ``seed`` overrides it), the bench
:class:`~sim_backend.emulators.wiring.Wiring` from the station's routing, and one emulator per
instrument, listening where the instrument's resource string says (loopback only).
:func:`launch_instrument` starts one emulator alone.

Every emulator class follows one contract, so this launcher can start any of them (the FPGA
board's included): the constructor takes the shared twin first, then keyword options it
declares among ``wiring``, ``name``, ``host``, ``port``, ``latency_s``, ``faults``,
``on_message``, ``model``, ``slots``, ``cards``, ``station``, ``options``; ``start()`` returns
the resource string; ``stop()``; usable as a context manager.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from hil.backends.smu_matrix_config import MATRIX_GEOMETRY, SMU_CHANNELS, EmulatorOptions, plan_smu_matrix
from hil.errors import ConfigError
from hil.station import Station, load_station
from sim_backend.emulators.board import BoardFault
from sim_backend.emulators.models import EMULATORS
from sim_backend.emulators.scpi_server import Fault, parse_fault
from sim_backend.emulators.wiring import Wiring
from sim_backend.station_twin import twin_from_station
from sim_backend.twin import TwinBackend

_SOCKET = re.compile(r"^TCPIP\d*::(?P<host>[^:]+)::(?P<port>\d+)::SOCKET$", re.IGNORECASE)
LOOPBACK = ("127.0.0.1", "localhost")


def emulator_class(model: str) -> tuple[type, dict[str, Any]]:
    """The emulator class of an instrument model (imported on demand) and its fixed options.

    Raises:
        ConfigError: unknown model, or its emulator is not installed (the FPGA board's comes
            with the board backend).
    """
    key = model.lower()
    if key not in EMULATORS:
        raise ConfigError(f"model: '{model}' has no emulator (models: {', '.join(EMULATORS)})")
    target, fixed = EMULATORS[key]
    module_name, cls_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"model: the emulator of '{model}' ({module_name}) is not available: {exc}"
        ) from None
    return getattr(module, cls_name), dict(fixed)


def socket_address(resource: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``TCPIP0::HOST::PORT::SOCKET`` resource, else ``None``."""
    m = _SOCKET.match(resource.strip())
    return (m.group("host"), int(m.group("port"))) if m else None


def twin_for(station: Station, seed: int | None = None) -> TwinBackend:
    """The twin behind a station's emulators (:func:`sim_backend.station_twin.twin_from_station`)."""
    return twin_from_station(station, seed)


def _construct(cls: type, twin: TwinBackend, offered: Mapping[str, Any]) -> Any:
    """Build an emulator with the keyword options its constructor declares."""
    params = inspect.signature(cls).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {k: v for k, v in offered.items() if takes_all or k in params}
    return cls(twin, **kwargs)


@dataclass
class Bench:
    """Running emulators of one station around one twin. Use as a context manager.

    Attributes:
        station: the station (resources as the emulators actually listen, see :meth:`start`).
        twin: the shared twin.
        wiring: the shared bench state (relays, cabling).
        emulators: the emulators by instrument name.
        models: the instrument model of each emulator.
    """

    station: Station
    twin: TwinBackend
    wiring: Wiring
    emulators: dict[str, Any] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    resources: dict[str, str] = field(default_factory=dict)

    def start(self) -> dict[str, str]:
        """Start every emulator; returns the resource string of each. The station's
        resources are updated to the ones the emulators listen on (ports chosen when 0)."""
        started = []
        try:
            for name, emu in self.emulators.items():
                self.resources[name] = emu.start()
                started.append(emu)
        except BaseException:
            for emu in started:
                emu.stop()
            raise
        instruments = {
            name: cfg.model_copy(update={"resource": self.resources.get(name, cfg.resource)})
            for name, cfg in self.station.instruments.items()
        }
        self.station = self.station.model_copy(update={"instruments": instruments})
        return dict(self.resources)

    def stop(self) -> None:
        """Apply pending pulses to the twin and stop every emulator."""
        try:
            self.wiring.settle()
        finally:
            for emu in self.emulators.values():
                emu.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _emulator_options(station: Station, name: str) -> EmulatorOptions:
    raw = station.instruments[name].options.get("emulator", {}) or {}
    try:
        return EmulatorOptions.model_validate(raw)
    except Exception as exc:
        raise ConfigError(f"instruments.{name}.options.emulator: {exc}".splitlines()[0]) from None


def _board(
    cls: type,
    twin: TwinBackend,
    link: str,
    latency_s: float | None,
    opts: EmulatorOptions,
    extra: list[Fault],
) -> Any:
    """The FPGA board's emulator on a pty linked at the station's resource (its own options)."""
    latency = latency_s if latency_s is not None else opts.latency_s
    try:
        faults = [parse_fault(f) for f in opts.faults] + list(extra)
    except ValueError as exc:
        raise ConfigError(f"instruments.board.options.emulator.faults: {exc}") from None
    board_faults = []
    for f in faults:
        if f.kind == "stuck_relay":
            raise ConfigError("fault: the board has no relays to stick (kinds: timeout, garbled, disconnect)")
        board_faults.append(BoardFault(f.kind, command=f.match.upper() if f.match else None, after=f.after))
    kwargs: dict[str, Any] = {"link": link, "faults": board_faults}
    if latency is not None:
        kwargs["latency"] = latency
    return cls(twin, **kwargs)


def launch_station(
    station: Station | str,
    seed: int | None = None,
    latency_s: float | None = None,
    faults: Mapping[str, Iterable[Fault]] | None = None,
    free_ports: bool = False,
    on_message: Mapping[str, Callable[[str], None]] | None = None,
) -> Bench:
    """Build (not start) the emulators of every instrument of ``station`` around one twin.

    Args:
        station: a station or the path of its YAML file.
        seed: twin seed (default: the station's ``twin.seed``).
        latency_s: per-message latency of every emulator (default: each instrument's
            ``options.emulator.latency_s``, else the model's realistic default).
        faults: extra faults per instrument name (added to ``options.emulator.faults``).
        free_ports: listen on free ports instead of the resources' ports.
        on_message: per instrument name, a callback on every message (tests).

    Raises:
        ConfigError: a resource that is not a loopback socket, an unknown model, a bad option.
    """
    st = load_station(station) if isinstance(station, str) else station
    if st.backend == "twin":
        raise ConfigError(f"station '{st.name}': backend 'twin' has no instruments to emulate")
    twin = twin_for(st, seed)
    wiring = Wiring.from_plan(twin, plan_smu_matrix(st)) if st.backend == "smu-matrix" else Wiring(twin)
    bench = Bench(st, twin, wiring)
    extra = {k: list(v) for k, v in (faults or {}).items()}
    unknown = sorted(set(extra) - set(st.instruments))
    if unknown:
        raise ConfigError(f"fault: '{unknown[0]}' is not an instrument of station '{st.name}'")
    for name, cfg in st.instruments.items():
        cls, fixed = emulator_class(cfg.model)
        opts = _emulator_options(st, name)
        if cfg.model.lower() == "board":
            bench.emulators[name] = _board(cls, twin, cfg.resource, latency_s, opts, extra.get(name, []))
            bench.models[name] = "board"
            continue
        try:
            own_faults = [parse_fault(f) for f in opts.faults]
        except ValueError as exc:
            raise ConfigError(f"instruments.{name}.options.emulator.faults: {exc}") from None
        offered: dict[str, Any] = {
            "wiring": wiring,
            "name": name,
            "latency_s": latency_s if latency_s is not None else opts.latency_s,
            "faults": own_faults + extra.get(name, []),
            "station": st,
            "options": cfg.options,
            **fixed,
        }
        presented = opts.model or cfg.options.get("instrument_model")
        if presented and cfg.model.lower() in SMU_CHANNELS:
            offered["model"] = str(presented)
        if on_message and name in on_message:
            offered["on_message"] = on_message[name]
        address = socket_address(cfg.resource)
        if address is not None:
            host, port = address
            if host not in LOOPBACK:
                raise ConfigError(
                    f"instruments.{name}.resource: '{cfg.resource}' is not on this computer; "
                    "emulators listen on loopback (TCPIP0::127.0.0.1::PORT::SOCKET)"
                )
            offered["host"] = "127.0.0.1"
            offered["port"] = 0 if free_ports else port
        elif cfg.model.lower() in SMU_CHANNELS or cfg.model.lower() in MATRIX_GEOMETRY:
            raise ConfigError(
                f"instruments.{name}.resource: '{cfg.resource}' is not a socket resource "
                "(TCPIP0::127.0.0.1::PORT::SOCKET) an emulator can listen on"
            )
        slots = cfg.options.get("slots")
        if slots is not None:
            offered["slots"] = slots
            offered["cards"] = slots
        bench.emulators[name] = _construct(cls, twin, offered)
        bench.models[name] = cfg.model.lower()
    return bench


def launch_instrument(
    model: str,
    port: int = 0,
    seed: int | None = None,
    latency_s: float | None = None,
    faults: Iterable[Fault] = (),
) -> Bench:
    """Build (not start) one emulator alone, around the built-in twin station's twin.

    An SMU alone has each channel cabled straight to cell (0, 0) of array ``A``; a matrix alone
    switches nothing but its relays.
    """
    cls, fixed = emulator_class(model)
    station = load_station(None)
    twin = twin_for(station, seed)
    offered = {
        "name": model.lower(),
        "host": "127.0.0.1",
        "port": port,
        "latency_s": latency_s,
        "faults": list(faults),
        **fixed,
    }
    bench = Bench(station, twin, Wiring(twin))
    emu = _construct(cls, twin, offered)
    bench.wiring = getattr(emu, "wiring", bench.wiring)
    bench.emulators[model.lower()] = emu
    bench.models[model.lower()] = model.lower()
    return bench
