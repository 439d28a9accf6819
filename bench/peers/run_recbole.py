"""RecBole 1.2.1 runner (bench/.venvs/recbole): SASRec / BERT4Rec / GRU4Rec on the exported data.

Input format: RecBole atomic files in its pre-augmented sequential layout (`benchmark_filename`
train/valid/test: `session_id:token  item_id_list:token_seq  item_id:token`, one row per prefix
-> next item), i.e. exactly the samples RecBole's own augmentation makes from our training
sequences; `alias_of_item_id: [item_id_list]` keeps one item index. RecBole trains on every
prefix as a separate sample (sum(len - 1) samples per epoch, not one per sequence), which is why it
is slow: runs are bounded by the wall budget (no epoch starts after it).

Training is RecBole's own Trainer, one `_train_epoch` at a time. After each epoch the test
prefixes (our export, mapped to RecBole's internal ids) go through `model.full_sort_predict`;
the top-k ids are mapped back and scored by common.topk_metrics.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import formats  # noqa: E402


def main(argv=None) -> None:
    common.run_tool("recbole", _run, argv)


def _run(a, ex, rec) -> None:
    import numpy as np
    import torch

    meta = ex["meta"]
    L, ks = meta["max_len"], meta["ks"]
    work = Path(a.work or ".").resolve() / f"recbole_{a.model}"
    (work / "data" / "bench").mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # RecBole writes log_tensorboard/ and saved/ into the working directory
    t = time.perf_counter()
    tr = formats.recbole_pairs(ex["train_offsets"], ex["train_items"], L)
    formats.write_recbole_inter(work / "data" / "bench" / "bench.train.inter", *tr)
    te_off, te_items = common.drop_ids(ex["test_offsets"], ex["test_items"])
    n_test = len(ex["targets"])
    keep = np.flatnonzero(np.diff(te_off) > 0)  # RecBole cannot read an empty prefix
    # test file: each prefix -> its target (RecBole needs the file; our scoring reads the export)
    sub_off = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(np.diff(te_off)[keep], out=sub_off[1:])
    sub_items = np.concatenate([te_items[te_off[i]:te_off[i + 1]] for i in keep]) if len(keep) else te_items[:0]
    test_rows = (keep, sub_off, sub_items, ex["targets"][keep])
    formats.write_recbole_inter(work / "data" / "bench" / "bench.test.inter", *test_rows)
    v = min(200, len(keep))
    formats.write_recbole_inter(work / "data" / "bench" / "bench.valid.inter", keep[:v], sub_off[:v + 1],
                                sub_items[:sub_off[v]], ex["targets"][keep[:v]])
    rec.res["convert_s"] = round(time.perf_counter() - t, 3)

    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.data.interaction import Interaction
    from recbole.utils import get_model, get_trainer, init_seed

    rec.res["versions"].update({"recbole": recbole.__version__, "torch": torch.__version__})
    d = a.d_model
    cfg = {
        "data_path": str(work / "data"), "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "session_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": None,
        "load_col": {"inter": ["session_id", "item_id_list", "item_id"]}, "alias_of_item_id": ["item_id_list"],
        "MAX_ITEM_LIST_LENGTH": L, "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)",
        "train_neg_sample_args": None, "loss_type": "CE", "epochs": a.epochs, "train_batch_size": a.batch,
        "eval_batch_size": a.eval_batch, "learning_rate": a.lr, "device": "cpu", "use_gpu": False, "gpu_id": "",
        "seed": a.seed, "reproducibility": False, "show_progress": False, "save_dataset": False,
        "save_dataloaders": False, "checkpoint_dir": str(work / "saved"), "worker": 0,
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Recall", "NDCG"], "topk": [10], "valid_metric": "NDCG@10", "log_wandb": False,
        "state": "WARNING",
        # sizes, equal across tools
        "hidden_size": d, "inner_size": 4 * d, "n_layers": a.layers, "n_heads": a.heads,
        "hidden_dropout_prob": a.dropout if a.model == "SASRec" else 0.1,
        "attn_dropout_prob": a.dropout if a.model == "SASRec" else 0.1,
        "hidden_act": "gelu", "initializer_range": 0.02, "layer_norm_eps": 1e-12,
        "mask_ratio": 0.2, "embedding_size": d, "num_layers": 1, "dropout_prob": 0.1,
    }
    config = Config(model=a.model, dataset="bench", config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    t = time.perf_counter()
    dataset = create_dataset(config)
    train_data, _valid, _test = data_preparation(config, dataset)
    rec.res["dataset_build_s"] = round(time.perf_counter() - t, 3)
    expected = rec.res["train_positions"] - rec.res["train_sequences"]
    rec.res["native_counts"] = {"recbole training samples (prefix -> next)": [expected, len(train_data.dataset)]}
    rec.res["native_samples_per_epoch"] = len(train_data.dataset)
    model = get_model(config["model"])(config, train_data.dataset).to("cpu")
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    # our ids -> RecBole internal ids (0 = its [PAD]); unknown -> dropped
    ids = dataset.field2id_token["item_id"]  # internal -> token (str)
    ours_of_internal = np.full(len(ids), -1, dtype=np.int64)
    for i, tok in enumerate(ids):
        if i > 0 and tok != "[PAD]":
            ours_of_internal[i] = int(tok)
    internal_of_ours = np.zeros(max(int(meta["n_items"]), int(ours_of_internal.max()) + 1), dtype=np.int64)
    internal_of_ours[ours_of_internal[ours_of_internal >= 0]] = np.flatnonzero(ours_of_internal >= 0)
    mapped = internal_of_ours[sub_items]
    known = mapped > 0
    m_off, m_items = common.drop_ids(sub_off, np.where(known, mapped, 0), drop=(0,))
    seq = common.to_padded(m_off, m_items, L, side="right")
    seq_len = np.diff(m_off)
    ok = seq_len > 0
    k = max(ks)

    def evaluate():
        model.eval()
        topk = np.full((n_test, k), -1, dtype=np.int64)
        rows = keep[ok]
        s, sl = torch.from_numpy(seq[ok]), torch.from_numpy(seq_len[ok])
        with torch.no_grad():
            for b in range(0, len(rows), a.eval_batch):
                inter = Interaction({"item_id_list": s[b:b + a.eval_batch], "item_length": sl[b:b + a.eval_batch]})
                scores = model.full_sort_predict(inter).view(len(inter), -1)
                scores[:, 0] = -torch.inf
                top = torch.topk(scores, k, dim=1).indices.numpy()
                topk[rows[b:b + a.eval_batch]] = ours_of_internal[top]
        return common.topk_metrics(topk, ex["targets"], ks)

    done = 0.0
    for epoch in range(1, a.epochs + 1):
        rec.start_train()
        # RecBole epochs are long (every prefix is a sample): stop inside an epoch at the budget
        capped = _Capped(train_data, a.budget_s - rec.train_s)
        loss = trainer._train_epoch(capped, epoch - 1, show_progress=False)
        rec.end_train()
        frac = capped.batches / max(len(train_data), 1)
        done += frac
        if frac < 1.0:
            rec.note(f"epoch {epoch} cut at the wall budget after {capped.batches} of {len(train_data)} batches")
        t = time.perf_counter()
        m = evaluate()
        rec.add_epoch(round(done, 4), m, time.perf_counter() - t,
                      {"loss": float(loss) if not isinstance(loss, tuple) else None, "batches": capped.batches})
        print(f"epoch {epoch}: train {rec.train_s:.1f}s {m}", flush=True)
        if rec.train_s > a.budget_s or frac < 1.0:
            rec.res["stopped_by_budget"] = True
            break
    rec.res["epochs_done"] = done
    rec.res["native_samples_per_s"] = len(train_data.dataset) * done / max(rec.train_s, 1e-9)
    rec.note(f"{n_test - int(ok.sum())} test prefixes with no item known to RecBole (miss)")


class _Capped:
    """A RecBole train DataLoader that stops yielding batches once `budget_s` seconds have passed."""

    def __init__(self, loader, budget_s: float):
        self._loader, self._budget, self.batches = loader, budget_s, 0

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def __len__(self):
        return len(self._loader)

    def __iter__(self):
        t0 = time.perf_counter()
        for batch in self._loader:
            if self.batches and time.perf_counter() - t0 > self._budget:
                break
            yield batch
            self.batches += 1


if __name__ == "__main__":
    main()
