"""Exported ragged sequences -> each tool's own input format (numpy + pandas; pyarrow for Parquet).

    to_t4r_parquet       Parquet with a list column `item_id-list` (+ `session_id`), the layout of
                         Transformers4Rec's examples (NVTabular's groupby output)
    to_rectools_interactions   long interactions DataFrame: user_id, item_id, weight, datetime
    recbole_pairs / write_recbole_inter   RecBole atomic files in its pre-augmented sequential
                         layout: `session_id:token  item_id_list:token_seq  item_id:token`, one
                         row per (prefix -> next item), exactly the samples RecBole's own
                         augmentation makes from a sequence
Every function keeps order and ids; tests/test_bench_peers.py checks them round-trip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ITEM_LIST = "item_id-list"


def _row_index(offsets: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))


def _position(offsets: np.ndarray) -> np.ndarray:
    lens = np.diff(offsets)
    return np.arange(int(offsets[-1]), dtype=np.int64) - np.repeat(offsets[:-1], lens)


# ------------------------------------------------------------------------------ Transformers4Rec


def t4r_table(offsets: np.ndarray, items: np.ndarray, targets: np.ndarray | None = None):
    """pyarrow Table: session_id int64, item_id-list list<int64> (and `target` when given).

    For evaluation, T4R predicts the item after the last one of the list, so test rows are the
    prefix + target appended (`targets` given): the target is the last element of the list."""
    import pyarrow as pa

    offsets = np.asarray(offsets, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if targets is not None:
        targets = np.asarray(targets, dtype=np.int64)
        rows = _row_index(offsets)
        # insert each target after its prefix
        new_off = offsets + np.arange(len(offsets), dtype=np.int64)
        flat = np.empty(len(items) + len(targets), dtype=np.int64)
        pos = np.arange(len(items)) + rows
        flat[pos] = items
        flat[new_off[1:] - 1] = targets
        offsets, items = new_off, flat
    lists = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(items))
    cols = {"session_id": pa.array(np.arange(len(offsets) - 1, dtype=np.int64)), ITEM_LIST: lists}
    return pa.table(cols)


def to_t4r_parquet(path, offsets, items, targets=None) -> Path:
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(t4r_table(offsets, items, targets), path)
    return path


# ------------------------------------------------------------------------------ rectools


def to_rectools_interactions(offsets: np.ndarray, items: np.ndarray, prefix: str = "s"):
    """DataFrame(user_id, item_id, weight, datetime): row r of the ragged array is user f"{prefix}{r}",
    its events in order (datetime = a fixed origin + position seconds, so sorting keeps the order)."""
    import pandas as pd

    rows = _row_index(offsets)
    pos = _position(offsets)
    users = np.char.add(prefix, rows.astype(str)) if len(rows) else np.zeros(0, dtype=object)
    return pd.DataFrame({
        "user_id": users.astype(object),
        "item_id": np.asarray(items, dtype=np.int64),
        "weight": np.ones(len(items), dtype=np.float32),
        "datetime": pd.Timestamp("2020-01-01") + pd.to_timedelta(pos, unit="s"),
    })


# ------------------------------------------------------------------------------ RecBole


def recbole_pairs(offsets: np.ndarray, items: np.ndarray, max_len: int):
    """Every (prefix -> next item) of every sequence, prefixes cut to their last `max_len` items:
    (session row [M], prefix offsets [M+1], prefix items, next items [M]). M = sum(len - 1)."""
    offsets = np.asarray(offsets, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    lens = np.diff(offsets)
    n_pairs = np.maximum(lens - 1, 0)
    sess = np.repeat(np.arange(len(lens), dtype=np.int64), n_pairs)
    t = np.arange(int(n_pairs.sum()), dtype=np.int64) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs) + 1
    end = offsets[sess] + t  # index of the next item
    plen = np.minimum(t, max_len)
    p_off = np.zeros(len(sess) + 1, dtype=np.int64)
    np.cumsum(plen, out=p_off[1:])
    idx = np.repeat(end - plen, plen) + (np.arange(int(p_off[-1]), dtype=np.int64) - np.repeat(p_off[:-1], plen))
    return sess, p_off, items[idx], items[end]


def recbole_lines(sess: np.ndarray, p_off: np.ndarray, p_items: np.ndarray, targets: np.ndarray) -> list[str]:
    """Rows of a RecBole .inter file (header first), tab-separated, list items space-separated."""
    out = ["session_id:token\titem_id_list:token_seq\titem_id:token"]
    strs = p_items.astype(str)
    for i in range(len(targets)):
        out.append(f"{sess[i]}\t{' '.join(strs[p_off[i]:p_off[i + 1]])}\t{targets[i]}")
    return out


def write_recbole_inter(path, sess, p_off, p_items, targets) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(recbole_lines(sess, p_off, p_items, targets)) + "\n")
    return path


def read_recbole_inter(path):
    """Inverse of write_recbole_inter (for tests and checks): (sess, p_off, p_items, targets)."""
    lines = Path(path).read_text().splitlines()[1:]
    sess, lens, flat, tg = [], [], [], []
    for ln in lines:
        s, seq, t = ln.split("\t")
        toks = [int(x) for x in seq.split(" ")] if seq else []
        sess.append(int(s))
        lens.append(len(toks))
        flat.extend(toks)
        tg.append(int(t))
    off = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=off[1:])
    return np.array(sess, dtype=np.int64), off, np.array(flat, dtype=np.int64), np.array(tg, dtype=np.int64)
