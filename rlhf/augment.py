"""Prompt augmentation: paraphrases of train prompts written by a policy version.

A paraphrase is a new Prompt whose conversation is the original's with the last user turn
reworded (earlier turns kept). It is marked (source "augmented", augmented_from = original,
metadata.augmented) and always in the train split: a database check constraint refuses
anything else, and rlhf.snapshots never holds one out and drops it when its original is held
out, so no held-out prompt leaks into training through its paraphrase.
"""

import logging
import re

from annotate.models import Prompt

from .ml.config import SampleConfig
from .ml.generate import EMPTY_FALLBACK

log = logging.getLogger(__name__)

SOURCE = "augmented"
INSTRUCTION = (
    "Customer message:\n{message}\n\n"
    "Rewrite the customer message above in different words. Keep its meaning, its facts "
    "(names, numbers, order ids) and its tone. Reply with the rewritten message only."
)
# Room for a paraphrase: a little longer than the original, within the sampler's bounds.
MIN_NEW_TOKENS, MAX_NEW_TOKENS = 32, 256
_LABEL = re.compile(r"^(rewritten( customer)? message|paraphrase|rewrite)\s*:\s*", re.IGNORECASE)
# Control characters a small byte-level model can emit (newlines and tabs are kept).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_QUOTES = "\"'“”‘’«»"


def instruction_for(prompt: Prompt) -> list[dict]:
    """The chat prompt asking a policy to reword the prompt's last user message."""
    return [{"role": "user", "content": INSTRUCTION.format(message=prompt.last_user_message)}]


def clean(text: str) -> str:
    """Strip what models wrap a rewrite in (a leading label, surrounding quotes, spaces) and
    control characters."""
    text = _CONTROL.sub("", text or "")
    text = _LABEL.sub("", text.strip())
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1]
    return text.strip()


def normalized(text: str) -> str:
    """Text compared for duplicates: case and whitespace ignored."""
    return " ".join(text.casefold().split())


def with_last_user_turn(conversation: list[dict], text: str) -> list[dict]:
    """A copy of the conversation whose last user turn says text."""
    turns = [dict(turn) for turn in conversation]
    for turn in reversed(turns):
        if turn.get("role") == "user":
            turn["content"] = text
            break
    return turns


def eligible(project, prompt_ids):
    """The given prompts that may be paraphrased: this project's train, non-augmented ones."""
    return list(
        Prompt.objects.filter(
            project=project, pk__in=list(prompt_ids), split=Prompt.Split.TRAIN,
            augmented_from__isnull=True,
        ).order_by("id")
    )


def paraphrase_prompts(project, model_version, prompt_ids, per_prompt=1, seed=0,
                       max_new_tokens=None) -> list[Prompt]:
    """Write up to per_prompt paraphrases of each train prompt with model_version.

    Held-out (eval) prompts and prompts that are themselves paraphrases are skipped. A
    paraphrase that is empty, repeats the original or repeats another paraphrase of it
    (case and spacing ignored) is dropped. Returns the Prompts created.
    """
    from .ml.generate import generate

    originals = [p for p in eligible(project, prompt_ids) if p.last_user_message.strip()]
    if not originals:
        return []
    if max_new_tokens is None:
        longest = max(len(p.last_user_message) for p in originals)
        # About 4 characters a token for English; small tokenizers need more. Half the
        # model's positions at most, so the instruction keeps room.
        max_new_tokens = min(MAX_NEW_TOKENS, max(MIN_NEW_TOKENS, longest // 2),
                             _positions(model_version.source) // 2)
    config = SampleConfig(num_candidates=per_prompt, seed=seed, max_new_tokens=max_new_tokens)
    outputs = generate(model_version.source, [instruction_for(p) for p in originals], config)
    taken = {p.pk: {normalized(p.last_user_message)} for p in originals}
    for paraphrase in Prompt.objects.filter(augmented_from__in=originals):
        taken[paraphrase.augmented_from_id].add(normalized(paraphrase.last_user_message))
    new = []
    for original, texts in zip(originals, outputs, strict=False):
        for index, raw in enumerate(texts):
            text = clean(raw)
            key = normalized(text)
            if not key or text == EMPTY_FALLBACK or key in taken[original.pk]:
                continue
            taken[original.pk].add(key)
            new.append(Prompt(
                project=project,
                conversation=with_last_user_turn(original.conversation, text),
                split=Prompt.Split.TRAIN,
                source=SOURCE,
                augmented_from=original,
                metadata={"augmented": True, "model_version": model_version.pk,
                          "original": original.pk, "seed": seed, "sample": index},
            ))
    created = Prompt.objects.bulk_create(new)  # atomic on its own
    log.info("%s paraphrases of %s prompts of %s written by %s", len(created), len(originals),
             project.slug, model_version)
    return created


def _positions(source) -> int:
    """The model's context length (from its config alone), or a generous default."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(source))
    except (OSError, ValueError):
        return 2 * MAX_NEW_TOKENS
    return getattr(config, "max_position_embeddings", None) or 2 * MAX_NEW_TOKENS


def run_augmentation(project_id, version_id, prompt_ids, per_prompt=1, seed=0):
    """Load the rows and paraphrase (what the rlhf.tasks.augment worker task does)."""
    from annotate.models import Project

    from .models import ModelVersion

    project = Project.objects.get(pk=project_id)
    version = ModelVersion.objects.get(pk=version_id)
    return [p.pk for p in paraphrase_prompts(project, version, prompt_ids, per_prompt, seed)]


def prompts_for_augmentation(project, limit):
    """Ids of train, non-augmented prompts with the fewest paraphrases first."""
    from django.db.models import Count

    return list(
        Prompt.objects.filter(project=project, split=Prompt.Split.TRAIN,
                              augmented_from__isnull=True)
        .annotate(n_paraphrases=Count("paraphrases"))
        .order_by("n_paraphrases", "id")
        .values_list("id", flat=True)[:limit]
    )
