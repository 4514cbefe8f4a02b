"""Sample candidate completions from a policy for chat prompts."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from .config import SampleConfig

ProgressFn = Callable[[int, int], None]
StopFn = Callable[[], Any]

# Returned instead of an empty string when every resample came back empty.
EMPTY_FALLBACK = "…"
# Extra single-sequence samples tried for an empty or duplicate candidate.
RESAMPLE_ATTEMPTS = 3


def _check_prompts(prompts: Sequence[list[dict[str, Any]]]) -> None:
    for index, messages in enumerate(prompts):
        if not isinstance(messages, list) or not messages:
            raise ValueError(f"prompt {index} must be a non-empty list of messages")
        if messages[-1].get("role") != "user":
            raise ValueError(f"prompt {index} must end with a user turn")


class _Sampler:
    """Holds a loaded policy and samples completions for batches of prompts."""

    def __init__(self, model, tokenizer, config: SampleConfig) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        limit = getattr(model.config, "max_position_embeddings", None) or 0
        # Leave room for the completion; keep the end of long prompts (the question and the
        # generation prompt matter more than the oldest turns).
        self.max_prompt = limit - config.max_new_tokens if limit else None
        if self.max_prompt is not None and self.max_prompt < 8:
            raise ValueError(
                f"max_new_tokens={config.max_new_tokens} leaves no room for the prompt in a "
                f"model with {limit} positions"
            )

    def sample(self, prompts: Sequence[list[dict[str, Any]]], per_prompt: int) -> list[list[str]]:
        import torch

        texts = [
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            for messages in prompts
        ]
        # The chat template already adds BOS; letting the tokenizer add it again would double it.
        encoded = self.tokenizer(
            texts,
            add_special_tokens=False,
            padding=True,
            truncation=self.max_prompt is not None,
            max_length=self.max_prompt,
            return_tensors="pt",
        ).to(self.model.device)
        with torch.no_grad():
            output = self.model.generate(
                **encoded,
                do_sample=True,
                temperature=self.config.temperature,
                top_p=self.config.top_p,
                top_k=0,
                max_new_tokens=self.config.max_new_tokens,
                num_return_sequences=per_prompt,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        completions = self.tokenizer.batch_decode(
            output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True
        )
        # A byte-level model can emit a partial UTF-8 sequence, which decodes to U+FFFD.
        stripped = [text.replace("\ufffd", "").strip() for text in completions]
        return [stripped[i : i + per_prompt] for i in range(0, len(stripped), per_prompt)]


def generate(
    model_path: str | os.PathLike[str],
    prompts: Sequence[list[dict[str, Any]]],
    config: SampleConfig | None = None,
    *,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
) -> list[list[str]]:
    """Sample config.num_candidates non-empty, preferably distinct completions per chat prompt."""
    import torch

    from .base_model import load_policy

    config = config or SampleConfig()
    config.validate()
    _check_prompts(prompts)
    if not prompts:
        return []
    model, tokenizer = load_policy(model_path)
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    sampler = _Sampler(model, tokenizer, config)
    # Seeding once per call makes a call reproducible for a given seed, prompt list and batching.
    torch.manual_seed(config.seed)

    per_batch = max(1, config.batch_size // config.num_candidates)
    results: list[list[str]] = []
    for start in range(0, len(prompts), per_batch):
        if should_stop is not None and should_stop():
            break
        batch = list(prompts[start : start + per_batch])
        for messages, candidates in zip(
            batch, sampler.sample(batch, config.num_candidates), strict=True
        ):
            kept: list[str] = []
            for text in candidates:
                kept.append(_usable(sampler, messages, text, kept))
            results.append(kept)
        if on_progress is not None:
            on_progress(len(results), len(prompts))
    return results


def _usable(sampler: _Sampler, messages: list[dict[str, Any]], text: str, taken: list[str]) -> str:
    """Resample a candidate that is empty or repeats an earlier one for the same prompt."""
    # Empty or identical candidates are useless to a labeler comparing answers. A duplicate that
    # survives the retries is kept (the model may simply be confident); an empty one is not.
    duplicate = ""
    for _ in range(RESAMPLE_ATTEMPTS):
        if text and text not in taken:
            return text
        duplicate = duplicate or text
        text = sampler.sample([messages], 1)[0][0]
    return text or duplicate or EMPTY_FALLBACK
