"""Heads, losses, weight tying, session heads and the input block."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from t4r_core.config import ModelConfig
from t4r_core.errors import ConfigError, DataError
from t4r_core.features import auto_dim
from t4r_core.heads import NextItemHead
from t4r_core.model import SessionModel
from t4r_core.vocab import PAD

N_ITEMS = 30
L = 6


pytestmark = pytest.mark.usefixtures("one_thread")


def cfg(**kw) -> ModelConfig:
    base = dict(body="gpt2", masking="clm", d_model=16, n_layers=1, n_heads=2, max_len=L, n_negatives=8)
    return ModelConfig(**{**base, **kw})


def ids(B=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(3, N_ITEMS, (B, L), generator=g)
    x[torch.arange(L)[None, :] >= torch.tensor([6, 2, 3, 4, 5][:B])[:, None]] = PAD
    return x


POP = torch.cat([torch.zeros(3), torch.arange(1, N_ITEMS - 2, dtype=torch.float32)])


@pytest.mark.parametrize(
    "loss,sampling",
    [("ce", "uniform"), ("sampled_ce", "uniform"), ("sampled_ce", "in_batch"), ("sampled_ce", "popularity"),
     ("bce", "uniform"), ("bce", "in_batch"), ("gbce", "uniform"), ("gbce", "popularity")],
)
def test_every_loss_trains(loss, sampling):
    torch.manual_seed(0)
    model = SessionModel(cfg(loss=loss, negative_sampling=sampling), N_ITEMS, item_popularity=POP)
    out = model(item_id=ids())
    assert torch.isfinite(out.loss) and out.loss > 0
    out.loss.backward()
    assert model.inputs.item_embedding.weight.grad[3:].abs().sum() > 0


def test_popularity_sampling_needs_popularity():
    with pytest.raises(ConfigError, match="item_popularity"):
        SessionModel(cfg(loss="sampled_ce", negative_sampling="popularity"), N_ITEMS)


def _head(**kw):
    torch.manual_seed(0)
    emb = torch.nn.Embedding(N_ITEMS, 8)
    return NextItemHead(cfg(**kw), 8, emb, POP), emb


def test_full_ce_matches_a_hand_computation_and_never_scores_reserved_ids():
    head, emb = _head(temperature=0.5)
    h, t = torch.randn(4, 8), torch.tensor([3, 7, 10, 29])
    logits = (h @ emb.weight.T + head.bias) / 0.5
    expect = F.cross_entropy(logits[:, 3:], t - 3)
    assert torch.allclose(head.loss(h, t), expect, atol=1e-5)
    scores = head.scores(h)
    assert torch.isinf(scores[:, :3]).all() and torch.allclose(scores[:, 3:], logits[:, 3:], atol=1e-5)


def test_sampled_ce_with_popularity_applies_logq_and_removes_accidental_hits():
    head, emb = _head(loss="sampled_ce", negative_sampling="popularity")
    h, t = torch.randn(4, 8), torch.tensor([3, 7, 10, 29])
    torch.manual_seed(5)
    got = head.loss(h, t)
    torch.manual_seed(5)
    neg = torch.multinomial(head.sample_probs, 8, replacement=True)
    logq = head.log_q + math.log(8)
    pos = (h * emb.weight[t]).sum(-1) - logq[t]
    negl = h @ emb.weight[neg].T - logq[neg][None, :]
    negl = negl.masked_fill(t[:, None] == neg[None, :], float("-inf"))
    expect = F.cross_entropy(torch.cat([pos[:, None], negl], 1), torch.zeros(4, dtype=torch.long))
    assert torch.allclose(got, expect, atol=1e-5)
    assert (head.sample_probs[:3] == 0).all(), "reserved ids are never sampled"


def test_in_batch_negatives_skip_the_positive_itself():
    head, emb = _head(loss="sampled_ce", negative_sampling="in_batch")
    head.log_q = None  # plain in-batch softmax
    h, t = torch.randn(3, 8), torch.tensor([5, 5, 9])
    logits = h @ emb.weight[t].T
    same = t[:, None] == t[None, :]
    negl = logits.masked_fill(same, float("-inf"))
    expect = F.cross_entropy(torch.cat([logits.diagonal()[:, None], negl], 1), torch.zeros(3, dtype=torch.long))
    assert torch.allclose(head.loss(h, t), expect, atol=1e-5)


def test_gbce_reduces_to_bce_at_t0_and_weights_the_positive_otherwise():
    h, t = torch.randn(4, 8), torch.tensor([3, 7, 10, 29])
    losses = {}
    for name, gt in (("bce", 0.75), ("gbce", 0.0), ("gbce", 1.0)):
        head, _ = _head(loss=name, gbce_t=gt)
        torch.manual_seed(1)
        losses[(name, gt)] = head.loss(h, t)
    assert torch.allclose(losses[("bce", 0.75)], losses[("gbce", 0.0)], atol=1e-6)
    assert not torch.allclose(losses[("gbce", 1.0)], losses[("gbce", 0.0)])


def test_weight_tying_shares_the_table_and_projects_when_dims_differ(tmp_path):
    from safetensors.torch import load_file, save_file

    tied = SessionModel(cfg(item_dim=12), N_ITEMS)
    assert tied.head.weight() is tied.inputs.item_embedding.weight
    assert isinstance(tied.head.proj, torch.nn.Linear) and tied.head.proj.out_features == 12
    same = SessionModel(cfg(), N_ITEMS)
    assert isinstance(same.head.proj, torch.nn.Identity)
    untied = SessionModel(cfg(tie_weights=False), N_ITEMS)
    assert untied.head.weight() is not untied.inputs.item_embedding.weight
    assert untied.num_parameters() > same.num_parameters()
    save_file(tied.state_dict(), tmp_path / "w.safetensors")  # no tensor stored twice
    again = SessionModel(cfg(item_dim=12), N_ITEMS)
    again.load_state_dict(load_file(tmp_path / "w.safetensors"))
    x = ids()
    with torch.no_grad():
        before = tied.eval().predict_next({"item_id": x}).scores
        assert torch.equal(before, again.eval().predict_next({"item_id": x}).scores)


def test_temperature_scales_scores():
    x = ids()
    out = {}
    for temp in (1.0, 0.25):
        torch.manual_seed(0)
        out[temp] = SessionModel(cfg(temperature=temp), N_ITEMS).eval().predict_next({"item_id": x}).scores
    assert torch.allclose(out[0.25][:, 3:], 4 * out[1.0][:, 3:], atol=1e-4)


def test_label_smoothing_only_with_full_softmax():
    with pytest.raises(ConfigError, match="label_smoothing"):
        cfg(loss="bce", label_smoothing=0.1).validate()
    SessionModel(cfg(label_smoothing=0.1), N_ITEMS)


# ------------------------------------------------------------------------- session heads


@pytest.mark.parametrize(
    "masking,pooling",
    [("clm", "last"), ("clm", "mean"), ("mlm", "cls"), ("mlm", "mean"), ("plm", "last"), ("rtd", "cls")],
)
def test_session_heads_train_with_their_weights(masking, pooling):
    heads = [
        {"name": "ordered", "type": "binary", "target": "ordered", "pooling": pooling, "weight": 0.5},
        {"name": "spend", "type": "regression", "target": "spend", "pooling": pooling, "weight": 2.0},
    ]
    body = {"clm": "gpt2", "mlm": "bert", "plm": "xlnet", "rtd": "electra"}[masking]
    torch.manual_seed(0)
    model = SessionModel(cfg(body=body, masking=masking, session_heads=heads), N_ITEMS)
    b = {"item_id": ids(), "ordered": torch.tensor([1, 0, 1, 0, 1]), "spend": torch.randn(5)}
    torch.manual_seed(1)
    out = model(**b)
    parts = out.loss_parts
    assert {"item", "ordered", "spend"} <= set(parts)
    extra = parts.get("generator", 0) + model.config.rtd_weight * parts.get("rtd", 0)
    assert torch.allclose(out.loss, parts["item"] + extra + 0.5 * parts["ordered"] + 2.0 * parts["spend"], atol=1e-5)
    out.loss.backward()
    preds = model.eval().predict_sessions(b)
    assert preds["ordered"].shape == (5,) and ((preds["ordered"] >= 0) & (preds["ordered"] <= 1)).all()
    if pooling == "cls":
        shown = model.predict_next(b).input_ids
        assert (shown[:, 0] == -1).all() and shown.shape[1] == L + 1


def test_session_head_without_its_target_in_the_batch():
    heads = [{"name": "ordered", "type": "binary", "target": "ordered"}]
    model = SessionModel(cfg(session_heads=heads), N_ITEMS)
    with pytest.raises(DataError, match="ordered"):
        model(item_id=ids())


@pytest.mark.parametrize(
    "heads,match",
    [
        ([{"name": "a", "type": "binary", "target": "a", "pooling": "cls"}], "cls"),
        ([{"name": "a", "type": "ranking", "target": "a"}], "type"),
        ([{"name": "a", "type": "binary"}], "target"),
        ([{"name": "a", "type": "binary", "target": "a"}, {"name": "a", "type": "binary", "target": "b"}], "unique"),
        ([{"name": "a", "type": "binary", "target": "a", "pool": "last"}], "unknown"),
    ],
)
def test_bad_session_heads_are_refused(heads, match):
    with pytest.raises(ConfigError, match=match):
        cfg(session_heads=heads).validate()


# ---------------------------------------------------------------------------- input block


@pytest.mark.parametrize("aggregation", ["concat", "sum", "sum_times_item"])
@pytest.mark.parametrize("encoding", ["linear", "sohe"])
def test_side_features_are_used(aggregation, encoding):
    c = cfg(
        categorical_features={"category": None, "brand": 5}, continuous_features=["price"],
        continuous_encoding=encoding, aggregation=aggregation, input_dropout=0.0, dropout=0.0,
    )
    torch.manual_seed(0)
    model = SessionModel(c, N_ITEMS, cardinalities={"category": 8, "brand": 20}).eval()
    x = ids()
    b = {"item_id": x, "category": (x % 5) + 3 * (x > 0), "brand": (x % 17) + 3 * (x > 0),
         "price": torch.rand(x.shape) * (x > 0)}
    base = model.predict_next(b).scores
    cards = {"category": 8, "brand": 20}
    for name in ("category", "brand", "price"):
        changed = dict(b)
        if name == "price":
            changed[name] = b[name] + 1.0 * (x > 0)
        else:
            changed[name] = torch.where(x > 0, 3 + (b[name] - 2) % (cards[name] - 3), 0)
        assert not torch.allclose(model.predict_next(changed).scores, base), name
    out = model.train()(**b)
    out.loss.backward()
    assert model.inputs.categorical["brand"].weight.grad.abs().sum() > 0
    if aggregation == "concat":
        assert model.inputs.categorical["category"].embedding_dim == auto_dim(8)


def test_feature_errors_are_clear():
    with pytest.raises(ConfigError, match="cardinalit"):
        SessionModel(cfg(categorical_features={"category": None}), N_ITEMS)
    model = SessionModel(cfg(categorical_features={"category": None}), N_ITEMS, cardinalities={"category": 8})
    with pytest.raises(DataError, match="category"):
        model(item_id=ids())
    with pytest.raises(ConfigError, match="sum_times_item"):
        cfg(aggregation="sum_times_item").validate()


def test_layernorm_per_feature_only_when_merging():
    assert len(SessionModel(cfg(), N_ITEMS).inputs.norms) == 0
    m = SessionModel(cfg(continuous_features=["price"]), N_ITEMS)
    assert set(m.inputs.norms) == {"item_id", "price"}
    m = SessionModel(cfg(continuous_features=["price"], feature_layernorm=False), N_ITEMS)
    assert len(m.inputs.norms) == 0


def test_hf_trainer_runs_the_model(tmp_path):
    """transformers.Trainer calls model(**inputs) and reads outputs['loss']."""
    from transformers import Trainer, TrainingArguments

    class DS(torch.utils.data.Dataset):
        def __init__(self):
            self.x = ids(5)

        def __len__(self):
            return 20

        def __getitem__(self, i):
            return {"item_id": self.x[i % 5], "target": torch.tensor(3)}

    model = SessionModel(cfg(), N_ITEMS)
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=4, report_to=[],
        use_cpu=True, save_strategy="no", logging_steps=1, remove_unused_columns=False, disable_tqdm=True,
    )
    result = Trainer(model=model, args=args, train_dataset=DS()).train()
    assert math.isfinite(result.training_loss)
