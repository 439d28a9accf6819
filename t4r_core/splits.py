"""Train / validation / test splits. A session lands on exactly one side (leave-last-out, which
splits each user's history by position, is the one protocol where the same user is on every side).
"""

from __future__ import annotations

import numpy as np

from .config import DataConfig
from .errors import DataError
from .sessions import Sessions


def _cut(order: np.ndarray, cfg: DataConfig) -> dict[str, np.ndarray]:
    n = len(order)
    n_test = int(round(n * cfg.test_fraction))
    n_val = int(round(n * cfg.val_fraction))
    n_train = n - n_test - n_val
    if n_train < 1:
        raise DataError(f"only {n} sessions: too few to split into train/validation/test; "
                        "lower data.val_fraction/test_fraction or add data")
    return {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}


def time_split(sessions: Sessions, cfg: DataConfig) -> dict[str, Sessions]:
    """Sessions ordered by start time; the last `test_fraction` to test, the `val_fraction` before to val.

    Without calendar time the file order of sessions stands in for time.
    """
    if sessions.start_time is not None:
        order = np.argsort(sessions.start_time, kind="stable")
    else:
        order = np.arange(len(sessions))
    return {k: sessions.take(v) for k, v in _cut(order, cfg).items()}


def random_split(sessions: Sessions, cfg: DataConfig) -> dict[str, Sessions]:
    """Sessions shuffled with `split_seed`; same seed, same split."""
    order = np.random.default_rng(cfg.split_seed).permutation(len(sessions))
    parts = _cut(order, cfg)
    return {k: sessions.take(np.sort(v)) for k, v in parts.items()}


def leave_last_split(sessions: Sessions) -> dict[str, Sessions]:
    """Per user history: train on all but the last two, validate on the 2nd-to-last, test on the last.

    Each side's sequences end with their target, so the `last` protocol reads the right target.
    """
    if (sessions.lengths < 3).any():
        n = int((sessions.lengths < 3).sum())
        raise DataError(f"leave-last-out needs histories of at least 3 events; {n} are shorter: "
                        "set data.min_session_len=3")
    return {"train": sessions.truncate_last(2), "val": sessions.truncate_last(1), "test": sessions}


def split_sessions(sessions: Sessions, cfg: DataConfig) -> dict[str, Sessions]:
    if cfg.split == "time":
        return time_split(sessions, cfg)
    if cfg.split == "random":
        return random_split(sessions, cfg)
    if cfg.split == "leave_last":
        return leave_last_split(sessions)
    if cfg.split == "file":
        # test comes from its own file; validation is the latest part of the training file
        val_cfg = DataConfig(val_fraction=cfg.val_fraction, test_fraction=0.0)
        parts = time_split(sessions, val_cfg)
        return {"train": parts["train"], "val": parts["val"]}
    raise DataError(f"unknown split {cfg.split!r}")
