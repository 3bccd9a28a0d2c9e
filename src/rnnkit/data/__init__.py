"""Bundled real datasets and the loaders users' own files go through."""

from rnnkit.data.bundled import (
    DATASETS,
    Dataset,
    dataset_path,
    load_series,
    load_text,
    read_text,
)
from rnnkit.data.dates import date_pairs, read_pairs
from rnnkit.data.series import TimeSeries, find_date_column, read_panel, read_series
from rnnkit.data.text import Vocabulary, pad_batch
from rnnkit.preprocess import char_tokens, word_tokens

__all__ = [
    "DATASETS",
    "Dataset",
    "TimeSeries",
    "Vocabulary",
    "char_tokens",
    "dataset_path",
    "date_pairs",
    "find_date_column",
    "load_series",
    "load_text",
    "pad_batch",
    "read_pairs",
    "read_panel",
    "read_series",
    "read_text",
    "word_tokens",
]
