"""Embeddings: the item table in 2-D, coloured by category or popularity, and nearest neighbours."""

import numpy as np
import streamlit as st

from app.components import cache, state, ui
from t4r_core import explain, viz
from t4r_core.vocab import N_RESERVED

st.title("Embeddings")
METHODS = {"pca": "PCA (instant)", "tsne": "t-SNE (scikit-learn, slower)", "umap": "UMAP (umap-learn)"}


def main() -> None:
    app = state.AppState.load()
    run = ui.pick_run(app, "emb_run")
    if run is None:
        return
    lab = ui.labeller_for_run(run)
    pop = run.item_popularity
    order = np.argsort(-pop, kind="stable")
    order = order[(order >= N_RESERVED) & (pop[order] > 0)]
    if len(order) < 3:
        st.info("This run has fewer than 3 trained items; nothing to project.")
        return
    c = st.columns(3)
    methods = explain.available_projections()
    method = c[0].radio("Projection", methods, format_func=METHODS.get, key="emb_method", persist_state="session")
    top = int(c[1].number_input("Most popular items shown", 3, len(order), min(1000, len(order)), step=100,
                                key=f"emb_top_{run.name}", help="t-SNE takes about 5 s per 1,000 items on a CPU."))
    facts = lab.facts(order[:top])
    colour_opts = (["category"] if "category" in facts else []) + ["popularity (log clicks)", "none"]
    colour = c[2].radio("Colour", colour_opts, key="emb_colour", persist_state="session")
    rows = order[:top]
    xy = cache.projection(str(run.path), cache.run_stamp(run.path), method, tuple(int(i) for i in rows))
    names = lab.labels(rows)
    raw = lab.raw(rows)
    hover = [n if str(r) == n else f"{n} ({r})" for n, r in zip(names, raw)]
    color = (facts["category"].astype(str).tolist() if colour == "category" else
             np.log10(pop[rows] + 1).tolist() if colour.startswith("popularity") else None)
    chart = st.container()
    st.subheader("Nearest neighbours", anchor=False)
    cc = st.columns([1, 2])
    pick = cc[0].selectbox("Item", list(range(min(top, 5000))), key=f"emb_item_{run.name}",
                           format_func=lambda j: hover[j])
    k = cc[0].slider("Neighbours", 3, 30, 10, key="emb_k", persist_state="session")
    emb = explain.item_embedding_matrix(run.model)
    nn_ids, sims = explain.nearest_items(emb, int(rows[pick]), k)
    table = lab.facts(nn_ids)
    table.insert(0, "rank", range(1, len(table) + 1))
    table["cosine"] = sims
    cc[1].dataframe(table, hide_index=True, key="emb_neighbours",
                    column_config={"cosine": st.column_config.NumberColumn(format="%.3f")})
    pos = {int(i): j for j, i in enumerate(rows)}
    highlight = [pick] + [pos[int(i)] for i in nn_ids if int(i) in pos]
    fig = viz.embedding_scatter(xy, hover, color, "log10 clicks" if colour.startswith("pop") else "category",
                                highlight=highlight, title=f"{len(rows):,} item vectors, {METHODS[method].split()[0]}")
    chart.plotly_chart(fig, key="fig_embeddings")
    chart.caption("Items close together get similar scores from the model. Highlighted: the chosen item and its "
               "nearest neighbours by cosine similarity (in the full space, not the 2-D picture).")


with ui.guard():
    main()
