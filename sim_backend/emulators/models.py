"""The instrument models this package emulates: a plain table (no imports), so the command line
can name them without loading the emulators."""

from __future__ import annotations

from typing import Any

#: Instrument model -> ``module:class`` of its emulator (and fixed constructor options).
EMULATORS: dict[str, tuple[str, dict[str, Any]]] = {
    "keithley2450": ("sim_backend.emulators.keithley2450:Keithley2450Emulator", {}),
    "keithley2600": ("sim_backend.emulators.keithley2600:Keithley2600Emulator", {}),
    "b2900": ("sim_backend.emulators.b2900:KeysightB2900Emulator", {}),
    "keithley707b": ("sim_backend.emulators.keithley707b:Keithley707BEmulator", {"model": "707B"}),
    "keithley708b": ("sim_backend.emulators.keithley707b:Keithley707BEmulator", {"model": "708B"}),
    "e5250a": ("sim_backend.emulators.e5250a:KeysightE5250AEmulator", {}),
    "board": ("sim_backend.emulators.board:BoardEmulator", {}),
}
