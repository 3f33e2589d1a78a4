"""Clear, one-line errors for bad input: every message names the field and its allowed range."""

from __future__ import annotations

import math
import types
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """Bad input (a station file, a ``--set`` value, a preset): nothing was changed."""


def field_range(model: type[BaseModel], name: str) -> str:
    """The allowed range of ``model.name`` in words, e.g. ``-5 <= amplitude_V <= 5 V``."""
    info = model.model_fields.get(name)
    if info is None:
        return ""
    extra = info.json_schema_extra
    unit_name = extra.get("unit") if isinstance(extra, dict) else None
    unit = " " + unit_name if isinstance(unit_name, str) and unit_name else ""
    lo = hi = ""
    for meta in info.metadata:
        if isinstance(meta, at.Ge):
            lo = f"{meta.ge:g} <= " if isinstance(meta.ge, float) else f"{meta.ge} <= "
        elif isinstance(meta, at.Gt):
            lo = f"{meta.gt:g} < " if isinstance(meta.gt, float) else f"{meta.gt} < "
        elif isinstance(meta, at.Le):
            hi = f" <= {meta.le:g}" if isinstance(meta.le, float) else f" <= {meta.le}"
        elif isinstance(meta, at.Lt):
            hi = f" < {meta.lt:g}" if isinstance(meta.lt, float) else f" < {meta.lt}"
    if not lo and not hi:
        return f"{name}: {type_words(info.annotation)}{unit}"
    return f"{lo}{name}{hi}{unit}"


_TYPE_WORDS = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}


def _choices(values: list[Any]) -> str:
    shown = [str(v.value if isinstance(v, Enum) else v) for v in values]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def type_words(annotation: Any) -> str:
    """A parameter's type in words: ``Literal[1, 2, 4]`` -> ``1, 2 or 4``, ``bool`` -> ``true or
    false``, ``list[int]`` -> ``a list of whole numbers``, ``str | None`` -> ``text (optional)``."""
    origin = get_origin(annotation)
    if origin is Literal:
        return _choices(list(get_args(annotation)))
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        inner = " or ".join(type_words(a) for a in args)
        return f"{inner} (optional)" if len(args) < len(get_args(annotation)) else inner
    if origin in (list, tuple, set, frozenset):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        if len(args) == 1:
            words = type_words(args[0]).removeprefix("a ").removeprefix("an ")
            words = {"whole number": "whole numbers", "number": "numbers"}.get(words, words)
            return f"a list of {words}"
        return "a list"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return _choices(list(annotation))
    if annotation in _TYPE_WORDS:
        return _TYPE_WORDS[annotation]
    return getattr(annotation, "__name__", None) or str(annotation)


_COMPARISONS = ("less_than", "less_than_equal", "greater_than", "greater_than_equal", "finite_number")


def _not_finite(value: Any) -> bool:
    """NaN or infinite (a float, or text such as ``nan``, ``-inf``)."""
    if isinstance(value, bool):
        return False
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError, OverflowError):
        return False


def _model_at(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, str]:
    """Walk ``loc`` through nested models; return the innermost model and the last field name."""
    current = model
    name = ""
    for part in loc:
        if isinstance(part, int):
            continue
        name = str(part)
        if current is None:
            continue
        info = current.model_fields.get(name)
        nxt = None
        if info is not None:
            ann = info.annotation
            for cand in (ann, *getattr(ann, "__args__", ())):
                inner = getattr(cand, "__args__", None)
                for c in (cand, *(inner or ())):
                    if isinstance(c, type) and issubclass(c, BaseModel):
                        nxt = c
        if nxt is not None:
            current = nxt
        elif part != loc[-1]:
            current = None
    return current, name


def format_validation_error(
    exc: ValidationError, model: type[BaseModel] | None = None, prefix: str = ""
) -> str:
    """One line per problem: ``field: what is wrong (got VALUE; allowed: RANGE)``, joined by '; '."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        dotted = ".".join(str(p) for p in loc) or (model.__name__ if model else "input")
        msg = err["msg"]
        got = err.get("input")
        if err["type"] in _COMPARISONS and _not_finite(got):
            msg = "not a finite number"  # NaN fails every comparison: not "less than or equal to 20"
        detail = msg
        if err["type"] not in ("missing", "extra_forbidden") and not isinstance(got, dict | list):
            detail += f" (got {got!r}"
            owner, name = _model_at(model, loc) if model else (None, "")
            rng = field_range(owner, name) if owner else ""
            detail += f"; allowed: {rng})" if rng else ")"
        elif err["type"] == "extra_forbidden":
            detail = "unknown name"
            owner, _ = _model_at(model, loc[:-1]) if len(loc) > 1 and model else (model, "")
            if owner is not None:
                detail += f" (known: {', '.join(owner.model_fields)})"
        parts.append(f"{prefix}{dotted}: {detail}")
    return "; ".join(parts)
