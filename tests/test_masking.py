"""masking.py: the schemes' contracts, checked on small hand-made and random batches."""

from __future__ import annotations

import torch

from t4r_core.masking import (
    append_mask_slot,
    mask_clm,
    mask_for,
    mask_mlm,
    mask_plm,
    mask_rtd,
    replace_tokens,
    shift_like,
    target_fraction,
    visibility,
)
from t4r_core.vocab import MASK, PAD


def _batch(B=64, L=12, n_items=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, n_items, (B, L), generator=g)
    lens = torch.randint(1, L + 1, (B,), generator=g)
    lens[0], lens[1] = L, 1  # a full row and a one-item row
    ids[torch.arange(L)[None, :] >= lens[:, None]] = PAD
    return ids


def test_clm_targets_are_the_next_item():
    ids = torch.tensor([[5, 6, 7, 0], [8, 9, 10, 11]])
    m = mask_clm(ids)
    assert m.causal and torch.equal(m.inputs, ids)
    assert m.targets.tolist() == [[6, 7, 0, 0], [9, 10, 11, 0]]
    assert m.padding.tolist() == [[True, True, True, False], [True] * 4]


def test_mlm_masks_only_real_items_and_every_session_gets_a_target():
    ids = _batch()
    before = ids.clone()
    m = mask_mlm(ids, 0.3, torch.Generator().manual_seed(1))
    assert torch.equal(ids, before), "masking must not modify its input"
    hidden = m.targets != PAD
    assert torch.equal(hidden, m.inputs == MASK)
    assert not (hidden & (ids == PAD)).any()
    assert torch.equal(m.targets[hidden], ids[hidden])
    assert torch.equal(m.inputs[~hidden], ids[~hidden])
    assert hidden.any(1).all(), "each non-empty session contributes a target"
    frac = target_fraction(mask_mlm(_batch(2000, 20), 0.3)).item()
    assert 0.27 < frac < 0.36


def test_mlm_is_reproducible_with_a_generator():
    ids = _batch()
    a = mask_mlm(ids, 0.2, torch.Generator().manual_seed(7))
    b = mask_mlm(ids, 0.2, torch.Generator().manual_seed(7))
    assert torch.equal(a.inputs, b.inputs)


def test_plm_perm_mask_is_a_factorisation_order():
    ids = _batch(32, 15)
    m = mask_plm(ids, 1 / 3, 4, torch.Generator().manual_seed(3))
    tgt = m.targets != PAD
    assert torch.equal(m.inputs, ids), "plm hides by perm_mask, not by [MASK]"
    multi = (ids != PAD).sum(1) > 1
    assert torch.equal(tgt.any(1), multi) and not (tgt & (ids == PAD)).any()
    assert not tgt[:, 0].any(), "the first item is context, never a target"
    pm = m.perm_mask.bool()
    # nobody may see a target ranked at or after itself; non-targets are visible to everyone
    assert not pm[~tgt[:, None, :].expand_as(pm)].any()
    diag = pm.diagonal(dim1=1, dim2=2)
    assert torch.equal(diag, tgt), "a target is hidden from its own query stream"
    # between two targets exactly one sees the other: a strict order
    both = tgt[:, :, None] & tgt[:, None, :] & ~torch.eye(15, dtype=torch.bool)
    sees = ~pm
    assert torch.equal((sees & sees.transpose(1, 2))[both], torch.zeros_like(both[both]))
    assert torch.equal((sees | sees.transpose(1, 2))[both], torch.ones_like(both[both]))
    assert m.target_mapping.shape == (32, 15, 15)
    frac = target_fraction(mask_plm(_batch(2000, 20), 1 / 6, 5)).item()
    assert 0.1 < frac < 0.25


def test_rtd_replaces_part_of_the_masked_positions():
    ids = _batch(128, 10)
    m = mask_rtd(ids, 0.4, 0.5, torch.Generator().manual_seed(2))
    masked = m.targets != PAD
    assert (m.to_replace <= masked).all() and m.to_replace.any()
    sampled = torch.where(torch.rand(ids.shape) < 0.3, ids, torch.randint(3, 50, ids.shape))
    d = replace_tokens(m, ids, sampled)
    assert torch.equal(d.inputs[m.to_replace], sampled[m.to_replace])
    assert not (d.targets[m.to_replace] != PAD).any(), "replaced positions are judged, not predicted"
    assert torch.equal(d.targets != PAD, d.inputs == MASK)
    expect = m.to_replace & (sampled != ids)
    assert torch.equal(d.replaced, expect), "a sample equal to the truth counts as original"


def test_append_mask_slot_puts_mask_after_last_item_and_shifts_full_rows():
    ids = torch.tensor([[5, 6, 0, 0], [5, 6, 7, 8], [0, 0, 0, 0]])
    shown, slot = append_mask_slot(ids)
    assert shown.tolist() == [[5, 6, MASK, 0], [6, 7, 8, MASK], [MASK, 0, 0, 0]]
    assert slot.tolist() == [2, 3, 0]
    feat = torch.tensor([[1, 2, 0, 0], [1, 2, 3, 4], [0, 0, 0, 0]])
    assert shift_like(ids, feat).tolist() == [[1, 2, 0, 0], [2, 3, 4, 0], [0, 0, 0, 0]]
    # a batch narrower than max_len grows by one column instead of dropping an item
    shown, slot = append_mask_slot(ids, max_len=6)
    assert shown.tolist()[1] == [5, 6, 7, 8, MASK] and slot.tolist() == [2, 4, 0]
    assert shift_like(ids, feat, max_len=6).shape == (3, 5)


def test_visibility_matrices():
    ids = torch.tensor([[5, 6, 7, 0]])
    v = visibility(mask_clm(ids))[0]
    assert v.tolist() == [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]]
    v = visibility(mask_mlm(ids, 0.5))[0]
    assert v[:, :3].all() and not v[:, 3].any()
    m = mask_plm(ids, 0.9, 1)
    v = visibility(m)[0]
    tgt = (m.targets != PAD)[0]
    assert not v.diagonal()[tgt].any()


def test_mask_for_dispatches_by_name():
    ids = _batch(4, 6)
    assert mask_for("clm", ids).causal
    assert mask_for("plm", ids).perm_mask is not None
    assert mask_for("rtd", ids).to_replace is not None
    assert (mask_for("mlm", ids).inputs == MASK).any()
