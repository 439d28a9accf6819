"""Learnability: on sessions that follow a deterministic next-item rule every preset reaches
near-perfect Recall@1, and rtd's discriminator really learns.

The rule: a fixed random permutation `succ` of the items; a session starts anywhere and each
next item is `succ(previous)`. The test predicts the item after held-out prefixes. Training
stops as soon as the target is met; the budget is what it may take at most.
"""

from __future__ import annotations

import pytest
import torch

from t4r_core.config import replace
from t4r_core.masking import mask_rtd, replace_tokens
from t4r_core.model import SessionModel
from t4r_core.presets import get_preset
from t4r_core.vocab import MASK, N_RESERVED, PAD

N_REAL = 20
MAX_LEN = 10
BATCH = 64


pytestmark = pytest.mark.usefixtures("one_thread")


def sessions(n: int, seed: int) -> torch.Tensor:
    succ = torch.randperm(N_REAL, generator=torch.Generator().manual_seed(123)) + N_RESERVED
    g = torch.Generator().manual_seed(seed)
    cur = torch.randint(N_RESERVED, N_REAL + N_RESERVED, (n,), generator=g)
    cols = []
    for _ in range(MAX_LEN):
        cols.append(cur)
        cur = succ[cur - N_RESERVED]
    ids = torch.stack(cols, 1)
    lens = torch.randint(2, MAX_LEN + 1, (n,), generator=g)
    return ids.masked_fill(torch.arange(MAX_LEN)[None, :] >= lens[:, None], PAD)


def held_out():
    full = sessions(400, seed=1)
    last = (full != PAD).sum(1) - 1
    rows = torch.arange(len(full))
    prefix = full.clone()
    prefix[rows, last] = PAD
    return prefix, full[rows, last]


def recall_at_1(model, prefix, target) -> float:
    model.eval()
    with torch.no_grad():
        hit = model.predict_next({"item_id": prefix}).scores.argmax(1) == target
    model.train()
    return hit.float().mean().item()


def train_until(name: str, budget: int, goal: float = 0.95, **overrides):
    """Train the preset with its own lr; returns (best recall@1, steps used, loss history)."""
    cfg = get_preset(name)
    model_cfg = replace(cfg.model, max_len=MAX_LEN, **overrides)
    torch.manual_seed(0)
    model = SessionModel(model_cfg, N_REAL + N_RESERVED).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    data = sessions(4096, seed=0)
    prefix, target = held_out()
    g = torch.Generator().manual_seed(0)
    history, best = [], 0.0
    for step in range(1, budget + 1):
        out = model(item_id=data[torch.randint(0, len(data), (BATCH,), generator=g)])
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        history.append({k: float(v) for k, v in out.loss_parts.items()})
        if step % 50 == 0:
            best = max(best, recall_at_1(model, prefix, target))
            if best >= goal:
                return best, step, history
    return best, budget, history


@pytest.mark.parametrize("name,budget", [("SASRec+", 200), ("Llama-CLM", 200), ("GRU4Rec", 300)])
def test_causal_presets_learn_the_rule(name, budget):
    best, steps, _ = train_until(name, budget)
    assert best >= 0.95, f"{name}: Recall@1 {best:.2f} after {steps} steps"


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,budget,goal",
    # ELECTRA-RTD learns the rule more slowly (it plateaus near 0.92-0.95 over 1000-2000 steps on
    # this toy, while electra + mlm reaches 0.97 in 900): its body also sees the generator's
    # plausible wrong items among the context. docs/models.md records this.
    [("BERT4Rec", 1000, 0.95), ("XLNet-MLM", 1000, 0.95), ("XLNet-PLM", 800, 0.95), ("ELECTRA-RTD", 1600, 0.9)],
)
def test_bidirectional_presets_learn_the_rule(name, budget, goal):
    best, steps, _ = train_until(name, budget, goal)
    assert best >= goal, f"{name}: Recall@1 {best:.2f} after {steps} steps"


def _auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney): 0.5 = no better than chance."""
    ranks = torch.empty(len(scores))
    ranks[scores.argsort()] = torch.arange(1, len(scores) + 1, dtype=torch.float)
    pos = labels.sum()
    return ((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * (len(labels) - pos))).item()


def _detection_auc(model, seed=7) -> float:
    """How well the discriminator tells replaced items from originals in held-out sessions
    where part of the masked positions got a uniformly random item (a fixed yardstick, unlike
    the generator's samples, which get harder to spot as the generator learns)."""
    ids = sessions(1000, seed=seed)
    g = torch.Generator().manual_seed(seed)
    m = mask_rtd(ids, 0.3, 0.5, g)
    m = replace_tokens(m, ids, torch.randint(N_RESERVED, N_REAL + N_RESERVED, ids.shape, generator=g))
    judged = m.padding & (m.inputs != MASK)
    model.eval()
    with torch.no_grad():
        logits = model.replaced_logits(m)
    model.train()
    return _auc(logits[judged], m.replaced[judged])


@pytest.mark.slow
def test_rtd_trains_a_real_discriminator():
    """rtd has its own loss next to the item loss, and the body learns to spot replaced items."""
    cfg = get_preset("ELECTRA-RTD")
    torch.manual_seed(0)
    model = SessionModel(replace(cfg.model, max_len=MAX_LEN), N_REAL + N_RESERVED).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    before = _detection_auc(model)
    data = sessions(4096, seed=0)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        out = model(item_id=data[torch.randint(0, len(data), (BATCH,), generator=g)])
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert {"item", "generator", "rtd"} <= set(out.loss_parts)
    after = _detection_auc(model)
    assert 0.4 < before < 0.6 and after > 0.7, f"the discriminator did not learn: AUC {before:.2f} -> {after:.2f}"
