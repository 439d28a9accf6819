"""Encoders from the user's ids to contiguous ints, and back.

Layout shared by item ids and every categorical feature:
    0 = padding, 1 = unknown (never seen in training), 2 = [MASK], 3.. = real values.
The embedding table of a feature therefore has `len(vocab)` rows, and heads never score ids < 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PAD, UNK, MASK = 0, 1, 2
N_RESERVED = 3
RESERVED_NAMES = ("[PAD]", "[UNK]", "[MASK]")


@dataclass
class Vocab:
    """`values[i]` is the user's value encoded as `i + N_RESERVED`. Learned state is `values`."""

    values: pd.Index

    @classmethod
    def fit(cls, column: pd.Series | np.ndarray, order: str = "frequency") -> "Vocab":
        """Learn the vocabulary; most frequent first by default so ids say something about popularity."""
        s = pd.Series(column).dropna()
        if order == "frequency":
            uniq = s.value_counts(sort=True).index  # ties keep first-seen order (stable)
        else:
            uniq = pd.Index(pd.unique(s))
        return cls(pd.Index(uniq))

    def __len__(self) -> int:
        return len(self.values) + N_RESERVED

    @property
    def n_values(self) -> int:
        return len(self.values)

    def encode(self, column: pd.Series | np.ndarray) -> np.ndarray:
        """Map values to ids; unseen values (and NaN) become UNK. Vectorised hash lookup."""
        codes = self.values.get_indexer(pd.Index(column))
        return np.where(codes < 0, UNK, codes + N_RESERVED).astype(np.int64)

    def decode(self, ids: np.ndarray) -> np.ndarray:
        """Map ids back to the user's values; reserved ids become their names."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty(ids.shape, dtype=object)
        real = ids >= N_RESERVED
        out[real] = np.asarray(self.values, dtype=object)[ids[real] - N_RESERVED]
        for r, name in enumerate(RESERVED_NAMES):
            out[ids == r] = name
        return out

    # -- storage (Parquet: keeps int vs string types, no pickle) --------------------------------
    def save(self, path: str | Path) -> None:
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        table = pa.table({"value": pa.array(np.asarray(self.values))})
        pq.write_table(table, tmp)
        tmp.replace(p)

    @classmethod
    def load(cls, path: str | Path) -> "Vocab":
        col = pq.read_table(path).column("value").to_numpy(zero_copy_only=False)
        return cls(pd.Index(col))
