"""t4r_core: session-based and sequential recommendation with Transformer models.

    from t4r_core import ExperimentConfig, prepare_data, train, get_preset
    cfg = get_preset("SASRec+").with_overrides(["train.epochs=3"])
    data = prepare_data("sample_data/shop_sessions.csv", cfg.data)
    run = train(cfg, data, "runs/sasrec")
    run.recommend(["SKU-00042", "SKU-00007"], k=10)
"""

__version__ = "0.1.0"

from .config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig, TrainConfig  # noqa: E402
from .data import SessionData, prepare_data  # noqa: E402
from .errors import ConfigError, DataError, RunError, T4RError  # noqa: E402
from .ingest import read_table  # noqa: E402
from .runs import Run, compare_runs, list_runs  # noqa: E402
from .schema import Schema, infer_schema  # noqa: E402


def __getattr__(name: str):
    """Heavy pieces (model, trainer, presets) load on first use, keeping `import t4r_core` light."""
    if name == "train":
        from .trainer import train

        return train
    if name in ("get_preset", "PRESETS"):
        from . import presets

        return getattr(presets, name)
    if name == "SessionModel":
        from .model import SessionModel

        return SessionModel
    raise AttributeError(name)


__all__ = ["DataConfig", "EvalConfig", "ExperimentConfig", "ModelConfig", "TrainConfig", "SessionData",
           "prepare_data", "ConfigError", "DataError", "RunError", "T4RError", "read_table", "Run",
           "compare_runs", "list_runs", "Schema", "infer_schema", "train", "get_preset", "PRESETS", "SessionModel"]
