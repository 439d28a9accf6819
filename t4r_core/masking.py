"""Masking schemes: which items a body sees, and which items it must predict.

Every function is pure (tensors in, tensors out), vectorised, and usable on its own, so the
app's masking explorer draws exactly what training uses. Inputs are right-padded item ids
[B, L] (0 = padding, 2 = [MASK], >= 3 real items); in the returned `MaskedInputs`:

    inputs   [B, L]  ids the body is fed ([MASK] where the item is hidden)
    targets  [B, L]  the item to predict at each position; 0 = nothing to predict there

    clm  every position predicts the NEXT item; attention is causal (position t sees 0..t)
    mlm  random positions become [MASK]; each predicts its own item from both sides
    plm  XLNet: spans of targets, predicted in a random order (`perm_mask`) from the query
         stream (`target_mapping`), which never sees the content of its own position
    rtd  ELECTRA: like mlm, but a share of the masked positions is filled in by a small
         generator (`replace_tokens`); the body must spot them (`replaced`) and still
         predict the items at the remaining [MASK] positions

At evaluation `append_mask_slot` puts a [MASK] after the last item: the slot to predict.
`visibility` turns any of these into a [B, L, L] "who may look at whom" matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .vocab import MASK, PAD


@dataclass
class MaskedInputs:
    inputs: torch.Tensor  # [B, L] long, ids fed to the body
    targets: torch.Tensor  # [B, L] long, item to predict per position, 0 = none
    padding: torch.Tensor  # [B, L] bool, True at real items
    causal: bool = False  # position t may only look at positions <= t
    perm_mask: torch.Tensor | None = None  # [B, L, L] float, 1 = row i may NOT see column j (XLNet)
    target_mapping: torch.Tensor | None = None  # [B, P, L] float, one-hot: P-th prediction is at column j
    replaced: torch.Tensor | None = None  # [B, L] bool, RTD: the generator put another item here
    to_replace: torch.Tensor | None = None  # [B, L] bool, RTD: masked positions the generator fills


def mask_clm(item_ids: torch.Tensor) -> MaskedInputs:
    """Causal LM: position t predicts item t+1 (the last real item predicts nothing)."""
    targets = torch.zeros_like(item_ids)
    targets[:, :-1] = item_ids[:, 1:]
    return MaskedInputs(item_ids, targets, item_ids != PAD, causal=True)


def mask_mlm(
    item_ids: torch.Tensor, prob: float = 0.2, generator: torch.Generator | None = None
) -> MaskedInputs:
    """Masked LM: each real item is replaced by [MASK] with probability `prob`.

    Sessions where no position was drawn get their last item masked, so every non-empty
    session contributes a target (and the model practises the evaluation case: [MASK] at the end).
    """
    real = item_ids != PAD
    draw = torch.rand(item_ids.shape, generator=generator, device=item_ids.device) < prob
    masked = draw & real
    masked |= _last_position(real) & ~masked.any(1, keepdim=True)
    return MaskedInputs(
        inputs=torch.where(masked, MASK, item_ids),
        targets=torch.where(masked, item_ids, 0),
        padding=real,
    )


def mask_plm(
    item_ids: torch.Tensor,
    prob: float = 1 / 6,
    max_span: int = 5,
    generator: torch.Generator | None = None,
) -> MaskedInputs:
    """XLNet permutation LM (the span recipe of HF's DataCollatorForPermutationLanguageModeling).

    Targets are spans of 1..`max_span` items covering about `prob` of each session (never its
    first item: one-item sessions have no target, as under clm). Every
    target gets a random rank in the factorisation order; non-targets come first. Row i may
    not see column j when j is a target ranked at or after i (XLNet's content stream still sees
    its own position; its query stream - the one that predicts - does not). The body input keeps
    the true items: hiding is done by `perm_mask`, not by [MASK].
    """
    B, L = item_ids.shape
    dev = item_ids.device
    real = item_ids != PAD
    # spans: start with prob / mean span length, cover [start, start + length)
    mean_span = (max_span + 1) / 2
    starts = torch.rand((B, L), generator=generator, device=dev) < prob / mean_span
    lengths = torch.randint(1, max_span + 1, (B, L), generator=generator, device=dev)
    pos = torch.arange(L, device=dev)
    reach = torch.where(starts, pos + lengths, 0).cummax(dim=1).values  # furthest end of spans so far
    # a session's first item is never a target, so every target has something to look at
    # (XLNet's softmax over an all-blocked row is uniform, its own position included: a leak)
    can_predict = real & (pos > 0)
    target = (reach > pos) & can_predict
    target |= _last_position(real) & can_predict & ~target.any(1, keepdim=True)
    # factorisation order: non-targets rank -1 (seen by all), targets a random rank
    rank = torch.rand((B, L), generator=generator, device=dev).argsort(dim=1).argsort(dim=1)
    rank = torch.where(target, rank, -1)
    perm_mask = (rank[:, :, None] <= rank[:, None, :]) & target[:, None, :]
    target_mapping = torch.eye(L, device=dev).expand(B, L, L)  # query stream at every position
    return MaskedInputs(
        inputs=item_ids,
        targets=torch.where(target, item_ids, 0),
        padding=real,
        perm_mask=perm_mask.float(),
        target_mapping=target_mapping,
    )


def mask_rtd(
    item_ids: torch.Tensor,
    prob: float = 0.2,
    replace_fraction: float = 0.5,
    generator: torch.Generator | None = None,
) -> MaskedInputs:
    """Replaced-token detection, step 1: mlm masking for the generator, plus the choice of
    which masked positions (`to_replace`, about `replace_fraction` of them) the generator fills.

    Step 2 is `replace_tokens` once the generator has sampled items for those positions.
    """
    m = mask_mlm(item_ids, prob, generator)
    masked = m.targets != PAD
    coin = torch.rand(item_ids.shape, generator=generator, device=item_ids.device) < replace_fraction
    return replace(m, to_replace=masked & coin)


def replace_tokens(m: MaskedInputs, item_ids: torch.Tensor, sampled: torch.Tensor) -> MaskedInputs:
    """Replaced-token detection, step 2: the discriminator's input.

    `sampled` [B, L] holds the generator's items (read only where `m.to_replace`). Those
    positions show the sampled item, the other masked positions stay [MASK] and keep their
    item targets; `replaced` marks positions whose item differs from the original (a sample
    equal to the truth counts as original, as in ELECTRA).
    """
    inputs = torch.where(m.to_replace, sampled, m.inputs)
    return replace(
        m,
        inputs=inputs,
        targets=torch.where(m.to_replace, 0, m.targets),
        replaced=(inputs != item_ids) & (inputs != MASK) & m.padding,
    )


def mask_for(
    masking: str,
    item_ids: torch.Tensor,
    *,
    mlm_probability: float = 0.2,
    plm_probability: float = 1 / 6,
    plm_max_span: int = 5,
    rtd_replace_fraction: float = 0.5,
    generator: torch.Generator | None = None,
) -> MaskedInputs:
    """The training-time masking of a config's `masking` name (rtd: step 1 only)."""
    if masking == "clm":
        return mask_clm(item_ids)
    if masking == "mlm":
        return mask_mlm(item_ids, mlm_probability, generator)
    if masking == "plm":
        return mask_plm(item_ids, plm_probability, plm_max_span, generator)
    if masking == "rtd":
        return mask_rtd(item_ids, mlm_probability, rtd_replace_fraction, generator)
    raise ValueError(f"unknown masking {masking!r}; choose one of clm, mlm, plm, rtd")


# ------------------------------------------------------------------------------ evaluation


def append_mask_slot(item_ids: torch.Tensor, max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Put a [MASK] right after each session's last item: returns (inputs, slot position [B]).

    When the batch is narrower than `max_len` a padding column is added first; rows that are
    still full are shifted left by one (their oldest item drops out). Use `shift_like` to move
    side features the same way.
    """
    ids = _widen(item_ids, max_len)
    lengths = (ids != PAD).sum(1)
    full = lengths == ids.shape[1]
    ids = torch.where(full[:, None], ids.roll(-1, dims=1), ids)
    slot = torch.where(full, ids.shape[1] - 1, lengths)
    ids = ids.scatter(1, slot[:, None], MASK)
    return ids, slot


def shift_like(item_ids: torch.Tensor, values: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Move a [B, L] side feature exactly as `append_mask_slot` moves `item_ids` (0 at the slot)."""
    ids, vals = _widen(item_ids, max_len), _widen(values, max_len)
    full = (ids != PAD).sum(1) == ids.shape[1]
    vals = torch.where(full[:, None], vals.roll(-1, dims=1), vals)
    slot = torch.where(full, ids.shape[1] - 1, (ids != PAD).sum(1))
    return vals.scatter(1, slot[:, None], torch.zeros_like(vals[:, :1]))


def last_positions(item_ids: torch.Tensor) -> torch.Tensor:
    """Index of each session's last real item [B] (0 for an empty session)."""
    return ((item_ids != PAD).sum(1) - 1).clamp(min=0)


# ------------------------------------------------------------------------------ teaching


def visibility(m: MaskedInputs) -> torch.Tensor:
    """[B, L, L] bool: may the output at row i depend on the item at column j?

    For plm this is XLNet's query stream (the one that predicts): a target never sees itself.
    """
    B, L = m.inputs.shape
    vis = m.padding[:, None, :].expand(B, L, L).clone()
    if m.causal:
        vis &= torch.ones(L, L, dtype=torch.bool, device=vis.device).tril()
    if m.perm_mask is not None:
        vis &= m.perm_mask == 0  # a target's own column is set: its query stream is blind to it
    return vis


def target_fraction(m: MaskedInputs) -> torch.Tensor:
    """Share of real positions that carry a target (a per-batch scalar tensor)."""
    return (m.targets != PAD).sum() / m.padding.sum().clamp(min=1)


# ------------------------------------------------------------------------------ helpers


def _last_position(real: torch.Tensor) -> torch.Tensor:
    """[B, L] bool, True at each row's last real position (none for empty rows)."""
    last = last_positions(real.long())
    return torch.nn.functional.one_hot(last, real.shape[1]).bool() & real


def _widen(x: torch.Tensor, max_len: int | None) -> torch.Tensor:
    if max_len is not None and x.shape[1] < max_len:
        return torch.nn.functional.pad(x, (0, 1))
    return x


__all__ = [
    "MaskedInputs",
    "append_mask_slot",
    "last_positions",
    "mask_clm",
    "mask_for",
    "mask_mlm",
    "mask_plm",
    "mask_rtd",
    "replace_tokens",
    "shift_like",
    "target_fraction",
    "visibility",
]
