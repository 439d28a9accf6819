"""Data: pick a bundled sample or upload a file, check the column roles, profile it, see the split."""

from pathlib import Path

import streamlit as st

from app.components import cache, state, ui
from app.components.ui import md
from t4r_core import viz
from t4r_core.config import DataConfig
from t4r_core.errors import DataError, T4RError
from t4r_core.ingest import read_table
from t4r_core.schema import Schema, infer_schema

NONE = "(none)"
SOURCES = {**{k: s.label for k, s in state.SAMPLES.items()}, "upload": "Upload a file"}
SPLITS = {"time": "by time (latest sessions are test)", "random": "random sessions",
          "leave_last": "leave last out (per user history)"}
MAX_BYTES = int(st.get_option("server.maxUploadSize")) * 1024 * 1024

st.title("Data")


# ------------------------------------------------------------------------------ callbacks


def _on_source() -> None:
    key = st.session_state["data_source"]
    if key in state.SAMPLES:
        app = state.AppState.load()
        app.choose_data(state.SAMPLES[key].path, state.SAMPLES[key].label)
        app.save()
        ui.forget("data_role_", "data_split_")


def _save_upload(key: str) -> Path | None:
    f = st.session_state.get(key)
    if f is None:
        return None
    raw = f.getvalue()
    try:
        read_table(raw, name=state.safe_filename(f.name), max_bytes=MAX_BYTES)  # refuse bad files before saving
        path = state.upload_path(f.name, raw)
        if not path.exists():
            state.write_atomic(path, raw)
    except T4RError as e:
        st.session_state["data_upload_error"] = str(e)
        return None
    st.session_state.pop("data_upload_error", None)
    return path


def _on_upload() -> None:
    path = _save_upload("upload_file")
    if path is not None:
        app = state.AppState.load()
        app.choose_data(path, f"Upload: {Path(path).name}")
        app.save()
        ui.forget("data_role_", "data_split_")


def _on_test_upload() -> None:
    path = _save_upload("upload_test")
    if path is not None:
        app = state.AppState.load()
        app.test_path = str(path)
        app.save()


def _on_catalogue_upload() -> None:
    f = st.session_state.get("upload_items")
    app = state.AppState.load()
    if f is None:
        return
    if Path(app.data_path).resolve().parent != state.data_dir().resolve():
        st.session_state["data_upload_error"] = "upload the interactions file first: the catalogue is stored next to it"
        return
    try:
        from t4r_core.explain import ItemCatalogue

        raw = f.getvalue()
        ItemCatalogue.from_frame(read_table(raw, name=state.safe_filename(f.name), max_bytes=MAX_BYTES), f.name)
        state.write_atomic(state.catalogue_path_for(Path(app.data_path), f.name), raw)
        st.session_state.pop("data_upload_error", None)
    except T4RError as e:
        st.session_state["data_upload_error"] = str(e)


def _apply_roles(df, base) -> None:
    """Widget values -> explicit DataConfig roles (a role equal to the inferred one stays 'infer')."""
    app = state.AppState.load()
    cfg = app.experiment()
    d = cfg.to_dict()["data"]
    ss = st.session_state
    drop = [c for c in d.get("drop", []) if c in df.columns]
    session, item, time, user = (ss.get(f"data_role_{r}") for r in ("session", "item", "time", "user"))
    chosen = [(r, c) for r, c in (("session", session), ("item", item), ("time", time), ("user", user)) if c != NONE]
    seen: dict[str, str] = {}
    for role, col in chosen:
        if col in seen:
            ss["data_role_error"] = (f"column {col!r} cannot be both the {seen[col]} and the {role}; "
                                     "choose another column for one of them")
            return
        seen[col] = role
    ss.pop("data_role_error", None)
    d["session_col"] = session if session != base.session else None
    d["item_col"] = item if item != base.item else None
    if time == NONE:
        d["time_col"] = None
        drop += [c for c in (base.time, base.date) if c and c not in drop]
    else:
        drop = [c for c in drop if c != time]
        d["time_col"] = time if time != base.time else None
    if user == NONE:
        d["user_col"] = None
        drop += [base.user] if base.user and base.user not in drop else []
    else:
        drop = [c for c in drop if c != user]
        d["user_col"] = user if user != base.user else None
    single = {session, item, time, user}
    d["categorical"] = [c for c in ss.get("data_role_categorical", []) if c not in single]
    d["continuous"] = [c for c in ss.get("data_role_continuous", []) if c not in single and c not in d["categorical"]]
    d["drop"] = [c for c in drop if c not in d["categorical"] and c not in d["continuous"]]
    app.config = {**cfg.to_dict(), "data": d}
    app.save()


def _on_split() -> None:
    app = state.AppState.load()
    ss = st.session_state
    overrides = {f"data.{k}": ss[f"data_split_{k}"] for k in
                 ("split", "val_fraction", "test_fraction", "min_session_len", "dedup_consecutive")
                 if f"data_split_{k}" in ss}
    try:
        cfg = app.experiment().with_overrides(overrides)
        cfg.data.validate()
    except T4RError as e:
        ss["data_split_error"] = str(e)
        return
    ss.pop("data_split_error", None)
    app.set_experiment(cfg)
    app.save()


# ------------------------------------------------------------------------------ page


def choose_source(app: state.AppState) -> None:
    ui.seed("data_source", app.sample_key or "upload")
    st.radio("Source", list(SOURCES), format_func=SOURCES.get, key="data_source", on_change=_on_source,
             horizontal=True)
    if st.session_state["data_source"] in state.SAMPLES:
        st.caption(state.SAMPLES[st.session_state["data_source"]].note)
    else:
        st.file_uploader("Interactions: CSV, TSV, Parquet or JSON lines (optionally .gz), one row per event",
                         type=state.UPLOAD_TYPES, key="upload_file", on_change=_on_upload)
        with st.expander("Optional: a held-out test file, an item catalogue"):
            st.file_uploader("Test file with the same columns (the split becomes train/val + this file)",
                             type=state.UPLOAD_TYPES, key="upload_test", on_change=_on_test_upload)
            st.file_uploader("Item catalogue: item_id plus any of name, category, price (labels the charts)",
                             type=state.UPLOAD_TYPES, key="upload_items", on_change=_on_catalogue_upload)
    if st.session_state.get("data_upload_error"):
        st.error(st.session_state["data_upload_error"], icon=":material/error:")


def _infer(df, cfg: DataConfig, label: str) -> tuple[Schema | None, str | None]:
    try:
        return infer_schema(df, cfg, label), None
    except DataError as e:
        return None, str(e)


def roles(app: state.AppState, df) -> None:
    cfg = app.experiment()
    label = Path(app.data_path).name
    cols = [str(c) for c in df.columns]
    base, _ = _infer(df, DataConfig(sequence=cfg.data.sequence), label)
    base = base or Schema(session=None, item="")  # nothing inferred: every choice below is explicit
    schema, err = _infer(df, cfg.data, label)
    if schema is None:  # say why, and let the user pick the columns (the message names the fix)
        st.error(f"{err}. Choose the columns below.", icon=":material/error:")
        d = cfg.data
        schema = Schema(session=d.session_col, item=d.item_col or "", time=d.time_col, user=d.user_col)
    ui.seed("data_role_session", schema.session or cols[0])
    ui.seed("data_role_item", schema.item or cols[min(1, len(cols) - 1)])
    ui.seed("data_role_time", schema.time or NONE)
    ui.seed("data_role_user", schema.user or NONE)
    on = dict(on_change=_apply_roles, args=(df, base))
    c = st.columns(4)
    c[0].selectbox("Session id", cols, key="data_role_session", **on)
    c[1].selectbox("Item id", cols, key="data_role_item", **on)
    c[2].selectbox("Time", [NONE] + cols, key="data_role_time", **on,
                   help="Orders the events of a session and dates sessions for the time split.")
    c[3].selectbox("User id", [NONE] + cols, key="data_role_user", **on)
    taken = {schema.session, schema.item, schema.time, schema.date, schema.user, schema.position}
    options = [c for c in cols if c not in taken]
    ss = st.session_state
    ui.seed("data_role_categorical", [c for c in schema.categorical if c in options])
    ss["data_role_categorical"] = [c for c in ss["data_role_categorical"] if c in options]
    ui.seed("data_role_continuous", [c for c in schema.continuous if c in options])
    ss["data_role_continuous"] = [c for c in ss["data_role_continuous"] if c in options]
    c = st.columns(2)
    c[0].multiselect("Categorical side features", options, key="data_role_categorical", **on)
    c[1].multiselect("Continuous side features", options, key="data_role_continuous", **on)
    if st.session_state.get("data_role_error"):
        st.error(st.session_state["data_role_error"], icon=":material/error:")
    extra = [f"{col}: {role}" for col, role in schema.roles().items() if role in ("date", "position", "dropped")]
    if extra:
        st.caption("Also: " + md("; ".join(extra)))


def split_settings(app: state.AppState) -> None:
    d = app.experiment().data
    for k in ("split", "val_fraction", "test_fraction", "min_session_len", "dedup_consecutive"):
        ui.seed(f"data_split_{k}", getattr(d, k) if not (k == "split" and d.split == "file") else "time")
    c = st.columns(5)
    on = dict(on_change=_on_split)
    c[0].selectbox("Split", list(SPLITS), format_func=SPLITS.get, key="data_split_split", **on,
                   disabled=app.test_path is not None)
    c[1].number_input("Validation share", 0.0, 0.5, step=0.05, key="data_split_val_fraction", **on)
    c[2].number_input("Test share", 0.0, 0.5, step=0.05, key="data_split_test_fraction", **on,
                      disabled=app.test_path is not None)
    c[3].number_input("Min. session length", 1, 10, step=1, key="data_split_min_session_len", **on)
    c[4].checkbox("Drop back-to-back repeats", key="data_split_dedup_consecutive", **on)
    if st.session_state.get("data_split_error"):
        st.error(st.session_state["data_split_error"], icon=":material/error:")
    if app.test_path:
        st.caption(f"Test sessions come from {Path(app.test_path).name}.")
        if st.button("Use a split of the main file instead", key="data_drop_test"):
            app.test_path = None
            app.save()
            st.rerun()


def profile(app: state.AppState) -> None:
    cfg = app.experiment()
    prof = cache.profile(app.data_path, cfg.to_dict()["data"])
    s = prof["summary"]
    m = st.columns(5)
    m[0].metric("Events kept", f"{s['n_interactions']:,}", help=f"of {s['n_interactions_in']:,} rows read")
    m[1].metric("Sessions", f"{s['n_sessions']:,}")
    m[2].metric("Items", f"{s['n_items']:,}")
    m[3].metric("Median length", f"{s['session_length']['median']:g}")
    m[4].metric("Repeat rate", f"{100 * s['repeat_rate']:.1f}%", help="next items already seen in the session")
    if s["dropped"] or s["short_sessions_dropped"]:
        parts = [f"{k}: {v:,}" for k, v in s["dropped"].items()]
        st.caption("Dropped events: " + md(", ".join(parts)) + f" (sessions shorter than "
                   f"{cfg.data.min_session_len}: {s['short_sessions_dropped']:,})")
    cat = cache.catalogue_for(app.data_path)
    labels = cat.labels(prof["top_items"]) if cat is not None else [str(x) for x in prof["top_items"]]
    c = st.columns(2)
    c[0].plotly_chart(viz.session_length_histogram(prof["lengths"], cfg.model.max_len), key="fig_lengths")
    c[1].plotly_chart(viz.popularity_long_tail(prof["item_counts"]), key="fig_longtail")
    c = st.columns(2)
    c[0].plotly_chart(viz.activity_over_time(prof["start_time"]), key="fig_activity")
    c[1].plotly_chart(viz.top_items_bar(labels, prof["item_counts"][: len(labels)], n=15), key="fig_top_items")
    if cat is None:
        st.caption("Item names: none found. Put `<file stem>_items.csv` (item_id, name, category, price) next to "
                   "the data, or upload one above, to label items by name.")


def split_counts(app: state.AppState) -> None:
    cfg = app.experiment()
    data = cache.prepared(app.data_path, cfg.to_dict()["data"], app.test_path)
    counts = data.counts()
    c = st.columns([2, 1])
    c[0].plotly_chart(viz.split_counts_bar(counts, title=f"Split: {data.config.split}"), key="fig_split")
    rows = [{"split": k, **v, "unknown item events": data.unknown_items.get(k, 0)} for k, v in counts.items()]
    c[1].dataframe(rows, hide_index=True)
    c[1].caption("Encoders are fitted on train only: items first seen in val/test are 'unknown'.")
    ui.page_link("model", "Next: choose the model")


def main() -> None:
    app = state.AppState.load()
    choose_source(app)
    app = state.AppState.load()
    st.caption(f"Using: {md(app.data_label)}")
    try:
        df = cache.read_frame(app.data_path, app.experiment().data.sep)
    except DataError as e:
        st.error(str(e), icon=":material/error:")
        return
    with st.expander(f"First rows ({len(df):,} rows, {len(df.columns)} columns)"):
        st.dataframe(df.head(50), hide_index=True)
    st.subheader("Column roles", anchor=False)
    with ui.guard():
        roles(app, df)
    st.subheader("Split", anchor=False)
    split_settings(app)
    st.subheader("Profile", anchor=False)
    with ui.guard():
        profile(state.AppState.load())
    with ui.guard():
        split_counts(state.AppState.load())


with ui.guard():
    main()
