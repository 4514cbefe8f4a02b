"""Trainer callback that forwards metrics and progress and lets a caller cancel training."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

MetricsFn = Callable[[int, dict[str, float]], None]
StopFn = Callable[[], Any]
ProgressFn = Callable[[int, int], None]

log = logging.getLogger(__name__)


def numeric_metrics(logs: Mapping[str, Any]) -> dict[str, float]:
    """Keep only finite numeric values of a trainer log dict, as floats."""
    metrics: dict[str, float] = {}
    for name, value in logs.items():
        if isinstance(value, bool):
            continue
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()  # 0-d tensors / numpy scalars
        if not isinstance(value, int | float):
            continue
        # NaN/inf are not valid JSON and are rejected by JSON columns downstream.
        if math.isfinite(value):
            metrics[name] = float(value)
    return metrics


def make_metrics_callback(
    on_metrics: MetricsFn | None = None,
    should_stop: StopFn | None = None,
    on_progress: ProgressFn | None = None,
):
    """Return a transformers TrainerCallback wired to the given hooks."""
    # Imported here so that importing rlhf.ml stays free of transformers/torch.
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        """Forward numeric logs and progress; stop training when should_stop() is truthy."""

        def __init__(self) -> None:
            self.stopped = False
            self.history: list[tuple[int, dict[str, float]]] = []

        def _check_stop(self, control) -> None:
            if should_stop is not None and should_stop():
                self.stopped = True
                control.should_training_stop = True

        def on_train_begin(self, args, state, control, **kwargs):
            if on_progress is not None:
                on_progress(0, state.max_steps)

        def on_log(self, args, state, control, logs=None, **kwargs):
            metrics = numeric_metrics(logs or {})
            if metrics:
                self.history.append((state.global_step, metrics))
                if on_metrics is not None:
                    on_metrics(state.global_step, metrics)

        def on_step_end(self, args, state, control, **kwargs):
            if on_progress is not None:
                on_progress(state.global_step, state.max_steps)
            self._check_stop(control)

    return MetricsCallback()


def fit(
    trainer, callback, evaluate: bool, resume_from: str | None = None
) -> tuple[dict[str, float], dict[str, float], int]:
    """Train a TRL/transformers trainer quietly; return (train metrics, eval metrics, steps).

    Metrics reach callers through the callback's on_metrics, so the stdout printer goes.
    Nothing is evaluated when the callback stopped the run or there is no held-out set.
    resume_from: a checkpoint folder to continue from (its step, optimizer and data order).
    """
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    if resume_from:
        log.info("resuming from %s", resume_from)
    output = trainer.train(resume_from_checkpoint=resume_from)
    train_metrics = numeric_metrics(output.metrics)
    eval_metrics = {}
    if evaluate and not callback.stopped:
        eval_metrics = numeric_metrics(trainer.evaluate())
    return train_metrics, eval_metrics, trainer.state.global_step
