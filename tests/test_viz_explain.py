"""`t4r_core.explain` (attention, rollout, saliency, embeddings, breakdowns, masking views, item
catalogue) and `t4r_core.viz` (figure builders), on small untrained models and hand-made arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from t4r_core import explain, viz
from t4r_core.config import ModelConfig
from t4r_core.errors import DataError
from t4r_core.evaluation import evaluate_examples, model_scorer
from t4r_core.model import SessionModel
from t4r_core.vocab import MASK, N_RESERVED, PAD

from .paths import SAMPLE_DATA

N_ITEMS = 40


def tiny(body: str = "gpt2", masking: str = "clm", **kw) -> SessionModel:
    torch.manual_seed(0)
    cfg = ModelConfig(body=body, masking=masking, d_model=16, n_heads=2, n_layers=2, max_len=8, dropout=0.0,
                      input_dropout=0.0, **kw)
    return SessionModel(cfg, N_ITEMS).eval()


SESSION = [5, 9, 12, 5, 20]


# ------------------------------------------------------------------------------ attention


def test_causal_attention_per_layer_and_head():
    att = explain.session_attention(tiny(), SESSION)
    assert att.attentions.shape == (2, 2, 5, 5)
    assert list(att.positions) == SESSION
    np.testing.assert_allclose(att.attentions.sum(-1), 1.0, atol=1e-5)
    assert np.allclose(np.triu(att.attentions, k=1), 0.0)  # gpt2: nothing to the right
    ids, scores = att.top(5)
    assert len(ids) == 5 and (ids >= N_RESERVED).all() and np.all(np.diff(scores) <= 0)


def test_masked_models_show_the_mask_slot_and_truncate_to_max_len():
    long = list(range(3, 3 + 12))  # longer than max_len=8
    att = explain.session_attention(tiny("bert", "mlm"), long)
    assert att.positions[-1] == MASK and len(att.positions) == 8  # 7 most recent items + the slot
    assert list(att.positions[:-1]) == long[-7:]
    np.testing.assert_allclose(att.attentions.sum(-1), 1.0, atol=1e-5)


def test_rnn_has_no_attention():
    att = explain.session_attention(tiny("gru"), SESSION)
    assert att.attentions is None and att.scores.shape == (N_ITEMS,)


def test_rollout_matches_the_definition():
    rng = np.random.default_rng(0)
    a = rng.random((3, 2, 4, 4))
    a /= a.sum(-1, keepdims=True)
    r = explain.attention_rollout(a, residual=0.5)
    expected = np.eye(4)
    for layer in a.mean(axis=1):
        m = 0.5 * np.eye(4) + 0.5 * layer
        expected = (m / m.sum(-1, keepdims=True)) @ expected
    np.testing.assert_allclose(r, expected)
    np.testing.assert_allclose(r.sum(-1), 1.0)
    ident = np.broadcast_to(np.eye(4), (2, 3, 4, 4))
    np.testing.assert_allclose(explain.attention_rollout(ident), np.eye(4))
    np.testing.assert_allclose(explain.head_average(a), a.mean(axis=1))


# ------------------------------------------------------------------------------ saliency


@pytest.mark.parametrize("body,masking", [("gru", "clm"), ("gpt2", "clm"), ("bert", "mlm")])
def test_gradient_saliency(body, masking):
    model = tiny(body, masking)
    sal = explain.gradient_saliency(model, SESSION)
    n = len(SESSION) + (masking != "clm")
    assert sal.grad_x_input.shape == (n,) and sal.grad_norm.shape == (n,)
    np.testing.assert_allclose(sal.grad_x_input.sum(), 1.0, rtol=1e-5)
    assert sal.target == int(np.argmax(explain.session_attention(model, SESSION).scores))
    assert all(p.grad is None for p in model.parameters())  # nothing left behind
    other = explain.gradient_saliency(model, SESSION, target=7)
    assert other.target == 7
    with pytest.raises(DataError):
        explain.gradient_saliency(model, SESSION, target=1)


def test_causal_saliency_ignores_nothing_but_future():
    sal = explain.gradient_saliency(tiny("gru"), SESSION)
    assert (sal.grad_norm > 0).all()  # every earlier item reaches the last state of an RNN


def test_empty_session_is_a_clear_error():
    with pytest.raises(DataError, match="empty"):
        explain.session_attention(tiny(), [PAD, PAD])


# ------------------------------------------------------------------------------ embeddings


def test_pca_projection_and_neighbours():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 8)) * np.array([10, 3, 1, 1, 1, 1, 1, 1])
    xy = explain.project_embeddings(x, "pca")
    assert xy.shape == (50, 2)
    np.testing.assert_allclose(xy, explain.project_embeddings(x, "pca"))  # deterministic, sign fixed
    assert xy[:, 0].var() > xy[:, 1].var()
    assert explain.project_embeddings(x[:30], "tsne").shape == (30, 2)
    with pytest.raises(DataError):
        explain.project_embeddings(x, "nope")

    emb = np.zeros((8, 2))
    emb[3:] = [[1, 0], [0.9, 0.1], [0, 1], [-1, 0], [0.7, 0.7]]
    emb[:3] = [[1, 0], [1, 0], [1, 0]]  # reserved rows, even if identical, are never neighbours
    ids, sims = explain.nearest_items(emb, 3, k=3)
    assert list(ids) == [4, 7, 5] and sims[0] > sims[1] > sims[2]
    with pytest.raises(DataError):
        explain.nearest_items(emb, 1)
    model = tiny()
    assert explain.item_embedding_matrix(model).shape == (N_ITEMS, 16)


# ------------------------------------------------------------------------------ breakdowns


def examples(n: int = 64, L: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lens = rng.integers(1, L + 1, n)
    ids = np.zeros((n, L), dtype=np.int64)
    for i, k in enumerate(lens):
        ids[i, :k] = rng.integers(N_RESERVED, N_ITEMS, k)
    return {"item_id": ids, "target": rng.integers(N_RESERVED, N_ITEMS, n), "prefix_len": lens}


def test_per_example_metrics_agree_with_the_reported_means():
    model, ex = tiny(), examples()
    per = explain.per_example_metrics(model_scorer(model), ex, N_ITEMS, ks=(10, 20), batch_size=16)
    means = evaluate_examples(model_scorer(model), ex, N_ITEMS, ks=(10, 20))
    assert len(per) == 64
    for key in ("ndcg@10", "recall@20", "mrr@20"):
        assert per[key].mean() == pytest.approx(means[key], abs=1e-6)


def test_breakdown_groups():
    groups = explain.length_groups(np.array([1, 2, 3, 4, 5, 6, 9, 10, 19, 20, 50]))
    assert list(groups.astype(str)) == ["1", "2", "3", "4-5", "4-5", "6-9", "6-9", "10-19", "10-19", "20+", "20+"]
    pop = np.zeros(N_RESERVED + 200)
    pop[N_RESERVED:] = np.arange(200, 0, -1)  # item 3 most popular
    pop[-1] = 0  # never clicked in training
    g = explain.popularity_groups(np.array([3, 10, 30, 150, N_RESERVED + 199, 1]), pop)
    assert list(g.astype(str)) == ["top 1% items", "top 1-10%", "top 10-50%", "bottom 50%",
                                   "not in training", "not in training"]
    per = pd.DataFrame({"target": [3, 3, 150], "prefix_len": [1, 1, 7], "recall@20": [1.0, 0.0, 1.0]})
    by_len = explain.breakdown(per, "length")
    assert by_len.to_dict("list") == {"group": ["1", "6-9"], "n": [2, 1], "recall@20": [0.5, 1.0]}
    assert list(explain.breakdown(per, "popularity", pop)["group"]) == ["top 1% items", "bottom 50%"]
    with pytest.raises(DataError):
        explain.breakdown(per, "popularity")


# ------------------------------------------------------------------------------ masking views


def test_masking_views_follow_the_training_functions():
    ids = [4, 8, 15, 16, 23, 42]
    views = explain.masking_views(ids, seed=3, mlm_probability=0.5, plm_probability=0.5, n_items=50)
    clm = views["clm"]
    assert clm.targets == ids[1:] + [0] and clm.roles == ["visible"] * 6
    assert np.array_equal(clm.visibility, np.tril(np.ones((6, 6), bool)))
    assert clm.prediction_inputs == ids and clm.prediction_slot == 5
    mlm = views["mlm"]
    for inp, tgt, role, x in zip(mlm.inputs, mlm.targets, mlm.roles, ids):
        assert (role == "masked") == (tgt != 0) == (inp == MASK)
        assert tgt in (0, x)
    assert mlm.prediction_inputs == ids + [MASK] and mlm.prediction_slot == 6
    plm = views["plm"]
    ranks = sorted(r for r in plm.order if r is not None)
    assert ranks == list(range(1, len(ranks) + 1)) and len(ranks) == sum(r == "hidden" for r in plm.roles)
    for j, role in enumerate(plm.roles):
        if role == "hidden":
            assert not plm.visibility[j, j]  # a predicted item never sees itself
    rtd = views["rtd"]
    assert set(rtd.roles) <= {"visible", "masked", "replaced"}
    for inp, role, x in zip(rtd.inputs, rtd.roles, ids):
        if role == "replaced":
            assert inp != x and inp >= N_RESERVED
    again = explain.masking_views(ids, seed=3, mlm_probability=0.5, plm_probability=0.5, n_items=50)
    assert again["mlm"].inputs == mlm.inputs and again["rtd"].inputs == rtd.inputs


# ------------------------------------------------------------------------------ item catalogue


def test_catalogue_next_to_the_data(tmp_path):
    found = explain.find_catalogue(SAMPLE_DATA / "shop_sessions.csv")
    assert found == SAMPLE_DATA / "shop_items.csv"
    cat = explain.load_catalogue(SAMPLE_DATA / "shop_sessions.csv")
    assert cat.labels(["SKU-00001", "SKU-99999"]) == ["Blue Brass Lantern", "SKU-99999"]
    assert cat.facts(["SKU-00001"]).iloc[0].to_dict() == {"name": "Blue Brass Lantern", "category": "Lighting",
                                                          "price": 71.99}
    assert explain.find_catalogue(SAMPLE_DATA / "diginetica_sample.csv") is None

    data = tmp_path / "clicks.csv.gz"
    data.write_bytes(b"")
    (tmp_path / "clicks_items.csv").write_text("ItemId,Title\n42,<b>Teapot</b>\n7,Mug\n")
    cat = explain.load_catalogue(data)
    assert cat.labels([42, 7.0, "7", 8]) == ["<b>Teapot</b>", "Mug", "Mug", "8"]  # ids compared as text
    with pytest.raises(DataError, match="item id column"):
        explain.ItemCatalogue.from_frame(pd.DataFrame({"x": [1]}))


# ------------------------------------------------------------------------------ viz


def test_safe_labels_never_carry_markup():
    assert viz.safe_label("<script>alert(1)</script>") == "\u2039script\u203aalert(1)\u2039/script\u203a"
    assert len(viz.safe_label("x" * 100, 10)) == 10
    assert viz.unique_labels(["a", "a"]) == ["1 \u00b7 a", "2 \u00b7 a"]
    fig = viz.attention_heatmap(np.eye(2), ["<img src=x onerror=alert(1)>", "ok"])
    assert "<" not in "".join(fig.data[0].x) and "<" not in "".join(fig.data[0].y)
    fig = viz.top_items_bar(["<a href='javascript:x'>go</a>"], [3])
    assert "<" not in fig.data[0].y[0]


def test_figure_builders_return_figures():
    rng = np.random.default_rng(0)
    counts = {"train": {"sessions": 10, "events": 50}, "val": {"sessions": 2, "events": 9}}
    table = viz.metrics_table({"run": {"ndcg@10": 0.2, "recall@10": 0.3}, "Pop": {"ndcg@10": 0.1}})
    assert list(table.index) == ["run", "Pop"] and table.columns[0] == "ndcg@5"
    assert np.isnan(table.loc["Pop", "recall@10"])
    per = pd.DataFrame({"group": ["1", "2", "1", "2"], "model": ["a", "a", "b", "b"], "n": [3, 4, 3, 4],
                        "recall@20": [0.1, 0.2, 0.3, 0.4]})
    summary = pd.DataFrame({"run": ["r1", "r2"], "body": ["gpt2", "gru"], "masking": ["clm", "clm"],
                            "d_model": [16, 16], "ndcg@10": [0.1, 0.2]})
    views = explain.masking_views([4, 5, 6, 7], seed=0)
    figs = {
        "bar": [viz.session_length_histogram(rng.integers(1, 30, 200), max_len=20),
                viz.top_items_bar(["a", "b"], [3, 1]),
                viz.split_counts_bar(counts), viz.metrics_bars(table), viz.runs_comparison(summary),
                viz.breakdown_chart(per), viz.saliency_bar(["a", "b"], [0.3, 0.7]),
                viz.activity_over_time(1.7e9 + rng.random(100) * 86400 * 10)],
        "scatter": [viz.popularity_long_tail(rng.zipf(1.5, 300)),
                    viz.training_curves(pd.DataFrame({"step": [1, 2], "loss": [3.0, 2.5]}),
                                        pd.DataFrame({"step": [2], "ndcg@10": [0.1]}))],
        "heatmap": [viz.attention_heatmap(rng.random((3, 3)), ["a", "b", "c"]),
                    viz.visibility_heatmap(views["clm"].visibility, ["a", "b", "c", "d"]),
                    viz.masking_diagram([{"name": "mlm", "roles": views["mlm"].roles, "text": list("abcd")}])],
        "scattergl": [viz.embedding_scatter(rng.random((20, 2)), [f"i{i}" for i in range(20)], list("ab") * 10,
                                            highlight=[0, 1]),
                      viz.embedding_scatter(rng.random((20, 2)), [f"i{i}" for i in range(20)],
                                            rng.random(20).tolist())],
    }
    for kind, fs in figs.items():
        for f in fs:
            assert isinstance(f, go.Figure)
            assert kind in {t.type for t in f.data}, (kind, f.layout.title.text)
    for empty in (viz.session_length_histogram([]), viz.popularity_long_tail([]), viz.activity_over_time([]),
                  viz.metrics_bars(pd.DataFrame()), viz.runs_comparison(pd.DataFrame())):
        assert isinstance(empty, go.Figure) and empty.layout.annotations


def test_masking_rows_label_what_each_scheme_feeds_and_predicts():
    from t4r_core.vocab import MASK

    views = explain.masking_views([4, 5, 6, 7, 8, 9], seed=1, mlm_probability=0.5)
    names = {4: "a", 5: "b", 6: "c", 7: "d", 8: "e", 9: "f"}
    clm = viz.masking_rows(views["clm"], lambda i: names.get(int(i), str(i)))
    assert [r["name"] for r in clm] == ["CLM · body input", "CLM · trained to predict", "CLM · at prediction time"]
    assert clm[0]["text"] == list("abcdef") and clm[1]["text"] == list("bcdef") + [""]  # next item, none after last
    mlm = viz.masking_rows(views["mlm"], lambda i: names.get(int(i), str(i)))
    masked = [j for j, r in enumerate(views["mlm"].roles) if r == "masked"]
    assert masked and all(mlm[0]["text"][j] == "[MASK]" for j in masked)
    assert all(mlm[1]["text"][j] == names[views["mlm"].targets[j]] for j in masked)
    assert mlm[2]["text"][views["mlm"].prediction_slot] == "[MASK]" == ("[MASK]" if MASK == 2 else None)
    rtd = viz.masking_rows(views["rtd"])
    assert all(t == "spot: replaced" for t, r in zip(rtd[1]["text"], views["rtd"].roles) if r == "replaced")
    plm = viz.masking_rows(views["plm"])
    assert any(t.startswith("#") for t in plm[0]["text"])  # targets carry their factorisation rank
