"""Train: live progress (bar, ETA, loss and validation curves) of a run training in the background."""

import math
import time

import streamlit as st

from app.components import cache, jobs, state, texts, ui
from app.components.ui import md
from t4r_core import viz
from t4r_core.errors import T4RError

st.title("Train")
TRAIN_KEYS = ("epochs", "batch_size", "lr", "max_steps", "group_by_length")


def _on_setting() -> None:
    ss = st.session_state
    app = state.AppState.load()
    over = {f"train.{k}": ss[f"train_w_{k}"] for k in TRAIN_KEYS if f"train_w_{k}" in ss}
    over["train.max_steps"] = int(over.get("train.max_steps", 0)) or -1
    try:
        app.set_experiment(app.experiment().with_overrides(over).validate())
    except T4RError as e:
        ss["train_error"] = str(e)
        return
    ss.pop("train_error", None)
    app.save()


def _start() -> None:
    ss = st.session_state
    app = state.AppState.load()
    cfg = app.experiment()
    try:
        cfg.validate()
        data = cache.prepared(app.data_path, cfg.to_dict()["data"], app.test_path)
        reg = jobs.registry()
        name = jobs.unique_run_name(ss.get("train_w_name") or jobs.default_run_name(app.preset, cfg),
                                    state.runs_dir(), set(reg.jobs))
        reg.start(cfg, data, state.runs_dir(), name, app.data_label,
                  {"train": app.data_path, "test": app.test_path})
    except T4RError as e:
        ss["train_error"] = str(e)
        return
    ss.pop("train_error", None)
    ss.pop("train_w_name", None)  # a fresh default name for the next run


def _stop() -> None:
    job = jobs.registry().active()
    if job is not None:
        job.request_stop()


def fmt_time(s) -> str:
    if s is None or not math.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}"


def settings(app: state.AppState, running: bool) -> None:
    cfg = app.experiment()
    t = cfg.train
    ui.seed("train_w_epochs", t.epochs)
    ui.seed("train_w_batch_size", t.batch_size)
    ui.seed("train_w_lr", t.lr)
    ui.seed("train_w_max_steps", max(t.max_steps, 0))
    ui.seed("train_w_group_by_length", t.group_by_length)
    ui.seed("train_w_name", jobs.default_run_name(app.preset, cfg))
    on = dict(on_change=_on_setting, disabled=running)
    c = st.columns(5)
    c[0].number_input("Epochs", 1, 500, key="train_w_epochs", help=texts.KNOBS["epochs"], **on)
    c[1].number_input("Batch size", 1, 65536, step=32, key="train_w_batch_size", help=texts.KNOBS["batch_size"], **on)
    c[2].number_input("Learning rate", 1e-6, 1.0, step=1e-4, format="%.5f", key="train_w_lr",
                      help=texts.KNOBS["lr"], **on)
    c[3].number_input("Max steps (0 = all epochs)", 0, 10_000_000, key="train_w_max_steps",
                      help=texts.KNOBS["max_steps"], **on)
    c[4].text_input("Run name", key="train_w_name", disabled=running, max_chars=60)
    st.checkbox("Batches of similar-length sessions", key="train_w_group_by_length",
                help=texts.KNOBS["group_by_length"], **on)
    if st.session_state.get("train_error"):
        st.error(st.session_state["train_error"], icon=":material/error:")


def live() -> None:
    """Redrawn every second while a job runs (st.fragment); the rest of the page is untouched."""
    reg = jobs.registry()
    job = reg.current()
    if job is None:
        return
    snap = job.snapshot()
    ss = st.session_state
    was_active = ss.get("train_seen_status") in jobs.ACTIVE
    ss["train_seen_status"] = snap["status"]
    if was_active and snap["status"] not in jobs.ACTIVE:
        st.rerun()  # the whole page: enable Start again, update the sidebar
    st.subheader(f"Run {snap['run_name']}", anchor=False)
    last, total = snap["last"], snap["max_steps"] or 0
    step = last.get("step", 0)
    status = snap["status"]
    if status in jobs.ACTIVE:
        loss = last.get("loss")
        text = (f"{status}: step {step}/{total or '?'} · epoch {last.get('epoch', 0):.2f} · "
                f"loss {loss:.4f} · " if loss is not None else f"{status}: step {step}/{total or '?'} · ")
        text += f"ETA {fmt_time(last.get('eta_s'))} · {last.get('seq_per_s', 0):,.0f} sessions/s"
        if step and total and step >= total:
            text = "evaluating the validation and test splits, then saving the run…"
        st.progress(min(step / total, 1.0) if total else 0.0, text=text)
        st.button("Stop", key="train_stop", on_click=_stop, icon=":material/stop_circle:",
                  disabled=status == "stopping", help="Ends training at the next step; the run is still evaluated "
                  "and saved.")
    elif status == "failed":
        st.error(f"Training failed: {snap['error']}", icon=":material/error:")
    else:
        took = (snap["finished"] or time.time()) - snap["started"]
        how = "stopped early and saved" if snap["stopped_by_user"] else "finished"
        st.success(f"Run {snap['run_name']} {how} after {step} steps in {fmt_time(took)} (min:s).",
                   icon=":material/check_circle:")
    metric = "ndcg@10"
    st.plotly_chart(viz.training_curves(snap["losses"], snap["evals"], metric, total or None),
                    key="fig_training")
    if status == "done" and snap["metrics"]:
        test = snap["metrics"].get("test") or snap["metrics"].get("val") or {}
        proto = next(iter(test), None)
        if proto:
            table = viz.metrics_table({snap["run_name"]: test[proto]}, ks=(5, 10, 20))
            st.dataframe(table.style.format("{:.4f}"), key="train_metrics")
        c = st.columns(3)
        with c[0]:
            ui.page_link("evaluate", "Compare with baselines")
        with c[1]:
            ui.page_link("attention", "See attention maps")
        with c[2]:
            ui.page_link("recommend", "Get recommendations")


def main() -> None:
    app = state.AppState.load()
    cfg = app.experiment()
    reg = jobs.registry()
    running = reg.active() is not None
    c = st.columns([2, 1])
    c[0].markdown(f"**{md(app.preset or 'Custom')}**: {md(cfg.model.body)} body, {md(cfg.model.masking)} masking, "
                  f"d_model {cfg.model.d_model}, {cfg.model.n_layers} layer(s), loss {md(cfg.model.loss)} · "
                  f"data: {md(app.data_label)}")
    c[1].markdown(f"**Device**: {md(cache.device_text())}")
    c[1].caption("A CUDA GPU is used automatically when present.")
    settings(app, running)
    try:
        data = cache.prepared(app.data_path, cfg.to_dict()["data"], app.test_path)
        n_train = len(data.train)
        steps = math.ceil(n_train / max(cfg.train.batch_size, 1)) * cfg.train.epochs
        if cfg.train.max_steps > 0:
            steps = min(steps, cfg.train.max_steps)
        st.caption(f"{n_train:,} training sessions → about {steps:,} steps. Validation after each epoch "
                   f"(NDCG@10 picks the best epoch); test metrics at the end.")
    except T4RError as e:
        st.error(str(e), icon=":material/error:")
        return
    st.button("Start training", key="train_start", type="primary", on_click=_start, disabled=running,
              icon=":material/play_arrow:")
    job = reg.current()
    every = 1.0 if job is not None and job.active else None
    st.fragment(live, run_every=every)()


with ui.guard():
    main()
