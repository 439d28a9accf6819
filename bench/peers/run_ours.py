"""t4r_core runner (our venv): `t4r_core.trainer.train` with a preset, evaluated on the test
prefixes after every epoch, or a baseline (Pop, V-SKNN) fitted once.

    python bench/peers/run_ours.py --dataset shop --export EXPORT --model SASRec+ --out r.json

The data is prepared with t4r_core exactly as the harness exported it (the counts are checked
against the export's meta.json). The per-epoch evaluation is the trainer's own validation pass
pointed at the test split (`data.splits["val"] = test`), timed and subtracted from the training
time. Like the peers' runners, ours saves no per-epoch checkpoints (`train.save_checkpoints=false`).
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import common  # noqa: E402


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--eval-sample", type=int, default=None)
    args, rest = ap.parse_known_args(argv)
    a = common.common_args(rest)
    threads = common.set_threads()
    ex = common.load_export(a.export)
    rec = common.Recorder("t4r_core", a.model, ex, a.out)
    rec.res["threads"] = threads
    common.run_guarded(rec, lambda: _run(args, a, ex, rec))


def _check_counts(bd, ex) -> None:
    from bench.peers.common import from_padded

    tr_off, tr_items = from_padded(bd.train_padded())
    exs = bd.examples()
    got = {"train_sequences": len(tr_off) - 1, "train_positions": len(tr_items), "eval_targets": len(exs["target"])}
    want = common.counts(ex)
    if got != want:
        raise RuntimeError(f"t4r_core data differs from the export: {got} vs {want}")


def _run(args, a, ex, rec) -> None:
    import numpy as np
    import torch

    from bench.peers.export import load
    from t4r_core import __version__
    from t4r_core.evaluation import baseline_scorer, evaluate_examples

    rec.res["versions"].update({"t4r_core": __version__, "torch": torch.__version__})
    bd = load(args.dataset, quick=args.quick, max_len=ex["meta"]["max_len"], eval_sample=args.eval_sample)
    _check_counts(bd, ex)
    data = bd.data
    ks = list(bd.ks)
    if a.model.lower() in ("pop", "vsknn", "v-sknn", "spop"):
        from t4r_core.baselines import make_baseline

        name = {"v-sknn": "vsknn"}.get(a.model.lower(), a.model.lower())
        rec.start_train()
        b = make_baseline(name).fit(data.train, data.n_items)
        rec.end_train()
        t = time.perf_counter()
        m = evaluate_examples(baseline_scorer(b), bd.examples(), data.n_items, ks=ks, batch_size=a.eval_batch)
        rec.add_epoch(1, _clean(m), time.perf_counter() - t)
        rec.note("baseline: 'train_s' is the fit time")
        return

    from t4r_core.presets import get_preset
    from t4r_core.trainer import train

    # the test examples as the per-epoch validation set (the subsample too, for quick diginetica)
    test = data.splits["test"]
    data.splits["val"] = test
    if bd.eval_index is not None:  # evaluate the same sampled targets as the peers
        import t4r_core.data as tdata

        orig = tdata.SessionData.eval_examples
        idx = bd.eval_index

        def eval_examples(self, split, protocol, max_len, _orig=orig):
            out = _orig(self, split, protocol, max_len)
            return {k: v[idx] for k, v in out.items()} if split in ("val", "test") else out

        tdata.SessionData.eval_examples = eval_examples
    cfg = get_preset(a.model).with_overrides([
        f"model.max_len={bd.max_len}", f"model.d_model={a.d_model}",
        f"model.n_layers={1 if a.model == 'GRU4Rec' else a.layers}", f"model.n_heads={a.heads}", f"train.batch_size={a.batch}", f"train.lr={a.lr}", f"train.epochs={a.epochs}",
        f"train.seed={a.seed}", f"train.eval_batch_size={a.eval_batch}", f"eval.protocols=[{bd.protocol}]",
        f"eval.ks={ks}", "train.log_every=1000", "train.device=cpu",
        "train.lr_scheduler=constant",  # the peers' schedule (rectools, RecBole, our T4R loop)
        f"train.time_budget_s={a.budget_s}",  # stops mid-epoch too
        "train.save_checkpoints=false",  # as the peers: T4R's runner saves nothing, rectools / RecBole only at the end
        # one dropout on the input, as every peer has: the body's own embedding dropout (GPT-2's embd_pdrop,
        # BERT's and XLNet's embedding dropout), without our InputBlock's second one in front of it
        "model.input_dropout=0.0",
    ] + ([f"model.dropout={a.dropout}"] if a.model in ("SASRec+",) else []))
    rec.res["config"] = {"model": cfg.model.__dict__ | {}, "train": cfg.train.__dict__ | {}}
    stop = threading.Event()
    state = {"t_start": None, "eval_total": 0.0, "steps": 0}

    def progress(ev):
        now = time.perf_counter()
        if ev["event"] == "start":
            state["t_start"] = now
            rec.start_train()
        elif ev["event"] == "eval":
            if rec.res["epochs"] and rec.res["epochs"][-1].get("step") == ev["step"]:
                return  # the same step evaluated twice (stop + epoch end)
            m = ev["metrics"]
            eval_s = float(m.get("runtime", 0.0))
            # training time = since start minus all evaluation so far (this one included)
            rec.train_s = now - state["t_start"] - state["eval_total"] - eval_s
            rec.add_epoch(ev["epoch"], _clean(m), eval_s, {"step": ev["step"]})
            state["eval_total"] += eval_s
            if rec.train_s > a.budget_s:
                stop.set()

    with tempfile.TemporaryDirectory(dir=a.work) as tmp:
        run = train(cfg, data, Path(tmp) / "run", progress=progress, stop=stop, overwrite=True)
    env = run.environment
    rec.res["global_step"] = env["global_step"]
    rec.res["epochs_done"] = float(rec.res["epochs"][-1]["epoch"]) if rec.res["epochs"] else 0.0
    if stop.is_set():
        rec.note("stopped at the wall budget (train time past --budget-s at an epoch end; one more step ran)")
    if env.get("stopped_by_time_budget"):
        rec.res["stopped_by_budget"] = True
        rec.note("stopped inside an epoch by train.time_budget_s")
    _ = np


def _clean(m: dict) -> dict:
    return {k: float(v) for k, v in m.items() if isinstance(v, (int, float)) and not k.endswith("runtime")}


if __name__ == "__main__":
    main()
