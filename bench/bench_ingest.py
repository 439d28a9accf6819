"""Ingest benchmark: a click-log CSV -> encoded, split, padded torch tensors.

Two pipelines produce the same tensors from the same file:

* **t4r_core**: `prepare_data(path, DataConfig())` (schema inferred, sessions built, time split,
  encoders fitted on train), then `data.train_arrays(max_len=20)` and
  `data.eval_examples("test", "last", 20)`, then `torch.from_numpy`.
* **pandas**: the common tutorial pipeline. `pd.read_csv`, drop one-click sessions,
  `sort_values`, time split by session start, `value_counts` vocabularies on train and `.map`,
  `groupby(session).agg(list)`, then padding each session in Python and `np.asarray` ->
  `torch.from_numpy`.

Both keep every column the schema inference finds (item, `category` and `event_type` as
categorical features, `price` as a standardised continuous one), drop sessions shorter than 2,
split sessions by start time 80/10/10, right-pad the most recent 20 events, and build `last`
prefixes and targets for test. `--check` runs both in-process on the file and asserts that the
tensors decode to the same ids.

Each timed run is a fresh subprocess. `wall` is measured inside it from just before the file is
read to the last tensor (imports excluded; they are listed separately); `peak RSS` is that
process's high-water mark, `VmHWM` from /proc/self/status at the end (on Linux the parent's
`wait4` `ru_maxrss` also counts the forked copy of the parent before exec, so it is only the
fallback where /proc is missing). `CPU s` is the process's CPU time over the same span (all
threads), less sensitive than wall time to other jobs on the machine. The data comes from
`sample_data/make_shop.py`'s `generate_shop` (seeded, about 5 rows per session), cut to exactly
`--rows` rows and cached under `bench/results/` (git-ignored).

    python bench/bench_ingest.py                 # 5M rows (~1M sessions), 3 runs each
    python bench/bench_ingest.py --quick --check # 500k rows, plus an equality check
    python bench/bench_ingest.py --order session shuffled --check --update-readme

`--update-readme` writes the table into bench/README.md, section "## Ingest: CSV to padded tensors"
(the rest of that file is left as it is).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without `pip install -e .`
RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"
SECTION = "## Ingest: CSV to padded tensors"
MAX_LEN = 20
SEED = 2016
ROWS_PER_SESSION = 5.0  # generate_shop makes ~5.06 rows per session; cut to exactly --rows
ORDERS = ("session", "time", "shuffled")
# Context that a run cannot measure by itself; keep it true when the pipeline changes.
NOTES = """
Where the time goes now (line profile, 5 M rows in session order): reading the file about half
(pyarrow's CSV parser on 2 threads, then `to_pandas`), `build_sessions` about a quarter
(factorizing the session key and the three string columns, one pass each; gathers in session
order), then the split, the encoders (int codes only: each distinct string is looked up once)
and the padding. A shuffled file also pays a full `lexsort` by (session, time); a file already
grouped by session and in time order skips it after one O(n) check.

Before the ingest rework (same harness and machine, data layer of commit de28af0, load 4
to 7): 0.30 M interactions/s median in session order (9.7 CPU s), 0.19 M/s in time order (13.5
CPU s), 0.13 M/s shuffled (22.7 CPU s). The cost was Python string objects: `Vocab.encode` /
`Vocab.fit` turned millions of `str` objects into Arrow strings and back (`pd.Index(column)`,
`get_indexer`), and `build_sessions` built one `str` object per event and row-gathered them.
"""
ORDER_TEXT = {"session": "grouped by session, in time order (as generated)",
              "time": "as one event stream in time order (sessions interleaved)",
              "shuffled": "in random order"}


# ------------------------------------------------------------------------------ data


def make_csv(rows: int, order: str) -> Path:
    """The generated shop log with exactly `rows` rows, cached by size, order and seed."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"shop_{rows}_{order}_seed{SEED}.csv"
    if path.exists():
        return path
    sys.path.insert(0, str(ROOT / "sample_data"))
    from make_shop import generate_shop

    import numpy as np

    n_sessions = math.ceil(rows / ROWS_PER_SESSION)
    while True:
        t = time.perf_counter()
        events, _ = generate_shop(n_sessions, SEED)
        if len(events) >= rows:
            break
        n_sessions = math.ceil(n_sessions * 1.05 * rows / len(events))
    events = events.iloc[:rows]  # the last session may lose its tail; it is still a session
    if order == "shuffled":  # rows in random order: the pipelines must sort
        events = events.iloc[np.random.default_rng(SEED).permutation(len(events))]
    elif order == "time":  # one global event stream in time order, sessions interleaved
        events = events.sort_values("timestamp", kind="stable")
    tmp = path.with_name(path.name + ".tmp")
    events.to_csv(tmp, index=False)
    tmp.replace(path)
    print(f"generated {path.relative_to(ROOT)}: {len(events):,} rows, {events['session_id'].nunique():,} "
          f"sessions, {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - t:.1f} s", flush=True)
    return path


# ------------------------------------------------------------------------------ pipelines


def pipeline_ours(path: Path):
    import torch

    from t4r_core.config import DataConfig
    from t4r_core.data import prepare_data

    data = prepare_data(path, DataConfig())
    train = {k: torch.from_numpy(v) for k, v in data.train_arrays(max_len=MAX_LEN).items()}
    test = {k: torch.from_numpy(v) for k, v in data.eval_examples("test", "last", MAX_LEN).items()}
    return train, test, data


def pipeline_pandas(path: Path):
    """The usual tutorial recipe; every step is plain pandas, grouping and padding in Python."""
    import numpy as np
    import pandas as pd
    import torch

    PAD, UNK, FIRST = 0, 1, 3  # same id layout as t4r_core: 0 pad, 1 unknown, 2 mask, 3.. items
    df = pd.read_csv(path)
    df = df[df.groupby("session_id")["item_id"].transform("size") >= 2]
    df = df.sort_values(["session_id", "timestamp"], kind="stable")

    # time split: sessions ordered by start time, last 10% test, 10% before that validation
    start = df.groupby("session_id")["timestamp"].min().sort_values(kind="stable")
    n = len(start)
    n_test, n_val = int(round(n * 0.1)), int(round(n * 0.1))
    n_train = n - n_test - n_val
    split = pd.Series("train", index=start.index)
    split.iloc[n_train : n_train + n_val] = "val"
    split.iloc[n_train + n_val :] = "test"
    df["split"] = df["session_id"].map(split)
    train_rows = df[df["split"] == "train"]

    # vocabularies on train (most frequent first), unknown -> 1; price standardised on train
    for col in ("item_id", "category", "event_type"):
        vocab = {v: i + FIRST for i, v in enumerate(train_rows[col].value_counts().index)}
        df[col + "_idx"] = df[col].map(vocab).fillna(UNK).astype("int64")
    mean, std = train_rows["price"].mean(), train_rows["price"].std(ddof=0)
    df["price_z"] = ((df["price"] - mean) / std).astype("float32")

    cols = {"item_id": "item_id_idx", "category": "category_idx", "event_type": "event_type_idx",
            "price": "price_z"}
    seqs = df.groupby("session_id").agg({**{c: list for c in cols.values()}, "split": "first"})
    seqs = seqs.loc[start.index]  # start-time order, as the split

    def pad(lists, fill, dtype):
        rows = []
        for s in lists:
            s = s[-MAX_LEN:]
            rows.append(s + [fill] * (MAX_LEN - len(s)))
        return torch.from_numpy(np.asarray(rows, dtype=dtype))

    tr, te = seqs[seqs["split"] == "train"], seqs[seqs["split"] == "test"]
    fills = {"item_id": (PAD, np.int64), "category": (PAD, np.int64), "event_type": (PAD, np.int64),
             "price": (0.0, np.float32)}
    train = {k: pad(tr[c], *fills[k]) for k, c in cols.items()}
    test = {k: pad((s[:-1] for s in te[c]), *fills[k]) for k, c in cols.items()}
    test["target"] = torch.from_numpy(np.asarray([s[-1] for s in te["item_id_idx"]], dtype=np.int64))
    inverse = {col: np.asarray(train_rows[col].value_counts().index, dtype=object)
               for col in ("item_id", "category", "event_type")}
    return train, test, inverse


# ------------------------------------------------------------------------------ worker


def _vm_hwm_kib() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def worker(which: str, path: Path) -> None:
    t0 = time.perf_counter()
    import numpy  # noqa: F401  the imports both pipelines need, outside the timed part
    import pandas  # noqa: F401
    import torch  # noqa: F401

    if which == "ours":
        import t4r_core.data  # noqa: F401
    t1 = time.perf_counter()
    c1 = time.process_time()
    train, test, _ = (pipeline_ours if which == "ours" else pipeline_pandas)(path)
    t2 = time.perf_counter()
    c2 = time.process_time()
    print(json.dumps({
        "import_s": t1 - t0, "wall_s": t2 - t1, "cpu_s": c2 - c1, "vm_hwm_kib": _vm_hwm_kib(),
        "train_shape": list(train["item_id"].shape), "test_shape": list(test["item_id"].shape),
        "keys": sorted(train),
    }))


def run_worker(which: str, path: Path) -> dict:
    t = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.Popen([sys.executable, __file__, "--worker", which, "--csv", str(path)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    out = p.stdout.read()  # until the child exits; then reap it ourselves to get its rusage
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{which} worker failed ({p.returncode}):\n{out.decode()[-3000:]}")
    res = json.loads(out.decode().strip().splitlines()[-1])
    res["process_s"] = time.perf_counter() - t
    res["ru_maxrss_mib"] = usage.ru_maxrss / 1024  # Linux: KiB, includes the pre-exec fork of this process
    res["peak_rss_mib"] = res["vm_hwm_kib"] / 1024 if res["vm_hwm_kib"] else res["ru_maxrss_mib"]
    return res


# ------------------------------------------------------------------------------ check


def check_equal(path: Path) -> str:
    """Both pipelines in-process; their tensors must decode to the same user ids."""
    import numpy as np

    ours_tr, ours_te, data = pipeline_ours(path)
    pd_tr, pd_te, inverse = pipeline_pandas(path)
    dec = {"item_id": data.encoders.items, **data.encoders.categorical}

    def decode_ours(name, t):
        return dec[name].decode(t.numpy())

    def decode_pd(name, t):
        a = t.numpy()
        out = np.full(a.shape, None, dtype=object)
        out[a == 0] = "[PAD]"
        out[a == 1] = "[UNK]"
        real = a >= 3
        out[real] = inverse[name][a[real] - 3]
        return out

    for side, o, p in (("train", ours_tr, pd_tr), ("test", ours_te, pd_te)):
        assert o["item_id"].shape == p["item_id"].shape, (side, o["item_id"].shape, p["item_id"].shape)
        for name in ("item_id", "category", "event_type"):
            a, b = decode_ours(name, o[name]), decode_pd(name, p[name])
            assert (a == b).all(), f"{side} {name}: {int((a != b).sum())} cells differ"
        assert np.allclose(o["price"].numpy(), p["price"].numpy(), atol=1e-4), f"{side} price"
    a, b = decode_ours("item_id", ours_te["target"]), decode_pd("item_id", pd_te["target"])
    assert (a == b).all(), "test targets differ"
    return (f"check passed: train {tuple(ours_tr['item_id'].shape)}, test {tuple(ours_te['item_id'].shape)}; "
            "item/category/event_type decode to the same ids, price within 1e-4, same targets")


# ------------------------------------------------------------------------------ report


def machine() -> dict:
    import numpy
    import pandas
    import pyarrow
    import torch

    cpu = ""
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpus": os.cpu_count(), "cpu": cpu, "mem_gib": mem, "python": platform.python_version(),
            "numpy": numpy.__version__, "pandas": pandas.__version__, "pyarrow": pyarrow.__version__,
            "torch": torch.__version__}


def _med(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def summarise(runs: dict[str, list[dict]], rows: int) -> dict[str, dict]:
    out = {}
    for name, rs in runs.items():
        wall = _med([r["wall_s"] for r in rs])
        out[name] = {"wall_s": wall, "best_s": min(r["wall_s"] for r in rs), "cpu_s": _med([r["cpu_s"] for r in rs]),
                     "import_s": _med([r["import_s"] for r in rs]), "process_s": _med([r["process_s"] for r in rs]),
                     "rate": rows / wall, "best_rate": rows / min(r["wall_s"] for r in rs),
                     "peak_rss_mib": max(r["peak_rss_mib"] for r in rs), "n": len(rs),
                     "train_shape": rs[0]["train_shape"], "test_shape": rs[0]["test_shape"]}
    return out


def table(s: dict[str, dict]) -> str:
    o, p = s["t4r_core"], s["pandas"]
    head = ("| pipeline | wall s (median) | best s | interactions/s (median) | CPU s | interactions per CPU s "
            "| peak RSS MiB | imports s | whole process s |")
    lines = [head, "|" + "---|" * 9]
    for name, r in (("t4r_core", o), ("pandas groupby().agg(list) + Python padding", p)):
        per_cpu = r["rate"] * r["wall_s"] / r["cpu_s"]
        lines.append(f"| {name} | {r['wall_s']:.2f} | {r['best_s']:.2f} | {r['rate'] / 1e6:.2f} M | "
                     f"{r['cpu_s']:.2f} | {per_cpu / 1e6:.2f} M | {r['peak_rss_mib']:,.0f} | {r['import_s']:.2f} | "
                     f"{r['process_s']:.2f} |")
    lines.append(f"| **ratio pandas / t4r_core** | **{p['wall_s'] / o['wall_s']:.1f}x** | "
                 f"{p['best_s'] / o['best_s']:.1f}x | | {p['cpu_s'] / o['cpu_s']:.1f}x | | "
                 f"{p['peak_rss_mib'] / o['peak_rss_mib']:.2f}x | | |")
    return "\n".join(lines)


def update_readme(text: str) -> None:
    """Replace (or append) only our section of bench/README.md."""
    body = README.read_text() if README.exists() else "# Benchmarks\n"
    lines = body.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == SECTION), None)
    new = text.rstrip("\n") + "\n"
    if start is None:
        body = body.rstrip("\n") + "\n\n" + new
    else:
        end = next((j for j in range(start + 1, len(lines)) if lines[j].startswith("## ")), len(lines))
        rest = "".join(lines[end:])
        body = "".join(lines[:start]) + new + ("\n" + rest if rest else "")
    README.write_text(body)


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=5_000_000, help="rows in the generated CSV (default 5M)")
    ap.add_argument("--quick", action="store_true", help="500k rows")
    ap.add_argument("--repeat", type=int, default=3, help="fresh-process runs per pipeline (median reported)")
    ap.add_argument("--order", nargs="+", choices=ORDERS, default=["session"],
                    help="row order of the file, one table each: session = the generator's (by session, then "
                         "time); time = one event stream in time order, sessions interleaved; shuffled = random")
    ap.add_argument("--only", choices=("t4r_core", "pandas"), help="run one pipeline")
    ap.add_argument("--check", action="store_true", help="also assert both pipelines give the same tensors "
                    "(session order only: elsewhere ties in start time may be split differently)")
    ap.add_argument("--update-readme", action="store_true", help=f"write the results into bench/README.md, '{SECTION}'")
    ap.add_argument("--json", help="also write the raw results to this file")
    ap.add_argument("--readme-from", metavar="JSON", help="write bench/README.md's section from a saved --json "
                    "file instead of running")
    ap.add_argument("--worker", choices=("ours", "pandas"), help=argparse.SUPPRESS)
    ap.add_argument("--csv", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, Path(args.csv))
        return 0
    if args.readme_from:
        saved = json.loads(Path(args.readme_from).read_text())
        args.order, args.repeat = list(saved["results"]), saved.get("repeat", args.repeat)
        args.quick = saved["rows"] == 500_000
        update_readme(readme_section(saved["results"], saved["rows"], args, saved["machine"], saved["check"]))
        print(f"wrote {README.relative_to(ROOT)}")
        return 0
    rows = 500_000 if args.quick else args.rows
    names = {"t4r_core": "ours", "pandas": "pandas"}
    if args.only:
        names = {args.only: names[args.only]}
    m = machine()
    results, checked = {}, None
    for order in args.order:
        path = make_csv(rows, order)
        if args.check and order == "session":
            checked = check_equal(path)
            print(checked, flush=True)
        load = [os.getloadavg()[0]]
        runs: dict[str, list[dict]] = {n: [] for n in names}
        for i in range(args.repeat):  # interleaved, so background load hits both alike
            for name, w in names.items():
                r = run_worker(w, path)
                runs[name].append(r)
                load.append(os.getloadavg()[0])
                print(f"  {order} run {i + 1}/{args.repeat} {name:8s} wall {r['wall_s']:6.2f} s  "
                      f"cpu {r['cpu_s']:6.2f} s  "
                      f"{rows / r['wall_s'] / 1e6:5.2f} M interactions/s  peak RSS {r['peak_rss_mib']:,.0f} MiB  "
                      f"load {load[-1]:.1f}", flush=True)
        s = summarise(runs, rows)
        results[order] = {"summary": s, "runs": runs, "load": load}
        first = s[next(iter(s))]
        print()
        if len(s) == 2:
            print(table(s))
        else:
            for name, r in s.items():
                print(f"{name}: wall {r['wall_s']:.2f} s, {r['rate'] / 1e6:.2f} M interactions/s, "
                      f"peak {r['peak_rss_mib']:,.0f} MiB")
        print(f"\n{rows:,} rows (order: {order}); train {first['train_shape']}, test {first['test_shape']}; "
              f"1-min load average during the runs {min(load):.1f}..{max(load):.1f}; {m['cpus']} CPUs, "
              f"{m['mem_gib']:.0f} GiB\n", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "repeat": args.repeat, "machine": m, "check": checked,
                                               "results": results}, indent=2))
    if args.update_readme:
        if args.only:
            print("--update-readme needs both pipelines; not written")
        else:
            update_readme(readme_section(results, rows, args, m, checked))
            print(f"wrote {README.relative_to(ROOT)}")
    return 0


def readme_section(results: dict, rows: int, args, m: dict, checked: str | None) -> str:
    cmd = "python bench/bench_ingest.py"
    cmd += " --quick" if args.quick else f" --rows {rows}" if rows != 5_000_000 else ""
    cmd += "" if args.order == ["session"] else " --order " + " ".join(args.order)
    cmd += " --check" if checked else ""
    parts = [f"""{SECTION}

CSV -> encoded, split (time, 80/10/10), right-padded `[N, 20]` tensors for train plus the test
`last` prefixes and targets, with the side features (`category`, `event_type`, `price`).
`t4r_core` is `prepare_data(path, DataConfig())` + `train_arrays(20)` + `eval_examples("test",
"last", 20)` + `torch.from_numpy`; `pandas` is the tutorial recipe (`read_csv`, `sort_values`,
`value_counts` vocabularies + `map`, `groupby(session).agg(list)`, padding each session in
Python). Generated with `sample_data/make_shop.py` ({rows:,} rows, about {rows / ROWS_PER_SESSION / 1e6:.1f} M
sessions, seed {SEED}). Each figure is the median of {args.repeat} fresh processes per pipeline, run
interleaved; wall time is from reading the file to the last tensor (imports excluded, listed
separately); peak RSS is the process's `VmHWM`. Command: `{cmd}`.
"""]
    for order, res in results.items():
        s, load = res["summary"], res["load"]
        o = s["t4r_core"]
        goal = "meets" if o["rate"] >= 1e6 else "misses"
        parts.append(f"""
### Rows {ORDER_TEXT[order]}

{table(s)}

t4r_core: {o['rate'] / 1e6:.2f} M interactions/s (median; best run {o['best_rate'] / 1e6:.2f} M/s), {goal} the
1 M/s goal. Train `{o['train_shape']}`, test `{o['test_shape']}`. 1-minute load average during
these runs: {min(load):.1f} to {max(load):.1f}.
""")
    parts.append(NOTES)
    parts.append(f"""
{checked + '.' if checked else 'Equality of the two outputs: run with `--check`.'}
Machine: {m['cpus']} CPU cores ({m['cpu'] or 'unknown CPU'}), {m['mem_gib']:.0f} GiB RAM, no GPU used;
Python {m['python']}, numpy {m['numpy']}, pandas {m['pandas']}, pyarrow {m['pyarrow']}, torch {m['torch']}.
""")
    return "".join(parts)


if __name__ == "__main__":
    sys.exit(main())
