"""What ``rram-hil protocols`` lists: each parameter's default, unit, type, bounds and, with a
station, its effective bounds (the tighter of the protocol's own and the station limit that
applies), as records (for ``--json``/``--csv``) and as text that fits the terminal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from hil.errors import field_range, type_words
from hil.safety import SafetyLimits


@dataclass(frozen=True)
class Bounds:
    """An interval; ``None`` is unbounded on that side."""

    lo: float | None = None
    lo_incl: bool = True
    hi: float | None = None
    hi_incl: bool = True

    def tighter(self, other: Bounds) -> Bounds:
        lo, lo_incl = self.lo, self.lo_incl
        if other.lo is not None and (lo is None or other.lo > lo or (other.lo == lo and not other.lo_incl)):
            lo, lo_incl = other.lo, other.lo_incl
        hi, hi_incl = self.hi, self.hi_incl
        if other.hi is not None and (hi is None or other.hi < hi or (other.hi == hi and not other.hi_incl)):
            hi, hi_incl = other.hi, other.hi_incl
        return Bounds(lo, lo_incl, hi, hi_incl)

    @property
    def empty(self) -> bool:
        return (
            self.lo is not None
            and self.hi is not None
            and (self.lo > self.hi or (self.lo == self.hi and not (self.lo_incl and self.hi_incl)))
        )

    def words(self, name: str = "", unit: str = "") -> str:
        """``0 < amplitude_V <= 5 V`` with a name, ``> 0, <= 5`` without one."""
        lo = None if self.lo is None else num(self.lo)
        hi = None if self.hi is None else num(self.hi)
        if name:
            text = (f"{lo} {'<=' if self.lo_incl else '<'} " if lo else "") + name
            text += f" {'<=' if self.hi_incl else '<'} {hi}" if hi else ""
            return text + (f" {unit}" if unit else "")
        parts = []
        if lo is not None:
            parts.append(f"{'>=' if self.lo_incl else '>'} {lo}")
        if hi is not None:
            parts.append(f"{'<=' if self.hi_incl else '<'} {hi}")
        return ", ".join(parts)


def num(value: float) -> str:
    """A bound as the help shows it: ``20``, ``0.0001``, ``1e+09``."""
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e7):
        return str(int(value))
    return f"{value:g}"


def field_bounds(info: FieldInfo) -> Bounds:
    lo: float | None = None
    hi: float | None = None
    lo_incl = hi_incl = True
    for meta in info.metadata:
        if isinstance(meta, at.Ge):
            lo, lo_incl = float(meta.ge), True  # type: ignore[arg-type]
        elif isinstance(meta, at.Gt):
            lo, lo_incl = float(meta.gt), False  # type: ignore[arg-type]
        elif isinstance(meta, at.Le):
            hi, hi_incl = float(meta.le), True  # type: ignore[arg-type]
        elif isinstance(meta, at.Lt):
            hi, hi_incl = float(meta.lt), False  # type: ignore[arg-type]
    return Bounds(lo, lo_incl, hi, hi_incl)


_READ_LIKE = ("read_voltage_V", "readout_V", "stress_voltage_V")
_COUNTS = ("pulses", "reset_pulses", "precondition_pulses", "program_pulses", "max_pulses_per_iteration")


def station_limit(name: str, unit: str, limits: SafetyLimits) -> tuple[str, Bounds] | None:
    """The station limit that applies to a protocol parameter, by the protocols' naming: pulse
    and ramp amplitudes against ``max_abs_voltage_V``, read voltages against
    ``max_read_voltage_V``, widths against ``min/max_pulse_width_s``, compliances, dwells, and
    pulses per call. ``None`` when no station limit applies (a step, a count of cycles)."""
    if unit == "V":
        if name.endswith(_READ_LIKE):
            lim = limits.max_read_voltage_V
            return "max_read_voltage_V", Bounds(-lim, True, lim, True)
        if "step" in name:
            return None
        lim = limits.max_abs_voltage_V
        return "max_abs_voltage_V", Bounds(-lim, True, lim, True)
    if unit == "s" and name.endswith("width_s"):
        return "min/max_pulse_width_s", Bounds(limits.min_pulse_width_s, True, limits.max_pulse_width_s, True)
    if unit == "s" and name.endswith("dwell_s"):
        return "max_dwell_s", Bounds(0.0, False, limits.max_dwell_s, True)
    if unit == "A" and "compliance" in name:
        return "max_compliance_A", Bounds(0.0, False, limits.max_compliance_A, True)
    if name in _COUNTS:
        return "max_pulses_per_call", Bounds(None, True, float(limits.max_pulses_per_call), True)
    return None


def default_text(value: Any) -> str:
    """A default as ``--set`` takes it: ``auto``, ``true``, ``0.0001``; ``-`` for none, ``''`` for empty."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "''"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(default_text(v) for v in value)
    return str(value)


def _json_number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def parameter_records(params: type[BaseModel], limits: SafetyLimits | None = None) -> list[dict[str, Any]]:
    """One record per parameter, the keys of ``rram-hil protocols --json``."""
    records = []
    for name, info in params.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        unit = str(extra.get("unit", "") or "")
        bounds = field_bounds(info)
        default = info.default if not callable(info.default) else None
        rec: dict[str, Any] = {
            "name": name,
            "default": default,
            "unit": unit,
            "type": type_words(info.annotation),
            "allowed": field_range(params, name),
            "min": _json_number(bounds.lo),
            "min_inclusive": bounds.lo_incl if bounds.lo is not None else None,
            "max": _json_number(bounds.hi),
            "max_inclusive": bounds.hi_incl if bounds.hi is not None else None,
            "description": info.description or "",
        }
        if limits is not None:
            applied = station_limit(name, unit, limits)
            if applied is None:
                rec.update(station_limit=None, effective=None, effective_min=None, effective_max=None)
            else:
                limit_name, station_bounds = applied
                eff = bounds.tighter(station_bounds)
                rec.update(
                    station_limit=limit_name,
                    effective=eff.words(name, unit) if not eff.empty else "nothing (the limits exclude it)",
                    effective_min=_json_number(eff.lo),
                    effective_max=_json_number(eff.hi),
                )
                rec["_effective_short"] = eff.words() if not eff.empty else "none"
        rec["_allowed_short"] = (
            bounds.words() if (bounds.lo is not None or bounds.hi is not None) else rec["type"]
        )
        records.append(rec)
    return records


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A record without its display-only (``_``) keys."""
    return {k: v for k, v in record.items() if not k.startswith("_")}
