"""The small real datasets shipped inside the package (sources and licences: DATA.md)."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from rnnkit.data.series import TimeSeries, read_series


@dataclass(frozen=True)
class Dataset:
    name: str
    file: str
    kind: str  # "series", "table" or "text"
    description: str
    target: str | None = None
    date_column: str | None = None
    season: int | None = None  # steps per season, for series


DATASETS = {
    d.name: d
    for d in (
        Dataset(
            "electricity",
            "electricity_taylor.csv",
            "series",
            "Half-hourly electricity demand (MW), England & Wales, Jun-Aug 2000 (Taylor 2003)",
            target="demand_mw",
            date_column="timestamp",
            season=336,
        ),
        Dataset(
            "msft",
            "msft_daily.csv",
            "series",
            "Microsoft daily open/high/low/close/volume, 1986-2017",
            target="close",
            date_column="date",
        ),
        Dataset(
            "sentiment",
            "sentiment_sentences.csv",
            "table",
            "3,000 review sentences labelled 0/1 (UCI Sentiment Labelled Sentences)",
        ),
        Dataset("shakespeare", "shakespeare.txt.gz", "text", "Dialogue of 9 Shakespeare plays"),
        Dataset("korean", "korean.txt", "text", "Constitution of the Republic of Korea (1987)"),
    )
}


def dataset_path(name: str) -> Path:
    """The file of the bundled dataset ``name``."""
    return Path(str(files("rnnkit") / "data" / "files" / _get(name).file))


def load_series(
    name: str, target: str | list[str] | None = None, covariates: tuple[str, ...] = ()
) -> TimeSeries:
    """A bundled series by name, through the same loader as users' CSV files."""
    dataset = _get(name, kind="series")
    return read_series(
        dataset_path(name), target or dataset.target, covariates, dataset.date_column
    )


def load_text(name: str) -> str:
    """A bundled text by name."""
    _get(name, kind="text")
    path = dataset_path(name)
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return handle.read()
    return path.read_text(encoding="utf-8")


def _get(name: str, kind: str | None = None) -> Dataset:
    dataset = DATASETS.get(name)
    if dataset is None or (kind is not None and dataset.kind != kind):
        names = [d.name for d in DATASETS.values() if kind is None or d.kind == kind]
        raise ValueError(f"dataset: expected one of {names}, got {name!r}")
    return dataset


def read_text(data: str) -> str:
    """A bundled text by name (see :data:`DATASETS`), else a UTF-8 text file at that path."""
    if data in DATASETS and DATASETS[data].kind == "text":
        return load_text(data)
    path = Path(data)
    if not path.is_file():
        texts = [d.name for d in DATASETS.values() if d.kind == "text"]
        raise FileNotFoundError(f"data: {data!r} is neither a bundled text {texts} nor a file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"data: {data!r} is not UTF-8 text ({error.reason})") from None
