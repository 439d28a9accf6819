"""Evaluate: the run's metrics next to Pop and V-SKNN, saved runs compared, and where it wins or loses."""

import pandas as pd
import streamlit as st

from app.components import cache, state, ui
from app.components.ui import md
from t4r_core import explain, viz
from t4r_core.runs import compare_runs

st.title("Evaluate")
FAMILIES = ["ndcg", "recall", "mrr", "map", "precision"]


def metrics_section(run) -> None:
    stamp = cache.run_stamp(run.path)
    data_ok = cache.run_data(run) is not None
    trained_excl = bool(run.metrics.get("exclude_seen", run.config.eval.exclude_seen))
    excl = st.toggle("Exclude items already in the session from the ranking", value=trained_excl,
                     key=f"eval_excl_{run.name}", disabled=not data_ok,
                     help="Off by default for session data: 35-45% of real next items are repeats.")
    results = {run.name: cache.run_test_metrics(str(run.path), stamp, excl)}
    if data_ok:
        results.update(cache.baseline_metrics(str(run.path), stamp, excl))
    else:
        st.warning("The run's data file is no longer there: baselines and breakdowns need it.")
    ks = tuple(run.config.eval.ks)
    table = viz.metrics_table(results, FAMILIES, ks)
    n = results[run.name].get("n_examples")
    st.caption(f"Test split, protocol '{run.config.eval.protocols[0]}' (predict each session's last item)"
               + (f", {int(n):,} examples" if n else "") + f", exclude seen items: {'on' if excl else 'off'}. "
               "Full ranking over every item.")
    st.dataframe(table.style.format("{:.4f}").highlight_max(axis=0, color="#D3F9D8"), key="eval_table")
    fams = st.pills("Metrics in the chart", FAMILIES, selection_mode="multi", default=["ndcg", "recall"],
                    key="eval_families") or FAMILIES
    st.plotly_chart(viz.metrics_bars(table, fams, title="Run vs baselines (test)"), key="fig_eval_bars")
    if not run.history.empty:
        with st.expander("Training history"):
            hist = run.history
            losses = hist[["step", "loss"]].dropna() if "loss" in hist else pd.DataFrame()
            evals = hist[["step", "ndcg@10"]].dropna() if "ndcg@10" in hist else pd.DataFrame()
            st.plotly_chart(viz.training_curves(losses, evals, "ndcg@10"), key="fig_eval_history")
    return excl


def breakdown_section(run, excl: bool) -> None:
    if cache.run_data(run) is None:
        return
    per = cache.per_example(str(run.path), cache.run_stamp(run.path), excl)
    if not per:
        st.info("No test sessions to break down.")
        return
    metric = st.selectbox("Metric", ["recall@20", "ndcg@10", "mrr@20", "recall@10", "ndcg@20"], key="eval_bd_metric")
    pop = run.item_popularity
    c = st.columns(2)
    for col, by, title in ((c[0], "length", "By session length (items before the target)"),
                           (c[1], "popularity", "By target popularity in training")):
        df = pd.concat([explain.breakdown(d, by, pop).assign(model=name) for name, d in per.items()])
        col.plotly_chart(viz.breakdown_chart(df, "group", metric, title=title), key=f"fig_bd_{by}")


def compare_section(app) -> None:
    folder = state.runs_dir()
    names = cache.run_names(folder)
    if len(names) < 2:
        st.caption("Train another run (another preset, say) to compare runs here.")
        return
    chosen = st.multiselect("Runs", names, default=names[:8], key="eval_compare_runs")
    if not chosen:
        return
    df = compare_runs([cache.load_run(folder / n) for n in chosen])
    options = [c for c in df.columns if "@" in c] or ["ndcg@10"]
    metric = st.selectbox("Metric", options, index=options.index("ndcg@10") if "ndcg@10" in options else 0,
                          key="eval_compare_metric")
    st.plotly_chart(viz.runs_comparison(df, metric), key="fig_compare")
    st.dataframe(df, hide_index=True, key="eval_compare_table")


def time_windows_section(run) -> None:
    """Runs made by `t4r timewindows`: each window's metrics for the model and the baselines."""
    table = pd.DataFrame(run.metrics["windows"])
    options = [c for c in table.columns if "@" in c]
    chosen = st.multiselect("Metrics", options, default=[m for m in ("ndcg@10", "recall@20") if m in options],
                            key="eval_tw_metrics") or options[:1]
    st.plotly_chart(viz.time_window_lines(table, chosen), key="fig_eval_tw")
    st.caption(f"Regime '{run.metrics.get('regime')}', window '{run.metrics.get('window')}'. Averages over windows: "
               "the model's in the metrics table below; the second half of the windows (the Transformers4Rec "
               "paper's test half) in the last rows here.")
    cols = ["window", "start", "model", "protocol", "train_sessions", "test_sessions"] + options
    st.dataframe(table[[c for c in cols if c in table]], hide_index=True, key="eval_tw_table")


def main() -> None:
    app = state.AppState.load()
    run = ui.pick_run(app, "eval_run")
    if run is None:
        return
    if "windows" in run.metrics:
        st.subheader("Over time", anchor=False)
        with ui.guard():
            time_windows_section(run)
    st.subheader("Metrics", anchor=False)
    excl = metrics_section(run)
    st.subheader("Where it works", anchor=False)
    with ui.guard():
        breakdown_section(run, excl)
    st.subheader("Saved runs", anchor=False)
    with ui.guard():
        compare_section(app)
    st.caption(f"Runs live in {md(state.runs_dir())}; each folder reloads with `t4r_core.Run.load(path)`.")


with ui.guard():
    main()
