"""Run DPO on conversational preference rows with trl.DPOTrainer."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

from .callbacks import MetricsFn, ProgressFn, StopFn, fit, make_metrics_callback
from .common import (
    TrainResult,
    early_stopping,
    load_tokenizer,
    lora_config,
    save_trained,
    training_args,
)
from .config import DPORunConfig

Row = dict[str, Any]


# Kept as a name: callers and tests know DPO results by it.
DPOResult = TrainResult


def _is_messages(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)
    )


# Extra keys pass through TRL untouched, except these, which change what it does: images switch
# to the vision path, tools/chat_template_kwargs alter the rendering and ref_*_logps would be
# taken as precomputed reference log-probs.
RESERVED_KEYS = frozenset(
    {"image", "images", "tools", "chat_template_kwargs", "ref_chosen_logps", "ref_rejected_logps"}
)


def check_rows(
    rows: Sequence[Row], name: str, reserved_keys: frozenset[str] = RESERVED_KEYS
) -> None:
    """Raise ValueError unless every row is a TRL conversational preference example."""
    for index, row in enumerate(rows):
        reserved = sorted(reserved_keys & row.keys())
        if reserved:
            raise ValueError(f"{name} row {index}: keys reserved by TRL: {', '.join(reserved)}")
        for key in ("prompt", "chosen", "rejected"):
            if not _is_messages(row.get(key)):
                raise ValueError(f"{name} row {index}: '{key}' must be a non-empty message list")
        if row["prompt"][-1]["role"] != "user":
            raise ValueError(f"{name} row {index}: prompt must end with a user turn")
        for key in ("chosen", "rejected"):
            if any(m["role"] != "assistant" for m in row[key]):
                raise ValueError(f"{name} row {index}: '{key}' must hold assistant messages only")


def _dpo_config(config: DPORunConfig, scratch_dir: str, evaluate: bool):
    from trl import DPOConfig

    return DPOConfig(
        **training_args(config, scratch_dir, evaluate),
        beta=config.beta,
        loss_type=[config.loss_type],
        # EXO is undefined without label smoothing; 1e-3 is the paper's recommendation.
        label_smoothing=1e-3 if config.loss_type == "exo_pair" else 0.0,
        max_length=config.max_length,
        precompute_ref_log_probs=config.precompute_ref_log_probs,
        model_init_kwargs={"dtype": "float32"},
    )


def train(
    config: DPORunConfig,
    train_rows: Sequence[Row],
    eval_rows: Sequence[Row],
    *,
    model_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    on_metrics: MetricsFn | None = None,
    should_stop: StopFn | None = None,
    on_progress: ProgressFn | None = None,
) -> DPOResult:
    """Train the policy at model_path with DPO and save it to output_dir unless stopped."""
    config.validate()
    if not train_rows:
        raise ValueError("need at least one training preference pair")
    check_rows(train_rows, "train")
    check_rows(eval_rows, "eval")
    output_dir = str(output_dir)
    if should_stop is not None and should_stop():
        return DPOResult(output_dir=output_dir, stopped=True)

    from datasets import Dataset
    from transformers import set_seed
    from trl import DPOTrainer

    set_seed(config.seed)
    tokenizer = load_tokenizer(model_path)
    callback = make_metrics_callback(on_metrics, should_stop, on_progress)

    # Rows go in unchanged: extra keys (id, judgement_id, prompt_id, ...) survive tokenization
    # and are dropped by Trainer's remove_unused_columns before collation.
    train_dataset = Dataset.from_list(list(train_rows))
    eval_dataset = Dataset.from_list(list(eval_rows)) if eval_rows else None

    # Trainer insists on an output_dir and may write into it; keep that out of the real
    # output directory so a cancelled run leaves nothing behind there.
    with tempfile.TemporaryDirectory(prefix="preflab-dpo-") as scratch_dir:
        args = _dpo_config(config, scratch_dir, evaluate=eval_dataset is not None)
        # Given a path, TRL loads the policy and then a second, frozen copy of the same
        # checkpoint (from config._name_or_path) as the reference model; with LoRA the
        # reference is the policy with its adapters switched off.
        trainer = DPOTrainer(
            model=str(model_path),
            ref_model=None,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            callbacks=[callback, *early_stopping(config, eval_dataset is not None)],
            peft_config=lora_config(config),
        )
        train_metrics, eval_metrics, steps = fit(trainer, callback, eval_dataset is not None)
        if callback.stopped:
            return DPOResult(
                output_dir=output_dir, train_metrics=train_metrics, stopped=True, steps=steps
            )
        save_trained(trainer.model, tokenizer, output_dir)
    return DPOResult(
        output_dir=output_dir,
        eval_metrics=eval_metrics,
        train_metrics=train_metrics,
        stopped=False,
        steps=steps,
    )
