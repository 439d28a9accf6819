"""Baselines: hand-made sessions with a known best item, shapes, and V-SKNN against a slow loop."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch

from t4r_core.baselines import VSKNN, Pop, SPop, make_baseline
from t4r_core.errors import ConfigError
from t4r_core.sessions import Sessions
from t4r_core.vocab import N_RESERVED


def make_sessions(seqs: list[list[int]], start_time: list[float] | None = None) -> Sessions:
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in seqs], out=offsets[1:])
    items = np.array([i for s in seqs for i in s], dtype=np.int64)
    st = None if start_time is None else np.asarray(start_time, dtype=np.float64)
    return Sessions(offsets=offsets, items=items, start_time=st)


def pad(rows: list[list[int]], length: int | None = None) -> torch.Tensor:
    length = length or max(len(r) for r in rows)
    out = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def top1(scores: torch.Tensor) -> list[int]:
    return scores.argmax(dim=1).tolist()


# -- popularity ------------------------------------------------------------------------------------
def test_pop_recommends_the_most_frequent_item():
    train = make_sessions([[3, 4], [4, 5], [4, 6, 1], [5]])
    model = Pop().fit(train, n_items=8)
    assert model.n_items_ == 8
    s = model.score(pad([[3], [6, 7]]))
    assert s.shape == (2, 8) and s.dtype == torch.float32
    assert torch.isinf(s[:, :N_RESERVED]).all() and (s[:, :N_RESERVED] < 0).all()
    assert top1(s) == [4, 4]
    assert s[0, 5].item() == 2 and s[0, 7].item() == 0  # counts; UNK in train is ignored


def test_pop_infers_n_items_and_recommends():
    model = Pop().fit(make_sessions([[3, 4, 4], [5]]))
    assert model.n_items_ == 6
    ids, vals = model.recommend(pad([[3]]), k=2)
    assert ids.tolist() == [[4, 3]] or ids.tolist() == [[4, 5]]
    assert vals[0, 0].item() == 2
    ids, _ = model.recommend(pad([[4]]), k=1, exclude_seen=True)
    assert ids.tolist()[0][0] in (3, 5)


def test_spop_prefers_repeated_prefix_items_then_popularity():
    train = make_sessions([[3, 4], [4, 5], [4, 6], [5, 7]])  # pop: 4 > 5 > 3, 6, 7
    model = SPop().fit(train, n_items=9)
    s = model.score(pad([[7, 6, 7], [3], [8, 8, 1]]))
    assert top1(s) == [7, 3, 8]
    # row 0: 7 (twice) > 6 (once) > 4 (most popular elsewhere) > 5
    order = torch.argsort(s[0], descending=True)[:4].tolist()
    assert order == [7, 6, 4, 5]
    # an unseen prefix item is still ranked (count 2) but UNK never
    assert torch.isinf(s[2, 1]) and s[2, 8].item() == pytest.approx(2.0)
    assert torch.isinf(s[:, :N_RESERVED]).all()


# -- V-SKNN by hand --------------------------------------------------------------------------------
def test_vsknn_recommends_what_similar_sessions_continue_with():
    train = make_sessions([[3, 4, 5], [3, 4, 5], [3, 4, 6], [7, 8]])
    model = VSKNN(k=10, sample_size=10, remind=False).fit(train, n_items=10)
    s = model.score(pad([[3, 4]]))
    assert top1(s) == [5]
    assert s[0, 5] > s[0, 6] > 0 and s[0, 8].item() == 0
    assert s[0, 3].item() == 0 and s[0, 4].item() == 0  # remind=False drops the prefix items
    assert torch.isinf(s[0, :N_RESERVED]).all()


def test_vsknn_weights_recent_prefix_items_and_matches_the_formula():
    # prefix [3, 9]: session [9, 10] shares the last item, session [3, 11] the first one
    train = make_sessions([[9, 10], [3, 11]])
    model = VSKNN(k=10, sample_size=10, similarity="cosine").fit(train, n_items=12)
    s = model.score(pad([[3, 9]]))[0]
    norm = math.sqrt(0.5**2 + 1.0**2)  # div weights: 1/2 for item 3, 2/2 for item 9
    sim_a = 1.0 / (norm * math.sqrt(2))  # shares 9 (weight 1)
    sim_b = 0.5 / (norm * math.sqrt(2))  # shares 3 (weight 1/2)
    assert s[10].item() == pytest.approx(sim_a * 1.0, rel=1e-6)  # matched at step 1
    assert s[11].item() == pytest.approx(sim_b * 0.5, rel=1e-6)  # matched at step 2
    assert s[9].item() == pytest.approx(sim_a, rel=1e-6)  # remind=True keeps prefix items
    assert s[10] > s[11]


def test_vsknn_samples_the_most_recent_sessions():
    # item 3 occurs in two sessions; with sample_size=1 only the more recent one is a neighbour
    seqs = [[3, 20], [3, 21]]
    model = VSKNN(k=5, sample_size=1).fit(make_sessions(seqs), n_items=22)
    s = model.score(pad([[3]]))[0]
    assert s[21] > 0 and s[20].item() == 0
    # start times say the first session is the more recent one
    model = VSKNN(k=5, sample_size=1).fit(make_sessions(seqs, start_time=[200.0, 100.0]), n_items=22)
    s = model.score(pad([[3]]))[0]
    assert s[20] > 0 and s[21].item() == 0


def test_vsknn_keeps_the_k_most_similar_neighbours():
    # [3, 4, 10] shares two prefix items, [4, 11] one: with k=1 only item 10 is scored
    train = make_sessions([[3, 4, 10], [4, 11]])
    s = VSKNN(k=1, sample_size=0, similarity="dot").fit(train, n_items=12).score(pad([[3, 4]]))[0]
    assert s[10] > 0 and s[11].item() == 0


def test_vsknn_empty_and_unknown_prefixes_score_zero():
    model = VSKNN().fit(make_sessions([[3, 4], [4, 5]]), n_items=6)
    s = model.score(pad([[0, 0], [1, 0], [3, 0]]))
    assert (s[:2, N_RESERVED:] == 0).all() and torch.isinf(s[:, :N_RESERVED]).all()
    assert s[2, 4] > 0
    # ids beyond the fitted table are ignored rather than failing
    assert model.score(np.array([[3, 99]])).shape == (1, 6)


# -- V-SKNN: vectorised == slow reference loop -----------------------------------------------------
_W = {
    "div": lambda p, n: p / n,
    "same": lambda p, n: 1.0,
    "linear": lambda p, n: max(1.0 - 0.1 * (n - p), 0.0),
    "quadratic": lambda p, n: (p / n) ** 2,
    "log": lambda p, n: 1.0 / math.log10((n - p) + 1.7),
}
_WS = {
    "div": lambda s: 1.0 / s,
    "same": lambda s: 1.0,
    "linear": lambda s: max(1.0 - 0.1 * s, 0.0),
    "quadratic": lambda s: 1.0 / (s * s),
    "log": lambda s: 1.0 / math.log10(s + 1.7),
}


def slow_vsknn(
    train: list[list[int]], n_items: int, prefix: list[int], k, sample_size, similarity, weighting,
    weighting_score, remind,
) -> np.ndarray:
    """One prefix, plain Python in the manner of session-rec's vsknn.py; `train` oldest first."""
    events = [int(x) for x in prefix if x != 0]
    n = len(events)
    pos_map: dict[int, float] = {}
    for p, it in enumerate(events, start=1):
        if N_RESERVED <= it < n_items:
            pos_map[it] = _W[weighting](p, n)
    sets = [{i for i in s if N_RESERVED <= i < n_items} for s in train]
    cands = [j for j, s in enumerate(sets) if s & pos_map.keys()]
    if sample_size:
        cands = sorted(cands, reverse=True)[:sample_size]
    neighbours = []
    for j in cands:
        dot = sum(pos_map[i] for i in sets[j] & pos_map.keys())
        if similarity == "dot":
            sim = dot / len(pos_map)
        else:
            sim = dot / (math.sqrt(sum(v * v for v in pos_map.values())) * math.sqrt(len(sets[j])))
        sim = round(sim, 10)
        if sim > 0:
            neighbours.append((sim, j))
    neighbours.sort(key=lambda t: (-t[0], -t[1]))
    scores = np.zeros(n_items)
    for sim, j in neighbours[:k]:
        step = 1
        for it in reversed(events):
            if it in sets[j]:
                break
            step += 1
        for it in sets[j]:
            if not remind and it in pos_map:
                continue
            scores[it] += sim * _WS[weighting_score](step)
    scores[:N_RESERVED] = -np.inf
    return scores


@pytest.mark.parametrize(
    "params",
    [
        dict(k=5, sample_size=10, similarity="cosine", weighting="div", weighting_score="div", remind=True),
        dict(k=3, sample_size=0, similarity="dot", weighting="div", weighting_score="div", remind=False),
        dict(k=8, sample_size=6, similarity="cosine", weighting="linear", weighting_score="linear", remind=1),
        dict(k=4, sample_size=20, similarity="dot", weighting="quadratic", weighting_score="log", remind=1),
        dict(k=100, sample_size=500, similarity="cosine", weighting="log", weighting_score="quadratic", remind=0),
        dict(k=2, sample_size=3, similarity="cosine", weighting="same", weighting_score="same", remind=True),
    ],
)
def test_vsknn_vectorised_equals_slow_loop(params):
    rng = np.random.default_rng(zlib.crc32(repr(sorted(params.items())).encode()))
    n_items, n_sess = 35, 150
    seqs = [list(rng.integers(1, n_items, size=rng.integers(1, 9))) for _ in range(n_sess)]
    start = rng.permutation(n_sess).astype(float)  # recency is not the input order
    train = make_sessions(seqs, start_time=list(start))
    by_recency = [seqs[i] for i in np.argsort(start, kind="stable")]

    prefixes = [list(rng.integers(0, n_items + 3, size=rng.integers(1, 13))) for _ in range(40)]
    prefixes = [[int(x) if x != 0 else 1 for x in p] for p in prefixes]  # no padding inside
    prefixes[0] = [1]  # UNK only
    prefixes[1] = [n_items + 2, 5]  # out of the table, then a real item
    x = pad(prefixes, length=14)

    model = VSKNN(batch_size=7, **params).fit(train, n_items=n_items)
    fast = model.score(x).numpy()
    for i, p in enumerate(prefixes):
        slow = slow_vsknn(by_recency, n_items, p, **params)
        np.testing.assert_allclose(fast[i], slow, rtol=1e-5, atol=1e-7, err_msg=f"prefix {i}: {p}")


# -- shared verbs ----------------------------------------------------------------------------------
def test_evaluate_and_registry():
    train = make_sessions([[3, 4, 5], [3, 4, 5], [6, 7]])
    prefixes, targets = pad([[3, 4], [6]]), torch.tensor([5, 7])
    for name in ("POP", "spop", "VSKNN"):
        model = make_baseline(name).fit(train, n_items=8)
        out = model.evaluate(prefixes, targets, ks=[1, 5], batch_size=1,
                             item_popularity=model.popularity_)
        assert {"ndcg@1", "recall@5", "mrr@5", "map@5", "precision@1", "coverage@5", "popularity@5"} <= set(out)
    vs = VSKNN(sample_size=10).fit(train, n_items=8)
    assert vs.evaluate(prefixes, targets, ks=[1])["recall@1"] == 0.0  # remind: prefix items first
    assert VSKNN(remind=False).fit(train, 8).evaluate(prefixes, targets, ks=[1])["recall@1"] == 1.0
    with pytest.raises(ConfigError):
        make_baseline("gru4rec")
    with pytest.raises(ConfigError):
        VSKNN(similarity="jaccard").fit(train, 8)
    with pytest.raises(RuntimeError):
        Pop().score(prefixes)


def test_evaluate_baselines_on_a_split_matches_scoring_by_hand(tmp_path):
    """`evaluate_baselines` (the app's and notebooks' one call) = fitting and scoring by hand."""
    from t4r_core import DataConfig, prepare_data
    from t4r_core.evaluation import baseline_scorer, evaluate_baselines, evaluate_examples

    from .toydata import successor_log

    path = tmp_path / "toy.csv"
    successor_log(n_sessions=300).to_csv(path, index=False)
    data = prepare_data(path, DataConfig(split="random", test_fraction=0.2, val_fraction=0.0))
    res = evaluate_baselines(data, ("pop", "V-SKNN"), "test", "all_next", 10, (1, 10))
    assert list(res) == ["Pop", "V-SKNN"]
    ex = data.eval_examples("test", "all_next", 10)
    by_hand = evaluate_examples(baseline_scorer(VSKNN().fit(data.train, data.n_items)), ex, data.n_items, (1, 10),
                                item_popularity=data.item_popularity())
    assert res["V-SKNN"] == pytest.approx(by_hand)
    assert res["V-SKNN"]["recall@10"] > res["Pop"]["recall@10"]  # successors follow a rule: neighbours find it
    assert res["Pop"]["n_examples"] == len(ex["target"])
    assert evaluate_baselines(data, ("pop",), split="val") == {}
