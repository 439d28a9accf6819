"""Sanity check: first-order Markov vs popularity, Recall@20 on the next item.

Train on the first half of sessions (by session_id: start order for the generated shop
data, not time order for the Diginetica sample), test on the second half.
`last`: predict each test session's last click from its second-to-last;
`all`: every next-item pair in the test sessions. Rows with event_type purchase are
dropped (they repeat a carted item); sessions need >= 2 clicks.
"""
import sys
import time
from pathlib import Path
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sample_data"))
from make_shop import generate_shop  # noqa: E402

K = 20

def evaluate(ev: pd.DataFrame) -> dict:
    codes, uniq = pd.factorize(ev["item_id"])
    s = ev["session_id"].to_numpy()
    n_items = len(uniq)
    sess_ids = np.unique(s)
    cut = sess_ids[len(sess_ids) // 2]
    same = s[1:] == s[:-1]
    src, dst, ps = codes[:-1][same], codes[1:][same], s[1:][same]
    tr = ps < cut
    pop = np.bincount(codes[s < cut], minlength=n_items)
    top_pop = np.argsort(-pop, kind="stable")[:K]
    # Markov top-K per source item, back-filled with popularity
    pair = pd.DataFrame({"a": src[tr], "b": dst[tr]}).value_counts().reset_index(name="n")
    pair = pair.sort_values(["a", "n"], ascending=[True, False], kind="stable")
    pair["r"] = pair.groupby("a").cumcount()
    pair = pair[pair["r"] < K]
    table = np.tile(top_pop, (n_items, 1))
    for a, grp in pair.groupby("a"):  # only <= n_items groups
        succ = grp["b"].to_numpy()
        rest = top_pop[~np.isin(top_pop, succ)][: K - len(succ)]
        table[a] = np.concatenate([succ, rest])
    out = {}
    te_src, te_dst, te_s = src[~tr], dst[~tr], ps[~tr]
    last = np.r_[te_s[1:] != te_s[:-1], True]
    for name, m in (("all", np.ones(te_src.size, bool)), ("last", last)):
        hit_m = (table[te_src[m]] == te_dst[m][:, None]).any(1).mean()
        hit_p = np.isin(te_dst[m], top_pop).mean()
        out[name] = (int(m.sum()), hit_p, hit_m)
    return out

def report(label, ev):
    ev = ev[ev.get("event_type", pd.Series("view", index=ev.index)) != "purchase"]
    size = ev.groupby("session_id")["item_id"].transform("size")
    ev = ev[size >= 2]
    for name, (n, p, m) in evaluate(ev).items():
        print(f"{label:24s} {name:4s} n={n:6d}  Pop R@{K}={100*p:5.1f}%  Markov R@{K}={100*m:5.1f}%")

if __name__ == "__main__":
    t = time.perf_counter()
    ev, _ = generate_shop()
    report("shop (generated)", ev)
    dig = Path(__file__).resolve().parents[1] / "sample_data" / "diginetica_sample.csv"
    d = pd.read_csv(dig, sep=";").sort_values(["session_id", "timeframe"], kind="stable")
    report("diginetica_sample", d)
    print(f"{time.perf_counter() - t:.1f} s")
