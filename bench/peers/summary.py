"""Time-to-quality, quality at a wall budget, throughput ratios and the Markdown table (pure Python).

A result is a runner's JSON (see common.py); its "epochs" list holds, after each epoch, the
cumulative training time `train_s` (evaluation excluded) and the test metrics.
"""

from __future__ import annotations

import math

# (ours, peer) pairs compared for throughput: same architecture family, same sizes
PAIRS = {
    ("rectools", "SASRec"): "SASRec+", ("recbole", "SASRec"): "SASRec+", ("t4r", "GPT2-CLM"): "SASRec+",
    ("rectools", "BERT4Rec"): "BERT4Rec", ("recbole", "BERT4Rec"): "BERT4Rec",
    ("recbole", "GRU4Rec"): "GRU4Rec", ("t4r", "XLNet-MLM"): "XLNet-MLM",
}
BASELINES = ("Pop", "V-SKNN", "VSKNN", "SPop")


def curve(result: dict, metric: str) -> list[tuple[float, float]]:
    """[(cumulative train seconds, metric)] in epoch order; epochs without the metric skipped."""
    out = []
    for e in result.get("epochs") or []:
        v = (e.get("metrics") or {}).get(metric)
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            out.append((float(e["train_s"]), float(v)))
    return out


def final_value(result: dict, metric: str) -> float | None:
    c = curve(result, metric)
    return c[-1][1] if c else None


def best_value(result: dict, metric: str) -> float | None:
    c = curve(result, metric)
    return max(v for _, v in c) if c else None


BUDGET_SLACK = 0.01


def time_to_target(result: dict, metric: str, target: float) -> float | None:
    """Training seconds at the end of the first epoch whose metric reaches `target`; None if never."""
    for t, v in curve(result, metric):
        if v >= target:
            return t
    return None


def value_at_budget(result: dict, metric: str, budget_s: float) -> float | None:
    """The metric after the last epoch finished within `budget_s` training seconds (None: none did).

    Runs are cut at the first batch past their budget, so an evaluation up to 1% later counts as
    "at" the budget (RecBole's 300.2 s for a 300 s budget)."""
    best = None
    for t, v in curve(result, metric):
        if t <= budget_s * (1 + BUDGET_SLACK):
            best = v
    return best


def is_peer(result: dict) -> bool:
    return result.get("tool") != "t4r_core"


def is_neural(result: dict) -> bool:
    return result.get("model") not in BASELINES


def target_for(results: list[dict], metric: str, frac: float = 0.9) -> float | None:
    """`frac` x the best final value among the peers' neural runs (None when no peer finished)."""
    finals = [final_value(r, metric) for r in results if is_peer(r) and is_neural(r) and r.get("status") == "ok"]
    finals = [f for f in finals if f is not None]
    return frac * max(finals) if finals else None


def ratios(results: list[dict]) -> list[dict]:
    """Throughput of ours / peer, pair by pair (sequences per second of training time)."""
    ours = {r["model"]: r for r in results if r.get("tool") == "t4r_core" and r.get("seq_per_s")}
    out = []
    for r in results:
        key = (r.get("tool"), r.get("model"))
        if key in PAIRS and r.get("seq_per_s") and PAIRS[key] in ours:
            o = ours[PAIRS[key]]
            out.append({"ours": PAIRS[key], "peer": f"{key[0]} {key[1]}", "ours_seq_per_s": o["seq_per_s"],
                        "peer_seq_per_s": r["seq_per_s"], "ratio": o["seq_per_s"] / r["seq_per_s"]})
    return out


def _fmt(v, nd=4):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def table(results: list[dict], metric: str, budgets: list[float], frac: float = 0.9) -> str:
    """One Markdown table for one data set."""
    target = target_for(results, metric, frac)
    head = (["tool", "model", "metric by", "epochs", "train s", f"final {metric}", f"best {metric}",
             f"time to {frac:.0%} of best peer" + (f" ({target:.4f})" if target is not None else "")]
            + [f"{metric} at {b:g} s" for b in budgets]
            + ["seq/s", "pos/s", "ours / peer seq/s", "peak RSS MiB", "status"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rat = {r["peer"]: r["ratio"] for r in ratios(results)}
    for r in results:
        ttq = time_to_target(r, metric, target) if target is not None else None
        peer_key = f"{r.get('tool')} {r.get('model')}"
        status = r.get("status", "?")
        if r.get("stopped_by_budget"):
            status += " (wall budget)"
        row = [r.get("tool", "?"), r.get("model", "?"),
               "ours" if r.get("metric_source", "ours-on-topk") == "ours-on-topk" else "tool's own (!)",
               _fmt(r.get("epochs_done"), 2), _fmt(r.get("train_s"), 1), _fmt(final_value(r, metric)),
               _fmt(best_value(r, metric)), _fmt(ttq, 1) + (" s" if ttq is not None else "")]
        row += [_fmt(value_at_budget(r, metric, b)) for b in budgets]
        row += [_fmt(r.get("seq_per_s"), 0), _fmt(r.get("pos_per_s"), 0),
                (f"{rat[peer_key]:.2f}x" if peer_key in rat else ""), _fmt(r.get("peak_rss_mib"), 0), status]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
