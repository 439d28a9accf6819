"""One evaluation loop for every scorer: trained models and baselines share it, so their numbers
sit in the same table with the same meaning.

A scorer maps a batch (dict of tensors, "item_id" = right-padded prefixes) to scores
[B, n_items]. The prefixes never contain their target (see `data.next_item_examples`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .data import SessionData, next_item_examples
from .metrics import MetricAccumulator

Scorer = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def model_scorer(model: torch.nn.Module) -> Scorer:
    """Scores of a SessionModel (unwrapping DDP / compiled wrappers)."""
    inner = getattr(model, "module", model)
    inner = getattr(inner, "_orig_mod", inner)

    def score(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return inner.predict_next(batch).scores

    return score


def baseline_scorer(baseline) -> Scorer:
    return lambda batch: baseline.score(batch["item_id"])


@torch.no_grad()
def evaluate_examples(
    scorer: Scorer,
    examples: dict[str, np.ndarray],
    n_items: int,
    ks: Sequence[int] = (5, 10, 20),
    exclude_seen: bool = False,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    item_popularity: np.ndarray | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Mean ranking metrics over `examples` (from `SessionData.eval_examples`), full catalogue."""
    device = torch.device(device)
    acc = MetricAccumulator(ks, n_items, item_popularity=item_popularity)
    n = len(examples["target"])
    if n == 0:
        return {**acc.compute(), "n_examples": 0}
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in examples.items()}
    for start in range(0, n, batch_size):
        batch = {k: v[start : start + batch_size].to(device, non_blocking=True) for k, v in tensors.items()}
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            scores = scorer(batch)
        acc.update(scores.float(), batch["target"], seen=batch["item_id"] if exclude_seen else None)
    return {**acc.compute(), "n_examples": n}


def evaluate_splits(
    scorer: Scorer,
    data: SessionData,
    splits: Sequence[str],
    protocols: Sequence[str],
    max_len: int,
    ks: Sequence[int],
    exclude_seen: bool = False,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    train_sample: int | None = None,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, float]]]:
    """{split: {protocol: {metric: value}}} for each named split that has sessions.

    The train split is evaluated on a seeded sample of `train_sample` sessions and reported as
    "train", never mixed with "test".
    """
    pop = data.item_popularity()
    out: dict[str, dict[str, dict[str, float]]] = {}
    for split in splits:
        sessions = data.splits.get(split)
        if sessions is None or len(sessions) == 0:
            continue
        if split == "train" and train_sample and len(sessions) > train_sample:
            idx = np.sort(np.random.default_rng(seed).choice(len(sessions), train_sample, replace=False))
            sessions = sessions.take(idx)
        out[split] = {
            p: evaluate_examples(scorer, next_item_examples(sessions, p, max_len), data.n_items, ks,
                                 exclude_seen, batch_size, device, pop)
            for p in protocols
        }
    return out


def evaluate_baselines(
    data: SessionData,
    baselines: Sequence[str] = ("pop", "vsknn"),
    split: str = "test",
    protocol: str = "last",
    max_len: int = 20,
    ks: Sequence[int] = (5, 10, 20),
    exclude_seen: bool = False,
    batch_size: int = 512,
) -> dict[str, dict[str, float]]:
    """{"Pop": metrics, "V-SKNN": metrics, ...}: baselines fitted on `data.train`, scored on `split`
    by the same metric code and with the same examples as a model, so the rows compare."""
    from .baselines import make_baseline

    sessions = data.splits.get(split)
    if sessions is None or len(sessions) == 0:
        return {}
    ex = next_item_examples(sessions, protocol, max_len)
    pop = data.item_popularity()
    fitted = [make_baseline(key).fit(data.train, data.n_items) for key in baselines]
    return {b.label: evaluate_examples(baseline_scorer(b), ex, data.n_items, ks, exclude_seen, batch_size, "cpu", pop)
            for b in fitted}
