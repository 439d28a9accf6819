"""Transformers4Rec 23.12 side of `bench/bench_model.py`: one training step (forward + backward +
Adam) at the same shapes, run inside bench/.venvs/t4r.

    bench/.venvs/t4r/bin/python bench/peers/t4r_model_step.py --pairs xlnet-mlm gpt2-clm bert-mlm

The model is built the way T4R's examples build it: `TabularSequenceFeatures.from_schema` over one
item-id list column (embedding d_model, concat aggregation projected to d_model), the body from
`tr.<Body>Config.build(...)`, and `NextItemPredictionTask(weight_tying=True)` (full softmax over
the catalogue). The batch is a dict of padded item-id tensors, as its data loader yields.
T4R has no Llama or GRU body, so those pairs are ours only.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

ITEM_LIST = "item_id-list"


def build(pair: str, a):
    import numpy as np
    import transformers4rec.torch as tr
    from merlin.schema import ColumnSchema, Schema, Tags
    from transformers4rec.config import transformer as t4r_cfg

    body, masking = pair.split("-")
    schema = Schema([ColumnSchema(
        ITEM_LIST, dtype=np.int64, is_list=True, is_ragged=True,
        tags=[Tags.ITEM_ID, Tags.ITEM, Tags.ID, Tags.CATEGORICAL, Tags.LIST],
        properties={"domain": {"min": 0, "max": a.items - 1, "name": "item_id"},
                    "value_count": {"min": 1, "max": a.max_len}})])
    d = a.d_model
    if masking == "mlm":
        mask = tr.masking.MaskedLanguageModeling(hidden_size=d, padding_idx=0, mlm_probability=a.mlm_probability)
    elif masking == "clm":
        mask = tr.masking.CausalLanguageModeling(hidden_size=d, padding_idx=0)
    else:
        raise ValueError(f"unknown masking {masking!r}")
    common = dict(d_model=d, n_head=a.heads, n_layer=a.layers, total_seq_length=a.max_len, dropout=a.dropout)
    if body == "bert":  # T4R's build drops d_ff and dropout for BERT (HF defaults 3072 / 0.1): set them
        common.update(intermediate_size=4 * d, hidden_dropout_prob=a.dropout, attention_probs_dropout_prob=a.dropout)
    cfg = {"xlnet": t4r_cfg.XLNetConfig, "gpt2": t4r_cfg.GPT2Config, "bert": t4r_cfg.BertConfig}[body].build(**common)
    inputs = tr.TabularSequenceFeatures.from_schema(schema, max_sequence_length=a.max_len, aggregation="concat",
                                                    d_output=d, masking=mask, embedding_dim_default=d)
    return cfg.to_torch_model(inputs, tr.NextItemPredictionTask(weight_tying=True))


def bench(pair: str, a) -> dict:
    import torch

    torch.manual_seed(0)
    model = build(pair, a).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(3, a.items, (a.batch, a.max_len), generator=g) for _ in range(4)]

    def step(i):
        out = model({ITEM_LIST: batches[i % len(batches)]}, training=True)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()

    for i in range(a.warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(a.steps):
        step(i)
    dt = time.perf_counter() - t0
    return {
        "pair": pair,
        "seq_per_s": round(a.batch * a.steps / dt, 1),
        "ms_per_step": round(1000 * dt / a.steps, 1),
        "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "params": sum(p.numel() for p in model.parameters()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", nargs="+", default=["gpt2-clm", "bert-mlm", "xlnet-mlm"])
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--max-len", type=int, default=20)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--mlm-probability", type=float, default=0.2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    import torch
    import transformers
    import transformers4rec

    if a.threads:
        torch.set_num_threads(a.threads)
    results = []
    for pair in a.pairs:
        r = bench(pair, a)
        results.append(r)
        print(f"{r['pair']:10s} {r['seq_per_s']:9.1f} seq/s  {r['ms_per_step']:8.1f} ms/step  "
              f"peak {r['peak_mib']:8.1f} MiB  {r['params']:,} params", flush=True)
    meta = {"tool": "transformers4rec", "transformers4rec": transformers4rec.__version__,
            "transformers": transformers.__version__, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(),
            **{k: v for k, v in vars(a).items() if k != "json"}}
    if a.json:
        Path(a.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
