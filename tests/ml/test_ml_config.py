import re

import pytest

from rlhf.ml.config import DPO_LOSS_TYPES, BaseModelConfig, DPORunConfig, SampleConfig


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"learning_rate": 0.0}, "learning_rate must be in (0, 1]"),
        ({"learning_rate": 2.0}, "learning_rate must be in (0, 1]"),
        ({"beta": 0.0}, "beta must be > 0"),
        ({"per_device_train_batch_size": 0}, "per_device_train_batch_size must be at least 1"),
        ({"num_train_epochs": 0.0, "max_steps": -1}, "num_train_epochs must be > 0"),
        ({"eval_fraction": 0.6}, "eval_fraction must be in [0, 0.5]"),
        ({"eval_fraction": -0.1}, "eval_fraction must be in [0, 0.5]"),
        ({"loss_type": "magic"}, "loss_type must be one of sigmoid"),
    ],
)
def test_it_rejects_bad_dpo_settings_with_a_clear_message(changes, message):
    config = DPORunConfig(**changes)
    with pytest.raises(ValueError, match=re.escape(message)):
        config.validate()


def test_it_accepts_zero_epochs_when_max_steps_is_set():
    DPORunConfig(num_train_epochs=0.0, max_steps=5).validate()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_candidates": 0}, "num_candidates must be between 1 and 8"),
        ({"num_candidates": 9}, "num_candidates must be between 1 and 8"),
        ({"temperature": 0.0}, "temperature must be in (0, 5]"),
        ({"top_p": 1.5}, "top_p must be in (0, 1]"),
        ({"max_new_tokens": 0}, "max_new_tokens must be between 1 and 2048"),
        ({"batch_size": 0}, "batch_size must be at least 1"),
    ],
)
def test_it_rejects_bad_sample_settings_with_a_clear_message(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SampleConfig(**changes).validate()


def test_it_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(ValueError, match="must be >= 1 and divide hidden_size"):
        BaseModelConfig(hidden_size=30, num_heads=4).validate()


def test_it_rejects_unknown_keys_naming_them():
    with pytest.raises(ValueError, match="Unknown DPORunConfig option\\(s\\): bogus, lr"):
        DPORunConfig.from_dict({"beta": 0.2, "lr": 1e-3, "bogus": 1})


def test_it_round_trips_through_dicts_and_validates_on_the_way_in():
    config = DPORunConfig(beta=0.3, max_steps=7, loss_type="ipo")
    assert DPORunConfig.from_dict(config.to_dict()) == config
    assert SampleConfig.from_dict({"num_candidates": 3}).num_candidates == 3
    # JSON has no int/float distinction; whole floats are fine for int fields, strings are not.
    assert DPORunConfig.from_dict({"max_steps": 4.0}).max_steps == 4
    with pytest.raises(ValueError, match="beta must be a number"):
        DPORunConfig.from_dict({"beta": "0.1"})
    with pytest.raises(ValueError, match="beta must be > 0"):
        DPORunConfig.from_dict({"beta": -1})


def test_it_offers_exactly_the_loss_types_trl_documents():
    from trl import DPOConfig

    help_text = DPOConfig.__dataclass_fields__["loss_type"].metadata["help"]
    documented = set(re.findall(r"`'([a-z_]+)'`", help_text))
    assert set(DPO_LOSS_TYPES) == documented
