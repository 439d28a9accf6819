"""Transformers4Rec 23.12 runner (bench/.venvs/t4r): XLNet-MLM and GPT-2-CLM on the exported data.

Input format: a Parquet file with the list column `item_id-list` (as NVTabular's groupby writes
it and T4R's examples read it), a merlin Schema tagging it ITEM_ID/CATEGORICAL/LIST with the
item domain, and T4R's Trainer with its merlin data loader (`data_loader_engine="merlin"`).
One `trainer.train()` per epoch (constant learning rate, so restarting the schedule is a no-op;
the optimizer persists). After each epoch the test prefixes go through the model in inference
mode (the way T4R serves: CLM reads the last item's position, MLM appends a [MASK]); the top-k ids
are scored by common.topk_metrics.
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
    common.run_tool("t4r", _run, argv)


def _run(a, ex, rec) -> None:
    import numpy as np
    import torch

    meta = ex["meta"]
    L, ks, n_items = meta["max_len"], meta["ks"], int(meta["n_items"])
    work = Path(a.work or ".").resolve() / f"t4r_{a.model}"
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    t = time.perf_counter()
    train_path = formats.to_t4r_parquet(work / "train.parquet", ex["train_offsets"], ex["train_items"])
    rec.res["convert_s"] = round(time.perf_counter() - t, 3)

    import merlin.io
    import transformers4rec
    import transformers4rec.torch as tr
    from merlin.schema import ColumnSchema, Schema, Tags
    from transformers4rec.config.trainer import T4RecTrainingArguments

    rec.res["versions"].update({"transformers4rec": transformers4rec.__version__, "torch": torch.__version__})
    torch.manual_seed(a.seed)
    schema = Schema([ColumnSchema(
        formats.ITEM_LIST, dtype=np.int64, is_list=True, is_ragged=True,
        tags=[Tags.ITEM_ID, Tags.ITEM, Tags.ID, Tags.CATEGORICAL, Tags.LIST],
        properties={"domain": {"min": 0, "max": n_items - 1, "name": "item_id"},
                    "value_count": {"min": 1, "max": L}})])
    n_rows = merlin.io.Dataset(str(train_path), engine="parquet").to_ddf().shape[0].compute()
    rec.res["native_counts"] = {"t4r parquet training rows": [rec.res["train_sequences"], int(n_rows)]}
    d = a.d_model
    if a.model == "XLNet-MLM":
        masking = tr.masking.MaskedLanguageModeling(hidden_size=d, padding_idx=0, mlm_probability=0.3)
        body_cfg = tr.XLNetConfig.build(d_model=d, n_head=a.heads, n_layer=a.layers, total_seq_length=L,
                                        dropout=0.1)
    elif a.model == "GPT2-CLM":
        masking = tr.masking.CausalLanguageModeling(hidden_size=d, padding_idx=0)
        body_cfg = tr.GPT2Config.build(d_model=d, n_head=a.heads, n_layer=a.layers, total_seq_length=L,
                                       dropout=a.dropout)
    else:
        raise ValueError(f"t4r runner knows XLNet-MLM and GPT2-CLM, not {a.model!r}")
    inputs = tr.TabularSequenceFeatures.from_schema(schema, max_sequence_length=L, aggregation="concat",
                                                    d_output=d, masking=masking, embedding_dim_default=d)
    model = body_cfg.to_torch_model(inputs, tr.NextItemPredictionTask(weight_tying=True))
    args = T4RecTrainingArguments(
        output_dir=str(work / "out"), max_sequence_length=L, data_loader_engine="merlin", num_train_epochs=1,
        per_device_train_batch_size=a.batch, per_device_eval_batch_size=a.eval_batch, learning_rate=a.lr,
        lr_scheduler_type="constant", weight_decay=0.0, seed=a.seed, no_cuda=True, report_to=[],
        logging_steps=10_000, save_strategy="no", evaluation_strategy="no", disable_tqdm=True,
        dataloader_drop_last=False, compute_metrics_each_n_steps=1)
    from transformers import TrainerCallback

    class Deadline(TrainerCallback):  # the wall budget also ends an epoch early
        def __init__(self):
            self.deadline, self.steps = float("inf"), 0

        def on_step_end(self, args, state, control, **kw):
            self.steps += 1
            if time.perf_counter() > self.deadline:
                control.should_training_stop = True

    deadline = Deadline()
    trainer = tr.Trainer(model=model, args=args, schema=schema, train_dataset_or_path=str(train_path),
                         compute_metrics=False, callbacks=[deadline])
    steps_per_epoch = -(-int(n_rows) // a.batch)

    te_off, te_items = common.drop_ids(ex["test_offsets"], ex["test_items"])
    lens = np.diff(te_off)
    ok = np.flatnonzero(lens > 0)
    seq = torch.from_numpy(common.to_padded(te_off, te_items, L, side="right"))
    k = max(ks)
    n_test = len(ex["targets"])

    def evaluate():
        model.eval()
        topk = np.full((n_test, k), -1, dtype=np.int64)
        with torch.no_grad():
            for b in range(0, len(ok), a.eval_batch):
                rows = ok[b:b + a.eval_batch]
                scores = model({formats.ITEM_LIST: seq[rows]}, training=False, testing=False)
                if isinstance(scores, dict):
                    scores = scores["predictions"]
                scores[:, :common.N_RESERVED] = -torch.inf  # PAD / UNK / MASK ids are never recommended
                topk[rows] = torch.topk(scores, k, dim=1).indices.numpy()
        model.train()
        return common.topk_metrics(topk, ex["targets"], ks)

    steps = 0
    done = 0.0
    for epoch in range(1, a.epochs + 1):
        rec.start_train()
        deadline.deadline = time.perf_counter() + (a.budget_s - rec.train_s)
        deadline.steps = 0
        trainer.reset_lr_scheduler()
        out = trainer.train()
        rec.end_train()
        steps += deadline.steps
        frac = min(1.0, deadline.steps / steps_per_epoch)
        done += frac
        t = time.perf_counter()
        m = evaluate()
        rec.add_epoch(round(done, 4), m, time.perf_counter() - t, {"loss": float(out.training_loss),
                                                                    "steps": deadline.steps})
        print(f"epoch {epoch}: train {rec.train_s:.1f}s {m}", flush=True)
        if rec.train_s > a.budget_s or frac < 1.0:
            rec.res["stopped_by_budget"] = True
            break
    rec.res["epochs_done"] = done
    rec.res["global_step"] = steps
    rec.note(f"{n_test - len(ok)} test prefixes with no item known to the model (miss)")


if __name__ == "__main__":
    main()
