"""Masking explorer: what CLM, MLM, PLM and RTD hide and predict, drawn by t4r_core's own masking code."""

import streamlit as st

from app.components import cache, state, ui
from app.components.ui import md
from t4r_core import explain, viz
from t4r_core.vocab import MASK

st.title("Masking explorer")
st.markdown("How each training objective turns one session into inputs and targets. The pictures come from "
            "`t4r_core.masking`, the very functions training uses, applied to a session of your data.")
SCHEMES = ("clm", "mlm", "plm", "rtd")


def main() -> None:
    app = state.AppState.load()
    data = cache.prepared(app.data_path, app.experiment().to_dict()["data"], app.test_path)
    lab = ui.Labeller(data.encoders.items, cache.catalogue_for(app.data_path))
    sessions = data.train  # every item of a training session is known to the encoders: no [UNK]
    lens = sessions.lengths
    cands = [int(s) for s in range(len(sessions)) if 4 <= lens[s] <= 10][:200] or list(range(min(len(sessions), 50)))
    c = st.columns([2, 1, 1, 1])
    s = c[0].selectbox("Session", cands, key="mask_session", persist_state="session",
                       format_func=lambda s: f"#{s}: " + " → ".join(n[:18] for n in lab.labels(sessions.session(s)[:4]))
                       + (" …" if lens[s] > 4 else ""))
    p = c[1].slider("Mask probability (MLM, RTD)", 0.1, 0.8, 0.3, step=0.05, key="mask_p", persist_state="session")
    pp = c[2].slider("Target share (PLM)", 0.1, 0.8, 0.34, step=0.02, key="mask_pp", persist_state="session")
    seed = c[3].number_input("Random seed", 0, 10_000, 0, key="mask_seed", persist_state="session",
                             help="Another seed draws other masked positions.")
    ids = sessions.session(int(s)).tolist()[-20:]
    views = explain.masking_views(ids, SCHEMES, seed=int(seed), mlm_probability=p, plm_probability=pp,
                                  plm_max_span=2, n_items=data.n_items)
    rows = [r for sch in SCHEMES for r in viz.masking_rows(views[sch], lab.label)]
    st.plotly_chart(viz.masking_diagram(rows), key="fig_masking")
    for sch in SCHEMES:
        st.markdown(f"- **{sch.upper()}**: {md(explain.SCHEME_NOTES[sch])}")
    st.caption("PLM: '#k' is a target's place in the random factorisation order. RTD: in real training a small "
               "generator picks the replacements; here they are random items.")
    st.subheader("Who may look at whom", anchor=False)
    sch = st.segmented_control("Scheme", SCHEMES, default="clm", key="mask_vis_scheme",
                               format_func=str.upper) or "clm"
    v = views[sch]
    labels = ["[MASK]" if i == MASK else lab.label(i) for i in v.inputs]
    st.plotly_chart(viz.visibility_heatmap(v.visibility, labels, title=f"{sch.upper()}: may row i use column j"),
                    key="fig_visibility")


with ui.guard():
    main()
