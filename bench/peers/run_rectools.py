"""rectools 0.19 runner (bench/.venvs/rectools): SASRecModel / BERT4RecModel on the exported data.

Input format: an interactions DataFrame (user_id = training sequence, item_id = our encoded id,
weight 1, datetime = sequence order) -> rectools.Dataset. Training is `fit_partial` one epoch at
a time (the dataset is processed once; later calls reuse it). After each epoch the test prefixes,
as users of a second Dataset, get `recommend(k=max(ks), filter_viewed=False)`; the top-k lists
are scored by common.topk_metrics (our metric code on the tool's top-k).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import formats  # noqa: E402


def main(argv=None) -> None:
    common.run_tool("rectools", _run, argv)


def _run(a, ex, rec) -> None:
    import numpy as np
    import pandas as pd
    import torch
    import rectools
    from rectools.dataset import Dataset
    from rectools.models import BERT4RecModel, SASRecModel
    from rectools.models.nn.item_net import IdEmbeddingsItemNet

    rec.res["versions"].update({"rectools": rectools.__version__, "torch": torch.__version__,
                                "pandas": pd.__version__})
    meta = ex["meta"]
    L, ks = meta["max_len"], meta["ks"]
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    t = time.perf_counter()
    train_df = formats.to_rectools_interactions(ex["train_offsets"], ex["train_items"], prefix="s")
    te_off, te_items = common.drop_ids(ex["test_offsets"], ex["test_items"])
    test_df = formats.to_rectools_interactions(te_off, te_items, prefix="t")
    train_ds = Dataset.construct(train_df)
    test_ds = Dataset.construct(test_df)
    rec.res["convert_s"] = round(time.perf_counter() - t, 3)

    from pytorch_lightning import Callback

    class Deadline(Callback):  # the wall budget also ends an epoch early (min_epochs=0 allows it)
        # rectools deep-copies the Trainer (and its callbacks): keep the state outside the instance
        state = {"deadline": float("inf"), "batches": 0, "per_epoch": 1}

        def on_train_batch_end(self, trainer, *args, **kw):
            st = Deadline.state
            st["batches"] += 1
            st["per_epoch"] = max(1, int(trainer.num_training_batches))
            if time.perf_counter() > st["deadline"]:
                trainer.should_stop = True

    deadline = Deadline()
    dl = Deadline.state

    def trainer_func():
        from pytorch_lightning import Trainer

        return Trainer(callbacks=[deadline], max_epochs=1, min_epochs=1, deterministic=False, enable_progress_bar=False,
                       enable_model_summary=False, logger=False, enable_checkpointing=False, accelerator="cpu",
                       devices=1)

    kw = dict(n_blocks=a.layers, n_heads=a.heads, n_factors=a.d_model, session_max_len=L, loss="softmax",
              lr=a.lr, batch_size=a.batch, epochs=1, verbose=0, item_net_block_types=(IdEmbeddingsItemNet,),
              get_trainer_func=trainer_func, recommend_batch_size=a.eval_batch)
    if a.model == "SASRec":
        model = SASRecModel(dropout_rate=a.dropout, **kw)
    elif a.model == "BERT4Rec":
        model = BERT4RecModel(dropout_rate=0.1, mask_prob=0.2, **kw)
    else:
        raise ValueError(f"rectools runner knows SASRec and BERT4Rec, not {a.model!r}")
    rec.res["config"] = {k: str(v) for k, v in kw.items()}
    users = test_df["user_id"].unique()
    user_row = {u: int(u[1:]) for u in users}  # "t123" -> row 123 of the test prefixes
    n_test = len(ex["targets"])
    k = max(ks)
    done = 0.0
    for epoch in range(1, a.epochs + 1):
        rec.start_train()
        dl["deadline"] = time.perf_counter() + (a.budget_s - rec.train_s)
        dl["batches"] = 0
        model.fit_partial(train_ds, min_epochs=0, max_epochs=1)
        if epoch == 1:
            # the same dataset every epoch: process it once, as a single fit(epochs=N) would
            n_users = model.data_preparator.train_dataset.user_id_map.size
            rec.res["native_counts"] = {"rectools training users": [rec.res["train_sequences"], int(n_users)]}
            model.data_preparator.process_dataset_train = lambda dataset: None
        rec.end_train()
        frac = min(1.0, dl["batches"] / dl["per_epoch"])
        done += frac
        t = time.perf_counter()
        reco = model.recommend(users=users, dataset=test_ds, k=k, filter_viewed=False, on_unsupported_targets="warn")
        topk = np.full((n_test, k), -1, dtype=np.int64)
        rows = reco["user_id"].map(user_row).to_numpy()
        topk[rows, reco["rank"].to_numpy() - 1] = reco["item_id"].to_numpy().astype(np.int64)
        m = common.topk_metrics(topk, ex["targets"], ks)
        rec.add_epoch(round(done, 4), m, time.perf_counter() - t, {"batches": dl["batches"]})
        print(f"epoch {epoch}: train {rec.train_s:.1f}s {m}", flush=True)
        if rec.train_s > a.budget_s or frac < 1.0:
            rec.res["stopped_by_budget"] = True
            break
    rec.res["epochs_done"] = done
    rec.note(f"{n_test - len(users)} test prefixes with no item known to rectools (no recommendation = miss)")


if __name__ == "__main__":
    main()
