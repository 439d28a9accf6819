"""Column roles: which column is the session, the item, the time, the user, and the side features.

`infer_schema(df, overrides)` finds roles from common names and dtypes; every role can be set by
hand (the DataConfig fields, the CLI flags, the app's selectors). `validate(df, schema)` checks the
values once, at the boundary, and names the column and row of the first bad value.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .config import DataConfig
from .errors import DataError

SESSION_NAMES = ["session_id", "sessionid", "session", "sess_id", "session_key", "sid", "visit_id", "visitid"]
ITEM_NAMES = ["item_id", "itemid", "item", "aid", "product_id", "productid", "product", "sku",
              "article_id", "movie_id", "movieid", "track_id", "content_id", "iid"]
TIME_NAMES = ["timestamp", "ts", "time", "event_time", "eventtime", "datetime", "time_stamp", "created_at",
              "unix_time", "timeframe", "eventdate", "event_date", "date", "day"]
USER_NAMES = ["user_id", "userid", "user", "customer_id", "visitor_id", "visitorid", "uid", "client_id"]
POSITION_NAMES = ["position", "pos", "seq", "step", "order", "event_index", "rank"]

ROLES = ("session", "item", "time", "date", "user", "position", "categorical", "continuous", "dropped")
MAX_CATEGORICAL_CARDINALITY = 100_000


@dataclass
class Schema:
    """Resolved roles. `time` orders events; `date` (optional) gives calendar time when `time` is a
    relative offset (Diginetica's `timeframe` + `eventdate`)."""

    session: str | None
    item: str
    time: str | None = None
    date: str | None = None
    user: str | None = None
    position: str | None = None
    categorical: list[str] = field(default_factory=list)
    continuous: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def roles(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for role in ("session", "item", "time", "date", "user", "position"):
            col = getattr(self, role)
            if col is not None:
                out[col] = role
        for role in ("categorical", "continuous", "dropped"):
            for col in getattr(self, role):
                out[col] = role
        return out

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "Schema":
        return cls(**d)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _find(columns: list[str], candidates: list[str], taken: set[str]) -> str | None:
    normed = {_norm(c): c for c in columns if c not in taken}
    for cand in candidates:
        if _norm(cand) in normed:
            return normed[_norm(cand)]
    return None


def _require(df: pd.DataFrame, col: str | None, key: str, label: str) -> None:
    if col is not None and col not in df.columns:
        raise DataError(f"{label}: column {col!r} given as {key} is not in the data; columns are: {', '.join(map(str, df.columns))}")


def infer_schema(df: pd.DataFrame, cfg: DataConfig | None = None, label: str = "data") -> Schema:
    """Guess roles from names and dtypes, honouring every role the config sets explicitly."""
    cfg = cfg or DataConfig()
    cols = [str(c) for c in df.columns]
    for key in ("session_col", "item_col", "time_col", "user_col"):
        _require(df, getattr(cfg, key), f"data.{key}", label)
    for col in (cfg.categorical or []) + (cfg.continuous or []) + list(cfg.drop):
        _require(df, col, "a feature/drop column", label)
    taken: set[str] = set(cfg.drop)
    explicit = [c for c in (cfg.session_col, cfg.item_col, cfg.time_col, cfg.user_col) if c]
    taken |= set(explicit)

    item = cfg.item_col or _find(cols, ITEM_NAMES, taken)
    if item is None:
        raise DataError(
            f"{label}: no item column found among {', '.join(cols)}; name it item_id (or ItemId, aid, product_id) "
            "or pass --item-col"
        )
    taken.add(item)
    user = cfg.user_col or _find(cols, USER_NAMES, taken)
    if user:
        taken.add(user)
    session = cfg.session_col or _find(cols, SESSION_NAMES, taken)
    if session is None and cfg.sequence == "session":
        if user is not None:
            session = None  # user histories: the user column groups events
        else:
            raise DataError(
                f"{label}: no session column found among {', '.join(cols)}; name it session_id (or SessionId, "
                "session) or pass --session-col"
            )
    if session:
        taken.add(session)

    time, date = cfg.time_col, None
    if time is None:
        found = [c for c in (_find(cols, [n], taken) for n in TIME_NAMES) if c]
        found = list(dict.fromkeys(found))
        if found:
            time = found[0]
            # A relative offset (e.g. Diginetica's `timeframe`, ms since the session start) plus a
            # calendar column: order by the offset, date sessions by the calendar column.
            if len(found) > 1 and _is_relative_number(df[time]):
                date = next((c for c in found[1:] if not _is_relative_number(df[c])), None)
    taken |= {c for c in (time, date) if c}
    position = None
    if time is None:
        position = _find(cols, POSITION_NAMES, taken)
        if position:
            taken.add(position)

    categorical = list(cfg.categorical) if cfg.categorical is not None else None
    continuous = list(cfg.continuous) if cfg.continuous is not None else None
    rest = [c for c in cols if c not in taken]
    dropped = [c for c in cols if c in set(cfg.drop)]
    if categorical is None or continuous is None:
        inferred_cat, inferred_cont, inferred_drop = [], [], []
        for c in rest:
            if continuous is not None and c in continuous or categorical is not None and c in categorical:
                continue
            kind = _feature_kind(df[c])
            {"categorical": inferred_cat, "continuous": inferred_cont, "dropped": inferred_drop}[kind].append(c)
        categorical = categorical if categorical is not None else inferred_cat
        continuous = continuous if continuous is not None else inferred_cont
        dropped += [c for c in inferred_drop if c not in dropped]
    dropped += [c for c in rest if c not in categorical and c not in continuous and c not in dropped]
    return Schema(session=session, item=item, time=time, date=date, user=user, position=position,
                  categorical=categorical, continuous=continuous, dropped=dropped)


def _is_relative_number(s: pd.Series) -> bool:
    """Numbers too small to be unix seconds after 1973: offsets or counters, not calendar time."""
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return False
    mx = s.max()
    return bool(pd.notna(mx) and mx < 1e8)


def _feature_kind(s: pd.Series) -> str:
    """categorical / continuous / dropped, by dtype and cardinality."""
    n = len(s)
    nunique = s.nunique(dropna=True)
    if nunique <= 1:
        return "dropped"  # constant: carries no information
    if pd.api.types.is_bool_dtype(s):
        return "categorical"
    if pd.api.types.is_float_dtype(s):
        return "continuous" if nunique > 20 else "categorical"
    if pd.api.types.is_integer_dtype(s):
        return "categorical" if nunique <= 1000 else "continuous"
    if nunique > MAX_CATEGORICAL_CARDINALITY or (n > 1000 and nunique > 0.9 * n):
        return "dropped"  # free text or a per-event id
    return "categorical"


# ------------------------------------------------------------------------------ validation


def validate(df: pd.DataFrame, schema: Schema, label: str = "data") -> None:
    """Check the id columns; names the column and the first bad row (1-based, header excluded)."""
    for role in ("session", "item"):
        col = getattr(schema, role)
        if col is None:
            continue
        s = df[col]
        bad = s.isna()
        if s.dtype == object or pd.api.types.is_string_dtype(s):
            bad |= s.astype("string").str.strip().eq("").fillna(False)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
            raise DataError(
                f"{label}: column {col!r} ({role} id) is empty in {int(bad.sum())} row(s), first at row {row}; "
                "fill or remove those rows"
            )
    if schema.user is not None and schema.session is None:
        s = df[schema.user]
        if s.isna().any():
            row = int(np.flatnonzero(s.isna().to_numpy())[0]) + 1
            raise DataError(f"{label}: column {schema.user!r} (user id) is empty at row {row}; "
                            "user histories need a user id on every row")


def normalise_ids(s: pd.Series, col: str, label: str = "data") -> pd.Series:
    """Ids as int64 when every value is an integer (also 3.0 floats), else as strings.

    Floats with a fractional part or a mix of numbers and text become strings, which still
    round-trip: the user gets back exactly the text they gave.
    """
    if pd.api.types.is_integer_dtype(s):
        return s.astype(np.int64)
    if pd.api.types.is_float_dtype(s):
        v = s.to_numpy()
        if np.all(np.isfinite(v)) and np.all(v == np.round(v)) and np.all(np.abs(v) < 2**53):
            return pd.Series(v.astype(np.int64), index=s.index, name=s.name)
        return s.map(repr).astype(str)
    if pd.api.types.is_bool_dtype(s):
        return s.astype(str)
    return s.astype(str)
