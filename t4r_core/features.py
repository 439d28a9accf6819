"""Input block: one interaction (item id + side features) -> one `d_model` vector.

    item id          -> item embedding (shared with the next-item head under weight tying)
    categorical f    -> its own embedding, dim from the config or `auto_dim(cardinality)`
    continuous f     -> `linear` (scalar * w + b) or `sohe` (soft one-hot: a softmax over
                        learned bins mixes the bins' embeddings; the T4R paper's encoding)
    [optional]          layer-norm per feature, so features of different scales merge fairly
    merge            -> `concat` + linear projection to d_model, element-wise `sum`, or
                        `sum_times_item` (item embedding * sum of the side features)
    dropout

Positions whose item id is [MASK] get one learned mask embedding instead of the merged vector,
so side features at a hidden position cannot leak its item.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import ModelConfig
from .errors import ConfigError, DataError
from .vocab import MASK, PAD


def auto_dim(cardinality: int) -> int:
    """Rule-of-thumb embedding size of a categorical feature: ceil(2 * cardinality ** 0.25)."""
    return max(2, math.ceil(2 * cardinality**0.25))


class SoftOneHot(nn.Module):
    """Soft one-hot encoding of a scalar: softmax(x * w + b) over `bins` mixes `bins` embeddings."""

    def __init__(self, bins: int, dim: int):
        super().__init__()
        self.logits = nn.Linear(1, bins)
        self.table = nn.Parameter(torch.randn(bins, dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, L, dim]
        return self.logits(x.unsqueeze(-1)).softmax(-1) @ self.table


class InputBlock(nn.Module):
    def __init__(self, config: ModelConfig, n_items: int, cardinalities: dict[str, int] | None = None):
        super().__init__()
        cardinalities = dict(cardinalities or {})
        d, merge = config.d_model, config.aggregation
        missing = [f for f in config.categorical_features if f not in cardinalities]
        if missing:
            raise ConfigError(
                f"categorical feature(s) {missing} have no cardinality; pass "
                f"cardinalities={{name: table size}} (known: {sorted(cardinalities)})"
            )
        self.item_dim = config.item_dim or d
        self.item_embedding = nn.Embedding(n_items, self.item_dim, padding_idx=PAD)
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        with torch.no_grad():
            self.item_embedding.weight[PAD].zero_()
        self.categorical = nn.ModuleDict()
        self.continuous = nn.ModuleDict()
        dims = {"item_id": self.item_dim}
        for name, dim in config.categorical_features.items():
            dim = dim or (auto_dim(cardinalities[name]) if merge == "concat" else d)
            self.categorical[name] = nn.Embedding(cardinalities[name], dim, padding_idx=PAD)
            dims[name] = dim
        cont_dim = max(4, d // 8) if merge == "concat" else d
        for name in config.continuous_features:
            self.continuous[name] = (
                SoftOneHot(config.sohe_bins, cont_dim)
                if config.continuous_encoding == "sohe"
                else nn.Linear(1, cont_dim)
            )
            dims[name] = cont_dim
        self.feature_names = list(dims)
        self.merge = merge
        # layer-norm per feature only makes sense when there is something to merge
        use_ln = config.feature_layernorm and len(dims) > 1
        self.norms = nn.ModuleDict({n: nn.LayerNorm(k) for n, k in dims.items()} if use_ln else {})
        if merge == "concat":
            total = sum(dims.values())
            self.project = nn.Identity() if total == d and len(dims) == 1 else nn.Linear(total, d)
        else:  # each feature brought to d_model, then summed
            self.project = nn.ModuleDict({n: nn.Linear(k, d) for n, k in dims.items() if k != d})
        self.mask_embedding = nn.Parameter(torch.randn(d) * 0.02)
        self.dropout = nn.Dropout(config.input_dropout)

    def forward(self, item_ids: torch.Tensor, features: dict[str, torch.Tensor]) -> torch.Tensor:
        """item_ids [B, L] (may hold [MASK]); features: the batch (extra keys ignored) -> [B, L, d]."""
        parts = {"item_id": self.item_embedding(item_ids)}
        for name, emb in self.categorical.items():
            parts[name] = emb(_feature(features, name, item_ids.shape))
        for name, enc in self.continuous.items():
            x = _feature(features, name, item_ids.shape).to(parts["item_id"].dtype)
            parts[name] = enc(x.unsqueeze(-1)) if isinstance(enc, nn.Linear) else enc(x)
        if self.norms:
            parts = {n: self.norms[n](v) for n, v in parts.items()}
        if self.merge == "concat":
            x = self.project(torch.cat([parts[n] for n in self.feature_names], dim=-1))
        else:
            parts = {n: self.project[n](v) if n in self.project else v for n, v in parts.items()}
            item = parts.pop("item_id")
            side = torch.stack(list(parts.values())).sum(0) if parts else torch.zeros_like(item)
            x = item * side if self.merge == "sum_times_item" else item + side
        x = torch.where((item_ids == MASK).unsqueeze(-1), self.mask_embedding.to(x.dtype), x)
        return self.dropout(x)


def _feature(features: dict[str, torch.Tensor], name: str, shape: torch.Size) -> torch.Tensor:
    if name not in features:
        raise DataError(f"the batch has no feature {name!r} that the model was configured with")
    x = features[name]
    if x.shape != shape:
        raise DataError(f"feature {name!r} has shape {tuple(x.shape)}, expected {tuple(shape)} like item_id")
    return x
