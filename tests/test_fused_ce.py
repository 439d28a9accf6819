"""The chunked, fused output-layer cross-entropy equals the plain one: loss and every gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from t4r_core import fused_ce
from t4r_core.config import ModelConfig
from t4r_core.fused_ce import linear_cross_entropy
from t4r_core.heads import NextItemHead
from t4r_core.vocab import N_RESERVED


def _inputs(n=70, d=8, v=300, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    z = (torch.randn(n, d, generator=g) * scale).requires_grad_()
    w = (torch.randn(v, d, generator=g) * scale).requires_grad_()
    b = torch.randn(v, generator=g).requires_grad_()
    y = torch.randint(0, v, (n,), generator=g)
    return z, w, b, y


def _grads(loss, tensors, grad_out=0.7):
    loss.backward(torch.tensor(grad_out))
    out = [t.grad.clone() for t in tensors]
    for t in tensors:
        t.grad = None
    return out


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("chunk_elements", [300 * 7, 10**9])  # 7 rows per chunk (a ragged last one) / one chunk
def test_equals_cross_entropy_with_gradients(eps, chunk_elements, monkeypatch):
    monkeypatch.setitem(fused_ce.CHUNK_ELEMENTS, "cpu", chunk_elements)
    z, w, b, y = _inputs()
    ref = F.cross_entropy(z @ w.T + b, y, reduction="sum", label_smoothing=eps)
    ref_grads = _grads(ref, (z, w, b))
    out = linear_cross_entropy(z, w, b, y, eps)
    assert out.item() == pytest.approx(ref.item(), rel=1e-6)
    for got, want in zip(_grads(out, (z, w, b)), ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_a_target_whose_probability_underflows_keeps_an_exact_loss():
    """p_t below 1e-30 cannot give log(p_t); that row's log-sum-exp is recomputed."""
    z, w, b, y = _inputs(n=4, v=50)
    with torch.no_grad():
        b[y[0]] = -200.0  # the first row's target is e^-200 less likely than the rest
    ref = F.cross_entropy(z @ w.T + b, y, reduction="none")
    assert ref[0] > 150
    out = linear_cross_entropy(z, w, b, y)
    assert torch.isfinite(out) and out.item() == pytest.approx(ref.sum().item(), rel=1e-6)


def test_without_grad_only_the_loss_is_computed():
    z, w, b, y = _inputs()
    with torch.no_grad():
        out = linear_cross_entropy(z, w, b, y)
    assert out.grad_fn is None
    assert out.item() == pytest.approx(F.cross_entropy(z @ w.T + b, y, reduction="sum").item(), rel=1e-6)


def test_bf16_inputs_accumulate_in_fp32():
    z, w, b, y = _inputs()
    zb = z.detach().bfloat16().requires_grad_()
    out = linear_cross_entropy(zb, w, b, y)
    ref = F.cross_entropy(zb.float() @ w.bfloat16().float().T + b.bfloat16().float(), y, reduction="sum")
    assert out.dtype == torch.float32 and out.item() == pytest.approx(ref.item(), rel=2e-2)
    out.backward()
    assert zb.grad.dtype == torch.bfloat16 and w.grad.dtype == torch.float32 and torch.isfinite(w.grad).all()


@pytest.mark.parametrize("tie", [True, False])
def test_next_item_head_ce_is_the_plain_softmax_over_real_items(tie):
    """The head's "ce" loss (fused) = cross-entropy over its own scores, temperature and
    label smoothing included; gradients reach the item table and the bias."""
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=8, loss="ce", tie_weights=tie, temperature=0.5, label_smoothing=0.1)
    table = torch.nn.Embedding(40, 8)
    head = NextItemHead(cfg, 8, table)
    with torch.no_grad():
        head.bias.normal_()
    h = torch.randn(12, 8, requires_grad=True)
    targets = torch.randint(N_RESERVED, 40, (12,))
    ref = F.cross_entropy(head.real_logits(h), targets - N_RESERVED, label_smoothing=0.1)
    params = [h, head.weight(), head.bias]
    ref_grads = _grads(ref, params, 1.0)
    out = head.loss(h, targets)
    assert out.item() == pytest.approx(ref.item(), rel=1e-6)
    for got, want in zip(_grads(out, params, 1.0), ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
