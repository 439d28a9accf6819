"""Prepare a benchmark data set once with t4r_core and export it for every tool (our venv only).

Two data sets:
    diginetica  ../shared/data/diginetica/{train,test}.csv, the published SR-GNN/GCE-GNN protocol:
                train on train.csv, predict every next item of every test session (all_next),
                full ranking, P@20 (= recall@20) and MRR@20.
    shop        sample_data/shop_sessions.csv (sample_data/make_shop.py), time split 80/10/10,
                predict each test session's last item (`last`), NDCG@10.
`quick=True` keeps everything (shop is small); for diginetica it keeps a seeded sample of
test targets so the per-epoch evaluation stays cheap (the training data is untouched).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.peers.common import counts, from_padded  # noqa: E402

DIGINETICA = ROOT.parent / "shared" / "data" / "diginetica"
SHOP = ROOT / "sample_data" / "shop_sessions.csv"


@dataclass
class BenchData:
    name: str
    data: object  # t4r_core.SessionData
    protocol: str
    max_len: int
    ks: tuple[int, ...]
    metric: str  # headline metric, e.g. "ndcg@10" or "recall@20"
    eval_index: np.ndarray | None = None  # subset of the test examples (quick diginetica), else all

    def train_padded(self) -> np.ndarray:
        return self.data.train_arrays(self.max_len)["item_id"]

    def examples(self) -> dict[str, np.ndarray]:
        ex = self.data.eval_examples("test", self.protocol, self.max_len)
        if self.eval_index is not None:
            ex = {k: v[self.eval_index] for k, v in ex.items()}
        return ex


def load(name: str, quick: bool = False, max_len: int = 20, eval_sample: int | None = None) -> BenchData:
    from t4r_core import DataConfig, prepare_data

    if name == "diginetica":
        data = prepare_data(DIGINETICA / "train.csv", DataConfig(val_fraction=0.0), test=DIGINETICA / "test.csv")
        bd = BenchData(name, data, "all_next", max_len, (10, 20), "recall@20")
    elif name == "shop":
        data = prepare_data(SHOP, DataConfig())
        bd = BenchData(name, data, "last", max_len, (10, 20), "ndcg@10")
    else:
        raise ValueError(f"unknown data set {name!r}; use diginetica or shop")
    n = len(data.eval_examples("test", bd.protocol, max_len)["target"])
    sample = eval_sample if eval_sample is not None else (10_000 if quick and name == "diginetica" else None)
    if sample and sample < n:
        bd.eval_index = np.sort(np.random.default_rng(0).choice(n, sample, replace=False))
    return bd


def export(bd: BenchData, folder) -> dict:
    """Write train.npz / test.npz / meta.json (see common.py); return the counts."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tr_off, tr_items = from_padded(bd.train_padded())
    ex = bd.examples()
    te_off, te_items = from_padded(ex["item_id"])
    np.savez(folder / "train.npz", offsets=tr_off, items=tr_items)
    np.savez(folder / "test.npz", offsets=te_off, items=te_items, targets=ex["target"].astype(np.int64))
    c = counts({"train_offsets": tr_off, "train_items": tr_items, "targets": ex["target"]})
    meta = {"dataset": bd.name, "protocol": bd.protocol, "max_len": bd.max_len, "ks": list(bd.ks),
            "metric": bd.metric, "n_items": int(bd.data.n_items), **c,
            "unk_in_test_prefixes": int((te_items == 1).sum()), "unk_targets": int((ex["target"] == 1).sum()),
            "eval_subsample": None if bd.eval_index is None else len(bd.eval_index)}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta
