"""A run is a folder; nothing in it is ever unpickled.

    config.json        the ExperimentConfig (reusable as --config)
    schema.json        column roles, table sizes (n_items, categorical cardinalities), data source
    encoders/          item and category vocabularies (Parquet) + continuous statistics (JSON)
    model.safetensors  the weights
    stats.safetensors  training item popularity
    metrics.json       {split: {protocol: {metric: value}}}
    history.csv        loss and validation metrics by step
    environment.json   versions, device, seed, times

Written to a hidden temporary folder and renamed into place, so a crash mid-save leaves the
previous run intact and no half run is ever listed.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from .config import ExperimentConfig
from .data import Encoders, SessionData, pad_sessions
from .errors import ConfigError, RunError, T4RError
from .schema import Schema
from .sessions import Sessions
from .vocab import N_RESERVED, UNK

RUN_FILES = ("config.json", "schema.json", "model.safetensors", "metrics.json", "environment.json")


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, default=_json_default), encoding="utf-8")


def _json_default(o: Any):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def environment_info(device: torch.device, args=None, started: float | None = None) -> dict[str, Any]:
    import transformers

    from . import __version__

    env: dict[str, Any] = {
        "t4r_core": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started or time.time())),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if args is not None:
        env.update({"seed": args.seed, "world_size": args.world_size,
                    "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"})
    return env


def save_run(
    out_dir: str | Path,
    cfg: ExperimentConfig,
    data: SessionData,
    model: torch.nn.Module,
    metrics: dict[str, Any],
    history: pd.DataFrame | None,
    environment: dict[str, Any],
    data_source: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write every file to `.NAME.tmp-PID` beside `out_dir`, then rename it into place."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and not overwrite:
        raise RunError(f"{out} already exists; choose another folder or pass --overwrite")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    cfg.save(tmp / "config.json")
    _write_json(tmp / "schema.json", {
        "schema": data.schema.to_dict(),
        "n_items": data.n_items,
        "cardinalities": data.encoders.cardinalities,
        "continuous": list(data.encoders.continuous),
        "counts": data.counts(),
        "unknown_items": data.unknown_items,
        "report": data.report.__dict__,
        "source": data_source or {},
    })
    data.encoders.save(tmp / "encoders")
    inner = getattr(model, "module", model)
    state = {k: v.detach().cpu().contiguous() for k, v in inner.state_dict().items()}
    save_file(_unshare(state), str(tmp / "model.safetensors"), metadata={"format": "pt"})
    save_file({"item_popularity": torch.as_tensor(data.item_popularity(), dtype=torch.float64)},
              str(tmp / "stats.safetensors"))
    _write_json(tmp / "metrics.json", metrics)
    if history is not None:
        history.to_csv(tmp / "history.csv", index=False)
    _write_json(tmp / "environment.json", environment)
    # swap into place: the old run (if any) is removed only after the new one is complete
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def _unshare(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors sharing memory (tied weights): keep one copy of each storage."""
    seen: dict[tuple[int, int, tuple], str] = {}
    out = {}
    for k, v in state.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        if key in seen and v.numel():
            out[k] = v.clone()
        else:
            seen[key] = k
            out[k] = v
    return out


# ------------------------------------------------------------------------------ loading


@dataclass
class Run:
    path: Path
    config: ExperimentConfig
    schema: Schema
    info: dict[str, Any]
    encoders: Encoders
    metrics: dict[str, Any]
    environment: dict[str, Any]
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    _model: torch.nn.Module | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def load(cls, path: str | Path) -> "Run":
        p = Path(path)
        _recover_swap(p)
        if not p.is_dir():
            raise RunError(f"{p} is not a run folder")
        missing = [f for f in RUN_FILES if not (p / f).exists()]
        if missing:
            raise RunError(f"{p} is not a complete run: missing {', '.join(missing)}")
        try:
            cfg = ExperimentConfig.load(p / "config.json")
        except ConfigError as e:
            raise RunError(f"{p}/config.json: {e}") from None
        info = json.loads((p / "schema.json").read_text())
        hist = pd.read_csv(p / "history.csv") if (p / "history.csv").exists() and (p / "history.csv").stat().st_size else pd.DataFrame()
        return cls(
            path=p, config=cfg, schema=Schema.from_dict(info["schema"]), info=info,
            encoders=Encoders.load(p / "encoders"), metrics=json.loads((p / "metrics.json").read_text()),
            environment=json.loads((p / "environment.json").read_text()), history=hist,
        )

    @property
    def n_items(self) -> int:
        return int(self.info["n_items"])

    @property
    def item_popularity(self) -> np.ndarray:
        return load_file(str(self.path / "stats.safetensors"))["item_popularity"].numpy()

    @property
    def model(self) -> torch.nn.Module:
        """The SessionModel rebuilt from config.json + schema.json, weights from safetensors."""
        if self._model is None:
            from .model import SessionModel

            model = SessionModel(self.config.model, self.n_items, self.info.get("cardinalities") or {})
            state = load_file(str(self.path / "model.safetensors"))
            try:
                model.load_state_dict(state, strict=True)
            except RuntimeError as e:  # missing / unexpected keys or shape mismatch
                why = " ".join(str(e).split())[:300]
                raise RunError(f"{self.path}: model.safetensors does not match config.json: {why}") from None
            model.eval()
            self._model = model
        return self._model

    # -- use ----------------------------------------------------------------------------------
    def encode_items(self, items: list[Any]) -> np.ndarray:
        """The user's item ids -> model ids; ids never seen in training become UNK."""
        vals = pd.Series(list(items))
        ids = self.encoders.items.encode(_coerce_like(vals, self.encoders.items.values))
        return ids

    @torch.no_grad()
    def recommend(self, items: list[Any], k: int = 10, exclude_seen: bool = False) -> list[dict[str, Any]]:
        """Top-k next items for a session given as the user's own ids, as [{"item", "score"}]."""
        if len(items) == 0:
            raise T4RError("give at least one item of the session")
        scores = self.scores([items])[0]
        if exclude_seen:
            ids = self.encode_items(items)
            scores[torch.as_tensor(ids[ids >= N_RESERVED])] = float("-inf")
        top = torch.topk(scores, min(k, self.n_items - N_RESERVED))
        keep = torch.isfinite(top.values)
        ids = top.indices[keep].numpy()
        return [{"item": _py(v), "score": float(s)} for v, s in
                zip(self.encoders.items.decode(ids), top.values[keep].tolist())]

    @torch.no_grad()
    def scores(self, sessions: list[list[Any]]) -> torch.Tensor:
        """Scores [n_sessions, n_items] for sessions of the user's item ids (last max_len used).

        Side features are not known for hand-made sessions: categorical ones get the unknown id,
        continuous ones the training mean.
        """
        offsets = np.zeros(len(sessions) + 1, dtype=np.int64)
        np.cumsum([len(s) for s in sessions], out=offsets[1:])
        items = self.encode_items([x for s in sessions for x in s])
        feats = {name: np.full(len(items), UNK, dtype=np.int64) for name in self.encoders.categorical}
        feats.update({name: np.zeros(len(items), dtype=np.float32) for name in self.encoders.continuous})
        batch = {k: torch.from_numpy(v) for k, v in
                 pad_sessions(Sessions(offsets, items, feats), self.config.model.max_len).items()}
        return self.model.predict_next(batch).scores.float()

    def evaluate(self, data: SessionData, protocols=("last",), ks=(5, 10, 20), split: str = "test",
                 exclude_seen: bool | None = None, batch_size: int = 512) -> dict[str, dict[str, float]]:
        """Metrics of this run on a split of `data` (which must use this run's encoders)."""
        from .evaluation import evaluate_splits, model_scorer

        excl = self.config.eval.exclude_seen if exclude_seen is None else exclude_seen
        res = evaluate_splits(model_scorer(self.model), data, [split], protocols, self.config.model.max_len,
                              ks, excl, batch_size)
        return res.get(split, {})

    def summary(self) -> dict[str, Any]:
        m = self.config.model
        test = self.metrics.get("test", {})
        proto = next(iter(test), None)
        row = {"run": self.name, "body": m.body, "masking": m.masking, "d_model": m.d_model,
               "n_layers": m.n_layers, "loss": m.loss, "train_s": self.environment.get("train_seconds"),
               "protocol": proto}
        if proto:
            row.update({k: v for k, v in test[proto].items() if "@" in k})
        return row


def _recover_swap(out: Path) -> None:
    """A crash between the two renames of `save_run` leaves the previous run as `.NAME.old-PID`:
    put it back, so a saved run is never lost."""
    if out.exists() or not out.parent.is_dir():
        return
    olds = sorted(out.parent.glob(f".{out.name}.old-*"))
    if olds:
        olds[-1].rename(out)


def _coerce_like(vals: pd.Series, vocab_values: pd.Index) -> pd.Series:
    """Ids typed as text (CLI, app) matched against an integer vocabulary, and vice versa."""
    if pd.api.types.is_integer_dtype(vocab_values.dtype):
        num = pd.to_numeric(vals, errors="coerce")
        ok = num.notna() & (num == num.round())
        return pd.Series(np.where(ok, num.fillna(-1).astype(np.int64), -(2**62)), dtype=np.int64)
    return vals.astype(str)


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def list_runs(folder: str | Path) -> list[Run]:
    """Complete runs under `folder`, newest first; hidden temp folders and partial runs are skipped."""
    root = Path(folder)
    if not root.is_dir():
        return []
    for old in root.glob(".*.old-*"):
        _recover_swap(root / old.name[1:].rsplit(".old-", 1)[0])
    runs = []
    for p in root.iterdir():
        if p.name.startswith(".") or not p.is_dir() or not all((p / f).exists() for f in RUN_FILES):
            continue
        try:
            runs.append(Run.load(p))
        except (T4RError, ValueError, OSError, KeyError):
            continue
    return sorted(runs, key=lambda r: r.environment.get("finished", ""), reverse=True)


def compare_runs(runs: list[Run]) -> pd.DataFrame:
    """One row per run: architecture, training time and test metrics."""
    return pd.DataFrame([r.summary() for r in runs])
