"""Attention: what each position of a session looks at, per layer and head, with the recommendation."""

import streamlit as st

from app.components import state, ui
from app.components.ui import md
from t4r_core import explain, viz
from t4r_core.vocab import MASK

st.title("Attention")
VIEWS = ["Layer and head", "Average of the heads", "Rollout through all layers"]


def position_labels(lab: ui.Labeller, positions) -> list[str]:
    return ["[MASK] → next item" if int(p) == MASK else name for p, name in zip(positions, lab.labels(positions))]


def recommendations(run, lab: ui.Labeller, scores_ids, scores, target) -> None:
    st.markdown("**Top recommendations**")
    df = lab.facts(scores_ids)
    df = df[["name"] if "name" in df else ["item"]].assign(score=scores)
    if target is not None:
        df["true next"] = ["✓" if int(i) == int(target) else "" for i in scores_ids]
    df.insert(0, "rank", range(1, len(df) + 1))
    st.dataframe(df, hide_index=True, key="att_recs",
                 column_config={"score": st.column_config.NumberColumn(format="%.3f")})
    if target is not None:
        st.caption("True next item: " + md(lab.label(target)))


def attention_view(run, lab, ids, target) -> None:
    model = run.model
    att = explain.session_attention(model, ids)
    labels = position_labels(lab, att.positions)
    c = st.columns([5, 2])
    with c[0]:
        view = st.radio("View", VIEWS, horizontal=True, key="att_view", persist_state="session")
        layers, heads = att.attentions.shape[:2]
        cc = st.columns(2)
        if view == VIEWS[2]:
            matrix = explain.attention_rollout(att.attentions)
            title = f"Attention rollout over {layers} layer(s) (Abnar & Zuidema)"
        else:
            layer = cc[0].selectbox("Layer", range(1, layers + 1), index=layers - 1, key=f"att_layer_{run.name}")
            if view == VIEWS[0]:
                head = cc[1].selectbox("Head", range(1, heads + 1), key=f"att_head_{run.name}")
                matrix, title = att.attentions[layer - 1, head - 1], f"Layer {layer}, head {head}"
            else:
                matrix, title = explain.head_average(att.attentions)[layer - 1], f"Layer {layer}, mean of {heads} heads"
        st.plotly_chart(viz.attention_heatmap(matrix, labels, title=title), key="fig_attention")
        st.caption("Row = the position that looks, column = the position it looks at; each row sums to 1. "
                   + ("The body is causal: a position only sees itself and the items before it."
                      if run.config.model.masking == "clm" else
                      "The [MASK] slot after the last item is where the model reads its prediction."))
    with c[1]:
        ids_top, scores = att.top(10)
        recommendations(run, lab, ids_top, scores, target)
    with st.expander("Gradient saliency (works for every body)"):
        saliency_view(run, lab, ids)


def saliency_view(run, lab, ids) -> None:
    sal = explain.gradient_saliency(run.model, ids)
    st.plotly_chart(viz.saliency_bar(position_labels(lab, sal.positions), sal.grad_x_input,
                                     title=f"Which inputs drive the score of {viz.safe_label(lab.label(sal.target))}"),
                    key="fig_saliency")
    st.caption("|gradient · input| of the top recommendation's score for each input position, normalised to sum 1.")


def main() -> None:
    app = state.AppState.load()
    run = ui.pick_run(app, "att_run")
    if run is None:
        return
    lab = ui.labeller_for_run(run)
    ids, target, desc = ui.pick_session(run, lab, "att")
    if not ids:
        st.info("Pick a test session or add items to see the attention.")
        return
    st.caption(f"Input: {md(desc)}, {len(ids)} item(s); the model reads the last {run.config.model.max_len}.")
    if run.model.has_attention:
        attention_view(run, lab, ids, target)
    else:
        st.info(f"A {run.config.model.body.upper()} body is recurrent: it has no attention weights to show. "
                "Gradient saliency below shows instead how much each input item moves the score of the top "
                "recommendation.", icon=":material/info:")
        c = st.columns([5, 2])
        with c[0]:
            saliency_view(run, lab, ids)
        with c[1]:
            att = explain.session_attention(run.model, ids)
            ids_top, scores = att.top(10)
            recommendations(run, lab, ids_top, scores, target)


with ui.guard():
    main()
