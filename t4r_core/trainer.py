"""Training: a `transformers.Trainer` subclass whose evaluation is full-catalogue ranking.

Because it is the Hugging Face Trainer, `TrainingArguments`, `report_to`, gradient accumulation,
checkpoints, bf16/fp16 on CUDA and `torchrun` / `accelerate launch` DDP work unchanged.

    run = train(cfg, data, "runs/sasrec")          # fit, evaluate, save a Run folder
    run.metrics["test"]["last"]["ndcg@10"]

`progress` receives dicts ({"event": "step" | "eval" | "done", ...}) so the CLI can draw a tqdm
bar and the app a live chart; setting `stop` (a threading.Event) ends training at the next step,
and the run is still evaluated and saved (with the best checkpoint when validation ran).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import EarlyStoppingCallback, PrinterCallback, Trainer, TrainerCallback, TrainingArguments

from .batching import LengthGroupedSampler, targets_per_row, trim_padding
from .config import ExperimentConfig
from .data import SequenceDataset, SessionData, collate
from .errors import ConfigError, RunError
from .evaluation import evaluate_examples, evaluate_splits, model_scorer
from .vocab import PAD

ProgressFn = Callable[[dict[str, Any]], None]


# ------------------------------------------------------------------------------ device


def resolve_device(pref: str = "auto") -> torch.device:
    """CUDA when present (or asked), else CPU. Asking for CUDA without one is a clear error."""
    if pref == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device=cuda but no CUDA GPU is visible; use train.device=auto or cpu")
    if pref in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def resolve_precision(pref: str, device: torch.device) -> str:
    """fp32 on CPU; on CUDA bf16 when the GPU supports it (auto), else fp16."""
    if device.type != "cuda":
        if pref in ("bf16", "fp16"):
            raise ConfigError(f"train.precision={pref} needs a CUDA GPU; use auto or fp32 on CPU")
        return "fp32"
    if pref == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return pref


def device_description(device: torch.device | None = None) -> str:
    device = device or resolve_device("auto")
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def free_memory_bytes(device: torch.device) -> int:
    """Memory that training may still take: free GPU memory, or MemAvailable of the host."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def estimate_memory(cfg: ExperimentConfig, n_items: int) -> dict[str, int]:
    """Rough peak bytes of one training step, before anything is allocated.

    The item table is held 4 times (weights, gradients, two Adam moments); full cross-entropy
    materialises [batch x max_len x n_items] logits about 3 times (logits, softmax, gradient).
    """
    m, t = cfg.model, cfg.train
    d = m.item_dim or m.d_model
    table = 4 * n_items * d * 4
    positions = t.batch_size * m.max_len
    width = n_items if m.loss == "ce" else m.n_negatives + 1
    logits = 3 * positions * width * 4
    body = 4 * 12 * m.n_layers * m.d_model * m.d_model * 4 + 20 * positions * m.d_model * m.n_layers * 4
    return {"item_table": table, "logits": logits, "body": body, "total": table + logits + body}


def check_memory(cfg: ExperimentConfig, n_items: int, device: torch.device) -> None:
    """Refuse, with a suggestion, a config that cannot fit, instead of crashing mid-training."""
    est = estimate_memory(cfg, n_items)
    free = free_memory_bytes(device)
    if est["total"] > 0.9 * free:
        gib = 1024**3
        where = "GPU" if device.type == "cuda" else "RAM"
        raise ConfigError(
            f"this config needs about {est['total'] / gib:.1f} GiB ({est['item_table'] / gib:.1f} GiB item table for "
            f"{n_items:,} items, {est['logits'] / gib:.1f} GiB of logits for train.batch_size={cfg.train.batch_size} x "
            f"model.max_len={cfg.model.max_len}) but only {free / gib:.1f} GiB of {where} is free; lower "
            "train.batch_size or model.max_len, or use model.loss=sampled_ce"
        )


# ------------------------------------------------------------------------------ callbacks


class ProgressCallback(TrainerCallback):
    """Reports step, epoch, loss, throughput and ETA to a function (throttled to ~4 per second)."""

    def __init__(self, fn: ProgressFn, batch_size: int, min_interval: float = 0.25):
        self.fn, self.batch_size, self.min_interval = fn, batch_size, min_interval
        self.t0 = self.last = 0.0
        self.loss: float | None = None
        self.start_step = 0

    def on_train_begin(self, args, state, control, **kw):
        self.t0 = self.last = time.perf_counter()
        self.start_step = state.global_step
        self.fn({"event": "start", "max_steps": state.max_steps, "epochs": args.num_train_epochs})

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])

    def on_step_end(self, args, state, control, **kw):
        now = time.perf_counter()
        if now - self.last < self.min_interval and state.global_step < state.max_steps:
            return
        self.last = now
        done = state.global_step - self.start_step
        elapsed = now - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        self.fn({
            "event": "step", "step": state.global_step, "max_steps": state.max_steps,
            "epoch": float(state.epoch or 0.0), "loss": self.loss, "elapsed_s": elapsed,
            "seq_per_s": rate * self.batch_size * args.gradient_accumulation_steps * args.world_size,
            "eta_s": (state.max_steps - state.global_step) / rate if rate > 0 else None,
        })

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        self.fn({"event": "eval", "step": state.global_step, "epoch": float(state.epoch or 0.0),
                 "metrics": {k.removeprefix("eval_"): v for k, v in (metrics or {}).items()}})


class StopCallback(TrainerCallback):
    """Ends training cleanly at the next step once `event` is set (the app's Stop button) or the
    time budget is spent; the run is then evaluated and saved as usual."""

    def __init__(self, event: threading.Event | None = None, time_budget_s: float | None = None):
        self.event, self.budget = event, time_budget_s
        self.t0 = time.perf_counter()
        self.stopped: str | None = None  # "user" or "time_budget"

    def on_train_begin(self, args, state, control, **kw):
        self.t0 = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        if self.event is not None and self.event.is_set():
            self.stopped = "user"
        elif self.budget is not None and time.perf_counter() - self.t0 > self.budget:
            self.stopped = "time_budget"
        if self.stopped:
            control.should_training_stop = True
            control.should_save = args.save_strategy != "no"
            if args.eval_strategy != "no":
                control.should_evaluate = True  # so the best checkpoint can be the last one


# ------------------------------------------------------------------------------ trainer


class RecTrainer(Trainer):
    """HF Trainer whose `evaluate` ranks the full catalogue for the validation prefixes."""

    def __init__(self, *args, data: SessionData, cfg: ExperimentConfig, **kwargs):
        super().__init__(*args, **kwargs)
        self.data, self.cfg = data, cfg

    def _get_train_sampler(self, train_dataset=None):
        """Batches of similar-length sessions (`batching.py`) unless `train.group_by_length` is off."""
        ds = train_dataset if train_dataset is not None else self.train_dataset
        if not self.cfg.train.group_by_length:
            return super()._get_train_sampler(ds)
        lengths = (ds.arrays["item_id"] != PAD).sum(1).numpy()
        return LengthGroupedSampler(lengths, self.args.per_device_train_batch_size, seed=self.args.seed)

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        ds = eval_dataset or self.eval_dataset
        examples = {k: v.numpy() for k, v in ds.arrays.items()}
        model = self.model
        was_training = model.training
        model.eval()
        start = time.perf_counter()
        res = evaluate_examples(
            model_scorer(model), examples, self.data.n_items, self.cfg.eval.ks, self.cfg.eval.exclude_seen,
            self.cfg.train.eval_batch_size, self.args.device, autocast_dtype=_autocast_dtype(self.args),
        )
        model.train(was_training)
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in res.items()}
        metrics[f"{metric_key_prefix}_runtime"] = time.perf_counter() - start
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


def _autocast_dtype(args: TrainingArguments) -> torch.dtype | None:
    if args.bf16:
        return torch.bfloat16
    if args.fp16:
        return torch.float16
    return None


def default_metric(cfg: ExperimentConfig) -> str:
    """The validation metric that picks the best checkpoint: NDCG@10 (or at the largest k)."""
    return f"ndcg@{10 if 10 in cfg.eval.ks else max(cfg.eval.ks)}"


def training_arguments(cfg: ExperimentConfig, output_dir: str | Path, has_val: bool) -> TrainingArguments:
    """The experiment's train section as HF TrainingArguments (the one place they are mapped)."""
    t = cfg.train
    device = resolve_device(t.device)
    precision = resolve_precision(t.precision, device)
    metric = t.early_stopping_metric or default_metric(cfg)
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size,
        learning_rate=t.lr,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        lr_scheduler_type=t.lr_scheduler,
        gradient_accumulation_steps=t.grad_accum,
        max_grad_norm=t.max_grad_norm,
        seed=t.seed,
        data_seed=t.seed,
        use_cpu=device.type == "cpu",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        eval_strategy="epoch" if has_val else "no",
        save_strategy="epoch" if t.save_checkpoints else "no",
        save_total_limit=2,
        load_best_model_at_end=has_val and t.save_checkpoints,
        metric_for_best_model=f"eval_{metric}" if has_val else None,
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=max(1, t.log_every),
        logging_nan_inf_filter=False,  # its per-step isnan/isinf check is a host sync on GPU; a NaN loss shows as NaN
        report_to=t.report_to,
        remove_unused_columns=False,
        dataloader_num_workers=t.num_workers,
        disable_tqdm=True,
        ddp_backend="gloo" if device.type == "cpu" and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        ddp_find_unused_parameters=True,
        save_only_model=False,
    )


def build_model(cfg: ExperimentConfig, data: SessionData):
    """A fresh SessionModel sized by the data's tables; side features must exist in the data."""
    from .model import SessionModel

    m = cfg.model
    for name in m.categorical_features:
        if name not in data.encoders.categorical:
            raise ConfigError(f"model.categorical_features names {name!r}, not a categorical column of the data; "
                              f"categorical columns: {', '.join(data.encoders.categorical) or 'none'}")
    for name in m.continuous_features:
        if name not in data.encoders.continuous:
            raise ConfigError(f"model.continuous_features names {name!r}, not a continuous column of the data; "
                              f"continuous columns: {', '.join(data.encoders.continuous) or 'none'}")

    return SessionModel(cfg.model, data.n_items, data.encoders.cardinalities,
                        torch.as_tensor(data.item_popularity(), dtype=torch.float32))


def _train_collate(batch) -> dict[str, torch.Tensor]:
    return trim_padding(collate(batch))


def checkpoint_dir(out_dir: str | Path) -> Path:
    """Where HF checkpoints of a run go while it trains (kept after an interrupt, for --resume)."""
    out = Path(out_dir)
    return out.parent / f".{out.name}.checkpoints"


@dataclass
class Fitted:
    trainer: RecTrainer
    stopper: StopCallback
    seconds: float
    start_step: int


def fit(
    model: torch.nn.Module,
    cfg: ExperimentConfig,
    data: SessionData,
    ckpt: Path,
    *,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
    resume: bool = False,
) -> Fitted:
    """Train `model` in place on `data.train` (validating on `data.splits["val"]` when present).

    The one place a HF Trainer is assembled; `train` (one run) and `timewindows` (a model carried
    across windows) both call it.
    """
    L = cfg.model.max_len
    has_val = "val" in data.splits and len(data.splits["val"]) > 0
    train_ds = SequenceDataset(data.train_arrays(L))
    eval_ds = SequenceDataset(data.eval_examples("val", cfg.eval.protocols[0], L)) if has_val else None
    args = training_arguments(cfg, ckpt, has_val)
    model.targets_per_row = (targets_per_row(model.training_mask, train_ds.arrays["item_id"], seed=cfg.train.seed)
                             if cfg.train.group_by_length else None)
    callbacks: list[TrainerCallback] = []
    if progress is not None:
        callbacks.append(ProgressCallback(progress, cfg.train.batch_size))
    stopper = StopCallback(stop, cfg.train.time_budget_s)
    callbacks.append(stopper)
    if has_val and cfg.train.early_stopping_metric:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.train.early_stopping_patience))
    trainer = RecTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                         data_collator=_train_collate, callbacks=callbacks, data=data, cfg=cfg)
    trainer.remove_callback(PrinterCallback)  # progress goes through `progress`, not print()
    resume_from = _last_checkpoint(ckpt) if resume else None
    if resume and resume_from is None:
        raise RunError(f"--resume: no checkpoint found in {ckpt}; start without --resume")
    t_train = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except torch.cuda.OutOfMemoryError:
        raise RunError(
            f"the GPU ran out of memory (batch {cfg.train.batch_size} x max_len {cfg.model.max_len} x "
            f"{data.n_items:,} items); lower train.batch_size or model.max_len, or use model.loss=sampled_ce; "
            f"checkpoints so far are kept in {ckpt}"
        ) from None
    return Fitted(trainer, stopper, time.perf_counter() - t_train, _checkpoint_step(resume_from))


def train(
    cfg: ExperimentConfig,
    data: SessionData,
    out_dir: str | Path,
    *,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
    resume: bool = False,
    overwrite: bool = False,
    data_source: dict[str, Any] | None = None,
):
    """Fit a SessionModel on `data.train`, evaluate val/test (and a train sample), save a Run."""
    from .runs import Run, environment_info, save_run

    cfg.validate()
    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists() and not overwrite:
        raise RunError(f"{out_dir} already holds a run; choose another --out or pass --overwrite")
    check_memory(cfg, data.n_items, resolve_device(cfg.train.device))
    transformers.set_seed(cfg.train.seed)
    started = time.time()
    model = build_model(cfg, data)
    L = cfg.model.max_len
    ckpt = checkpoint_dir(out_dir)
    fitted = fit(model, cfg, data, ckpt, progress=progress, stop=stop, resume=resume)
    trainer, stopper, args, train_seconds = fitted.trainer, fitted.stopper, fitted.trainer.args, fitted.seconds
    train_ds, start_step = trainer.train_dataset, fitted.start_step

    model.eval()
    splits = ["val", "test"] + (["train"] if cfg.eval.eval_on_train else [])
    metrics = evaluate_splits(
        model_scorer(model), data, splits, cfg.eval.protocols, L, cfg.eval.ks, cfg.eval.exclude_seen,
        cfg.train.eval_batch_size, args.device, train_sample=cfg.eval.train_eval_sample, seed=cfg.train.seed,
    )
    metrics["exclude_seen"] = cfg.eval.exclude_seen
    if progress:
        progress({"event": "done", "metrics": metrics})
    if not trainer.is_world_process_zero():
        return None
    n_train_positions = int((train_ds.arrays["item_id"] != 0).sum())
    env = environment_info(args.device, args, started)
    env.update({
        "train_seconds": train_seconds,
        "global_step": trainer.state.global_step,
        "stopped_by_user": stopper.stopped == "user",
        "stopped_by_time_budget": stopper.stopped == "time_budget",
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "train_sequences_per_s": (trainer.state.global_step - start_step) * cfg.train.batch_size
        * cfg.train.grad_accum * args.world_size / max(train_seconds, 1e-9),
        "train_positions": n_train_positions,
    })
    history = _history(trainer.state.log_history)
    path = save_run(out_dir, cfg, data, model, metrics, history, env, data_source=data_source, overwrite=overwrite)
    shutil.rmtree(ckpt, ignore_errors=True)  # the run folder now holds the final weights
    return Run.load(path)


def _last_checkpoint(folder: Path) -> Path | None:
    """The newest *complete* checkpoint; ones cut short by an interrupt are removed.

    HF writes `trainer_state.json` last, so a checkpoint folder without a readable one was being
    saved when the process was stopped and cannot be resumed from.
    """
    if not folder.exists():
        return None
    cks = sorted((p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
                 key=lambda p: int(p.name.split("-")[-1]))
    complete = []
    for p in cks:
        try:
            json.loads((p / "trainer_state.json").read_text())
            complete.append(p)
        except (OSError, ValueError):
            shutil.rmtree(p, ignore_errors=True)
    return complete[-1] if complete else None


def _checkpoint_step(path: Path | None) -> int:
    return int(path.name.split("-")[-1]) if path else 0


def _history(log_history: list[dict[str, Any]]):
    """HF log history -> one row per step with loss, learning rate and validation metrics."""
    import pandas as pd

    rows: dict[int, dict[str, Any]] = {}
    for rec in log_history:
        step = int(rec.get("step", 0))
        row = rows.setdefault(step, {"step": step})
        for k, v in rec.items():
            if k == "step" or not isinstance(v, (int, float)) or (isinstance(v, float) and math.isnan(v)):
                continue
            row[k.removeprefix("eval_") if k.startswith("eval_") else k] = v
    df = pd.DataFrame(sorted(rows.values(), key=lambda r: r["step"]))
    keep = [c for c in df.columns if not c.endswith(("_runtime", "_samples_per_second", "_steps_per_second"))]
    return df[keep]
