"""Training, evaluation, run folders and the CLI on a tiny learnable log."""

from __future__ import annotations

import json
import threading

import pytest

from t4r_core import DataConfig, ExperimentConfig, Run, list_runs, prepare_data
from t4r_core.cli import main
from t4r_core.errors import RunError
from t4r_core.trainer import train

from .toydata import successor_log

TINY = ["model.d_model=16", "model.n_heads=2", "model.n_layers=1", "model.max_len=8", "model.dropout=0.0",
        "model.input_dropout=0.0", "train.batch_size=64", "train.lr=0.01", "train.log_every=5",
        "eval.ks=[1, 5, 10]"]


@pytest.fixture(scope="module")
def toy_csv(tmp_path_factory):
    p = tmp_path_factory.mktemp("toy") / "toy.csv"
    successor_log().to_csv(p, index=False)
    return p


@pytest.fixture(scope="module")
def toy_data(toy_csv):
    return prepare_data(toy_csv, DataConfig())


@pytest.fixture(scope="module")
def trained(toy_data, tmp_path_factory):
    cfg = ExperimentConfig().with_overrides(TINY + ["train.epochs=6"])
    events = []
    run = train(cfg, toy_data, tmp_path_factory.mktemp("runs") / "gpt2", progress=events.append,
                data_source={"train": "toy.csv"})
    return run, events


def test_trained_run_learns_and_is_complete(trained):
    run, events = trained
    m = run.metrics
    assert m["test"]["last"]["recall@1"] > 0.9  # the successor rule is learnt
    assert set(m) >= {"val", "test"} and "train" not in m
    for f in ("config.json", "schema.json", "model.safetensors", "metrics.json", "history.csv", "environment.json",
              "encoders/items.parquet"):
        assert (run.path / f).exists(), f
    assert not any(p.name.startswith(".") for p in run.path.parent.iterdir())  # no temp/checkpoint left
    kinds = {e["event"] for e in events}
    assert kinds >= {"start", "step", "eval", "done"}
    step = [e for e in events if e["event"] == "step"][-1]
    assert step["step"] == step["max_steps"] and step["seq_per_s"] > 0
    assert "loss" in run.history.columns and run.history["loss"].notna().any()
    assert "ndcg@10" in run.history.columns  # validation metrics by epoch
    env = run.environment
    assert env["device"] == "cpu" and env["seed"] == 42 and env["precision"] == "fp32"


def test_recommend_takes_and_returns_user_ids(trained):
    run, _ = trained
    recs = run.recommend([105, 106, 107], k=3)
    assert recs[0]["item"] == 108 and isinstance(recs[0]["item"], int)
    assert len(recs) == 3 and recs[0]["score"] >= recs[1]["score"]
    seen = run.recommend([105, 106, 107], k=40, exclude_seen=True)
    assert {105, 106, 107}.isdisjoint(r["item"] for r in seen)
    assert len(seen) == 30 - 3  # never reserved ids; the catalogue minus the seen items
    assert run.recommend(["105", "106"], k=1)[0]["item"] == 107  # ids typed as text


def test_reload_gives_same_scores(trained):
    run, _ = trained
    again = Run.load(run.path)
    a = run.scores([[101, 102]])
    b = again.scores([[101, 102]])
    assert (a == b).all()
    assert [r.name for r in list_runs(run.path.parent)] == [run.name]


def test_same_seed_same_metrics(toy_data, tmp_path):
    cfg = ExperimentConfig().with_overrides(TINY + ["train.max_steps=15"])
    a = train(cfg, toy_data, tmp_path / "a").metrics
    b = train(cfg, toy_data, tmp_path / "b").metrics
    assert a["test"]["last"] == b["test"]["last"]


def test_stop_request_ends_at_next_step_and_saves(toy_data, tmp_path):
    cfg = ExperimentConfig().with_overrides(TINY + ["train.epochs=50"])
    stop = threading.Event()
    stop.set()  # already requested: training must end after its first step, then save as usual
    run = train(cfg, toy_data, tmp_path / "stopped", stop=stop)
    assert run.environment["stopped_by_user"] is True
    assert run.environment["global_step"] == 1
    assert "test" in run.metrics and (run.path / "model.safetensors").exists()


def test_time_budget_stops_training(toy_data, tmp_path):
    cfg = ExperimentConfig().with_overrides(TINY + ["train.epochs=500", "train.time_budget_s=0"])
    run = train(cfg, toy_data, tmp_path / "budget")
    assert run.environment["stopped_by_time_budget"] is True and run.environment["global_step"] == 1


def test_existing_run_is_not_overwritten_by_accident(trained, toy_data):
    run, _ = trained
    cfg = ExperimentConfig().with_overrides(TINY + ["train.max_steps=2"])
    with pytest.raises(RunError, match="already holds a run"):
        train(cfg, toy_data, run.path)


def test_tampered_runs_are_refused(trained, tmp_path):
    import shutil

    run, _ = trained
    bad = tmp_path / "bad"
    shutil.copytree(run.path, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["model"]["d_model"] = 32
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunError, match="does not match config.json"):
        _ = Run.load(bad).model
    cfg["model"]["evil"] = 1
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunError, match="unknown key"):
        Run.load(bad)
    (bad / "model.safetensors").unlink()
    with pytest.raises(RunError, match="missing model.safetensors"):
        Run.load(bad)


def test_eval_on_train_is_reported_separately(toy_data, tmp_path):
    cfg = ExperimentConfig().with_overrides(TINY + ["train.max_steps=5", "eval.eval_on_train=true",
                                                    "eval.protocols=[last, all_next]"])
    m = train(cfg, toy_data, tmp_path / "r").metrics
    assert set(m) >= {"train", "val", "test"}
    assert set(m["test"]) == {"last", "all_next"}
    assert m["test"]["all_next"]["n_examples"] > m["test"]["last"]["n_examples"]


# ------------------------------------------------------------------------------ CLI


def test_cli_train_evaluate_recommend(toy_csv, tmp_path, capsys):
    out = tmp_path / "cli_run"
    rc = main(["train", "--data", str(toy_csv), "--out", str(out), "--preset", "SASRec+", "--quiet",
               "--set", *TINY, "train.epochs=4", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == 0 and res["run"] == str(out)
    rc = main(["evaluate", str(out), "--protocol", "last", "all_next", "--k", "1", "10", "--json"])
    ev = json.loads(capsys.readouterr().out)
    assert rc == 0 and set(ev) == {"last", "all_next"}
    assert {"ndcg@10", "recall@1", "mrr@10", "map@10", "precision@10"} <= set(ev["last"])
    # re-evaluating on the run's own test split reproduces the saved numbers
    assert ev["last"]["ndcg@10"] == pytest.approx(res["metrics"]["test"]["last"]["ndcg@10"], abs=1e-6)
    rc = main(["recommend", str(out), "--items", "110,111", "--k", "2", "--json"])
    recs = json.loads(capsys.readouterr().out)
    assert rc == 0 and [r["item"] for r in recs][0] == 112 and len(recs) == 2


def test_cli_evaluate_on_other_file(toy_csv, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--data", str(toy_csv), "--out", str(out), "--quiet", "--set", *TINY,
                 "train.max_steps=3"]) == 0
    capsys.readouterr()
    other = tmp_path / "other.csv"
    successor_log(n_sessions=50, seed=9).to_csv(other, index=False)
    assert main(["evaluate", str(out), "--data", str(other), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["last"]["n_examples"] == 50


@pytest.mark.parametrize("name", ["pop", "SPop", "VSKNN"])
def test_cli_baselines(toy_csv, name, capsys):
    rc = main(["baseline", name, "--data", str(toy_csv), "--protocol", "last", "--k", "1", "20", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and set(out) == {"last"} and "recall@20" in out["last"]
    if name == "VSKNN":
        assert out["last"]["recall@20"] > 0.5


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--set", "model.nope=1"], "unknown key 'model.nope'"),
        (["--set", "model.body=gpt2", "model.masking=mlm"], "masks that fit gpt2: clm"),
        (["--preset", "nope"], "unknown preset"),
        (["--config", "missing.yaml"], "does not exist"),
        (["--set", "model.categorical_features={color: 4}"], "not a categorical column"),
    ],
)
def test_cli_bad_config_exit_2_one_line(toy_csv, tmp_path, args, fragment, capsys):
    rc = main(["train", "--data", str(toy_csv), "--out", str(tmp_path / "x"), "--quiet", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and fragment in err[0], err


def test_cli_config_file_with_unknown_key(toy_csv, tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model:\n  body: gpt2\n  d_modle: 8\n")
    rc = main(["train", "--data", str(toy_csv), "--out", str(tmp_path / "x"), "--config", str(cfg)])
    err = capsys.readouterr().err
    assert rc == 2 and "model.d_modle" in err and "d_model" in err


def test_config_yaml_roundtrip(tmp_path):
    cfg = ExperimentConfig().with_overrides(["model.body=bert", "model.masking=mlm", "train.epochs=2"])
    cfg.save(tmp_path / "c.yaml")
    cfg.save(tmp_path / "c.json")
    assert ExperimentConfig.load(tmp_path / "c.yaml") == cfg == ExperimentConfig.load(tmp_path / "c.json")


@pytest.mark.parametrize("save", [True, False])
def test_save_checkpoints_switch(save, toy_data, tmp_path, monkeypatch):
    """train.save_checkpoints=false writes no per-epoch checkpoint (benchmarks, throwaway runs);
    the run itself is still saved, and true keeps one per epoch for --resume."""
    from transformers import Trainer

    saved = []
    real = Trainer._save_checkpoint
    monkeypatch.setattr(Trainer, "_save_checkpoint", lambda self, *a, **k: (saved.append(1), real(self, *a, **k)))
    cfg = ExperimentConfig().with_overrides(TINY + ["train.epochs=2", f"train.save_checkpoints={str(save).lower()}"])
    run = train(cfg, toy_data, tmp_path / "run")
    assert len(saved) == (2 if save else 0)
    assert (run.path / "model.safetensors").exists() and run.metrics["test"]["last"]["n_examples"] > 0
    assert run.config.train.save_checkpoints is save
