"""Side-by-side benchmark: t4r_core against Transformers4Rec 23.12, rectools 0.19 and RecBole 1.2.1.

    bash bench/peers/make_venvs.sh                 # once: bench/.venvs/{t4r,rectools,recbole}
    python bench/bench_peers.py --quick            # shop data, short wall budgets (< 10 min)
    python bench/bench_peers.py                    # shop + diginetica, longer budgets
    python bench/bench_peers.py --tools ours rectools --datasets shop --budget-s 60

The data is prepared once with t4r_core (encoded ids, each training session's last max_len events,
the test prefixes and targets of the data set's protocol) and exported (bench/peers/export.py);
each tool runs in its own venv in a subprocess (bench/peers/run_<tool>.py), converts the export
to its own input format, trains epoch by epoch under a wall budget and ranks the test prefixes
after each epoch; the top-k lists are scored by one metric code (bench/peers/common.py). The
harness checks that every tool saw the same training sequences and evaluation targets, prints
the counts, and writes OUT/<dataset>/results.json and OUT/tables.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.peers import summary  # noqa: E402

VENVS = ROOT / "bench" / ".venvs"
PEERS = ROOT / "bench" / "peers"

# (tool, model): the matching sizes come from the common flags (d_model, layers, heads, max_len, batch)
RUNS = [
    ("ours", "Pop"), ("ours", "V-SKNN"),
    ("ours", "SASRec+"), ("rectools", "SASRec"), ("recbole", "SASRec"), ("t4r", "GPT2-CLM"),
    ("ours", "BERT4Rec"), ("rectools", "BERT4Rec"), ("recbole", "BERT4Rec"),
    ("ours", "GRU4Rec"), ("recbole", "GRU4Rec"),
    ("ours", "XLNet-MLM"), ("t4r", "XLNet-MLM"),
]
TOOL_NAME = {"ours": "t4r_core", "rectools": "rectools", "recbole": "recbole", "t4r": "t4r"}


def python_for(tool: str) -> Path | None:
    if tool == "ours":
        return Path(sys.executable)
    p = VENVS / tool / "bin" / "python"
    return p if p.exists() and not (VENVS / tool / "INSTALL_FAILED").exists() else None


def run_one(tool: str, model: str, dataset: str, export_dir: Path, out_dir: Path, a) -> dict:
    """One runner in a subprocess; its result JSON plus the child's peak RSS (wait4) and load."""
    name = f"{tool}_{model}".replace("+", "plus").replace("/", "_")
    out = out_dir / f"{name}.json"
    log = out_dir / f"{name}.log"
    out.unlink(missing_ok=True)
    base = {"tool": TOOL_NAME[tool], "model": model, "status": "failed", "epochs": [], "dataset": dataset}
    py = python_for(tool)
    if py is None:
        why = (VENVS / tool / "INSTALL_FAILED").read_text().strip() if (VENVS / tool / "INSTALL_FAILED").exists() \
            else f"no venv at {VENVS / tool}; run bash bench/peers/make_venvs.sh {tool}"
        return {**base, "status": "not installed", "error": why}
    cmd = [str(py), str(PEERS / f"run_{tool}.py"), "--export", str(export_dir), "--model", model, "--out", str(out),
           "--work", str(out_dir), "--epochs", str(a.epochs), "--budget-s", str(a.budget_s),
           "--d-model", str(a.d_model), "--layers", str(a.layers), "--heads", str(a.heads), "--batch", str(a.batch),
           "--lr", str(a.lr), "--seed", str(a.seed)]
    if tool == "ours":
        cmd[2:2] = (["--dataset", dataset] + (["--quick"] if a.quick else [])
                    + (["--eval-sample", str(a.eval_sample)] if a.eval_sample else []))
    env = {**os.environ, "BENCH_THREADS": str(a.threads), "OMP_NUM_THREADS": str(a.threads),
           "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
           "TF_CPP_MIN_LOG_LEVEL": "3", "RAY_DISABLE_IMPORT_WARNING": "1"}
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    timeout = a.budget_s * 2 + a.grace_s
    with open(log, "w") as lf:
        proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
        timed_out = False
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                pid, status, ru = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    res = json.loads(out.read_text()) if out.exists() else dict(base)
    res.update({"process_wall_s": round(wall, 1), "exit_code": proc.returncode,
                "child_peak_rss_mib": round(ru.ru_maxrss / 1024, 1), "loadavg_1m": [round(load0, 2),
                                                                                    round(os.getloadavg()[0], 2)],
                "log": str(log)})
    if timed_out:
        res["status"] = "killed (timeout)"
        res["error"] = f"no result after {timeout:.0f} s; partial epochs kept"
    elif res.get("status") in ("running", None):
        res["status"] = "failed"
        res["error"] = res.get("error") or f"exit code {proc.returncode}; see {log}: " + _tail(log)
    if res.get("peak_rss_mib") is None or res.get("child_peak_rss_mib", 0) > res.get("peak_rss_mib", 0):
        res["peak_rss_mib"] = res.get("child_peak_rss_mib")
    return res


def _tail(path: Path, n: int = 800) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def check_counts(meta: dict, results: list[dict]) -> list[str]:
    """Every tool must have read the same training sequences and evaluation targets."""
    keys = ("train_sequences", "train_positions", "eval_targets")
    problems = []
    for r in results:
        if r.get("status") in ("not installed",):
            continue
        got = {k: r.get(k) for k in keys}
        if any(v is None for v in got.values()):
            continue  # failed before reading the export
        if got != {k: meta[k] for k in keys}:
            problems.append(f"{r['tool']} {r['model']}: {got} != export {({k: meta[k] for k in keys})}")
        for k, (want, have) in (r.get("native_counts") or {}).items():
            if want != have:
                problems.append(f"{r['tool']} {r['model']}: {k} expected {want}, tool has {have}")
    return problems


def budgets_for(budget_s: float) -> list[float]:
    """Wall budgets for the 'quality at equal time' columns: 5 and 20 minutes where the runs are that
    long, else a quarter, half and all of the per-run budget."""
    if budget_s >= 300:
        return sorted({60.0, 300.0, 1200.0 if budget_s >= 1200 else float(budget_s)})
    return [budget_s / 4, budget_s / 2, budget_s]


def retable(out_root: Path, target_frac: float) -> None:
    """Rewrite OUT/tables.md from the saved OUT/<dataset>/results.json files (no runs)."""
    texts = []
    for f in sorted(out_root.glob("*/results.json")):
        d = json.loads(f.read_text())
        meta, results = d["meta"], d["results"]
        budget = d.get("budget_s") or max((r.get("train_s") or 0) for r in results)
        texts.append(dataset_text(meta, results, budgets_for(budget), target_frac, d.get("count_problems", [])))
    (out_root / "tables.md").write_text("\n\n".join(texts) + "\n")
    print("\n\n".join(texts))


def dataset_text(meta: dict, results: list[dict], budgets: list[float], frac: float, problems: list[str]) -> str:
    tab = summary.table(results, meta["metric"], budgets, frac)
    rat = summary.ratios(results)
    loads = [x for r in results for x in (r.get("loadavg_1m") or [])]
    return (f"### {meta['dataset']} ({meta['protocol']}, {meta['metric']}; {meta['train_sequences']:,} training "
            f"sequences, {meta['eval_targets']:,} targets)\n\n{tab}\n\n"
            + "\n".join(f"- throughput {x['ours']} / {x['peer']}: {x['ratio']:.2f}x "
                        f"({x['ours_seq_per_s']:.0f} vs {x['peer_seq_per_s']:.0f} seq/s)" for x in rat)
            + (f"\n- 1-minute load average during the runs: {min(loads):.1f} to {max(loads):.1f}" if loads else "")
            + ("\n- count check: " + ("all tools saw the same sequences and targets" if not problems
                                      else "; ".join(problems))))


def machine() -> dict:
    cpu = platform.processor()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = 0
    try:
        mem = int(next(ln.split()[1] for ln in open("/proc/meminfo") if ln.startswith("MemTotal"))) / 1024**2
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(mem, 1), "python": platform.python_version()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shop data only, short budgets (under 10 minutes)")
    ap.add_argument("--datasets", nargs="*", default=None, help="shop, diginetica (default: quick: shop; full: both)")
    ap.add_argument("--tools", nargs="*", default=["ours", "rectools", "recbole", "t4r"])
    ap.add_argument("--models", nargs="*", default=None, help="only these model names")
    ap.add_argument("--budget-s", type=float, default=None, help="training wall time per run (quick 15, full 300)")
    ap.add_argument("--epochs", type=int, default=None, help="epoch cap per run (quick 10, full 50)")
    ap.add_argument("--grace-s", type=float, default=180, help="start-up + evaluation allowance before a kill")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=20)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads per run (1: on a shared, loaded 2-core box 2 threads ran ~3.6x slower)")
    ap.add_argument("--target-frac", type=float, default=0.9)
    ap.add_argument("--eval-sample", type=int, default=None,
                    help="evaluate a seeded sample of this many test targets (quick diginetica: 10000)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "peers"))
    ap.add_argument("--retable", action="store_true", help="only rewrite OUT/tables.md from saved results")
    a = ap.parse_args(argv)
    if a.retable:
        retable(Path(a.out).resolve(), a.target_frac)
        return
    a.datasets = a.datasets or (["shop"] if a.quick else ["shop", "diginetica"])
    a.budget_s = a.budget_s or (15.0 if a.quick else 300.0)
    a.epochs = a.epochs or (10 if a.quick else 50)
    budgets = budgets_for(a.budget_s)
    out_root = Path(a.out).resolve()  # runners chdir into their scratch folders
    out_root.mkdir(parents=True, exist_ok=True)

    from bench.peers.export import export, load

    t_all = time.perf_counter()
    tables = [f"machine: {machine()}; threads per run: {a.threads}; budget {a.budget_s:g} s training per run, "
              f"epoch cap {a.epochs}; d_model {a.d_model}, layers {a.layers}, heads {a.heads}, "
              f"max_len {a.max_len}, batch {a.batch}, lr {a.lr}"]
    for ds in a.datasets:
        t = time.perf_counter()
        bd = load(ds, quick=a.quick, max_len=a.max_len, eval_sample=a.eval_sample)
        exp = out_root / ds / "export"
        meta = export(bd, exp)
        print(f"[{ds}] exported in {time.perf_counter() - t:.1f}s: {meta['train_sequences']:,} training sequences, "
              f"{meta['train_positions']:,} training positions, {meta['eval_targets']:,} evaluation targets "
              f"({meta['protocol']}), {meta['n_items']:,} item ids; metric {meta['metric']}", flush=True)
        results = []
        for tool, model in RUNS:
            if tool not in a.tools or (a.models and model not in a.models):
                continue
            print(f"[{ds}] {tool} {model} ...", end=" ", flush=True)
            r = run_one(tool, model, ds, exp, out_root / ds, a)
            results.append(r)
            fv = summary.final_value(r, meta["metric"])
            print(f"{r['status']}: {r.get('epochs_done', 0) or 0:.2f} epochs, train {r.get('train_s') or 0:.1f}s, "
                  f"{meta['metric']} {fv if fv is None else round(fv, 4)}, "
                  f"{(r.get('seq_per_s') or 0):.0f} seq/s, peak RSS {r.get('peak_rss_mib')} MiB, "
                  f"process {r['process_wall_s']}s, load {r['loadavg_1m']}"
                  + (f"\n    error: {str(r.get('error'))[:600]}" if r.get("error") else ""), flush=True)
            (out_root / ds / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
        problems = check_counts(meta, results)
        print(f"[{ds}] counts per tool (train sequences / positions / eval targets):")
        for r in results:
            if r.get("train_sequences") is not None:
                print(f"    {r['tool']:9s} {r['model']:10s} {r['train_sequences']:>9,} {r['train_positions']:>10,} "
                      f"{r['eval_targets']:>8,}  {r.get('native_counts') or ''}")
        print(f"[{ds}] same data for every tool: {'yes' if not problems else 'NO'}")
        for p in problems:
            print("    MISMATCH", p)
        text = dataset_text(meta, results, budgets, a.target_frac, problems)
        print(text, flush=True)
        tables.append(text)
        (out_root / ds / "results.json").write_text(json.dumps({"meta": meta, "results": results,
                                                                "count_problems": problems,
                                                                "budget_s": a.budget_s}, indent=2))
    tables.append(f"total wall time {time.perf_counter() - t_all:.0f} s")
    (out_root / "tables.md").write_text("\n\n".join(tables) + "\n")
    print(f"wrote {out_root / 'tables.md'}")


if __name__ == "__main__":
    main()
