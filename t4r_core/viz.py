"""Plotly figure builders shared by the app and the notebooks.

Every function is pure: arrays / DataFrames in, a `plotly.graph_objects.Figure` out, nothing
computed about models here (that is `explain.py`'s job). Labels that may come from user files
(item ids, item names, categories) pass through `safe_label`, which turns `<` and `>` into
look-alike characters: Plotly interprets a few HTML tags in text, so uploaded text can never
inject markup into a chart.

    fig = viz.session_length_histogram(data.train.lengths)
    fig = viz.attention_heatmap(att[layer, head], labels)
    fig.show()        # notebook;  st.plotly_chart(fig) in the app
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

TEMPLATE = "plotly_white"
# One colour per model family, kept across every chart (run first, then baselines).
PALETTE = ["#4C6EF5", "#F76707", "#12B886", "#AE3EC9", "#FAB005", "#E64980", "#15AABF", "#868E96"]
FONT = dict(family="Inter, 'Source Sans Pro', Arial, sans-serif", size=13)

# Roles of a position in the masking diagram -> (colour, legend text)
MASK_ROLES: dict[str, tuple[str, str]] = {
    "visible": ("#DEE2E6", "seen by the body"),
    "masked": ("#4C6EF5", "[MASK]: predict this item"),
    "hidden": ("#AE3EC9", "permuted: predicted, hidden from itself"),
    "replaced": ("#F76707", "replaced by the generator: detect it"),
    "target": ("#12B886", "item to predict"),
    "slot": ("#FAB005", "[MASK] slot: the next item"),
    "none": ("#FFFFFF", "nothing"),
}


# ------------------------------------------------------------------------------ helpers


def safe_label(x: Any, max_len: int = 40) -> str:
    """Text fit for a chart: str, no markup characters, clipped to `max_len` characters."""
    s = "" if x is None else str(x)
    s = s.replace("<", "\u2039").replace(">", "\u203a").replace("\n", " ").replace("\r", " ")
    return s if len(s) <= max_len else s[: max_len - 1] + "\u2026"


def unique_labels(labels: Sequence[Any], max_len: int = 28) -> list[str]:
    """Position-numbered labels ("1 · Navy Quilt"): axis categories must be unique, items repeat."""
    return [f"{i + 1} \u00b7 {safe_label(lab, max_len)}" for i, lab in enumerate(labels)]


_BOTTOM_LEGEND = dict(orientation="h", x=0, xanchor="left", y=-0.18, yanchor="top")


def _layout(fig: go.Figure, title: str | None = None, height: int | None = None, **kw) -> go.Figure:
    fig.update_layout(
        template=TEMPLATE, font=FONT, title=dict(text=title, x=0.0, xanchor="left") if title else None,
        margin=dict(l=10, r=10, t=50 if title else 20, b=10 if "legend" not in kw else 60), height=height, **kw,
    )
    return fig


def _empty(title: str, message: str = "no data") -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, height=250)


# ------------------------------------------------------------------------------ data profile


def session_length_histogram(lengths: Sequence[int] | np.ndarray, max_len: int | None = None,
                             title: str = "Session length") -> go.Figure:
    """Sessions per length (events); a dashed line where the model truncates (`max_len`)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size == 0:
        return _empty(title)
    values, counts = np.unique(lengths, return_counts=True)
    fig = go.Figure(go.Bar(x=values, y=counts, marker_color=PALETTE[0],
                           hovertemplate="length %{x}: %{y:,} sessions<extra></extra>"))
    if max_len is not None and max_len < values.max():
        fig.add_vline(x=max_len + 0.5, line_dash="dash", line_color=PALETTE[1],
                      annotation_text=f"max_len {max_len}", annotation_position="top right")
    fig.update_xaxes(title="events in the session")
    fig.update_yaxes(title="sessions")
    return _layout(fig, title, height=320, bargap=0.05)


def popularity_long_tail(counts: Sequence[float] | np.ndarray, title: str = "Item popularity (long tail)") -> go.Figure:
    """Clicks of each item against its popularity rank, both axes logarithmic."""
    c = np.sort(np.asarray(counts, dtype=np.float64)[np.asarray(counts) > 0])[::-1]
    if c.size == 0:
        return _empty(title)
    rank = np.arange(1, c.size + 1)
    share = np.cumsum(c) / c.sum()
    fig = go.Figure(go.Scatter(x=rank, y=c, mode="lines", line=dict(color=PALETTE[0], width=2),
                               customdata=share * 100,
                               hovertemplate="rank %{x:,}: %{y:,} events<br>top %{x:,} items = "
                                             "%{customdata:.1f}% of events<extra></extra>"))
    top20 = max(1, int(round(0.2 * c.size)))
    fig.add_annotation(text=f"top 20% of items: {100 * share[top20 - 1]:.0f}% of events", x=0.98, y=0.98,
                       xref="paper", yref="paper", showarrow=False, xanchor="right", yanchor="top")
    fig.update_xaxes(type="log", title="item rank")
    fig.update_yaxes(type="log", title="events")
    return _layout(fig, title, height=320)


def activity_over_time(timestamps: Sequence[float] | np.ndarray, freq: str | None = None,
                       title: str = "Activity over time") -> go.Figure:
    """Sessions started per day (or hour, for spans under 3 days) from unix seconds."""
    ts = np.asarray(timestamps, dtype=np.float64)
    ts = ts[np.isfinite(ts)]
    if ts.size == 0:
        return _empty(title, "no timestamps in the data")
    t = pd.to_datetime(ts, unit="s", utc=True)
    if freq is None:
        span = (ts.max() - ts.min()) / 86400
        freq = "h" if span < 3 else "D" if span < 400 else "W"
    s = pd.Series(1, index=t).resample(freq).sum()
    unit = {"h": "hour", "D": "day", "W": "week"}.get(freq, freq)
    fig = go.Figure(go.Bar(x=s.index, y=s.to_numpy(), marker_color=PALETTE[0],
                           hovertemplate="%{x}: %{y:,} sessions<extra></extra>"))
    fig.update_yaxes(title=f"sessions per {unit}")
    return _layout(fig, title, height=320, bargap=0.05)


def top_items_bar(labels: Sequence[Any], counts: Sequence[float], n: int = 20,
                  title: str = "Most clicked items") -> go.Figure:
    """Horizontal bars of the `n` most frequent items, labelled with names where known."""
    df = pd.DataFrame({"label": [safe_label(x, 45) for x in labels], "count": np.asarray(counts, dtype=float)})
    df = df.nlargest(n, "count").iloc[::-1]
    if df.empty:
        return _empty(title)
    fig = go.Figure(go.Bar(x=df["count"], y=[f"{lab} " for lab in df["label"]], orientation="h",
                           marker_color=PALETTE[0], hovertemplate="%{y}: %{x:,}<extra></extra>"))
    fig.update_xaxes(title="events")
    return _layout(fig, title, height=max(300, 22 * len(df) + 80))


def split_counts_bar(counts: Mapping[str, Mapping[str, int]], title: str = "Split") -> go.Figure:
    """Sessions and events per split side (train / val / test)."""
    names = list(counts)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("sessions", "events"))
    for col, key in enumerate(("sessions", "events"), start=1):
        fig.add_trace(go.Bar(x=names, y=[counts[n].get(key, 0) for n in names], marker_color=PALETTE[:len(names)],
                             text=[f"{counts[n].get(key, 0):,}" for n in names], textposition="auto",
                             showlegend=False, hovertemplate="%{x}: %{y:,}<extra></extra>"), row=1, col=col)
    return _layout(fig, title, height=280)


# ------------------------------------------------------------------------------ metrics


def metrics_table(results: Mapping[str, Mapping[str, float]],
                  metrics: Sequence[str] = ("ndcg", "recall", "mrr", "map", "precision"),
                  ks: Sequence[int] = (5, 10, 20)) -> pd.DataFrame:
    """{model: {"ndcg@10": ...}} -> a table, one row per model, columns metric@k in a fixed order."""
    cols = [f"{m}@{k}" for m in metrics for k in ks]
    rows = {name: {c: res.get(c, np.nan) for c in cols} for name, res in results.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols)


def metrics_bars(table: pd.DataFrame, metrics: Sequence[str] | None = None, title: str = "Test metrics") -> go.Figure:
    """Grouped bars: one group per metric@k column, one bar per model (row of `table`)."""
    cols = [c for c in table.columns if metrics is None or c.split("@")[0] in metrics]
    if table.empty or not cols:
        return _empty(title)
    fig = go.Figure()
    for i, (name, row) in enumerate(table[cols].iterrows()):
        fig.add_trace(go.Bar(name=safe_label(name), x=cols, y=row.to_numpy(dtype=float),
                             marker_color=PALETTE[i % len(PALETTE)],
                             hovertemplate="%{x}: %{y:.4f}<extra>" + safe_label(name) + "</extra>"))
    fig.update_yaxes(title="score", rangemode="tozero")
    return _layout(fig, title, height=380, barmode="group", legend=_BOTTOM_LEGEND)


def runs_comparison(summary: pd.DataFrame, metric: str = "ndcg@10", title: str | None = None) -> go.Figure:
    """One bar per saved run (rows of `compare_runs(...)`) for one metric, best first."""
    title = title or f"Saved runs: test {metric}"
    if summary.empty or metric not in summary.columns:
        return _empty(title, f"no run reports {metric}")
    df = summary.dropna(subset=[metric]).sort_values(metric, ascending=False)
    hover = [f"{safe_label(r.get('body'))} / {safe_label(r.get('masking'))}, d={r.get('d_model')}"
             for _, r in df.iterrows()]
    fig = go.Figure(go.Bar(x=[safe_label(x, 50) for x in df["run"]], y=df[metric], marker_color=PALETTE[0],
                           customdata=hover, hovertemplate="%{x}<br>%{customdata}<br>" + metric
                           + " %{y:.4f}<extra></extra>"))
    fig.update_yaxes(title=metric, rangemode="tozero")
    return _layout(fig, title, height=340)


def training_curves(steps: pd.DataFrame, evals: pd.DataFrame | None = None, metric: str = "ndcg@10",
                    max_steps: int | None = None, title: str = "Training") -> go.Figure:
    """Loss by step (left) and the validation metric after each evaluation (right).

    `steps` has columns step, loss; `evals` step and `metric` (either may be empty)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", f"validation {metric}"))
    if steps is not None and not steps.empty and "loss" in steps:
        s = steps.dropna(subset=["loss"])
        fig.add_trace(go.Scatter(x=s["step"], y=s["loss"], mode="lines+markers", marker=dict(size=4),
                                 line=dict(color=PALETTE[0]), name="loss",
                                 hovertemplate="step %{x}: loss %{y:.4f}<extra></extra>"), row=1, col=1)
    if evals is not None and not evals.empty and metric in evals:
        e = evals.dropna(subset=[metric])
        fig.add_trace(go.Scatter(x=e["step"], y=e[metric], mode="lines+markers", line=dict(color=PALETTE[2]),
                                 name=metric, hovertemplate="step %{x}: %{y:.4f}<extra></extra>"), row=1, col=2)
    else:
        fig.add_annotation(text="after the first epoch", x=0.5, y=0.5, xref="x2 domain", yref="y2 domain",
                           showarrow=False, font=dict(color="#868E96"))
    for col in (1, 2):
        fig.update_xaxes(title="step", row=1, col=col, range=[0, max_steps] if max_steps else None)
    return _layout(fig, title, height=320, showlegend=False)


def breakdown_chart(df: pd.DataFrame, group: str = "group", metric: str = "recall@20",
                    model: str = "model", title: str | None = None) -> go.Figure:
    """Bars of `metric` per group (x) and model (colour); the number of examples in the hover."""
    title = title or metric
    if df.empty or metric not in df:
        return _empty(title)
    fig = go.Figure()
    for i, (name, part) in enumerate(df.groupby(model, sort=False)):
        fig.add_trace(go.Bar(name=safe_label(name), x=[safe_label(g) for g in part[group]], y=part[metric],
                             marker_color=PALETTE[i % len(PALETTE)],
                             customdata=part["n"] if "n" in part else None,
                             hovertemplate="%{x}: %{y:.4f} (n=%{customdata:,})<extra>" + safe_label(name)
                             + "</extra>"))
    fig.update_yaxes(title=metric, rangemode="tozero")
    return _layout(fig, title, height=360, barmode="group", legend=_BOTTOM_LEGEND)


# ------------------------------------------------------------------------------ explanations


def attention_heatmap(matrix: np.ndarray, labels: Sequence[Any], title: str = "Attention",
                      y_labels: Sequence[Any] | None = None, zmax: float | None = None,
                      colorscale: str = "Blues") -> go.Figure:
    """Row i = the position that looks, column j = the position looked at; cells sum to 1 per row."""
    m = np.asarray(matrix, dtype=np.float64)
    x = unique_labels(labels)
    y = unique_labels(y_labels) if y_labels is not None else x
    fig = go.Figure(go.Heatmap(
        z=m, x=x, y=y, colorscale=colorscale, zmin=0.0,
        zmax=zmax if zmax is not None else max(float(np.nanmax(m)), 1e-9),
        hovertemplate="%{y} looks at %{x}: %{z:.3f}<extra></extra>", colorbar=dict(title="weight"),
    ))
    fig.update_yaxes(autorange="reversed", title="query (looks)")
    fig.update_xaxes(title="key (looked at)", tickangle=-40)
    side = 150 + 34 * len(y)
    return _layout(fig, title, height=min(max(side, 320), 900))


def saliency_bar(labels: Sequence[Any], values: Sequence[float], title: str = "Gradient saliency") -> go.Figure:
    """How much each input position moves the recommended item's score (normalised, sums to 1)."""
    v = np.asarray(values, dtype=np.float64)
    fig = go.Figure(go.Bar(x=unique_labels(labels), y=v, marker_color=PALETTE[3],
                           hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.update_yaxes(title="share of saliency", rangemode="tozero")
    fig.update_xaxes(tickangle=-40)
    return _layout(fig, title, height=340)


def embedding_scatter(xy: np.ndarray, hover: Sequence[Any], color: Sequence[Any] | None = None,
                      color_name: str = "", highlight: Sequence[int] | None = None,
                      title: str = "Item embeddings") -> go.Figure:
    """2-D projection of item vectors. `color`: categories (one trace each) or numbers (a scale).
    `highlight`: row indices drawn larger on top (e.g. a chosen item and its neighbours)."""
    xy = np.asarray(xy, dtype=np.float64)
    text = [safe_label(h, 60) for h in hover]
    fig = go.Figure()
    if color is None:
        fig.add_trace(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", text=text, name="items",
                                   marker=dict(size=5, color=PALETTE[0], opacity=0.7),
                                   hovertemplate="%{text}<extra></extra>"))
    else:
        col = np.asarray(color, dtype=object)
        numeric = all(isinstance(c, (int, float, np.integer, np.floating)) for c in col[:100])
        if numeric:
            fig.add_trace(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", text=text, name="items",
                                       marker=dict(size=5, color=col.astype(float), colorscale="Viridis",
                                                   showscale=True, colorbar=dict(title=safe_label(color_name)),
                                                   opacity=0.75),
                                       hovertemplate="%{text}<br>" + safe_label(color_name)
                                       + " %{marker.color:.2f}<extra></extra>"))
        else:
            cats = pd.Series(col).astype(str)
            order = cats.value_counts().index
            for i, cat in enumerate(order):
                idx = np.flatnonzero(cats.to_numpy() == cat)
                fig.add_trace(go.Scattergl(
                    x=xy[idx, 0], y=xy[idx, 1], mode="markers", name=safe_label(cat, 30),
                    text=[text[j] for j in idx], marker=dict(size=5, opacity=0.75, color=_cat_colour(i)),
                    hovertemplate="%{text}<extra>" + safe_label(cat, 30) + "</extra>"))
    if highlight is not None and len(highlight):
        h = np.asarray(highlight, dtype=np.int64)
        fig.add_trace(go.Scatter(x=xy[h, 0], y=xy[h, 1], mode="markers+text", name="selected",
                                 text=[safe_label(hover[h[0]], 30)] + [""] * (len(h) - 1),
                                 hovertext=[safe_label(hover[j], 60) for j in h], textposition="top center",
                                 marker=dict(size=[14] + [10] * (len(h) - 1), color="#E03131",
                                             line=dict(width=1, color="white"), symbol="diamond"),
                                 hovertemplate="%{hovertext}<extra></extra>"))
    fig.update_xaxes(title="component 1", showticklabels=False, zeroline=False)
    fig.update_yaxes(title="component 2", showticklabels=False, zeroline=False)
    return _layout(fig, title, height=580, legend={**_BOTTOM_LEGEND, "itemsizing": "constant"})


def _cat_colour(i: int) -> str:
    extra = ["#2F9E44", "#1971C2", "#C2255C", "#E8590C", "#6741D9", "#0C8599", "#5C940D", "#D6336C",
             "#364FC7", "#A61E4D", "#087F5B", "#862E9C"]
    colours = PALETTE + extra
    return colours[i % len(colours)]


def masking_rows(view, label: Callable[[int], str] = str) -> list[dict[str, Any]]:
    """The three rows `masking_diagram` draws for one `explain.MaskingView`: what the body is fed,
    what it is trained to predict, and what it sees when it predicts. `label` names an item id."""
    mask_id, pad_id = 2, 0  # vocab.MASK, vocab.PAD (viz imports nothing from the model side)
    name = view.scheme.upper()
    text_in = []
    for i, (inp, role) in enumerate(zip(view.inputs, view.roles)):
        t = "[MASK]" if inp == mask_id else label(inp)
        if role == "hidden" and view.order[i] is not None:
            t = f"#{view.order[i]} {t}"
        text_in.append(t)
    pred_roles = ["target" if t != pad_id else "none" for t in view.targets]
    pred_text = [label(t) if t != pad_id else "" for t in view.targets]
    if view.scheme == "rtd":  # the discriminator's question at replaced positions
        for j, role in enumerate(view.roles):
            if role == "replaced":
                pred_roles[j], pred_text[j] = "replaced", "spot: replaced"
    at_pred = ["slot" if j == view.prediction_slot else "visible" for j in range(len(view.prediction_inputs))]
    at_text = ["[MASK]" if i == mask_id else label(i) for i in view.prediction_inputs]
    return [
        {"name": f"{name} · body input", "roles": view.roles, "text": text_in},
        {"name": f"{name} · trained to predict", "roles": pred_roles, "text": pred_text},
        {"name": f"{name} · at prediction time", "roles": at_pred, "text": at_text},
    ]


def masking_diagram(rows: Sequence[Mapping[str, Any]], title: str = "What the body sees and predicts") -> go.Figure:
    """A grid: one row per line of `rows` ({"name", "roles": [role per position], "text": [...]}),
    one column per position, cells coloured by role (see `MASK_ROLES`) and labelled with items."""
    if not rows:
        return _empty(title)
    n = max(len(r["roles"]) for r in rows)
    roles = list(MASK_ROLES)
    z = np.full((len(rows), n), roles.index("none"), dtype=float)
    text = [["" for _ in range(n)] for _ in rows]
    hover = [["" for _ in range(n)] for _ in rows]
    for i, r in enumerate(rows):
        for j, role in enumerate(r["roles"]):
            z[i, j] = roles.index(role)
            text[i][j] = safe_label(r["text"][j], 14)
            hover[i][j] = f"{MASK_ROLES[role][1]}: {safe_label(r['text'][j], 40)}"
    # a discrete colour scale: band k of the [0, 1] range has the colour of role k
    k = len(roles)
    scale = []
    for idx, role in enumerate(roles):
        scale += [[idx / k, MASK_ROLES[role][0]], [(idx + 1) / k, MASK_ROLES[role][0]]]
    y = [safe_label(r["name"], 40) for r in rows]
    fig = go.Figure(go.Heatmap(z=z, x=[f"pos {j + 1}" for j in range(n)], y=y, text=text, texttemplate="%{text}",
                               customdata=hover, hovertemplate="%{customdata}<extra></extra>",
                               colorscale=scale, zmin=-0.5, zmax=k - 0.5, showscale=False, xgap=3, ygap=3))
    used = sorted({role for r in rows for role in r["roles"]}, key=roles.index)
    for role in used:  # legend entries (invisible markers)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=MASK_ROLES[role][1],
                                 marker=dict(size=12, symbol="square", color=MASK_ROLES[role][0],
                                             line=dict(width=1, color="#ADB5BD"))))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(side="top")
    return _layout(fig, title, height=80 + 46 * len(rows), legend=dict(orientation="h", y=-0.08, x=0),
                   plot_bgcolor="white")


def visibility_heatmap(visible: np.ndarray, labels: Sequence[Any], title: str = "Who may look at whom") -> go.Figure:
    """[L, L] booleans: may the output at row i use the item at column j."""
    m = np.asarray(visible, dtype=float)
    fig = attention_heatmap(m, labels, title=title, zmax=1.0, colorscale=[[0, "#F1F3F5"], [1, PALETTE[0]]])
    fig.update_traces(showscale=False, hovertemplate="%{y} may see %{x}: %{z:.0f}<extra></extra>", xgap=1, ygap=1)
    return fig


__all__ = [
    "MASK_ROLES", "PALETTE", "activity_over_time", "attention_heatmap", "breakdown_chart", "embedding_scatter",
    "masking_diagram", "metrics_bars", "metrics_table", "popularity_long_tail", "runs_comparison", "safe_label",
    "saliency_bar", "session_length_histogram", "split_counts_bar", "top_items_bar", "training_curves",
    "unique_labels", "visibility_heatmap",
]


def time_window_lines(table: pd.DataFrame, metrics: Sequence[str] = ("ndcg@10", "recall@20"),
                      title: str = "Metrics over time (each window evaluated after training on the ones before)"
                      ) -> go.Figure:
    """One line per (model or baseline, metric) across evaluation windows (`timewindows` runs)."""
    metrics = [m for m in metrics if m in table.columns]
    if table.empty or not metrics:
        return _empty(title)
    fig = go.Figure()
    for (model, proto), g in table.groupby(["model", "protocol"], sort=False):
        g = g.sort_values("window")
        for m in metrics:
            fig.add_trace(go.Scatter(x=g["start"].astype(str), y=g[m], mode="lines+markers",
                                     name=safe_label(f"{model} · {m}" + (f" ({proto})" if proto != "last" else ""))))
    fig.update_xaxes(title="evaluation window (start)")
    fig.update_yaxes(title="metric")
    return _layout(fig, title)
