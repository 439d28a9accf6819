"""The data layer on real files: the Diginetica sample and the OTTO sample (bundled or shared), the
full Diginetica set with the published protocol's exact counts, and the generated shop data."""

from __future__ import annotations

import numpy as np
import pytest

from t4r_core.cli import main
from t4r_core.config import DataConfig
from t4r_core.data import prepare_data
from t4r_core.ingest import read_table
from t4r_core.profile import profile_file

from .paths import SAMPLE_DATA, shared_file


def test_diginetica_sample_profile():
    p = profile_file(shared_file("diginetica_sample/sample_train-item-views.csv"))
    assert p["n_interactions_in"] == 12_391
    assert p["short_sessions_dropped"] == 933 and p["dropped"]["short_session"] == 933
    assert p["n_sessions"] == 2_986 - 933
    assert p["columns"] == {"session_id": "session", "item_id": "item", "timeframe": "time",
                            "eventdate": "date", "user_id": "user"}
    assert p["time_range"] == {"start": "2016-01-03T00:00:00", "end": "2016-06-01T00:00:00"}


def test_diginetica_sample_sorted_by_timeframe():
    path = shared_file("diginetica_sample/sample_train-item-views.csv")
    df = read_table(path)
    assert df["user_id"].isna().mean() > 0.5  # NA user ids read as missing, not the string "NA"
    data = prepare_data(path, DataConfig(val_fraction=0, test_fraction=0))
    # session 1's rows are not in time order in the file; ours must be
    s0 = int(np.flatnonzero(data.train.session_ids == 1)[0])
    tf = df[df.session_id == 1].sort_values("timeframe", kind="stable").item_id.tolist()
    assert list(data.encoders.items.decode(data.train.session(s0))) == tf


def test_bundled_diginetica_sample_is_the_real_one():
    p = profile_file(SAMPLE_DATA / "diginetica_sample.csv")
    assert p["n_interactions_in"] == 12_391 and p["short_sessions_dropped"] == 933


def test_otto_nested_jsonl():
    p = profile_file(shared_file("otto_sample/train.jsonl"))
    assert p["n_sessions"] == 20 and p["n_interactions"] == 862 and p["n_items"] == 510
    assert p["session_length"]["min"] == 2 and p["session_length"]["max"] == 276
    assert p["columns"] == {"session": "session", "aid": "item", "ts": "time", "type": "categorical"}
    assert p["time_range"]["start"].startswith("2022-07-31")


def test_diginetica_published_protocol_counts():
    train = shared_file("diginetica/train.csv")
    test = shared_file("diginetica/test.csv")
    data = prepare_data(train, DataConfig(val_fraction=0), test=test)
    assert len(data.train) == 186_670 and data.train.n_events == 906_140
    assert len(data.splits["test"]) == 15_963
    assert data.encoders.items.n_values == 43_097
    ex = data.eval_examples("test", "all_next", max_len=20)
    assert len(ex["target"]) == 60_858
    assert data.unknown_items["test"] == 0
    assert len(data.eval_examples("test", "last", max_len=20)["target"]) == 15_963


def test_cli_profile_json_on_diginetica_sample(capsys):
    import json

    rc = main(["profile", str(shared_file("diginetica_sample/sample_train-item-views.csv")), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    for key in ("n_interactions", "n_sessions", "n_items", "session_length", "time_range", "columns", "dropped"):
        assert key in out
    assert set(out["session_length"]) >= {"min", "median", "mean", "max"}


def test_cli_overrides_and_readable_table(capsys):
    path = SAMPLE_DATA / "diginetica_sample.csv"
    rc = main(["profile", str(path), "--session-col", "session_id", "--item-col", "item_id", "--sep", ";"])
    out = capsys.readouterr().out
    assert rc == 0 and "sessions" in out and "2,053" in out


def test_generated_shop_data():
    path = SAMPLE_DATA / "shop_sessions.csv"
    data = prepare_data(path)
    assert set(data.schema.categorical) >= {"category", "event_type"}
    assert "price" in data.schema.continuous
    assert data.schema.user == "user_id"
    assert len(data.train) > 10_000
    c = data.counts()
    assert c["train"]["sessions"] > c["test"]["sessions"] > 0
    # time split: test sessions are the latest
    assert data.splits["test"].start_time.min() >= data.splits["train"].start_time.max()


def test_profile_details_arrays_agree_with_the_summary():
    """The arrays behind the Data page's figures (and the notebooks') describe the same sessions."""
    from t4r_core.profile import profile_details, profile_frame

    df = read_table(SAMPLE_DATA / "diginetica_sample.csv")
    d = profile_details(df, label="sample")
    assert d["summary"] == profile_frame(df, label="sample")
    s = d["summary"]
    assert len(d["lengths"]) == len(d["start_time"]) == s["n_sessions"]
    assert int(d["lengths"].sum()) == int(d["item_counts"].sum()) == s["n_interactions"]
    assert len(d["item_counts"]) == s["n_items"] and np.all(np.diff(d["item_counts"]) <= 0)
    top = df[df.session_id.isin(df.session_id.value_counts().index[df.session_id.value_counts() >= 2])]
    assert d["top_items"][0] == top.item_id.value_counts().index[0]
