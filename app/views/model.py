"""Model: a preset or a custom architecture, explained choice by choice, as a YAML config."""

import json
import re

import streamlit as st

from app.components import cache, state, texts, ui
from t4r_core.config import BODIES, LOSSES, MASKINGS, ExperimentConfig, ModelConfig
from t4r_core.errors import ConfigError, T4RError
from t4r_core.presets import PRESET_DESCRIPTIONS, PRESETS, get_preset

CUSTOM = "Custom"
KNOBS = ("body", "masking", "d_model", "n_layers", "n_heads", "dropout", "max_len", "mlm_probability",
         "loss", "n_negatives", "aggregation")

st.title("Model")


def masking_reasons(body: str) -> dict[str, str]:
    """Every masking this body cannot train with, and the library's reason."""
    out = {}
    for m in MASKINGS:
        try:
            ModelConfig(body=body, masking=m, n_heads=1).validate()
        except ConfigError as e:
            found = re.search(r"\((.*)\);", str(e))
            out[m] = found.group(1) if found else str(e)
    return out


def _matching_preset(cfg: ExperimentConfig) -> str | None:
    for name in PRESETS:
        if get_preset(name, base=cfg).model == cfg.model:
            return name
    return None


# ------------------------------------------------------------------------------ callbacks


def _on_preset() -> None:
    name = st.session_state["model_preset"]
    if name == CUSTOM:
        return
    app = state.AppState.load()
    cfg = app.experiment()
    keep_lr = cfg.train.lr
    new = get_preset(name, base=cfg)
    new.train.lr = PRESETS[name].get("train", {}).get("lr", keep_lr)
    app.set_experiment(new)
    app.preset = name
    app.save()
    ui.forget("model_w_")
    st.session_state.pop("model_error", None)


def _on_knob() -> None:
    ss = st.session_state
    app = state.AppState.load()
    cfg = app.experiment()
    d = cfg.to_dict()
    for k in KNOBS:
        if f"model_w_{k}" in ss:
            d["model"][k] = ss[f"model_w_{k}"]
    if d["model"]["masking"] not in masking_options(d["model"]["body"]):
        d["model"]["masking"] = masking_options(d["model"]["body"])[0]
        ss["model_w_masking"] = d["model"]["masking"]
    if "model_w_categorical" in ss:
        d["model"]["categorical_features"] = {c: None for c in ss["model_w_categorical"]}
    if "model_w_continuous" in ss:
        d["model"]["continuous_features"] = list(ss["model_w_continuous"])
    try:
        new = ExperimentConfig.from_dict(d).validate()
    except ConfigError as e:
        ss["model_error"] = str(e)
        return
    ss.pop("model_error", None)
    app.set_experiment(new)
    app.preset = _matching_preset(new)
    ss["model_preset"] = app.preset or CUSTOM
    app.save()


def _on_yaml_upload() -> None:
    f = st.session_state.get("model_yaml_upload")
    if f is None:
        return
    try:
        cfg = ExperimentConfig.from_text(f.getvalue().decode("utf-8-sig", errors="replace")).validate()
    except T4RError as e:
        st.session_state["model_error"] = f"{f.name}: {e}"
        return
    app = state.AppState.load()
    app.set_experiment(cfg)
    app.preset = _matching_preset(cfg)
    app.save()
    ui.forget("model_w_", "model_preset", "data_role_", "data_split_")
    st.session_state.pop("model_error", None)


def masking_options(body: str) -> list[str]:
    bad = masking_reasons(body)
    return [m for m in MASKINGS if m not in bad]


# ------------------------------------------------------------------------------ page


def controls(app: state.AppState, data) -> None:
    cfg = app.experiment()
    m = cfg.model
    for k in KNOBS:
        ui.seed(f"model_w_{k}", getattr(m, k))
    on = dict(on_change=_on_knob)
    c = st.columns(2)
    body = c[0].selectbox("Body", BODIES, key="model_w_body", **on)
    c[0].caption(texts.BODIES[body])
    opts = masking_options(body)
    if st.session_state["model_w_masking"] not in opts:
        st.session_state["model_w_masking"] = opts[0]
    masking = c[1].selectbox("Masking (training objective)", opts, key="model_w_masking", **on)
    c[1].caption(texts.MASKINGS[masking])
    for bad, why in masking_reasons(body).items():
        c[1].caption(f":grey[Not available: {bad}, {why}.]")
    c = st.columns(5)
    c[0].number_input("d_model", 8, 1024, step=8, key="model_w_d_model", help=texts.KNOBS["d_model"], **on)
    c[1].number_input("Layers", 1, 12, key="model_w_n_layers", help=texts.KNOBS["n_layers"], **on)
    c[2].number_input("Heads", 1, 16, key="model_w_n_heads", help=texts.KNOBS["n_heads"], **on,
                      disabled=body in ("gru", "lstm"))
    c[3].slider("Dropout", 0.0, 0.6, step=0.05, key="model_w_dropout", help=texts.KNOBS["dropout"], **on)
    c[4].number_input("max_len", 2, 512, key="model_w_max_len", help=texts.KNOBS["max_len"], **on)
    c = st.columns(3)
    loss = c[0].selectbox("Loss", LOSSES, key="model_w_loss", **on)
    c[0].caption(texts.LOSSES[loss])
    if loss != "ce":
        c[1].number_input("Negatives", 1, 100_000, key="model_w_n_negatives", help=texts.KNOBS["n_negatives"], **on)
    if masking in ("mlm", "rtd"):
        c[2].slider("Mask probability", 0.05, 0.8, step=0.05, key="model_w_mlm_probability",
                    help=texts.KNOBS["mlm_probability"], **on)
    if data is not None and (data.encoders.categorical or data.encoders.continuous):
        st.markdown("**Side features** (from the Data page's column roles)")
        ui.seed("model_w_categorical", [c for c in m.categorical_features if c in data.encoders.categorical])
        ui.seed("model_w_continuous", [c for c in m.continuous_features if c in data.encoders.continuous])
        c = st.columns(3)
        c[0].multiselect("Categorical", list(data.encoders.categorical), key="model_w_categorical", **on)
        c[1].multiselect("Continuous", list(data.encoders.continuous), key="model_w_continuous", **on)
        agg = c[2].selectbox("Aggregation", ["concat", "sum", "sum_times_item"], key="model_w_aggregation", **on)
        c[2].caption(texts.AGGREGATIONS[agg])


def main() -> None:
    app = state.AppState.load()
    data = None
    try:
        data = cache.prepared(app.data_path, app.experiment().to_dict()["data"], app.test_path)
    except T4RError as e:
        st.warning(f"The data cannot be prepared yet ({e}); fix it on the Data page to see parameter counts.")
    ui.seed("model_preset", app.preset or CUSTOM)
    names = list(PRESETS) + [CUSTOM]
    preset = st.selectbox("Preset", names, key="model_preset", on_change=_on_preset,
                          help="Known models reproduced by config alone; change any knob below for a custom one.")
    if preset in PRESET_DESCRIPTIONS:
        st.info(PRESET_DESCRIPTIONS[preset], icon=":material/info:")
    if st.session_state.get("model_error"):
        st.error(st.session_state["model_error"], icon=":material/error:")
    controls(app, data)
    cfg = state.AppState.load().experiment()
    if data is not None:
        n = cache.parameter_count(json.dumps(cfg.to_dict()["model"]), data.n_items,
                                  json.dumps(data.encoders.cardinalities))
        emb = data.n_items * (cfg.model.item_dim or cfg.model.d_model)
        st.metric("Trainable parameters", f"{n:,}", help=f"of which the item table: {emb:,} "
                  f"({data.n_items:,} items x {cfg.model.item_dim or cfg.model.d_model})")
    st.subheader("Config", anchor=False)
    yaml_text = cfg.to_yaml()
    c = st.columns([3, 1])
    with c[0]:
        st.code(yaml_text, language="yaml", height=420)
    with c[1]:
        st.download_button("Download YAML", yaml_text, file_name="t4r_config.yaml", mime="application/x-yaml",
                           key="model_yaml_download")
        st.file_uploader("Load a config (YAML/JSON)", type=["yaml", "yml", "json"], key="model_yaml_upload",
                         on_change=_on_yaml_upload)
        st.caption("The same file runs from the CLI: `t4r train --config t4r_config.yaml --data FILE`.")
    ui.page_link("train", "Next: train it")


with ui.guard():
    main()
