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


def build_sessions(df, schema, cfg, label: str = "data") -> tuple[Sessions, BuildReport]:
    """Group a validated table into time-ordered sessions of the user's raw ids (not yet encoded).

    Vectorised: factorize the session keys, one stable lexsort by (session, time), boolean masks
    for back-to-back duplicates and short sessions, CSR offsets from a bincount.
    """
    n = len(df)
    report = BuildReport(n_interactions_in=n)
    group_col = schema.user if (cfg.sequence == "user" or schema.session is None) else schema.session
    if group_col is None:
        raise DataError(f"{label}: user-level sequences need a user column; pass --user-col")
    keys = normalise_ids(df[group_col], group_col, label)
    codes, uniques = pd.factorize(keys, sort=False)
    if (codes < 0).any():
        r = int(np.flatnonzero(codes < 0)[0])
        raise DataError(f"{label}: column {group_col!r} is empty at row {r + 1}; fill or remove that row")
    items = normalise_ids(df[schema.item], schema.item, label).to_numpy()

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
    else:
        perm = np.lexsort((key, codes))  # stable: equal times keep file order
    codes_s = codes[perm]
    items_s = items[perm]
    keep = np.ones(n, dtype=bool)
    if cfg.dedup_consecutive and n > 1:
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

    ev = perm[keep]
    offsets = np.zeros(len(kept_sessions) + 1, dtype=np.int64)
    np.cumsum(lengths[kept_sessions], out=offsets[1:])
    first = ev[offsets[:-1]] if len(kept_sessions) else np.zeros(0, dtype=np.int64)
    features = {}
    for c in schema.categorical:
        features[c] = normalise_ids(df[c].fillna("<NA>") if df[c].isna().any() else df[c], c, label).to_numpy()[ev]
    for c in schema.continuous:
        features[c] = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float32)[ev]
    users = None
    if schema.user is not None and group_col != schema.user:
        users = df[schema.user].to_numpy()[first]
    sessions = Sessions(
        offsets=offsets,
        items=items[ev],
        features=features,
        session_ids=np.asarray(uniques)[kept_sessions],
        start_time=None if seconds is None else seconds[first],
        users=users,
    )
    report.n_interactions = sessions.n_events
    report.n_sessions = len(sessions)
    return sessions, report
