"""Data layer on small hand-made tables: ordering, dedup, filtering, encoding, splits, padding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from t4r_core.config import DataConfig
from t4r_core.data import SequenceDataset, make_loader, next_item_examples, pad_sessions, prepare_data
from t4r_core.errors import DataError
from t4r_core.schema import infer_schema
from t4r_core.sessions import build_sessions
from t4r_core.splits import split_sessions
from t4r_core.vocab import MASK, N_RESERVED, PAD, UNK, Vocab


def frame(rows, cols=("session_id", "item_id", "timestamp")):
    return pd.DataFrame(rows, columns=list(cols))


def test_sort_by_time_within_session_is_stable():
    df = frame([(1, "c", 30), (1, "a", 10), (2, "x", 5), (1, "b", 20), (1, "b2", 20), (2, "y", 1)])
    cfg = DataConfig(min_session_len=1)
    s, rep = build_sessions(df, infer_schema(df, cfg), cfg)
    assert list(s.session(0)) == ["a", "b", "b2", "c"]  # equal times keep file order
    assert list(s.session(1)) == ["y", "x"]
    assert rep.n_interactions_in == 6 and rep.n_interactions == 6


def test_dedup_and_min_len_counts():
    df = frame([(1, "a", 1), (1, "a", 2), (1, "b", 3), (1, "a", 4), (2, "z", 1), (2, "z", 2), (3, "q", 1)])
    cfg = DataConfig(dedup_consecutive=True, min_session_len=2)
    s, rep = build_sessions(df, infer_schema(df, cfg), cfg)
    assert [list(s.session(i)) for i in range(len(s))] == [["a", "b", "a"]]  # a->a removed, not a..a
    assert rep.dropped == {"consecutive_duplicate": 2, "short_session": 2}
    assert rep.n_short_sessions == 2
    assert rep.n_interactions_in == rep.n_interactions + sum(rep.dropped.values())


def test_no_time_column_uses_position_then_file_order():
    df = pd.DataFrame({"session_id": [1, 1, 1], "item_id": [5, 6, 7], "position": [2, 0, 1]})
    s, _ = build_sessions(df, infer_schema(df), DataConfig())
    assert list(s.session(0)) == [6, 7, 5]
    df2 = pd.DataFrame({"session_id": [1, 2, 1], "item_id": [5, 6, 7]})
    s2, _ = build_sessions(df2, infer_schema(df2), DataConfig(min_session_len=1))
    assert list(s2.session(0)) == [5, 7]


@pytest.mark.parametrize(
    "values,unit",
    [([1_600_000_000, 1_600_000_060], "s"), ([1_600_000_000_000, 1_600_000_060_000], "ms"),
     ([1_600_000_000_000_000, 1_600_000_060_000_000], "us"), (["2020-09-13T12:26:40", "2020-09-13T12:27:40"], "datetime"),
     (["2020-09-13", "2020-09-14"], "datetime")],
)
def test_time_units(values, unit):
    df = frame([(1, "a", values[0]), (1, "b", values[1])])
    s, rep = build_sessions(df, infer_schema(df), DataConfig())
    assert rep.time_unit == unit
    assert pd.Timestamp(s.start_time[0], unit="s").year == 2020


def test_schema_inference_names_and_features():
    df = pd.DataFrame({
        "SessionId": [1, 1, 2, 2] * 30, "ItemId": list(range(120)), "Time": np.arange(120) + 1_600_000_000,
        "category": ["a", "b", "c", "d"] * 30, "price": np.linspace(1, 99, 120), "const": 1,
    })
    sc = infer_schema(df)
    assert (sc.session, sc.item, sc.time) == ("SessionId", "ItemId", "Time")
    assert sc.categorical == ["category"] and sc.continuous == ["price"] and sc.dropped == ["const"]
    sc2 = infer_schema(df, DataConfig(categorical=[], continuous=["price"], drop=["category"]))
    assert sc2.categorical == [] and "category" in sc2.dropped
    with pytest.raises(DataError, match="'nope' given as data.item_col is not in the data"):
        infer_schema(df, DataConfig(item_col="nope"))


def test_vocab_reserved_ids_and_roundtrip(tmp_path):
    v = Vocab.fit(pd.Series(["b", "a", "b", "c"]))
    ids = v.encode(pd.Series(["b", "a", "zzz", "c"]))
    assert ids[0] == N_RESERVED  # most frequent first
    assert ids[2] == UNK and (ids != PAD).all() and (ids != MASK).all()
    assert list(v.decode(ids)) == ["b", "a", "[UNK]", "c"]
    v.save(tmp_path / "v.parquet")
    assert list(Vocab.load(tmp_path / "v.parquet").values) == list(v.values)
    vi = Vocab.fit(np.array([10, 20, 10]))
    vi.save(tmp_path / "vi.parquet")
    assert Vocab.load(tmp_path / "vi.parquet").decode(np.array([3, 4]))[1] == 20


def test_padding_keeps_most_recent_and_right_pads():
    df = frame([(1, i, i) for i in range(1, 8)] + [(2, 100, 1), (2, 101, 2)])
    data = prepare_data(df, DataConfig(val_fraction=0, test_fraction=0))
    arr = pad_sessions(data.train, max_len=4)["item_id"]
    dec = data.encoders.items.decode
    assert list(dec(arr[0])) == [4, 5, 6, 7]
    assert list(dec(arr[1][:2])) == [100, 101] and (arr[1][2:] == PAD).all()


def test_eval_examples_last_and_all_next_never_contain_target():
    df = frame([(1, i, i) for i in range(1, 6)] + [(2, 100, 1), (2, 101, 2), (2, 100, 3)])
    data = prepare_data(df, DataConfig(val_fraction=0, test_fraction=0))
    s = data.train
    last = next_item_examples(s, "last", 3)
    assert len(last["target"]) == 2
    alln = next_item_examples(s, "all_next", 3)
    assert len(alln["target"]) == 4 + 2
    # prefix of example k is exactly the events before its target (last 3 of them)
    for k in range(len(alln["target"])):
        sess, t = alln["session"][k], alln["prefix_len"][k]
        full = s.session(sess)
        assert alln["target"][k] == full[t]
        expect = full[max(0, t - 3) : t]
        got = alln["item_id"][k]
        assert list(got[: len(expect)]) == list(expect) and (got[len(expect):] == PAD).all()


def test_unknown_test_items_counted():
    train = frame([(1, "a", 1), (1, "b", 2), (2, "a", 3), (2, "c", 4)])
    test = frame([(9, "a", 10), (9, "new", 11), (9, "b", 12)])
    data = prepare_data(train, DataConfig(val_fraction=0), test=test)
    assert data.unknown_items["test"] == 1
    assert data.splits["test"].items[1] == UNK


def test_side_features_aligned_and_encoded():
    df = pd.DataFrame({"session_id": [1, 1, 1, 2, 2], "item_id": [10, 11, 12, 10, 13], "timestamp": [3, 1, 2, 1, 2],
                       "cat": ["x", "y", "z", "x", "w"], "price": [1.0, 2.0, 3.0, 1.0, 5.0]})
    data = prepare_data(df, DataConfig(val_fraction=0, test_fraction=0, categorical=["cat"], continuous=["price"]))
    arr = data.train_arrays(max_len=4)
    enc = data.encoders
    assert list(enc.items.decode(arr["item_id"][0][:3])) == [11, 12, 10]
    assert list(enc.categorical["cat"].decode(arr["cat"][0][:3])) == ["y", "z", "x"]
    st_ = enc.continuous["price"]
    np.testing.assert_allclose(arr["price"][0][:3] * st_["std"] + st_["mean"], [2.0, 3.0, 1.0], rtol=1e-5)
    assert arr["price"].dtype == np.float32 and arr["cat"][0][3] == PAD


def test_dataset_batches_and_loader():
    arrays = {"item_id": np.arange(20).reshape(10, 2), "target": np.arange(10)}
    ds = SequenceDataset(arrays)
    b = ds.__getitems__([3, 1])
    assert b["item_id"].tolist() == [[6, 7], [2, 3]]
    batches = list(make_loader(arrays, batch_size=4))
    assert [len(x["target"]) for x in batches] == [4, 4, 2]


def test_user_sequences_leave_last_out():
    df = pd.DataFrame({"user_id": ["u1"] * 5 + ["u2"] * 4, "item_id": list("abcde") + list("wxyz"),
                       "timestamp": list(range(5)) + list(range(4))})
    data = prepare_data(df, DataConfig(sequence="user", split="leave_last", min_session_len=3))
    dec = data.encoders.items.decode
    assert [list(dec(data.splits["train"].session(i))) for i in range(2)] == [list("abc"), list("wx")]
    assert data.eval_examples("test", "last", 10)["target"].tolist() == data.encoders.items.encode(pd.Series(["e", "z"])).tolist()
    assert data.eval_examples("val", "last", 10)["target"].tolist() == data.encoders.items.encode(pd.Series(["d", "y"])).tolist()


def _rand_frame(draw_sessions):
    rows = []
    for s, items in enumerate(draw_sessions):
        rows += [(f"s{s}", it, 1_600_000_000 + s * 100 + j) for j, it in enumerate(items)]
    return frame(rows)


sessions_strategy = st.lists(st.lists(st.one_of(st.integers(0, 30), st.sampled_from(["a", "é", "🍕", "x y"])),
                                      min_size=1, max_size=8), min_size=4, max_size=40)


@settings(max_examples=40, deadline=None)
@given(sessions_strategy, st.booleans(), st.integers(1, 3))
def test_property_encode_decode_roundtrip_and_counts(sessions, dedup, min_len):
    df = _rand_frame(sessions)
    cfg = DataConfig(dedup_consecutive=dedup, min_session_len=min_len, val_fraction=0, test_fraction=0)
    try:
        data = prepare_data(df, cfg)
    except DataError as e:
        assert "no session has at least" in str(e)
        return
    rep = data.report
    assert rep.n_interactions_in == len(df) == rep.n_interactions + sum(rep.dropped.values())
    tr = data.train
    decoded = data.encoders.items.decode(tr.items)
    # every kept session, decoded, is its original sequence (after dedup)
    by_key = {f"s{i}": s for i, s in enumerate(sessions)}
    for i in range(len(tr)):
        orig = [str(x) if any(isinstance(y, str) for y in df.item_id) else x for x in by_key[tr.session_ids[i]]]
        if dedup:
            orig = [x for j, x in enumerate(orig) if j == 0 or x != orig[j - 1]]
        assert [str(x) for x in decoded[tr.offsets[i]:tr.offsets[i + 1]]] == [str(x) for x in orig]


@settings(max_examples=40, deadline=None)
@given(sessions_strategy, st.sampled_from(["time", "random"]), st.integers(0, 1000))
def test_property_splits_never_share_a_session(sessions, how, seed):
    df = _rand_frame(sessions)
    cfg = DataConfig(split=how, split_seed=seed, min_session_len=1, val_fraction=0.2, test_fraction=0.2)
    try:
        data = prepare_data(df, cfg)
    except DataError as e:
        assert "too few to split" in str(e)
        return
    keys = {k: set(s.session_ids.tolist()) for k, s in data.splits.items()}
    assert not (keys["train"] & keys["val"]) and not (keys["train"] & keys["test"]) and not (keys["val"] & keys["test"])
    assert sum(len(v) for v in keys.values()) == len(keys["train"] | keys["val"] | keys["test"]) == data.report.n_sessions
    if how == "time":  # test sessions start no earlier than any train session
        if keys["test"] and keys["train"]:
            assert data.splits["test"].start_time.min() >= data.splits["train"].start_time.max()
    if how == "random":  # same seed, same split
        again = prepare_data(df, cfg)
        assert again.splits["test"].session_ids.tolist() == data.splits["test"].session_ids.tolist()


def test_parquet_file_is_read_in_row_group_batches_as_codes(tmp_path, monkeypatch):
    """A Parquet path is streamed batch by batch (no size limit, no raw bytes held), its text
    columns arrive as Categorical codes, and the prepared data equals that of the same log as CSV."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from t4r_core import ingest
    from t4r_core.ingest import read_table

    from .paths import SAMPLE_DATA

    df = read_table(SAMPLE_DATA / "shop_sessions.csv")
    path = tmp_path / "shop.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=7_000)
    batches = []
    real = pq.ParquetFile.iter_batches
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", lambda self, **kw: (batches.append(1) or b for b in real(self, **kw)))
    monkeypatch.setattr(ingest, "PARQUET_BATCH_ROWS", 10_000)
    got = read_table(path, max_bytes=1_000)  # far over the byte limit for files read whole: streamed
    assert len(batches) >= 10
    assert isinstance(got["item_id"].dtype, pd.CategoricalDtype) and len(got["item_id"].cat.categories) == df["item_id"].nunique()
    pd.testing.assert_frame_equal(got.astype({c: "str" for c in ("item_id", "category", "event_type")}),
                                  df.astype({c: "str" for c in ("item_id", "category", "event_type")}))
    a, b = prepare_data(df, DataConfig()), prepare_data(path, DataConfig())
    for split in a.splits:
        assert np.array_equal(a.splits[split].items, b.splits[split].items)
        assert np.array_equal(a.splits[split].offsets, b.splits[split].offsets)
    assert list(a.encoders.items.values) == list(b.encoders.items.values)
