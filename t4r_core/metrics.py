"""Ranking metrics for next-item prediction, vectorised in torch on the scores' device.

Every example has exactly one relevant item (its target), so with `r` the target's rank:
    recall@k    = 1 if r <= k          (= HR@k, = "P@20" of the session-based papers)
    ndcg@k      = 1 / log2(r + 1) if r <= k   (the ideal DCG is 1)
    mrr@k       = 1 / r if r <= k
    map@k       = mrr@k                (average precision with one relevant item is 1 / r)
    precision@k = recall@k / k         (a hit fills one of the k slots; k is not clipped)

Rank (ties are pessimistic): r = number of real items whose score is >= the target's score, the
target included; i.e. 1 + items strictly better + items tied with it. A model that scores every
item the same therefore gets the worst rank, never a lucky one. Reserved ids (PAD, UNK, MASK) are
never ranked, whatever their scores. A target counts as a miss (every metric 0) when it is not a
real item of the table (UNK, PAD, out of range), when its score is -inf (e.g. excluded as seen), or
when it is NaN.

The rank is read from `torch.topk` of the scores: the top `max(ks) + 1` values are enough to know
r exactly whenever r <= max(ks), and to know r > max(ks) otherwise. Nothing of size [B, n_items]
leaves the device, and the caller's scores are never modified.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from t4r_core.vocab import N_RESERVED

METRIC_NAMES = ("ndcg", "recall", "mrr", "map", "precision")


def _check_ks(ks: Sequence[int]) -> list[int]:
    out: list[int] = []
    for k in ks:
        if int(k) != k or int(k) < 1:
            raise ValueError(f"ks must be positive integers, got {k!r}")
        if int(k) not in out:
            out.append(int(k))
    if not out:
        raise ValueError("ks must name at least one cut-off, e.g. ks=[10, 20]")
    return out


def _real_scores(scores: torch.Tensor, seen: torch.Tensor | None) -> torch.Tensor:
    """Scores of the real items only, [B, n_items - N_RESERVED]; seen items set to -inf (a copy)."""
    if scores.dim() != 2 or scores.shape[1] <= N_RESERVED:
        raise ValueError(
            f"scores must be [batch, n_items] with n_items > {N_RESERVED}, got {tuple(scores.shape)}"
        )
    real = scores[:, N_RESERVED:]
    if seen is None:
        return real
    n_real = real.shape[1]
    seen = seen.to(device=scores.device, dtype=torch.long)
    if seen.dim() != 2 or seen.shape[0] != scores.shape[0]:
        raise ValueError(f"seen must be [batch, seq_len], got {tuple(seen.shape)}")
    col = seen - N_RESERVED
    # padding, reserved and out-of-range ids go to a dummy column that is dropped
    col = torch.where((col >= 0) & (col < n_real), col, torch.full_like(col, n_real))
    mask = torch.zeros(real.shape[0], n_real + 1, dtype=torch.bool, device=scores.device)
    mask.scatter_(1, col, True)
    return real.masked_fill(mask[:, :n_real], float("-inf"))


def _ranks_and_topk(
    scores: torch.Tensor, targets: torch.Tensor, max_k: int, seen: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rank [B] float, inf for a miss beyond max_k; top values [B, K]; top item ids [B, K])."""
    real = _real_scores(scores, seen)
    n_real = real.shape[1]
    targets = targets.to(device=scores.device, dtype=torch.long).reshape(-1)
    if targets.shape[0] != real.shape[0]:
        raise ValueError(f"targets must be [batch={real.shape[0]}], got {tuple(targets.shape)}")
    t = targets - N_RESERVED
    valid = (t >= 0) & (t < n_real)
    t_score = real.gather(1, t.clamp(0, n_real - 1)[:, None])  # [B, 1]
    # one more than max_k tells "rank == max_k" from "rank > max_k"
    top_values, top_idx = torch.topk(real, min(max_k + 1, n_real), dim=1)
    rank = (top_values >= t_score).sum(dim=1).to(torch.float32)
    ok = valid & (t_score[:, 0] > float("-inf"))  # NaN compares False, so NaN is a miss too
    rank = torch.where(ok, rank, torch.full_like(rank, float("inf")))
    if n_real > max_k:
        # count == K means every kept value ties or beats the target: its rank is beyond max_k
        rank = torch.where(rank > max_k, torch.full_like(rank, float("inf")), rank)
    return rank, top_values, top_idx + N_RESERVED


def _metrics_from_rank(rank: torch.Tensor, ks: list[int]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    zero = torch.zeros_like(rank)
    for k in ks:
        hit = rank <= k
        hit_f = hit.to(rank.dtype)
        rr = torch.where(hit, 1.0 / rank, zero)
        out[f"ndcg@{k}"] = torch.where(hit, 1.0 / torch.log2(rank + 1.0), zero)
        out[f"recall@{k}"] = hit_f
        out[f"mrr@{k}"] = rr
        out[f"map@{k}"] = rr.clone()
        out[f"precision@{k}"] = hit_f / k
    return out


def ranking_metrics(
    scores: torch.Tensor,
    targets: torch.Tensor,
    ks: Sequence[int],
    seen: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-example metrics, each a float32 tensor [B] on the scores' device.

    scores: [B, n_items] (any float dtype; columns are item ids, reserved ids ignored).
    targets: [B] item ids. seen: [B, L] item ids of the prefix to exclude (-inf), padding 0 ignored;
    pass it only when the evaluation excludes already-seen items.
    Keys: "ndcg@k", "recall@k", "mrr@k", "map@k", "precision@k" for every k (see module doc).
    """
    ks = _check_ks(ks)
    rank, _, _ = _ranks_and_topk(scores, targets, max(ks), seen)
    return _metrics_from_rank(rank, ks)


class MetricAccumulator:
    """Sums per-example metrics over batches on the device; one host sync, in `compute()`.

    Optional extras, over every example seen so far:
      coverage@k   = fraction of the real items that appear in at least one top-k list;
      popularity@k = mean, over every recommended slot, of the item's train count divided by the
                     largest train count (0..1; needs `item_popularity`, counts of shape [n_items]).
    Slots whose score is -inf (fewer than k recommendable items) count as not recommended.
    Coverage is always reported; popularity only when `item_popularity` is given.
    """

    def __init__(
        self,
        ks: Sequence[int],
        n_items: int,
        item_popularity: torch.Tensor | Sequence[float] | None = None,
    ) -> None:
        self.ks = _check_ks(ks)
        self.n_items = int(n_items)
        if self.n_items <= N_RESERVED:
            raise ValueError(f"n_items counts the {N_RESERVED} reserved ids; got {n_items}")
        self.item_popularity = item_popularity
        self.reset()

    def reset(self) -> None:
        self.n_examples = 0
        self._device: torch.device | None = None
        self._sums: dict[str, torch.Tensor] = {}
        self._covered: dict[int, torch.Tensor] = {}
        self._pop_sum: dict[int, torch.Tensor] = {}
        self._pop_n: dict[int, torch.Tensor] = {}
        self._pop: torch.Tensor | None = None

    def _init_state(self, device: torch.device) -> None:
        self._device = device
        # float64 keeps sums over millions of examples exact enough; MPS has no float64
        acc = torch.float32 if device.type == "mps" else torch.float64
        n_real = self.n_items - N_RESERVED
        for k in self.ks:
            for name in METRIC_NAMES:
                self._sums[f"{name}@{k}"] = torch.zeros((), dtype=acc, device=device)
            self._covered[k] = torch.zeros(n_real + 1, dtype=torch.bool, device=device)
        if self.item_popularity is not None:
            pop = torch.as_tensor(self.item_popularity, dtype=acc, device=device).reshape(-1)
            if pop.shape[0] != self.n_items:
                raise ValueError(
                    f"item_popularity must have n_items={self.n_items} entries, got {pop.shape[0]}"
                )
            real = pop[N_RESERVED:].clamp(min=0)
            top = real.max()
            self._pop = torch.where(top > 0, real / top.clamp(min=1e-30), torch.zeros_like(real))
            for k in self.ks:
                self._pop_sum[k] = torch.zeros((), dtype=acc, device=device)
                self._pop_n[k] = torch.zeros((), dtype=acc, device=device)

    @torch.no_grad()
    def update(self, scores: torch.Tensor, targets: torch.Tensor, seen: torch.Tensor | None = None) -> None:
        if scores.shape[-1] != self.n_items:
            raise ValueError(
                f"scores have {scores.shape[-1]} columns, the accumulator expects n_items={self.n_items}"
            )
        if self._device is None:
            self._init_state(scores.device)
        elif scores.device != self._device:
            scores = scores.to(self._device)
        max_k = max(self.ks)
        rank, top_values, top_idx = _ranks_and_topk(scores, targets, max_k, seen)
        for key, values in _metrics_from_rank(rank, self.ks).items():
            self._sums[key] += values.sum(dtype=self._sums[key].dtype)
        n_real = self.n_items - N_RESERVED
        for k in self.ks:
            kk = min(k, top_idx.shape[1])
            real_idx = top_idx[:, :kk] - N_RESERVED
            rec = top_values[:, :kk] > float("-inf")
            flat = torch.where(rec, real_idx, torch.full_like(real_idx, n_real)).reshape(-1)
            self._covered[k].index_fill_(0, flat, True)
            if self._pop is not None:
                p = self._pop[real_idx.clamp(0, n_real - 1)]
                self._pop_sum[k] += torch.where(rec, p, torch.zeros_like(p)).sum()
                self._pop_n[k] += rec.sum()
        self.n_examples += int(scores.shape[0])

    def compute(self) -> dict[str, float]:
        """Means over all examples (NaN when none were seen), plus coverage@k / popularity@k."""
        if self._device is None or self.n_examples == 0:
            out = {f"{n}@{k}": float("nan") for k in self.ks for n in METRIC_NAMES}
            out.update({f"coverage@{k}": float("nan") for k in self.ks})
            if self.item_popularity is not None:
                out.update({f"popularity@{k}": float("nan") for k in self.ks})
            return out
        n_real = self.n_items - N_RESERVED
        names: list[str] = []
        values: list[torch.Tensor] = []
        for key, s in self._sums.items():
            names.append(key)
            values.append(s / self.n_examples)
        for k in self.ks:
            names.append(f"coverage@{k}")
            values.append(self._covered[k][:n_real].sum().to(values[0].dtype) / n_real)
        for k in self._pop_sum:
            names.append(f"popularity@{k}")
            values.append(self._pop_sum[k] / self._pop_n[k].clamp(min=1))
        host = torch.stack(values).cpu().tolist()  # the one host sync
        return dict(zip(names, (float(v) for v in host)))
