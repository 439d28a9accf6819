"""Recommend: top-k next items for a test session or one composed by hand."""

import streamlit as st

from app.components import state, ui
from app.components.ui import md

st.title("Recommend")


def main() -> None:
    app = state.AppState.load()
    run = ui.pick_run(app, "rec_run")
    if run is None:
        return
    lab = ui.labeller_for_run(run)
    ids, target, desc = ui.pick_session(run, lab, "rec")
    c = st.columns(2)
    k = c[0].slider("How many", 5, 50, 10, step=5, key="rec_k", persist_state="session")
    exclude = c[1].checkbox("Exclude items already in the session", key="rec_exclude", persist_state="session",
                            help="Off by default: in session data, returning to an item is common.")
    if not ids:
        st.info("Pick a test session or add items to get recommendations.")
        return
    left, right = st.columns([1, 2])
    with left:
        st.markdown(f"**Session** ({md(desc)})")
        sess = lab.facts(ids)
        sess.insert(0, "position", range(1, len(sess) + 1))
        st.dataframe(sess, hide_index=True, key="rec_session")
    with right:
        recs = run.recommend(lab.raw(ids), k=k, exclude_seen=exclude)
        rec_ids = run.encode_items([r["item"] for r in recs])
        df = lab.facts(rec_ids)
        df.insert(0, "rank", range(1, len(df) + 1))
        df["score"] = [r["score"] for r in recs]
        seen = set(int(i) for i in ids)
        df["in session"] = ["•" if int(i) in seen else "" for i in rec_ids]
        if target is not None:
            df["hit"] = ["✓ true next item" if int(i) == int(target) else "" for i in rec_ids]
        st.markdown(f"**Top {k}** from {md(run.name)}")
        st.dataframe(df, hide_index=True, key="rec_table",
                     column_config={"score": st.column_config.NumberColumn(format="%.3f"),
                                    "price": st.column_config.NumberColumn(format="%.2f")})
        if target is not None:
            hit = int(target) in set(int(i) for i in rec_ids)
            st.caption(("Hit: the true next item is in the list. " if hit else "Miss: the true next item, ")
                       + ("" if hit else md(lab.label(target)) + ", is not in the top " + str(k) + "."))


with ui.guard():
    main()
