"""Unit tests of the side-by-side benchmark's exporters, format converters, top-k metrics and
time-to-quality computation (bench/peers). No peer venv, no wall clock, no training."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.peers import common, formats, summary  # noqa: E402

# three sequences of encoded ids (>= 3 real; 1 = UNK)
SEQS = [[5, 6, 7], [8, 9], [10, 11, 12, 13, 14]]


def ragged(seqs=SEQS):
    return common.to_ragged([np.array(s) for s in seqs])


# ------------------------------------------------------------------------------ ragged helpers


def test_from_padded_round_trip():
    off, items = ragged()
    padded = common.to_padded(off, items, 6, side="right")
    assert padded.tolist()[1] == [8, 9, 0, 0, 0, 0]
    off2, items2 = common.from_padded(padded)
    assert off2.tolist() == off.tolist() and items2.tolist() == items.tolist()


def test_from_padded_rejects_left_padding():
    with pytest.raises(ValueError, match="right-padded"):
        common.from_padded(np.array([[0, 5, 6]]))


def test_to_padded_keeps_last_items_and_left_side():
    off, items = ragged()
    assert common.to_padded(off, items, 3)[2].tolist() == [12, 13, 14]
    assert common.to_padded(off, items, 4, side="left")[1].tolist() == [0, 0, 8, 9]


def test_drop_ids_removes_unk_and_keeps_rows():
    off, items = common.to_ragged([np.array([1, 5]), np.array([1]), np.array([6, 1, 7])])
    off2, items2 = common.drop_ids(off, items)
    assert np.diff(off2).tolist() == [1, 0, 2]
    assert items2.tolist() == [5, 6, 7]


def test_export_from_t4r_core_data(tmp_path):
    """The exporter writes exactly our trainer's sequences and the evaluation prefixes/targets."""
    import pandas as pd

    from bench.peers.export import BenchData, export
    from t4r_core import DataConfig, prepare_data

    rows = []
    for s in range(40):
        for p in range(2 + s % 5):
            rows.append({"session_id": s, "item_id": f"i{(s + p) % 9}", "timestamp": 1_700_000_000 + 100 * s + p})
    data = prepare_data(pd.DataFrame(rows), DataConfig())
    bd = BenchData("toy", data, "last", 3, (10, 20), "ndcg@10")
    meta = export(bd, tmp_path)
    ex = common.load_export(tmp_path)
    padded = data.train_arrays(3)["item_id"]
    assert meta["train_sequences"] == len(padded) == len(ex["train_offsets"]) - 1
    assert meta["train_positions"] == int((padded != 0).sum())
    # row by row: same ids, same order, last max_len events
    for i, row in enumerate(common.rows(ex["train_offsets"], ex["train_items"])):
        assert row.tolist() == padded[i][padded[i] != 0].tolist()
    te = data.eval_examples("test", "last", 3)
    assert ex["targets"].tolist() == te["target"].tolist()
    assert common.to_padded(ex["test_offsets"], ex["test_items"], 3).tolist() == te["item_id"].tolist()
    assert json.loads((tmp_path / "meta.json").read_text())["n_items"] == data.n_items


# ------------------------------------------------------------------------------ format converters


def test_t4r_parquet_list_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    off, items = ragged()
    path = formats.to_t4r_parquet(tmp_path / "train.parquet", off, items)
    t = pq.read_table(path)
    assert t.column_names == ["session_id", formats.ITEM_LIST]
    assert t.column(formats.ITEM_LIST).to_pylist() == SEQS
    typ = t.schema.field(formats.ITEM_LIST).type
    assert pa.types.is_list(typ) and pa.types.is_int64(typ.value_type)


def test_t4r_table_appends_targets_for_evaluation():
    off, items = ragged()
    t = formats.t4r_table(off, items, targets=np.array([70, 80, 90]))
    assert t.column(formats.ITEM_LIST).to_pylist() == [s + [tg] for s, tg in zip(SEQS, [70, 80, 90])]


def test_rectools_interactions_keep_order_and_users():
    off, items = ragged()
    df = formats.to_rectools_interactions(off, items, prefix="s")
    assert list(df.columns) == ["user_id", "item_id", "weight", "datetime"]
    assert len(df) == len(items)
    back = [g.sort_values("datetime")["item_id"].tolist() for _, g in df.groupby("user_id", sort=False)]
    assert back == SEQS
    assert df["user_id"].unique().tolist() == ["s0", "s1", "s2"]
    assert (df["weight"] == 1).all()


def test_recbole_pairs_are_every_prefix():
    off, items = ragged()
    sess, p_off, p_items, targets = formats.recbole_pairs(off, items, max_len=3)
    assert len(targets) == len(items) - (len(off) - 1)  # sum(len - 1)
    pairs = [(int(s), p_items[p_off[i]:p_off[i + 1]].tolist(), int(t)) for i, (s, t) in enumerate(zip(sess, targets))]
    assert pairs[:2] == [(0, [5], 6), (0, [5, 6], 7)]
    assert pairs[2] == (1, [8], 9)
    assert pairs[-1] == (2, [11, 12, 13], 14)  # cut to the last max_len items


def test_recbole_inter_file_round_trip(tmp_path):
    off, items = ragged()
    pairs = formats.recbole_pairs(off, items, max_len=20)
    path = formats.write_recbole_inter(tmp_path / "x.train.inter", *pairs)
    lines = path.read_text().splitlines()
    assert lines[0] == "session_id:token\titem_id_list:token_seq\titem_id:token"
    assert lines[1] == "0\t5\t6"
    back = formats.read_recbole_inter(path)
    for a, b in zip(back, pairs):
        assert np.asarray(a).tolist() == np.asarray(b).tolist()


# ------------------------------------------------------------------------------ metrics


def test_topk_metrics_values():
    topk = np.array([[7, 5, 9], [4, 6, 8], [3, 3, 3], [-1, -1, -1]])
    targets = np.array([5, 4, 11, 1])  # rank 2, rank 1, miss, UNK target (always a miss)
    m = common.topk_metrics(topk, targets, ks=(1, 3))
    assert m["recall@1"] == pytest.approx(1 / 4)
    assert m["recall@3"] == pytest.approx(2 / 4)
    assert m["mrr@3"] == pytest.approx((1 / 2 + 1) / 4)
    assert m["ndcg@3"] == pytest.approx((1 / math.log2(3) + 1) / 4)
    assert m["ndcg@1"] == pytest.approx(1 / 4)


def test_topk_metrics_agree_with_t4r_core_metrics():
    """Scoring our full scores through top-k gives the numbers of t4r_core's own evaluation."""
    import torch

    from t4r_core.metrics import MetricAccumulator

    rng = np.random.default_rng(0)
    scores = rng.normal(size=(64, 40)).astype(np.float32)
    scores[:, :3] = -np.inf
    targets = rng.integers(3, 40, size=64)
    acc = MetricAccumulator([5, 10], 40)
    acc.update(torch.from_numpy(scores), torch.from_numpy(targets))
    ours = acc.compute()
    mine = common.topk_metrics(common.topk_from_scores(scores, 10), targets, ks=(5, 10))
    for k in ("recall@5", "ndcg@10", "mrr@10"):
        assert mine[k] == pytest.approx(ours[k], abs=1e-6)


def test_topk_metrics_rejects_small_k():
    with pytest.raises(ValueError):
        common.topk_metrics(np.zeros((2, 5), dtype=int), np.array([3, 4]), ks=(10,))


# ------------------------------------------------------------------------------ time to quality


def _res(tool, model, curve, **kw):
    return {"tool": tool, "model": model, "status": "ok",
            "epochs": [{"epoch": i + 1, "train_s": t, "metrics": {"ndcg@10": v}} for i, (t, v) in enumerate(curve)],
            **kw}


def test_time_to_target_and_budget():
    r = _res("t4r_core", "SASRec+", [(10, 0.10), (20, 0.18), (30, 0.20)])
    assert summary.time_to_target(r, "ndcg@10", 0.18) == 20
    assert summary.time_to_target(r, "ndcg@10", 0.30) is None
    assert summary.value_at_budget(r, "ndcg@10", 25) == 0.18
    assert summary.value_at_budget(r, "ndcg@10", 5) is None
    assert summary.value_at_budget(r, "ndcg@10", 29.8) == 0.20  # cut one batch past the budget: still "at" it
    assert summary.value_at_budget(r, "ndcg@10", 29) == 0.18
    assert summary.final_value(r, "ndcg@10") == 0.20
    assert summary.best_value(_res("x", "y", [(1, 0.3), (2, 0.2)]), "ndcg@10") == 0.3


def test_target_is_fraction_of_best_peer_final():
    results = [
        _res("t4r_core", "SASRec+", [(5, 0.5)]),  # ours never sets the target
        _res("rectools", "SASRec", [(10, 0.1), (20, 0.2)]),
        _res("recbole", "SASRec", [(50, 0.3), (100, 0.25)]),  # final, not best
        _res("t4r_core", "Pop", [(0.1, 0.9)]),
        _res("recbole", "GRU4Rec", [(10, 0.9)], status="failed"),
    ]
    assert summary.target_for(results, "ndcg@10", 0.9) == pytest.approx(0.9 * 0.25)
    assert summary.time_to_target(results[0], "ndcg@10", 0.225) == 5
    assert summary.target_for([results[0]], "ndcg@10") is None


def test_throughput_ratios_pair_by_pair_and_table():
    results = [
        _res("t4r_core", "SASRec+", [(10, 0.2)], seq_per_s=1000.0),
        _res("rectools", "SASRec", [(10, 0.2)], seq_per_s=250.0),
        _res("t4r", "GPT2-CLM", [(10, 0.2)], seq_per_s=500.0),
        _res("recbole", "GRU4Rec", [(10, 0.2)], seq_per_s=10.0),  # no ours GRU4Rec: no pair
    ]
    r = {x["peer"]: x["ratio"] for x in summary.ratios(results)}
    assert r == {"rectools SASRec": 4.0, "t4r GPT2-CLM": 2.0}
    tab = summary.table(results, "ndcg@10", [5, 10])
    assert tab.count("\n") == len(results) + 1
    assert "4.00x" in tab and "ndcg@10 at 10 s" in tab


def test_check_counts_flags_a_tool_with_other_data():
    import bench.bench_peers as bp

    meta = {"train_sequences": 10, "train_positions": 40, "eval_targets": 5}
    good = {"tool": "a", "model": "m", **meta, "native_counts": {"rows": [10, 10]}}
    bad = {"tool": "b", "model": "m", **meta, "eval_targets": 4}
    native_bad = {"tool": "c", "model": "m", **meta, "native_counts": {"samples": [30, 29]}}
    assert bp.check_counts(meta, [good]) == []
    problems = bp.check_counts(meta, [good, bad, native_bad])
    assert len(problems) == 2 and "b m" in problems[0] and "samples" in problems[1]


def test_budget_columns_have_no_duplicates():
    from bench.bench_peers import budgets_for

    assert budgets_for(60) == [15, 30, 60]
    assert budgets_for(300) == [60, 300]  # the full mode: one column per budget, not 300 twice
    assert budgets_for(600) == [60, 300, 600]
    assert budgets_for(1200) == [60, 300, 1200]
