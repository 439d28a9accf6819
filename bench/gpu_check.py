"""GPU path check, for a lent CUDA machine in one short run (< 5 minutes):

    bash bench/gpu_check.sh            # or: python bench/gpu_check.py [--steps 50] [--quick]

1. device placement: the trainer picks CUDA by itself (train.device=auto) and its precision
   (bf16 where supported, else fp16);
2. throughput of forward + backward + AdamW at the model benchmark's shapes (d_model 64, 2 layers,
   4 heads, max_len 20, batch 256, 50k items) for gpt2-clm, bert-mlm, xlnet-mlm, llama-clm and
   gru-clm, in fp32 and under bf16 autocast, with peak GPU memory;
3. a short end-to-end `train()` on the shop sample with precision=auto.
Prints one JSON object. Without CUDA the same code runs on the CPU with autocast off (tests use
`--quick` that way), so the branch that turns autocast off is exercised everywhere.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from t4r_core.config import ExperimentConfig, ModelConfig  # noqa: E402
from t4r_core.model import SessionModel  # noqa: E402
from t4r_core.trainer import device_description, resolve_device, resolve_precision  # noqa: E402

PAIRS = [("gpt2", "clm"), ("bert", "mlm"), ("xlnet", "mlm"), ("llama", "clm"), ("gru", "clm")]


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """bf16/fp16 autocast on CUDA; None (autocast off) on CPU or in fp32."""
    if device.type != "cuda" or precision == "fp32":
        return None
    return torch.bfloat16 if precision == "bf16" else torch.float16


def throughput(body: str, masking: str, device: torch.device, dtype: torch.dtype | None, n_items: int,
               batch: int, steps: int) -> dict:
    cfg = ModelConfig(body=body, masking=masking, d_model=64, n_layers=2, n_heads=4, max_len=20)
    model = SessionModel(cfg, n_items).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(enabled=dtype == torch.float16)
    x = torch.randint(3, n_items, (batch, 20), device=device)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = model(item_id=x).loss
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    out = {"pair": f"{body}-{masking}", "dtype": str(dtype or "fp32").replace("torch.", ""),
           "seq_per_s": round(batch * steps / dt, 1)}
    if device.type == "cuda":
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return out


def end_to_end(device: torch.device, steps: int) -> dict:
    from t4r_core import prepare_data
    from t4r_core.trainer import train

    cfg = ExperimentConfig().with_overrides([f"train.max_steps={steps}", "train.batch_size=256"])
    data = prepare_data(ROOT / "sample_data" / "shop_sessions.csv", cfg.data)
    with tempfile.TemporaryDirectory() as tmp:
        run = train(cfg, data, Path(tmp) / "run")
        env = run.environment
        return {"device": env["device"], "precision": env["precision"], "train_seconds": round(env["train_seconds"], 2),
                "train_sequences_per_s": round(env["train_sequences_per_s"], 1),
                "test_ndcg@10": round(run.metrics["test"]["last"]["ndcg@10"], 4),
                "weights_on": str(next(run.model.parameters()).device)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="tiny shapes: a CPU smoke test of the same code")
    args = ap.parse_args(argv)
    device = resolve_device("auto")
    precision = resolve_precision("auto", device)
    n_items, batch, steps = (2_000, 32, 2) if args.quick else (50_000, 256, args.steps)
    report = {"device": device_description(device), "torch": torch.__version__, "precision_auto": precision,
              "throughput": []}
    pairs = PAIRS[:2] if args.quick else PAIRS
    for body, masking in pairs:
        report["throughput"].append(throughput(body, masking, device, None, n_items, batch, steps))
        dtype = autocast_dtype(device, precision)
        if dtype is not None:
            report["throughput"].append(throughput(body, masking, device, dtype, n_items, batch, steps))
    report["end_to_end"] = end_to_end(device, 3 if args.quick else 200)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
