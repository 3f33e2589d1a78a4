"""Helpers shared by the SMU and switch-matrix drivers: strict reply parsing, number formatting.

pymeasure's ``values()`` keeps unparsable items as strings; a driver that feeds measurements
to an experiment must not, so replies are parsed strictly here and a malformed one raises
:class:`ReplyError` with the reply in the message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

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
