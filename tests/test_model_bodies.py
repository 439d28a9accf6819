"""Every valid body x masking pair: it trains, it does not leak, it honours the knobs."""

from __future__ import annotations

import pytest
import torch

from t4r_core.config import BODIES, VALID_MASKING, ExperimentConfig, ModelConfig
from t4r_core.errors import ConfigError
from t4r_core.masking import mask_clm, mask_mlm, mask_plm
from t4r_core.model import SessionModel
from t4r_core.vocab import MASK, PAD

N_ITEMS = 40
L = 8
PAIRS = [(b, m) for b in BODIES for m in VALID_MASKING[b]]
CLM_BODIES = [b for b in BODIES if "clm" in VALID_MASKING[b]]
MLM_BODIES = [b for b in BODIES if "mlm" in VALID_MASKING[b]]
HF_BODIES = [b for b in BODIES if b not in ("gru", "lstm")]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(body: str, masking: str, **kw) -> ModelConfig:
    base = dict(body=body, masking=masking, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_len=L)
    return ModelConfig(**{**base, **kw})


def batch(B=6, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, N_ITEMS, (B, L), generator=g)
    lens = torch.tensor([L, 1, 2, 5, L - 1, 3][:B])
    ids[torch.arange(L)[None, :] >= lens[:, None]] = PAD
    return ids


def eval_model(cfg: ModelConfig, **kw) -> SessionModel:
    torch.manual_seed(0)
    return SessionModel(cfg, N_ITEMS, **kw).eval()


@pytest.mark.parametrize("body,masking", PAIRS)
def test_pair_trains_predicts_and_round_trips(body, masking):
    cfg = tiny(body, masking)
    torch.manual_seed(0)
    model = SessionModel(cfg, N_ITEMS)
    ids = batch()
    out = model(item_id=ids, target=torch.zeros(6, dtype=torch.long))  # unknown keys are ignored
    assert torch.isfinite(out.loss)
    assert "item" in out.loss_parts and (masking != "rtd" or {"rtd", "generator"} <= set(out.loss_parts))
    out.loss.backward()
    grad = model.inputs.item_embedding.weight.grad
    assert grad is not None and grad[3:].abs().sum() > 0, "gradients reach the item embedding"
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, f"trainable parameters without a gradient (DDP would fail): {unused}"
    model.eval()
    with torch.no_grad():
        pred = model.predict_next({"item_id": ids}, output_attentions=True)
    assert pred.scores.shape == (6, N_ITEMS)
    assert torch.isinf(pred.scores[:, :3]).all() and torch.isfinite(pred.scores[:, 3:]).all()
    if model.has_attention:
        assert len(pred.attentions) == cfg.n_layers
        Lp = pred.input_ids.shape[1]
        real = (pred.input_ids != PAD)[:, None, :].expand(6, cfg.n_heads, Lp)
        for a in pred.attentions:
            assert a.shape == (6, cfg.n_heads, Lp, Lp)
            assert torch.allclose(a.sum(-1)[real], torch.ones(6, cfg.n_heads, Lp)[real], atol=1e-4)
    else:
        assert pred.attentions is None
    text = ExperimentConfig(model=cfg).to_yaml()
    again = ExperimentConfig.from_text(text).model
    assert again == cfg
    assert SessionModel(again, N_ITEMS).num_parameters() == model.num_parameters()


@pytest.mark.parametrize("body", CLM_BODIES)
def test_clm_no_leak_from_the_future(body):
    """Changing items after position t leaves the output at t unchanged."""
    model = eval_model(tiny(body, "clm"))
    ids = batch()
    t = 2
    other = ids.clone()
    other[:, t + 1 :] = torch.where(other[:, t + 1 :] > 0, (other[:, t + 1 :] + 7) % (N_ITEMS - 3) + 3, 0)
    with torch.no_grad():
        h1, _, _ = model.encode(mask_clm(ids), {})
        h2, _, _ = model.encode(mask_clm(other), {})
    assert torch.allclose(h1[:, : t + 1], h2[:, : t + 1], atol=1e-5)
    assert not torch.allclose(h1[0, t + 1 :], h2[0, t + 1 :], atol=1e-5)


@pytest.mark.parametrize("body", CLM_BODIES)
def test_clm_prediction_reads_the_last_item_as_in_training(body):
    """predict_next(prefix) == the training-time output at the prefix's last position."""
    model = eval_model(tiny(body, "clm"))
    ids = batch()
    prefix = ids.clone()
    prefix[:, 4:] = PAD
    with torch.no_grad():
        pred = model.predict_next({"item_id": prefix, "target": ids[:, 4]})
        h, _, _ = model.encode(mask_clm(ids), {})
    lens = (prefix > 0).sum(1)
    expect = model.head.scores(h[torch.arange(6), lens - 1])
    assert torch.allclose(pred.scores[:, 3:], expect[:, 3:], atol=1e-4)


@pytest.mark.parametrize("body", MLM_BODIES)
def test_mlm_no_leak_at_masked_positions(body):
    """The output at a masked position ignores its true item and that item's side features."""
    cfg = tiny(body, "mlm", categorical_features={"cat": 4})
    model = eval_model(cfg, cardinalities={"cat": 10})
    ids = batch()
    cat = (ids % 7) + 3 * (ids > 0)
    m = mask_mlm(ids, 0.4, torch.Generator().manual_seed(0))
    masked = m.targets != PAD
    ids2 = torch.where(masked, (ids + 5) % (N_ITEMS - 3) + 3, ids)
    cat2 = torch.where(masked, (cat + 1) % 7 + 3, cat)
    m2 = mask_mlm(ids2, 0.4, torch.Generator().manual_seed(0))
    assert torch.equal(m2.targets != PAD, masked)
    with torch.no_grad():
        h1, _, _ = model.encode(m, {"cat": cat})
        h2, _, _ = model.encode(m2, {"cat": cat2})
    assert torch.allclose(h1[masked], h2[masked], atol=1e-5)
    assert torch.allclose(h1, h2, atol=1e-5), "nothing anywhere may depend on a hidden item"


def test_plm_no_leak_at_targets():
    """XLNet's query stream at a target does not see the target's item."""
    model = eval_model(tiny("xlnet", "plm"))
    ids = batch()
    m = mask_plm(ids, 0.4, 2, torch.Generator().manual_seed(0))
    tgt = m.targets != PAD
    with torch.no_grad():
        h1, _, _ = model.encode(m, {})
    # change one target's item at a time: its own prediction must not move
    for b in range(len(ids)):
        for t in torch.nonzero(tgt[b]).flatten().tolist():
            one = ids.clone()
            one[b, t] = (one[b, t] + 5) % (N_ITEMS - 3) + 3
            m3 = mask_plm(one, 0.4, 2, torch.Generator().manual_seed(0))
            assert torch.equal(m3.perm_mask, m.perm_mask)
            with torch.no_grad():
                h3, _, _ = model.encode(m3, {})
            assert torch.allclose(h1[b, t], h3[b, t], atol=1e-5)


@pytest.mark.parametrize("masking", ["mlm", "rtd", "plm"])
def test_slot_prediction_ignores_what_follows_and_extra_keys(masking):
    """Evaluation reads a [MASK] slot after the prefix; the caller's target key is never used."""
    model = eval_model(tiny("xlnet", masking))
    ids = batch()
    with torch.no_grad():
        a = model.predict_next({"item_id": ids, "target": torch.full((6,), 5)}).scores
        b = model.predict_next({"item_id": ids, "target": torch.full((6,), 9)}).scores
    assert torch.equal(a, b)
    shown = model.predict_next({"item_id": ids}).input_ids
    assert ((shown == MASK).sum(1) == 1).all()


@pytest.mark.parametrize("body", BODIES)
def test_every_body_knows_positions(body):
    """Reversing a session changes the prediction: order information reaches the body."""
    masking = VALID_MASKING[body][0] if body != "xlnet" else "mlm"
    model = eval_model(tiny(body, masking, dropout=0.0, input_dropout=0.0))
    with torch.no_grad():  # at init (std 0.02) attention is ~uniform, blind to everything:
        for p in list(model.body.parameters()) + [model.inputs.item_embedding.weight]:
            if p.dim() > 1:  # make it sharp; an order-blind body stays order-blind whatever
                p.normal_(0, 0.3)  # its weights
    ids = torch.tensor([[5, 9, 12, 20, 7, 30, 0, 0]])
    rev = torch.tensor([[30, 7, 20, 12, 9, 5, 0, 0]])
    with torch.no_grad():
        a = model.predict_next({"item_id": ids}).hidden
        b = model.predict_next({"item_id": rev}).hidden
    # an order-blind bidirectional body would give the same vector up to rounding (~1e-7)
    assert ((a - b).norm() / a.norm()).item() > 1e-3


@pytest.mark.parametrize("body", BODIES)
def test_dropout_reaches_the_body(body):
    masking = VALID_MASKING[body][0]
    ids = batch()
    m = mask_clm(ids) if masking == "clm" else mask_mlm(ids, 0.3, torch.Generator().manual_seed(0))
    outs = {}
    for p in (0.0, 0.5):
        torch.manual_seed(0)
        model = SessionModel(tiny(body, masking, dropout=p, input_dropout=0.0), N_ITEMS).train()
        h1, _, _ = model.encode(m, {})
        h2, _, _ = model.encode(m, {})
        outs[p] = torch.allclose(h1, h2)
    assert outs[0.0] and not outs[0.5]


_BERT_KNOBS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_dropout_prob")
KNOBS = {  # body -> (d_model, n_layers, n_heads, d_ff, dropout) attribute names in the HF config
    "gpt2": ("n_embd", "n_layer", "n_head", "n_inner", "resid_pdrop"),
    **{b: _BERT_KNOBS for b in ("bert", "electra", "albert", "roberta", "longformer")},
    "xlnet": ("d_model", "n_layer", "n_head", "d_inner", "dropout"),
    "llama": ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "attention_dropout"),
}


@pytest.mark.parametrize("body", HF_BODIES)
def test_knobs_reach_the_hf_config(body):
    cfg = tiny(body, VALID_MASKING[body][0], d_model=24, n_layers=3, n_heads=3, d_ff=40, dropout=0.25)
    hf = SessionModel(cfg, N_ITEMS).body.model.config
    assert tuple(getattr(hf, k) for k in KNOBS[body]) == (24, 3, 3, 40, 0.25)
    if body in ("bert", "electra", "albert", "roberta", "longformer"):
        assert hf.attention_probs_dropout_prob == 0.25
    if body == "gpt2":
        assert hf.attn_pdrop == hf.embd_pdrop == 0.25
    positions = {  # position capacity follows max_len (RoBERTa/Longformer count from pad id + 1)
        "gpt2": "n_positions", "bert": "max_position_embeddings", "electra": "max_position_embeddings",
        "albert": "max_position_embeddings", "llama": "max_position_embeddings",
    }
    if body in positions:
        assert getattr(hf, positions[body]) == L
    if body in ("roberta", "longformer"):
        assert hf.max_position_embeddings == L + 2


@pytest.mark.parametrize("body", ["gru", "lstm"])
def test_rnn_knobs(body):
    model = SessionModel(tiny(body, "clm", d_model=24, n_layers=3, dropout=0.25), N_ITEMS)
    rnn = model.body.rnn
    assert (rnn.hidden_size, rnn.num_layers, rnn.dropout) == (24, 3, 0.25)
    assert not model.has_attention


@pytest.mark.parametrize("body", ["gpt2", "bert", "llama", "albert"])
def test_attention_switch_is_per_call(body):
    """SDPA for speed, eager only for calls that want weights; both give the same scores."""
    model = eval_model(tiny(body, VALID_MASKING[body][0]))
    ids = batch()
    hf = model.body.model
    assert hf.config._attn_implementation == "sdpa"
    with torch.no_grad():
        fast = model.predict_next({"item_id": ids}).scores
        slow = model.predict_next({"item_id": ids}, output_attentions=True)
    assert hf.config._attn_implementation == "sdpa", "switched back after the call"
    assert torch.allclose(fast, slow.scores, atol=1e-4)


def test_longformer_attention_is_dense_and_local():
    model = eval_model(tiny("longformer", "mlm", max_len=8))
    with torch.no_grad():
        att = model.predict_next({"item_id": batch()}, output_attentions=True).attentions[0]
    # window 8 -> each position sees 4 neighbours each side, nothing further
    far = torch.ones(L, L).triu(5).bool() | torch.ones(L, L).tril(-5).bool()
    assert (att[..., far] == 0).all()


@pytest.mark.parametrize(
    "body,masking,hint",
    [
        ("gpt2", "mlm", "clm"),
        ("bert", "plm", "clm, mlm, rtd"),
        ("longformer", "clm", "mlm, rtd"),
        ("gru", "rtd", "clm"),
    ],
)
def test_invalid_pairs_are_refused_with_the_masks_that_fit(body, masking, hint):
    with pytest.raises(ConfigError, match=f"masks that fit {body}: {hint}"):
        SessionModel(tiny(body, masking), N_ITEMS)


def test_sequences_longer_than_max_len_are_refused():
    model = SessionModel(tiny("gpt2", "clm"), N_ITEMS)
    with pytest.raises(Exception, match="max_len"):
        model(item_id=torch.ones(2, L + 1, dtype=torch.long) + 3)
