"""Sessions in CSR form, and the vectorised build from a validated interaction table.

`Sessions` holds every session's events in time order, flat:
    items of session s = items[offsets[s]:offsets[s + 1]]
Side features are arrays aligned with `items`. Ids are already encoded (see `vocab.py`).
Nothing here loops over rows in Python: sorting, deduplication, filtering and padding are numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import DataError
from .schema import normalise_ids
from .timestamps import parse_time


@dataclass
class Sessions:
    offsets: np.ndarray  # int64 [n_sessions + 1]
    items: np.ndarray  # int64 [n_events], encoded item ids (>= 3 real, 1 = unknown)
    features: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [n_events]
    session_ids: np.ndarray | None = None  # the user's session (or user) keys, [n_sessions]
    start_time: np.ndarray | None = None  # float64 unix seconds of each session's first event
    users: np.ndarray | None = None  # the user's user ids per session, when known
    # Raw (not yet encoded) string ids, factorized: {None: items, feature name: that feature} ->
    # (codes [n_events], distinct values) with values[codes] the user's ids. Set by build_sessions,
    # kept by take/truncate_last, so the encoders count and map int codes instead of hashing
    # millions of Python strings. With build_sessions(raw_ids=False) the id arrays themselves
    # are these codes (no str object per event), readable only together with `coded`.
    coded: dict[str | None, tuple[np.ndarray, np.ndarray]] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_events(self) -> int:
        return int(self.offsets[-1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def session(self, s: int) -> np.ndarray:
        return self.items[self.offsets[s] : self.offsets[s + 1]]

    def event_session(self) -> np.ndarray:
        """Session index of every event, [n_events]."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)

    def take(self, idx: np.ndarray) -> "Sessions":
        """A new Sessions with the sessions at `idx` (in that order). Vectorised gather."""
        idx = np.asarray(idx, dtype=np.int64)
        lens = self.lengths[idx]
        new_offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lens, out=new_offsets[1:])
        starts = self.offsets[idx]
        # event positions: start of its session + rank within the session
        ev = np.repeat(starts - new_offsets[:-1], lens) + np.arange(new_offsets[-1], dtype=np.int64)
        return Sessions(
            offsets=new_offsets,
            items=self.items[ev],
            features={k: v[ev] for k, v in self.features.items()},
            session_ids=None if self.session_ids is None else self.session_ids[idx],
            start_time=None if self.start_time is None else self.start_time[idx],
            users=None if self.users is None else self.users[idx],
            coded=None if self.coded is None else {k: (c[ev], u) for k, (c, u) in self.coded.items()},
        )

    def truncate_last(self, n_drop: int = 1) -> "Sessions":
        """Drop the last `n_drop` events of every session (for leave-last-out training views)."""
        lens = np.maximum(self.lengths - n_drop, 0)
        keep = np.ones(self.n_events, dtype=bool)
        ranks = np.arange(self.n_events) - np.repeat(self.offsets[:-1], self.lengths)
        keep &= ranks < np.repeat(lens, self.lengths)
        new_offsets = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(lens, out=new_offsets[1:])
        return Sessions(
            offsets=new_offsets,
            items=self.items[keep],
            features={k: v[keep] for k, v in self.features.items()},
            session_ids=self.session_ids,
            start_time=self.start_time,
            users=self.users,
            coded=None if self.coded is None else {k: (c[keep], u) for k, (c, u) in self.coded.items()},
        )


# ------------------------------------------------------------------------------ build


@dataclass
class BuildReport:
    """What happened to the events on the way in: in = kept + sum(dropped)."""

    n_interactions_in: int
    n_interactions: int = 0
    n_sessions: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> events dropped
    n_short_sessions: int = 0  # sessions dropped for being shorter than min_session_len
    time_unit: str | None = None


def _id_codes(s: pd.Series, col: str, label: str) -> tuple[np.ndarray, np.ndarray | None]:
    """`normalise_ids(s).to_numpy()` in a form that is cheap to reorder: `(codes, values)` with
    `values[codes]` equal to it, or `(array, None)` for numeric ids. String ids are factorized
    (a hash pass over the Arrow column) so sorting and filtering move int codes, and the Python
    string objects are made once per distinct id instead of once per row."""
    ids = normalise_ids(s, col, label)
    if ids.dtype.kind in "iuf" or ids.dtype == bool:
        return ids.to_numpy(), None
    codes, uniques = pd.factorize(ids, use_na_sentinel=True)
    if (codes < 0).any():  # missing values: keep to_numpy's exact NA objects
        return ids.to_numpy(), None
    return codes, np.asarray(uniques, dtype=object)


def _take_ids(codes: np.ndarray, values: np.ndarray | None, idx: np.ndarray) -> np.ndarray:
    return codes[idx] if values is None else values[codes[idx]]  # shares one str object per id


def _factorize_keys(keys: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """`pd.factorize(keys, sort=False)`. Integer keys already in increasing order (logs exported
    sorted by session) get codes from one comparison and a cumsum instead of a hash pass."""
    if keys.dtype.kind in "iu" and len(keys) > 1:
        k = keys.to_numpy()
        if (k[1:] >= k[:-1]).all():
            new = np.empty(len(k), dtype=bool)
            new[0] = True
            np.not_equal(k[1:], k[:-1], out=new[1:])
            codes = np.cumsum(new, dtype=np.intp)
            codes -= 1
            return codes, k[new]
    codes, uniques = pd.factorize(keys, sort=False)
    return codes, np.asarray(uniques)


def _is_sorted(codes: np.ndarray, key: np.ndarray) -> bool:
    """True when rows are already ordered by (session code, time key), ties in file order, i.e.
    when a stable lexsort would return the identity. One O(n) pass instead of an O(n log n) sort."""
    if len(codes) < 2:
        return True
    dc = np.diff(codes)
    if (dc < 0).any():
        return False
    return bool(((dc > 0) | (key[1:] >= key[:-1])).all())


def build_sessions(df, schema, cfg, label: str = "data", *, raw_ids: bool = True) -> tuple[Sessions, BuildReport]:
    """Group a validated table into time-ordered sessions of the user's raw ids (not yet encoded).

    Vectorised: factorize the session keys, one stable lexsort by (session, time), boolean masks
    for back-to-back duplicates and short sessions, CSR offsets from a bincount.
    `raw_ids=False` (for callers that encode right away, like `prepare_data`): string id columns
    hold their int codes into `coded` instead of one Python string per event.
    """
    n = len(df)
    report = BuildReport(n_interactions_in=n)
    group_col = schema.user if (cfg.sequence == "user" or schema.session is None) else schema.session
    if group_col is None:
        raise DataError(f"{label}: user-level sequences need a user column; pass --user-col")
    keys = normalise_ids(df[group_col], group_col, label)
    codes, uniques = _factorize_keys(keys)
    if (codes < 0).any():
        r = int(np.flatnonzero(codes < 0)[0])
        raise DataError(f"{label}: column {group_col!r} is empty at row {r + 1}; fill or remove that row")
    item_codes, item_values = _id_codes(df[schema.item], schema.item, label)

    if schema.time is not None:
        t = parse_time(df[schema.time], schema.time, label)
        key, seconds, report.time_unit = t.key, t.seconds, t.unit
        if schema.date is not None:
            seconds = parse_time(df[schema.date], schema.date, label).seconds
    elif schema.position is not None:
        key = pd.to_numeric(df[schema.position], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(key).any():
            r = int(np.flatnonzero(np.isnan(key))[0])
            raise DataError(f"{label}: column {schema.position!r} (position) is not a number at row {r + 1}")
        seconds = None
    else:
        key, seconds = None, None  # file order

    if key is None:
        perm = np.argsort(codes, kind="stable")
    elif _is_sorted(codes, key):
        perm = np.arange(n)  # already grouped by session and in time order: what lexsort returns
    else:
        perm = np.lexsort((key, codes))  # stable: equal times keep file order
    codes_s = codes[perm]
    keep = np.ones(n, dtype=bool)
    if cfg.dedup_consecutive and n > 1:
        items_s = item_codes[perm]  # equal codes <=> equal ids
        dup = (items_s[1:] == items_s[:-1]) & (codes_s[1:] == codes_s[:-1])
        keep[1:] &= ~dup
        report.dropped["consecutive_duplicate"] = int(dup.sum())
    lengths = np.bincount(codes_s[keep], minlength=len(uniques))
    short = (lengths < cfg.min_session_len) & (lengths > 0)
    short_events = short[codes_s] & keep
    report.dropped["short_session"] = int(short_events.sum())
    report.n_short_sessions = int(short.sum())
    keep &= ~short_events
    kept_sessions = np.flatnonzero(lengths >= cfg.min_session_len)
    if len(kept_sessions) == 0:
        raise DataError(
            f"{label}: no session has at least {cfg.min_session_len} events "
            f"({report.n_short_sessions} shorter sessions dropped); lower data.min_session_len or check the session column"
        )

    ev = perm[keep]
    offsets = np.zeros(len(kept_sessions) + 1, dtype=np.int64)
    np.cumsum(lengths[kept_sessions], out=offsets[1:])
    first = ev[offsets[:-1]] if len(kept_sessions) else np.zeros(0, dtype=np.int64)
    features = {}
    coded: dict[str | None, tuple[np.ndarray, np.ndarray]] = {}
    if item_values is not None:
        coded[None] = (item_codes[ev], item_values)
    for c in schema.categorical:
        c_codes, c_values = _id_codes(df[c].fillna("<NA>") if df[c].isna().any() else df[c], c, label)
        if c_values is None:
            features[c] = c_codes[ev]
        else:
            coded[c] = (c_codes[ev], c_values)
            features[c] = _take_ids(c_codes, c_values, ev) if raw_ids else coded[c][0]
    for c in schema.continuous:
        features[c] = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float32)[ev]
    users = None
    if schema.user is not None and group_col != schema.user:
        users = df[schema.user].to_numpy()[first]
    sessions = Sessions(
        offsets=offsets,
        items=_take_ids(item_codes, item_values, ev) if raw_ids or item_values is None else coded[None][0],
        features=features,
        session_ids=np.asarray(uniques)[kept_sessions],
        start_time=None if seconds is None else seconds[first],
        users=users,
        coded=coded or None,
    )
    report.n_interactions = sessions.n_events
    report.n_sessions = len(sessions)
    return sessions, report
