"""Run DPO on conversational preference rows with trl.DPOTrainer."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .callbacks import MetricsFn, ProgressFn, StopFn, fit, make_metrics_callback, save
from .config import DPORunConfig

Row = dict[str, Any]


@dataclass
class DPOResult:
    """Outcome of a DPO run."""

    output_dir: str
    eval_metrics: dict[str, float] = field(default_factory=dict)
    train_metrics: dict[str, float] = field(default_factory=dict)
    stopped: bool = False
    steps: int = 0


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


def _dpo_config(config: DPORunConfig, scratch_dir: str, use_cpu: bool):
    from trl import DPOConfig

    return DPOConfig(
        output_dir=scratch_dir,
        learning_rate=config.learning_rate,
        beta=config.beta,
        loss_type=[config.loss_type],
        # EXO is undefined without label smoothing; 1e-3 is the paper's recommendation.
        label_smoothing=1e-3 if config.loss_type == "exo_pair" else 0.0,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps if config.max_steps > 0 else -1,
        max_length=config.max_length,
        seed=config.seed,
        data_seed=config.seed,
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        push_to_hub=False,
        use_cpu=use_cpu,
        # Mixed precision is off: CPU bf16 is slow for tiny models and hurts reproducibility.
        bf16=False,
        fp16=False,
        # TRL turns checkpointing on by default; for small models it only costs time. The
        # transformers 5 name is used because `gradient_checkpointing` now warns as deprecated.
        activation_checkpointing=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
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

    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, set_seed
    from trl import DPOTrainer

    set_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    callback = make_metrics_callback(on_metrics, should_stop, on_progress)

    # Rows go in unchanged: extra keys (id, judgement_id, prompt_id, ...) survive tokenization
    # and are dropped by Trainer's remove_unused_columns before collation.
    train_dataset = Dataset.from_list(list(train_rows))
    eval_dataset = Dataset.from_list(list(eval_rows)) if eval_rows else None

    # Trainer insists on an output_dir and may write into it; keep that out of the real
    # output directory so a cancelled run leaves nothing behind there.
    with tempfile.TemporaryDirectory(prefix="preflab-dpo-") as scratch_dir:
        args = _dpo_config(config, scratch_dir, use_cpu=not torch.cuda.is_available())
        # Given a path, TRL loads the policy and then a second, frozen copy of the same
        # checkpoint (from config._name_or_path) as the reference model.
        trainer = DPOTrainer(
            model=str(model_path),
            ref_model=None,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            callbacks=[callback],
        )
        train_metrics, eval_metrics, steps = fit(trainer, callback, eval_dataset is not None)
        if callback.stopped:
            return DPOResult(
                output_dir=output_dir, train_metrics=train_metrics, stopped=True, steps=steps
            )
        save(trainer.model, tokenizer, output_dir)
    return DPOResult(
        output_dir=output_dir,
        eval_metrics=eval_metrics,
        train_metrics=train_metrics,
        stopped=False,
        steps=steps,
    )
