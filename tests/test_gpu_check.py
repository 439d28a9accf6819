"""The GPU check's code path on CPU: autocast is switched off cleanly, precision resolves to fp32."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from t4r_core.errors import ConfigError
from t4r_core.trainer import resolve_device, resolve_precision

ROOT = Path(__file__).resolve().parents[1]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_precision_and_autocast_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    with pytest.raises(ConfigError, match="needs a CUDA GPU"):
        resolve_precision("bf16", cpu)
    assert _gpu_check().autocast_dtype(cpu, "bf16") is None
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_gpu_check_quick_runs_on_cpu(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    report = _gpu_check().main(["--quick"])
    assert all(r["seq_per_s"] > 0 for r in report["throughput"])
    assert report["end_to_end"]["weights_on"].startswith("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        assert report["precision_auto"] == "fp32" and report["end_to_end"]["precision"] == "fp32"
        assert all(r["dtype"] == "fp32" for r in report["throughput"])  # autocast off, no bf16 row
