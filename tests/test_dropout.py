"""CPUDropout (dropout.py): the same dropout as nn.Dropout, in every body."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from t4r_core.config import ModelConfig
from t4r_core.dropout import CPUDropout, swap_dropout
from t4r_core.model import SessionModel


def test_cpu_dropout_zeroes_p_and_rescales_the_rest():
    torch.manual_seed(0)
    d = CPUDropout(0.3).train()
    x = torch.ones(400_000, requires_grad=True)
    y = d(x)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(0.3, abs=0.005)
    assert torch.allclose(y[y != 0], torch.tensor(1 / 0.7))
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)  # unbiased, as nn.Dropout
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient goes through the same mask and scale
    d.eval()
    assert torch.equal(d(x), x)


@pytest.mark.parametrize("body,masking", [("gpt2", "clm"), ("bert", "mlm"), ("xlnet", "plm"), ("llama", "clm"),
                                          ("gru", "clm"), ("electra", "rtd")])
def test_every_dropout_of_a_model_is_swapped(body, masking):
    cfg = ModelConfig(body=body, masking=masking, d_model=16, n_heads=2, n_layers=2, max_len=8, dropout=0.2)
    model = SessionModel(cfg, 30)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(type(m) is CPUDropout for m in drops)
    assert {round(m.p, 3) for m in drops} >= {0.2}
    assert all(k in model.state_dict() for k in SessionModel(cfg, 30).state_dict())  # no new state


def test_swap_keeps_p_and_training_mode():
    net = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.4), nn.Sequential(nn.Dropout(0.1)))
    swap_dropout(net).eval()
    assert [type(m) for m in net.modules() if isinstance(m, nn.Dropout)] == [CPUDropout, CPUDropout]
    assert net[1].p == 0.4 and net[2][0].p == 0.1 and not net[1].training
