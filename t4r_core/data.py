"""From a file to split, encoded sessions and padded tensors: the data layer's one entry point.

    data = prepare_data("clicks.csv", DataConfig(), test="test.csv")
    train = data.train_dataset(max_len=20)                 # right-padded [N, L] + side features
    ex = data.eval_examples("test", "all_next", max_len=20)   # prefixes [N, L] + targets [N]

Encoders are fitted on the training split only: val/test items never seen in training become
the unknown id (1) and are counted in `data.unknown_items`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .config import DataConfig
from .errors import DataError
from .ingest import read_table
from .schema import Schema, infer_schema, validate
from .sessions import BuildReport, Sessions, build_sessions
from .splits import split_sessions
from .vocab import N_RESERVED, PAD, UNK, Vocab

# ------------------------------------------------------------------------------ encoders


def _str_codes(column) -> tuple[np.ndarray, np.ndarray] | None:
    """(codes, uniques) of an object array of strings (NaN/None -> code -1, uniques in first-seen
    order), or None for anything else. Fitting and encoding then touch each distinct string once:
    `pd.Series`/`pd.Index` of millions of Python strings would first convert them all to Arrow."""
    if not (isinstance(column, np.ndarray) and column.dtype == object and len(column)):
        return None
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    if len(uniques) == 0 or not all(type(u) is str for u in uniques):
        return None
    return codes, uniques


def _fit_vocab(column, coded: tuple[np.ndarray, np.ndarray] | None = None) -> Vocab:
    """`Vocab.fit(column)` (frequency order, ties in first-seen order), counted on int codes.

    `coded` = (codes, values) with values[codes] == column (see `Sessions.coded`): no hashing of
    strings at all, only of the int codes."""
    if coded is not None:
        codes, values = coded
        if not len(codes):
            return Vocab.fit(values[codes])
        sub, seen = pd.factorize(codes)  # the codes in first-seen order
        counts = np.bincount(sub, minlength=len(seen))
        return Vocab(pd.Index(values[seen[np.argsort(-counts, kind="stable")]]))
    fz = _str_codes(column)
    if fz is None:
        return Vocab.fit(column)
    codes, uniques = fz
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    return Vocab(pd.Index(uniques[np.argsort(-counts, kind="stable")]))


def _encode(vocab: Vocab, column, coded: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """`vocab.encode(column)`, looking up each distinct string once."""
    if coded is not None:
        codes, values = coded
        return vocab.encode(values)[codes] if len(codes) else vocab.encode(values[codes])
    fz = _str_codes(column)
    if fz is None:
        return vocab.encode(column)
    codes, uniques = fz
    ids = vocab.encode(uniques)
    return np.where(codes < 0, UNK, ids[codes]).astype(np.int64)


@dataclass
class Encoders:
    """Item and categorical vocabularies plus continuous-feature statistics (train split only)."""

    items: Vocab
    categorical: dict[str, Vocab] = field(default_factory=dict)
    continuous: dict[str, dict[str, float]] = field(default_factory=dict)  # name -> mean/std/min/max

    @classmethod
    def fit(cls, train: Sessions, schema: Schema) -> "Encoders":
        cont = {}
        for c in schema.continuous:
            v = train.features[c].astype(np.float64)
            v = v[np.isfinite(v)]
            if len(v) == 0:
                raise DataError(f"continuous column {c!r} has no numeric value in training; drop it")
            cont[c] = {"mean": float(v.mean()), "std": float(v.std() or 1.0), "min": float(v.min()), "max": float(v.max())}
        coded = getattr(train, "coded", None) or {}
        return cls(
            items=_fit_vocab(train.items, coded.get(None)),
            categorical={c: _fit_vocab(train.features[c], coded.get(c)) for c in schema.categorical},
            continuous=cont,
        )

    def encode(self, raw: Sessions) -> Sessions:
        coded = getattr(raw, "coded", None) or {}
        feats = {c: _encode(v, raw.features[c], coded.get(c)) for c, v in self.categorical.items()}
        for c, st in self.continuous.items():
            x = raw.features[c].astype(np.float32)
            x = np.where(np.isfinite(x), x, st["mean"])  # missing values -> train mean
            feats[c] = ((x - st["mean"]) / st["std"]).astype(np.float32)  # standardised
        return Sessions(raw.offsets, _encode(self.items, raw.items, coded.get(None)), feats, raw.session_ids,
                        raw.start_time, raw.users)

    @property
    def cardinalities(self) -> dict[str, int]:
        return {c: len(v) for c, v in self.categorical.items()}

    def save(self, folder: str | Path) -> None:
        d = Path(folder)
        d.mkdir(parents=True, exist_ok=True)
        self.items.save(d / "items.parquet")
        for c, v in self.categorical.items():
            v.save(d / f"cat__{_safe(c)}.parquet")
        meta = {"categorical": {c: f"cat__{_safe(c)}.parquet" for c in self.categorical}, "continuous": self.continuous}
        tmp = d / "encoders.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        tmp.replace(d / "encoders.json")

    @classmethod
    def load(cls, folder: str | Path) -> "Encoders":
        d = Path(folder)
        meta = json.loads((d / "encoders.json").read_text())
        cats = {}
        for c, fname in meta["categorical"].items():
            if Path(fname).name != fname:
                raise DataError(f"encoders.json names a file outside its folder: {fname!r}")
            cats[c] = Vocab.load(d / fname)
        return cls(Vocab.load(d / "items.parquet"), cats, meta["continuous"])


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(name))


# ------------------------------------------------------------------------------ padding


def gather_prefixes(offsets_end: np.ndarray, lengths: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Event indices [N, max_len] of the last `min(len, max_len)` events ending at `offsets_end`
    (exclusive), right-padded; plus the validity mask. Pure index arithmetic, no loops."""
    n = np.minimum(lengths, max_len)
    ar = np.arange(max_len, dtype=np.int64)
    idx = (offsets_end - n)[:, None] + ar[None, :]
    valid = ar[None, :] < n[:, None]
    return np.where(valid, idx, 0), valid


def _padded_take(arr: np.ndarray, idx: np.ndarray, valid: np.ndarray, invalid: np.ndarray, fill, dtype) -> np.ndarray:
    """`np.where(valid, arr[idx], fill).astype(dtype)` with one [N, L] allocation instead of three."""
    out = arr[idx]
    if out.dtype != dtype:
        return np.where(valid, out, fill).astype(dtype)
    out[invalid] = fill
    return out


def _gather(sessions: Sessions, idx: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    invalid = ~valid
    out = {"item_id": _padded_take(sessions.items, idx, valid, invalid, PAD, np.dtype(np.int64))}
    for name, arr in sessions.features.items():
        fill = PAD if arr.dtype.kind in "iu" else 0.0
        out[name] = _padded_take(arr, idx, valid, invalid, fill, arr.dtype)
    return out


def pad_sessions(sessions: Sessions, max_len: int) -> dict[str, np.ndarray]:
    """Each session's most recent `max_len` events, right-padded: {"item_id": [N, L], feature: [N, L]}."""
    idx, valid = gather_prefixes(sessions.offsets[1:], sessions.lengths, max_len)
    return _gather(sessions, idx, valid)


def next_item_examples(sessions: Sessions, protocol: str, max_len: int) -> dict[str, np.ndarray]:
    """Evaluation examples: prefix [N, L] (never containing its target) and target [N].

    `last`: predict each session's last item from the ones before (one example per session).
    `all_next`: predict every next item from its prefix (SR-GNN / GCE-GNN protocol).
    Also returns `session` [N] (index of the session) and `prefix_len` [N] (untruncated).
    """
    lens = sessions.lengths
    if protocol == "last":
        sess = np.flatnonzero(lens >= 2)
        t = lens[sess] - 1  # prefix length
    elif protocol == "all_next":
        n_pairs = np.maximum(lens - 1, 0)
        sess = np.repeat(np.arange(len(sessions)), n_pairs)
        starts = np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs)
        t = np.arange(len(sess)) - starts + 1
    else:
        raise DataError(f"unknown protocol {protocol!r}; use 'last' or 'all_next'")
    ends = sessions.offsets[sess] + t
    idx, valid = gather_prefixes(ends, t, max_len)
    out = _gather(sessions, idx, valid)
    out["target"] = sessions.items[ends].astype(np.int64)
    out["session"] = sess.astype(np.int64)
    out["prefix_len"] = t.astype(np.int64)
    return out


# ------------------------------------------------------------------------------ torch


class SequenceDataset(torch.utils.data.Dataset):
    """Row-aligned arrays as a torch Dataset. `__getitems__` returns whole batches, so a
    DataLoader builds a batch with one fancy-index per array instead of per-row Python."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        lens = {len(v) for v in arrays.values()}
        if len(lens) != 1:
            raise ValueError(f"arrays differ in length: { {k: len(v) for k, v in arrays.items()} }")
        self.arrays = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        self._n = lens.pop()

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.arrays.items()}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {k: v[idx] for k, v in self.arrays.items()}


def collate(batch) -> dict[str, torch.Tensor]:
    """Pass whole batches from `__getitems__` through; stack lists of rows otherwise."""
    if isinstance(batch, dict):
        return batch
    return {k: torch.stack([row[k] for row in batch]) for k in batch[0]}


def make_loader(arrays: dict[str, np.ndarray], batch_size: int, shuffle: bool = False, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(SequenceDataset(arrays), batch_size=batch_size, shuffle=shuffle,
                                       collate_fn=collate, generator=gen)


# ------------------------------------------------------------------------------ prepare


@dataclass
class SessionData:
    """Everything the model and the evaluation need from the data, encoded and split."""

    schema: Schema
    config: DataConfig
    encoders: Encoders
    splits: dict[str, Sessions]  # "train", "val", "test" (each may be empty)
    report: BuildReport
    unknown_items: dict[str, int] = field(default_factory=dict)  # split -> events mapped to UNK
    test_report: BuildReport | None = None

    @property
    def n_items(self) -> int:
        """Item table size including the reserved ids."""
        return len(self.encoders.items)

    @property
    def train(self) -> Sessions:
        return self.splits["train"]

    def item_popularity(self) -> np.ndarray:
        """Training click count per item id, [n_items]; reserved ids count 0."""
        counts = np.bincount(self.train.items, minlength=self.n_items).astype(np.float64)
        counts[:N_RESERVED] = 0
        return counts

    def train_arrays(self, max_len: int) -> dict[str, np.ndarray]:
        return pad_sessions(self.train, max_len)

    def eval_examples(self, split: str, protocol: str, max_len: int) -> dict[str, np.ndarray]:
        if split not in self.splits:
            raise DataError(f"no {split!r} split; available: {', '.join(self.splits)}")
        return next_item_examples(self.splits[split], protocol, max_len)

    def counts(self) -> dict[str, dict[str, int]]:
        return {k: {"sessions": len(s), "events": s.n_events} for k, s in self.splits.items()}


def load_frame(source, cfg: DataConfig, name: str | None = None) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source
    return read_table(source, name=name, sep=cfg.sep)


def prepare_data(
    source,
    cfg: DataConfig | None = None,
    *,
    test=None,
    schema: Schema | None = None,
    encoders: Encoders | None = None,
    name: str | None = None,
) -> SessionData:
    """File/DataFrame -> schema -> sessions -> split -> encoders fitted on train -> encoded splits.

    `test` (a file or DataFrame with the same columns) makes the split file-based.
    `schema` and `encoders` (a saved run's) replace inference and fitting.
    """
    cfg = cfg or DataConfig()
    cfg.validate()
    label = name or (str(source) if not isinstance(source, pd.DataFrame) else "data")
    df = load_frame(source, cfg, name)
    schema = schema or infer_schema(df, cfg, label)
    validate(df, schema, label)
    raw, report = build_sessions(df, schema, cfg, label, raw_ids=False)  # encoded below, from `coded`
    test_report = None
    if test is not None:
        cfg_split = DataConfig(**{**cfg.__dict__, "split": "file"})
        parts = split_sessions(raw, cfg_split)
        tlabel = str(test) if not isinstance(test, pd.DataFrame) else "test data"
        tdf = load_frame(test, cfg, None)
        missing = [c for c in schema.roles() if c not in tdf.columns and c not in schema.dropped]
        if missing:
            raise DataError(f"{tlabel}: missing column(s) {missing} that the training data has")
        validate(tdf, schema, tlabel)
        parts["test"], test_report = build_sessions(tdf, schema, cfg, tlabel, raw_ids=False)
    else:
        parts = split_sessions(raw, cfg)
    if raw.coded and any(p.coded is None for k, p in parts.items() if test is None or k != "test"):
        # raw_ids=False: string ids are codes that only mean something with `coded`
        raise RuntimeError("internal error: a split dropped Sessions.coded; keep it in Sessions.take")
    enc = encoders or Encoders.fit(parts["train"], schema)
    splits = {k: enc.encode(v) for k, v in parts.items()}
    unknown = {k: int((s.items == UNK).sum()) for k, s in splits.items()}
    return SessionData(schema, cfg, enc, splits, report, unknown, test_report)


def encode_file(source, cfg: DataConfig, schema: Schema, encoders: Encoders, name: str | None = None) -> Sessions:
    """Sessions of a new file (e.g. a test set) encoded with an existing run's schema and encoders."""
    label = name or (str(source) if not isinstance(source, pd.DataFrame) else "data")
    df = load_frame(source, cfg, name)
    missing = [c for c, role in schema.roles().items() if role != "dropped" and c not in df.columns]
    if missing:
        raise DataError(f"{label}: missing column(s) {missing} that the run was trained with")
    validate(df, schema, label)
    raw, _ = build_sessions(df, schema, cfg, label)
    return encoders.encode(raw)
