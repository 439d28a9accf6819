"""SessionModel = input block -> masking -> body -> head(s). Built from `ModelConfig` alone.

    model = SessionModel(ModelConfig(body="bert", masking="mlm"), n_items=len(vocab))
    out = model(**batch)              # training: out.loss, out.loss_parts (HF Trainer-ready)
    pred = model.predict_next(batch)  # pred.scores [B, n_items] for the item after each session

Training, per masking (see masking.py):
    clm  the body sees the session causally; every position predicts the next item
    mlm  hidden positions show the learned mask embedding; each predicts its own item
    plm  XLNet's query stream predicts the targets in a random factorisation order
    rtd  a small generator (same body type, `rtd_generator_scale` x narrower, sharing the item
         table) is trained as mlm and fills in part of the masked positions with items it
         samples; the body (the discriminator) learns to spot them - loss "rtd", weighted by
         `rtd_weight` - and to predict the items at the positions still masked - loss "item"

Prediction: clm reads the output at the last item; mlm/rtd/plm put a [MASK] slot after the
last item (shifting full sessions left by one) and read it there. The input is the prefix the
caller passes: it never contains the target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from .bodies import RNN_BODIES, BodySpec, build_body
from .config import ModelConfig
from .dropout import swap_dropout
from .errors import ConfigError, DataError
from .features import InputBlock
from .heads import NextItemHead, SessionHead
from .masking import (
    MaskedInputs,
    append_mask_slot,
    last_positions,
    mask_for,
    replace_tokens,
    shift_like,
)
from .vocab import MASK, N_RESERVED, PAD

CLS_ID = -1  # how a [CLS] slot shows in `NextItemPrediction.input_ids`


@dataclass
class SessionModelOutput(ModelOutput):
    loss: torch.Tensor | None = None
    loss_parts: dict[str, torch.Tensor] | None = None  # detached, unweighted: {"item": ..., "rtd": ...}


@dataclass
class NextItemPrediction:
    scores: torch.Tensor  # [B, n_items], reserved ids -inf
    attentions: list[torch.Tensor] | None = None  # [layers][B, heads, L', L'] or None
    input_ids: torch.Tensor | None = None  # [B, L'] what the body saw, aligned with attentions
    hidden: torch.Tensor | None = None  # [B, d_model] the vector that was scored


class Generator(nn.Module):
    """RTD's generator: a narrower copy of the body trained as mlm, tied to the item table."""

    def __init__(self, config: ModelConfig, n_positions: int, item_embedding: nn.Embedding, popularity):
        super().__init__()
        d, heads = config.d_model, config.n_heads
        d_gen = max(heads, round(config.rtd_generator_scale * d / heads) * heads)
        self.project = nn.Linear(d, d_gen) if d_gen != d else nn.Identity()
        self.body = build_body(BodySpec(
            config.body, d_gen, config.n_layers, heads, max(1, config.ff_dim * d_gen // d),
            config.dropout, n_positions, masking="mlm",
        ))
        self.head = NextItemHead(config, d_gen, item_embedding, popularity)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(x), padding).hidden


class ReplacedItemHead(nn.Module):
    """RTD's discriminator head: was the item shown at each position put there by the generator?

    logit = a(h) + <b(h), e(shown item)>: besides a plain read-out of the hidden state, the
    context at each position is compared with the embedding of the item shown there (from the
    shared item table), the comparison a detector most needs and an MLP makes only slowly.
    """

    def __init__(self, d_model: int, item_embedding: nn.Embedding):
        super().__init__()
        self._items = [item_embedding]  # shared, not registered twice
        self.out = nn.Linear(d_model, 1 + item_embedding.embedding_dim)

    def forward(self, hidden: torch.Tensor, shown: torch.Tensor) -> torch.Tensor:
        z = self.out(hidden)
        return z[..., 0] + (z[..., 1:] * self._items[0](shown)).sum(-1)


class SessionModel(nn.Module):
    def __init__(
        self,
        config: ModelConfig,
        n_items: int,
        cardinalities: dict[str, int] | None = None,
        item_popularity: torch.Tensor | None = None,
    ):
        super().__init__()
        config.validate()
        if n_items <= N_RESERVED:
            raise ConfigError(f"n_items={n_items} leaves no real item (ids 0..{N_RESERVED - 1} are reserved)")
        self.config = config
        self.n_items = n_items
        self.inputs = InputBlock(config, n_items, cardinalities)
        self.feature_names = [n for n in self.inputs.feature_names if n != "item_id"]
        self.use_cls = any(h.get("pooling", "last") == "cls" for h in config.session_heads)
        n_positions = config.max_len + int(self.use_cls)
        self.body = build_body(BodySpec(
            config.body, config.d_model, config.n_layers, config.n_heads, config.ff_dim,
            config.dropout, n_positions, masking=config.masking,
        ))
        self.head = NextItemHead(config, config.d_model, self.inputs.item_embedding, item_popularity)
        self.cls_embedding = nn.Parameter(torch.randn(config.d_model) * 0.02) if self.use_cls else None
        self.session_heads = nn.ModuleList(SessionHead(s, config.d_model) for s in config.session_heads)
        # expected item targets per training row, set by the trainer for length-grouped batches
        self.targets_per_row: float | None = None
        if config.masking == "rtd":
            self.generator = Generator(config, config.max_len, self.inputs.item_embedding, item_popularity)
            self.rtd_head = ReplacedItemHead(config.d_model, self.inputs.item_embedding)
        else:
            self.generator = self.rtd_head = None
        swap_dropout(self)  # the same dropout, drawn faster on CPU (dropout.py)

    # ------------------------------------------------------------------------- properties
    @property
    def has_attention(self) -> bool:
        return self.config.body not in RNN_BODIES

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def item_embeddings(self) -> torch.Tensor:
        """The item table [n_items, item_dim] (rows 0..2 are reserved)."""
        return self.inputs.item_embedding.weight

    # ---------------------------------------------------------------------------- training
    def forward(self, item_id: torch.Tensor, **batch) -> SessionModelOutput:
        cfg = self.config
        self._check_ids(item_id)
        m = self.training_mask(item_id)
        parts: dict[str, torch.Tensor] = {}
        loss = item_id.new_zeros((), dtype=torch.float32)
        if self.generator is not None:
            parts["generator"], m = self._generate(m, item_id, batch)
            loss = loss + parts["generator"]
        hidden, cls, _ = self.encode(m, batch)
        chosen = m.targets != PAD
        parts["item"] = self.head.loss(hidden[chosen], m.targets[chosen])
        weighted = parts["item"] * self._target_weight(chosen)
        # the gradient of the weighted loss, the value of the plain mean: the logged loss stays the
        # batch's mean cross-entropy instead of jumping with each batch's share of targets
        loss = loss + weighted + (parts["item"] - weighted).detach()
        if self.rtd_head is not None:
            judged = (m.padding & (m.inputs != MASK)).float()  # every shown item; [MASK]s are no question
            bce = F.binary_cross_entropy_with_logits(
                self.rtd_head(hidden, m.inputs).float(), m.replaced.float(), reduction="none"
            )
            parts["rtd"] = (bce * judged).sum() / judged.sum().clamp(min=1)
            loss = loss + cfg.rtd_weight * parts["rtd"]
        for head in self.session_heads:
            parts[head.name] = head.loss(head(hidden, m.padding, cls), batch)
            loss = loss + head.weight * parts[head.name]
        return SessionModelOutput(loss=loss, loss_parts={k: v.detach() for k, v in parts.items()})

    def training_mask(self, item_id: torch.Tensor, generator: torch.Generator | None = None) -> MaskedInputs:
        """The config's training-time masking of a batch (rtd: step 1, before the generator)."""
        c = self.config
        return mask_for(
            c.masking, item_id, mlm_probability=c.mlm_probability, plm_probability=c.plm_probability,
            plm_max_span=c.plm_max_span, rtd_replace_fraction=c.rtd_replace_fraction, generator=generator,
        )

    def _target_weight(self, chosen: torch.Tensor) -> torch.Tensor | float:
        """1, or with length-grouped batches this batch's targets / (rows x `targets_per_row`):
        the mean loss times it weighs every target alike, whichever batch it is in (batching.py)."""
        if self.targets_per_row is None:
            return 1.0
        return chosen.sum() / (chosen.shape[0] * self.targets_per_row)

    def corrupt(self, item_id: torch.Tensor, batch: dict | None = None) -> MaskedInputs:
        """RTD: a training-time discriminator input (masking + generator samples), for inspection."""
        if self.generator is None:
            raise ConfigError("corrupt needs a model trained with masking='rtd'")
        return self._generate(self.training_mask(item_id), item_id, batch or {})[1]

    def _generate(self, m: MaskedInputs, item_id: torch.Tensor, batch: dict):
        """RTD: train the generator on the mlm input, let it fill `m.to_replace`."""
        gen = self.generator
        h = gen(self.inputs(m.inputs, batch), m.padding)
        chosen = m.targets != PAD
        gen_loss = gen.head.loss(h[chosen], m.targets[chosen])
        with torch.no_grad():
            logits = gen.head.real_logits(h[m.to_replace]).float()
            gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp(1e-9, 1 - 1e-9)))
            picks = (logits + gumbel).argmax(-1) + N_RESERVED  # a sample from the generator's softmax
            sampled = torch.zeros_like(item_id).masked_scatter(m.to_replace, picks)
        return gen_loss, replace_tokens(m, item_id, sampled)

    def encode(self, m: MaskedInputs, batch: dict, output_attentions: bool = False):
        """Input block + body on given masked inputs: (hidden [B, L, d], cls [B, d] or None, attentions).

        `batch` supplies the side features. Public for tests and teaching: feed it any
        `MaskedInputs` from masking.py and look at what each position computes.
        """
        x, padding = self.inputs(m.inputs, batch), m.padding
        if self.use_cls:
            x = torch.cat([self.cls_embedding.to(x.dtype).expand(x.shape[0], 1, -1), x], dim=1)
            padding = F.pad(padding, (1, 0), value=True)
        out = self.body(
            x, padding, causal=m.causal, perm_mask=m.perm_mask, target_mapping=m.target_mapping,
            output_attentions=output_attentions,
        )
        hidden, cls = out.hidden, None
        if self.use_cls:
            hidden, cls = hidden[:, 1:], hidden[:, 0]
        return hidden, cls, out.attentions

    def replaced_logits(self, m: MaskedInputs, batch: dict | None = None) -> torch.Tensor:
        """RTD: the discriminator's logit [B, L] that each shown item was put there by a generator."""
        if self.rtd_head is None:
            raise ConfigError("replaced_logits needs a model trained with masking='rtd'")
        hidden, _, _ = self.encode(m, batch or {})
        return self.rtd_head(hidden, m.inputs)

    # -------------------------------------------------------------------------- prediction
    def predict_next(self, batch: dict, output_attentions: bool = False) -> NextItemPrediction:
        """Scores of every item for the position after each session's last item."""
        if output_attentions and not self.has_attention:
            output_attentions = False  # RNN bodies have no attention: attentions stays None
        m, read_at = self._eval_inputs(batch)
        hidden, _, atts = self.encode(m, self._eval_features(batch), output_attentions)
        if m.target_mapping is not None:  # XLNet plm: the query stream's single prediction
            h = hidden[:, 0]
        else:
            h = hidden[torch.arange(hidden.shape[0], device=hidden.device), read_at]
        shown = m.inputs
        if self.use_cls:
            shown = F.pad(shown, (1, 0), value=CLS_ID)
        return NextItemPrediction(self.head.scores(h), atts, shown, h)

    def predict_sessions(self, batch: dict) -> dict[str, torch.Tensor]:
        """Session heads on the unmasked sessions: {name: probability (binary) or value [B]}."""
        ids = batch["item_id"]
        m = MaskedInputs(ids, torch.zeros_like(ids), ids != PAD, causal=self.config.masking == "clm")
        if self.config.masking == "plm":  # heads were trained on XLNet's query stream: read it
            B, L = ids.shape
            m.perm_mask = ids.new_zeros((B, L, L), dtype=torch.float)  # hiding nothing
            m.target_mapping = torch.eye(L, device=ids.device).expand(B, L, L)
        hidden, cls, _ = self.encode(m, batch)
        return {h.name: h.predict(hidden, m.padding, cls) for h in self.session_heads}

    def _eval_inputs(self, batch: dict) -> tuple[MaskedInputs, torch.Tensor]:
        ids = batch["item_id"]
        self._check_ids(ids)
        if self.config.masking == "clm":
            return MaskedInputs(ids, torch.zeros_like(ids), ids != PAD, causal=True), last_positions(ids)
        shown, slot = append_mask_slot(ids, self.config.max_len)
        m = MaskedInputs(shown, torch.zeros_like(shown), shown != PAD)
        if self.config.masking == "plm":  # nobody sees the slot; the query stream predicts it
            at_slot = F.one_hot(slot, shown.shape[1]).float()
            m.perm_mask = at_slot[:, None, :].expand(-1, shown.shape[1], -1)
            m.target_mapping = at_slot[:, None, :]
        return m, slot

    def _eval_features(self, batch: dict) -> dict:
        if self.config.masking == "clm":
            return batch
        ids = batch["item_id"]
        return {n: shift_like(ids, batch[n], self.config.max_len) for n in self.feature_names if n in batch}

    def _check_ids(self, ids: torch.Tensor) -> None:
        if ids.dim() != 2:
            raise DataError(f"item_id must be [batch, seq_len], got shape {tuple(ids.shape)}")
        if ids.shape[1] > self.config.max_len:
            raise DataError(
                f"item_id has {ids.shape[1]} positions but model.max_len={self.config.max_len}; "
                "truncate sessions to their most recent max_len items"
            )
