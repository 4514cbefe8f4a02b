"""Configuration dataclasses for base-model building, DPO and reward runs, and sampling."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

# Mirrors the loss types accepted by trl 1.16 `DPOConfig.loss_type` (see DPOTrainer._compute_loss).
DPO_LOSS_TYPES: tuple[str, ...] = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but True as a learning rate is always a mistake.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _coerce(name: str, default: Any, value: Any) -> Any:
    """Coerce a JSON-ish value to the type of a field's default, or raise ValueError."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if _is_number(value) and float(value).is_integer():
            return int(value)
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(default, float):
        if _is_number(value):
            return float(value)
        raise ValueError(f"{name} must be a number, got {value!r}")
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


class _ConfigMixin:
    """Shared dict round-tripping and validation hooks for the config dataclasses."""

    def validate(self) -> None:
        """Raise ValueError if any field holds an unusable value."""

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain JSON-serialisable dict."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build and validate a config from a dict, rejecting unknown keys."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__} expects a mapping, got {type(data).__name__}")
        known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"Unknown {cls.__name__} option(s): {', '.join(unknown)}")
        defaults = cls()
        kwargs = {key: _coerce(key, getattr(defaults, key), value) for key, value in data.items()}
        config = cls(**kwargs)
        config.validate()
        return config


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _finite(value: float) -> bool:
    return _is_number(value) and math.isfinite(value)


def _check_training_fields(config) -> None:
    """Check the fields every trainer run config shares (learning rate, batches, length...)."""
    _check(
        _finite(config.learning_rate) and 0 < config.learning_rate <= 1,
        f"learning_rate must be in (0, 1], got {config.learning_rate}",
    )
    _check(
        config.per_device_train_batch_size >= 1,
        f"per_device_train_batch_size must be at least 1, got "
        f"{config.per_device_train_batch_size}",
    )
    _check(
        config.gradient_accumulation_steps >= 1,
        f"gradient_accumulation_steps must be at least 1, got "
        f"{config.gradient_accumulation_steps}",
    )
    _check(
        config.max_steps > 0 or (_finite(config.num_train_epochs) and config.num_train_epochs > 0),
        f"num_train_epochs must be > 0 when max_steps <= 0, got {config.num_train_epochs}",
    )
    _check(
        _finite(config.eval_fraction) and 0 <= config.eval_fraction <= 0.5,
        f"eval_fraction must be in [0, 0.5], got {config.eval_fraction}",
    )
    _check(config.max_length >= 16, f"max_length must be at least 16, got {config.max_length}")
    _check(
        config.logging_steps >= 1, f"logging_steps must be at least 1, got {config.logging_steps}"
    )


@dataclass
class BaseModelConfig(_ConfigMixin):
    """Size and training budget of the tiny from-scratch causal LM used as the demo policy."""

    vocab_size: int = field(
        default=2000, metadata={"help": "Target size of the byte-level BPE vocabulary."}
    )
    hidden_size: int = field(default=192, metadata={"help": "Width of the transformer."})
    intermediate_size: int = field(
        default=512, metadata={"help": "Width of the MLP inside each transformer layer."}
    )
    num_layers: int = field(default=3, metadata={"help": "Number of transformer layers."})
    num_heads: int = field(
        default=4, metadata={"help": "Attention heads per layer; must divide hidden_size."}
    )
    max_position: int = field(
        default=512, metadata={"help": "Longest sequence (in tokens) the model can attend over."}
    )
    epochs: float = field(
        default=16.0, metadata={"help": "Passes over the conversations when max_steps <= 0."}
    )
    max_steps: int = field(
        default=-1, metadata={"help": "Optimizer steps to train for; <= 0 means use epochs."}
    )
    learning_rate: float = field(
        default=2e-3, metadata={"help": "Peak AdamW learning rate (warmup, then cosine decay)."}
    )
    batch_size: int = field(default=16, metadata={"help": "Conversations per optimizer step."})
    seed: int = field(default=0, metadata={"help": "Seed for tokenizer-independent randomness."})

    def validate(self) -> None:
        """Raise ValueError if any field holds an unusable value."""
        _check(self.vocab_size >= 300, f"vocab_size must be at least 300, got {self.vocab_size}")
        _check(self.hidden_size >= 8, f"hidden_size must be at least 8, got {self.hidden_size}")
        _check(
            self.intermediate_size >= 8,
            f"intermediate_size must be at least 8, got {self.intermediate_size}",
        )
        _check(self.num_layers >= 1, f"num_layers must be at least 1, got {self.num_layers}")
        _check(
            self.num_heads >= 1 and self.hidden_size % self.num_heads == 0,
            f"num_heads ({self.num_heads}) must be >= 1 and divide hidden_size "
            f"({self.hidden_size})",
        )
        _check(
            self.max_position >= 32, f"max_position must be at least 32, got {self.max_position}"
        )
        _check(
            self.max_steps > 0 or (_finite(self.epochs) and self.epochs > 0),
            f"epochs must be > 0 when max_steps <= 0, got {self.epochs}",
        )
        _check(
            _finite(self.learning_rate) and 0 < self.learning_rate <= 1,
            f"learning_rate must be in (0, 1], got {self.learning_rate}",
        )
        _check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")


@dataclass
class DPORunConfig(_ConfigMixin):
    """Hyper-parameters of one DPO run, translated into a trl.DPOConfig by rlhf.ml.dpo."""

    learning_rate: float = field(
        default=1e-4,
        metadata={"help": "Peak AdamW learning rate; tiny models need more than the usual 1e-6."},
    )
    beta: float = field(
        default=0.1, metadata={"help": "DPO temperature: higher stays closer to the reference."}
    )
    loss_type: str = field(
        default="sigmoid", metadata={"help": f"DPO loss, one of: {', '.join(DPO_LOSS_TYPES)}."}
    )
    per_device_train_batch_size: int = field(
        default=4, metadata={"help": "Preference pairs per forward pass."}
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Forward passes accumulated into one optimizer step."}
    )
    num_train_epochs: float = field(
        default=1.0, metadata={"help": "Passes over the training pairs when max_steps <= 0."}
    )
    max_steps: int = field(
        default=-1, metadata={"help": "Optimizer steps to train for; <= 0 means use epochs."}
    )
    eval_fraction: float = field(
        default=0.1, metadata={"help": "Share of prompts held out for evaluation, in [0, 0.5]."}
    )
    seed: int = field(default=42, metadata={"help": "Seed for data order, dropout and init."})
    max_length: int = field(
        default=256, metadata={"help": "Longest prompt+completion in tokens; longer is truncated."}
    )
    logging_steps: int = field(
        default=1, metadata={"help": "Report training metrics every this many optimizer steps."}
    )

    def validate(self) -> None:
        """Raise ValueError if any field holds an unusable value."""
        _check_training_fields(self)
        _check(_finite(self.beta) and self.beta > 0, f"beta must be > 0, got {self.beta}")
        _check(
            self.loss_type in DPO_LOSS_TYPES,
            f"loss_type must be one of {', '.join(DPO_LOSS_TYPES)}; got {self.loss_type!r}",
        )


@dataclass
class SampleConfig(_ConfigMixin):
    """How candidate completions are sampled from a policy for labeling."""

    num_candidates: int = field(
        default=2, metadata={"help": "Completions sampled per prompt, between 1 and 8."}
    )
    max_new_tokens: int = field(
        default=64, metadata={"help": "Upper bound on generated tokens per completion."}
    )
    temperature: float = field(
        default=0.9, metadata={"help": "Softmax temperature; higher is more varied."}
    )
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling mass, in (0, 1]."})
    seed: int = field(default=0, metadata={"help": "Seed making the samples reproducible."})
    batch_size: int = field(
        default=8, metadata={"help": "Sequences (prompts x candidates) per generate call."}
    )

    def validate(self) -> None:
        """Raise ValueError if any field holds an unusable value."""
        _check(
            1 <= self.num_candidates <= 8,
            f"num_candidates must be between 1 and 8, got {self.num_candidates}",
        )
        _check(
            1 <= self.max_new_tokens <= 2048,
            f"max_new_tokens must be between 1 and 2048, got {self.max_new_tokens}",
        )
        _check(
            _finite(self.temperature) and 0 < self.temperature <= 5,
            f"temperature must be in (0, 5], got {self.temperature}",
        )
        _check(
            _finite(self.top_p) and 0 < self.top_p <= 1,
            f"top_p must be in (0, 1], got {self.top_p}",
        )
        _check(self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}")


@dataclass
class RewardRunConfig(_ConfigMixin):
    """Hyper-parameters of one reward-model run, translated into a trl.RewardConfig."""

    learning_rate: float = field(
        default=1e-4,
        metadata={"help": "Peak AdamW learning rate; tiny models need more than the usual 1e-5."},
    )
    per_device_train_batch_size: int = field(
        default=4, metadata={"help": "Preference pairs per forward pass (each pair is 2 rows)."}
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Forward passes accumulated into one optimizer step."}
    )
    num_train_epochs: float = field(
        default=1.0, metadata={"help": "Passes over the training pairs when max_steps <= 0."}
    )
    max_steps: int = field(
        default=-1, metadata={"help": "Optimizer steps to train for; <= 0 means use epochs."}
    )
    max_length: int = field(
        default=256,
        metadata={"help": "Longest prompt+completion in tokens; longer pairs are left out."},
    )
    center_rewards_coefficient: float = field(
        default=0.0,
        metadata={"help": "Pull scores towards zero mean (0.01 is typical); 0 turns it off."},
    )
    eval_fraction: float = field(
        default=0.1, metadata={"help": "Share of prompts held out for evaluation, in [0, 0.5]."}
    )
    eval_steps: int = field(
        default=0,
        metadata={"help": "Evaluate on the held-out pairs every this many steps; 0: at the end."},
    )
    seed: int = field(default=42, metadata={"help": "Seed for data order and the score head."})
    logging_steps: int = field(
        default=1, metadata={"help": "Report training metrics every this many optimizer steps."}
    )

    def validate(self) -> None:
        """Raise ValueError if any field holds an unusable value."""
        _check_training_fields(self)
        _check(
            _finite(self.center_rewards_coefficient) and 0 <= self.center_rewards_coefficient <= 1,
            f"center_rewards_coefficient must be in [0, 1], got {self.center_rewards_coefficient}",
        )
        _check(self.eval_steps >= 0, f"eval_steps must be 0 or more, got {self.eval_steps}")
