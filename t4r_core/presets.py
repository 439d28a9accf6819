"""Named presets that reproduce known models by config alone.

A preset is a set of config overrides per section ("model", "train"); everything it does not
set keeps the `ExperimentConfig` default (or the `base` config's value). docs/models.md says what
each one reproduces and where it departs from the original.

    cfg = get_preset("sasrec+")                       # case-insensitive
    cfg = get_preset("BERT4Rec", base=my_cfg)         # keep my data/eval settings
"""

from __future__ import annotations

import copy

from .config import ExperimentConfig
from .errors import ConfigError

# max_len is left to the base config: it is a property of the data more than of the model
_TRANSFORMER = {"d_model": 64, "n_layers": 2, "n_heads": 2, "loss": "ce", "tie_weights": True}

PRESETS: dict[str, dict] = {
    "SASRec+": {
        "model": {**_TRANSFORMER, "body": "gpt2", "masking": "clm", "dropout": 0.2, "input_dropout": 0.2},
        "train": {"lr": 1e-3},
    },
    "BERT4Rec": {
        "model": {**_TRANSFORMER, "body": "bert", "masking": "mlm", "mlm_probability": 0.2, "dropout": 0.1},
        "train": {"lr": 1e-3},
    },
    "GRU4Rec": {
        "model": {
            "body": "gru", "masking": "clm", "d_model": 64, "n_layers": 1, "loss": "ce",
            "dropout": 0.1, "input_dropout": 0.0, "tie_weights": True,
        },
        "train": {"lr": 2e-3},
    },
    "XLNet-MLM": {
        "model": {**_TRANSFORMER, "body": "xlnet", "masking": "mlm", "mlm_probability": 0.3, "dropout": 0.1},
        "train": {"lr": 1e-3},
    },
    "XLNet-PLM": {
        "model": {
            **_TRANSFORMER, "body": "xlnet", "masking": "plm", "plm_probability": 1 / 6, "plm_max_span": 5,
            "dropout": 0.1,
        },
        "train": {"lr": 1e-3},
    },
    "ELECTRA-RTD": {
        "model": {
            **_TRANSFORMER, "body": "electra", "masking": "rtd", "mlm_probability": 0.3,
            "rtd_generator_scale": 0.25, "rtd_weight": 1.0, "rtd_replace_fraction": 0.5, "dropout": 0.1,
        },
        "train": {"lr": 1e-3},
    },
    "Llama-CLM": {
        "model": {**_TRANSFORMER, "body": "llama", "masking": "clm", "dropout": 0.1},
        "train": {"lr": 1e-3},
    },
}

PRESET_DESCRIPTIONS: dict[str, str] = {
    "SASRec+": "SASRec with full softmax cross-entropy (Klenitskiy & Vasilev, RecSys 2023): a causal "
    "GPT-2 body reading left to right; the strong, simple default.",
    "BERT4Rec": "BERT4Rec (Sun et al., 2019): a bidirectional BERT body trained to fill in randomly "
    "masked items; predicts through a [MASK] after the last item.",
    "GRU4Rec": "GRU4Rec (Hidasi et al., 2016) with cross-entropy: a single recurrent GRU layer, "
    "no attention; the classic session baseline.",
    "XLNet-MLM": "XLNet trained with masked-item modelling: the Transformers4Rec paper's best "
    "configuration (Moreira et al., RecSys 2021).",
    "XLNet-PLM": "XLNet with permutation language modelling (Yang et al., 2019): targets predicted "
    "in a random order by XLNet's two-stream attention.",
    "ELECTRA-RTD": "ELECTRA-style replaced-item detection (Clark et al., 2020): a small generator "
    "fills in masked items and the body learns to spot them while predicting the rest.",
    "Llama-CLM": "A modern decoder (RoPE, RMSNorm, SwiGLU) trained causally with full cross-entropy: "
    "SASRec+ with today's LLM building blocks.",
}


def get_preset(name: str, base: ExperimentConfig | None = None) -> ExperimentConfig:
    """The preset's `ExperimentConfig` (validated). `base` supplies every field the preset leaves."""
    key = preset_name(name)
    d = (base or ExperimentConfig()).to_dict()
    for section, overrides in PRESETS[key].items():
        d[section].update(copy.deepcopy(overrides))
    return ExperimentConfig.from_dict(d).validate()


def preset_name(name: str) -> str:
    """The canonical spelling of a preset name (case-insensitive), or a ConfigError listing them."""
    for key in PRESETS:
        if key.lower() == str(name).strip().lower():
            return key
    raise ConfigError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
