"""Looking inside a trained model: attention, rollout, saliency, the embedding space, and where
the metrics come from. Pure functions on a `SessionModel` (or a `Run`'s) and arrays; the app's
pages and the notebooks draw their results with `viz.py`.

    att = session_attention(run.model, ids)            # [layers, heads, n, n] for one session
    roll = attention_rollout(att.attentions)           # Abnar & Zuidema (2020)
    sal = gradient_saliency(run.model, ids)            # any body, RNNs included
    xy = project_embeddings(item_embedding_matrix(run.model)[3:], "pca")
    df = per_example_metrics(model_scorer(run.model), examples, run.n_items)
    breakdown(df, "length")

Ids are model ids (0 PAD, 1 UNK, 2 MASK, >= 3 items; `Run.encode_items` maps the user's ids).
The optional item catalogue (`find_catalogue`, `ItemCatalogue`) gives items readable names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .errors import DataError
from .masking import append_mask_slot, mask_clm, mask_mlm, mask_plm, mask_rtd, replace_tokens, visibility
from .metrics import ranking_metrics
from .vocab import MASK, N_RESERVED, PAD, UNK

# ------------------------------------------------------------------------------ item catalogue

CATALOGUE_EXTS = (".csv", ".tsv", ".parquet", ".jsonl", ".csv.gz")
_DATA_SUFFIXES = ("_sessions", "_events", "_clicks", "_interactions", "_train", "_views")
_ID_NAMES = ("item_id", "itemid", "item", "sku", "product_id", "id")
_NAME_NAMES = ("name", "title", "item_name", "product_name", "label")


def find_catalogue(data_path: str | Path | None) -> Path | None:
    """The optional items table next to a data file: `<stem>_items.<ext>`, or, for a file named
    like `shop_sessions.csv`, also `shop_items.<ext>`. None when there is none."""
    if not data_path:
        return None
    p = Path(data_path)
    stem = p.name
    for ext in (".gz", ".csv", ".tsv", ".txt", ".parquet", ".pq", ".jsonl", ".json"):
        stem = stem.removesuffix(ext)
    bases = [stem]
    for suf in _DATA_SUFFIXES:
        if stem.endswith(suf) and len(stem) > len(suf):
            bases.append(stem[: -len(suf)])
    for base in bases:
        for ext in CATALOGUE_EXTS:
            cand = p.with_name(f"{base}_items{ext}")
            if cand.is_file() and cand.resolve() != p.resolve():
                return cand
    return None


@dataclass
class ItemCatalogue:
    """Readable facts about items: a table indexed by the item id as text, with optional columns
    name, category, price. Labels fall back to the id itself."""

    table: pd.DataFrame

    @classmethod
    def from_frame(cls, df: pd.DataFrame, label: str = "item catalogue") -> ItemCatalogue:
        cols = {str(c).strip().lower(): c for c in df.columns}
        id_col = next((cols[n] for n in _ID_NAMES if n in cols), None)
        if id_col is None:
            raise DataError(f"{label}: no item id column; name one of {', '.join(_ID_NAMES)}")
        name_col = next((cols[n] for n in _NAME_NAMES if n in cols), None)
        out = pd.DataFrame(index=pd.Index(_id_text(df[id_col]), name="item_id"))
        if name_col is not None:
            out["name"] = df[name_col].astype(str).to_numpy()
        for key in ("category", "price"):
            if key in cols:
                out[key] = df[cols[key]].to_numpy()
        out = out[~out.index.duplicated(keep="first")]
        return cls(out)

    @classmethod
    def load(cls, path: str | Path) -> ItemCatalogue:
        from .ingest import read_table

        return cls.from_frame(read_table(path), label=str(path))

    def __len__(self) -> int:
        return len(self.table)

    @property
    def has_names(self) -> bool:
        return "name" in self.table

    def label(self, item: Any) -> str:
        key = _id_text(pd.Series([item]))[0]
        if self.has_names and key in self.table.index:
            return str(self.table.at[key, "name"])
        return key

    def labels(self, items: Sequence[Any]) -> list[str]:
        keys = _id_text(pd.Series(list(items), dtype=object))
        if not self.has_names:
            return list(keys)
        names = self.table["name"].reindex(keys)
        return [k if pd.isna(n) else str(n) for k, n in zip(keys, names)]

    def facts(self, items: Sequence[Any]) -> pd.DataFrame:
        """name / category / price of each item (NaN where unknown), one row per item."""
        keys = _id_text(pd.Series(list(items), dtype=object))
        return self.table.reindex(keys).reset_index(drop=True)


def _id_text(s: pd.Series) -> list[str]:
    """Ids as comparable text: 42, 42.0 and "42" are the same item."""
    out = []
    for v in s.tolist():
        if isinstance(v, float) and np.isfinite(v) and v == int(v):
            v = int(v)
        out.append(str(v).strip())
    return out


def load_catalogue(data_path: str | Path | None) -> ItemCatalogue | None:
    path = find_catalogue(data_path)
    return ItemCatalogue.load(path) if path else None


# ------------------------------------------------------------------------------ batches


def session_batch(model, ids: Sequence[int], features: dict[str, Sequence] | None = None) -> dict[str, torch.Tensor]:
    """One session of model ids as a [1, n] batch (its last `max_len` items). Side features the
    model uses and `features` does not give get the unknown id (categorical) or 0 (continuous,
    the standardised training mean), as `Run.scores` does for hand-made sessions."""
    ids = [int(i) for i in ids if int(i) != PAD]
    if not ids:
        raise DataError("the session is empty; give at least one item")
    L = model.config.max_len
    ids = ids[-L:]
    batch = {"item_id": torch.tensor([ids], dtype=torch.long)}
    continuous = set(model.config.continuous_features)
    for name in getattr(model, "feature_names", []):
        given = (features or {}).get(name)
        if given is not None:
            vals = list(given)[-len(ids):]
            dtype = torch.float32 if name in continuous else torch.long
            batch[name] = torch.tensor([vals], dtype=dtype)
        elif name in continuous:
            batch[name] = torch.zeros((1, len(ids)), dtype=torch.float32)
        else:
            batch[name] = torch.full((1, len(ids)), UNK, dtype=torch.long)
    return batch


# ------------------------------------------------------------------------------ attention


@dataclass
class SessionAttention:
    positions: np.ndarray  # [n] model ids the body saw (MASK for an appended slot, -1 for [CLS])
    attentions: np.ndarray | None  # [layers, heads, n, n]; None for bodies without attention
    scores: np.ndarray  # [n_items] scores of the next item (reserved ids -inf)

    def top(self, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) of the k best items."""
        order = np.argsort(-self.scores, kind="stable")[:k]
        keep = np.isfinite(self.scores[order])
        return order[keep], self.scores[order][keep]


@torch.no_grad()
def session_attention(model, ids: Sequence[int], features: dict[str, Sequence] | None = None) -> SessionAttention:
    """Attention weights of every layer and head for one session, cropped to its real positions
    (plus the [MASK] slot that mlm/plm/rtd models predict through)."""
    model.eval()
    pred = model.predict_next(session_batch(model, ids, features), output_attentions=True)
    shown = pred.input_ids[0].cpu().numpy()
    keep = np.flatnonzero(shown != PAD)
    atts = None
    if pred.attentions:
        a = torch.stack([x[0].float().cpu() for x in pred.attentions]).numpy()  # [layers, heads, L, L]
        atts = a[:, :, keep][:, :, :, keep]
    return SessionAttention(shown[keep], atts, pred.scores[0].float().cpu().numpy())


def head_average(attentions: np.ndarray) -> np.ndarray:
    """[layers, heads, n, n] -> [layers, n, n], the mean over heads."""
    return np.asarray(attentions).mean(axis=1)


def attention_rollout(attentions: np.ndarray, residual: float = 0.5) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema, ACL 2020): how much each output position draws on each
    input position through all layers. Per layer, the head average is mixed with the identity
    (the residual connection), rows renormalised, and the layers multiplied bottom-up:
    R = Â_L · … · Â_1 with Â = residual·I + (1 - residual)·A."""
    avg = head_average(attentions)
    n = avg.shape[-1]
    eye = np.eye(n)
    rollout = eye.copy()
    for layer in avg:
        a = residual * eye + (1.0 - residual) * layer
        a = a / np.clip(a.sum(axis=-1, keepdims=True), 1e-12, None)
        rollout = a @ rollout
    return rollout


# ------------------------------------------------------------------------------ saliency

_GRAD_LOCK = threading.Lock()  # the hook and .grad are per-model state: one saliency at a time


@dataclass
class Saliency:
    positions: np.ndarray  # [n] model ids of the input positions
    grad_x_input: np.ndarray  # [n] |gradient · input| per position, normalised to sum 1
    grad_norm: np.ndarray  # [n] L2 norm of the gradient per position, normalised to sum 1
    target: int  # the item whose score was explained


def gradient_saliency(model, ids: Sequence[int], target: int | None = None,
                      features: dict[str, Sequence] | None = None) -> Saliency:
    """Gradient of the score of `target` (default: the top recommendation) with respect to the
    input vectors (item embedding + side features, after the input block), per position.
    Works for every body, so RNNs, which have no attention, can be explained too."""
    model.eval()
    batch = session_batch(model, ids, features)
    store: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        output.retain_grad()
        store["x"] = output

    with _GRAD_LOCK:
        handle = model.inputs.register_forward_hook(hook)
        try:
            with torch.enable_grad():
                pred = model.predict_next(batch)
                scores = pred.scores[0]
                t = int(torch.argmax(scores)) if target is None else int(target)
                if not (N_RESERVED <= t < scores.shape[0]):
                    raise DataError(f"target item id {t} is not a real item of this model")
                model.zero_grad(set_to_none=True)
                scores[t].backward()
            x, g = store["x"][0].detach(), store["x"].grad[0]
        finally:
            handle.remove()
            model.zero_grad(set_to_none=True)
    shown = pred.input_ids[0].cpu().numpy()
    if getattr(model, "use_cls", False):
        shown = shown[1:]
    keep = np.flatnonzero(shown != PAD)
    gxi = (g * x).sum(-1).abs().cpu().numpy()[keep]
    gn = g.norm(dim=-1).cpu().numpy()[keep]
    return Saliency(shown[keep], _normalise(gxi), _normalise(gn), t)


def _normalise(v: np.ndarray) -> np.ndarray:
    s = float(np.sum(v))
    return v / s if s > 0 else v


# ------------------------------------------------------------------------------ embeddings


def item_embedding_matrix(model) -> np.ndarray:
    """The item table [n_items, d] as numpy (rows 0..2 are the reserved ids)."""
    return model.item_embeddings().detach().float().cpu().numpy()


def available_projections() -> list[str]:
    """"pca" always; "tsne" with scikit-learn; "umap" when umap-learn is installed."""
    out = ["pca"]
    try:
        import sklearn.manifold  # noqa: F401

        out.append("tsne")
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        pass
    try:
        import umap  # noqa: F401

        out.append("umap")
    except ImportError:
        pass
    return out


def project_embeddings(emb: np.ndarray, method: str = "pca", seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """[n, d] -> [n, 2]. PCA (numpy SVD, deterministic up to sign, fixed here), t-SNE or UMAP."""
    x = np.asarray(emb, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise DataError(f"need at least 2 vectors [n, d] to project, got shape {x.shape}")
    if method == "pca":
        xc = x - x.mean(axis=0)
        _, _, vt = np.linalg.svd(xc, full_matrices=False)
        vt = vt * np.where(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
        out = xc @ vt[:2].T
        return out if out.shape[1] == 2 else np.pad(out, ((0, 0), (0, 2 - out.shape[1])))
    if method == "tsne":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        perp = float(min(perplexity, max(2.0, (x.shape[0] - 1) / 3)))
        # torch and scikit-learn each bring an OpenMP runtime; together they oversubscribe the
        # CPU. One OpenMP thread was faster in every case measured (30 to 2,000 items, 2 cores).
        with threadpool_limits(limits=1, user_api="openmp"):
            return TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(x)
    if method == "umap":
        try:
            import umap
        except ImportError:
            raise DataError("projection 'umap' needs umap-learn: pip install umap-learn") from None
        return umap.UMAP(n_components=2, random_state=seed).fit_transform(x)
    raise DataError(f"unknown projection {method!r}; choose one of {', '.join(available_projections())}")


def nearest_items(emb: np.ndarray, item: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The k items most similar to `item` by cosine of their vectors (itself and reserved ids
    excluded): (ids, similarities), best first."""
    x = np.asarray(emb, dtype=np.float64)
    if not N_RESERVED <= item < len(x):
        raise DataError(f"item id {item} is not a real item (ids {N_RESERVED}..{len(x) - 1})")
    norms = np.linalg.norm(x, axis=1)
    sims = x @ x[item] / np.clip(norms * norms[item], 1e-12, None)
    sims[:N_RESERVED] = -np.inf
    sims[item] = -np.inf
    k = min(k, len(x) - N_RESERVED - 1)
    order = np.argsort(-sims, kind="stable")[:k]
    return order, sims[order]


# ------------------------------------------------------------------------------ breakdowns

LENGTH_BINS = (1, 2, 3, 4, 6, 10, 20)  # lower edges of the prefix-length groups


@torch.no_grad()
def per_example_metrics(scorer: Callable[[dict[str, torch.Tensor]], torch.Tensor], examples: dict[str, np.ndarray],
                        n_items: int, ks: Sequence[int] = (10, 20), exclude_seen: bool = False,
                        batch_size: int = 512) -> pd.DataFrame:
    """One row per evaluation example: target, prefix_len and ndcg/recall/mrr at each k, computed
    by `metrics.ranking_metrics` (the same definitions as every reported mean)."""
    n = len(examples["target"])
    cols: dict[str, list[np.ndarray]] = {}
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in examples.items()}
    for start in range(0, n, batch_size):
        batch = {k: v[start:start + batch_size] for k, v in tensors.items()}
        scores = scorer(batch).float()
        if scores.shape[1] != n_items:
            raise DataError(f"scorer returned {scores.shape[1]} item scores, expected n_items={n_items}")
        res = ranking_metrics(scores, batch["target"], ks, seen=batch["item_id"] if exclude_seen else None)
        for name, v in res.items():
            if name.split("@")[0] in ("ndcg", "recall", "mrr"):
                cols.setdefault(name, []).append(v.cpu().numpy())
    out = pd.DataFrame({k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()})
    out.insert(0, "target", np.asarray(examples["target"], dtype=np.int64))
    prefix_len = examples.get("prefix_len")
    if prefix_len is None:
        prefix_len = (np.asarray(examples["item_id"]) != PAD).sum(1)
    out.insert(1, "prefix_len", np.asarray(prefix_len, dtype=np.int64))
    return out


def length_groups(prefix_len: np.ndarray, bins: Sequence[int] = LENGTH_BINS) -> pd.Categorical:
    """Prefix lengths -> ordered labels "1", "2", "4-5", "20+" (lower edges `bins`)."""
    bins = list(bins)
    labels = []
    for i, lo in enumerate(bins):
        hi = bins[i + 1] - 1 if i + 1 < len(bins) else None
        labels.append(f"{lo}+" if hi is None else str(lo) if hi == lo else f"{lo}-{hi}")
    idx = np.searchsorted(np.asarray(bins), np.asarray(prefix_len), side="right") - 1
    idx = np.clip(idx, 0, len(bins) - 1)
    return pd.Categorical.from_codes(idx, categories=labels, ordered=True)


POPULARITY_GROUPS = ("top 1% items", "top 1-10%", "top 10-50%", "bottom 50%", "not in training")


def popularity_groups(targets: np.ndarray, item_popularity: np.ndarray) -> pd.Categorical:
    """Each target's item by its training popularity rank among the items seen in training."""
    pop = np.asarray(item_popularity, dtype=np.float64)
    real = np.flatnonzero(pop > 0)
    rank = np.full(len(pop), np.inf)
    rank[real[np.argsort(-pop[real], kind="stable")]] = np.arange(len(real))
    share = rank / max(len(real), 1)
    t = np.asarray(targets, dtype=np.int64)
    s = np.where((t >= 0) & (t < len(pop)), share[np.clip(t, 0, len(pop) - 1)], np.inf)
    codes = np.select([s < 0.01, s < 0.10, s < 0.50, np.isfinite(s)], [0, 1, 2, 3], default=4)
    return pd.Categorical.from_codes(codes, categories=list(POPULARITY_GROUPS), ordered=True)


def breakdown(per_example: pd.DataFrame, by: str, item_popularity: np.ndarray | None = None) -> pd.DataFrame:
    """Mean metrics per group. `by`: "length" (prefix length) or "popularity" (of the target in
    training; needs `item_popularity`). Columns: group, n, then the metric columns."""
    if by == "length":
        groups = length_groups(per_example["prefix_len"].to_numpy())
    elif by == "popularity":
        if item_popularity is None:
            raise DataError("breakdown by popularity needs item_popularity (training counts per item id)")
        groups = popularity_groups(per_example["target"].to_numpy(), item_popularity)
    else:
        raise DataError(f"unknown breakdown {by!r}; use 'length' or 'popularity'")
    metric_cols = [c for c in per_example.columns if "@" in c]
    df = per_example[metric_cols].assign(group=groups)
    out = df.groupby("group", observed=True).agg(n=(metric_cols[0], "size"), **{c: (c, "mean") for c in metric_cols})
    return out.reset_index().assign(group=lambda d: d["group"].astype(str))


# ------------------------------------------------------------------------------ masking (teaching)


@dataclass
class MaskingView:
    """One masking scheme applied to one session, ready to draw."""

    scheme: str
    inputs: list[int]  # ids fed to the body ([MASK] = 2)
    targets: list[int]  # item to predict at each position (0 = none)
    roles: list[str]  # per position: visible / masked / hidden / replaced (viz.MASK_ROLES)
    visibility: np.ndarray  # [n, n] bool, may output i use item j
    order: list[int | None] = field(default_factory=list)  # plm: factorisation rank of each target
    prediction_inputs: list[int] = field(default_factory=list)  # what the body sees at prediction time
    prediction_slot: int = -1  # position whose output scores the next item


SCHEME_NOTES = {
    "clm": "Causal LM: every position predicts the next item, looking only to its left.",
    "mlm": "Masked LM: random items become [MASK]; each is predicted from both sides.",
    "plm": "Permutation LM (XLNet): spans of items are predicted in a random order; a predicted "
           "item never sees itself, nor the targets ranked after it.",
    "rtd": "Replaced-token detection (ELECTRA): a generator fills some masked positions with "
           "plausible items; the body spots the replaced ones and predicts the rest.",
}


def masking_views(ids: Sequence[int], schemes: Sequence[str] = ("clm", "mlm", "plm", "rtd"), seed: int = 0,
                  mlm_probability: float = 0.3, plm_probability: float = 1 / 3, plm_max_span: int = 2,
                  replace_fraction: float = 0.5, n_items: int | None = None) -> dict[str, MaskingView]:
    """Apply `masking.py`'s own functions to one session, as training does (seeded).

    RTD's generator is a trained model in real training; here its samples are random items
    (ids up to `n_items`, default: the largest id in the session + 1) so the picture is clear."""
    ids = [int(i) for i in ids if int(i) != PAD]
    if not ids:
        raise DataError("the session is empty; give at least one item")
    x = torch.tensor([ids], dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, MaskingView] = {}
    for scheme in schemes:
        order: list[int | None] = [None] * len(ids)
        if scheme == "clm":
            m = mask_clm(x)
            roles = ["visible"] * len(ids)
        elif scheme == "mlm":
            m = mask_mlm(x, mlm_probability, gen)
            roles = ["masked" if t != PAD else "visible" for t in m.targets[0].tolist()]
        elif scheme == "plm":
            m = mask_plm(x, plm_probability, plm_max_span, gen)
            tgt = (m.targets[0] != PAD).numpy()
            roles = ["hidden" if t else "visible" for t in tgt]
            # rank = how many targets a target's query stream may see (earlier in the order)
            blocked = m.perm_mask[0].numpy() > 0
            for j in np.flatnonzero(tgt):
                order[j] = int((~blocked[j][tgt]).sum()) + 1
        elif scheme == "rtd":
            m1 = mask_rtd(x, mlm_probability, replace_fraction, gen)
            hi = max(n_items or (max(ids) + 1), N_RESERVED + 2)
            sampled = torch.randint(N_RESERVED, hi, x.shape, generator=gen)
            m = replace_tokens(m1, x, sampled)
            roles = []
            for inp, tgt, rep in zip(m.inputs[0].tolist(), m.targets[0].tolist(), m.replaced[0].tolist()):
                roles.append("replaced" if rep else "masked" if inp == MASK and tgt != PAD else "visible")
        else:
            raise DataError(f"unknown masking {scheme!r}; choose clm, mlm, plm or rtd")
        if scheme == "clm":
            pred_inputs, slot = ids, len(ids) - 1
        else:
            shown, s = append_mask_slot(x, len(ids) + 1)
            pred_inputs, slot = [i for i in shown[0].tolist() if i != PAD], int(s[0])
        out[scheme] = MaskingView(scheme, m.inputs[0].tolist(), m.targets[0].tolist(), roles,
                                  visibility(m)[0].numpy(), order, pred_inputs, slot)
    return out


__all__ = [
    "ItemCatalogue", "MaskingView", "POPULARITY_GROUPS", "SCHEME_NOTES", "Saliency", "SessionAttention",
    "attention_rollout", "available_projections", "breakdown", "find_catalogue", "gradient_saliency",
    "head_average", "item_embedding_matrix", "length_groups", "load_catalogue", "masking_views",
    "nearest_items", "per_example_metrics", "popularity_groups", "project_embeddings", "session_attention",
    "session_batch",
]
