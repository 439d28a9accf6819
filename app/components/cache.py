"""Cached loads, so switching pages is instant. Every key carries the file's stamp (path, mtime,
size): a changed file is read again, an unchanged one never. Data frames and small results go
through `st.cache_data`; objects holding models or big arrays through `st.cache_resource`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from t4r_core import explain
from t4r_core.config import DataConfig, ExperimentConfig
from t4r_core.data import SessionData, prepare_data
from t4r_core.errors import DataError, RunError
from t4r_core.ingest import read_table
from t4r_core.profile import profile_details
from t4r_core.runs import RUN_FILES, Run

Stamp = tuple[str, int, int]


def stamp(path: str | Path | None) -> Stamp | None:
    if not path:
        return None
    p = Path(path)
    try:
        s = p.stat()
    except OSError:
        return None
    return (str(p), s.st_mtime_ns, s.st_size)


def data_config(d: dict[str, Any]) -> DataConfig:
    return ExperimentConfig.from_dict({"data": d}).data


def _cfg_key(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True, default=str)


# ------------------------------------------------------------------------------ data files


@st.cache_data(max_entries=6, show_spinner="Reading the file…")
def _read_frame(path: str, fstamp: Stamp | None, sep: str | None) -> pd.DataFrame:
    return read_table(path, name=Path(path).name, sep=sep)


def read_frame(path: str, sep: str | None = None) -> pd.DataFrame:
    if stamp(path) is None:
        raise DataError(f"{Path(path).name}: file not found; choose the data again on the Data page")
    return _read_frame(path, stamp(path), sep)


@st.cache_data(max_entries=6, show_spinner="Profiling the sessions…")
def _profile(path: str, fstamp: Stamp | None, cfg_json: str) -> dict[str, Any]:
    cfg = data_config(json.loads(cfg_json))
    df = _read_frame(path, fstamp, cfg.sep)
    return profile_details(df, cfg, label=Path(path).name)


def profile(path: str, data_cfg: dict[str, Any]) -> dict[str, Any]:
    return _profile(path, stamp(path), _cfg_key(data_cfg))


@st.cache_resource(max_entries=4, show_spinner="Building sessions and splits…")
def _prepared(path: str, fstamp: Stamp | None, test_path: str | None, tstamp: Stamp | None,
              cfg_json: str) -> SessionData:
    cfg = data_config(json.loads(cfg_json))
    df = _read_frame(path, fstamp, cfg.sep)
    test = _read_frame(test_path, tstamp, cfg.sep) if test_path else None
    return prepare_data(df, cfg, test=test, name=Path(path).name)


def prepared(path: str, data_cfg: dict[str, Any], test_path: str | None = None) -> SessionData:
    """The split, encoded data of the current choice (shared by every session of the app)."""
    if stamp(path) is None:
        raise DataError(f"{Path(path).name}: file not found; choose the data again on the Data page")
    return _prepared(path, stamp(path), test_path, stamp(test_path), _cfg_key(data_cfg))


# ------------------------------------------------------------------------------ catalogue


@st.cache_resource(max_entries=8)
def _catalogue(path: str, fstamp: Stamp | None) -> explain.ItemCatalogue:
    return explain.ItemCatalogue.load(path)


def catalogue_for(data_path: str | None) -> explain.ItemCatalogue | None:
    """The optional items table next to a data file (see `explain.find_catalogue`)."""
    p = explain.find_catalogue(data_path) if data_path else None
    if p is None:
        return None
    try:
        return _catalogue(str(p), stamp(p))
    except DataError:
        return None  # an unreadable catalogue only costs the names


# ------------------------------------------------------------------------------ runs


def run_stamp(path: Path) -> tuple:
    return tuple(stamp(path / f) for f in RUN_FILES)


@st.cache_resource(max_entries=16, show_spinner="Loading the run…")
def _run(path: str, fstamp: tuple) -> Run:
    return Run.load(path)


def load_run(path: str | Path) -> Run:
    p = Path(path)
    return _run(str(p), run_stamp(p))


def run_names(folder: Path) -> list[str]:
    """Complete run folders, newest first (partial and hidden folders are skipped)."""
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        if p.is_dir() and not p.name.startswith(".") and all((p / f).is_file() for f in RUN_FILES):
            found.append((p.stat().st_mtime, p.name))
    return [name for _, name in sorted(found, reverse=True)]


@st.cache_resource(max_entries=6, show_spinner="Rebuilding the run's data splits…")
def _run_data(path: str, fstamp: tuple) -> SessionData | None:
    run = Run.load(path)
    src = run.info.get("source") or {}
    train, test = src.get("train"), src.get("test")
    if not train or not Path(train).is_file():
        return None
    if test and not Path(test).is_file():
        return None
    df = read_table(train, name=Path(train).name, sep=run.config.data.sep)
    tdf = read_table(test, name=Path(test).name, sep=run.config.data.sep) if test else None
    return prepare_data(df, run.config.data, test=tdf, schema=run.schema, encoders=run.encoders, name=Path(train).name)


def run_data(run: Run) -> SessionData | None:
    """The run's own splits (same file, config, schema and encoders), or None if its file is gone."""
    return _run_data(str(run.path), run_stamp(run.path))


def run_source(run: Run) -> str | None:
    return (run.info.get("source") or {}).get("train")


@st.cache_data(max_entries=16, show_spinner="Evaluating the baselines (Pop, V-SKNN)…")
def baseline_metrics(run_path: str, fstamp: tuple, exclude_seen: bool, split: str = "test") -> dict[str, dict]:
    """{"Pop": metrics, "V-SKNN": metrics} on the run's split, with the run's protocol and max_len."""
    from t4r_core.evaluation import evaluate_baselines

    run = _run(run_path, fstamp)
    data = _run_data(run_path, fstamp)
    if data is None:
        return {}
    return evaluate_baselines(data, ("pop", "vsknn"), split, run.config.eval.protocols[0], run.config.model.max_len,
                              run.config.eval.ks, exclude_seen)


@st.cache_data(max_entries=8, show_spinner="Scoring every test example for the breakdown…")
def per_example(run_path: str, fstamp: tuple, exclude_seen: bool, split: str = "test") -> dict[str, pd.DataFrame]:
    """Per-example metrics of the run and the baselines on the run's split."""
    from t4r_core.baselines import make_baseline
    from t4r_core.evaluation import baseline_scorer, model_scorer

    run = _run(run_path, fstamp)
    data = _run_data(run_path, fstamp)
    if data is None or len(data.splits.get(split, [])) == 0:
        return {}
    ex = data.eval_examples(split, run.config.eval.protocols[0], run.config.model.max_len)
    scorers = {run.name: model_scorer(run.model)}
    for b in (make_baseline(key).fit(data.train, data.n_items) for key in ("pop", "vsknn")):
        scorers[b.label] = baseline_scorer(b)
    return {name: explain.per_example_metrics(fn, ex, data.n_items, (10, 20), exclude_seen)
            for name, fn in scorers.items()}


@st.cache_data(max_entries=32)
def parameter_count(model_json: str, n_items: int, cardinalities_json: str) -> int:
    """Trainable parameters of the configured model for this data (built on the CPU, not trained)."""
    from t4r_core.config import ModelConfig
    from t4r_core.model import SessionModel

    cfg = ModelConfig(**json.loads(model_json))
    return SessionModel(cfg, n_items, json.loads(cardinalities_json)).num_parameters()


@st.cache_data(max_entries=4, show_spinner="Projecting the item embeddings…")
def projection(run_path: str, fstamp: tuple, method: str, rows: tuple[int, ...]) -> np.ndarray:
    run = _run(run_path, fstamp)
    emb = explain.item_embedding_matrix(run.model)
    return explain.project_embeddings(emb[list(rows)], method)


@st.cache_resource(show_spinner=False)
def device_text() -> str:
    from t4r_core.trainer import device_description

    return device_description()


def require_run_files(run_path: Path) -> None:
    if not all((run_path / f).is_file() for f in RUN_FILES):
        raise RunError(f"{run_path.name} is not a complete run; pick another one")


@st.cache_data(max_entries=16, show_spinner="Evaluating the run…")
def run_test_metrics(run_path: str, fstamp: tuple, exclude_seen: bool, split: str = "test") -> dict[str, float]:
    """The run's metrics on a split: as saved when the setting matches training, else recomputed."""
    run = _run(run_path, fstamp)
    saved = run.metrics.get(split) or {}
    proto = run.config.eval.protocols[0]
    if bool(run.metrics.get("exclude_seen", run.config.eval.exclude_seen)) == exclude_seen and proto in saved:
        return saved[proto]
    data = _run_data(run_path, fstamp)
    if data is None:
        return {}
    return run.evaluate(data, protocols=(proto,), ks=tuple(run.config.eval.ks), split=split,
                        exclude_seen=exclude_seen).get(proto, {})
