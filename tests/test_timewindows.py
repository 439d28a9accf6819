"""Time-window training: windows, no leakage into training, and drift tracking."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import t4r_core.timewindows as tw
from t4r_core import ExperimentConfig
from t4r_core.cli import main
from t4r_core.errors import DataError

from .toydata import drifting_log, successor_log

TINY = ["model.d_model=16", "model.n_heads=2", "model.n_layers=1", "model.max_len=6", "model.dropout=0.0",
        "model.input_dropout=0.0", "train.batch_size=32", "train.lr=0.01", "train.epochs=8", "eval.ks=[1, 5]"]


def test_assign_windows_by_day_hour_and_count():
    t = np.array([0, 10, 86400 + 5, 3 * 86400])  # day 2 is empty: skipped
    idx, labels = tw.assign_windows(t.astype(float), "day")
    assert idx.tolist() == [0, 0, 1, 2] and labels[0].startswith("1970-01-01")
    idx, _ = tw.assign_windows(t.astype(float), 2)
    assert idx.tolist() == [0, 0, 0, 1]
    with pytest.raises(Exception, match="unknown window"):
        tw.assign_windows(t.astype(float), "fortnight")


def test_summary_counts_sessions_per_window():
    cfg = ExperimentConfig()
    data, win, labels = tw.prepare_windows(drifting_log(n_days=3), cfg, "day")
    s = tw.window_summary(data.splits["train"], win, labels)
    assert s["sessions"].tolist() == [150, 150, 150] and s["events"].tolist() == [750] * 3


def test_single_window_is_refused():
    with pytest.raises(DataError, match="all sessions fall in one day window"):
        tw.prepare_windows(successor_log(n_sessions=10), ExperimentConfig(), "day")


def test_no_window_trains_on_its_evaluation_window(monkeypatch, tmp_path):
    seen = []
    real_fit = tw.fit

    def spy(model, cfg, data, ckpt, **kw):
        seen.append(set(data.splits["train"].start_time.tolist()))
        return real_fit(model, cfg, data, ckpt, **kw)

    monkeypatch.setattr(tw, "fit", spy)
    cfg = ExperimentConfig().with_overrides(TINY + ["train.max_steps=2"])
    run = tw.run_time_windows(drifting_log(n_days=3), cfg, tmp_path / "r", regime="retrain", baselines=[])
    rows = run.metrics["windows"]
    assert len(seen) == 2  # trained for windows 1 and 1..2, evaluated on 2 and 3
    for times, row in zip(seen, rows):
        assert max(times) < row["test_first_start"]
        assert row["train_last_start"] < row["test_first_start"]


def test_incremental_tracks_drift_better_than_training_once(tmp_path):
    df = drifting_log(n_days=4, items_per_day=24)
    cfg = ExperimentConfig().with_overrides(TINY)
    inc = tw.run_time_windows(df, cfg, tmp_path / "inc", regime="incremental", baselines=["pop"])
    once = tw.run_time_windows(df, cfg, tmp_path / "once", regime="first", baselines=[])
    r_inc = inc.metrics["test"]["last"]["recall@1"]
    r_once = once.metrics["test"]["last"]["recall@1"]
    assert r_inc > 0.3 and r_inc > r_once + 0.15, (r_inc, r_once)  # the carried model follows the days
    assert "pop" in inc.metrics["baselines"]
    assert set(inc.metrics["second_half"]["last"]) == set(inc.metrics["test"]["last"])
    assert (inc.path / "model.safetensors").exists() and len(inc.history) == 3 * 2  # 3 windows x (model, pop)


def test_cli_timewindows_json(tmp_path, capsys):
    data = tmp_path / "drift.csv"
    drifting_log(n_days=3).to_csv(data, index=False)
    rc = main(["timewindows", "--data", str(data), "--window", "day", "--out", str(tmp_path / "tw"),
               "--regime", "incremental", "--baselines", "pop", "--json", "--set", *TINY, "train.max_steps=3"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(out["windows"]) == 2 * 2
    assert {"last"} == set(out["test"]) and "pop" in out["baselines"]


def test_app_evaluate_page_shows_windows(tmp_path, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from t4r_core import viz

    runs = tmp_path / "runs"
    monkeypatch.setenv("T4R_RUNS_DIR", str(runs))
    monkeypatch.setenv("T4R_APP_DEBUG", "1")
    data = tmp_path / "drift.csv"
    drifting_log(n_days=3).to_csv(data, index=False)
    cfg = ExperimentConfig().with_overrides(TINY + ["train.max_steps=2"])
    run = tw.run_time_windows(data, cfg, runs / "tw", baselines=["pop"])
    fig = viz.time_window_lines(pd.DataFrame(run.metrics["windows"]), ["recall@5"])
    assert len(fig.data) == 2  # model and pop
    from app.components import state

    st = state.AppState.load()
    st.choose_data(data, "drift.csv")
    st.last_run = "tw"
    st.save()
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app" / "Home.py"), default_timeout=180)
    at.run()
    at.switch_page("views/evaluate.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.dataframe  # the per-window table
    specs = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    assert any("Metrics over time" in str(s.get("layout", {}).get("title", "")) for s in specs)
