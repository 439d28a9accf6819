"""Small widgets shared by the pages: error display, the sidebar, run and session pickers, item labels.

User-provided text (ids, item names, categories) is only ever shown through `st.text`,
`st.dataframe`, Plotly charts (labels pass `viz.safe_label`) or escaped Markdown (`md`); no page lets
Streamlit render raw HTML.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from t4r_core.errors import T4RError
from t4r_core.explain import ItemCatalogue
from t4r_core.runs import Run
from t4r_core.vocab import MASK, N_RESERVED, PAD, UNK, Vocab

from . import cache, jobs, state

log = logging.getLogger("t4r_app")

PAGES = {  # file -> title; the order is the user's journey
    "home": "Home", "data": "Data", "model": "Model", "train": "Train", "evaluate": "Evaluate",
    "attention": "Attention", "recommend": "Recommend", "embeddings": "Embeddings", "masking": "Masking explorer",
}


# ------------------------------------------------------------------------------ errors


@contextmanager
def guard() -> Iterator[None]:
    """Show the library's errors as `st.error` (their message says how to fix it), and anything
    unexpected as one line, never a traceback (which goes to the server log).
    Set T4R_APP_DEBUG=1 to let unexpected errors raise (the tests do)."""
    try:
        yield
    except T4RError as e:
        st.error(str(e), icon=":material/error:")
    except Exception as e:  # noqa: BLE001 - Streamlit's stop/rerun are BaseExceptions and pass through
        if os.environ.get("T4R_APP_DEBUG"):
            raise
        log.error("unexpected error:\n%s", traceback.format_exc())
        first = str(e).splitlines()[0][:300] if str(e) else ""
        st.error(f"Unexpected error ({type(e).__name__}: {first}). The details are in the server log; "
                 "please report it.", icon=":material/bug_report:")


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+|<>~$])")  # the text is never at a line start


def md(text: Any) -> str:
    """User text made inert inside Markdown (no emphasis, links, headings or HTML)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def seed(key: str, value: Any) -> None:
    """Give a widget key its starting value (from the saved state) unless the session has one."""
    if key not in st.session_state:
        st.session_state[key] = value


def forget(*prefixes: str) -> None:
    """Drop widget values so they are seeded again from the saved state on the next run."""
    for key in list(st.session_state.keys()):
        if any(str(key).startswith(p) for p in prefixes):
            del st.session_state[key]


def page_link(name: str, label: str | None = None, icon: str | None = None) -> None:
    st.page_link(f"views/{name}.py", label=label or PAGES[name], icon=icon or ":material/arrow_forward:")


# ------------------------------------------------------------------------------ sidebar


def sidebar(app: state.AppState) -> None:
    with st.sidebar:
        st.caption("CURRENT DATA")
        st.text(app.data_label)
        st.caption("LAST RUN")
        st.text(app.last_run or "none yet")
        job = jobs.registry().active()
        if job is not None:
            st.fragment(_training_status, run_every=2.0)()
        st.caption("DEVICE")
        try:
            st.text(cache.device_text())
        except Exception:  # noqa: BLE001 - a sidebar must never break a page
            st.text("unknown")
        st.caption(f"Runs folder: {state.runs_dir()}")


def _training_status() -> None:
    """The sidebar's line about the running job, refreshed on its own every 2 s."""
    job = jobs.registry().current()
    if job is None:
        return
    snap = job.snapshot()
    step, total = snap["last"].get("step", 0), snap["max_steps"] or 0
    st.caption("TRAINING NOW" if job.active else "TRAINING")
    st.text(f"{snap['run_name']}: " + (f"step {step}/{total or '?'}" if job.active else snap["status"]))


# ------------------------------------------------------------------------------ labels


class Labeller:
    """Model ids -> the user's ids -> readable labels (catalogue names where known)."""

    def __init__(self, items: Vocab, catalogue: ItemCatalogue | None = None):
        self.items, self.catalogue = items, catalogue

    def raw(self, ids: Sequence[int]) -> list[Any]:
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty(len(ids), dtype=object)
        ok = ids >= 0
        out[ok] = self.items.decode(ids[ok])
        out[~ok] = "[CLS]"
        return [x.item() if isinstance(x, np.generic) else x for x in out]

    def labels(self, ids: Sequence[int]) -> list[str]:
        raw = self.raw(ids)
        ids = list(ids)
        named = self.catalogue.labels(raw) if self.catalogue is not None else [str(r) for r in raw]
        return [str(r) if int(i) < N_RESERVED else n for i, r, n in zip(ids, raw, named)]

    def label(self, i: int) -> str:
        return self.labels([i])[0]

    def facts(self, ids: Sequence[int]) -> pd.DataFrame:
        raw = self.raw(ids)
        df = pd.DataFrame({"item": [str(r) for r in raw]})
        if self.catalogue is not None:
            f = self.catalogue.facts(raw)
            for col in ("name", "category", "price"):
                if col in f:
                    df[col] = f[col].to_numpy()
        return df


def labeller_for_run(run: Run) -> Labeller:
    return Labeller(run.encoders.items, cache.catalogue_for(cache.run_source(run)))


# ------------------------------------------------------------------------------ run picker


def pick_run(app: state.AppState, key: str, label: str = "Run") -> Run | None:
    """A selectbox of the saved runs (the last one first selected), or a hint to train one."""
    folder = state.runs_dir()
    names = cache.run_names(folder)
    if not names:
        st.info("No trained run yet: train one on the Train page (a few minutes on a CPU).")
        page_link("train", "Go to Train")
        return None
    default = app.last_run if app.last_run in names else names[0]
    if st.session_state.get(key) not in names:
        st.session_state[key] = default
    name = st.selectbox(label, names, key=key, help="Runs saved in the runs folder, newest first.")
    run = cache.load_run(folder / name)
    m = run.config.model
    st.caption(f"{m.body} body · {m.masking} masking · d_model {m.d_model} · {m.n_layers} layer(s) · "
               f"trained {run.environment.get('finished', '?')} on {Path(cache.run_source(run) or '?').name}")
    return run


# ------------------------------------------------------------------------------ session picker


def _item_choices(run: Run, data, limit: int = 5000) -> np.ndarray:
    """Model ids of the items to offer in a searchable list: most popular first."""
    pop = run.item_popularity
    order = np.argsort(-pop, kind="stable")
    order = order[order >= N_RESERVED]
    return order[:limit]


def pick_session(run: Run, labeller: Labeller, key: str) -> tuple[list[int], int | None, str]:
    """Choose a test session (its last item is the held-out truth) or compose one.

    Returns (model ids of the input session, model id of the true next item or None, description)."""
    data = cache.run_data(run)
    test = data.splits.get("test") if data is not None else None
    has_test = test is not None and len(test) > 0
    modes = (["A test session", "Compose a session"] if has_test else ["Compose a session"])
    mode = st.radio("Session", modes, key=f"{key}_mode", horizontal=True, persist_state="session")
    if mode == "A test session":
        candidates = _test_candidates(test)
        if len(candidates) == 0:
            st.info("The test split has no session with two items or more; compose one instead.")
            return [], None, ""

        def fmt(s: int) -> str:
            ids = test.session(int(s))
            names = labeller.labels(ids[:3])
            more = " …" if len(ids) > 3 else ""
            return f"#{s} · {len(ids)} items · " + " → ".join(n[:22] for n in names) + more

        s = st.selectbox("Test session", candidates, format_func=fmt, key=f"{key}_session_{run.name}",
                         persist_state="session")
        ids = test.session(int(s)).tolist()
        return ids[:-1], int(ids[-1]), f"test session #{s} (its last item is held out as the truth)"
    choices = _item_choices(run, data)
    picked = st.multiselect(
        "Items, in order (type to search)", list(map(int, choices)), key=f"{key}_items_{run.name}",
        persist_state="session",
        format_func=lambda i: _choice_label(labeller, i), max_selections=run.config.model.max_len,
        help="The most popular items are listed; type part of a name or id to search.",
    )
    typed = st.text_input("…or type item ids separated by commas (repeats allowed)", key=f"{key}_typed",
                          persist_state="session")
    ids = [int(i) for i in picked]
    if typed.strip():
        raw = [t.strip() for t in typed.split(",") if t.strip()]
        enc = run.encode_items(raw)
        unknown = [r for r, e in zip(raw, enc) if e == UNK]
        if unknown:
            st.warning("Not items of this run (shown as [UNK]): " + ", ".join(md(u) for u in unknown[:10]))
        ids = [int(e) for e in enc]
    return ids, None, "a composed session"


def _test_candidates(test, limit: int = 300) -> np.ndarray:
    """Test sessions worth showing first: 5-15 items all known to the model, then 3-4 such items,
    then the rest (each group in split order)."""
    lens = test.lengths
    ok = np.flatnonzero(lens >= 2)
    unknown = np.add.reduceat((test.items == UNK).astype(np.int64), test.offsets[:-1]) if test.n_events else lens * 0
    known = unknown[ok] == 0
    long_ = known & (lens[ok] >= 5) & (lens[ok] <= 15)
    short = known & (lens[ok] >= 3) & ~long_
    return np.concatenate([ok[long_], ok[short], ok[~long_ & ~short]])[:limit]


def _choice_label(labeller: Labeller, i: int) -> str:
    raw = labeller.raw([i])[0]
    name = labeller.label(i)
    return name if str(raw) == name else f"{name} ({raw})"


def shown_ids(ids: Sequence[int]) -> list[int]:
    return [int(i) for i in ids if int(i) not in (PAD,)]


def is_reserved(i: int) -> bool:
    return int(i) in (PAD, UNK, MASK) or int(i) < 0


def fmt_metric(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.4f}"
