"""The Streamlit app, page by page, with `streamlit.testing.v1.AppTest` (no browser, no server).

Every page loads without an exception; the main widgets act: choose a sample, change a column
role, pick a preset, train a tiny model for a few steps, see its metrics next to the baselines,
an attention heatmap, a recommendations table, the embedding map and the masking explorer.
Unexpected errors raise (T4R_APP_DEBUG=1) instead of becoming a one-line st.error.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HOME = str(ROOT / "app" / "Home.py")
PAGES = ["home", "data", "model", "train", "evaluate", "attention", "recommend", "embeddings", "masking"]
TIMEOUT = 180  # seconds per script run: first runs import torch/transformers on a busy machine


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "runs"
    monkeypatch.setenv("T4R_RUNS_DIR", str(d))
    monkeypatch.setenv("T4R_APP_DEBUG", "1")
    return d


def new_app() -> AppTest:
    at = AppTest.from_file(HOME, default_timeout=TIMEOUT)
    at.run()
    return at


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"views/{page}.py")
    at.run()
    assert_clean(at, page)
    return at


def assert_clean(at: AppTest, where: str = "") -> None:
    assert not at.exception, f"{where}: {[e.value for e in at.exception]}"
    assert not at.error, f"{where}: {[e.value for e in at.error]}"


def charts(at: AppTest) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def trace_types(at: AppTest) -> set[str]:
    return {t.get("type") for spec in charts(at) for t in spec.get("data", [])}


def saved_state(runs: Path) -> dict:
    return json.loads((runs / ".app_state.json").read_text())


def train_tiny(at: AppTest, runs: Path, preset: str = "SASRec+", steps: int = 5, stop: bool = False) -> str:
    """Model page: preset + d_model 16; Train page: a few steps (or many, then Stop); waits for the run."""
    goto(at, "model")
    at.selectbox(key="model_preset").set_value(preset).run()
    at.number_input(key="model_w_d_model").set_value(16).run()
    if preset != "GRU4Rec":
        at.number_input(key="model_w_n_heads").set_value(2).run()
    assert_clean(at, "model")
    goto(at, "train")
    at.number_input(key="train_w_max_steps").set_value(steps).run()
    at.number_input(key="train_w_batch_size").set_value(64).run()
    assert at.checkbox(key="train_w_group_by_length").value is True  # the default, seeded from the config
    at.checkbox(key="train_w_group_by_length").set_value(False).run()
    assert saved_state(runs)["config"]["train"]["group_by_length"] is False
    at.checkbox(key="train_w_group_by_length").set_value(True).run()
    assert saved_state(runs)["config"]["train"]["group_by_length"] is True
    at.button(key="train_start").click().run()
    assert_clean(at, "train start")
    deadline = time.time() + 240
    while time.time() < deadline:
        time.sleep(0.5)
        at.run()
        if stop and at.get("progress"):  # running: the live panel has a progress bar and a Stop button
            assert at.button(key="train_start").disabled
            at.button(key="train_stop").click().run()
            stop = False
        if at.success or at.error or at.exception:
            break
    assert_clean(at, "train")
    assert at.success and ("stopped early" if steps > 1000 else "finished after") in at.success[0].value
    name = saved_state(runs)["last_run"]
    assert (runs / name / "model.safetensors").is_file()
    return name


# ------------------------------------------------------------------------------ pages without a run


def test_every_page_loads_without_a_run(runs_dir):
    at = new_app()
    assert_clean(at, "home")
    assert at.title[0].value == "t4r-studio"
    for page in PAGES[1:]:
        goto(at, page)
    goto(at, "evaluate")
    assert any("No trained run yet" in i.value for i in at.info)


def test_data_page_sample_roles_and_split(runs_dir):
    at = goto(new_app(), "data")
    assert at.radio(key="data_source").value == "shop"
    assert len(charts(at)) == 5  # lengths, long tail, activity, top items, split
    assert {"bar", "scatter"} <= trace_types(at)
    top = next(s for s in charts(at) if s["layout"].get("title", {}).get("text") == "Most clicked items")
    assert any("Quilt" in y or "Lantern" in y or "Lamp" in y for y in top["data"][0]["y"])  # names, not SKUs

    # change a column role: event_type is no longer a side feature, the user id is dropped
    at.multiselect(key="data_role_categorical").set_value(["category"]).run()
    at.selectbox(key="data_role_user").set_value("(none)").run()
    assert_clean(at, "roles")
    data_cfg = saved_state(runs_dir)["config"]["data"]
    assert data_cfg["categorical"] == ["category"]
    assert "user_id" in data_cfg["drop"]

    # one column, two roles: refused with the fix, the saved config is untouched
    at.selectbox(key="data_role_session").set_value("item_id").run()
    assert not at.exception
    assert any("cannot be both the session and the item" in e.value for e in at.error)
    assert saved_state(runs_dir)["config"]["data"]["session_col"] is None
    at.selectbox(key="data_role_session").set_value("session_id").run()
    assert_clean(at, "roles fixed")

    # split settings are saved and their counts drawn
    at.number_input(key="data_split_test_fraction").set_value(0.2).run()
    assert_clean(at, "split")
    assert saved_state(runs_dir)["config"]["data"]["test_fraction"] == pytest.approx(0.2)

    # the real Diginetica sample: roles go back to inferred
    at.radio(key="data_source").set_value("diginetica").run()
    assert_clean(at, "diginetica")
    st = saved_state(runs_dir)
    assert st["data_path"].endswith("diginetica_sample.csv") and st["config"]["data"]["categorical"] is None
    assert at.selectbox(key="data_role_item").value == "item_id"

    # a refresh (a new browser session) keeps the choice
    at2 = goto(new_app(), "data")
    assert at2.radio(key="data_source").value == "diginetica"


def test_data_page_unguessable_columns_can_be_chosen(runs_dir):
    """A file whose columns say nothing: the error names the problem and the role pickers fix it."""
    data = runs_dir / "data" / "odd__00000000.csv"
    data.parent.mkdir(parents=True)
    rows = [f"{s},{i},{1_700_000_000 + 60 * s + k}" for s in range(1, 200) for k, i in enumerate((s % 7, s % 5, s % 3))]
    data.write_text("a,b,c\n" + "\n".join(rows) + "\n")
    from app.components import state

    st = state.AppState.load()
    st.choose_data(data, "Upload: odd.csv")
    st.save()
    at = goto_allowing_errors(new_app(), "data")
    assert any("no item column found" in e.value for e in at.error)
    at.selectbox(key="data_role_item").set_value("b").run()
    at.selectbox(key="data_role_time").set_value("c").run()
    assert_clean(at, "roles chosen")
    d = saved_state(runs_dir)["config"]["data"]
    assert (d["session_col"], d["item_col"], d["time_col"]) == ("a", "b", "c")
    assert len(charts(at)) == 5


def goto_allowing_errors(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"views/{page}.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_data_page_bad_split_shows_the_fix(runs_dir):
    at = goto(new_app(), "data")
    at.number_input(key="data_split_val_fraction").set_value(0.5).run()
    at.number_input(key="data_split_test_fraction").set_value(0.5).run()
    assert not at.exception
    assert any("val_fraction + data.test_fraction must be < 1" in e.value for e in at.error)


def test_model_page_presets_masking_and_yaml(runs_dir):
    at = goto(new_app(), "model")
    assert at.metric and int(at.metric[0].value.replace(",", "")) > 0
    at.selectbox(key="model_preset").set_value("BERT4Rec").run()
    assert_clean(at, "BERT4Rec")
    assert at.selectbox(key="model_w_body").value == "bert"
    assert at.selectbox(key="model_w_masking").value == "mlm"
    assert saved_state(runs_dir)["preset"] == "BERT4Rec"
    # a causal body offers only clm and says why the others are not available
    at.selectbox(key="model_w_body").set_value("gpt2").run()
    assert_clean(at, "gpt2")
    assert at.selectbox(key="model_w_masking").options == ["clm"]
    assert any("Not available: mlm" in c.value for c in at.caption)
    assert at.selectbox(key="model_preset").value == "Custom"
    # heads must divide d_model: the library's message, no traceback
    at.number_input(key="model_w_n_heads").set_value(3).run()
    assert not at.exception
    assert any("divisible" in e.value for e in at.error)
    code = at.code[0].value
    assert "model:" in code and "body: gpt2" in code


def test_train_evaluate_attention_recommend_embeddings(runs_dir):
    at = new_app()
    name = train_tiny(at, runs_dir)
    assert at.dataframe, "test metrics of the finished run"
    assert {"ndcg@10", "recall@20", "mrr@5", "map@10", "precision@20"} <= set(at.dataframe[0].value.columns)

    goto(at, "evaluate")
    table = at.dataframe[0].value
    assert list(table.index) == [name, "Pop", "V-SKNN"]
    wanted = {f"{m}@{k}" for m in ("ndcg", "recall", "mrr", "map", "precision") for k in (5, 10, 20)}
    assert wanted <= set(table.columns)
    assert len(charts(at)) >= 3  # bars + two breakdowns
    at.toggle(key=f"eval_excl_{name}").set_value(True).run()  # re-evaluated, baselines too
    assert_clean(at, "exclude seen")
    assert list(at.dataframe[0].value.index) == [name, "Pop", "V-SKNN"]
    assert any("exclude seen items: on" in c.value for c in at.caption)

    goto(at, "attention")
    assert "heatmap" in trace_types(at)
    recs = next(d.value for d in at.dataframe)
    assert len(recs) == 10 and {"rank", "name", "score", "true next"} <= set(recs.columns)
    heat = next(t for s in charts(at) for t in s["data"] if t["type"] == "heatmap")
    assert any(re.search(r"[A-Za-z]", x) for x in heat["x"])  # axes carry item names
    at.radio(key="att_view").set_value("Rollout through all layers").run()
    assert_clean(at, "rollout")
    assert "heatmap" in trace_types(at)
    at.radio(key="att_mode").set_value("Compose a session").run()
    at.text_input(key="att_typed").set_value("SKU-00042, SKU-00007, SKU-00042, NOT-AN-ITEM").run()
    assert_clean(at, "compose")
    assert any("NOT-AN-ITEM" in w.value for w in at.warning)  # unknown ids are named, not fatal
    heat = next(t for s in charts(at) for t in s["data"] if t["type"] == "heatmap")
    assert len(heat["x"]) == 4

    goto(at, "recommend")
    rec = at.dataframe[-1].value
    assert len(rec) == 10 and {"rank", "item", "name", "category", "price", "score", "hit"} <= set(rec.columns)
    at.slider(key="rec_k").set_value(20).run()
    at.checkbox(key="rec_exclude").check().run()
    assert_clean(at, "recommend k=20")
    assert len(at.dataframe[-1].value) == 20
    assert not (at.dataframe[-1].value["in session"] == "•").any()  # seen items excluded

    goto(at, "embeddings")
    assert "scattergl" in trace_types(at)
    assert len(at.dataframe[0].value) == 10  # nearest neighbours

    goto(at, "masking")
    assert "heatmap" in trace_types(at)

    # a new session (a browser refresh) finds the run again
    at2 = goto(new_app(), "attention")
    assert at2.selectbox(key="att_run").value == name


def test_stop_button_then_rnn_attention_page_offers_saliency(runs_dir):
    at = new_app()
    name = train_tiny(at, runs_dir, preset="GRU4Rec", steps=100_000, stop=True)
    env = json.loads((runs_dir / name / "environment.json").read_text())
    assert env["stopped_by_user"] and env["global_step"] < 100_000
    goto(at, "attention")
    assert any("no attention weights" in i.value for i in at.info)
    assert "bar" in trace_types(at) and "heatmap" not in trace_types(at)
    assert at.dataframe  # the top recommendations still show


# ------------------------------------------------------------------------------ pieces without Streamlit


def test_upload_names_are_sanitised(tmp_path, monkeypatch):
    monkeypatch.setenv("T4R_RUNS_DIR", str(tmp_path / "runs"))
    from app.components import state
    from t4r_core.errors import DataError

    assert state.safe_filename("../../etc/passwd.csv") == "passwd.csv"
    assert state.safe_filename("..\\..\\evil name (1).tsv") == "evil_name_1_.tsv"
    assert state.safe_filename(".hidden.parquet") == "hidden.parquet"
    for bad in ("run.sh", "x.py", "", "...", "../"):
        with pytest.raises(DataError):
            state.safe_filename(bad)
    for name in ("../../x.csv", "/etc/y.csv.gz", "a/b/../../z.jsonl"):
        p = state.upload_path(name, b"abc")
        assert p.parent == (tmp_path / "runs" / "data").resolve()
    data = state.upload_path("clicks.csv.gz", b"abc")
    assert data.name.startswith("clicks__") and data.name.endswith(".csv.gz")
    cat = state.catalogue_path_for(data, "../names.csv")
    assert cat.parent == data.parent and cat.name == data.name.replace(".csv.gz", "_items.csv")


def test_state_file_is_atomic_and_tolerant(tmp_path, monkeypatch):
    monkeypatch.setenv("T4R_RUNS_DIR", str(tmp_path))
    from app.components import state

    st = state.AppState.load()  # no file yet: defaults
    assert st.data_path.endswith("shop_sessions.csv") and st.preset == "SASRec+"
    st.last_run = "nope"
    st.save()
    assert not list(tmp_path.glob("*.tmp"))
    assert state.AppState.load().last_run is None  # a pointer to a missing run is dropped
    (tmp_path / ".app_state.json").write_text("{not json")
    assert state.AppState.load().data_label == state.SAMPLES["shop"].label
    (tmp_path / ".app_state.json").write_text(json.dumps({"config": {"model": {"body": "nope"}}, "data_path": "/x"}))
    st = state.AppState.load()
    assert st.experiment().model.body == "gpt2" and Path(st.data_path).is_file()


def test_app_never_renders_user_text_as_html():
    offenders = [str(p) for p in (ROOT / "app").rglob("*.py") if "unsafe_allow_html" in p.read_text()]
    assert offenders == []
    assert os.path.isfile(ROOT / ".streamlit" / "config.toml")
    cfg = (ROOT / ".streamlit" / "config.toml").read_text()
    assert 'address = "127.0.0.1"' in cfg and "maxUploadSize" in cfg and "gatherUsageStats = false" in cfg
