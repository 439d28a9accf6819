"""presets.py: names, descriptions, lookup, and that each preset builds the model it names."""

from __future__ import annotations

import pytest

from t4r_core.config import DataConfig, ExperimentConfig
from t4r_core.errors import ConfigError
from t4r_core.model import SessionModel
from t4r_core.presets import PRESET_DESCRIPTIONS, PRESETS, get_preset

NAMES = ["SASRec+", "BERT4Rec", "GRU4Rec", "XLNet-MLM", "XLNet-PLM", "ELECTRA-RTD", "Llama-CLM"]
EXPECTED = {  # preset -> (body, masking, loss)
    "SASRec+": ("gpt2", "clm", "ce"),
    "BERT4Rec": ("bert", "mlm", "ce"),
    "GRU4Rec": ("gru", "clm", "ce"),
    "XLNet-MLM": ("xlnet", "mlm", "ce"),
    "XLNet-PLM": ("xlnet", "plm", "ce"),
    "ELECTRA-RTD": ("electra", "rtd", "ce"),
    "Llama-CLM": ("llama", "clm", "ce"),
}


def test_names_and_descriptions():
    assert list(PRESETS) == NAMES
    assert set(PRESET_DESCRIPTIONS) == set(NAMES)
    for name, text in PRESET_DESCRIPTIONS.items():
        assert text and "\n" not in text, name


@pytest.mark.parametrize("name", NAMES)
def test_each_preset_builds_the_model_it_names(name):
    cfg = get_preset(name)
    m = cfg.model
    assert (m.body, m.masking, m.loss) == EXPECTED[name]
    model = SessionModel(m, n_items=100)
    assert model.num_parameters() > 0
    assert ExperimentConfig.from_text(cfg.to_yaml()) == cfg


def test_lookup_is_case_insensitive_and_unknown_names_list_the_valid_ones():
    assert get_preset("sasrec+").model.body == "gpt2"
    assert get_preset("  xlnet-plm ").model.masking == "plm"
    with pytest.raises(ConfigError) as e:
        get_preset("SASRec++")
    for name in NAMES:
        assert name in str(e.value)


def test_presets_keep_the_rest_of_a_base_config():
    base = ExperimentConfig(data=DataConfig(session_col="sid", min_session_len=3))
    base.model.max_len = 50
    base.train.epochs = 9
    cfg = get_preset("BERT4Rec", base=base)
    assert cfg.data.session_col == "sid" and cfg.train.epochs == 9
    assert cfg.model.body == "bert" and cfg.model.max_len == 50  # max_len stays the base's
    assert base.model.body == "gpt2", "the base config is not modified"


def test_presets_set_train_fields_through_sections():
    assert get_preset("GRU4Rec").train.lr == PRESETS["GRU4Rec"]["train"]["lr"]
