"""Length-grouped batches (batching.py): what the sampler yields, that trimming is exact, that
every target keeps its weight, and that the trainer uses them."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from t4r_core import DataConfig, ExperimentConfig, prepare_data
from t4r_core.batching import LengthGroupedSampler, length_grouped_order, targets_per_row, trim_padding
from t4r_core.config import ModelConfig
from t4r_core.masking import mask_for
from t4r_core.model import SessionModel
from t4r_core.trainer import RecTrainer, train

from .toydata import successor_log


def _lengths(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    return np.minimum(rng.geometric(0.2, n) + 1, 20)  # many short sessions, a few long: real logs look so


def _padded(lengths, n_items=50, width=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, n_items, (len(lengths), width), generator=g)
    ids[torch.arange(width)[None, :] >= torch.as_tensor(lengths)[:, None]] = 0
    return ids


def test_order_is_a_permutation_of_similar_length_batches_in_random_order():
    lengths, B = _lengths(), 64
    order = length_grouped_order(lengths, B, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(len(lengths)))
    widths = np.array([lengths[order[i:i + B]].max() for i in range(0, len(order), B)])
    rand = np.random.default_rng(1).permutation(len(lengths))
    rand_widths = np.array([lengths[rand[i:i + B]].max() for i in range(0, len(rand), B)])
    assert widths.sum() < 0.5 * rand_widths.sum()  # far fewer padded positions than random batches
    full = widths[:-1]  # the short last batch comes last; the full ones are shuffled, not sorted
    assert not (np.all(np.diff(full) <= 0) or np.all(np.diff(full) >= 0))
    assert len(order) % B != 0 and len(order[(len(order) // B) * B:]) == len(order) % B


def test_sampler_is_reproducible_per_epoch_and_differs_between_epochs():
    lengths = _lengths(1000)
    s = LengthGroupedSampler(lengths, 32, seed=7)
    s.set_epoch(0)
    a = list(s)
    s.set_epoch(1)
    b = list(s)
    s2 = LengthGroupedSampler(lengths, 32, seed=7)
    s2.set_epoch(1)
    assert list(s2) == b and a != b and len(s) == 1000


def test_trim_padding_cuts_every_sequence_tensor_to_the_longest_row():
    ids = torch.tensor([[5, 6, 0, 0, 0], [7, 0, 0, 0, 0]])
    batch = {"item_id": ids, "price": torch.rand(2, 5), "label": torch.tensor([1.0, 0.0])}
    out = trim_padding(batch)
    assert out["item_id"].tolist() == [[5, 6], [7, 0]]
    assert torch.equal(out["price"], batch["price"][:, :2]) and torch.equal(out["label"], batch["label"])
    full = {"item_id": torch.tensor([[5, 6, 7]])}
    assert trim_padding(full) is full


@pytest.mark.parametrize("body", ["gpt2", "bert", "llama", "gru"])
def test_trimmed_batch_gives_the_same_loss_and_predictions(body):
    """Right padding keeps every position where it was: cutting all-padding columns changes nothing."""
    masking = "mlm" if body == "bert" else "clm"
    cfg = ModelConfig(body=body, masking=masking, d_model=16, n_heads=2, n_layers=2, max_len=12, dropout=0.0,
                      input_dropout=0.0)
    torch.manual_seed(0)
    model = SessionModel(cfg, 40).eval()
    ids = _padded(np.array([3, 5, 2, 7]), 40, 12)
    trimmed = trim_padding({"item_id": ids})["item_id"]
    assert trimmed.shape[1] == 7
    with torch.no_grad():
        if masking == "clm":  # the training loss (mlm draws its masks from the shape, so only clm compares)
            assert torch.allclose(model(item_id=ids).loss, model(item_id=trimmed).loss, atol=1e-5)
        a = model.predict_next({"item_id": ids}).scores
        b = model.predict_next({"item_id": trimmed}).scores
    assert torch.allclose(a, b, atol=1e-4)


def test_target_weight_makes_every_target_count_alike():
    """Two batches of very different lengths, weighted, give the gradient of their union; the
    loss value stays each batch's plain mean (what the training curve shows)."""
    cfg = ModelConfig(body="gpt2", masking="clm", d_model=16, n_heads=2, n_layers=1, max_len=10, dropout=0.0,
                      input_dropout=0.0)
    torch.manual_seed(0)
    model = SessionModel(cfg, 30).eval()
    short, long_ = _padded(np.full(8, 2), 30, 10, seed=1), _padded(np.full(8, 10), 30, 10, seed=2)
    union = torch.cat([short, long_])

    def grad(*batches):
        model.zero_grad()
        values = [model(item_id=b).loss for b in batches]
        (sum(values) / len(values)).backward()
        return model.head.bias.grad.clone(), [v.item() for v in values]

    g_union, _ = grad(union)
    g_plain, _ = grad(short, long_)  # unweighted: the short batch's single targets weigh 9x
    model.targets_per_row = targets_per_row(model.training_mask, union)
    assert model.targets_per_row == pytest.approx((1 + 9) / 2)
    g_weighted, values = grad(short, long_)
    assert torch.allclose(g_weighted, g_union, atol=1e-6)
    assert not torch.allclose(g_plain, g_union, atol=1e-4)
    model.targets_per_row = None
    with torch.no_grad():
        assert values == pytest.approx([model(item_id=short).loss.item(), model(item_id=long_).loss.item()])


MLM_6 = 0.2 * 6 + 0.8**6  # 20% of six items, plus the last item of sessions where none was drawn


@pytest.mark.parametrize("masking,expect", [("mlm", MLM_6), ("rtd", MLM_6 * 0.5), ("clm", 5.0)])
def test_targets_per_row_follows_the_masking(masking, expect):
    ids = _padded(np.full(4000, 6), 50, 10)
    mask = partial(mask_for, masking, mlm_probability=0.2, rtd_replace_fraction=0.5)
    assert targets_per_row(mask, ids) == pytest.approx(expect, rel=0.05)


@pytest.mark.parametrize("grouped", [True, False])
def test_trainer_uses_grouped_trimmed_batches(grouped, tmp_path, monkeypatch):
    df = successor_log(n_sessions=400, length=8)
    df = df[df.groupby("session_id").cumcount() < (df["session_id"] % 7) + 2]  # lengths 2..8
    data = prepare_data(df, DataConfig())
    widths: list[int] = []
    orig = SessionModel.forward

    def spy(self, item_id, **batch):
        widths.append(item_id.shape[1])
        return orig(self, item_id, **batch)

    monkeypatch.setattr(SessionModel, "forward", spy)
    samplers = []
    orig_sampler = RecTrainer._get_train_sampler

    def spy_sampler(self, *a, **k):
        samplers.append(orig_sampler(self, *a, **k))
        return samplers[-1]

    monkeypatch.setattr(RecTrainer, "_get_train_sampler", spy_sampler)
    cfg = ExperimentConfig().with_overrides([
        "model.d_model=16", "model.n_heads=2", "model.n_layers=1", "model.max_len=10", "train.batch_size=16",
        "train.epochs=1", f"train.group_by_length={str(grouped).lower()}", "train.save_checkpoints=false",
    ])
    run = train(cfg, data, tmp_path / "run")
    assert run.config.train.group_by_length is grouped
    assert isinstance(samplers[0], LengthGroupedSampler) is grouped
    assert max(widths) <= 8  # trimmed to the longest session (8), not max_len (10), either way
    if grouped:  # similar lengths together: many batches narrower than the longest session
        assert np.mean(widths) < 6


def test_no_per_step_host_sync_from_the_loss_filter(tmp_path):
    """HF's logging_nan_inf_filter turns the loss into a Python bool every step (a GPU sync)."""
    from t4r_core.trainer import training_arguments

    args = training_arguments(ExperimentConfig(), tmp_path, has_val=False)
    assert args.logging_nan_inf_filter is False
