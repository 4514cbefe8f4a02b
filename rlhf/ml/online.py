"""Online RL against a trained reward model with trl.GRPOTrainer or trl.RLOOTrainer.

The policy samples `num_generations` completions per prompt, the reward model (a one-output
sequence classifier saved by rlhf.ml.reward) scores each prompt + completion, and the policy
moves towards the better ones: GRPO with group-normalised advantages, RLOO with a
leave-one-out baseline. With beta > 0 a frozen copy of the starting policy (with LoRA: the
policy with its adapters off) is the reference for a KL penalty.

What trl 1.16 logs each step and this module forwards to on_metrics: `reward` and
`reward_std` (mean and standard deviation of the rewards of the step's completions),
`rewards/reward_model/mean` and `/std` (the same for the one reward function), `kl` (mean
per-token KL to the reference; only when beta > 0), `frac_reward_zero_std`, `entropy`,
`completions/mean_length` and friends, `loss`, `grad_norm`, `learning_rate`.
The first step's `kl` is 0: its samples come from the reference itself. Held-out
prompts are sampled and scored the same way at the end of training (and every eval_steps
when set) and logged with an `eval_` prefix: `eval_reward` is the reward on unseen prompts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .callbacks import MetricsFn, ProgressFn, StopFn, fit, make_metrics_callback
from .common import (
    TrainResult,
    load_tokenizer,
    lora_config,
    save_trained,
    training_args,
    workspace,
)
from .config import OnlineRunConfig

Row = dict[str, Any]

ALGORITHMS = ("grpo", "rloo")

# TRL logs each reward function's mean and std under its model's name; the reward model is
# renamed to this so the metric names do not depend on where it is stored.
REWARD_NAME = "reward_model"

# Extra keys pass through TRL untouched (they reach custom reward functions as keyword
# arguments, which a reward model ignores), except these: images switch to the vision path and
# completion/completion_ids are the trainer's own per-sample fields.
RESERVED_KEYS = frozenset({"image", "images", "completion", "completion_ids"})


@dataclass
class OnlineResult(TrainResult):
    """Outcome of an online run: also how many prompts fit the prompt-length limit."""

    train_prompts: int = 0
    skipped_prompts: int = 0


def check_rows(rows: Sequence[Row], name: str) -> None:
    """Raise ValueError unless every row is a TRL conversational prompt-only example."""
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"{name} row {index}: must be a dict, got {type(row).__name__}")
        reserved = sorted(RESERVED_KEYS & row.keys())
        if reserved:
            raise ValueError(f"{name} row {index}: keys reserved by TRL: {', '.join(reserved)}")
        prompt = row.get("prompt")
        if not (
            isinstance(prompt, list)
            and prompt
            and all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m
                for m in prompt
            )
        ):
            raise ValueError(f"{name} row {index}: 'prompt' must be a non-empty message list")
        if prompt[-1]["role"] != "user":
            raise ValueError(f"{name} row {index}: prompt must end with a user turn")


def prompt_limit(config: OnlineRunConfig, model_path: str | os.PathLike[str]) -> int:
    """Longest prompt in tokens: max_length, and room left for a full completion."""
    from transformers import AutoConfig

    limit = config.max_length
    text_config = AutoConfig.from_pretrained(str(model_path)).get_text_config()
    positions = getattr(text_config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limit = min(limit, positions - config.max_completion_length)
    return limit


def _prompt_tokens(tokenizer, row: Row) -> int:
    # As GRPOTrainer/RLOOTrainer render a prompt before sampling (_tokenize_prompts).
    ids = tokenizer.apply_chat_template(
        row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    return len(ids)


def _trl_config(config: OnlineRunConfig, algorithm: str, scratch_dir: str, evaluate: bool):
    from trl import GRPOConfig, RLOOConfig

    config_class = GRPOConfig if algorithm == "grpo" else RLOOConfig
    args = training_args(config, scratch_dir, evaluate)
    # TRL samples num_generations completions of each eval prompt within one eval batch, so
    # that batch must hold whole groups (the train batch only has to across accumulation).
    groups = max(1, config.per_device_train_batch_size // config.num_generations)
    args["per_device_eval_batch_size"] = groups * config.num_generations
    return config_class(
        **args,
        # One generation batch per optimizer step: per_device_train_batch_size x
        # gradient_accumulation_steps completions, i.e. that / num_generations prompts.
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        temperature=config.temperature,
        beta=config.beta,
        use_vllm=False,
        log_completions=False,
        model_init_kwargs={"dtype": "float32"},
    )


def train(
    config: OnlineRunConfig,
    train_rows: Sequence[Row],
    eval_rows: Sequence[Row],
    *,
    model_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    reward_model_path: str | os.PathLike[str],
    algorithm: str = "grpo",
    on_metrics: MetricsFn | None = None,
    should_stop: StopFn | None = None,
    on_progress: ProgressFn | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
) -> OnlineResult:
    """Train the policy at model_path against the reward model; save it unless stopped.

    Prompts longer than max_length tokens (or than the policy's positions leave room for with a
    full completion) are left out and counted; TRL 1.16 has no prompt truncation. eval_rows are
    held-out prompts, sampled and scored at the end (and every eval_steps when set).
    """
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
    config.validate()
    if not train_rows:
        raise ValueError("need at least one training prompt")
    check_rows(train_rows, "train")
    check_rows(eval_rows, "eval")
    output_dir = str(output_dir)
    if should_stop is not None and should_stop():
        return OnlineResult(output_dir=output_dir, stopped=True)

    from datasets import Dataset
    from transformers import set_seed
    from trl import GRPOTrainer, RLOOTrainer

    from .reward import load_reward_model

    set_seed(config.seed)
    tokenizer = load_tokenizer(model_path)
    limit = prompt_limit(config, model_path)
    kept = [row for row in train_rows if _prompt_tokens(tokenizer, row) <= limit]
    if not kept:
        raise ValueError(
            f"All {len(train_rows)} training prompts are longer than {limit} tokens; raise "
            "max_length or lower max_completion_length."
        )
    held_out = [row for row in eval_rows if _prompt_tokens(tokenizer, row) <= limit]

    # load_reward_model sets a pad token and the config's pad_token_id: the classifier scores
    # the last non-pad token of the right-padded batch TRL builds.
    reward_model, reward_tokenizer = load_reward_model(reward_model_path)
    reward_model.config.name_or_path = REWARD_NAME

    callback = make_metrics_callback(on_metrics, should_stop, on_progress)
    # GRPOConfig/RLOOConfig keep extra columns (remove_unused_columns=False) and the collator
    # hands rows through as dicts, so prompt_id, id, source, ... ride along unused.
    train_dataset = Dataset.from_list(list(kept))
    eval_dataset = Dataset.from_list(list(held_out)) if held_out else None
    trainer_class = GRPOTrainer if algorithm == "grpo" else RLOOTrainer

    with workspace(f"preflab-{algorithm}-", checkpoint_dir) as (scratch_dir, resume_from):
        args = _trl_config(config, algorithm, scratch_dir, evaluate=eval_dataset is not None)
        # Given a path, TRL loads the policy and, with beta > 0, a frozen second copy as the
        # reference (with LoRA: the policy with its adapters switched off).
        trainer = trainer_class(
            model=str(model_path),
            reward_funcs=reward_model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            reward_processing_classes=reward_tokenizer,
            callbacks=[callback],
            peft_config=lora_config(config),
        )
        train_metrics, eval_metrics, steps = fit(
            trainer, callback, eval_dataset is not None, resume_from
        )
        counts = {"train_prompts": len(kept), "skipped_prompts": len(train_rows) - len(kept)}
        if callback.stopped:
            return OnlineResult(
                output_dir=output_dir,
                train_metrics=train_metrics,
                stopped=True,
                steps=steps,
                **counts,
            )
        save_trained(trainer.model, tokenizer, output_dir)
    return OnlineResult(
        output_dir=output_dir,
        eval_metrics=eval_metrics,
        train_metrics=train_metrics,
        stopped=False,
        steps=steps,
        **counts,
    )
