"""Home: what the app does, where the user stands, and the next step."""

import streamlit as st

from app.components import cache, state, ui
from app.components.ui import md

st.title("t4r-studio")
st.markdown(
    "Session-based recommendation with Transformers, end to end: **load** an interaction log, **choose** an "
    "architecture, **train** it live, then **inspect** its metrics next to baselines, its attention maps, its "
    "recommendations and its item embedding space. Everything here is also one call of the `t4r_core` "
    "Python API or the `t4r` CLI, with the same config."
)


def main() -> None:
    app = state.AppState.load()
    cfg = app.experiment()
    c1, c2, c3 = st.columns(3)
    with c1, st.container(border=True):
        st.subheader("1 · Data", anchor=False)
        st.text(app.data_label)
        ui.page_link("data", "Choose or upload data")
    with c2, st.container(border=True):
        st.subheader("2 · Model", anchor=False)
        st.text(f"{app.preset or 'Custom'}: {cfg.model.body} + {cfg.model.masking}, d_model {cfg.model.d_model}")
        ui.page_link("model", "Choose an architecture")
    with c3, st.container(border=True):
        st.subheader("3 · Train", anchor=False)
        st.text(f"{cfg.train.epochs} epoch(s), batch {cfg.train.batch_size} on {cache.device_text()}")
        ui.page_link("train", "Train a model")

    st.subheader("Inspect a trained run", anchor=False)
    if app.last_run:
        st.markdown(f"Last run: **{md(app.last_run)}**")
    else:
        st.caption("No run yet. The default (SASRec+ on the shop sample) trains in about 2-3 minutes on a CPU.")
    cols = st.columns(4)
    for col, name, text in zip(cols, ("evaluate", "attention", "recommend", "embeddings"),
                               ("Metrics vs baselines", "Attention maps", "Recommendations", "Embedding space")):
        with col:
            ui.page_link(name, text)
    st.divider()
    st.caption("New to masking schemes (CLM, MLM, PLM, RTD)? The Masking explorer draws what each one hides.")
    ui.page_link("masking", "Open the Masking explorer", icon=":material/school:")


with ui.guard():
    main()
