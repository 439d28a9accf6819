"""Non-neural baselines with the verbs of the models: `fit`, `score`, `recommend`, `evaluate`.

    Pop    global popularity (number of train events of each item).
    SPop   session popularity: how often the item occurs in the prefix, ties broken by Pop.
    VSKNN  vector-multiplication session-kNN (Ludewig & Jannach, "Evaluation of session-based
           recommendation algorithms", 2018; the `vsknn.py` of session-rec).

Estimators follow scikit-learn: `__init__` stores parameters, `fit(train, n_items)` learns state
whose names end in `_`, and `score(prefix)` returns [B, n_items] float32 scores with the reserved
ids (PAD, UNK, MASK) at -inf, so the evaluation code of the neural models applies unchanged.
Prefixes are id tensors [B, L] right-padded with 0; ids that are reserved or >= n_items (unknown
at fit time) take part in positions and lengths but match nothing.

V-SKNN, step by step for one prefix (all steps run on a batch of prefixes at once, with sparse
matrix products; the only Python loop is over batches):
  1. the prefix is a real-valued vector: an item last seen at 1-based position p of a prefix of
     length n weighs `weighting(p, n)` ("div": p / n, so the last item weighs 1 and weights decay
     linearly towards the start);
  2. candidate neighbours: the `sample_size` most recent train sessions containing any prefix item
     (recency = `Sessions.start_time`, or session order when there are no times);
  3. similarity of the prefix with a candidate = sum of the weights of the shared items, normalised
     ("dot": by the number of distinct prefix items, as session-rec's `vec`; "cosine": by the norm of
     the weight vector times the square root of the candidate's number of distinct items);
  4. the `k` most similar candidates (ties: the more recent first) are the neighbours;
  5. every item of a neighbour gets similarity x `weighting_score(step)`, summed over neighbours,
     where step = 1 + number of prefix events after the most recent item shared with that
     neighbour ("div": 1 / step). `remind=False` removes the prefix's own items.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from t4r_core.errors import ConfigError, DataError
from t4r_core.metrics import MetricAccumulator
from t4r_core.sessions import Sessions
from t4r_core.vocab import N_RESERVED, PAD

__all__ = ["Pop", "SPop", "VSKNN", "BASELINES", "make_baseline"]


# -- shared plumbing -------------------------------------------------------------------------------
def _as_prefix(prefix: torch.Tensor | np.ndarray) -> np.ndarray:
    arr = prefix.detach().cpu().numpy() if isinstance(prefix, torch.Tensor) else np.asarray(prefix)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"prefix must be an integer id tensor [batch, seq_len], got {arr.dtype} {arr.shape}")
    return arr.astype(np.int64, copy=False)


def _item_counts(train: Sessions, n_items: int) -> np.ndarray:
    items = np.asarray(train.items, dtype=np.int64)
    items = items[(items >= N_RESERVED) & (items < n_items)]
    return np.bincount(items, minlength=n_items).astype(np.float64)


def _resolve_n_items(train: Sessions, n_items: int | None) -> int:
    items = np.asarray(train.items, dtype=np.int64)
    if n_items is None:
        n_items = int(items.max()) + 1 if items.size else N_RESERVED + 1
        n_items = max(n_items, N_RESERVED + 1)
    n_items = int(n_items)
    if n_items <= N_RESERVED:
        raise DataError(f"n_items counts the {N_RESERVED} reserved ids and must exceed it; got {n_items}")
    if items.size and int(items.max()) >= n_items:
        raise DataError(f"train has item id {int(items.max())} >= n_items={n_items}")
    return n_items


class _Baseline:
    """Verbs shared by every baseline; subclasses implement `fit` and `_score_numpy`."""

    label = "baseline"  # the name tables and charts show

    n_items_: int

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(train, n_items) first")

    def _score_numpy(self, prefix: np.ndarray) -> np.ndarray:  # [B, n_items] float32
        raise NotImplementedError

    def score(self, prefix: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Scores [B, n_items] (float32, CPU) for right-padded prefixes [B, L]; reserved ids -inf."""
        self._check_fitted()
        out = torch.from_numpy(np.ascontiguousarray(self._score_numpy(_as_prefix(prefix)), dtype=np.float32))
        out[:, :N_RESERVED] = float("-inf")
        return out

    def recommend(
        self, prefix: torch.Tensor | np.ndarray, k: int = 10, exclude_seen: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k (item ids [B, k], scores [B, k]) for each prefix."""
        scores = self.score(prefix)
        if exclude_seen:
            p = torch.as_tensor(_as_prefix(prefix))
            p = torch.where(p < self.n_items_, p, torch.zeros_like(p))
            scores.scatter_(1, p, float("-inf"))
            scores[:, :N_RESERVED] = float("-inf")
        values, idx = torch.topk(scores, min(k, self.n_items_ - N_RESERVED), dim=1)
        return idx, values

    def evaluate(
        self,
        prefixes: torch.Tensor | np.ndarray,
        targets: torch.Tensor | np.ndarray,
        ks: Sequence[int] = (10, 20),
        batch_size: int = 1024,
        exclude_seen: bool = False,
        item_popularity: np.ndarray | torch.Tensor | None = None,
    ) -> dict[str, float]:
        """Mean ranking metrics of next-item prediction (`targets` [N]) from `prefixes` [N, L]."""
        self._check_fitted()
        prefixes = _as_prefix(prefixes)
        targets = np.asarray(targets, dtype=np.int64).reshape(-1)
        if len(targets) != len(prefixes):
            raise DataError(f"{len(prefixes)} prefixes but {len(targets)} targets")
        acc = MetricAccumulator(ks, self.n_items_, item_popularity=item_popularity)
        for start in range(0, len(prefixes), batch_size):
            p = prefixes[start : start + batch_size]
            seen = torch.from_numpy(p) if exclude_seen else None
            acc.update(self.score(p), torch.from_numpy(targets[start : start + batch_size]), seen=seen)
        return acc.compute()


# -- popularity baselines --------------------------------------------------------------------------
class Pop(_Baseline):
    """Recommends the most frequent train items, whatever the session."""

    label = "Pop"

    def fit(self, train: Sessions, n_items: int | None = None) -> "Pop":
        self.n_items_ = _resolve_n_items(train, n_items)
        self.popularity_ = _item_counts(train, self.n_items_)
        return self

    def _score_numpy(self, prefix: np.ndarray) -> np.ndarray:
        return np.repeat(self.popularity_.astype(np.float32)[None, :], prefix.shape[0], axis=0)


class SPop(_Baseline):
    """Items of the prefix by how often they occur there; global popularity breaks ties.

    score = count in the prefix + popularity / (max popularity + 1), so every prefix item ranks
    above every other item, and the rest follow Pop (session-rec's `SessionPop`, same ranking).
    """

    label = "SPop"

    def fit(self, train: Sessions, n_items: int | None = None) -> "SPop":
        self.n_items_ = _resolve_n_items(train, n_items)
        self.popularity_ = _item_counts(train, self.n_items_)
        return self

    def _score_numpy(self, prefix: np.ndarray) -> np.ndarray:
        b = prefix.shape[0]
        pop = self.popularity_ / (self.popularity_.max() + 1.0)
        out = np.broadcast_to(pop, (b, self.n_items_)).copy()
        rows = np.repeat(np.arange(b), prefix.shape[1])
        cols = prefix.reshape(-1)
        keep = (cols >= N_RESERVED) & (cols < self.n_items_)
        np.add.at(out, (rows[keep], cols[keep]), 1.0)
        return out.astype(np.float32)


# -- V-SKNN ----------------------------------------------------------------------------------------
# position weights of the prefix: p = 1-based position of the item's last occurrence, n = length
_WEIGHTINGS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "div": lambda p, n: p / n,
    "same": lambda p, n: np.ones_like(p, dtype=np.float64),
    "linear": lambda p, n: np.maximum(1.0 - 0.1 * (n - p), 0.0),
    "quadratic": lambda p, n: (p / n) ** 2,
    "log": lambda p, n: 1.0 / np.log10((n - p) + 1.7),
}
# decay of a neighbour's contribution: step = 1 + prefix events after the last shared item
_SCORE_WEIGHTINGS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "div": lambda s: 1.0 / s,
    "same": lambda s: np.ones_like(s, dtype=np.float64),
    "linear": lambda s: np.maximum(1.0 - 0.1 * s, 0.0),
    "quadratic": lambda s: 1.0 / (s * s),
    "log": lambda s: 1.0 / np.log10(s + 1.7),
}
_SIMILARITIES = ("cosine", "dot")


def _row_of_entry(indptr: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))


def _keep_last_per_row(m: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """The last `n` stored entries of every row (indices sorted), as a new CSR matrix."""
    m.sort_indices()
    lens = np.diff(m.indptr)
    within = np.arange(m.nnz, dtype=np.int64) - np.repeat(m.indptr[:-1], lens)
    keep = within >= np.repeat(lens - n, lens)
    new_lens = np.minimum(lens, n)
    indptr = np.zeros(m.shape[0] + 1, dtype=np.int64)
    np.cumsum(new_lens, out=indptr[1:])
    return sp.csr_matrix((m.data[keep], m.indices[keep], indptr), shape=m.shape)


class VSKNN(_Baseline):
    """Vector-multiplication session-kNN (see the module doc for the algorithm).

    k: neighbours per prefix. sample_size: candidates = that many most recent sessions sharing an
    item with the prefix (0 = all). similarity: "cosine" or "dot" (session-rec's `vec`).
    weighting: prefix position weights ("div", "linear", "same", "quadratic", "log").
    weighting_score: position-of-match decay ("div", "linear", "same", "quadratic", "log").
    remind: keep the prefix's own items as candidates (repeats are common in session logs).
    batch_size: prefixes per sparse product inside `score` (bounds memory).
    """

    label = "V-SKNN"

    def __init__(
        self,
        k: int = 100,
        sample_size: int = 500,
        similarity: str = "cosine",
        weighting: str = "div",
        weighting_score: str = "div",
        remind: bool = True,
        batch_size: int = 2048,
    ) -> None:
        self.k = k
        self.sample_size = sample_size
        self.similarity = similarity
        self.weighting = weighting
        self.weighting_score = weighting_score
        self.remind = remind
        self.batch_size = batch_size

    def _check_params(self) -> None:
        if int(self.k) < 1:
            raise ConfigError(f"VSKNN k must be >= 1, got {self.k}")
        if int(self.sample_size) < 0:
            raise ConfigError(
                f"VSKNN sample_size must be >= 0 (0 = all sessions), got {self.sample_size}"
            )
        if self.similarity not in _SIMILARITIES:
            raise ConfigError(f"VSKNN similarity must be one of {_SIMILARITIES}, got {self.similarity!r}")
        if self.weighting not in _WEIGHTINGS:
            raise ConfigError(f"VSKNN weighting must be one of {tuple(_WEIGHTINGS)}, got {self.weighting!r}")
        if self.weighting_score not in _SCORE_WEIGHTINGS:
            raise ConfigError(
                f"VSKNN weighting_score must be one of {tuple(_SCORE_WEIGHTINGS)}, got {self.weighting_score!r}"
            )
        if int(self.batch_size) < 1:
            raise ConfigError(f"VSKNN batch_size must be >= 1, got {self.batch_size}")

    def fit(self, train: Sessions, n_items: int | None = None) -> "VSKNN":
        self._check_params()
        self.n_items_ = _resolve_n_items(train, n_items)
        self.popularity_ = _item_counts(train, self.n_items_)
        n_sess = len(train)
        # column j of the session index = j-th oldest session, so "most recent" = largest column
        if train.start_time is not None:
            order = np.argsort(np.asarray(train.start_time, dtype=np.float64), kind="stable")
        else:
            order = np.arange(n_sess, dtype=np.int64)
        recency = np.empty(n_sess, dtype=np.int64)
        recency[order] = np.arange(n_sess, dtype=np.int64)
        self.session_order_ = order  # recency rank -> index in `train`

        ev_sess = recency[train.event_session()]
        items = np.asarray(train.items, dtype=np.int64)
        keep = (items >= N_RESERVED) & (items < self.n_items_)
        keys = np.unique(ev_sess[keep] * self.n_items_ + items[keep])  # distinct (session, item)
        rows, cols = keys // self.n_items_, keys % self.n_items_
        indptr = np.zeros(n_sess + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_sess), out=indptr[1:])
        # X: sessions x items, binary; sorted indices by construction
        self.session_items_ = sp.csr_matrix(
            (np.ones(len(keys), dtype=np.float32), cols, indptr), shape=(n_sess, self.n_items_)
        )
        self.session_len_ = np.diff(indptr).astype(np.float64)  # distinct items per session
        # item -> sessions, sorted by recency; only the `sample_size` most recent are ever needed:
        # a session among the most recent of the union is among the most recent of each posting list
        item_sessions = self.session_items_.T.tocsr()
        if self.sample_size:
            item_sessions = _keep_last_per_row(item_sessions, int(self.sample_size))
        self.item_sessions_ = item_sessions
        return self

    # the vectorised algorithm -----------------------------------------------------------------
    def _score_numpy(self, prefix: np.ndarray) -> np.ndarray:
        out = np.empty((prefix.shape[0], self.n_items_), dtype=np.float32)
        for start in range(0, prefix.shape[0], int(self.batch_size)):
            chunk = prefix[start : start + int(self.batch_size)]
            self._score_batch(chunk, out[start : start + len(chunk)])
        return out

    def _prefix_matrix(self, prefix: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        """([B, n_items] CSR holding the 1-based last position of every usable item, lengths [B])."""
        b, L = prefix.shape
        nonpad = prefix != PAD
        lengths = nonpad.sum(axis=1).astype(np.int64)
        pos1 = np.cumsum(nonpad, axis=1)  # 1-based position of each event
        usable = nonpad & (prefix >= N_RESERVED) & (prefix < self.n_items_)
        rows = np.broadcast_to(np.arange(b, dtype=np.int64)[:, None], (b, L))[usable]
        items, pos = prefix[usable], pos1[usable]
        # the last occurrence wins: unique over the reversed stream keeps the first hit there
        keys = (rows * self.n_items_ + items)[::-1]
        keys, first = np.unique(keys, return_index=True)
        pos = pos[::-1][first]
        rows, items = keys // self.n_items_, keys % self.n_items_
        indptr = np.zeros(b + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=b), out=indptr[1:])
        return sp.csr_matrix((pos.astype(np.float64), items, indptr), shape=(b, self.n_items_)), lengths

    def _score_batch(self, prefix: np.ndarray, out: np.ndarray) -> None:
        """Writes the scores of `prefix` [b, L] into `out` [b, n_items] (float32, C-contiguous)."""
        b = prefix.shape[0]
        X = self.session_items_
        P, lengths = self._prefix_matrix(prefix)
        if P.nnz == 0:
            out[...] = 0.0
            return

        # 2. candidates: most recent sessions sharing an item (columns sorted = recency)
        presence = P.copy()
        presence.data = np.ones_like(presence.data, dtype=np.float32)
        cand = presence @ self.item_sessions_
        if self.sample_size:
            cand = _keep_last_per_row(cand, int(self.sample_size))
        else:
            cand.sort_indices()
        pair_row = _row_of_entry(cand.indptr)
        pair_sess = cand.indices.astype(np.int64)

        # 3. similarity and position of the most recent shared item, per (prefix, candidate) pair
        shared = X[pair_sess].multiply(P[pair_row]).tocsr()  # values = 1-based last position
        shared.sort_indices()
        p1 = shared.data
        entry_pair = _row_of_entry(shared.indptr)
        n_entry = lengths[pair_row][entry_pair].astype(np.float64)
        w = _WEIGHTINGS[self.weighting](p1, n_entry)
        sim = np.bincount(entry_pair, weights=w, minlength=len(pair_row))
        nonempty = np.diff(shared.indptr) > 0  # always true; kept for safety
        last_pos = np.zeros(len(pair_row))
        last_pos[nonempty] = np.maximum.reduceat(p1, shared.indptr[:-1][nonempty])
        if self.similarity == "dot":
            sim = sim / np.diff(P.indptr)[pair_row]
        else:  # cosine between the weighted prefix and the binary session
            wp = _WEIGHTINGS[self.weighting](P.data, lengths[_row_of_entry(P.indptr)].astype(np.float64))
            norm = np.sqrt(np.bincount(_row_of_entry(P.indptr), weights=wp * wp, minlength=b))
            sim = sim / (norm[pair_row] * np.sqrt(self.session_len_[pair_sess]))
        # equal similarities must tie exactly, whatever the summation order
        sim = np.round(sim, 10)

        # 4. the k most similar candidates of each prefix, the more recent first on ties
        order = np.lexsort((-pair_sess, -sim, pair_row))
        pair_row, pair_sess, sim, last_pos = pair_row[order], pair_sess[order], sim[order], last_pos[order]
        starts = np.searchsorted(pair_row, np.arange(b))
        rank = np.arange(len(pair_row)) - starts[pair_row]
        sel = (rank < int(self.k)) & (sim > 0)
        step = lengths[pair_row[sel]] - last_pos[sel] + 1
        weight = sim[sel] * _SCORE_WEIGHTINGS[self.weighting_score](step)

        # 5. items of the neighbours, weighted
        nb = sp.csr_matrix(
            (weight.astype(np.float32), (pair_row[sel], pair_sess[sel])), shape=(b, X.shape[0])
        )
        (nb @ X).toarray(out=out)
        if not self.remind:
            out[_row_of_entry(P.indptr), P.indices] = 0.0


# -- registry (CLI: `baseline NAME`) -----------------------------------------------------------------
BASELINES: dict[str, type[_Baseline]] = {"pop": Pop, "spop": SPop, "vsknn": VSKNN}


def make_baseline(name: str, **params) -> _Baseline:
    """A baseline by case-insensitive name ("pop", "spop", "vsknn"), with its parameters."""
    key = name.strip().lower().replace("-", "")
    if key not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; choose one of {sorted(BASELINES)}")
    cls = BASELINES[key]
    if cls is VSKNN:
        return cls(**params)
    if params:
        raise ConfigError(f"baseline {name!r} takes no parameters, got {sorted(params)}")
    return cls()
