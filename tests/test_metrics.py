"""Ranking metrics: hand-computed cases, ties, edge cases, and cross-checks against references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import ndcg_score

from t4r_core.metrics import MetricAccumulator, ranking_metrics
from t4r_core.vocab import N_RESERVED

NAMES = ("ndcg", "recall", "mrr", "map", "precision")


def _scores(real: list[list[float]], reserved: float = 0.0) -> torch.Tensor:
    """A [B, 3 + n_real] score matrix from the scores of the real items (ids 3, 4, ...)."""
    real_t = torch.tensor(real, dtype=torch.float32)
    return torch.cat([torch.full((real_t.shape[0], N_RESERVED), reserved), real_t], dim=1)


def _as_floats(m: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    return {k: v.tolist() for k, v in m.items()}


# -- hand-computed ---------------------------------------------------------------------------------
def test_hand_computed_rank_three():
    # real items 3..7 with scores; target 5 (0.3) is third behind 0.9 (id 6) and 0.5 (id 4)
    scores = _scores([[0.1, 0.5, 0.3, 0.9, 0.2]])
    m = ranking_metrics(scores, torch.tensor([5]), ks=[1, 3, 5])
    assert m["recall@1"].item() == 0 and m["ndcg@1"].item() == 0 and m["mrr@1"].item() == 0
    assert m["recall@3"].item() == 1
    assert m["ndcg@3"].item() == pytest.approx(1 / math.log2(4))
    assert m["mrr@3"].item() == pytest.approx(1 / 3)
    assert m["map@3"].item() == pytest.approx(1 / 3)
    assert m["precision@3"].item() == pytest.approx(1 / 3)
    assert m["precision@5"].item() == pytest.approx(1 / 5)
    assert set(m) == {f"{n}@{k}" for n in NAMES for k in (1, 3, 5)}
    for v in m.values():
        assert v.shape == (1,) and v.dtype == torch.float32


def test_first_place_and_batch():
    scores = _scores([[0.1, 0.5, 0.3], [0.7, 0.2, 0.1]])
    m = ranking_metrics(scores, torch.tensor([4, 5]), ks=[1, 2])
    assert m["recall@1"].tolist() == [1.0, 0.0]
    assert m["ndcg@1"].tolist() == [1.0, 0.0]
    assert m["mrr@2"].tolist() == [1.0, 0.0]  # row 2: target 5 is third
    assert m["recall@2"].tolist() == [1.0, 0.0]


def test_reserved_ids_never_ranked():
    # reserved columns score highest, yet the target (the best real item) is first
    scores = _scores([[0.1, 0.5, 0.3]], reserved=100.0)
    m = ranking_metrics(scores, torch.tensor([4]), ks=[1])
    assert m["recall@1"].item() == 1 and m["mrr@1"].item() == 1


def test_ties_are_pessimistic():
    # target 4 ties with id 3 for first place: rank 2
    scores = _scores([[0.9, 0.9, 0.1, 0.2]])
    m = ranking_metrics(scores, torch.tensor([4]), ks=[1, 2])
    assert m["recall@1"].item() == 0
    assert m["mrr@2"].item() == pytest.approx(0.5)
    # constant scores: the target is last, whatever its id
    flat = _scores([[1.0] * 6, [1.0] * 6])
    m = ranking_metrics(flat, torch.tensor([3, 8]), ks=[5, 6])
    assert m["recall@5"].tolist() == [0.0, 0.0]
    assert m["mrr@6"].tolist() == pytest.approx([1 / 6, 1 / 6])


def test_tie_at_the_topk_boundary():
    # max k = 2, target tied with 2 others at the top: rank 3, so a miss at k=2 (not a lucky hit)
    scores = _scores([[0.5, 0.5, 0.5, 0.1, 0.0]])
    m = ranking_metrics(scores, torch.tensor([3]), ks=[1, 2])
    assert m["recall@2"].item() == 0
    m = ranking_metrics(scores, torch.tensor([3]), ks=[3])
    assert m["recall@3"].item() == 1 and m["mrr@3"].item() == pytest.approx(1 / 3)


def test_k_larger_than_catalogue():
    scores = _scores([[0.1, 0.5, 0.3]])  # 3 real items
    m = ranking_metrics(scores, torch.tensor([3]), ks=[2, 10, 1000])
    assert m["recall@2"].item() == 0
    assert m["recall@10"].item() == 1 and m["recall@1000"].item() == 1
    assert m["mrr@10"].item() == pytest.approx(1 / 3)
    assert m["ndcg@10"].item() == pytest.approx(1 / math.log2(4))
    assert m["precision@10"].item() == pytest.approx(1 / 10)


@pytest.mark.parametrize("target", [0, 1, 2, 8, 100, -1])
def test_unknown_or_invalid_targets_are_misses(target):
    scores = _scores([[0.1, 0.5, 0.3, 0.2, 0.0]])
    m = ranking_metrics(scores, torch.tensor([target]), ks=[1, 100])
    assert all(v.item() == 0 for v in m.values())


def test_minus_inf_and_nan_target_is_a_miss():
    scores = _scores([[float("-inf"), 0.5, float("nan"), 0.2]])
    m = ranking_metrics(scores, torch.tensor([3]), ks=[100])
    assert m["recall@100"].item() == 0
    m = ranking_metrics(scores, torch.tensor([5]), ks=[100])
    assert m["recall@100"].item() == 0


def test_seen_items_are_excluded_and_input_untouched():
    scores = _scores([[0.9, 0.8, 0.3, 0.2], [0.9, 0.8, 0.3, 0.2]])
    before = scores.clone()
    seen = torch.tensor([[3, 4, 0, 0], [5, 3, 1, 0]])  # padding and UNK are ignored
    targets = torch.tensor([5, 5])
    m = ranking_metrics(scores, targets, ks=[1, 3], seen=seen)
    assert m["recall@1"].tolist() == [1.0, 0.0]  # row 1: 3 and 4 removed, 5 first
    assert m["recall@3"].tolist() == [1.0, 0.0]  # row 2: the target itself was seen
    assert torch.equal(scores, before)
    # without `seen` the target is third
    m = ranking_metrics(scores, targets, ks=[1, 3])
    assert m["mrr@3"].tolist() == pytest.approx([1 / 3, 1 / 3])


def test_bad_inputs():
    with pytest.raises(ValueError):
        ranking_metrics(_scores([[0.1, 0.2]]), torch.tensor([3]), ks=[0])
    with pytest.raises(ValueError):
        ranking_metrics(_scores([[0.1, 0.2]]), torch.tensor([3, 4]), ks=[1])
    with pytest.raises(ValueError):
        ranking_metrics(torch.zeros(4), torch.tensor([3]), ks=[1])


# -- cross-checks ----------------------------------------------------------------------------------
def _numpy_reference(real: np.ndarray, targets: np.ndarray, ks, seen=None) -> dict[str, np.ndarray]:
    """Plain NumPy: pessimistic rank = number of real items scoring >= the target (row loop)."""
    out = {f"{n}@{k}": np.zeros(len(targets)) for k in ks for n in NAMES}
    for i, t in enumerate(targets):
        row = real[i].astype(np.float64).copy()
        if seen is not None:
            for s in seen[i]:
                if s >= N_RESERVED:
                    row[s - N_RESERVED] = -np.inf
        ts = row[t - N_RESERVED]
        if not np.isfinite(ts):
            continue
        r = int(np.sum(row >= ts))
        for k in ks:
            if r <= k:
                out[f"ndcg@{k}"][i] = 1 / np.log2(r + 1)
                out[f"recall@{k}"][i] = 1
                out[f"mrr@{k}"][i] = 1 / r
                out[f"map@{k}"][i] = 1 / r
                out[f"precision@{k}"][i] = 1 / k
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_scores_match_sklearn_and_numpy(seed):
    rng = np.random.default_rng(seed)
    b, n_real, ks = 64, 50, [1, 5, 10, 20, 50, 80]
    real = rng.standard_normal((b, n_real))
    targets = rng.integers(N_RESERVED, N_RESERVED + n_real, size=b)
    scores = torch.cat([torch.zeros(b, N_RESERVED, dtype=torch.float64), torch.from_numpy(real)], 1)
    m = ranking_metrics(scores, torch.from_numpy(targets), ks)
    ref = _numpy_reference(real, targets, ks)
    for key in ref:
        np.testing.assert_allclose(m[key].numpy(), ref[key], atol=1e-6, err_msg=key)
    # scikit-learn's NDCG with one relevant item (no ties in continuous scores)
    onehot = np.zeros((b, n_real))
    onehot[np.arange(b), targets - N_RESERVED] = 1
    for k in ks:
        sk = [ndcg_score(onehot[i : i + 1], real[i : i + 1], k=k) for i in range(b)]
        np.testing.assert_allclose(m[f"ndcg@{k}"].numpy(), sk, atol=1e-6, err_msg=f"ndcg@{k}")
        assert m[f"ndcg@{k}"].mean().item() == pytest.approx(ndcg_score(onehot, real, k=k), abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_tied_scores_and_seen_match_numpy(seed):
    rng = np.random.default_rng(seed)
    b, n_real, ks = 80, 12, [1, 3, 5, 12, 30]
    real = rng.integers(0, 4, size=(b, n_real)).astype(np.float32)  # many ties
    targets = rng.integers(N_RESERVED, N_RESERVED + n_real, size=b)
    seen = rng.integers(0, N_RESERVED + n_real, size=(b, 4))
    scores = torch.cat([torch.full((b, N_RESERVED), 9.0), torch.from_numpy(real)], 1)
    for s in (None, seen):
        m = ranking_metrics(scores, torch.from_numpy(targets), ks, None if s is None else torch.from_numpy(s))
        ref = _numpy_reference(real, targets, ks, s)
        for key in ref:
            np.testing.assert_allclose(m[key].numpy(), ref[key], atol=1e-6, err_msg=key)


# -- accumulator -----------------------------------------------------------------------------------
def test_accumulator_means_over_batches():
    rng = np.random.default_rng(3)
    n_items, ks = N_RESERVED + 40, [5, 20]
    scores = torch.from_numpy(rng.standard_normal((100, n_items)).astype(np.float32))
    targets = torch.from_numpy(rng.integers(0, n_items, size=100))
    acc = MetricAccumulator(ks, n_items)
    for start in range(0, 100, 33):
        acc.update(scores[start : start + 33], targets[start : start + 33])
    out = acc.compute()
    full = ranking_metrics(scores, targets, ks)
    for key, v in full.items():
        assert out[key] == pytest.approx(v.double().mean().item(), abs=1e-6), key
    assert acc.n_examples == 100
    assert all(isinstance(v, float) for v in out.values())
    assert 0 < out["coverage@5"] <= out["coverage@20"] <= 1


def test_accumulator_coverage_and_popularity_by_hand():
    n_items = N_RESERVED + 4  # real items 3, 4, 5, 6
    pop = torch.tensor([0, 0, 0, 10.0, 5.0, 1.0, 0.0])
    acc = MetricAccumulator([1, 2], n_items, item_popularity=pop)
    neg = float("-inf")
    acc.update(_scores([[0.9, 0.5, 0.1, 0.0]]), torch.tensor([3]))  # top-2: 3, 4
    acc.update(_scores([[0.1, 0.2, 0.9, neg]]), torch.tensor([6]))  # top-2: 5, 4
    out = acc.compute()
    assert out["recall@1"] == pytest.approx(0.5)
    assert out["coverage@1"] == pytest.approx(2 / 4)  # 3 and 5
    assert out["coverage@2"] == pytest.approx(3 / 4)  # 3, 4, 5
    assert out["popularity@1"] == pytest.approx((1.0 + 0.1) / 2)
    assert out["popularity@2"] == pytest.approx((1.0 + 0.5 + 0.1 + 0.5) / 4)


def test_accumulator_skips_minus_inf_slots_and_seen():
    n_items = N_RESERVED + 3
    acc = MetricAccumulator([3], n_items, item_popularity=np.array([0, 0, 0, 4.0, 2.0, 1.0]))
    neg = float("-inf")
    acc.update(_scores([[0.5, neg, neg]]), torch.tensor([3]))  # only one recommendable item
    out = acc.compute()
    assert out["coverage@3"] == pytest.approx(1 / 3)
    assert out["popularity@3"] == pytest.approx(1.0)
    acc.update(_scores([[0.5, 0.4, 0.3]]), torch.tensor([4]), seen=torch.tensor([[3, 0]]))
    out = acc.compute()
    assert out["mrr@3"] == pytest.approx((1.0 + 1.0) / 2)  # with 3 excluded, 4 is first


def test_accumulator_empty_and_shape_errors():
    acc = MetricAccumulator([10], N_RESERVED + 5)
    assert math.isnan(acc.compute()["ndcg@10"])
    with pytest.raises(ValueError):
        acc.update(torch.zeros(2, N_RESERVED + 6), torch.tensor([3, 4]))
    with pytest.raises(ValueError):
        MetricAccumulator([10], N_RESERVED)


def test_update_never_reads_values_back_to_the_host():
    # meta tensors have no values: any .item()/.tolist()/data-dependent shape inside update fails
    acc = MetricAccumulator([5, 20], 50, item_popularity=torch.arange(50.0))
    scores = torch.randn(8, 50, device="meta")
    targets = torch.randint(0, 50, (8,), device="meta")
    acc.update(scores, targets, seen=torch.zeros(8, 3, dtype=torch.long, device="meta"))
    acc.update(scores, targets)
    assert acc.n_examples == 16
