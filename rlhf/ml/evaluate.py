"""Win-rate of a policy against a baseline: answers to the same prompts, judged by a scorer.

The scorer is a reward model (`reward_win_rate`) or any function of (prompt, answer), e.g. a
simulation's oracle (`win_rate`). Ties count half. The interval is Wilson's score interval on
the win share (ties as half a win), the usual interval for a proportion that stays inside
[0, 1] for small samples.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from .callbacks import ProgressFn, StopFn
from .config import SampleConfig

Message = dict[str, Any]
Scorer = Callable[[Sequence[Message], str], float]

# Scores closer than this are a tie (a reward model's float noise is far below it).
TIE_TOLERANCE = 1e-6


def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion successes/n (95 % by default)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def tally(outcomes: Sequence[float]) -> dict[str, float]:
    """Summarise outcomes (1 win, 0.5 tie, 0 loss) as counts, win-rate and its interval."""
    n = len(outcomes)
    wins = sum(1 for o in outcomes if o == 1)
    ties = sum(1 for o in outcomes if o == 0.5)
    share = sum(outcomes)
    low, high = wilson_interval(share, n)
    return {
        "n": n,
        "wins": wins,
        "ties": ties,
        "losses": n - wins - ties,
        "win_rate": share / n if n else 0.0,
        "ci_low": low,
        "ci_high": high,
    }


def outcome(policy_score: float, baseline_score: float, tolerance: float = TIE_TOLERANCE) -> float:
    """1 if the policy's answer scored higher, 0 if lower, 0.5 within tolerance."""
    if abs(policy_score - baseline_score) <= tolerance:
        return 0.5
    return 1.0 if policy_score > baseline_score else 0.0


def answers(
    model_path: str | os.PathLike[str],
    prompts: Sequence[Sequence[Message]],
    config: SampleConfig | None = None,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> list[str]:
    """One sampled answer per prompt (same seed for every model compared)."""
    from dataclasses import replace

    from .generate import generate

    config = replace(config or SampleConfig(), num_candidates=1)
    outputs = generate(model_path, [list(p) for p in prompts], config,
                       on_progress=on_progress, should_stop=should_stop)
    return [texts[0] for texts in outputs]


def win_rate(
    prompts: Sequence[Sequence[Message]],
    policy_answers: Sequence[str],
    baseline_answers: Sequence[str],
    scorer: Scorer,
) -> dict[str, Any]:
    """Win-rate of the policy's answers over the baseline's under a per-answer scorer."""
    if not len(prompts) == len(policy_answers) == len(baseline_answers):
        raise ValueError("prompts, policy answers and baseline answers differ in length")
    policy_scores = [scorer(p, a) for p, a in zip(prompts, policy_answers, strict=True)]
    baseline_scores = [scorer(p, a) for p, a in zip(prompts, baseline_answers, strict=True)]
    return _summary(policy_scores, baseline_scores)


def _summary(policy_scores, baseline_scores):
    outcomes = [outcome(p, b) for p, b in zip(policy_scores, baseline_scores, strict=True)]
    n = len(outcomes) or 1
    return {
        **tally(outcomes),
        "policy_mean_score": sum(policy_scores) / n,
        "baseline_mean_score": sum(baseline_scores) / n,
        "outcomes": outcomes,
    }


def reward_win_rate(
    policy_path: str | os.PathLike[str],
    baseline_path: str | os.PathLike[str],
    reward_model_path: str | os.PathLike[str],
    prompts: Sequence[Sequence[Message]],
    config: SampleConfig | None = None,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> dict[str, Any] | None:
    """Both policies answer every prompt; the reward model scores; the policy's win-rate.

    Returns the tally plus mean rewards, the per-prompt outcomes and the answers; None if
    should_stop asked to stop.
    """
    from .reward import load_reward_model, score

    if not prompts:
        raise ValueError("need at least one held-out prompt to evaluate on")
    total = 2 * len(prompts)

    def part(offset):
        if on_progress is None:
            return None
        return lambda done, _total: on_progress(offset + done, total)

    policy = answers(policy_path, prompts, config, part(0), should_stop)
    if should_stop is not None and should_stop():
        return None
    baseline = answers(baseline_path, prompts, config, part(len(prompts)), should_stop)
    if should_stop is not None and should_stop():
        return None
    model, tokenizer = load_reward_model(reward_model_path)
    conversations = [list(p) for p in prompts]
    policy_scores = score(model, conversations, policy, tokenizer=tokenizer)
    baseline_scores = score(model, conversations, baseline, tokenizer=tokenizer)
    return {
        **_summary(policy_scores, baseline_scores),
        "policy_answers": policy,
        "baseline_answers": baseline,
    }
