"""One experiment = one `ExperimentConfig` (data, model, train, eval), saved with every run.

The app edits it, the CLI reads it from YAML/JSON (with `--set section.key=value` overrides),
and `Run` folders store it as `config.json`. Unknown keys are errors that list the valid ones,
so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError

# --------------------------------------------------------------------------------------- data


@dataclass
class DataConfig:
    """How a raw interaction log becomes sessions and splits. `None` column = infer it."""

    session_col: str | None = None
    item_col: str | None = None
    time_col: str | None = None
    user_col: str | None = None
    categorical: list[str] | None = None  # side features; None = inferred
    continuous: list[str] | None = None
    drop: list[str] = field(default_factory=list)  # columns to ignore
    sep: str | None = None  # CSV delimiter; None = sniffed
    sequence: Literal["session", "user"] = "session"  # user = one sequence per user history
    min_session_len: int = 2
    dedup_consecutive: bool = False  # drop back-to-back repeats of the same item
    split: Literal["time", "random", "file", "leave_last"] = "time"
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 42

    def validate(self) -> None:
        if self.min_session_len < 1:
            raise ConfigError(f"data.min_session_len must be >= 1, got {self.min_session_len}")
        for name in ("val_fraction", "test_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                raise ConfigError(f"data.{name} must be in [0, 1), got {v}")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError("data.val_fraction + data.test_fraction must be < 1 (nothing left to train on)")
        _check_choice("data.sequence", self.sequence, ("session", "user"))
        _check_choice("data.split", self.split, ("time", "random", "file", "leave_last"))


# -------------------------------------------------------------------------------------- model

BODIES = ("xlnet", "gpt2", "bert", "electra", "albert", "roberta", "longformer", "llama", "gru", "lstm")
MASKINGS = ("clm", "mlm", "plm", "rtd")
BIDIRECTIONAL = ("xlnet", "bert", "electra", "albert", "roberta", "longformer")
# Which masking each body can train with (docs/models.md has the table and the reasons).
# CLM: causal bodies natively; bidirectional ones get a causal attention mask (XLNet: attn_type="uni").
# Longformer's sliding-window attention accepts only a padding mask, so it cannot be made causal.
# MLM/RTD need a bidirectional body; PLM needs XLNet's two-stream attention (perm_mask/target_mapping).
VALID_MASKING: dict[str, tuple[str, ...]] = {
    **{b: ("clm", "mlm", "rtd") for b in BIDIRECTIONAL},
    "xlnet": ("clm", "mlm", "plm", "rtd"),
    "longformer": ("mlm", "rtd"),
    "gpt2": ("clm",),
    "llama": ("clm",),
    "gru": ("clm",),
    "lstm": ("clm",),
}
LOSSES = ("ce", "sampled_ce", "bce", "gbce")
SESSION_HEAD_TYPES = ("binary", "regression")
POOLINGS = ("last", "mean", "cls")


@dataclass
class ModelConfig:
    """Input block -> masking -> body -> next-item head. Every knob is honoured by every body
    (n_heads and d_ff have no meaning for the RNN bodies; docs/models.md says so)."""

    body: str = "gpt2"
    masking: str = "clm"
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int | None = None  # None = 4 * d_model
    dropout: float = 0.1
    max_len: int = 20
    # masking
    mlm_probability: float = 0.2
    plm_probability: float = 1 / 6  # XLNet's ratio of predicted tokens
    plm_max_span: int = 5
    rtd_generator_scale: float = 0.25  # generator d_model = scale * d_model (ELECTRA uses 1/4..1/2)
    # ELECTRA weights its discriminator loss 50 because it has no other loss; here the body's job
    # is item prediction and rtd is auxiliary: at 50 it drowns the item loss (docs/models.md)
    rtd_weight: float = 1.0
    rtd_replace_fraction: float = 0.5  # of the masked positions, the share the generator fills in
    # features
    item_dim: int | None = None  # item embedding size; None = d_model (tied head projects if it differs)
    categorical_features: dict[str, int | None] = field(default_factory=dict)  # name -> dim (None = rule)
    continuous_features: list[str] = field(default_factory=list)
    continuous_encoding: Literal["linear", "sohe"] = "linear"
    sohe_bins: int = 16
    feature_layernorm: bool = True
    aggregation: Literal["concat", "sum", "sum_times_item"] = "concat"
    input_dropout: float = 0.1
    # head / loss
    loss: str = "ce"
    n_negatives: int = 256
    negative_sampling: Literal["uniform", "in_batch", "popularity"] = "uniform"
    gbce_t: float = 0.75  # gSASRec calibration parameter
    tie_weights: bool = True
    temperature: float = 1.0
    label_smoothing: float = 0.0
    # extra session-level heads: [{"name", "type": binary|regression, "target", "pooling", "weight"}]
    session_heads: list[dict[str, Any]] = field(default_factory=list)

    def validate(self) -> None:
        _check_choice("model.body", self.body, BODIES)
        _check_choice("model.masking", self.masking, MASKINGS)
        if self.masking not in VALID_MASKING[self.body]:
            fits = ", ".join(VALID_MASKING[self.body])
            why = {
                "plm": "plm needs XLNet's two-stream attention (perm_mask/target_mapping)",
                "mlm": f"{self.body} is a causal (left-to-right) body; mlm needs a bidirectional one",
                "rtd": f"{self.body} is a causal (left-to-right) body; rtd needs a bidirectional one",
                "clm": "longformer's sliding-window attention takes only a padding mask, so it cannot be made causal",
            }[self.masking]
            raise ConfigError(
                f"model.masking={self.masking!r} does not fit model.body={self.body!r} ({why}); "
                f"masks that fit {self.body}: {fits}"
            )
        _check_choice("model.loss", self.loss, LOSSES)
        for name in ("d_model", "n_layers", "n_heads", "max_len", "n_negatives", "sohe_bins", "plm_max_span"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("d_ff", "item_dim"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1 or null, got {getattr(self, name)}")
        if self.body not in ("gru", "lstm") and self.d_model % self.n_heads:
            raise ConfigError(
                f"model.d_model={self.d_model} must be divisible by model.n_heads={self.n_heads}"
            )
        for name in ("dropout", "input_dropout", "label_smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"model.{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("mlm_probability", "plm_probability"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(f"model.{name} must be in (0, 1), got {getattr(self, name)}")
        for name in ("rtd_generator_scale", "rtd_replace_fraction"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ConfigError(f"model.{name} must be in (0, 1], got {getattr(self, name)}")
        if self.label_smoothing > 0 and self.loss != "ce":
            raise ConfigError(
                f"model.label_smoothing applies to the full softmax (loss='ce') only, not loss={self.loss!r}"
            )
        if self.rtd_weight < 0:
            raise ConfigError(f"model.rtd_weight must be >= 0, got {self.rtd_weight}")
        if self.temperature <= 0:
            raise ConfigError(f"model.temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.gbce_t <= 1.0:
            raise ConfigError(f"model.gbce_t must be in [0, 1], got {self.gbce_t}")
        _check_choice("model.aggregation", self.aggregation, ("concat", "sum", "sum_times_item"))
        _check_choice("model.continuous_encoding", self.continuous_encoding, ("linear", "sohe"))
        _check_choice("model.negative_sampling", self.negative_sampling, ("uniform", "in_batch", "popularity"))
        if self.aggregation == "sum_times_item" and not (self.categorical_features or self.continuous_features):
            raise ConfigError(
                "model.aggregation='sum_times_item' multiplies the item embedding by the sum of the side "
                "features, but no side features are configured; use 'concat' or 'sum', or add features"
            )
        for dim_name, dim in self.categorical_features.items():
            if dim is not None and (not isinstance(dim, int) or dim < 1):
                raise ConfigError(f"model.categorical_features[{dim_name!r}] must be a positive int or null, got {dim!r}")
        self._validate_session_heads()

    def _validate_session_heads(self) -> None:
        names: set[str] = set()
        for i, head in enumerate(self.session_heads):
            where = f"model.session_heads[{i}]"
            if not isinstance(head, dict):
                raise ConfigError(f"{where} must be a mapping with keys name, type, target, pooling, weight")
            unknown = set(head) - {"name", "type", "target", "pooling", "weight"}
            if unknown:
                raise ConfigError(f"{where} has unknown key(s) {sorted(unknown)}; valid: name, type, target, pooling, weight")
            for key in ("name", "type", "target"):
                if not isinstance(head.get(key), str) or not head.get(key):
                    raise ConfigError(f"{where}.{key} is required (a non-empty string)")
            if head["name"] in names or head["name"] in ("item", "generator", "rtd"):
                raise ConfigError(f"{where}.name={head['name']!r} is already used; names must be unique")
            names.add(head["name"])
            _check_choice(f"{where}.type", head["type"], SESSION_HEAD_TYPES)
            pooling = head.get("pooling", "last")
            _check_choice(f"{where}.pooling", pooling, POOLINGS)
            if pooling == "cls" and self.masking not in ("mlm", "rtd"):
                raise ConfigError(
                    f"{where}.pooling='cls' prepends a [CLS] slot that must see the whole session, which "
                    f"needs bidirectional training (masking mlm or rtd); with {self.masking} use 'last' or 'mean'"
                )
            weight = head.get("weight", 1.0)
            if not isinstance(weight, (int, float)) or weight < 0:
                raise ConfigError(f"{where}.weight must be a number >= 0, got {weight!r}")

    @property
    def ff_dim(self) -> int:
        return self.d_ff or 4 * self.d_model


# -------------------------------------------------------------------------------------- train


@dataclass
class TrainConfig:
    epochs: int = 5
    batch_size: int = 256
    eval_batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    lr_scheduler: str = "linear"
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto = bf16 on CUDA when supported
    early_stopping_metric: str | None = None  # e.g. "ndcg@10" on the validation split
    early_stopping_patience: int = 3
    eval_every_epoch: bool = True
    num_workers: int = 0
    max_steps: int = -1  # > 0 overrides epochs (quick runs and tests)
    log_every: int = 50  # steps between logged losses (history.csv)
    time_budget_s: float | None = None  # stop cleanly after this much training time (benchmarks, demos)
    report_to: list[str] = field(default_factory=list)  # HF integrations, e.g. ["tensorboard"]
    # a checkpoint (weights + optimizer) after every epoch: what --resume and the best-epoch
    # reload need; off for benchmarks and throwaway runs (the final model is still saved)
    save_checkpoints: bool = True
    # batches of similar-length sessions, each cut to its longest (batching.py): the body runs on
    # ~3x fewer padded positions for typical sessions; off = uniformly random batches
    group_by_length: bool = True

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        _check_choice("train.device", self.device, ("auto", "cpu", "cuda"))
        _check_choice("train.precision", self.precision, ("auto", "fp32", "bf16", "fp16"))


# --------------------------------------------------------------------------------------- eval


@dataclass
class EvalConfig:
    protocols: list[str] = field(default_factory=lambda: ["last"])  # "last", "all_next"
    ks: list[int] = field(default_factory=lambda: [5, 10, 20])
    exclude_seen: bool = False  # remove items already in the session from the ranking
    eval_on_train: bool = False  # also report metrics on (a sample of) the train split
    train_eval_sample: int = 10_000

    def validate(self) -> None:
        for p in self.protocols:
            _check_choice("eval.protocols", p, ("last", "all_next"))
        if not self.ks or any(k < 1 for k in self.ks):
            raise ConfigError(f"eval.ks must be a non-empty list of positive ints, got {self.ks}")


# --------------------------------------------------------------------------------- experiment


@dataclass
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> "ExperimentConfig":
        self.data.validate()
        self.model.validate()
        self.train.validate()
        self.eval.validate()
        return self

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "ExperimentConfig":
        d = dict(d or {})
        sections = {f.name: f.type for f in fields(cls)}
        unknown = set(d) - set(sections)
        if unknown:
            raise ConfigError(
                f"unknown config section(s) {sorted(unknown)}; valid sections: {sorted(sections)}"
            )
        kwargs = {}
        for f in fields(cls):
            sub_cls = _SECTION_CLASSES[f.name]
            kwargs[f.name] = _build_section(f.name, sub_cls, d.get(f.name) or {})
        return cls(**kwargs)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_text(cls, text: str) -> "ExperimentConfig":
        """Parse YAML or JSON (JSON is YAML) with the safe loader: no object construction."""
        try:
            d = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"config is not valid YAML/JSON: {e}") from None
        if d is not None and not isinstance(d, dict):
            raise ConfigError("config must be a mapping with sections data/model/train/eval")
        return cls.from_dict(d)

    @classmethod
    def load(cls, path: str | Path) -> "ExperimentConfig":
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        return cls.from_text(p.read_text(encoding="utf-8-sig"))

    def save(self, path: str | Path) -> None:
        p = Path(path)
        text = self.to_json() if p.suffix == ".json" else self.to_yaml()
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(p)

    def with_overrides(self, overrides: list[str] | dict[str, Any]) -> "ExperimentConfig":
        """Apply dotted overrides such as ``model.d_model=128`` (values parsed as YAML scalars)."""
        d = self.to_dict()
        items = overrides.items() if isinstance(overrides, dict) else (_split_override(o) for o in overrides)
        for key, value in items:
            parts = key.split(".")
            if len(parts) != 2:
                raise ConfigError(f"override key {key!r} must look like section.key, e.g. model.d_model")
            section, name = parts
            if section not in d:
                raise ConfigError(f"unknown config section {section!r} in {key!r}; valid: {sorted(d)}")
            valid = {f.name for f in fields(_SECTION_CLASSES[section])}
            if name not in valid:
                raise ConfigError(f"unknown key {key!r}; valid keys in {section}: {', '.join(sorted(valid))}")
            d[section][name] = value
        return ExperimentConfig.from_dict(d)


_SECTION_CLASSES = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "eval": EvalConfig}


def _split_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _build_section(name: str, sub_cls: type, values: dict[str, Any]):
    if not isinstance(values, dict):
        raise ConfigError(f"config section {name!r} must be a mapping, got {type(values).__name__}")
    valid = {f.name: f for f in fields(sub_cls)}
    unknown = set(values) - set(valid)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(f'{name}.{k}' for k in sorted(unknown))}; "
            f"valid keys in {name}: {', '.join(sorted(valid))}"
        )
    try:
        return sub_cls(**values)
    except TypeError as e:  # pragma: no cover - defensive
        raise ConfigError(f"config section {name!r}: {e}") from None


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(choices)}")


def replace(cfg: Any, **changes: Any) -> Any:
    """`dataclasses.replace`, re-exported so callers need one import."""
    return dataclasses.replace(cfg, **changes)
