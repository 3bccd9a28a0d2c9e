"""Labelled numeric sequences from files: the one loader for bundled sets and users' files.

Four formats, chosen by the file name (``.gz`` allowed after any text format):

* ``.ts``: the UCR/UEA archive format (Bagnall et al.): ``#`` comments, ``@key value``
  header lines, then ``@data`` and one example per line, its channels separated by ``:``,
  the values of a channel by ``,``, and the class label last. Multivariate and
  variable-length files are read; the header is kept in :attr:`Sequences.header`.
* ``.tsv`` / a ``.csv`` without a header: the UCR "wide" format, one example per line, the
  label first and then the values of one channel (trailing missing values pad shorter
  examples in the UCR 2018 files and are dropped).
* a ``.csv`` with a header row: the long format, one row per example and time step: an id
  column, an optional time column (rows are sorted by it), one column per channel and a
  label column that is constant within an id.
* ``.npz``: arrays ``X`` ``(N, L, F)`` or ``(N, L)`` and ``y`` ``(N,)``, and optionally
  ``lengths`` ``(N,)`` for padded variable-length examples. Read without pickle.

Missing values (empty, ``?``, ``NA``, ``NaN``) are an error naming the file, line and column
unless ``fill`` says how to fill them within their channel (``"ffill"``, ``"interpolate"``,
``"zero"``, as :func:`rnnkit.data.read_series`).
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rnnkit.data.series import FILL_METHODS, MISSING, _fill_missing

Label = str | int
SEQUENCE_SUFFIXES = (".ts", ".tsv", ".npz")


@dataclass(frozen=True)
class Sequences:
    """Labelled numeric sequences.

    Attributes:
        sequences: ``N`` float64 arrays ``(L_i, F)``, all finite.
        labels: ``N`` labels: int when every label in the file is an integer, else str.
        channels: the ``F`` channel names.
        source: the file name, for messages.
        header: a ``.ts`` file's ``@`` metadata (lower-case keys), else empty.
    """

    sequences: list[np.ndarray]
    labels: list[Label]
    channels: tuple[str, ...]
    source: str = ""
    header: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def num_features(self) -> int:
        """``F``."""
        return len(self.channels)

    @property
    def lengths(self) -> np.ndarray:
        """``(N,)`` steps of each example."""
        return np.array([len(s) for s in self.sequences])

    @property
    def classes(self) -> tuple[Label, ...]:
        """The distinct labels, sorted."""
        return tuple(sorted(set(self.labels)))


def is_sequence_file(path: str | Path, text_column: str = "text") -> bool:
    """Whether ``path`` is read by :func:`read_sequences` rather than as a text CSV: its
    suffix is a sequence format's, or it is a CSV that has no ``text_column``."""
    name = _plain_name(Path(path))
    if name.endswith(SEQUENCE_SUFFIXES):
        return True
    if not name.endswith(".csv") or not Path(path).is_file():
        return False
    with _open_text(Path(path)) as handle:
        first = next(csv.reader(handle), [])
    return text_column not in [cell.strip() for cell in first]


def read_sequences(
    path: str | Path,
    fill: str | None = None,
    id_column: str = "id",
    time_column: str | None = "time",
    label_column: str = "label",
) -> Sequences:
    """Read labelled sequences from a ``.ts``, ``.tsv``, ``.csv`` or ``.npz`` file.

    Args:
        path: the file (a text format may be gzipped: ``X_TRAIN.ts.gz``).
        fill: ``"ffill"``, ``"interpolate"`` or ``"zero"`` to fill missing values within
            their channel, or None to refuse them.
        id_column, time_column, label_column: the columns of a long-format CSV (a missing
            ``time_column`` keeps the file's row order).

    Returns:
        :class:`Sequences` in the file's order.

    Raises:
        FileNotFoundError, ValueError: one line naming the file, line and column at fault.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data: no such file {str(path)!r}")
    if fill is not None and fill not in FILL_METHODS:
        raise ValueError(f"fill: expected one of {', '.join(FILL_METHODS)}, got {fill!r}")
    name = _plain_name(path)
    if name.endswith(".npz"):
        return _read_npz(path, fill)
    if name.endswith(".ts"):
        return _read_ts(path, fill)
    if name.endswith(".tsv"):
        return _read_wide(path, "\t", fill)
    if name.endswith(".csv"):
        with _open_text(path) as handle:
            first = next(csv.reader(handle), [])
        if first and all(_is_number(cell) for cell in first[1:]) and len(first) > 1:
            return _read_wide(path, ",", fill)
        return _read_long(path, fill, id_column, time_column, label_column)
    raise ValueError(f"data: expected a .ts, .tsv, .csv or .npz file, got {path.name!r}")


# ---------------------------------------------------------------------- formats


def _read_ts(path: Path, fill: str | None) -> Sequences:
    header: dict[str, str] = {}
    sequences, labels = [], []
    in_data = False
    dimensions = None
    with _open_text(path) as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                if not line.startswith("@"):
                    raise ValueError(
                        f"data: {path.name} line {number}: expected an @ header line or "
                        f"@data before the examples, got {line[:40]!r}"
                    )
                key, _, value = line[1:].partition(" ")
                key = key.lower()
                if key == "data":
                    in_data = True
                    _check_ts_header(header, path.name)
                    if "dimensions" in header and header["dimensions"].isdigit():
                        dimensions = int(header["dimensions"])
                else:
                    header[key] = value.strip()
                continue
            *parts, label = line.split(":")
            if not parts:
                raise ValueError(
                    f"data: {path.name} line {number}: expected channels and a class label "
                    f"separated by ':', got no ':'"
                )
            if dimensions is None:
                dimensions = len(parts)
            if len(parts) != dimensions:
                raise ValueError(
                    f"data: {path.name} line {number}: expected {dimensions} channels, got "
                    f"{len(parts)} (mixed channel counts)"
                )
            offset, columns = 1, []
            for channel, text in enumerate(parts):
                cells = text.split(",")
                columns.append(_numbers(cells, path.name, number, offset, f"channel {channel + 1}"))
                offset += len(text) + 1
            lengths = {len(c) for c in columns}
            if len(lengths) > 1:
                raise ValueError(
                    f"data: {path.name} line {number}: expected channels of one length, got "
                    f"lengths {[len(c) for c in columns]}"
                )
            values = np.stack(columns, axis=1)  # (L, F)
            sequences.append(_filled(values, fill, path.name, number))
            labels.append(label.strip())
    if not in_data:
        raise ValueError(f"data: {path.name} has no @data line (is it a .ts file?)")
    _check_declared_labels(header, labels, path.name)
    channels = tuple(f"channel {j + 1}" for j in range(dimensions or 1))
    return _finish(sequences, labels, channels, path.name, header)


def _check_ts_header(header: dict[str, str], name: str) -> None:
    if header.get("timestamps", "false").lower() == "true":
        raise ValueError(f"data: {name} has @timeStamps true; rnnkit reads .ts files without")
    if header.get("classlabel", "true").split()[:1] == ["false"]:
        raise ValueError(f"data: {name} has @classLabel false: no labels to learn")
    if "targetlabel" in header:
        raise ValueError(f"data: {name} is a regression file (@targetLabel); expected classes")


def _check_declared_labels(header: dict[str, str], labels: list[str], name: str) -> None:
    declared = header.get("classlabel", "").split()[1:]
    unknown = sorted(set(labels) - set(declared))
    if declared and unknown:
        raise ValueError(
            f"data: {name} has label {unknown[0]!r}, which its @classLabel line does not "
            f"declare ({' '.join(declared)})"
        )


def _read_wide(path: Path, delimiter: str, fill: str | None) -> Sequences:
    sequences, labels = [], []
    with _open_text(path) as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            label, _, rest = line.partition(delimiter)
            cells = rest.split(delimiter)
            while cells and cells[-1].strip().lower() in MISSING:  # UCR 2018 pads with NaN
                cells.pop()
            if not cells:
                raise ValueError(
                    f"data: {path.name} line {number}: expected values after the label"
                )
            values = _numbers(cells, path.name, number, len(label) + 2, "")[:, None]  # (L, 1)
            sequences.append(_filled(values, fill, path.name, number))
            labels.append(_label_text(label))
    return _finish(sequences, labels, ("value",), path.name)


def _read_long(
    path: Path, fill: str | None, id_column: str, time_column: str | None, label_column: str
) -> Sequences:
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        header = [cell.strip() for cell in next(reader, [])]
        for option, column in (("id_column", id_column), ("label_column", label_column)):
            if column not in header:
                raise ValueError(
                    f"{option}: {column!r} is not a column of {path.name} (columns: "
                    f"{', '.join(header)}); a long-format CSV has one row per example and step"
                )
        time_at = header.index(time_column) if time_column in header else None
        id_at, label_at = header.index(id_column), header.index(label_column)
        channel_at = [j for j in range(len(header)) if j not in (id_at, label_at, time_at)]
        if not channel_at:
            raise ValueError(f"data: {path.name} has no channel columns besides id and label")
        groups: dict[str, list[tuple[float, np.ndarray, int]]] = {}
        group_labels: dict[str, str] = {}
        for row in reader:
            number = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise ValueError(
                    f"data: {path.name} line {number}: expected {len(header)} cells as in the "
                    f"header, got {len(row)}"
                )
            key = row[id_at].strip()
            label = _label_text(row[label_at])
            if group_labels.setdefault(key, label) != label:
                raise ValueError(
                    f"data: {path.name} line {number}, column {label_column!r}: example "
                    f"{key!r} has label {label!r} here and {group_labels[key]!r} before"
                )
            values = np.array([_cell(row[j], path.name, number, header[j]) for j in channel_at])
            time = (
                _cell(row[time_at], path.name, number, header[time_at], missing=False)
                if time_at is not None
                else 0.0
            )
            groups.setdefault(key, []).append((time, values, number))
    sequences, labels = [], []
    for key, rows in groups.items():
        if time_at is not None:
            rows.sort(key=lambda r: r[0])  # stable: equal times keep the file's order
        values = np.stack([r[1] for r in rows])  # (L, F)
        sequences.append(_filled(values, fill, path.name, rows[0][2], f"example {key!r}"))
        labels.append(group_labels[key])
    channels = tuple(header[j] for j in channel_at)
    return _finish(sequences, labels, channels, path.name)


def _read_npz(path: Path, fill: str | None) -> Sequences:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"data: {path.name} is not a readable .npz file ({error})") from None
    missing = [key for key in ("X", "y") if key not in arrays]
    if missing:
        raise ValueError(
            f"data: {path.name} has no array {missing[0]!r}; expected X (N, L, F) and y (N,) "
            f"(it holds {', '.join(sorted(arrays)) or 'none'})"
        )
    x, y = arrays["X"], arrays["y"]
    if x.dtype.kind not in "biuf" or x.ndim not in (2, 3):
        raise ValueError(
            f"data: {path.name}: expected X of numbers with shape (N, L, F) or (N, L), got "
            f"dtype {x.dtype} and shape {x.shape}"
        )
    x = x.astype(np.float64)
    if x.ndim == 2:
        x = x[:, :, None]
    if y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "biuU":
        raise ValueError(
            f"data: {path.name}: expected y of N = {len(x)} int or str labels, got dtype "
            f"{y.dtype} and shape {y.shape}"
        )
    lengths = arrays.get("lengths", np.full(len(x), x.shape[1]))
    if (
        lengths.shape != (len(x),)
        or lengths.dtype.kind not in "iu"
        or not ((lengths >= 1) & (lengths <= x.shape[1])).all()
    ):
        raise ValueError(
            f"data: {path.name}: expected lengths of N = {len(x)} integers in [1, "
            f"{x.shape[1]}], got {lengths!r}"
        )
    sequences = [
        _filled(x[i, : lengths[i]], fill, path.name, None, f"X[{i}]") for i in range(len(x))
    ]
    labels = [_label_text(str(v)) for v in y.tolist()]
    channels = tuple(f"channel {j + 1}" for j in range(x.shape[2]))
    return _finish(sequences, labels, channels, path.name)


# ---------------------------------------------------------------------- cells and checks


def _plain_name(path: Path) -> str:
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")  # type: ignore[return-value]
    return path.open(encoding="utf-8", newline="")


def _is_number(cell: str) -> bool:
    text = cell.strip()
    if text.lower() in MISSING:
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _numbers(cells: list[str], file: str, line: int, column: int, what: str) -> np.ndarray:
    """Cells of one channel as floats (NaN where missing); ``column`` is the first cell's
    character column, for errors."""
    values = np.empty(len(cells))
    for k, text in enumerate(cells):
        cell = text.strip()
        if cell.lower() in MISSING:
            values[k] = np.nan
        else:
            try:
                values[k] = float(cell)
            except ValueError:
                where = f", {what} value {k + 1}" if what else f", value {k + 1}"
                raise ValueError(
                    f"data: {file} line {line}, column {column}{where}: expected a number, "
                    f"got {cell[:30]!r}"
                ) from None
            if not np.isfinite(values[k]):
                raise ValueError(f"data: {file} line {line}, column {column}: got {cell!r}")
        column += len(text) + 1
    return values


def _cell(text: str, file: str, line: int, column: str, missing: bool = True) -> float:
    cell = text.strip()
    if cell.lower() in MISSING:
        if missing:
            return np.nan
        raise ValueError(f"data: {file} line {line}, column {column!r}: the value is missing")
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(
            f"data: {file} line {line}, column {column!r}: expected a number, got {cell[:30]!r}"
        ) from None
    if not np.isfinite(value):
        raise ValueError(f"data: {file} line {line}, column {column!r}: got {cell!r}")
    return value


def _filled(
    values: np.ndarray, fill: str | None, file: str, line: int | None, what: str = ""
) -> np.ndarray:
    """``values`` ``(L, F)`` with missing values filled per channel, or a clear error."""
    missing = np.isnan(values)
    if not missing.any():
        return values
    step, channel = np.argwhere(missing)[0]
    where = f"{file}{f' line {line}' if line else ''}{f', {what}' if what else ''}"
    if fill is None:
        raise ValueError(
            f"data: {where}: missing value at step {step + 1} of channel {channel + 1}; pass "
            f"fill= (--fill) one of {', '.join(FILL_METHODS)}"
        )
    names = [f"channel {j + 1}" for j in range(values.shape[1])]
    return _fill_missing(values, names, fill, where)


def _label_text(cell: str) -> str:
    label = cell.strip()
    if label.endswith(".0") and label[:-2].lstrip("-").isdigit():  # UCR writes 1.0 for 1
        label = label[:-2]
    return label


def _finish(
    sequences: list[np.ndarray],
    labels: list[str],
    channels: tuple[str, ...],
    source: str,
    header: dict[str, str] | None = None,
) -> Sequences:
    if not sequences:
        raise ValueError(f"data: {source} holds no examples")
    empty = [k for k, label in enumerate(labels) if not label]
    if empty:
        raise ValueError(f"data: {source}: example {empty[0] + 1} has no label")
    values: list[Label] = list(labels)
    if all(label.lstrip("-").isdigit() for label in labels):
        values = [int(label) for label in labels]
    return Sequences(sequences, values, channels, source, header or {})
