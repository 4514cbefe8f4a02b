"""Train a reward model on conversational preference rows with trl.RewardTrainer, and score.

The reward model is the base policy with its language-model head swapped for a one-output
score head (`AutoModelForSequenceClassification`, num_labels=1). `score` renders prompt +
completion exactly as RewardTrainer renders a conversational row (see `encode`), so a score
at inference is the same number the trainer saw for that text.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .callbacks import MetricsFn, ProgressFn, StopFn, fit, make_metrics_callback
from .common import (
    TrainResult,
    early_stopping,
    lora_config,
    save_trained,
    training_args,
    workspace,
)
from .config import RewardRunConfig
from .dpo import check_rows

Row = dict[str, Any]
Message = dict[str, Any]

# Keys that change what RewardTrainer does with a row: a `margin` column is added to the loss,
# `*_ids` columns are taken as already tokenized, tools/chat_template_kwargs alter the
# rendering and images switch to the vision path.
RESERVED_KEYS = frozenset(
    {
        "image",
        "images",
        "tools",
        "chat_template_kwargs",
        "margin",
        "chosen_ids",
        "rejected_ids",
        "chosen_input_ids",
        "rejected_input_ids",
    }
)


@dataclass
class RewardResult(TrainResult):
    """Outcome of a reward-model run: also how many pairs fit max_length."""

    train_pairs: int = 0
    skipped_pairs: int = 0


def _completion_messages(completion: str | Sequence[Message]) -> list[Message]:
    if isinstance(completion, str):
        return [{"role": "assistant", "content": completion}]
    return list(completion)


def encode(tokenizer, prompt: Sequence[Message], completion: str | Sequence[Message]) -> list[int]:
    """Token ids of prompt + completion, rendered the way RewardTrainer renders a pair side.

    trl 1.16 (`RewardTrainer._prepare_dataset`) concatenates `prompt + chosen` as messages and
    calls `apply_chat_template(messages, tokenize=True, return_dict=True, tools=None)`; it adds
    no EOS to conversational rows and never truncates (longer pairs are filtered out).
    """
    messages = list(prompt) + _completion_messages(completion)
    return list(
        tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, tools=None)[
            "input_ids"
        ]
    )


def load_reward_model(name_or_path: str | os.PathLike[str], *, device: str | None = None):
    """Load (model, tokenizer) as a one-output sequence classifier with a pad token set.

    Works for a saved reward model and for a causal-LM policy (whose score head starts random).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    name = str(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(name)
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is None:
            raise ValueError(f"tokenizer of {name} has no pad, eos or unk token to pad with")
        tokenizer.pad_token = fallback
    with _quiet_head_swap():
        model = AutoModelForSequenceClassification.from_pretrained(
            name, num_labels=1, dtype=torch.float32
        )
    # The classifier scores the last non-pad token; without pad_token_id it cannot find it.
    model.config.get_text_config().pad_token_id = tokenizer.pad_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    model.eval()
    return model, tokenizer


def _quiet_head_swap():
    """Silence the expected missing score / unexpected lm_head key reports of a policy load."""
    import contextlib

    try:
        from trl.trainer.reward_trainer import suppress_seqcls_warning
    except ImportError:  # a private helper of trl; loading works the same without it
        return contextlib.nullcontext()
    return suppress_seqcls_warning()


def _max_positions(model) -> int | None:
    value = getattr(model.config.get_text_config(), "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def score(
    model_path_or_model,
    conversations: Sequence[Sequence[Message]],
    completions: Sequence[str | Sequence[Message]],
    batch_size: int = 16,
    *,
    tokenizer=None,
    max_length: int | None = None,
) -> list[float]:
    """Return the reward of each (conversation, completion) pair, in order.

    model_path_or_model is a saved reward model's directory (or hub id), or a loaded
    sequence-classification model; pass its tokenizer too, or it is loaded from the model's
    name_or_path. Sequences longer than max_length (default: the model's position limit) keep
    their last max_length tokens, so the completion, which the score depends on, is kept.
    """
    if len(conversations) != len(completions):
        raise ValueError(
            f"{len(conversations)} conversations but {len(completions)} completions to score"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not conversations:
        return []

    import torch

    if isinstance(model_path_or_model, str | os.PathLike):
        model, tokenizer = load_reward_model(model_path_or_model)
    else:
        model = model_path_or_model
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model.config.name_or_path)
    pad_id = model.config.get_text_config().pad_token_id
    if pad_id is None:
        pad_id = tokenizer.pad_token_id
    if pad_id is None:
        raise ValueError("the reward model has no pad_token_id; load it with load_reward_model")
    limit = max_length or _max_positions(model)

    encoded = []
    for prompt, completion in zip(conversations, completions, strict=True):
        ids = encode(tokenizer, prompt, completion)
        encoded.append(ids[-limit:] if limit and len(ids) > limit else ids)

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    scores: list[float] = [0.0] * len(encoded)
    # Similar lengths share a batch: less padding. Right padding leaves each score unchanged
    # (causal attention; the classifier reads the last non-pad token).
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                indices = order[start : start + batch_size]
                longest = max(len(encoded[i]) for i in indices)
                input_ids = torch.full((len(indices), longest), pad_id, dtype=torch.long)
                attention_mask = torch.zeros((len(indices), longest), dtype=torch.long)
                for row, i in enumerate(indices):
                    input_ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                    attention_mask[row, : len(encoded[i])] = 1
                logits = model(
                    input_ids=input_ids.to(device),
                    attention_mask=attention_mask.to(device),
                    use_cache=False,
                ).logits
                for i, value in zip(indices, logits[:, 0].float().cpu().tolist(), strict=True):
                    scores[i] = float(value)
    finally:
        if was_training:
            model.train()
    return scores


def pairwise_metrics(model, tokenizer, rows: Sequence[Row], batch_size: int = 16) -> dict:
    """Held-out accuracy (share of pairs with score(chosen) > score(rejected)) and mean margin."""
    if not rows:
        return {}
    prompts = [row["prompt"] for row in rows]
    chosen = score(model, prompts, [row["chosen"] for row in rows], batch_size,
                   tokenizer=tokenizer)
    rejected = score(model, prompts, [row["rejected"] for row in rows], batch_size,
                     tokenizer=tokenizer)
    margins = [c - r for c, r in zip(chosen, rejected, strict=True)]
    return {
        "eval_pairwise_accuracy": sum(m > 0 for m in margins) / len(margins),
        "eval_mean_margin": sum(margins) / len(margins),
        "eval_pairs": float(len(margins)),
    }


def _fits(tokenizer, row: Row, max_length: int) -> bool:
    return all(
        len(encode(tokenizer, row["prompt"], row[side])) <= max_length
        for side in ("chosen", "rejected")
    )


def _reward_config(config: RewardRunConfig, scratch_dir: str, evaluate: bool):
    from trl import RewardConfig

    return RewardConfig(
        **training_args(config, scratch_dir, evaluate),
        max_length=config.max_length,
        center_rewards_coefficient=config.center_rewards_coefficient or None,
    )


def train(
    config: RewardRunConfig,
    train_rows: Sequence[Row],
    eval_rows: Sequence[Row],
    *,
    model_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    on_metrics: MetricsFn | None = None,
    should_stop: StopFn | None = None,
    on_progress: ProgressFn | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
) -> RewardResult:
    """Train a reward model from the policy at model_path; save it to output_dir unless stopped."""
    config.validate()
    if not train_rows:
        raise ValueError("need at least one training preference pair")
    check_rows(train_rows, "train", RESERVED_KEYS)
    check_rows(eval_rows, "eval", RESERVED_KEYS)
    output_dir = str(output_dir)
    if should_stop is not None and should_stop():
        return RewardResult(output_dir=output_dir, stopped=True)

    from datasets import Dataset
    from transformers import set_seed
    from trl import RewardTrainer

    # The score head is initialised at random when loaded: seed first so runs are reproducible.
    set_seed(config.seed)
    model, tokenizer = load_reward_model(model_path, device="cpu")
    model.train()

    # RewardTrainer silently drops pairs longer than max_length; drop them here instead, so the
    # count can be reported and a dataset that loses every pair fails with a clear message.
    kept = [row for row in train_rows if _fits(tokenizer, row, config.max_length)]
    skipped = len(train_rows) - len(kept)
    if not kept:
        raise ValueError(
            f"All {len(train_rows)} training pairs are longer than max_length="
            f"{config.max_length} tokens; raise max_length."
        )
    held_out = [row for row in eval_rows if _fits(tokenizer, row, config.max_length)]
    callback = make_metrics_callback(on_metrics, should_stop, on_progress)
    # Extra keys (id, judgement_id, ...) survive tokenization and are dropped by Trainer's
    # remove_unused_columns before collation.
    train_dataset = Dataset.from_list(kept)
    eval_dataset = Dataset.from_list(held_out) if held_out else None

    with workspace("preflab-reward-", checkpoint_dir) as (scratch_dir, resume_from):
        args = _reward_config(config, scratch_dir, evaluate=eval_dataset is not None)
        trainer = RewardTrainer(
            model=model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            callbacks=[callback, *early_stopping(config, eval_dataset is not None)],
            peft_config=lora_config(config, task_type="SEQ_CLS"),
        )
        train_metrics, eval_metrics, steps = fit(
            trainer, callback, eval_dataset is not None, resume_from
        )
        if callback.stopped:
            return RewardResult(
                output_dir=output_dir, train_metrics=train_metrics, stopped=True, steps=steps,
                train_pairs=len(kept), skipped_pairs=skipped,
            )
        if eval_rows:
            # Over every held-out pair (too-long ones scored on their tail), pair by pair:
            # TRL's eval_accuracy is a mean of per-batch means.
            pairwise = pairwise_metrics(trainer.model, tokenizer, eval_rows,
                                        config.per_device_train_batch_size)
            eval_metrics.update(pairwise)
            if on_metrics is not None:
                on_metrics(steps, pairwise)
        save_trained(trainer.model, tokenizer, output_dir)
    return RewardResult(
        output_dir=output_dir,
        eval_metrics=eval_metrics,
        train_metrics=train_metrics,
        stopped=False,
        steps=steps,
        train_pairs=len(kept),
        skipped_pairs=skipped,
    )
