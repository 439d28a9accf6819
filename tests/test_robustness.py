"""Nothing lost, nothing unpickled: killed saves, interrupted training, memory, untrusted runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from t4r_core import DataConfig, ExperimentConfig, Run, list_runs, prepare_data
from t4r_core.errors import ConfigError
from t4r_core.trainer import estimate_memory, train

from .toydata import successor_log

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.d_model=16", "model.n_heads=2", "model.n_layers=1", "model.max_len=8", "model.dropout=0.0",
        "model.input_dropout=0.0", "train.batch_size=64", "train.lr=0.01", "eval.ks=[1, 10]"]


def test_no_pickle_anywhere_in_the_package():
    pattern = re.compile(r"\bimport pickle\b|\bpickle\.loads?\(|\bcloudpickle\b|\bjoblib\.load\(|torch\.load\(|"
                         r"allow_pickle\s*=\s*True|yaml\.load\(|yaml\.unsafe_load|(?<![.\w])eval\(|(?<![.\w])exec\(")
    hits = []
    for folder in ("t4r_core", "app"):
        for f in (ROOT / folder).rglob("*.py"):
            for i, line in enumerate(f.read_text().splitlines(), 1):
                if pattern.search(line) and "weights_only=True" not in line:
                    hits.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "\n".join(hits)


def test_memory_estimate_refuses_what_cannot_fit(tmp_path):
    data = prepare_data(successor_log(n_sessions=100), DataConfig())
    cfg = ExperimentConfig().with_overrides(TINY + ["train.batch_size=100000000"])
    est = estimate_memory(cfg, data.n_items)
    assert est["logits"] > est["item_table"]
    with pytest.raises(ConfigError, match="lower train.batch_size or model.max_len, or use model.loss=sampled_ce"):
        train(cfg, data, tmp_path / "r")
    assert not (tmp_path / "r").exists()


_SLOW_SAVE = """
import sys, time
import t4r_core.runs as runs
from t4r_core import DataConfig, ExperimentConfig, prepare_data
from t4r_core.trainer import train
from tests.toydata import successor_log
orig = runs._write_json
def slow(path, obj):
    orig(path, obj)
    if path.name == "metrics.json":
        print("SAVING", flush=True)
        time.sleep(60)
runs._write_json = slow
cfg = ExperimentConfig().with_overrides(sys.argv[2:])
train(cfg, prepare_data(successor_log(n_sessions=100), DataConfig()), sys.argv[1], overwrite=True)
"""


def test_sigkill_while_saving_keeps_the_previous_run(tmp_path):
    data = prepare_data(successor_log(n_sessions=100), DataConfig())
    cfg = ExperimentConfig().with_overrides(TINY + ["train.max_steps=2"])
    first = train(cfg, data, tmp_path / "run")
    before = json.loads((first.path / "metrics.json").read_text())
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_SAVE, str(tmp_path / "run"), *TINY, "train.max_steps=4"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "SAVING"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == before
    runs = list_runs(tmp_path)
    assert [r.name for r in runs] == ["run"]  # the partial save is hidden, not listed
    assert any(p.name.startswith(".run.tmp-") for p in tmp_path.iterdir())
    assert Run.load(tmp_path / "run").environment["global_step"] == 2


def test_crash_between_the_two_renames_is_recovered(tmp_path):
    data = prepare_data(successor_log(n_sessions=100), DataConfig())
    cfg = ExperimentConfig().with_overrides(TINY + ["train.max_steps=2"])
    run = train(cfg, data, tmp_path / "run")
    run.path.rename(tmp_path / ".run.old-12345")  # as if killed right after moving the old run away
    assert [r.name for r in list_runs(tmp_path)] == ["run"]
    assert Run.load(tmp_path / "run").environment["global_step"] == 2


def _cli(args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "t4r_core", "train", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_resume_skips_a_checkpoint_cut_short(tmp_path):
    """A checkpoint folder without trainer_state.json (written last by HF) was being saved when
    the process stopped: resume must take the newest complete one and drop the partial one."""
    from t4r_core.trainer import _last_checkpoint

    assert _last_checkpoint(tmp_path / "missing") is None
    for step in (30, 60):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-30" / "trainer_state.json").write_text('{"global_step": 30}')
    (tmp_path / "checkpoint-60" / "model.safetensors").write_bytes(b"")
    (tmp_path / "checkpoint-90").mkdir()
    (tmp_path / "checkpoint-90" / "trainer_state.json").write_text('{"global_st')  # truncated
    assert _last_checkpoint(tmp_path) == tmp_path / "checkpoint-30"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-30"]
    (tmp_path / "checkpoint-30" / "trainer_state.json").unlink()
    assert _last_checkpoint(tmp_path) is None


@pytest.mark.slow
def test_sigint_then_resume_reaches_the_same_metrics(tmp_path):
    data = tmp_path / "toy.csv"
    successor_log(n_sessions=400).to_csv(data, index=False)
    common = ["--data", str(data), "--quiet", "--json", "--set", *TINY, "train.epochs=12", "train.batch_size=16"]
    full = _cli([*common, "--out", str(tmp_path / "full")])
    out, err = full.communicate(timeout=600)
    assert full.returncode == 0, err[-2000:]
    expected = json.loads(out.strip().splitlines()[-1])["metrics"]

    proc = _cli([*common, "--out", str(tmp_path / "cut")])
    ckpts = tmp_path / ".cut.checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not any(ckpts.glob("checkpoint-*/trainer_state.json")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err and "Traceback" not in err
    assert not (tmp_path / "cut").exists()  # no half run
    # SIGINT can land while HF writes a checkpoint: leave one behind cut short, as CI once did
    partial = ckpts / "checkpoint-99999"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"")

    again = _cli([*common, "--out", str(tmp_path / "cut"), "--resume"])
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-2000:]
    resumed = json.loads(out.strip().splitlines()[-1])["metrics"]
    for split in ("val", "test"):
        for k, v in expected[split]["last"].items():
            assert resumed[split]["last"][k] == pytest.approx(v, abs=1e-6), (split, k)
