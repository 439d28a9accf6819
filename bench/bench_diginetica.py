"""Accuracy on Diginetica with the published protocol (SR-GNN / GCE-GNN): train on train.csv,
predict every next item of every test session (60,858 predictions), full ranking, P@20 / MRR@20.

    python bench/bench_diginetica.py --presets SASRec+ GRU4Rec --budget-min 25 --out bench/results/digi
    python bench/bench_diginetica.py --baselines-only

Each preset trains under a wall-time budget (`train.time_budget_s`) and is evaluated at the end;
the table (Markdown) is printed and written to OUT/table.md with the training time of each row.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from t4r_core import DataConfig, prepare_data  # noqa: E402
from t4r_core.baselines import make_baseline  # noqa: E402
from t4r_core.evaluation import baseline_scorer, evaluate_examples  # noqa: E402
from t4r_core.presets import get_preset  # noqa: E402
from t4r_core.trainer import train  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "diginetica"
PUBLISHED = {"GRU4Rec (paper)": (29.45, 8.33), "NARM (paper)": (49.70, 16.17), "SR-GNN (paper)": (50.73, 17.59),
             "GCE-GNN (paper)": (54.22, 19.04)}
# Per-preset settings for this data set (43k items, short sessions: mean length ~5)
OVERRIDES = {
    "SASRec+": ["model.d_model=128", "model.n_heads=2", "model.dropout=0.3", "model.input_dropout=0.3",
                "train.batch_size=512", "train.lr=0.002"],
    "GRU4Rec": ["model.d_model=128", "train.batch_size=512", "train.lr=0.002"],
    "BERT4Rec": ["model.d_model=128", "train.batch_size=512", "train.lr=0.002"],
    "Llama-CLM": ["model.d_model=128", "model.n_heads=2", "model.dropout=0.3", "train.batch_size=512",
                  "train.lr=0.002"],
    "XLNet-MLM": ["model.d_model=128", "train.batch_size=512", "train.lr=0.002"],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", nargs="*", default=["SASRec+"])
    ap.add_argument("--budget-min", type=float, default=25.0, help="training wall time per preset")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--baselines-only", action="store_true")
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides for every preset, e.g. model.loss=sampled_ce")
    ap.add_argument("--skip-baselines", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "diginetica"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    data = prepare_data(DATA / "train.csv", DataConfig(val_fraction=0.0), test=DATA / "test.csv")
    ex = data.eval_examples("test", "all_next", 20)
    print(f"data: {len(data.train):,} train sessions, {len(data.splits['test']):,} test sessions, "
          f"{len(ex['target']):,} all_next targets, {data.encoders.items.n_values:,} items "
          f"({time.perf_counter() - t0:.1f}s)", flush=True)
    rows = []
    for name in () if args.skip_baselines else ("pop", "spop", "vsknn"):
        t = time.perf_counter()
        b = make_baseline(name).fit(data.train, data.n_items)
        m = evaluate_examples(baseline_scorer(b), ex, data.n_items, ks=[20], batch_size=2048)
        rows.append({"model": name.upper() if name != "vsknn" else "V-SKNN", "p20": 100 * m["recall@20"],
                     "mrr20": 100 * m["mrr@20"], "train_s": time.perf_counter() - t, "note": "fit + score"})
        print(rows[-1], flush=True)
    if not args.baselines_only:
        for preset in args.presets:
            cfg = get_preset(preset).with_overrides(
                OVERRIDES.get(preset, []) + args.set + [f"train.epochs={args.epochs}", "eval.protocols=[all_next]",
                                            "eval.ks=[10, 20]", f"train.time_budget_s={args.budget_min * 60}",
                                            "train.log_every=200", "data.val_fraction=0.0"]
            )
            t = time.perf_counter()
            run = train(cfg, data, out / preset.replace("+", "plus"), overwrite=True,
                        data_source={"train": str(DATA / "train.csv"), "test": str(DATA / "test.csv")})
            m = run.metrics["test"]["all_next"]
            env = run.environment
            label = preset + (f" ({', '.join(args.set)})" if args.set else "")
            rows.append({"model": label, "p20": 100 * m["recall@20"], "mrr20": 100 * m["mrr@20"],
                         "train_s": env["train_seconds"],
                         "note": f"{env['global_step']} steps, {env['train_sequences_per_s']:.0f} seq/s"
                                 + (", time budget hit" if env.get("stopped_by_time_budget") else "")})
            print(rows[-1], f"(total {time.perf_counter() - t:.0f}s)", flush=True)
    lines = ["| model | P@20 | MRR@20 | train time | note |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['p20']:.2f} | {r['mrr20']:.2f} | {r['train_s']:.0f} s | {r['note']} |")
    for name, (p, m) in PUBLISHED.items():
        lines.append(f"| {name} | {p:.2f} | {m:.2f} | | published (GCE-GNN paper, same split) |")
    table = "\n".join(lines)
    print(table)
    (out / "table.md").write_text(table + "\n")
    (out / "rows.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
