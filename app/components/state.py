"""What the app remembers, on disk, so that page switches and browser refreshes lose nothing.

    runs/                     the runs folder (env T4R_RUNS_DIR overrides it)
      .app_state.json         the current data choice, experiment config and last run (atomic writes)
      data/                   uploaded files, under sanitised names
      <run name>/             one folder per trained run (written by t4r_core)

The state holds no secrets and no model logic: paths, an `ExperimentConfig` dict, a run name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from t4r_core.config import ExperimentConfig
from t4r_core.errors import ConfigError, DataError
from t4r_core.presets import PRESETS, get_preset

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Sample:
    key: str
    label: str
    path: Path
    note: str


SAMPLES: dict[str, Sample] = {
    "shop": Sample("shop", "Shop sample (generated, with item names)", ROOT / "sample_data" / "shop_sessions.csv",
                   "20,000 generated e-commerce sessions over 2,000 items with names, categories and prices "
                   "(sample_data/README.md says how it was made)."),
    "diginetica": Sample("diginetica", "Diginetica sample (real clicks)",
                         ROOT / "sample_data" / "diginetica_sample.csv",
                         "2,986 real product-view sessions from the CIKM Cup 2016 data (DIGINETICA), "
                         "7,139 items identified by number only."),
}
UPLOAD_TYPES = ["csv", "tsv", "txt", "parquet", "pq", "jsonl", "json", "gz"]
DEFAULT_PRESET = "SASRec+"
# Small enough to train on the bundled shop data on a laptop CPU in about 2-3 minutes.
DEFAULT_TRAIN = {"epochs": 3, "batch_size": 256, "lr": 1e-3, "log_every": 5, "max_steps": -1}
STATE_FILE = ".app_state.json"
_LOCK = threading.Lock()


def runs_dir() -> Path:
    """The runs folder: $T4R_RUNS_DIR, else runs/ at the repository root."""
    return Path(os.environ.get("T4R_RUNS_DIR") or ROOT / "runs").expanduser().resolve()


def data_dir() -> Path:
    return runs_dir() / "data"


def default_config() -> ExperimentConfig:
    return get_preset(DEFAULT_PRESET).with_overrides({f"train.{k}": v for k, v in DEFAULT_TRAIN.items()})


def _new_data_section(cfg: ExperimentConfig, keep_split: bool = True) -> dict[str, Any]:
    """A data section with every column role back to 'infer' (a new file has other columns)."""
    d = cfg.to_dict()["data"]
    fresh = ExperimentConfig().to_dict()["data"]
    for key in ("session_col", "item_col", "time_col", "user_col", "categorical", "continuous", "drop", "sep"):
        d[key] = fresh[key]
    if not keep_split:
        d = fresh
    return d


@dataclass
class AppState:
    data_path: str = str(SAMPLES["shop"].path)
    data_label: str = SAMPLES["shop"].label
    test_path: str | None = None
    config: dict[str, Any] = field(default_factory=lambda: default_config().to_dict())
    preset: str | None = DEFAULT_PRESET  # None = custom
    last_run: str | None = None

    # -- the experiment ---------------------------------------------------------------------
    def experiment(self) -> ExperimentConfig:
        """The current config; a broken saved one falls back to the default (never crashes a page)."""
        try:
            return ExperimentConfig.from_dict(self.config).validate()
        except ConfigError:
            return default_config()

    def set_experiment(self, cfg: ExperimentConfig) -> None:
        self.config = cfg.to_dict()

    def choose_data(self, path: str | Path, label: str, test_path: str | Path | None = None) -> None:
        """Switch the data file: column roles and side features go back to 'infer'."""
        if str(path) == self.data_path and (str(test_path) if test_path else None) == self.test_path:
            return
        cfg = self.experiment()
        d = cfg.to_dict()
        d["data"] = _new_data_section(cfg)
        d["model"]["categorical_features"] = {}
        d["model"]["continuous_features"] = []
        if d["model"].get("aggregation") == "sum_times_item":
            d["model"]["aggregation"] = "concat"
        self.config = d
        self.data_path, self.data_label = str(path), label
        self.test_path = str(test_path) if test_path else None

    @property
    def sample_key(self) -> str | None:
        for s in SAMPLES.values():
            if Path(self.data_path) == s.path:
                return s.key
        return None

    # -- disk ---------------------------------------------------------------------------------
    @classmethod
    def load(cls) -> AppState:
        path = runs_dir() / STATE_FILE
        st = cls()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return st
        if not isinstance(raw, dict):
            return st
        for key in ("data_path", "data_label", "test_path", "preset", "last_run"):
            val = raw.get(key)
            if val is None or isinstance(val, str):
                setattr(st, key, val)
        if isinstance(raw.get("config"), dict):
            st.config = raw["config"]
            st.config = st.experiment().to_dict()  # drop anything invalid
        if not st.data_path or not Path(st.data_path).is_file():  # the file was removed: back to the sample
            st.data_path, st.data_label, st.test_path = str(SAMPLES["shop"].path), SAMPLES["shop"].label, None
        if st.test_path and not Path(st.test_path).is_file():
            st.test_path = None
        if st.preset is not None and st.preset not in PRESETS:
            st.preset = None
        if st.last_run and not (runs_dir() / st.last_run / "config.json").is_file():
            st.last_run = None
        return st

    def save(self) -> None:
        """Atomic: write a temporary file next to the state file and rename it into place."""
        folder = runs_dir()
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / STATE_FILE
        tmp = folder / f".app_state.{os.getpid()}.{threading.get_ident()}.tmp"
        with _LOCK:
            tmp.write_text(json.dumps(asdict(self), indent=2, default=str), encoding="utf-8")
            os.replace(tmp, target)


def set_last_run(name: str) -> None:
    """Record the newest run (called from the training thread once a run is saved)."""
    st = AppState.load()
    st.last_run = name
    st.save()


# ------------------------------------------------------------------------------ uploads

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str) -> str:
    """The last path component of an uploaded file name, reduced to [A-Za-z0-9._-], no leading
    dots, at most 80 characters, with a known data extension. Raises DataError otherwise."""
    base = str(name).replace("\\", "/").split("/")[-1]
    base = _SAFE.sub("_", base).strip("._-")[:80]
    lower = base.lower()
    if not base or not any(lower.endswith("." + ext) for ext in UPLOAD_TYPES):
        raise DataError(f"uploaded file {name!r}: give a .csv, .tsv, .parquet or .jsonl file (optionally .gz)")
    return base


def _split_ext(name: str) -> tuple[str, str]:
    lower = name.lower()
    ext = ".gz" if lower.endswith(".gz") else ""
    stem = name[: len(name) - len(ext)]
    dot = stem.rfind(".")
    if dot > 0:
        return stem[:dot], stem[dot:] + ext
    return stem, ext


def upload_path(name: str, raw: bytes) -> Path:
    """Where an upload is kept: runs/data/<stem>__<8 hex of its content><ext>. Same content,
    same file; different content under the same name never overwrites a file an old run used."""
    stem, ext = _split_ext(safe_filename(name))
    digest = hashlib.sha256(raw).hexdigest()[:8]
    folder = data_dir()
    path = (folder / f"{stem}__{digest}{ext}").resolve()
    if path.parent != folder.resolve():  # cannot happen after sanitising; checked anyway
        raise DataError(f"uploaded file {name!r}: refusing a name that leaves the data folder")
    return path


def catalogue_path_for(data_path: Path, upload_name: str) -> Path:
    """The items table saved for an uploaded data file: `<data stem>_items<ext of the upload>`."""
    _, ext = _split_ext(safe_filename(upload_name))
    stem, _ = _split_ext(data_path.name)
    path = (data_path.parent / f"{stem}_items{ext}").resolve()
    if path.parent != data_path.parent.resolve():
        raise DataError("refusing a catalogue name that leaves the data folder")
    return path


def write_atomic(path: Path, raw: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(raw)
    os.replace(tmp, path)
