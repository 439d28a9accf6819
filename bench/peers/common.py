"""Shared by every peer runner and by the harness: stdlib + numpy only, so it imports in any venv.

The harness (bench/bench_peers.py, our venv) prepares the data once with t4r_core and writes an
*export* folder; each runner (one per tool, each in its own venv) reads it, converts it to the
tool's input format, trains epoch by epoch, and after each epoch ranks the test prefixes, keeps
the top-k item ids and scores them here (`topk_metrics`) - one metric code for every tool.

Export folder (all ids are t4r_core's encoded item ids; 0 = PAD, 1 = UNK, 2 = MASK are reserved):
    train.npz   offsets [S+1], items [E]: the training sequences exactly as our trainer sees them
                (each train session's last `max_len` events)
    test.npz    offsets [N+1], items [P]: each evaluation prefix (last `max_len` events before
                its target); targets [N]
    meta.json   n_items, max_len, protocol, ks, dataset name, counts
Runner result (JSON, written to the path the harness gives):
    {"tool", "model", "status": "ok" | "failed", "error", "epochs": [{"epoch", "train_s",
     "wall_s", "eval_s", "metrics": {...}}], "train_sequences", "train_positions",
     "eval_targets", "seq_per_s", "pos_per_s", "native_samples_per_epoch", "peak_rss_mib",
     "metric_source": "ours-on-topk" | "tool-own", "versions": {...}, "notes": [...]}
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

PAD, UNK, N_RESERVED = 0, 1, 3


# ------------------------------------------------------------------------------ ragged arrays


def to_ragged(rows) -> tuple[np.ndarray, np.ndarray]:
    """List of 1-D int sequences -> (offsets [n+1], flat items)."""
    lens = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    flat = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows]) if len(rows) else np.zeros(0, np.int64)
    return offsets, flat


def from_padded(padded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded [N, L] ids (0 = PAD) -> (offsets, items), order kept, padding dropped."""
    padded = np.asarray(padded)
    valid = padded != PAD
    lens = valid.sum(1).astype(np.int64)
    # right padding: every valid position precedes every pad one
    if padded.size and not np.array_equal(valid, np.arange(padded.shape[1])[None, :] < lens[:, None]):
        raise ValueError("prefixes must be right-padded (no PAD before a real item)")
    offsets = np.zeros(len(padded) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    return offsets, padded[valid].astype(np.int64)


def rows(offsets: np.ndarray, items: np.ndarray):
    """Iterate the sequences of a ragged pair."""
    for i in range(len(offsets) - 1):
        yield items[offsets[i]:offsets[i + 1]]


def to_padded(offsets: np.ndarray, items: np.ndarray, max_len: int, side: str = "right") -> np.ndarray:
    """Ragged -> [N, max_len] (0 = PAD); longer rows keep their last max_len items."""
    n = len(offsets) - 1
    out = np.zeros((n, max_len), dtype=np.int64)
    lens = np.diff(offsets)
    for i in range(n):
        r = items[offsets[i]:offsets[i + 1]][-max_len:]
        if side == "right":
            out[i, :len(r)] = r
        else:
            out[i, max_len - len(r):] = r
    return out


def drop_ids(offsets: np.ndarray, items: np.ndarray, drop=(PAD, UNK)) -> tuple[np.ndarray, np.ndarray]:
    """Remove the given ids from every row (e.g. UNK, which no peer has an embedding for)."""
    keep = ~np.isin(items, np.asarray(drop))
    row = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    lens = np.bincount(row[keep], minlength=len(offsets) - 1)
    new = np.zeros(len(offsets), dtype=np.int64)
    np.cumsum(lens, out=new[1:])
    return new, items[keep]


# ------------------------------------------------------------------------------ export I/O


def load_export(folder) -> dict:
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    tr = np.load(folder / "train.npz")
    te = np.load(folder / "test.npz")
    return {"meta": meta, "train_offsets": tr["offsets"], "train_items": tr["items"],
            "test_offsets": te["offsets"], "test_items": te["items"], "targets": te["targets"]}


def counts(ex: dict) -> dict:
    """The numbers every tool must agree on."""
    return {"train_sequences": int(len(ex["train_offsets"]) - 1), "train_positions": int(len(ex["train_items"])),
            "eval_targets": int(len(ex["targets"]))}


# ------------------------------------------------------------------------------ metrics


def topk_metrics(topk: np.ndarray, targets: np.ndarray, ks=(10, 20)) -> dict[str, float]:
    """recall@k (= HR@k = P@20 of the SBR papers), ndcg@k and mrr@k from top-k id lists.

    topk [N, K] holds item ids best first (-1 or any id never equal to a target = empty slot);
    one relevant item per row, so ndcg = 1/log2(rank+1), mrr = 1/rank, for rank <= k. A target
    that is not a real item (PAD/UNK/reserved) is a miss, as in t4r_core.metrics.
    """
    topk = np.asarray(topk)
    targets = np.asarray(targets).reshape(-1)
    if topk.ndim != 2 or topk.shape[0] != targets.shape[0]:
        raise ValueError(f"topk must be [N={targets.shape[0]}, K], got {topk.shape}")
    n = len(targets)
    out: dict[str, float] = {"n_examples": float(n)}
    if n == 0:
        for k in ks:
            out.update({f"recall@{k}": 0.0, f"ndcg@{k}": 0.0, f"mrr@{k}": 0.0})
        return out
    hit = (topk == targets[:, None]) & (targets[:, None] >= N_RESERVED)
    # rank of the first hit (1-based), inf for none
    any_hit = hit.any(1)
    first = np.where(any_hit, hit.argmax(1) + 1, np.inf).astype(np.float64)
    for k in ks:
        if k > topk.shape[1]:
            raise ValueError(f"k={k} exceeds the {topk.shape[1]} recommendations per row")
        inside = first <= k
        out[f"recall@{k}"] = float(inside.mean())
        out[f"ndcg@{k}"] = float(np.where(inside, 1.0 / np.log2(np.where(inside, first, 1.0) + 1.0), 0.0).mean())
        out[f"mrr@{k}"] = float(np.where(inside, 1.0 / np.where(inside, first, 1.0), 0.0).mean())
    return out


def topk_from_scores(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first (scores [N, n_items], numpy)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


# ------------------------------------------------------------------------------ resources


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM), MiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def set_threads(n: int | None = None) -> int:
    """Same intra-op thread count for every tool (default: all cores, as each tool would use)."""
    import torch

    n = n or int(os.environ.get("BENCH_THREADS", "0")) or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


# ------------------------------------------------------------------------------ runner plumbing


class Recorder:
    """Collects per-epoch results; wall clock split into training and evaluation time."""

    def __init__(self, tool: str, model: str, ex: dict, out_path, metric_source: str = "ours-on-topk"):
        self.res = {"tool": tool, "model": model, "status": "running", "error": None, "epochs": [],
                    "metric_source": metric_source, "notes": [], "versions": {"python": sys.version.split()[0]},
                    **counts(ex), "dataset": ex["meta"].get("dataset"), "protocol": ex["meta"].get("protocol")}
        self.out_path = Path(out_path).resolve()  # runners may chdir later
        self.t0 = time.perf_counter()
        self.train_s = 0.0
        self.eval_s = 0.0
        self._mark = self.t0

    def start_train(self) -> None:
        self._mark = time.perf_counter()

    def end_train(self) -> float:
        dt = time.perf_counter() - self._mark
        self.train_s += dt
        return dt

    def add_epoch(self, epoch: int, metrics: dict, eval_s: float, extra: dict | None = None) -> None:
        self.eval_s += eval_s
        self.res["epochs"].append({"epoch": epoch, "train_s": round(self.train_s, 3), "eval_s": round(eval_s, 3),
                                   "wall_s": round(time.perf_counter() - self.t0, 3), "metrics": metrics,
                                   **(extra or {})})
        self.flush()

    def note(self, text: str) -> None:
        self.res["notes"].append(text)

    def finish(self, status: str = "ok", error: str | None = None) -> None:
        # epochs of training done (fractional when a run stopped mid-epoch); a runner may set it
        ep = float(self.res["epochs_done"] if "epochs_done" in self.res else len(self.res["epochs"]))
        self.res["epochs_done"] = ep
        self.res["status"] = status
        self.res["error"] = error
        self.res["n_epochs"] = ep
        self.res["train_s"] = round(self.train_s, 3)
        if self.train_s > 0 and ep:
            self.res["seq_per_s"] = self.res["train_sequences"] * ep / self.train_s
            self.res["pos_per_s"] = self.res["train_positions"] * ep / self.train_s
        self.res["peak_rss_mib"] = round(peak_rss_mib(), 1)
        self.flush()

    def flush(self) -> None:
        tmp = self.out_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.res, indent=2, default=_json_default))
        tmp.replace(self.out_path)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if math.isnan(o) else float(o)
    return str(o)


def run_guarded(rec: Recorder, fn) -> None:
    """Run fn(); record a failure with its traceback instead of losing the partial result."""
    try:
        fn()
        rec.finish("ok")
    except BaseException as e:  # noqa: BLE001 - the harness wants every failure as data
        rec.finish("failed", f"{type(e).__name__}: {e}\n{traceback.format_exc()[-4000:]}")
        if isinstance(e, KeyboardInterrupt):
            raise


def common_args(argv=None):
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--export", required=True, help="export folder written by bench_peers.py")
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True, help="result JSON path")
    ap.add_argument("--work", default=None, help="scratch folder for the tool's own files")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--budget-s", type=float, default=60.0, help="training wall time; no new epoch after it")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--eval-batch", type=int, default=1024)
    return ap.parse_args(argv)


def run_tool(tool: str, run, argv=None) -> None:
    """Every peer runner's entry: parse the common flags, pin threads, load the export, record."""
    a = common_args(argv)
    threads = set_threads()
    ex = load_export(a.export)
    rec = Recorder(tool, a.model, ex, a.out)
    rec.res["threads"] = threads
    run_guarded(rec, lambda: run(a, ex, rec))
