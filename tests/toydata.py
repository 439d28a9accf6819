"""Small generated logs with a known answer, for training tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def successor_log(n_sessions: int = 600, n_items: int = 30, length: int = 6, seed: int = 0) -> pd.DataFrame:
    """Sessions where the next item is always (item + 1) mod n_items: a model can reach Recall@1 = 1."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, n_items, n_sessions)
    items = (start[:, None] + np.arange(length)[None, :]) % n_items
    sess = np.repeat(np.arange(n_sessions), length)
    ts = 1_600_000_000 + sess * 3600 + np.tile(np.arange(length), n_sessions) * 10
    return pd.DataFrame({"session_id": sess, "item_id": items.reshape(-1) + 100, "timestamp": ts})


def drifting_log(n_days: int = 4, sessions_per_day: int = 150, items_per_day: int = 12, length: int = 5,
                 seed: int = 0) -> pd.DataFrame:
    """The popular items slide by half a set each day (day d uses items d*k/2 .. d*k/2 + k - 1), with
    the successor rule inside the day's set: yesterday's model knows half of today's items, a model
    trained once on day 1 knows none of day 3's."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(n_days):
        start = rng.integers(0, items_per_day, sessions_per_day)
        items = (start[:, None] + np.arange(length)[None, :]) % items_per_day + d * (items_per_day // 2)
        sess = np.repeat(np.arange(sessions_per_day) + d * sessions_per_day, length)
        ts = (1_699_920_000 + d * 86400 + 3600 + np.repeat(np.arange(sessions_per_day), length) * 60
              + np.tile(np.arange(length), sessions_per_day))
        rows.append(pd.DataFrame({"session_id": sess, "item_id": items.reshape(-1) + 1000, "timestamp": ts}))
    return pd.concat(rows, ignore_index=True)
