"""Sequence bodies: [B, L, d] -> [B, L, d], plus attention weights [layers][B, heads, L, L] on request.

Transformer bodies are Hugging Face models built from a config with random weights and fed
through `inputs_embeds` (never forked). Every common knob maps onto each config:

    body        d_model      n_layers           n_heads              d_ff               dropout
    gpt2        n_embd       n_layer            n_head               n_inner            resid/embd/attn_pdrop
    bert,       hidden_size  num_hidden_layers  num_attention_heads  intermediate_size  hidden_dropout_prob,
    roberta,                                                                            attention_probs_dropout_prob
    electra,    (electra/albert: embedding_size = d_model, so no extra projection)
    albert      (albert shares one layer's weights across the n_layers: that is ALBERT)
    longformer  (+ attention_window = max_len rounded up to even: each item sees max_len/2 each side)
    xlnet       d_model      n_layer            n_head               d_inner            dropout
    llama       hidden_size  num_hidden_layers  num_attention_heads  intermediate_size  attention_dropout, plus
                                                (= key/value heads)                     residual dropout we add
                                                                                        GPT-2 style (see below)
    gru, lstm   hidden size  num_layers         -                    -                  between layers + output

Positions: GPT-2 and the BERT family add learned absolute position embeddings to
`inputs_embeds` themselves, XLNet uses relative positions, Llama rotary ones (RoPE), and the
RNNs read the sequence in order, so no body needs position embeddings from us.

Causal attention: GPT-2 and Llama are causal by construction; with right padding no real
position can see a pad, so they get no mask at all (the fast SDPA causal path). BERT-family
bodies trained with clm get a 4D additive causal mask (HF returns 4D masks as they are);
XLNet uses its own `attn_type="uni"`. Longformer takes only a padding mask (see config.py).

Attention weights need the eager implementation; bodies run SDPA otherwise and switch to
eager only for calls that ask for weights (`output_attentions=True`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from transformers import (
    AlbertConfig,
    AlbertModel,
    BertConfig,
    BertModel,
    ElectraConfig,
    ElectraModel,
    GPT2Config,
    GPT2Model,
    LlamaConfig,
    LlamaModel,
    LongformerConfig,
    LongformerModel,
    RobertaConfig,
    RobertaModel,
    XLNetConfig,
    XLNetModel,
)

from .errors import ConfigError

RNN_BODIES = ("gru", "lstm")
CAUSAL_BODIES = ("gpt2", "llama", "gru", "lstm")
EAGER_ONLY = ("xlnet", "longformer")  # no SDPA implementation in transformers
_UNUSED = {  # parameter-name fragments of features we never use
    "xlnet": ("r_s_bias", "seg_embed"),  # segment (token type) attention
    "longformer": ("_global",),  # global attention (we mark no global tokens)
}


@dataclass
class BodySpec:
    """The knobs of one body (the main body, or RTD's smaller generator)."""

    kind: str
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    dropout: float
    n_positions: int  # longest sequence the body will see
    masking: str = "clm"  # XLNet: clm -> attn_type="uni"; only plm uses its query stream


@dataclass
class BodyOutput:
    hidden: torch.Tensor  # [B, L, d], or [B, P, d] for XLNet with target_mapping
    attentions: list[torch.Tensor] | None = None  # [layers][B, heads, L, L]


class RNNBody(nn.Module):
    has_attention = False

    def __init__(self, spec: BodySpec):
        super().__init__()
        rnn = nn.GRU if spec.kind == "gru" else nn.LSTM
        drop_between = spec.dropout if spec.n_layers > 1 else 0.0
        self.rnn = rnn(spec.d_model, spec.d_model, spec.n_layers, batch_first=True, dropout=drop_between)
        self.dropout = nn.Dropout(spec.dropout)

    def forward(self, x, padding, *, causal=True, perm_mask=None, target_mapping=None, output_attentions=False):
        # right padding: the state at a real position never depends on the padding after it
        out, _ = self.rnn(x)
        return BodyOutput(self.dropout(out), None)


class HFBody(nn.Module):
    has_attention = True

    def __init__(self, spec: BodySpec):
        super().__init__()
        self.kind = spec.kind
        self.model = _build_hf(spec)
        self.model.get_input_embeddings().requires_grad_(False)  # we feed inputs_embeds
        self.uni = spec.kind == "xlnet" and spec.masking == "clm"
        if spec.kind == "xlnet" and spec.masking != "plm":
            self.model.mask_emb.requires_grad_(False)  # XLNet's query-stream start: plm only
        # parameters no forward pass of ours uses stay frozen, so every trainable one gets a
        # gradient (DDP without find_unused_parameters; honest parameter counts)
        for name, param in self.model.named_parameters():
            if any(part in name for part in _UNUSED.get(spec.kind, ())):
                param.requires_grad_(False)
        if spec.kind == "longformer":
            self.window = self.model.config.attention_window
            self.window = self.window if isinstance(self.window, int) else max(self.window)

    def forward(self, x, padding, *, causal=False, perm_mask=None, target_mapping=None, output_attentions=False):
        kwargs: dict = {"inputs_embeds": x}
        if self.kind == "xlnet":
            kwargs["use_mems"] = False
            if not self.uni:  # attn_type="uni" is causal: like GPT-2 it needs no padding mask
                kwargs["attention_mask"] = padding.to(x.dtype)  # (and HF's uni + mask path crashes)
            if perm_mask is not None:
                kwargs.update(perm_mask=perm_mask.to(x.dtype), target_mapping=target_mapping.to(x.dtype))
        elif self.kind in CAUSAL_BODIES:
            pass  # causal by construction; right padding -> real positions never see a pad
        elif causal:
            if self.kind == "longformer":
                raise ConfigError("longformer cannot be made causal; train it with mlm or rtd")
            L = x.shape[1]
            blocked = torch.full((L, L), torch.finfo(x.dtype).min, device=x.device, dtype=x.dtype)
            kwargs["attention_mask"] = blocked.triu(1)[None, None]  # [1, 1, L, L] additive
        else:
            kwargs["attention_mask"] = padding.long()
        if not output_attentions:
            return BodyOutput(self.model(**kwargs).last_hidden_state)
        with eager_attention(self.model):
            out = self.model(**kwargs, output_attentions=True)
        atts = [a[0] if isinstance(a, tuple) else a for a in out.attentions]  # XLNet: (content, query)
        if self.kind == "longformer":
            atts = [_dense_from_local(a, self.window // 2) for a in atts]
        return BodyOutput(out.last_hidden_state, atts)


def build_body(spec: BodySpec) -> nn.Module:
    return RNNBody(spec) if spec.kind in RNN_BODIES else HFBody(spec)


@contextlib.contextmanager
def eager_attention(model):
    """Run `model` with eager attention inside the block (SDPA cannot return weights)."""
    previous = model.config._attn_implementation
    if previous == "eager":
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


def _build_hf(s: BodySpec):
    d, nl, nh, ff, p = s.d_model, s.n_layers, s.n_heads, s.d_ff, s.dropout
    common = dict(vocab_size=1, pad_token_id=None, bos_token_id=None, eos_token_id=None)
    bert_like = dict(
        hidden_size=d,
        num_hidden_layers=nl,
        num_attention_heads=nh,
        intermediate_size=ff,
        hidden_dropout_prob=p,
        attention_probs_dropout_prob=p,
        max_position_embeddings=s.n_positions,
        type_vocab_size=1,
    )
    impl = "eager" if s.kind in EAGER_ONLY else "sdpa"
    if s.kind == "gpt2":
        cfg = GPT2Config(
            n_embd=d, n_layer=nl, n_head=nh, n_inner=ff, n_positions=s.n_positions,
            resid_pdrop=p, embd_pdrop=p, attn_pdrop=p, activation_function="gelu_pytorch_tanh", **common,
        )
        return _init(GPT2Model, cfg, impl)
    if s.kind == "bert":
        return _init(BertModel, BertConfig(**bert_like, **common), impl, add_pooling_layer=False)
    if s.kind == "electra":
        return _init(ElectraModel, ElectraConfig(embedding_size=d, **bert_like, **common), impl)
    if s.kind == "albert":
        cfg = AlbertConfig(embedding_size=d, num_hidden_groups=1, **bert_like, **common)
        return _init(AlbertModel, cfg, impl, add_pooling_layer=False)
    if s.kind == "roberta":
        # RoBERTa numbers positions from pad_token_id + 1, so its table needs 2 extra rows
        positions = {"max_position_embeddings": s.n_positions + 2}
        cfg = RobertaConfig(**{**bert_like, **positions}, **{**common, "pad_token_id": 0})
        return _init(RobertaModel, cfg, impl, add_pooling_layer=False)
    if s.kind == "longformer":
        window = s.n_positions + s.n_positions % 2  # even; inputs are padded to a multiple of it
        cfg = LongformerConfig(
            **{**bert_like, "max_position_embeddings": window + 2},
            **{**common, "pad_token_id": 0},
            attention_window=window, sep_token_id=None,
        )
        return _init(LongformerModel, cfg, impl, add_pooling_layer=False)
    if s.kind == "xlnet":
        cfg = XLNetConfig(
            d_model=d, n_layer=nl, n_head=nh, d_inner=ff, dropout=p,
            attn_type="uni" if s.masking == "clm" else "bi",
            mem_len=None, use_mems_train=False, use_mems_eval=False, **common,
        )
        return _init(XLNetModel, cfg, impl)
    if s.kind == "llama":
        cfg = LlamaConfig(
            hidden_size=d, num_hidden_layers=nl, num_attention_heads=nh, num_key_value_heads=nh,
            intermediate_size=ff, attention_dropout=p, max_position_embeddings=s.n_positions, **common,
        )
        model = _init(LlamaModel, cfg, impl)
        # Llama has no residual dropout; add it where GPT-2 has it (after attention and MLP outputs)
        for layer in model.layers:
            layer.self_attn.o_proj = nn.Sequential(layer.self_attn.o_proj, nn.Dropout(p))
            layer.mlp = nn.Sequential(layer.mlp, nn.Dropout(p))
        return model
    raise ConfigError(f"unknown body {s.kind!r}")


def _init(cls, cfg, impl: str, **kwargs):
    cfg._attn_implementation = impl
    return cls(cfg, **kwargs)


def _dense_from_local(att: torch.Tensor, half: int) -> torch.Tensor:
    """Longformer's sliding-window weights [B, H, L, 2*half+1] -> dense [B, H, L, L]."""
    L = att.shape[2]
    pos = torch.arange(L, device=att.device)
    offset = pos[None, :] - pos[:, None] + half  # column j of row i sits at i's window slot j - i + half
    inside = (offset >= 0) & (offset <= 2 * half)
    index = offset.clamp(0, 2 * half).expand(*att.shape[:2], L, L)
    return att[..., : 2 * half + 1].gather(-1, index) * inside
