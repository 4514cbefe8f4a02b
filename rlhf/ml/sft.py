"""Supervised fine-tuning on conversational prompt-completion rows with trl.SFTTrainer."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from .callbacks import MetricsFn, ProgressFn, StopFn
from .common import TrainResult, train_policy, training_args
from .config import SFTRunConfig

Row = Mapping[str, Any]

# Extra keys pass through TRL untouched, except these, which change what SFTTrainer does:
# input_ids/labels/masks are taken as already tokenized, conversations switches to the
# ShareGPT converter, tools/chat_template_kwargs alter the rendering and images switch to
# the vision path.
RESERVED_KEYS = frozenset(
    {
        "image",
        "images",
        "tools",
        "chat_template_kwargs",
        "conversations",
        "input_ids",
        "labels",
        "completion_mask",
        "assistant_masks",
        "seq_lengths",
    }
)


def _messages_ok(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(m, Mapping)
            and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str)
            for m in value
        )
    )


def check_rows(
    rows: Sequence[Row], name: str, reserved_keys: frozenset[str] = RESERVED_KEYS
) -> None:
    """Raise ValueError unless every row is a TRL conversational prompt-completion example."""
    for index, row in enumerate(rows):
        where = f"{name} row {index}"
        if not isinstance(row, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(row).__name__}")
        reserved = sorted(reserved_keys & row.keys())
        if reserved:
            raise ValueError(f"{where}: keys reserved by TRL: {', '.join(reserved)}")
        for key in ("prompt", "completion"):
            if not _messages_ok(row.get(key)):
                raise ValueError(
                    f"{where}: '{key}' must be a non-empty list of {{role, content}} messages"
                )
        if row["prompt"][-1]["role"] != "user":
            raise ValueError(f"{where}: prompt must end with a user turn")
        if any(m["role"] != "assistant" for m in row["completion"]):
            raise ValueError(f"{where}: 'completion' must hold assistant messages only")


def _sft_config(config: SFTRunConfig, scratch_dir: str, evaluate: bool):
    from trl import SFTConfig

    return SFTConfig(
        **training_args(config, scratch_dir, evaluate),
        max_length=config.max_length,
        completion_only_loss=config.completion_only_loss,
        model_init_kwargs={"dtype": "float32"},
    )


def train(
    config: SFTRunConfig,
    train_rows: Sequence[Row],
    eval_rows: Sequence[Row],
    *,
    model_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    on_metrics: MetricsFn | None = None,
    should_stop: StopFn | None = None,
    on_progress: ProgressFn | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Fine-tune the policy at model_path on the rows; save it to output_dir unless stopped."""
    config.validate()
    if not train_rows:
        raise ValueError("need at least one training example")
    check_rows(train_rows, "train")
    check_rows(eval_rows, "eval")

    # Sequences longer than max_length keep their start; a row whose prompt alone fills
    # max_length has nothing left to learn from and SFTTrainer drops it.
    return train_policy(
        config,
        train_rows,
        eval_rows,
        "SFTTrainer",
        lambda scratch_dir, evaluate: _sft_config(config, scratch_dir, evaluate),
        model_path=model_path,
        output_dir=output_dir,
        on_metrics=on_metrics,
        should_stop=should_stop,
        on_progress=on_progress,
        checkpoint_dir=checkpoint_dir,
    )
