"""Command line: `t4r <command>` or `python -m t4r_core <command>`.

Bad input or config exits with status 2 and one line on stderr (no traceback); set T4R_DEBUG=1
to see the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .config import DataConfig, ExperimentConfig
from .errors import ConfigError, T4RError


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--session-col", help="session id column (default: inferred)")
    p.add_argument("--item-col", help="item id column (default: inferred)")
    p.add_argument("--time-col", help="timestamp column (default: inferred)")
    p.add_argument("--user-col", help="user id column (default: inferred)")
    p.add_argument("--sep", help="CSV delimiter (default: sniffed among , ; TAB |)")
    p.add_argument("--min-session-len", type=int, help="drop sessions shorter than this (default 2)")
    p.add_argument("--dedup", action="store_true", help="drop back-to-back duplicate clicks")


def _data_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for flag, key in [("session_col", "session_col"), ("item_col", "item_col"), ("time_col", "time_col"),
                      ("user_col", "user_col"), ("sep", "sep"), ("min_session_len", "min_session_len")]:
        v = getattr(args, flag, None)
        if v is not None:
            out[key] = "\t" if (key == "sep" and v in ("\\t", "tab", "TAB")) else v
    if getattr(args, "dedup", False):
        out["dedup_consecutive"] = True
    return out


def cmd_profile(args: argparse.Namespace) -> int:
    from .profile import format_profile, profile_file

    cfg = DataConfig(**_data_overrides(args))
    cfg.validate()
    p = profile_file(args.data, cfg)
    print(json.dumps(p, indent=None if args.json else 2) if args.json else format_profile(p))
    return 0


def load_experiment(args: argparse.Namespace) -> ExperimentConfig:
    """--preset (base) <- --config file (its keys win) <- --set overrides <- data flags."""
    import yaml

    from .presets import get_preset

    cfg = get_preset(args.preset) if getattr(args, "preset", None) else ExperimentConfig()
    if getattr(args, "config", None):
        from pathlib import Path

        path = Path(args.config)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML/JSON ({str(e).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: must be a mapping with sections data/model/train/eval")
        ExperimentConfig.from_dict(raw)  # unknown sections/keys are reported against the file
        flat = {f"{sec}.{k}": v for sec, vals in raw.items() for k, v in (vals or {}).items()}
        cfg = cfg.with_overrides(flat)
    if getattr(args, "set", None):
        cfg = cfg.with_overrides(args.set)
    data_over = _data_overrides(args)
    if data_over:
        cfg = cfg.with_overrides({f"data.{k}": v for k, v in data_over.items()})
    return cfg.validate()


def _progress_bar():
    """A tqdm bar on stderr fed by the trainer's progress events."""
    from tqdm import tqdm

    bar = {"bar": None}

    def update(ev: dict) -> None:
        if ev["event"] == "start":
            bar["bar"] = tqdm(total=ev["max_steps"], unit="step", file=sys.stderr, dynamic_ncols=True)
        elif ev["event"] == "step" and bar["bar"] is not None:
            b = bar["bar"]
            b.update(ev["step"] - b.n)
            post = {"epoch": f"{ev['epoch']:.2f}", "seq/s": f"{ev['seq_per_s']:.0f}"}
            if ev.get("loss") is not None:
                post["loss"] = f"{ev['loss']:.4f}"
            b.set_postfix(post, refresh=False)
        elif ev["event"] == "eval" and bar["bar"] is not None:
            m = ev["metrics"]
            shown = {k: f"{v:.4f}" for k, v in m.items() if k.startswith(("ndcg@", "recall@")) and isinstance(v, float)}
            bar["bar"].write(f"epoch {ev['epoch']:.0f} validation: " + "  ".join(f"{k} {v}" for k, v in shown.items()))
        elif ev["event"] == "done" and bar["bar"] is not None:
            bar["bar"].close()

    return update


def cmd_train(args: argparse.Namespace) -> int:
    from .data import prepare_data
    from .trainer import train

    cfg = load_experiment(args)
    data = prepare_data(args.data, cfg.data, test=args.test_data)
    source = {"train": str(args.data), "test": str(args.test_data) if args.test_data else None}
    quiet = args.json or args.quiet
    try:
        run = train(cfg, data, args.out, progress=None if quiet else _progress_bar(), resume=args.resume,
                    overwrite=args.overwrite, data_source=source)
    except KeyboardInterrupt:
        print("interrupted; checkpoints are kept: add --resume to the same command to continue", file=sys.stderr)
        return 130
    if run is None:  # not the main process of a distributed run
        return 0
    if args.json:
        print(json.dumps({"run": str(run.path), "metrics": run.metrics}))
    else:
        print(f"run saved to {run.path}")
        for split in ("val", "test"):
            for proto, m in run.metrics.get(split, {}).items():
                shown = "  ".join(f"{k} {v:.4f}" for k, v in m.items() if k.split("@")[0] in ("ndcg", "recall", "mrr"))
                print(f"{split:5s} {proto:8s} {shown}")
    return 0


def _eval_sessions(run, args):
    """The sessions to evaluate on: --data, else the run's own test split (rebuilt from its source)."""
    from .data import encode_file, prepare_data

    if args.data:
        return encode_file(args.data, run.config.data, run.schema, run.encoders)
    src = run.info.get("source") or {}
    if not src.get("train"):
        raise ConfigError(f"{run.path} does not record its data; pass --data TEST")
    data = prepare_data(src["train"], run.config.data, test=src.get("test"), schema=run.schema,
                        encoders=run.encoders)
    return data.splits["test"]


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import next_item_examples
    from .evaluation import evaluate_examples, model_scorer
    from .runs import Run

    run = Run.load(args.run_dir)
    sessions = _eval_sessions(run, args)
    protocols = args.protocol or run.config.eval.protocols
    ks = args.k or run.config.eval.ks
    excl = args.exclude_seen or run.config.eval.exclude_seen
    out = {p: evaluate_examples(model_scorer(run.model), next_item_examples(sessions, p, run.config.model.max_len),
                                run.n_items, ks, excl, run.config.train.eval_batch_size,
                                item_popularity=run.item_popularity) for p in protocols}
    _print_metrics(out, args.json)
    return 0


def _print_metrics(out: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(out))
        return
    for proto, m in out.items():
        print(f"{proto} ({m.get('n_examples', 0):,} predictions)")
        for k, v in m.items():
            if "@" in k:
                print(f"  {k:14s} {v:.4f}")


def cmd_recommend(args: argparse.Namespace) -> int:
    from .runs import Run

    run = Run.load(args.run_dir)
    items = [x.strip() for x in args.items.split(",") if x.strip()]
    if not items:
        raise ConfigError("--items needs at least one item id, e.g. --items 12,7,99")
    unknown = [x for x, i in zip(items, run.encode_items(items)) if i < 3]
    if unknown:
        print(f"warning: not in the training data, treated as unknown: {', '.join(map(str, unknown))}", file=sys.stderr)
    recs = run.recommend(items, k=args.k, exclude_seen=args.exclude_seen)
    if args.json:
        print(json.dumps(recs))
    else:
        for r, rec in enumerate(recs, 1):
            print(f"{r:3d}. {rec['item']}  {rec['score']:.4f}")
    return 0


def cmd_baseline(args: argparse.Namespace) -> int:
    from .baselines import make_baseline
    from .data import prepare_data
    from .evaluation import baseline_scorer, evaluate_examples

    model = make_baseline(args.name)
    cfg = load_experiment(args)
    data = prepare_data(args.data, cfg.data, test=args.test_data)
    model.fit(data.train, data.n_items)
    max_len = args.max_len or cfg.model.max_len
    out = {p: evaluate_examples(baseline_scorer(model), data.eval_examples("test", p, max_len), data.n_items,
                                args.k or cfg.eval.ks, args.exclude_seen, 2048, item_popularity=data.item_popularity())
           for p in (args.protocol or cfg.eval.protocols)}
    _print_metrics(out, args.json)
    return 0


def cmd_timewindows(args: argparse.Namespace) -> int:
    from .timewindows import prepare_windows, run_time_windows, window_summary

    cfg = load_experiment(args)
    window = int(args.window) if str(args.window).isdigit() else args.window
    if not args.json:
        data, win, labels = prepare_windows(args.data, cfg, window)
        print(window_summary(data.splits["train"], win, labels).to_string(index=False), file=sys.stderr)
    run = run_time_windows(args.data, cfg, args.out, window=window, regime=args.regime,
                           baselines=[b.lower() for b in args.baselines], overwrite=args.overwrite,
                           progress=None if (args.json or args.quiet) else _progress_bar())
    m = run.metrics
    if args.json:
        print(json.dumps({"run": str(run.path), "test": m["test"], "second_half": m["second_half"],
                          "baselines": m["baselines"], "windows": m["windows"]}))
    else:
        cols = ["window", "start", "model", "protocol", "test_sessions"] + [
            c for c in m["windows"][0] if c.startswith(("ndcg@", "recall@"))]
        import pandas as pd

        print(pd.DataFrame(m["windows"])[cols].to_string(index=False))
        print(f"run saved to {run.path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t4r", description="Session-based recommendation with Transformers.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("profile", help="profile an interaction log (counts, lengths, time range, column roles)")
    p.add_argument("data", help="CSV/TSV/Parquet/JSONL file, optionally .gz")
    _add_data_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_profile)

    def config_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="experiment config, YAML or JSON (sections data, model, train, eval)")
        p.add_argument("--preset", help="start from a preset: SASRec+, BERT4Rec, GRU4Rec, XLNet-MLM, XLNet-PLM, "
                                        "ELECTRA-RTD, Llama-CLM")
        p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="overrides, e.g. model.d_model=128 train.epochs=5")

    p = sub.add_parser("train", help="train a model and save a run folder")
    p.add_argument("--data", required=True, help="training interactions (or all of them, split by data.split)")
    p.add_argument("--test-data", help="a separate test file (file-based split)")
    p.add_argument("--out", required=True, help="run folder to write")
    config_args(p)
    _add_data_args(p)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint of an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run at --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the run path and metrics as JSON")
    p.set_defaults(func=cmd_train)

    protocol = dict(nargs="+", choices=["last", "all_next"], help="evaluation protocol(s)")
    p = sub.add_parser("evaluate", help="evaluate a saved run")
    p.add_argument("run_dir")
    p.add_argument("--data", help="test interactions (default: the run's own test split)")
    p.add_argument("--protocol", **protocol)
    p.add_argument("--k", nargs="+", type=int, help="cut-offs, e.g. --k 10 20")
    p.add_argument("--exclude-seen", action="store_true", help="never recommend items already in the session")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("recommend", help="top-k next items for a session of item ids")
    p.add_argument("run_dir")
    p.add_argument("--items", required=True, help="comma-separated item ids of the session, oldest first")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--exclude-seen", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("baseline", help="fit and evaluate a baseline: pop, spop, vsknn")
    p.add_argument("name", help="pop, spop or vsknn (any case)")
    p.add_argument("--data", required=True)
    p.add_argument("--test-data")
    config_args(p)
    _add_data_args(p)
    p.add_argument("--protocol", **protocol)
    p.add_argument("--k", nargs="+", type=int)
    p.add_argument("--max-len", type=int, help="prefix length seen by the baseline (default model.max_len)")
    p.add_argument("--exclude-seen", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("timewindows", help="train and evaluate window by window (Transformers4Rec protocol)")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--window", default="day", help="hour, day (default), week, or a number of equal windows")
    p.add_argument("--regime", default="incremental", choices=["incremental", "retrain", "first"],
                   help="incremental: keep the model and continue; retrain: fresh model on all windows so far; "
                        "first: train on window 1 only (reference)")
    p.add_argument("--baselines", nargs="*", default=["pop", "vsknn"], help="baselines run through the same windows")
    config_args(p)
    _add_data_args(p)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_timewindows)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except T4RError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # an unexpected error is a bug: one line, traceback on request
        if os.environ.get("T4R_DEBUG"):
            raise
        print(f"internal error: {type(e).__name__}: {e} (set T4R_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
