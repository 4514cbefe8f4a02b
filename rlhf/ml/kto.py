"""Run KTO on unpaired good/bad conversational answers with trl.KTOTrainer."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

from .callbacks import MetricsFn, ProgressFn, StopFn
from .common import TrainResult, train_policy, training_args
from .config import KTORunConfig
from .sft import Row, check_rows

# Keys that change what KTOTrainer does with a row: chosen/rejected make it unpair the row,
# *_ids and ref_*logps are taken as already tokenized / precomputed, tools and
# chat_template_kwargs alter the rendering and images switch to the vision path.
RESERVED_KEYS = frozenset(
    {
        "image",
        "images",
        "tools",
        "chat_template_kwargs",
        "chosen",
        "rejected",
        "prompt_ids",
        "completion_ids",
        "KL_completion_ids",
        "ref_logps",
        "ref_KL_logps",
    }
)


def check_labelled_rows(rows: Sequence[Row], name: str) -> None:
    """Raise ValueError unless every row is a prompt-completion example with a bool label."""
    check_rows(rows, name, RESERVED_KEYS)
    for index, row in enumerate(rows):
        if not isinstance(row.get("label"), bool):
            raise ValueError(
                f"{name} row {index}: 'label' must be true (good answer) or false (bad answer), "
                f"got {row.get('label')!r}"
            )


def _kto_config(config: KTORunConfig, scratch_dir: str, evaluate: bool):
    from trl import KTOConfig

    return KTOConfig(
        **training_args(config, scratch_dir, evaluate),
        beta=config.beta,
        desirable_weight=config.desirable_weight,
        undesirable_weight=config.undesirable_weight,
        max_length=config.max_length,
        model_init_kwargs={"dtype": "float32"},
    )


def train(
    config: KTORunConfig,
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
    """Train the policy at model_path with KTO and save it to output_dir unless stopped."""
    config.validate()  # refuses a batch size of 1 too: KTO's KL term needs the batch's others
    check_labelled_rows(train_rows, "train")
    check_labelled_rows(eval_rows, "eval")
    good = sum(row["label"] for row in train_rows)
    if not good or good == len(train_rows):
        raise ValueError(
            f"KTO needs both good and bad answers to train on; got {good} good and "
            f"{len(train_rows) - good} bad"
        )

    # KTOTrainer reads rows in order (each batch's KL term pairs its prompts with the batch's
    # other answers), so rows grouped by label would give one-sided batches: shuffle them once.
    rows = list(train_rows)
    random.Random(config.seed).shuffle(rows)
    return train_policy(
        config,
        rows,
        eval_rows,
        "KTOTrainer",
        lambda scratch_dir, evaluate: _kto_config(config, scratch_dir, evaluate),
        model_path=model_path,
        output_dir=output_dir,
        on_metrics=on_metrics,
        should_stop=should_stop,
        on_progress=on_progress,
        checkpoint_dir=checkpoint_dir,
    )
