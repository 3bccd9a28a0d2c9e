"""Time series from CSV files: the one loader for bundled data and users' files."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.preprocess import utc_minutes

MISSING = {"", "na", "nan", "null", "none", "?"}
FILL_METHODS = ("ffill", "interpolate", "zero")


@dataclass(frozen=True)
class TimeSeries:
    """Aligned numeric columns over time.

    Attributes:
        values: ``(T, C)`` float64, targets first, then covariates.
        columns: the ``C`` column names.
        num_targets: how many leading columns are forecast targets.
        timestamps: ``(T,)`` ``datetime64[m]`` or None when the file has no date column.
        name: which series of a panel this is (its id), or None for a lone series.
    """

    values: np.ndarray
    columns: tuple[str, ...]
    num_targets: int = 1
    timestamps: np.ndarray | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        """Refuse values that are not finite numbers, naming the first one's column and row
        (a NaN would only show up later, as a NaN loss)."""
        finite = np.isfinite(self.values)
        if not finite.all():
            row, column = np.argwhere(~finite)[0]
            raise ValueError(
                f"values: expected finite numbers, got {self.values[row, column]} in column "
                f"{self.columns[column]!r} at row {row} (of {len(self.values)}); fill or drop "
                "it first (read_series fills gaps with fill=...)"
            )

    def __len__(self) -> int:
        return len(self.values)

    @property
    def targets(self) -> np.ndarray:
        """``(T, num_targets)``."""
        return self.values[:, : self.num_targets]

    def slice(self, start: int | None = None, stop: int | None = None) -> TimeSeries:
        """Steps ``start:stop`` (Python slice semantics, negative indices allowed)."""
        stamps = None if self.timestamps is None else self.timestamps[start:stop]
        return TimeSeries(
            self.values[start:stop], self.columns, self.num_targets, stamps, self.name
        )


def read_series(
    path: str | Path,
    target: str | list[str],
    covariates: list[str] | tuple[str, ...] = (),
    date_column: str | None = None,
    fill: str | None = None,
) -> TimeSeries:
    """Read numeric columns of a CSV file with a header row.

    Args:
        path: the CSV file.
        target: the column (or columns) to forecast.
        covariates: extra numeric input columns.
        date_column: a column of ISO 8601 dates/times, in increasing order; None for none.
        fill: how to fill missing cells (empty, NA, NaN): ``"ffill"``, ``"interpolate"``,
            ``"zero"``, or None to reject them.

    Raises:
        FileNotFoundError, ValueError: naming the file, the column and the row at fault.
    """
    rows, wanted, targets = _read_rows(path, target, covariates, date_column, fill)
    return _series(rows, wanted, targets, date_column, fill, Path(path).name)


def read_panel(
    path: str | Path,
    id_column: str,
    target: str | list[str],
    covariates: list[str] | tuple[str, ...] = (),
    date_column: str | None = None,
    fill: str | None = None,
) -> list[TimeSeries]:
    """Read a panel in long format: one row per series and step, ``id_column`` naming the
    series; the other arguments are :func:`read_series`'s, applied to each series.

    Returns:
        One :class:`TimeSeries` per id (its ``name``), in order of first appearance; a
        series' rows keep the file's order, and with ``date_column`` must be increasing.
    """
    rows, wanted, targets = _read_rows(path, target, covariates, date_column, fill, id_column)
    file = Path(path).name
    groups: dict[str, list[dict[str, str]]] = {}
    for number, row in enumerate(rows, start=1):
        name = (row[id_column] or "").strip()
        if not name:
            raise ValueError(f"column {id_column!r} of {file}: no series id at data row {number}")
        groups.setdefault(name, []).append(row)
    return [
        _series(group, wanted, targets, date_column, fill, f"{file} (series {name!r})", name)
        for name, group in groups.items()
    ]


def find_date_column(path: str | Path, rows: int = 20) -> str | None:
    """The first column of a CSV file whose first ``rows`` cells are all ISO 8601 dates,
    or None: how a user's file gets its time axis without naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data: no such file {str(path)!r}")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        head = [row for _, row in zip(range(rows), reader, strict=False)]
        names = reader.fieldnames or []
    for name in names:
        cells = [(row.get(name) or "").strip() for row in head]
        if cells and all(_is_date(cell) for cell in cells):
            return name
    return None


def _is_date(cell: str) -> bool:
    if len(cell) < 7 or not cell[:4].isdigit() or cell[4] != "-":  # not a bare number
        return False
    try:
        utc_minutes(cell)
    except ValueError:
        return False
    return True


def _read_rows(
    path: str | Path,
    target: str | list[str],
    covariates: list[str] | tuple[str, ...],
    date_column: str | None,
    fill: str | None,
    id_column: str | None = None,
) -> tuple[list[dict[str, str]], list[str], int]:
    """The data rows of a CSV file, the numeric columns wanted and how many are targets."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data: no such file {str(path)!r}")
    targets = [target] if isinstance(target, str) else list(target)
    if not targets:
        raise ValueError("target: expected at least one column name, got none")
    if fill is not None and fill not in FILL_METHODS:
        raise ValueError(f"fill: expected one of {FILL_METHODS}, got {fill!r}")
    wanted = [*targets, *covariates]
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        for name in [*wanted, *(c for c in (date_column, id_column) if c)]:
            if name not in header:
                raise ValueError(
                    f"column {name!r} not found in {path.name}; its columns are {header}"
                )
        rows = list(reader)
    if not rows:
        raise ValueError(f"data: {path.name} has a header but no rows")
    for number, row in enumerate(rows, start=1):
        # csv puts extra cells under the key None and gives missing ones the value None:
        # read on, a ragged row would put its numbers in the wrong columns
        if None in row or None in row.values():
            given = sum(value is not None for key, value in row.items() if key is not None)
            cells = given + len(row.get(None) or [])
            raise ValueError(
                f"data: row {number} of {path.name} has {cells} cells; expected {len(header)}, "
                "one per column of the header"
            )
    return rows, wanted, len(targets)


def _series(
    rows: list[dict[str, str]],
    wanted: list[str],
    targets: int,
    date_column: str | None,
    fill: str | None,
    where: str,
    name: str | None = None,
) -> TimeSeries:
    values = np.empty((len(rows), len(wanted)))
    for j, column in enumerate(wanted):
        values[:, j] = _numeric_column(rows, column, where)
    values = _fill_missing(values, wanted, fill, where)
    stamps = _timestamps(rows, date_column, where) if date_column else None
    return TimeSeries(values, tuple(wanted), targets, stamps, name)


def _numeric_column(rows: list[dict[str, str]], name: str, file: str) -> np.ndarray:
    column = np.empty(len(rows))
    for i, row in enumerate(rows):
        cell = (row[name] or "").strip()
        if cell.lower() in MISSING:
            column[i] = np.nan
            continue
        try:
            column[i] = float(cell)
        except ValueError:
            raise ValueError(
                f"column {name!r} of {file}: expected numbers, got {cell!r} at data row {i + 1}"
            ) from None
    if not np.isfinite(column[~np.isnan(column)]).all():
        raise ValueError(f"column {name!r} of {file}: contains inf")
    return column


def _fill_missing(values: np.ndarray, names: list[str], fill: str | None, file: str) -> np.ndarray:
    missing = np.isnan(values)
    if not missing.any():
        return values
    j = int(np.argmax(missing.any(axis=0)))
    first = int(np.argmax(missing[:, j])) + 1
    if fill is None:
        raise ValueError(
            f"column {names[j]!r} of {file}: {int(missing[:, j].sum())} missing values (first "
            f"at data row {first}); choose a fill method: {', '.join(FILL_METHODS)}"
        )
    filled = values.copy()
    for j in range(values.shape[1]):
        gaps = missing[:, j]
        if gaps.all():
            raise ValueError(f"column {names[j]!r} of {file}: every value is missing")
        known = np.flatnonzero(~gaps)
        if fill == "zero":
            filled[gaps, j] = 0.0
        elif fill == "interpolate":
            filled[:, j] = np.interp(np.arange(len(values)), known, values[known, j])
        else:  # ffill; leading gaps take the first known value
            index = np.maximum.accumulate(np.where(gaps, 0, np.arange(len(values))))
            index[: known[0]] = known[0]
            filled[:, j] = values[index, j]
    return filled


def _timestamps(rows: list[dict[str, str]], column: str, file: str) -> np.ndarray:
    try:
        stamps = utc_minutes([row[column] for row in rows])
    except ValueError as error:
        raise ValueError(
            f"column {column!r} of {file}: expected ISO 8601 dates ({error})"
        ) from None
    if (np.diff(stamps) <= np.timedelta64(0, "m")).any():
        raise ValueError(f"column {column!r} of {file}: dates must be strictly increasing")
    return stamps
