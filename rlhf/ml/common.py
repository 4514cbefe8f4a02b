"""What every TRL trainer of rlhf.ml shares: arguments, LoRA, early stopping, saving.

Each method module (reward, dpo, sft, kto, online) builds its TRL config from
`training_args(config, ...)` plus its own fields, passes `lora_config(config)` as
`peft_config` and `early_stopping(config, evaluate)` as extra callbacks, and ends with
`save_trained(trainer.model, tokenizer, output_dir)`; `train_policy` does all of that for a
causal-LM trainer given its name and config (sft, kto).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .callbacks import MetricsFn, ProgressFn, StopFn, fit, make_metrics_callback
from .config import TrainingConfig


@dataclass
class TrainResult:
    """Outcome of a training run of any method."""

    output_dir: str
    eval_metrics: dict[str, float] = field(default_factory=dict)
    train_metrics: dict[str, float] = field(default_factory=dict)
    stopped: bool = False
    steps: int = 0


def load_tokenizer(model_path: str | os.PathLike[str]):
    """The model's tokenizer with a pad token (its EOS when it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def use_cpu() -> bool:
    """Train on CPU unless a CUDA device is present."""
    import torch

    return not torch.cuda.is_available()


def bf16_supported() -> bool:
    """bf16 on CUDA devices that support it; never on CPU (slow, and rough for tiny models)."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def training_args(config: TrainingConfig, scratch_dir: str, evaluate: bool) -> dict[str, Any]:
    """Keyword arguments for any TRL config class (DPOConfig, RewardConfig, SFTConfig, ...).

    evaluate says whether a held-out set exists. With eval_steps the trainer evaluates every
    eval_steps; early stopping then keeps the best checkpoint (saved at the same steps into the
    scratch directory) and restores it at the end. With checkpoint_steps the scratch directory
    also holds the last resumable checkpoint (weights, optimizer, scheduler, RNG and trainer
    state; with early stopping, at every evaluation), which `workspace` finds on a later try.
    """
    periodic = evaluate and config.eval_steps > 0
    stop_early = periodic and config.early_stopping_patience > 0
    resumable = config.checkpoint_steps > 0
    saving = stop_early or resumable
    args: dict[str, Any] = {
        "output_dir": scratch_dir,
        "learning_rate": config.learning_rate,
        "per_device_train_batch_size": config.per_device_train_batch_size,
        "per_device_eval_batch_size": config.per_device_train_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "num_train_epochs": config.num_train_epochs,
        "max_steps": config.max_steps if config.max_steps > 0 else -1,
        "seed": config.seed,
        "data_seed": config.seed,
        "logging_strategy": "steps",
        "logging_steps": config.logging_steps,
        "eval_strategy": "steps" if periodic else "no",
        "eval_steps": config.eval_steps if periodic else None,
        "save_strategy": "steps" if saving else "no",
        "save_steps": config.eval_steps if stop_early else (config.checkpoint_steps or 500),
        "save_total_limit": 1 if saving else None,
        "save_only_model": not resumable,
        "load_best_model_at_end": stop_early,
        "metric_for_best_model": config.best_metric if stop_early else None,
        "greater_is_better": config.greater_is_better if stop_early else None,
        "report_to": "none",
        "push_to_hub": False,
        "use_cpu": use_cpu(),
        "bf16": bf16_supported(),
        "fp16": False,
        # TRL turns checkpointing on by default; for small models it only costs time. The
        # transformers 5 name: `gradient_checkpointing` warns as deprecated.
        "activation_checkpointing": False,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }
    return args


@contextlib.contextmanager
def workspace(prefix: str, checkpoint_dir: str | os.PathLike[str] | None = None):
    """The trainer's output_dir and the checkpoint to resume from, as (directory, path or None).

    Without checkpoint_dir: a temporary directory, removed afterwards, and nothing to resume.
    With it: that directory, kept (the caller removes it once the model is saved), and its
    latest `checkpoint-N` folder when an earlier try left one there.
    """
    if checkpoint_dir is None:
        with tempfile.TemporaryDirectory(prefix=prefix) as scratch_dir:
            yield scratch_dir, None
        return
    directory = str(checkpoint_dir)
    os.makedirs(directory, exist_ok=True)
    step = checkpoint_step(directory)
    yield directory, os.path.join(directory, f"checkpoint-{step}") if step is not None else None


def checkpoint_step(checkpoint_dir: str | os.PathLike[str]) -> int | None:
    """The step of the latest complete resumable checkpoint in checkpoint_dir, or None.

    Trainer writes a checkpoint's trainer_state.json after its weights and optimizer: a
    folder without it (a process killed while saving) is passed over, as is one saved
    without optimizer state (early stopping's best-model copies with checkpoint_steps 0).
    """
    try:
        names = os.listdir(checkpoint_dir)
    except (FileNotFoundError, NotADirectoryError):
        return None
    steps = []
    for name in names:
        match = re.fullmatch(r"checkpoint-(\d+)", name)
        folder = os.path.join(checkpoint_dir, name)
        if match and all(os.path.isfile(os.path.join(folder, part))
                         for part in ("trainer_state.json", "optimizer.pt")):
            steps.append(int(match.group(1)))
    return max(steps, default=None)


def early_stopping(config: TrainingConfig, evaluate: bool) -> list:
    """transformers' EarlyStoppingCallback when the run asks for it and has held-out data."""
    if not (evaluate and config.eval_steps > 0 and config.early_stopping_patience > 0):
        return []
    from transformers import EarlyStoppingCallback

    return [EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience)]


def lora_config(config: TrainingConfig, task_type: str = "CAUSAL_LM"):
    """A peft LoraConfig on every linear layer when the run uses LoRA, else None.

    For a reward model (task_type "SEQ_CLS") peft also trains and saves the new score head.
    """
    if not config.use_lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
        task_type=task_type,
    )


def save_trained(model, tokenizer, output_dir: str | os.PathLike[str]) -> None:
    """Write model and tokenizer as a plain `from_pretrained` folder (LoRA merged in)."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    os.makedirs(output_dir, exist_ok=True)
    model.save_pretrained(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts, for reporting what LoRA trains."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def train_policy(
    config: TrainingConfig,
    train_rows: Sequence[Mapping[str, Any]],
    eval_rows: Sequence[Mapping[str, Any]],
    trainer: str,
    trl_config: Callable[[str, bool], Any],
    *,
    model_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    on_metrics: MetricsFn | None = None,
    should_stop: StopFn | None = None,
    on_progress: ProgressFn | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Fine-tune the causal LM at model_path with a TRL trainer; save it unless stopped.

    trainer names the trl class ("SFTTrainer", "KTOTrainer", ...) and trl_config(scratch_dir,
    evaluate) builds its config. Rows go in unchanged: extra keys (id, prompt_id, ...) survive
    tokenization and are dropped by Trainer's remove_unused_columns before collation. Given a
    path, trainers that need a reference model load a second, frozen copy of the checkpoint;
    with LoRA the reference is the policy with its adapters switched off. checkpoint_dir: see
    `workspace` (training resumes from the checkpoint an earlier try left there).
    """
    output_dir = str(output_dir)
    if should_stop is not None and should_stop():
        return TrainResult(output_dir=output_dir, stopped=True)

    import trl
    from datasets import Dataset
    from transformers import set_seed

    set_seed(config.seed)
    tokenizer = load_tokenizer(model_path)
    callback = make_metrics_callback(on_metrics, should_stop, on_progress)
    train_dataset = Dataset.from_list([dict(row) for row in train_rows])
    eval_dataset = Dataset.from_list([dict(row) for row in eval_rows]) if eval_rows else None
    evaluate = eval_dataset is not None

    # Trainer insists on an output_dir and may write into it; keep that out of the real
    # output directory so a cancelled run leaves nothing behind there.
    name = trainer.removesuffix("Trainer").lower()
    with workspace(f"preflab-{name}-", checkpoint_dir) as (scratch_dir, resume_from):
        run = getattr(trl, trainer)(
            model=str(model_path),
            args=trl_config(scratch_dir, evaluate),
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            callbacks=[callback, *early_stopping(config, evaluate)],
            peft_config=lora_config(config),
        )
        train_metrics, eval_metrics, steps = fit(run, callback, evaluate, resume_from)
        if callback.stopped:
            return TrainResult(
                output_dir=output_dir, train_metrics=train_metrics, stopped=True, steps=steps
            )
        save_trained(run.model, tokenizer, output_dir)
    return TrainResult(
        output_dir=output_dir,
        eval_metrics=eval_metrics,
        train_metrics=train_metrics,
        stopped=False,
        steps=steps,
    )
