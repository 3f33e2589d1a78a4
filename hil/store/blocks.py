"""Readings and pulse records stored in blocks: one row per batch, one plain-SQL view row per reading.

A protocol logs readings in batches (a pulse train's reads, a whole-array read). Each batch is
stored as one row of ``reading_blocks`` (``pulse_blocks`` for pulse records):

- ``run_id``, ``seq_first``, ``n``: the block holds the readings ``seq_first .. seq_first + n - 1``
  of the run (consecutive ``seq``; a unique index on ``(run_id, seq_first)`` and a trigger refusing
  overlapping ranges keep ``(run_id, seq)`` unique);
- ``kind`` (``purpose``) and ``array``: shared by every reading of the block (a batch in which
  they change is split into several blocks);
- one column per numeric column of the view (``row``, ``col``, ``voltage_V``, ...): the value
  every reading of the block shares, NULL when they differ (or when all are NULL);
- ``has_null``, ``has_value``: bit ``k`` set when some reading has a NULL, resp. a value, in the
  ``k``-th numeric column (what the library needs to give each column the dtype a narrow table
  gave it, without reading a reading);
- ``data``: the readings, row-major JSON, one inner array per reading with the numeric columns in
  view order (``[row, col, voltage_V, current_A, conductance_S, t_s, cycle, pulse, step]``),
  ``null`` where the value is NULL or is the block's shared value.

The views ``readings`` and ``pulses`` have exactly the columns of the narrow tables of schema
0002 (their surrogate ``id`` aside) and decode blocks in plain SQL (SQLite ``json_each``,
PostgreSQL ``json_array_elements``): ``sqlite3`` and datasette query them without this library.
The library itself decodes blocks with orjson into numpy (:func:`decode`), never through the view.

The DDL here is the one migration ``0003`` creates (``hil/store/migrations/versions``) and a new
database gets (:func:`hil.store.schema._create`); changing it needs a new revision.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd

#: readings per block at most: a larger batch is split (memory of one block, decoded: ~5 MB)
MAX_BLOCK = 65_536
#: the largest integer a float64 holds exactly; integer columns travel through float64 arrays
MAX_EXACT_INT = 2**53
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class Layout:
    """How one logical table (``readings`` or ``pulses``) is stored in blocks."""

    view: str
    table: str
    label: str
    label_default: str
    numeric: tuple[str, ...]
    integer: frozenset[str]
    required: frozenset[str]
    #: the numeric columns in the order of a reading's inner array in ``data``: those that
    #: usually differ within a batch first, so that trailing shared ones are simply left out
    data_order: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """The view's (and ``readings_df``'s) columns, in order."""
        return ("run_id", "seq", self.label, "array", *self.numeric)

    @property
    def block_columns(self) -> tuple[str, ...]:
        """The block table's columns that an insert sets, in order (``id`` is the database's)."""
        return (
            "run_id",
            "seq_first",
            "n",
            self.label,
            "array",
            *self.numeric,
            "has_null",
            "has_value",
            "data",
        )


READINGS = Layout(
    view="readings",
    table="reading_blocks",
    label="kind",
    label_default="read",
    numeric=("row", "col", "voltage_V", "current_A", "conductance_S", "t_s", "cycle", "pulse", "step"),
    integer=frozenset({"row", "col", "cycle", "pulse", "step"}),
    required=frozenset({"row", "col", "voltage_V", "current_A", "t_s"}),
    data_order=("conductance_S", "current_A", "t_s", "pulse", "row", "col", "voltage_V", "cycle", "step"),
)
PULSES = Layout(
    view="pulses",
    table="pulse_blocks",
    label="purpose",
    label_default="pulse",
    numeric=("row", "col", "amplitude_V", "width_s", "count", "t_s", "cycle", "pulse", "step"),
    integer=frozenset({"row", "col", "count", "cycle", "pulse", "step"}),
    required=frozenset({"row", "col", "amplitude_V", "width_s", "count", "t_s"}),
    data_order=("row", "col", "t_s", "amplitude_V", "width_s", "count", "pulse", "cycle", "step"),
)
LAYOUTS = (READINGS, PULSES)


# ---------------------------------------------------------------------- writing
def column_length(columns: Mapping[str, Any]) -> int:
    """The common length of the array-valued columns (1 when every column is a scalar)."""
    n = None
    for name, value in columns.items():
        if _is_array(value):
            m = len(value)
            if n is None:
                n = m
            elif m != n:
                raise ValueError(f"column '{name}' has {m} values, others have {n}")
    return 1 if n is None else n


def _is_array(value: Any) -> bool:
    if type(value) is np.ndarray:
        return value.ndim > 0
    return isinstance(value, np.ndarray | list | tuple) and np.ndim(value) > 0


def _changes(value: Any, n: int) -> np.ndarray | None:
    """Indices ``i`` (1..n-1) where a key column's value differs from the one before; None for a scalar."""
    if not _is_array(value):
        return None
    arr = np.asarray(value, dtype=object) if not isinstance(value, np.ndarray) else value
    arr = arr.reshape(-1)
    if n < 2:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(arr[1:] != arr[:-1]) + 1


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def encode(layout: Layout, columns: Mapping[str, Any], max_block: int = MAX_BLOCK) -> list[tuple[Any, ...]]:
    """The block rows (in :attr:`Layout.block_columns` order) that store ``columns``: numpy
    arrays, lists or scalars, one value per reading; ``seq`` consecutive within a block.

    Raises:
        ValueError: an unknown column, columns of different lengths, a required column missing
            or NULL, an integer beyond 2**53, a missing ``run_id``/``seq``/``array``.
    """
    unknown = set(columns) - set(layout.columns)
    if unknown:
        raise ValueError(
            f"{layout.view}: unknown columns {sorted(unknown)} (known: {', '.join(layout.columns)})"
        )
    n = column_length(columns)
    for key in ("run_id", "seq", "array"):
        if columns.get(key) is None:
            raise ValueError(f"{layout.view}: column '{key}' is required")
    label = columns.get(layout.label, layout.label_default)
    if label is None:
        label = layout.label_default
    seq = np.asarray(columns["seq"], dtype=np.int64).reshape(-1)
    if seq.size != n:
        raise ValueError(f"{layout.view}: column 'seq' needs one value per reading ({n})")
    if n == 1:  # one pulse record of a one-cell train: every value goes to the block row
        return [_encode_one(layout, columns, label, int(seq[0]))]

    # one contiguous row per array column (data order); scalar columns go to the block row
    scalars: dict[str, int | float | None] = {}
    varying: dict[str, np.ndarray] = {}
    for name in layout.data_order:
        value = columns.get(name)
        if _is_array(value):
            varying[name] = np.asarray(value, dtype=np.float64).reshape(-1)
            continue
        value = _scalar(value)
        if value is None or value != value:  # None or NaN: NULL
            if name in layout.required:
                raise ValueError(f"{layout.view}: column '{name}' is required and may not be null")
            scalars[name] = None
        elif name in layout.integer:
            if abs(value) > MAX_EXACT_INT:
                raise ValueError(f"{layout.view}: column '{name}' holds an integer beyond 2**53")
            scalars[name] = int(value)
        else:
            scalars[name] = float(value)
    names = list(varying)
    cols = np.stack([varying[c] for c in names]) if names else np.empty((0, n))
    missing = np.isnan(cols)
    any_missing = bool(missing.any())
    if names:
        required = [i for i, c in enumerate(names) if c in layout.required]
        if any_missing and required and missing[required].any():
            bad = next(i for i in required if missing[i].any())
            raise ValueError(f"{layout.view}: column '{names[bad]}' is required and may not be null")
        # one reduction over every array column (no real column comes near 2**53 either)
        if np.fmax.reduce(np.abs(cols), axis=None, initial=0.0) > MAX_EXACT_INT:
            integer = [i for i, c in enumerate(names) if c in layout.integer]
            if integer and (np.abs(cols[integer]) > MAX_EXACT_INT).any():
                raise ValueError(f"{layout.view}: an integer column holds a value beyond 2**53")

    # block boundaries: a break in seq, a change of run, label or array, the size limit
    cuts: list[np.ndarray] = []
    if n > 1:
        steps = np.diff(seq)
        if not (steps == 1).all():
            cuts.append(np.flatnonzero(steps != 1) + 1)
    for key_value in (columns["run_id"], label, columns["array"]):
        change = _changes(key_value, n)
        if change is not None and change.size:
            cuts.append(change)
    if n > max_block:
        cuts.append(np.arange(max_block, n, max_block))
    edges = np.unique(np.concatenate([[0, n], *cuts])).tolist() if cuts else [0, n]

    run_ids, labels, array_names = _per_row(columns["run_id"]), _per_row(label), _per_row(columns["array"])
    position = {c: i for i, c in enumerate(names)}
    rows: list[tuple[Any, ...]] = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        part = cols[:, a:b]
        nulls = missing[:, a:b]
        first = part[:, 0].tolist()
        # shared: every reading has the same value (NaN never equals: a column with a NULL is not)
        same = np.all(part == part[:, :1], axis=1) if b - a > 1 else ~nulls[:, 0]
        shared: list[bool] = np.asarray(same).tolist()
        if any_missing:
            some_null: list[bool] = np.asarray(nulls.any(axis=1)).tolist()
            all_null: list[bool] = np.asarray(nulls.all(axis=1)).tolist()
        else:
            some_null = all_null = [False] * len(names)
        block: dict[str, Any] = {}
        has_null = has_value = 0
        for bit, name in enumerate(layout.numeric):
            if name in scalars:
                const = scalars[name]
                null, value = const is None, const is not None
            else:
                i = position[name]
                if shared[i]:
                    const = int(first[i]) if name in layout.integer else first[i]
                    null, value = False, True
                else:
                    const = None
                    null, value = some_null[i], not all_null[i]
            block[name] = const
            has_null |= null << bit
            has_value |= value << bit
        # data columns in data order: -1 where the block row holds the value (written null);
        # trailing ones of those are left out
        picks = [
            position[name] if name in position and not shared[position[name]] else -1
            for name in layout.data_order
        ]
        while picks and picks[-1] < 0:
            picks.pop()
        if -1 not in picks:
            data_mat = np.ascontiguousarray(part[picks].T)
        else:
            data_mat = np.full((b - a, len(picks)), np.nan)
            for p, i in enumerate(picks):
                if i >= 0:
                    data_mat[:, p] = part[i]
        data = orjson.dumps(data_mat, option=_DUMPS_OPTIONS).decode("ascii")
        rows.append(
            (
                int(run_ids(a)),
                int(seq[a]),
                b - a,
                str(labels(a)),
                str(array_names(a)),
                *(block[name] for name in layout.numeric),
                has_null,
                has_value,
                data,
            )
        )
    return rows


def _first(value: Any) -> Any:
    """The value of the first (only) reading of a scalar or one-element column, as Python."""
    if _is_array(value):
        value = value.reshape(-1)[0] if isinstance(value, np.ndarray) else value[0]
    return _scalar(value)


def _encode_one(layout: Layout, columns: Mapping[str, Any], label: Any, seq: int) -> tuple[Any, ...]:
    """:func:`encode` of a single reading, without numpy: its block row holds every value."""
    consts: list[Any] = []
    has_null = has_value = 0
    for bit, name in enumerate(layout.numeric):
        value = _first(columns.get(name))
        if value is None or value != value:  # None or NaN: NULL
            if name in layout.required:
                raise ValueError(f"{layout.view}: column '{name}' is required and may not be null")
            consts.append(None)
            has_null |= 1 << bit
            continue
        if name in layout.integer:
            if abs(value) > MAX_EXACT_INT:
                raise ValueError(f"{layout.view}: column '{name}' holds an integer beyond 2**53")
            consts.append(int(value))
        else:
            consts.append(float(value))
        has_value |= 1 << bit
    run_id, array = _first(columns["run_id"]), _first(columns["array"])
    return (int(run_id), seq, 1, str(_first(label)), str(array), *consts, has_null, has_value, "[[]]")


def _per_row(value: Any) -> Any:
    """``i -> value of row i`` for a scalar or per-row column."""
    if _is_array(value):
        arr = (
            np.asarray(value, dtype=object).reshape(-1)
            if not isinstance(value, np.ndarray)
            else value.reshape(-1)
        )
        return lambda i: _scalar(arr[i])
    scalar = _scalar(value)
    return lambda i: scalar


# ---------------------------------------------------------------------- reading
TEXT_DTYPE = pd.Series(["text"]).dtype  # pandas' inferred string dtype (object before pandas 3)
#: pandas' C parser reads floats exactly: by default from pandas 3 on (the option is deprecated
#: there), with ``float_precision="round_trip"`` before
_EXACT: dict[str, Any] = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def frame_dtypes(layout: Layout, has_null: Sequence[bool], has_value: Sequence[bool]) -> dict[str, Any]:
    """The dtypes a narrow table's rows got from ``pandas.read_sql_query``: an integer column
    without NULL ``int64``, with some ``float64``; a real column with a value ``float64``; text
    pandas' string dtype; a column without any value ``object`` (None)."""
    dtypes: dict[str, Any] = {
        "run_id": np.dtype("int64"), "seq": np.dtype("int64"), layout.label: TEXT_DTYPE, "array": TEXT_DTYPE,
    }  # fmt: skip
    for name, null, value in zip(layout.numeric, has_null, has_value, strict=True):
        if not value:
            dtypes[name] = np.dtype(object)
        elif name in layout.integer and not null:
            dtypes[name] = np.dtype("int64")
        else:
            dtypes[name] = np.dtype("float64")
    return dtypes


def empty_frame(layout: Layout) -> pd.DataFrame:
    """What ``read_sql_query`` gave for a run without rows: the columns, all ``object``."""
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in layout.columns})


def slice_block(row: Sequence[Any], skip: int, take: int) -> tuple[Any, ...]:
    """The block row ``row`` (``seq_first, n, label, array, *numeric, data``, as :func:`decode`
    takes it) cut to its readings ``skip .. skip + take - 1``, without parsing a value: the
    inner arrays hold no brackets, so reading ``i`` starts at the ``i + 1``-th ``[`` of ``data``.
    What is new after a ``seq``, or a window of a large block, then costs its own readings."""
    n = int(row[1])
    skip = max(0, min(skip, n))
    take = max(0, min(take, n - skip))
    if skip == 0 and take == n:
        return tuple(row)
    data = str(row[-1])
    if not data.startswith("[[]"):  # (a block whose values are all in its row keeps its "[[]]")
        buf = np.frombuffer(data.encode("ascii"), dtype=np.uint8)
        starts = np.flatnonzero(buf == ord("["))[1:]  # reading i begins at starts[i]
        end = int(starts[skip + take]) - 1 if skip + take < n else len(data) - 1  # its ',' / the last ']'
        data = "[" + data[int(starts[skip]) : end] + "]"
    return (int(row[0]) + skip, take, *row[2:-1], data)


def head_of_block(row: Sequence[Any], take: int) -> tuple[Any, ...] | None:
    """The block row ``row`` cut to its first ``take`` readings (fewer when its ``data`` is a
    prefix cut short in SQL, ``substr(data, 1, K)``: the readings complete in it); None when
    the prefix holds no complete reading."""
    n = int(row[1])
    data = str(row[-1])
    if data.startswith("[[]"):
        return (row[0], min(take, n), *row[2:-1], data)
    buf = np.frombuffer(data.encode("ascii"), dtype=np.uint8)
    starts = np.flatnonzero(buf == ord("["))[1:]
    whole = data.endswith("]]")
    complete = len(starts) if whole else len(starts) - 1  # the last one may be cut short
    take = min(take, n, complete)
    if take <= 0:
        return None
    end = int(starts[take]) - 1 if take < len(starts) else len(data) - 1
    return (row[0], take, *row[2:-1], "[" + data[int(starts[0]) : end] + "]")


#: readings parsed at a time by :func:`decode` (bounds the text it builds for pandas' parser)
DECODE_GROUP = 131_072


def decode(
    layout: Layout,
    run_id: int,
    blocks: Iterable[Sequence[Any]],
    dtypes: Mapping[str, Any],
    total: int | None = None,
) -> pd.DataFrame:
    """The readings of ``blocks`` (rows ``seq_first, n, label, array, *numeric, data``, in ``seq`` order) as one
    DataFrame with ``dtypes`` (:func:`frame_dtypes` of the whole run).

    The blocks' inner arrays are parsed by pandas' C parser (one reading a line, ``null`` a
    missing value, shorter lines padded with NaN), exact to the last bit, ~3 x faster than
    ``orjson.loads`` into Python floats; the block rows' shared values are filled in after.
    Blocks are parsed :data:`DECODE_GROUP` readings at a time into the output's own arrays, so
    the memory beyond the result is one group's text. With ``total`` (the readings the blocks
    hold) ``blocks`` is consumed as it comes (a streamed result need not be held whole)."""
    k = len(layout.numeric)
    if total is None:
        rows_list = list(blocks)
        total = sum(int(row[1]) for row in rows_list)
        blocks = rows_list
    if total == 0:
        return empty_frame(layout)
    positions = [layout.numeric.index(c) for c in layout.data_order]  # data position -> column
    columns = [np.empty(total) for _ in range(k)]
    seq = np.empty(total, dtype=np.int64)
    labels = np.empty(total, dtype=object)
    arrays = np.empty(total, dtype=object)
    group: list[Sequence[Any]] = []
    group_n = 0
    start = 0  # first output row of the group

    def flush() -> None:
        lines: list[str] = []
        for row in group:
            n, data = int(row[1]), row[4 + k]
            if data.startswith("[[]"):  # every value of the block is in its row
                lines.append("null\n" * (n - 1) + "null")
            else:
                lines.append(data[2:-2].replace("],[", "\n"))
        parsed = pd.read_csv(
            io.StringIO("\n".join(lines)), header=None, names=range(k), dtype=np.float64,
            na_values=["null", ""], keep_default_na=False, skip_blank_lines=False, **_EXACT,
        ).to_numpy()  # fmt: skip
        if parsed.shape != (group_n, k):
            raise ValueError(
                f"{layout.table}: blocks of run {run_id} hold {parsed.shape[0]} readings, not {group_n}"
            )
        stop = start + group_n
        for data_pos, column in enumerate(positions):
            columns[column][start:stop] = parsed[:, data_pos]
        at = start
        for row in group:
            n = int(row[1])
            end = at + n
            seq[at:end] = np.arange(int(row[0]), int(row[0]) + n)
            labels[at:end] = row[2]
            arrays[at:end] = row[3]
            for j, value in enumerate(row[4 : 4 + k]):
                if value is not None:
                    columns[j][at:end] = value
            at = end

    for row in blocks:
        n = int(row[1])
        if start + group_n + n > total:
            raise ValueError(f"{layout.table}: blocks of run {run_id} hold more than {total} readings")
        group.append(row)
        group_n += n
        if group_n >= DECODE_GROUP:
            flush()
            start += group_n
            group, group_n = [], 0
    if group:
        flush()
        start += group_n
    if start != total:
        raise ValueError(f"{layout.table}: blocks of run {run_id} hold {start} readings, not {total}")
    out: dict[str, Any] = {
        "run_id": np.full(total, run_id, dtype=np.int64),
        "seq": seq,
        layout.label: pd.array(labels, dtype=dtypes[layout.label]),
        "array": pd.array(arrays, dtype=dtypes["array"]),
    }
    for j, name in enumerate(layout.numeric):
        dtype = dtypes[name]
        if dtype == np.dtype(object):
            out[name] = np.full(total, None, dtype=object)
        elif dtype == np.dtype("int64"):
            out[name] = columns[j].astype(np.int64)
        else:
            out[name] = columns[j]
        columns[j] = np.empty(0)  # the DataFrame holds (or copied) it
    return pd.DataFrame(out, columns=list(layout.columns), copy=False)


# ---------------------------------------------------------------------- DDL (views and triggers)
def _q(name: str) -> str:
    return f'"{name}"'


def view_ddl(layout: Layout, dialect: str) -> list[str]:
    """``CREATE VIEW`` of the plain-SQL view of ``layout`` for ``dialect`` (``sqlite``,
    ``postgresql``; none for others, whose users read through the library)."""
    if dialect == "sqlite":
        seq = "b.seq_first + j.key"
        source = f"{_q(layout.table)} AS b, json_each(b.data) AS j"

        def element(k: int, is_int: bool) -> str:
            raw = f"json_extract(j.value, '$[{k}]')"
            return f"CAST({raw} AS INTEGER)" if is_int else raw
    elif dialect == "postgresql":
        seq = "CAST(b.seq_first + j.ord - 1 AS INTEGER)"
        source = (
            f"{_q(layout.table)} AS b CROSS JOIN LATERAL "
            "json_array_elements(CAST(b.data AS JSON)) WITH ORDINALITY AS j(value, ord)"
        )

        def element(k: int, is_int: bool) -> str:
            raw = f"CAST(j.value ->> {k} AS DOUBLE PRECISION)"
            return f"CAST({raw} AS INTEGER)" if is_int else raw
    else:
        return []
    cols = [
        "b.run_id AS run_id",
        f"{seq} AS seq",
        f"b.{_q(layout.label)} AS {_q(layout.label)}",
        'b."array" AS "array"',
    ]
    for name in layout.numeric:
        at = layout.data_order.index(name)
        cols.append(f"COALESCE(b.{_q(name)}, {element(at, name in layout.integer)}) AS {_q(name)}")
    body = ",\n       ".join(cols)
    return [f"CREATE VIEW {_q(layout.view)} AS\nSELECT {body}\nFROM {source}"]


def _overlap_condition(layout: Layout, self_test: str) -> str:
    """SQL true when the block NEW's seq range meets another block's of the same run: the other
    block with the largest ``seq_first`` at or before NEW's last seq is the only one that can
    (blocks of a run never overlap), found on the ``(run_id, seq_first)`` index."""
    return (
        "EXISTS (SELECT 1 FROM (SELECT seq_first, n FROM "
        f"{_q(layout.table)} WHERE run_id = NEW.run_id AND seq_first <= NEW.seq_first + NEW.n - 1 "
        f"AND {self_test} ORDER BY seq_first DESC LIMIT 1) AS prev "
        "WHERE prev.seq_first + prev.n - 1 >= NEW.seq_first)"
    )


def trigger_ddl(layout: Layout, dialect: str) -> list[str]:
    """Triggers refusing a block whose seq range overlaps another of its run (``(run_id, seq)``
    unique), for ``dialect``; the unique index on ``(run_id, seq_first)`` holds on any database."""
    message = f"{layout.table}: seq range overlaps a block of the same run ((run_id, seq) is unique)"
    if dialect == "sqlite":
        out = []
        for event, name, self_test in (
            ("INSERT", "insert", "1 = 1"),  # the new block is not in the table yet
            ("UPDATE OF run_id, seq_first, n", "update", "id IS NOT OLD.id"),
        ):
            out.append(
                f"CREATE TRIGGER {layout.table}_no_overlap_{name} BEFORE {event} ON {_q(layout.table)}\n"
                f"WHEN {_overlap_condition(layout, self_test)}\n"
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
        return out
    if dialect == "postgresql":
        function = f"{layout.table}_no_overlap"
        return [
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            # one writer per run at a time: a concurrent block of the same run waits, then sees ours
            f"  PERFORM pg_advisory_xact_lock({_PG_BLOCK_LOCK}, NEW.run_id);\n"
            f"  IF {_overlap_condition(layout, 'id IS DISTINCT FROM NEW.id')} THEN\n"
            f"    RAISE EXCEPTION USING ERRCODE = 'unique_violation', MESSAGE = '{message}';\n"
            "  END IF;\n"
            "  RETURN NEW;\n"
            "END $$",
            f"CREATE TRIGGER {function} BEFORE INSERT OR UPDATE OF run_id, seq_first, n ON {_q(layout.table)} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()",
        ]
    return []


_PG_BLOCK_LOCK = 0x72686262  # advisory-lock class of the block triggers (second key: the run)


def drop_ddl(layout: Layout, dialect: str) -> list[str]:
    """Statements that undo :func:`view_ddl` and :func:`trigger_ddl` (the downgrade)."""
    out = [f"DROP VIEW IF EXISTS {_q(layout.view)}"]
    if dialect == "sqlite":
        out += [f"DROP TRIGGER IF EXISTS {layout.table}_no_overlap_{n}" for n in ("insert", "update")]
    elif dialect == "postgresql":
        out += [
            f"DROP TRIGGER IF EXISTS {layout.table}_no_overlap ON {_q(layout.table)}",
            f"DROP FUNCTION IF EXISTS {layout.table}_no_overlap()",
        ]
    return out


def create_views_and_triggers(exec_sql: Any, dialect: str) -> None:
    """Run every view and trigger statement through ``exec_sql`` (a callable taking SQL text)."""
    for layout in LAYOUTS:
        for statement in trigger_ddl(layout, dialect) + view_ddl(layout, dialect):
            exec_sql(statement)
