"""Configuration dataclasses for the base model, each training method and sampling; presets."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

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
class TrainingConfig(_ConfigMixin):
    """Fields every training run shares: optimisation, held-out split, LoRA and data filters."""

    learning_rate: float = field(
        default=1e-4,
        metadata={"help": "Peak AdamW learning rate; tiny models need more than real ones."},
    )
    per_device_train_batch_size: int = field(
        default=4, metadata={"help": "Training rows per forward pass."}
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Forward passes accumulated into one optimizer step."}
    )
    num_train_epochs: float = field(
        default=1.0, metadata={"help": "Passes over the training rows when max_steps <= 0."}
    )
    max_steps: int = field(
        default=-1, metadata={"help": "Optimizer steps to train for; <= 0 means use epochs."}
    )
    max_length: int = field(
        default=256, metadata={"help": "Longest prompt+completion in tokens."}
    )
    eval_fraction: float = field(
        default=0.1, metadata={"help": "Share of prompts held out for evaluation, in [0, 0.5]."}
    )
    eval_steps: int = field(
        default=0,
        metadata={"help": "Evaluate on the held-out rows every this many steps; 0: at the end."},
    )
    early_stopping_patience: int = field(
        default=0,
        metadata={"help": "Stop after this many evaluations without improvement; 0: never."},
    )
    seed: int = field(default=42, metadata={"help": "Seed for data order, dropout and init."})
    checkpoint_steps: int = field(
        default=100,
        metadata={"help": "Save a resumable checkpoint (weights and optimizer) every this many "
                  "steps; retrying a failed run resumes from the last one. 0: never."},
    )
    logging_steps: int = field(
        default=1, metadata={"help": "Report training metrics every this many optimizer steps."}
    )
    use_lora: bool = field(
        default=False, metadata={"help": "Train LoRA adapters (peft) instead of every weight."}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling (alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    # Data filters, applied when the run's snapshot is built (recorded in snapshot.filters).
    min_agreement: float = field(
        default=0.0,
        metadata={"help": "Leave out items whose annotators agree less than this (0 to 1)."},
    )
    exclude_flagged: bool = field(
        default=False, metadata={"help": "Leave out judgements that carry any flag."}
    )
    only_reviewed: bool = field(
        default=False,
        metadata={"help": "Use only reviewers' adjudicated answers and gold answers."},
    )
    min_annotator_weight: float = field(
        default=0.0,
        metadata={"help": "Leave out annotators whose reliability weight is below this (0 to 1)."},
    )

    # Which metric early stopping watches, and whether bigger is better.
    best_metric: ClassVar[str] = "eval_loss"
    greater_is_better: ClassVar[bool] = False
    supports_early_stopping: ClassVar[bool] = True

    def validate(self) -> None:
        """Raise ValueError if any field holds an unusable value."""
        _check(
            _finite(self.learning_rate) and 0 < self.learning_rate <= 1,
            f"learning_rate must be in (0, 1], got {self.learning_rate}",
        )
        _check(
            self.per_device_train_batch_size >= 1,
            f"per_device_train_batch_size must be at least 1, got "
            f"{self.per_device_train_batch_size}",
        )
        _check(
            self.gradient_accumulation_steps >= 1,
            f"gradient_accumulation_steps must be at least 1, got "
            f"{self.gradient_accumulation_steps}",
        )
        _check(
            self.max_steps > 0 or (_finite(self.num_train_epochs) and self.num_train_epochs > 0),
            f"num_train_epochs must be > 0 when max_steps <= 0, got {self.num_train_epochs}",
        )
        _check(
            _finite(self.eval_fraction) and 0 <= self.eval_fraction <= 0.5,
            f"eval_fraction must be in [0, 0.5], got {self.eval_fraction}",
        )
        _check(self.max_length >= 16, f"max_length must be at least 16, got {self.max_length}")
        _check(
            self.logging_steps >= 1,
            f"logging_steps must be at least 1, got {self.logging_steps}",
        )
        _check(self.eval_steps >= 0, f"eval_steps must be 0 or more, got {self.eval_steps}")
        _check(
            self.checkpoint_steps >= 0,
            f"checkpoint_steps must be 0 or more, got {self.checkpoint_steps}",
        )
        _check(
            self.early_stopping_patience >= 0,
            f"early_stopping_patience must be 0 or more, got {self.early_stopping_patience}",
        )
        if self.early_stopping_patience:
            _check(
                self.supports_early_stopping,
                f"early stopping is not available for {type(self).__name__}: it has no "
                "held-out metric to watch",
            )
            _check(
                self.eval_steps > 0 and self.eval_fraction > 0,
                "early stopping needs held-out data and periodic evaluation: set eval_fraction "
                "> 0 and eval_steps > 0",
            )
        _check(self.lora_r >= 1, f"lora_r must be at least 1, got {self.lora_r}")
        _check(self.lora_alpha >= 1, f"lora_alpha must be at least 1, got {self.lora_alpha}")
        _check(
            _finite(self.lora_dropout) and 0 <= self.lora_dropout < 1,
            f"lora_dropout must be in [0, 1), got {self.lora_dropout}",
        )
        for name in ("min_agreement", "min_annotator_weight"):
            value = getattr(self, name)
            _check(_finite(value) and 0 <= value <= 1, f"{name} must be in [0, 1], got {value}")


@dataclass
class DPORunConfig(TrainingConfig):
    """Hyper-parameters of one DPO run, translated into a trl.DPOConfig by rlhf.ml.dpo."""

    beta: float = field(
        default=0.1, metadata={"help": "DPO temperature: higher stays closer to the reference."}
    )
    loss_type: str = field(
        default="sigmoid", metadata={"help": f"DPO loss, one of: {', '.join(DPO_LOSS_TYPES)}."}
    )
    precompute_ref_log_probs: bool = field(
        default=False,
        metadata={"help": "Score the data with the reference once up front (saves memory)."},
    )

    def validate(self) -> None:
        """Raise ValueError if any field holds an unusable value."""
        super().validate()
        _check(_finite(self.beta) and self.beta > 0, f"beta must be > 0, got {self.beta}")
        _check(
            self.loss_type in DPO_LOSS_TYPES,
            f"loss_type must be one of {', '.join(DPO_LOSS_TYPES)}; got {self.loss_type!r}",
        )


@dataclass
class RewardRunConfig(TrainingConfig):
    """Hyper-parameters of one reward-model run, translated into a trl.RewardConfig."""

    center_rewards_coefficient: float = field(
        default=0.0,
        metadata={"help": "Pull scores towards zero mean (0.01 is typical); 0 turns it off."},
    )

    best_metric: ClassVar[str] = "eval_accuracy"
    greater_is_better: ClassVar[bool] = True

    def validate(self) -> None:
        """Raise ValueError if any field holds an unusable value."""
        super().validate()
        _check(
            _finite(self.center_rewards_coefficient) and 0 <= self.center_rewards_coefficient <= 1,
            f"center_rewards_coefficient must be in [0, 1], got {self.center_rewards_coefficient}",
        )


@dataclass
class SFTRunConfig(TrainingConfig):
    """Supervised fine-tuning on corrections and gold answers (trl.SFTTrainer)."""

    completion_only_loss: bool = field(
        default=True, metadata={"help": "Learn only the answer's tokens, not the prompt's."}
    )


@dataclass
class KTORunConfig(TrainingConfig):
    """KTO on unpaired good/bad answers (trl.KTOTrainer)."""

    beta: float = field(
        default=0.1, metadata={"help": "KTO temperature: higher stays closer to the reference."}
    )
    desirable_weight: float = field(
        default=1.0, metadata={"help": "Loss weight of good answers (raise when they are rare)."}
    )
    undesirable_weight: float = field(
        default=1.0, metadata={"help": "Loss weight of bad answers (raise when they are rare)."}
    )
    rating_threshold: float = field(
        default=0.5,
        metadata={"help": "A rated answer is good when its mean rating, scaled to 0-1, "
                  "reaches this; below it, bad."},
    )

    def validate(self) -> None:
        """Raise ValueError if any field holds an unusable value."""
        super().validate()
        _check(_finite(self.beta) and self.beta > 0, f"beta must be > 0, got {self.beta}")
        # trl.KTOTrainer estimates its KL term from the other rows of a batch.
        _check(
            self.per_device_train_batch_size >= 2,
            f"KTO needs a batch size of at least 2, got {self.per_device_train_batch_size}",
        )
        for name in ("desirable_weight", "undesirable_weight"):
            value = getattr(self, name)
            _check(_finite(value) and value > 0, f"{name} must be > 0, got {value}")
        _check(
            _finite(self.rating_threshold) and 0 <= self.rating_threshold <= 1,
            f"rating_threshold must be in [0, 1], got {self.rating_threshold}",
        )


@dataclass
class OnlineRunConfig(TrainingConfig):
    """Online RL scored by a trained reward model (trl.GRPOTrainer or trl.RLOOTrainer)."""

    max_length: int = field(
        default=256,
        metadata={"help": "Longest prompt in tokens; longer prompts are left out."},
    )
    reward_model: int = field(
        default=0,
        metadata={"help": "Id of the reward-model version that scores completions; 0: the "
                  "project's current reward model."},
    )
    num_generations: int = field(
        default=4, metadata={"help": "Completions sampled per prompt and compared to each other."}
    )
    max_completion_length: int = field(
        default=48, metadata={"help": "Longest sampled completion in tokens."}
    )
    temperature: float = field(
        default=1.0, metadata={"help": "Sampling temperature while training."}
    )
    beta: float = field(
        default=0.04,
        metadata={"help": "Weight of the KL penalty to the reference policy; 0 turns it off."},
    )

    supports_early_stopping: ClassVar[bool] = False

    def validate(self) -> None:
        """Raise ValueError if any field holds an unusable value."""
        super().validate()
        _check(
            self.reward_model >= 0, f"reward_model must be a version id, got {self.reward_model}"
        )
        _check(
            2 <= self.num_generations <= 64,
            f"num_generations must be between 2 and 64, got {self.num_generations}",
        )
        _check(
            1 <= self.max_completion_length <= 4096,
            f"max_completion_length must be between 1 and 4096, got "
            f"{self.max_completion_length}",
        )
        _check(
            _finite(self.temperature) and 0 < self.temperature <= 5,
            f"temperature must be in (0, 5], got {self.temperature}",
        )
        _check(_finite(self.beta) and self.beta >= 0, f"beta must be 0 or more, got {self.beta}")
        # TRL needs the prompts of one step to fill whole groups of num_generations.
        effective = self.per_device_train_batch_size * self.gradient_accumulation_steps
        _check(
            effective % self.num_generations == 0,
            f"batch size x gradient accumulation ({effective}) must be a multiple of "
            f"num_generations ({self.num_generations})",
        )


@dataclass
class GRPORunConfig(OnlineRunConfig):
    """GRPO: group-relative advantages over num_generations samples per prompt."""


@dataclass
class RLOORunConfig(OnlineRunConfig):
    """RLOO: REINFORCE with a leave-one-out baseline over num_generations samples."""


# Training method -> its config; the method names are TrainingRun.Method's values.
RUN_CONFIGS: dict[str, type[TrainingConfig]] = {
    "reward": RewardRunConfig,
    "dpo": DPORunConfig,
    "grpo": GRPORunConfig,
    "rloo": RLOORunConfig,
    "sft": SFTRunConfig,
    "kto": KTORunConfig,
}

# The rlhf.ml module that trains each method; every method but the reward model makes a policy.
TRAINER_MODULES: dict[str, str] = {
    "reward": "reward", "dpo": "dpo", "grpo": "online", "rloo": "online", "sft": "sft",
    "kto": "kto",
}
# Methods that sample from the policy and score the samples with a trained reward model.
ONLINE_METHODS: tuple[str, ...] = ("grpo", "rloo")


# Starting points per method: a label, one help line, and the values they set (the rest stay
# at the config's defaults). Every preset passes its config's validate() (tested).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "reward": {
        "demo": {"label": "Tiny demo model", "help": "A few hundred steps at a high rate; "
                 "minutes on a laptop CPU.",
                 "values": {"learning_rate": 3e-4, "num_train_epochs": 2.0,
                            "per_device_train_batch_size": 8}},
        "standard": {"label": "Real model (0.5-8B)", "help": "One epoch at 1e-5 with an "
                     "effective batch of 32 and LoRA; the usual RewardTrainer recipe.",
                     "values": {"learning_rate": 1e-5, "per_device_train_batch_size": 4,
                                "gradient_accumulation_steps": 8, "use_lora": True,
                                "lora_r": 16, "lora_alpha": 32,
                                "center_rewards_coefficient": 0.01, "max_length": 1024}},
        "careful": {"label": "Noisy labels", "help": "Only reliable annotators, evaluated "
                    "every 20 steps, stopping once held-out accuracy stops improving.",
                    "values": {"learning_rate": 1e-4, "num_train_epochs": 3.0,
                               "eval_steps": 20, "early_stopping_patience": 3,
                               "min_annotator_weight": 0.5, "exclude_flagged": True}},
    },
    "dpo": {
        "demo": {"label": "Tiny demo model", "help": "Sigmoid DPO at a high rate for the tiny "
                 "demo policy; minutes on CPU.",
                 "values": {"learning_rate": 5e-4, "beta": 0.1, "num_train_epochs": 2.0,
                            "per_device_train_batch_size": 8}},
        "standard": {"label": "Real model (0.5-8B)", "help": "The Zephyr recipe: lr 5e-7, "
                     "beta 0.1, effective batch 32, LoRA, precomputed reference log-probs.",
                     "values": {"learning_rate": 5e-7, "beta": 0.1,
                                "per_device_train_batch_size": 2,
                                "gradient_accumulation_steps": 16, "use_lora": True,
                                "lora_r": 16, "lora_alpha": 32,
                                "precompute_ref_log_probs": True, "max_length": 1024}},
        "robust": {"label": "Noisy labels (IPO)", "help": "IPO does not overfit "
                   "deterministic preferences; with agreement and flag filters.",
                   "values": {"loss_type": "ipo", "beta": 0.5, "learning_rate": 3e-4,
                              "min_agreement": 0.5, "exclude_flagged": True}},
    },
    "grpo": {
        "demo": {"label": "Tiny demo model", "help": "4 samples per prompt, short answers, "
                 "KL 0.04 to the reference.",
                 "values": {"learning_rate": 1e-4, "num_generations": 4,
                            "per_device_train_batch_size": 8, "max_completion_length": 48}},
        "standard": {"label": "Real model (0.5-8B)", "help": "8 samples per prompt, lr 1e-6, "
                     "LoRA.",
                     "values": {"learning_rate": 1e-6, "num_generations": 8,
                                "per_device_train_batch_size": 8,
                                "gradient_accumulation_steps": 4, "use_lora": True,
                                "max_completion_length": 256}},
    },
    "rloo": {
        "demo": {"label": "Tiny demo model", "help": "4 samples per prompt with a "
                 "leave-one-out baseline, KL 0.05.",
                 "values": {"learning_rate": 1e-4, "num_generations": 4, "beta": 0.05,
                            "per_device_train_batch_size": 8, "max_completion_length": 48}},
        "standard": {"label": "Real model (0.5-8B)", "help": "8 samples per prompt, lr 1e-6, "
                     "LoRA.",
                     "values": {"learning_rate": 1e-6, "num_generations": 8, "beta": 0.05,
                                "per_device_train_batch_size": 8,
                                "gradient_accumulation_steps": 4, "use_lora": True,
                                "max_completion_length": 256}},
    },
    "sft": {
        "demo": {"label": "Tiny demo model", "help": "Three epochs over corrections and gold "
                 "answers at a high rate.",
                 "values": {"learning_rate": 5e-4, "num_train_epochs": 3.0}},
        "standard": {"label": "Real model (0.5-8B)", "help": "Two epochs at 2e-5 with LoRA, "
                     "loss on answers only.",
                     "values": {"learning_rate": 2e-5, "num_train_epochs": 2.0,
                                "gradient_accumulation_steps": 8, "use_lora": True,
                                "lora_r": 16, "lora_alpha": 32, "max_length": 1024}},
    },
    "kto": {
        "demo": {"label": "Tiny demo model", "help": "KTO at a high rate; good and bad "
                 "answers weighed equally.",
                 "values": {"learning_rate": 5e-4, "num_train_epochs": 2.0,
                            "per_device_train_batch_size": 8}},
        "standard": {"label": "Real model (0.5-8B)", "help": "lr 5e-7, beta 0.1, LoRA; raise "
                     "a weight when one kind of answer is rare.",
                     "values": {"learning_rate": 5e-7, "gradient_accumulation_steps": 8,
                                "use_lora": True, "max_length": 1024}},
    },
}


# The TrainingConfig fields that choose which judgements a run's snapshot takes (rlhf.snapshots).
FILTER_FIELDS = ("min_agreement", "exclude_flagged", "only_reviewed", "min_annotator_weight")
# Settings that only mean something inside the app: the filters, KTO's rating threshold (also
# applied when the snapshot is built) and the registry entry that scores online RL. The
# file-based CLI reads its rows ready-made and takes the reward model by path.
APP_ONLY_FIELDS = frozenset({*FILTER_FIELDS, "rating_threshold", "reward_model"})


def option_fields(
    config_classes: Iterable[type[_ConfigMixin]], exclude: Iterable[str] = ()
) -> dict[str, tuple[type, str]]:
    """Every field of the given config classes, once: name -> (type of its default, help).

    Command lines build one ``--name`` option per field from this, so a new setting shows up
    in ``manage.py train`` and ``python -m rlhf.ml`` without further wiring.
    """
    skip = set(exclude)
    seen: dict[str, tuple[type, str]] = {}
    for config_class in config_classes:
        defaults = config_class()
        for f in dataclasses.fields(config_class):  # type: ignore[arg-type]
            if f.name not in skip:
                seen.setdefault(
                    f.name, (type(getattr(defaults, f.name)), f.metadata.get("help", ""))
                )
    return seen


def parse_bool(value: str) -> bool:
    """A command-line true/false (1/0, yes/no, on/off), or ValueError."""
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def preset_config(method: str, preset: str) -> TrainingConfig:
    """The config of a method with a preset's values applied (validated)."""
    try:
        values = PRESETS[method][preset]["values"]
    except KeyError:
        raise ValueError(f"No preset {preset!r} for method {method!r}") from None
    return RUN_CONFIGS[method].from_dict(values)
