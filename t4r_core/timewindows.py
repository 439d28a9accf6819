"""Incremental time-window training and evaluation, the Transformers4Rec paper's protocol.

Sessions go to the window (hour / day / week, or one of N equal spans) of their first event.
For t = 1 .. T-1: train on window t (`incremental`: the same model continues; `retrain`: a fresh
model on windows 1..t; `first`: the window-1 model, never updated — the reference that shows
drift), evaluate on window t+1, slide. Reported: the per-window table, the average over windows,
and the average over the second half of the windows (the paper's "test" half). Pop and V-SKNN
go through the same windows, fitted on every window so far.

The item vocabulary is fitted once over all windows so the embedding table keeps its size while
the model is carried from window to window; it holds ids only, no interactions, so nothing of an
evaluation window reaches training.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import transformers

from .baselines import make_baseline
from .config import ExperimentConfig
from .data import Encoders, SessionData, load_frame, next_item_examples
from .errors import ConfigError, DataError, RunError
from .evaluation import baseline_scorer, evaluate_examples, model_scorer
from .schema import infer_schema, validate
from .sessions import Sessions, build_sessions
from .timestamps import iso
from .trainer import ProgressFn, build_model, checkpoint_dir, fit

WINDOW_SECONDS = {"hour": 3600, "day": 86400, "week": 7 * 86400}
REGIMES = ("incremental", "retrain", "first")


def assign_windows(start_time: np.ndarray, window: str | int) -> tuple[np.ndarray, list[str]]:
    """Window index [n_sessions] (0..T-1, empty windows skipped) and a label per window."""
    if isinstance(window, str) and window.isdigit():
        window = int(window)
    if isinstance(window, int):
        if window < 2:
            raise ConfigError(f"--window {window}: a fixed number of windows must be >= 2")
        lo, hi = float(start_time.min()), float(start_time.max())
        raw = np.minimum(((start_time - lo) / max(hi - lo, 1e-9) * window).astype(np.int64), window - 1)
        starts = lo + np.arange(window) * (hi - lo) / window
    elif window in WINDOW_SECONDS:
        size = WINDOW_SECONDS[window]
        raw = np.floor(start_time / size).astype(np.int64)
        starts = None
    else:
        raise ConfigError(f"unknown window {window!r}; use hour, day, week or a number of windows")
    uniq, idx = np.unique(raw, return_inverse=True)
    if starts is None:
        labels = [iso(float(u * WINDOW_SECONDS[window])) for u in uniq]
    else:
        labels = [iso(float(starts[u])) for u in uniq]
    return idx.astype(np.int64), [str(lbl)[:16] for lbl in labels]


def window_summary(sessions: Sessions, window_idx: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """Sessions and events per window: shown before training so the user sees the slices."""
    n = len(labels)
    return pd.DataFrame({
        "window": np.arange(n),
        "start": labels,
        "sessions": np.bincount(window_idx, minlength=n),
        "events": np.bincount(window_idx, weights=sessions.lengths, minlength=n).astype(np.int64),
    })


def prepare_windows(source, cfg: ExperimentConfig, window: str | int, name: str | None = None):
    """Read, build sessions, assign windows, fit the (id-only) encoders: (data, window_idx, labels)."""
    label = name or (str(source) if not isinstance(source, pd.DataFrame) else "data")
    df = load_frame(source, cfg.data, name)
    schema = infer_schema(df, cfg.data, label)
    validate(df, schema, label)
    raw, report = build_sessions(df, schema, cfg.data, label)
    if raw.start_time is None:
        raise DataError(f"{label}: time windows need calendar time (a timestamp or date column); "
                        "this file has none, or only relative offsets")
    win, labels = assign_windows(raw.start_time, window)
    if len(labels) < 2:
        raise DataError(f"{label}: all sessions fall in one {window} window; choose a shorter window "
                        "(hour) or a number of windows (--window 4)")
    enc = Encoders.fit(raw, schema)
    data = SessionData(schema, cfg.data, enc, {"train": enc.encode(raw)}, report)
    return data, win, labels


def run_time_windows(
    source,
    cfg: ExperimentConfig,
    out_dir: str | Path,
    *,
    window: str | int = "day",
    regime: str = "incremental",
    baselines: Sequence[str] = ("pop", "vsknn"),
    progress: ProgressFn | None = None,
    overwrite: bool = False,
    name: str | None = None,
):
    """Train and evaluate window by window; save a run whose metrics.json holds the table."""
    from .runs import Run, environment_info, save_run

    cfg.validate()
    if regime not in REGIMES:
        raise ConfigError(f"unknown regime {regime!r}; choose one of {', '.join(REGIMES)}")
    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists() and not overwrite:
        raise RunError(f"{out_dir} already holds a run; choose another --out or pass --overwrite")
    started = time.time()
    data, win, labels = prepare_windows(source, cfg, window, name)
    everything = data.splits["train"]
    L, ks, protocols = cfg.model.max_len, cfg.eval.ks, cfg.eval.protocols
    transformers.set_seed(cfg.train.seed)
    model = None
    rows: list[dict[str, Any]] = []
    ckpt = checkpoint_dir(out_dir)
    train_seconds = 0.0
    for t in range(len(labels) - 1):
        seen_idx = np.flatnonzero(win <= t)
        train_idx = np.flatnonzero(win == t) if regime == "incremental" else seen_idx
        test = everything.take(np.flatnonzero(win == t + 1))
        fresh = model is None or regime == "retrain"
        wdata = SessionData(data.schema, data.config, data.encoders, {"train": everything.take(train_idx)}, data.report)
        if fresh:
            transformers.set_seed(cfg.train.seed)
            model = build_model(cfg, wdata)
        if fresh or regime == "incremental":
            if progress:
                progress({"event": "window", "window": t, "of": len(labels) - 1})
            fitted = fit(model, cfg, wdata, ckpt / f"window-{t}", progress=progress)
            train_seconds += fitted.seconds
        model.eval()
        base = {"window": t + 1, "start": labels[t + 1], "train_sessions": len(train_idx),
                "test_sessions": len(test), "train_last_start": float(everything.start_time[train_idx].max()),
                "test_first_start": float(test.start_time.min()) if len(test) else float("nan")}
        for p in protocols:
            ex = next_item_examples(test, p, L)
            m = evaluate_examples(model_scorer(model), ex, data.n_items, ks, cfg.eval.exclude_seen,
                                  cfg.train.eval_batch_size, fitted.trainer.args.device)
            rows.append({**base, "model": cfg.model.body + "-" + cfg.model.masking, "protocol": p, **m})
            seen = everything.take(seen_idx)
            for b in baselines:
                est = make_baseline(b).fit(seen, data.n_items)
                mb = evaluate_examples(baseline_scorer(est), ex, data.n_items, ks, cfg.eval.exclude_seen, 2048)
                rows.append({**base, "model": b, "protocol": p, **mb})
    table = pd.DataFrame(rows)
    metrics = summarise(table)
    metrics["windows"] = table.to_dict(orient="records")
    metrics["window"] = str(window)
    metrics["regime"] = regime
    env = environment_info(fitted.trainer.args.device, fitted.trainer.args, started)
    env.update({"train_seconds": train_seconds, "n_windows": len(labels)})
    path = save_run(out_dir, cfg, data, model, metrics, table, env, overwrite=overwrite,
                    data_source={"train": str(source) if not isinstance(source, pd.DataFrame) else None})
    shutil.rmtree(ckpt, ignore_errors=True)
    return Run.load(path)


def summarise(table: pd.DataFrame) -> dict[str, Any]:
    """{"test": {protocol: mean over windows}, "second_half": ..., "baselines": {name: {protocol: ...}}}."""
    metric_cols = [c for c in table.columns if "@" in c]
    out: dict[str, Any] = {"test": {}, "second_half": {}, "baselines": {}}
    n_windows = table["window"].nunique()
    half = sorted(table["window"].unique())[n_windows // 2:]
    for (model, proto), g in table.groupby(["model", "protocol"], sort=False):
        mean = {c: float(g[c].mean()) for c in metric_cols}
        second = {c: float(g[g["window"].isin(half)][c].mean()) for c in metric_cols}
        if model in ("pop", "spop", "vsknn"):
            out["baselines"].setdefault(model, {})[proto] = {"mean": mean, "second_half": second}
        else:
            out["test"][proto] = mean
            out["second_half"][proto] = second
    return out
