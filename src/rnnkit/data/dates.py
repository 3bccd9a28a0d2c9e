"""Date normalisation pairs (human-written date -> ISO 8601) and a loader for parallel corpora.

The dates are real calendar days (``datetime`` knows the month lengths, leap years and
weekdays), written in English and Korean spellings. Every format reads one way only: numeric
day-month orders are marked by their separator (``05.03.2021`` is day.month, ``2021/03/05``
year/month/day, never the ambiguous ``05/03/2021``), and two-digit years pivot at 50
(``21`` is 2021, ``87`` is 1987), which the default range 1950-2049 keeps exact.

Splits hold out *dates*: a day used for testing never appears in training, in any format.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from pathlib import Path

from rnnkit.checks import check_int

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
KOREAN_WEEKDAYS = ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일")
FIRST, LAST = dt.date(1950, 1, 1), dt.date(2049, 12, 31)  # two-digit years are exact here


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _month(d: dt.date) -> str:
    return MONTHS[d.month - 1]


def _weekday(d: dt.date) -> str:
    return WEEKDAYS[d.weekday()]


# One function per written form of a date (examples for Friday 5 March 2021).
FORMATS: dict[str, Callable[[dt.date], str]] = {
    "March 5, 2021": lambda d: f"{_month(d)} {d.day}, {d.year}",
    "Mar 5, 2021": lambda d: f"{_month(d)[:3]} {d.day}, {d.year}",
    "march 5 2021": lambda d: f"{_month(d).lower()} {d.day} {d.year}",
    "MARCH 5TH 2021": lambda d: f"{_month(d).upper()} {_ordinal(d.day).upper()} {d.year}",
    "March 5th, 2021": lambda d: f"{_month(d)} {_ordinal(d.day)}, {d.year}",
    "5 March 2021": lambda d: f"{d.day} {_month(d)} {d.year}",
    "05 Mar 2021": lambda d: f"{d.day:02d} {_month(d)[:3]} {d.year}",
    "5 Mar 21": lambda d: f"{d.day} {_month(d)[:3]} {d.year % 100:02d}",
    "5-Mar-2021": lambda d: f"{d.day}-{_month(d)[:3]}-{d.year}",
    "the 5th of March 2021": lambda d: f"the {_ordinal(d.day)} of {_month(d)} {d.year}",
    "Friday, 5 March 2021": lambda d: f"{_weekday(d)}, {d.day} {_month(d)} {d.year}",
    "Friday, March 5, 2021": lambda d: f"{_weekday(d)}, {_month(d)} {d.day}, {d.year}",
    "Fri, 05 Mar 2021": lambda d: f"{_weekday(d)[:3]}, {d.day:02d} {_month(d)[:3]} {d.year}",
    "05.03.2021": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",
    "5.3.21": lambda d: f"{d.day}.{d.month}.{d.year % 100:02d}",
    "2021/03/05": lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}",
    "2021. 3. 5.": lambda d: f"{d.year}. {d.month}. {d.day}.",
    "2021년 3월 5일": lambda d: f"{d.year}년 {d.month}월 {d.day}일",
    "2021년 3월 5일 금요일": lambda d: (
        f"{d.year}년 {d.month}월 {d.day}일 {KOREAN_WEEKDAYS[d.weekday()]}"
    ),
    "21년 3월 5일": lambda d: f"{d.year % 100:02d}년 {d.month}월 {d.day}일",
}


def write_date(date: dt.date, form: str) -> str:
    """``date`` written in ``form``, a key of :data:`FORMATS`."""
    if form not in FORMATS:
        raise ValueError(f"form: expected one of {sorted(FORMATS)}, got {form!r}")
    return FORMATS[form](date)


def date_pairs(
    train: int = 10000, test: int = 2000, seed: int = 0
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Training and test lists of (written date, ISO 8601 date) pairs on disjoint days.

    The days 1950-01-01 .. 2049-12-31 are shuffled (seeded) and dealt to the two parts in
    proportion to their sizes; each pair is a random day of its part in a random format.
    """
    check_int("train", train)
    check_int("test", test)
    rng = random.Random(seed)
    days = [FIRST + dt.timedelta(n) for n in range((LAST - FIRST).days + 1)]
    rng.shuffle(days)
    cut = max(1, len(days) * train // (train + test))
    forms = list(FORMATS)
    parts = []
    for pool, size in ((days[:cut], train), (days[cut:], test)):
        chosen = [rng.choice(pool) for _ in range(size)]
        parts.append([(write_date(d, rng.choice(forms)), d.isoformat()) for d in chosen])
    return parts[0], parts[1]


def read_pairs(path: str | Path) -> list[tuple[str, str]]:
    """A parallel corpus: one ``source<TAB>target`` pair per line (UTF-8; blank lines are
    skipped; text after a second tab is an error, so a misplaced column is not silently
    read as part of the target)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {str(path)!r}")
    pairs = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            where = f"{path.name}, line {number}"
            if len(fields) != 2:
                raise ValueError(
                    f"path: {where}: expected source<TAB>target (one tab), got "
                    f"{len(fields) - 1} tabs in {line[:60]!r}"
                )
            source, target = (field.strip() for field in fields)
            for side, text in (("source", source), ("target", target)):
                if not text:
                    raise ValueError(f"path: {where}: the {side} side is empty")
            pairs.append((source, target))
    if not pairs:
        raise ValueError(f"path: {str(path)!r} holds no source<TAB>target pairs")
    return pairs
