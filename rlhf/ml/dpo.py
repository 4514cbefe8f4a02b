"""Run DPO on conversational preference rows with trl.DPOTrainer."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from .callbacks import MetricsFn, ProgressFn, StopFn
from .common import TrainResult, train_policy, training_args
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
    checkpoint_dir: str | os.PathLike[str] | None = None,
) -> DPOResult:
    """Train the policy at model_path with DPO and save it to output_dir unless stopped."""
    config.validate()
    if not train_rows:
        raise ValueError("need at least one training preference pair")
    check_rows(train_rows, "train")
    check_rows(eval_rows, "eval")
    return train_policy(
        config, train_rows, eval_rows, "DPOTrainer",
        lambda scratch_dir, evaluate: _dpo_config(config, scratch_dir, evaluate),
        model_path=model_path, output_dir=output_dir, on_metrics=on_metrics,
        should_stop=should_stop, on_progress=on_progress, checkpoint_dir=checkpoint_dir,
    )
