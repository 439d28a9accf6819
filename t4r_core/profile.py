"""Data profile: counts, session lengths, time range, column roles, what was dropped and why.

Used by `python -m t4r_core profile` and the app's Data page; the figures come from `viz.py`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .config import DataConfig
from .ingest import read_table
from .schema import Schema, infer_schema, validate
from .sessions import build_sessions
from .timestamps import iso


def profile_frame(df: pd.DataFrame, cfg: DataConfig | None = None, schema: Schema | None = None,
                  label: str = "data") -> dict[str, Any]:
    """One JSON-able dict describing the cleaned sessions (after dedup / min length filters)."""
    return _profile(df, cfg, schema, label)[0]


def profile_details(df: pd.DataFrame, cfg: DataConfig | None = None, schema: Schema | None = None,
                    label: str = "data") -> dict[str, Any]:
    """`profile_frame` plus the arrays the profile figures draw (the app's Data page, notebooks):
    `summary`, `schema`, `lengths` (per session), `start_time` (per session, unix s), `item_counts`
    (most clicked first) and `top_items` (the 50 most clicked, as the user's ids)."""
    summary, sessions, schema = _profile(df, cfg, schema, label)
    vc = pd.Series(sessions.items).value_counts(sort=True)
    return {
        "summary": summary,
        "schema": schema.to_dict(),
        "columns": [str(c) for c in df.columns],
        "lengths": sessions.lengths,
        "start_time": sessions.start_time if sessions.start_time is not None else np.zeros(0),
        "item_counts": vc.to_numpy(),
        "top_items": [x.item() if isinstance(x, np.generic) else x for x in vc.index[:50]],
    }


def _profile(df: pd.DataFrame, cfg: DataConfig | None, schema: Schema | None, label: str):
    cfg = cfg or DataConfig()
    schema = schema or infer_schema(df, cfg, label)
    validate(df, schema, label)
    sessions, report = build_sessions(df, schema, cfg, label)
    lens = sessions.lengths
    st = sessions.start_time
    if st is not None and len(st):
        time_range = {"start": iso(float(np.min(st))), "end": iso(float(np.max(st)))}
    else:
        time_range = {"start": None, "end": None}
    n_items = int(pd.unique(sessions.items).size) if sessions.n_events else 0
    return {
        "n_interactions": int(sessions.n_events),
        "n_sessions": int(len(sessions)),
        "n_items": n_items,
        "n_interactions_in": int(report.n_interactions_in),
        "session_length": {
            "min": int(lens.min()) if len(lens) else 0,
            "median": float(np.median(lens)) if len(lens) else 0.0,
            "mean": float(lens.mean()) if len(lens) else 0.0,
            "max": int(lens.max()) if len(lens) else 0,
        },
        "time_range": time_range,
        "time_unit": report.time_unit,
        "columns": schema.roles(),
        "dropped": dict(report.dropped),
        "short_sessions_dropped": int(report.n_short_sessions),
        "repeat_rate": _repeat_rate(sessions),
    }, sessions, schema


def _repeat_rate(sessions) -> float:
    """Share of next items (positions >= 2) that already occurred earlier in the same session."""
    if sessions.n_events == 0:
        return 0.0
    sess = sessions.event_session()
    df = pd.DataFrame({"s": sess, "i": sessions.items})
    seen_before = df.duplicated(["s", "i"]).to_numpy()
    first = np.zeros(sessions.n_events, dtype=bool)
    first[sessions.offsets[:-1]] = True
    denom = int((~first).sum())
    return float(seen_before[~first].sum() / denom) if denom else 0.0


def profile_file(path, cfg: DataConfig | None = None) -> dict[str, Any]:
    cfg = cfg or DataConfig()
    df = read_table(path, sep=cfg.sep)
    out = profile_frame(df, cfg, label=str(path))
    out["file"] = str(path)
    return out


def format_profile(p: dict[str, Any]) -> str:
    """A readable table for the terminal."""
    sl = p["session_length"]
    rows = [
        ("file", p.get("file", "")),
        ("interactions", f"{p['n_interactions']:,} kept of {p['n_interactions_in']:,}"),
        ("sessions", f"{p['n_sessions']:,}"),
        ("items", f"{p['n_items']:,}"),
        ("session length", f"min {sl['min']}  median {sl['median']:g}  mean {sl['mean']:.2f}  max {sl['max']}"),
        ("time range", f"{p['time_range']['start']} .. {p['time_range']['end']}"),
        ("repeat rate", f"{100 * p['repeat_rate']:.1f}% of next items already seen in the session"),
        ("dropped", ", ".join(f"{k}: {v:,}" for k, v in p["dropped"].items()) or "nothing"),
    ]
    rows += [(f"column {c}", role) for c, role in p["columns"].items()]
    w = max(len(r[0]) for r in rows)
    return "\n".join(f"{k.ljust(w)}  {v}" for k, v in rows)
