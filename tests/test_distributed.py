"""`torchrun --nproc_per_node=2 -m t4r_core train` (DDP over gloo on CPU) matches one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from t4r_core.cli import main

from .toydata import successor_log

ARGS = ["--quiet", "--json", "--set", "model.d_model=16", "model.n_heads=2", "model.n_layers=1", "model.max_len=8",
        "model.dropout=0.0", "model.input_dropout=0.0", "train.batch_size=32", "train.lr=0.01", "train.epochs=6",
        "eval.ks=[1, 10]"]


@pytest.mark.slow
def test_torchrun_two_processes_matches_single(tmp_path, capsys):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    assert torchrun, "torchrun comes with torch"
    data = tmp_path / "toy.csv"
    successor_log().to_csv(data, index=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--nproc_per_node=2", "--standalone", "-m", "t4r_core", "train", "--data",
                           str(data), "--out", str(tmp_path / "ddp"), *ARGS],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ddp = json.loads(proc.stdout.strip().splitlines()[-1])["metrics"]
    env_json = json.loads((tmp_path / "ddp" / "environment.json").read_text())
    assert env_json["world_size"] == 2

    assert main(["train", "--data", str(data), "--out", str(tmp_path / "single"), *ARGS]) == 0
    single = json.loads(capsys.readouterr().out)["metrics"]
    for split in ("val", "test"):
        for k in ("recall@1", "ndcg@10"):
            assert ddp[split]["last"][k] == pytest.approx(single[split]["last"][k], abs=0.05)
    assert single["test"]["last"]["recall@1"] > 0.9
