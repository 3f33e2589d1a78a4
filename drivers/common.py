"""Helpers shared by the SMU and switch-matrix drivers: strict reply parsing, number formatting.

pymeasure's ``values()`` keeps unparsable items as strings; a driver that feeds measurements
to an experiment must not, so replies are parsed strictly here and a malformed one raises
:class:`ReplyError` with the reply in the message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: Line terminator of every LAN (raw socket) and USB-TMC session these drivers open.
TERMINATION = "\n"


class ReplyError(ValueError):
    """An instrument reply that does not parse as what was asked for."""


def parse_floats(
    reply: str, expected: int | None = None, what: str = "reply", separator: str = ","
) -> np.ndarray:
    """Numbers from a comma-separated reply; raises :class:`ReplyError` on anything else.

    Args:
        reply: the text the instrument sent (without terminator).
        expected: how many numbers must come back (``None``: any number, at least one).
        what: what the reply is, for the error message.
        separator: the item separator.
    """
    text = reply.strip()
    items = [item.strip() for item in text.split(separator)] if text else []
    try:
        values = np.array([float(item) for item in items], dtype=float)
    except ValueError:
        raise ReplyError(f"{what}: malformed reply {_show(reply)}") from None
    if values.size == 0 or (expected is not None and values.size != expected):
        n = "some" if expected is None else str(expected)
        raise ReplyError(f"{what}: expected {n} number(s), got {values.size} in {_show(reply)}")
    if not np.all(np.isfinite(values)):
        raise ReplyError(f"{what}: non-finite value in {_show(reply)}")
    return values


def parse_float(reply: str, what: str = "reply") -> float:
    """One number from a reply; raises :class:`ReplyError` otherwise."""
    return float(parse_floats(reply, 1, what)[0])


def _show(reply: str, limit: int = 80) -> str:
    return repr(reply if len(reply) <= limit else reply[:limit] + "...")


def fmt(value: float) -> str:
    """A number as instruments take it: shortest exact form (``%.10g``), no locale surprises."""
    if not math.isfinite(value):
        raise ValueError(f"cannot send non-finite value {value!r} to an instrument")
    text = f"{float(value):.10g}"
    return "0" if text == "-0" else text


def fmt_list(values: Iterable[float]) -> str:
    """Numbers joined by commas."""
    return ",".join(fmt(v) for v in values)


def check_choice(value: str, allowed: Sequence[str], what: str) -> str:
    """``value`` (lower-cased) if it is one of ``allowed``; a clear ValueError otherwise."""
    v = str(value).lower()
    if v not in allowed:
        raise ValueError(f"{what}: '{value}' is not one of {', '.join(allowed)}")
    return v


@dataclass(frozen=True)
class SourceRatings:
    """What one SMU model can source at most, from its datasheet: the largest |V| of its highest
    voltage range and the largest DC current of its highest current range (pulsed ratings,
    higher on some models, are not used: a station limit must hold for DC as well)."""

    model: str
    max_voltage_V: float
    max_current_A: float


def model_ratings(
    table: dict[str, SourceRatings], model_number: str | None, family: str
) -> SourceRatings:
    """The ratings of ``model_number`` in ``table`` or, when it is ``None``, the family's envelope
    (the largest voltage and current of any of its models).

    Raises:
        KeyError: an unknown model number (the message lists the known ones).
    """
    if model_number is None:
        if len(table) == 1:
            return next(iter(table.values()))
        return SourceRatings(
            f"{family} (any model)",
            max(r.max_voltage_V for r in table.values()),
            max(r.max_current_A for r in table.values()),
        )
    key = model_number.strip().upper()
    if key not in table:
        raise KeyError(f"'{model_number}' is not a {family} model ({', '.join(table)})")
    return table[key]


def model_from_idn(idn: str, table: dict[str, SourceRatings]) -> str | None:
    """The model number of ``table`` named in an ``*IDN?`` reply, e.g. ``2636B`` in
    ``Keithley Instruments Inc., Model 2636B, 4123456, 3.3.5`` (``None`` if none is)."""
    words = {w.strip().upper() for part in idn.split(",") for w in part.split()}
    for key in table:
        if key in words:
            return key
    return None
