"""Prediction heads: next item (scores over every item) and session-level binary / regression.

Next-item scores are `proj(h) . item_embedding + bias`, divided by `temperature`. Under weight
tying the item table is the input block's; `proj` is a linear map when the body's width differs
from the item embedding's, the identity otherwise. Only real items (ids >= 3) are ever scored
in training; at prediction the reserved ids get -inf, so padding/[UNK]/[MASK] are never shown.

Losses (h = hidden states at the positions that have a target):
    ce          full softmax cross-entropy over all items (SASRec+, "Turning Dross into Gold")
    sampled_ce  softmax over the positive + `n_negatives` sampled items shared by the batch:
                uniform, in_batch (the other targets), or popularity; popularity and in_batch
                (when item popularity is known) subtract log(expected count) from every
                candidate's logit (logQ correction); accidental hits are removed
    bce         -log s(pos) - sum log(1 - s(neg)) with the same negatives (original SASRec)
    gbce        gSASRec: the positive term raised to beta = a * (t * (1 - 1/a) + 1/a), with
                a = n_negatives / (n_real_items - 1) and t = `gbce_t` (calibrates overconfidence)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .errors import ConfigError, DataError
from .fused_ce import linear_cross_entropy
from .vocab import N_RESERVED


class NextItemHead(nn.Module):
    def __init__(
        self,
        config: ModelConfig,
        d_in: int,
        item_embedding: nn.Embedding,
        item_popularity: torch.Tensor | None = None,
    ):
        super().__init__()
        n_items, item_dim = item_embedding.weight.shape
        self.n_items = n_items
        self.loss_name = config.loss
        self.sampling = config.negative_sampling
        self.n_negatives = config.n_negatives
        self.gbce_t = config.gbce_t
        self.temperature = config.temperature
        self.label_smoothing = config.label_smoothing
        if config.tie_weights:
            self._tied = [item_embedding]  # a list, so the table is not registered (saved) twice
            self.proj = nn.Linear(d_in, item_dim) if d_in != item_dim else nn.Identity()
            self.output = None
        else:
            self._tied = []
            self.proj = nn.Identity()
            self.output = nn.Parameter(torch.randn(n_items, d_in) * 0.02)
        self.bias = nn.Parameter(torch.zeros(n_items))
        if item_popularity is not None:
            pop = torch.as_tensor(item_popularity, dtype=torch.float32).flatten()
            if pop.numel() != n_items:
                raise DataError(f"item_popularity has {pop.numel()} entries, expected n_items={n_items}")
            pop = pop.clamp(min=0)
            pop[:N_RESERVED] = 0
            if pop.sum() <= 0:
                raise DataError("item_popularity has no positive count for any real item")
            probs = pop / pop.sum()
            self.register_buffer("sample_probs", probs.clamp(min=1e-12) * (pop > 0), persistent=False)
            self.register_buffer("log_q", probs.clamp(min=1e-12).log(), persistent=False)
        else:
            self.sample_probs = self.log_q = None
        needs_pop = config.loss != "ce" and config.negative_sampling == "popularity"
        if needs_pop and self.log_q is None:
            raise ConfigError(
                "model.negative_sampling='popularity' needs item_popularity (counts per item id); "
                "pass it to SessionModel or choose 'uniform' / 'in_batch'"
            )

    # -- scoring ------------------------------------------------------------------------
    def weight(self) -> torch.Tensor:
        return self._tied[0].weight if self._tied else self.output

    def real_logits(self, h: torch.Tensor) -> torch.Tensor:
        """[N, d_in] -> [N, n_items - 3]: column k scores item id k + 3."""
        z = self.proj(h) / self.temperature  # scale the [N, d] side, not the [N, n_items] one
        return torch.addmm(self.bias[N_RESERVED:] / self.temperature, z, self.weight()[N_RESERVED:].T)

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        """[N, d_in] -> [N, n_items], reserved ids set to -inf (never recommended)."""
        real = self.real_logits(h)
        return F.pad(real, (N_RESERVED, 0), value=float("-inf"))

    def candidate_logits(self, h: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """[N, d_in] x candidate ids [C] -> [N, C] logits."""
        z = self.proj(h) / self.temperature
        return torch.addmm(self.bias[ids] / self.temperature, z, self.weight()[ids].T)

    # -- loss ---------------------------------------------------------------------------
    def loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean loss over N positions: h [N, d_in], targets [N] (real item ids)."""
        n = h.shape[0]
        if n == 0:  # a batch without a single target (e.g. only one-item sessions under clm)
            return h.sum() * 0.0
        if self.loss_name == "ce":  # = F.cross_entropy(self.real_logits(h), ...), without the [n, V] logits
            z = self.proj(h) / self.temperature
            return linear_cross_entropy(
                z, self.weight()[N_RESERVED:], self.bias[N_RESERVED:] / self.temperature,
                targets - N_RESERVED, self.label_smoothing,
            ) / n
        pos = (self.proj(h) * self.weight()[targets]).sum(-1) / self.temperature
        pos = pos + self.bias[targets] / self.temperature
        neg_ids = self._negatives(targets)
        neg = self.candidate_logits(h, neg_ids).float()
        hit = targets[:, None] == neg_ids[None, :]  # accidental hits (and, in-batch, the positive)
        pos = pos.float()
        if self.loss_name == "sampled_ce":
            if self.log_q is not None and self.sampling != "uniform":
                log_count = math.log(neg_ids.shape[0])  # expected count = count * q
                pos = pos - (self.log_q[targets] + log_count)
                neg = neg - (self.log_q[neg_ids] + log_count)[None, :]
            logits = torch.cat([pos[:, None], neg.masked_fill(hit, float("-inf"))], dim=1)
            return F.cross_entropy(logits, torch.zeros_like(targets), reduction="sum") / n
        neg_term = F.softplus(neg).masked_fill(hit, 0.0).sum(1)
        beta = 1.0
        if self.loss_name == "gbce":
            alpha = neg_ids.shape[0] / max(self.n_items - N_RESERVED - 1, 1)
            beta = alpha * (self.gbce_t * (1 - 1 / alpha) + 1 / alpha)
        return (beta * F.softplus(-pos) + neg_term).sum() / n

    def _negatives(self, targets: torch.Tensor) -> torch.Tensor:
        """Candidate negatives shared by the whole batch [C]."""
        if self.sampling == "in_batch":
            return targets
        if self.sampling == "popularity":
            return torch.multinomial(self.sample_probs, self.n_negatives, replacement=True)
        return torch.randint(N_RESERVED, self.n_items, (self.n_negatives,), device=targets.device)


# ---------------------------------------------------------------------------- session heads


def pool(hidden: torch.Tensor, padding: torch.Tensor, how: str, cls: torch.Tensor | None = None) -> torch.Tensor:
    """[B, L, d] -> [B, d]: the last real position, the mean over real positions, or the [CLS] slot."""
    if how == "cls":
        return cls
    if how == "mean":
        w = padding.to(hidden.dtype).unsqueeze(-1)
        return (hidden * w).sum(1) / w.sum(1).clamp(min=1)
    last = (padding.sum(1) - 1).clamp(min=0)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


class SessionHead(nn.Module):
    """One value per session: `binary` (a logit, trained with BCE) or `regression` (MSE)."""

    def __init__(self, spec: dict, d_model: int):
        super().__init__()
        self.name = spec["name"]
        self.kind = spec["type"]
        self.target = spec["target"]
        self.pooling = spec.get("pooling", "last")
        self.weight = float(spec.get("weight", 1.0))
        self.mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Linear(d_model, 1))

    def forward(self, hidden, padding, cls=None) -> torch.Tensor:
        """Raw output [B]: a logit for binary heads, the value for regression heads."""
        return self.mlp(pool(hidden, padding, self.pooling, cls)).squeeze(-1)

    def predict(self, hidden, padding, cls=None) -> torch.Tensor:
        out = self(hidden, padding, cls)
        return out.sigmoid() if self.kind == "binary" else out

    def loss(self, output: torch.Tensor, batch: dict) -> torch.Tensor:
        if self.target not in batch:
            raise DataError(
                f"session head {self.name!r} needs the target {self.target!r} in the batch "
                f"(a [batch] tensor); the batch has {sorted(batch)}"
            )
        y = batch[self.target].to(output.device, output.dtype).reshape(-1)
        if self.kind == "binary":
            return F.binary_cross_entropy_with_logits(output.float(), y.float())
        return F.mse_loss(output.float(), y.float())


__all__ = ["NextItemHead", "SessionHead", "pool"]
