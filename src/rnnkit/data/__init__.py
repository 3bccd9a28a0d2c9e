"""Bundled real datasets and the loaders users' own files go through."""

from rnnkit.data.bundled import DATASETS, Dataset, dataset_path, load_series, load_text
from rnnkit.data.series import TimeSeries, read_series

__all__ = [
    "DATASETS",
    "Dataset",
    "TimeSeries",
    "dataset_path",
    "load_series",
    "load_text",
    "read_series",
]
