"""Timestamps of any common shape -> an ordering key and, when it has one, calendar time.

Unix seconds / ms / us / ns (unit from the magnitude), ISO strings, dates, datetime columns.
Small numbers (< 1e8, i.e. before 1973 as seconds) are taken as relative offsets or counters:
they order events but carry no calendar time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import DataError

_MIN_S = 0.0  # 1970-01-01
_MAX_S = 4102444800.0  # 2100-01-01


@dataclass
class ParsedTime:
    key: np.ndarray  # float64, orders events (seconds when calendar, raw value when relative)
    seconds: np.ndarray | None  # float64 unix seconds, or None for relative offsets
    unit: str  # "s", "ms", "us", "ns", "datetime", "relative"


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def parse_time(s: pd.Series, col: str, label: str = "data") -> ParsedTime:
    """Parse one time column; raises DataError naming the column, the row and the value."""
    missing = s.isna().to_numpy()
    if missing.any():
        r = _first_bad(missing)
        raise DataError(f"{label}: column {col!r} (time) is empty in {int(missing.sum())} row(s), first at row "
                        f"{r + 1}; fill them, or drop the time column to order events by file order")
    if pd.api.types.is_bool_dtype(s):
        raise DataError(f"{label}: column {col!r} holds true/false values, not times; choose another time column")
    if pd.api.types.is_datetime64_any_dtype(s):
        secs = _datetime_seconds(s)
        return _checked(secs, s, col, label, "datetime")
    if not pd.api.types.is_numeric_dtype(s):
        as_num = pd.to_numeric(s, errors="coerce")
        if as_num.notna().all():
            s = as_num
    if pd.api.types.is_numeric_dtype(s):
        v = s.to_numpy(dtype=np.float64)
        mx = np.nanmax(np.abs(v)) if len(v) else 0.0
        if mx < 1e8:
            if (v < 0).any():
                r = _first_bad(v < 0)
                raise DataError(f"{label}: column {col!r} has a negative time {s.iloc[r]!r} at row {r + 1} "
                                "(before 1970?); use unix time or ISO dates")
            return ParsedTime(key=v, seconds=None, unit="relative")
        unit, factor = ("ns", 1e9) if mx > 1e17 else ("us", 1e6) if mx > 1e14 else ("ms", 1e3) if mx > 1e11 else ("s", 1.0)
        return _checked(v / factor, s, col, label, unit)
    # strings: one consistent format (pandas infers it from the first value), ISO 8601 as fallback
    parsed = pd.to_datetime(s, errors="coerce", utc=True)
    bad = parsed.isna().to_numpy()
    if bad.any():
        iso = pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601")
        if iso.isna().sum() < bad.sum():
            parsed, bad = iso, iso.isna().to_numpy()
    if bad.any():
        r = _first_bad(bad)
        n_ok = int((~bad).sum())
        hint = ("values mix formats (e.g. row 1 is " + repr(str(s.iloc[0])) + "); use one format, ISO 8601 is best"
                if n_ok else "use unix seconds or ISO 8601 such as 2016-05-09T10:30:00")
        raise DataError(f"{label}: column {col!r} (time) has {int(bad.sum())} unparsable value(s), first "
                        f"{str(s.iloc[r])!r} at row {r + 1}; {hint}")
    return _checked(_datetime_seconds(parsed), s, col, label, "datetime")


def _datetime_seconds(s: pd.Series) -> np.ndarray:
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    return s.to_numpy().astype("datetime64[ns]").astype(np.int64) / 1e9


def _checked(secs: np.ndarray, s: pd.Series, col: str, label: str, unit: str) -> ParsedTime:
    early, late = secs < _MIN_S, secs > _MAX_S
    if early.any():
        r = _first_bad(early)
        raise DataError(f"{label}: column {col!r} has a time before 1970 ({s.iloc[r]!r}) at row {r + 1}; "
                        "check the unit (seconds, ms) or the date")
    if late.any():
        r = _first_bad(late)
        raise DataError(f"{label}: column {col!r} has a time after 2100 ({s.iloc[r]!r}) at row {r + 1}; "
                        "check the unit (seconds, ms, us) or the date")
    return ParsedTime(key=secs, seconds=secs, unit=unit)


def iso(seconds: float | None) -> str | None:
    if seconds is None or not np.isfinite(seconds):
        return None
    return pd.Timestamp(round(seconds * 1000), unit="ms").isoformat()  # ms: no float noise
