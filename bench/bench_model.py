"""Training-step throughput of SessionModel bodies (forward + backward + Adam step).

    python bench/bench_model.py                       # the issue's shapes, all five pairs
    python bench/bench_model.py --pairs gpt2-clm --steps 20 --device cuda --json out.json
    python bench/bench_model.py --vs-t4r --steps 20 --warmup 3   # side by side with Transformers4Rec 23.12

Shapes (defaults): d_model 64, 2 layers, 4 heads, max_len 20, batch 256, 50k items, full softmax
cross-entropy, full-length sessions. Reports sequences/s and peak memory (CUDA: allocator peak;
CPU: the process's peak resident set, which includes Python and the libraries).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from t4r_core.config import ModelConfig  # noqa: E402
from t4r_core.model import SessionModel  # noqa: E402

DEFAULT_PAIRS = ["gpt2-clm", "bert-mlm", "xlnet-mlm", "llama-clm", "gru-clm"]
T4R_PAIRS = ("gpt2-clm", "bert-mlm", "xlnet-mlm")  # T4R has no Llama or GRU body
T4R_PYTHON = Path(__file__).resolve().parent / ".venvs" / "t4r" / "bin" / "python"


def bench(pair: str, args) -> dict:
    body, masking = pair.split("-")
    cfg = ModelConfig(
        body=body, masking=masking, d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
        max_len=args.max_len, loss=args.loss,
    )
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = SessionModel(cfg, args.items).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(3, args.items, (args.batch, args.max_len), generator=g) for _ in range(4)]
    if args.random_lengths:
        for b in batches:
            lens = torch.randint(2, args.max_len + 1, (args.batch,), generator=g)
            b[torch.arange(args.max_len)[None, :] >= lens[:, None]] = 0
    batches = [b.to(device) for b in batches]

    def step(i):
        out = model(item_id=batches[i % len(batches)])
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    for i in range(args.warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for i in range(args.steps):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "pair": pair,
        "seq_per_s": round(args.batch * args.steps / dt, 1),
        "ms_per_step": round(1000 * dt / args.steps, 1),
        "peak_mib": round(peak, 1),
        "params": model.num_parameters(),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", nargs="+", default=DEFAULT_PAIRS)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--max-len", type=int, default=20)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--loss", default="ce")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--random-lengths", action="store_true", help="sessions of 2..max_len items")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--vs-t4r", action="store_true",
                   help="also run Transformers4Rec 23.12 (bench/.venvs/t4r) on the same shapes, pair by pair, and print ratios")
    p.add_argument("--rounds", type=int, default=1, help="with --vs-t4r: alternate ours / T4R this many times")
    args = p.parse_args(argv)
    if args.vs_t4r:
        return side_by_side(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for pair in args.pairs:
        r = bench(pair, args)
        results.append(r)
        print(f"{r['pair']:10s} {r['seq_per_s']:9.1f} seq/s  {r['ms_per_step']:8.1f} ms/step  "
              f"peak {r['peak_mib']:8.1f} MiB  {r['params']:,} params", flush=True)
    meta = {
        "device": args.device, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(), **{k: v for k, v in vars(args).items() if k != "json"},
    }
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    return 0


def _child(python: Path, script: Path, pair: str, args) -> dict:
    """One pair in a fresh process (its own peak RSS), returning its result dict."""
    cmd = [str(python), str(script), "--pairs", pair, "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--d-model", str(args.d_model), "--layers", str(args.layers), "--heads", str(args.heads),
           "--max-len", str(args.max_len), "--batch", str(args.batch), "--items", str(args.items),
           "--json", "/dev/stdout"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out[out.index("{"):])


def side_by_side(args) -> int:
    """Ours and T4R alternate pair by pair, each pair in a fresh process, so load drifts hit both."""
    if not T4R_PYTHON.exists():
        print("bench/.venvs/t4r is missing: run bash bench/peers/make_venvs.sh first", file=sys.stderr)
        return 2
    ours_script, t4r_script = Path(__file__).resolve(), Path(__file__).resolve().parent / "peers" / "t4r_model_step.py"
    rows = []
    for pair in args.pairs:
        runs: dict[str, list[dict]] = {"ours": [], "t4r": []}
        for _ in range(args.rounds):
            runs["ours"].append(_child(Path(sys.executable), ours_script, pair, args)["results"][0])
            if pair in T4R_PAIRS:
                runs["t4r"].append(_child(T4R_PYTHON, t4r_script, pair, args)["results"][0])
        best = {k: max(v, key=lambda r: r["seq_per_s"]) for k, v in runs.items() if v}
        row = {"pair": pair, "ours": best["ours"], "t4r": best.get("t4r"),
               "all_seq_per_s": {k: [r["seq_per_s"] for r in v] for k, v in runs.items()}}
        if row["t4r"]:
            row["ratio"] = round(row["ours"]["seq_per_s"] / row["t4r"]["seq_per_s"], 2)
        rows.append(row)
        t = row["t4r"]
        print(f"{pair:10s} ours {row['ours']['seq_per_s']:8.1f} seq/s {row['ours']['peak_mib']:7.0f} MiB | "
              + (f"T4R {t['seq_per_s']:8.1f} seq/s {t['peak_mib']:7.0f} MiB | ratio {row['ratio']:.2f}x" if t else
                 "T4R has no such body"), flush=True)
    meta = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(),
            **{k: v for k, v in vars(args).items() if k != "json"}}
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
