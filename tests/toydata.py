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
