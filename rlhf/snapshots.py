"""Dataset snapshots: training rows derived from raw judgements, filtered, split and frozen.

Every kind of training data comes from the same judgements (never overwritten):
- preference pairs (reward model, DPO): annotate.services.preference_rows;
- SFT targets: annotators' corrections, reviewers' best answers and gold answers;
- KTO rows (an answer marked good or bad): ratings above / below a threshold, thumbs-style
  signals from rankings (the best group good, the worst bad), both-bad pairwise choices,
  corrections (the edit good, the original bad); one label per (prompt, answer) by majority;
- production conversations (annotate.ingestion): an agent's correction is an SFT target and a
  "correction ≻ reply" pair, a thumbs-up reply a desirable KTO row, a thumbs-down one an
  undesirable one (source "production"; kept unless "only reviewed");
- prompts for online RL: every prompt of the project.

Rows are deduplicated, split train / held-out by prompt (a project's evaluation prompts are
always held out, no prompt on both sides), written as one JSONL file named by its sha256,
and recorded as a DatasetSnapshot with the filters that made it. Paraphrases (augmented
prompts, rlhf.augment) are never held out, and their rows are dropped when their original
prompt is held out, so held-out prompts never reach training through a rewording.
"""

import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path

from django.conf import settings

from annotate.ingestion import PRODUCTION
from annotate.models import Adjudication, Candidate, Conversation, Item, Judgement, Prompt
from annotate.services import preference_rows

from .ml.data import prompt_key, split_by_prompt
from .models import DatasetSnapshot

# Sources a reviewer or the gold answer vouches for ("only reviewed" keeps just these).
REVIEWED_SOURCES = ("review", "gold")
# What each training method trains on.
METHOD_KINDS = {
    "reward": DatasetSnapshot.Kind.PREFERENCE,
    "dpo": DatasetSnapshot.Kind.PREFERENCE,
    "grpo": DatasetSnapshot.Kind.PROMPTS,
    "rloo": DatasetSnapshot.Kind.PROMPTS,
    "sft": DatasetSnapshot.Kind.SFT,
    "kto": DatasetSnapshot.Kind.KTO,
}


def _assistant(text):
    return [{"role": "assistant", "content": text}]


class JudgementFilter:
    """Decides, per judgement, whether a run's data filters keep it."""

    def __init__(self, project, config):
        self.min_agreement = getattr(config, "min_agreement", 0.0)
        self.exclude_flagged = getattr(config, "exclude_flagged", False)
        self.only_reviewed = getattr(config, "only_reviewed", False)
        self.min_weight = getattr(config, "min_annotator_weight", 0.0)
        self.weights = {}
        if self.min_weight > 0:
            from annotate.consensus import annotator_reliability

            self.weights = {
                uid: r["weight"] for uid, r in annotator_reliability(project).items()
            }

    def keeps(self, judgement):
        """True if the judgement (with item loaded) passes every filter."""
        if self.only_reviewed:
            return False
        if self.exclude_flagged and judgement.flags:
            return False
        if 1.0 - judgement.item.disagreement < self.min_agreement:
            return False
        return self.weights.get(judgement.annotator_id, 1.0) >= self.min_weight

    def keeps_production(self):
        """True if production signals (agent corrections, thumbs) are kept: no judgement
        stands behind them, so only "only reviewed" drops them."""
        return not self.only_reviewed

    def keeps_ids(self, judgement_ids):
        """The subset of judgement ids that pass (for rows that only carry the id)."""
        keep = set()
        ids = list(judgement_ids)
        for start in range(0, len(ids), 5000):
            chunk = (
                Judgement.objects.filter(pk__in=ids[start : start + 5000])
                .select_related("item")
                .only("id", "flags", "annotator_id", "item__disagreement")
            )
            keep.update(j.pk for j in chunk if self.keeps(j))
        return keep

    def as_dict(self):
        return {
            "min_agreement": self.min_agreement,
            "exclude_flagged": self.exclude_flagged,
            "only_reviewed": self.only_reviewed,
            "min_annotator_weight": self.min_weight,
        }


def _dedupe(rows, key):
    seen = set()
    for row in rows:
        k = key(row)
        if k not in seen:
            seen.add(k)
            yield row


def _text_key(messages):
    return json.dumps(messages, sort_keys=True)


def preference_snapshot_rows(project, keep):
    """Preference pairs that pass the filters, one row per distinct (prompt, chosen, rejected)."""
    rows = list(preference_rows(project))
    judged = {row["judgement_id"] for row in rows if row.get("judgement_id")}
    kept_ids = keep.keeps_ids(judged)
    production = keep.keeps_production()
    rows = [
        row for row in rows
        if row["source"] in REVIEWED_SOURCES or row.get("judgement_id") in kept_ids
        or (production and row["source"] == PRODUCTION)
    ]
    return list(_dedupe(rows, lambda r: (
        _text_key(r["prompt"]), r["chosen"][0]["content"], r["rejected"][0]["content"]
    )))


def _best_groups(items_rankings):
    """Yield (prompt, candidate id, source) for the first group of each ranking."""
    for prompt, ranking, source in items_rankings:
        if ranking:
            for cid in ranking[0]:
                yield prompt, cid, source


def _expert_rankings(project):
    """(prompt, ranking, source) for every adjudicated and gold item."""
    for adjudication in Adjudication.objects.filter(item__project=project).select_related(
        "item__prompt"
    ):
        yield adjudication.item.prompt, adjudication.ranking, "review"
    for item in Item.objects.filter(
        project=project, is_gold=True, adjudication__isnull=True
    ).select_related("prompt"):
        yield item.prompt, item.gold_ranking, "gold"


def _live_judgements(project, keep):
    judgements = (
        Judgement.objects.filter(item__project=project, retracted_at__isnull=True)
        .select_related("item__prompt", "correction")
        .order_by("id")
    )
    for judgement in judgements.iterator(chunk_size=500):
        if keep.keeps(judgement):
            yield judgement


def _production_corrections(project, keep):
    """Agent corrections of ingested production replies, with their prompts."""
    if not keep.keeps_production():
        return Candidate.objects.none()
    return (
        Candidate.objects.filter(prompt__project=project, origin=Candidate.Origin.CORRECTION,
                                 metadata__production=True)
        .select_related("prompt").order_by("id")
    )


def _production_thumbs(project, keep):
    """Yield (prompt, reply candidate id, label) for ingested replies with a thumb."""
    if not keep.keeps_production():
        return
    conversations = (
        Conversation.objects.filter(project=project, prompt__isnull=False)
        .exclude(feedback="").select_related("prompt").order_by("id")
    )
    by_id = {c.pk: c for c in conversations}
    replies = Candidate.objects.filter(
        prompt__project=project, metadata__production=True, parent__isnull=True
    ).exclude(origin=Candidate.Origin.CORRECTION).values_list("id", "metadata")
    for cid, metadata in replies.order_by("id"):
        conversation = by_id.get(metadata.get("conversation_id"))
        if conversation is not None:
            yield conversation.prompt, cid, conversation.feedback == Conversation.Feedback.UP


def _texts(ids):
    return dict(Candidate.objects.filter(pk__in=set(ids)).values_list("id", "text"))


def sft_snapshot_rows(project, keep):
    """SFT targets: corrections, reviewers' best answers and gold answers, deduplicated."""
    picks = list(_best_groups(_expert_rankings(project)))
    for judgement in _live_judgements(project, keep):
        if judgement.correction_id:
            picks.append((judgement.item.prompt, judgement.correction_id, "correction"))
    for correction in _production_corrections(project, keep):
        picks.append((correction.prompt, correction.pk, PRODUCTION))
    texts = _texts(cid for _, cid, _ in picks)
    rows = (
        {
            "prompt": prompt.conversation,
            "completion": _assistant(texts[cid]),
            "prompt_id": str(prompt.external_id or prompt.pk),
            "candidate_id": cid,
            "source": source,
        }
        for prompt, cid, source in picks
    )
    return list(_dedupe(rows, lambda r: (_text_key(r["prompt"]), r["completion"][0]["content"])))


def _kto_votes(project, keep, threshold):
    """Yield (prompt, candidate id, label, source) for every unpaired signal."""
    scale = max(project.rating_scale - 1, 1)
    for prompt, ranking, source in _expert_rankings(project):
        if len(ranking) >= 2:
            yield from ((prompt, cid, True, source) for cid in ranking[0])
            yield from ((prompt, cid, False, source) for cid in ranking[-1])
    for judgement in _live_judgements(project, keep):
        prompt = judgement.item.prompt
        for cid, scores in (judgement.ratings or {}).items():
            if scores:
                value = (sum(scores.values()) / len(scores) - 1) / scale
                yield prompt, int(cid), value >= threshold, "rating"
        if judgement.pairwise_choice == Judgement.Choice.BOTH_BAD:
            yield from ((prompt, cid, False, "pairwise") for cid in judgement.ranking[0])
        elif len(judgement.ranking) >= 2:
            yield from ((prompt, cid, True, "ranking") for cid in judgement.ranking[0])
            yield from ((prompt, cid, False, "ranking") for cid in judgement.ranking[-1])
        if judgement.correction_id:
            yield prompt, judgement.correction_id, True, "correction"
            yield prompt, judgement.correction.parent_id, False, "correction"
    for prompt, cid, label in _production_thumbs(project, keep):
        yield prompt, cid, label, PRODUCTION


def kto_snapshot_rows(project, keep, threshold):
    """KTO rows: one label per (prompt, answer), the majority of its votes (ties dropped)."""
    votes = defaultdict(Counter)
    prompts, sources = {}, {}
    for prompt, cid, label, source in _kto_votes(project, keep, threshold):
        votes[(prompt.pk, cid)][label] += 1
        prompts[prompt.pk] = prompt
        sources.setdefault((prompt.pk, cid), source)
    texts = _texts(cid for _, cid in votes)
    rows = []
    for (prompt_id, cid), counter in votes.items():
        if counter[True] == counter[False]:
            continue
        prompt = prompts[prompt_id]
        rows.append({
            "prompt": prompt.conversation,
            "completion": _assistant(texts[cid]),
            "label": counter[True] > counter[False],
            "prompt_id": str(prompt.external_id or prompt.pk),
            "candidate_id": cid,
            "votes": counter[True] + counter[False],
            "source": sources[(prompt_id, cid)],
        })
    return list(_dedupe(rows, lambda r: (_text_key(r["prompt"]), r["completion"][0]["content"])))


def prompt_snapshot_rows(project):
    """Prompts for online RL: each distinct conversation once."""
    rows = (
        {"prompt": p.conversation, "prompt_id": str(p.external_id or p.pk)}
        for p in Prompt.objects.filter(project=project).order_by("id")
    )
    return list(_dedupe(rows, lambda r: _text_key(r["prompt"])))


def snapshot_rows(project, kind, config):
    """All rows of one kind for a run's config (its data filters and, for KTO, threshold)."""
    keep = JudgementFilter(project, config)
    if kind == DatasetSnapshot.Kind.PREFERENCE:
        return preference_snapshot_rows(project, keep), keep
    if kind == DatasetSnapshot.Kind.SFT:
        return sft_snapshot_rows(project, keep), keep
    if kind == DatasetSnapshot.Kind.KTO:
        return kto_snapshot_rows(project, keep, getattr(config, "rating_threshold", 0.5)), keep
    if kind == DatasetSnapshot.Kind.PROMPTS:
        return prompt_snapshot_rows(project), keep
    raise ValueError(f"Unknown snapshot kind {kind!r}")


def held_out_keys(project):
    """Prompt keys of the project's evaluation prompts: never trained on."""
    conversations = Prompt.objects.filter(project=project, split=Prompt.Split.EVAL).values_list(
        "conversation", flat=True
    )
    return {prompt_key(c) for c in conversations}


def augmented_keys(project):
    """{prompt key of a paraphrase: prompt key of its original} for the project's paraphrases.

    A paraphrase worded exactly like a non-augmented prompt is left out: its rows are that
    prompt's rows, split with it.
    """
    pairs = Prompt.objects.filter(project=project, augmented_from__isnull=False).values_list(
        "conversation", "augmented_from__conversation"
    )
    mapping = {prompt_key(mine): prompt_key(original) for mine, original in pairs}
    if mapping:
        own = Prompt.objects.filter(project=project, augmented_from__isnull=True)
        for conversation in own.values_list("conversation", flat=True).iterator():
            mapping.pop(prompt_key(conversation), None)
    return mapping


def split_rows(rows, eval_fraction, seed, held_out=(), augmented=None):
    """Split rows into (train, held-out) by prompt, keeping paraphrases out of held-out.

    held_out: prompt keys always held out (evaluation prompts). augmented: {paraphrase key:
    original key}. Paraphrases take no part in the draw and go to train, except those whose
    original is held out (drawn or forced): their rows are dropped. Row order is kept.
    """
    augmented = augmented or {}
    held_out = set(held_out)
    keys = [prompt_key(row["prompt"]) for row in rows]
    own = [row for row, key in zip(rows, keys, strict=True) if key not in augmented]
    _, own_held_out = split_by_prompt(own, eval_fraction, seed, held_out=held_out)
    eval_keys = {prompt_key(row["prompt"]) for row in own_held_out} | held_out
    train, evaluation = [], []
    for row, key in zip(rows, keys, strict=True):
        if key in augmented:
            if augmented[key] not in eval_keys:
                train.append(row)
        elif key in eval_keys:
            evaluation.append(row)
        else:
            train.append(row)
    return train, evaluation


def build_snapshot(project, kind, config):
    """Freeze rows of one kind into a hashed JSONL file split by prompt; return (snapshot,
    train rows, held-out rows)."""
    rows, keep = snapshot_rows(project, kind, config)
    train, held_out = split_rows(
        rows, config.eval_fraction, config.seed, held_out=held_out_keys(project),
        augmented=augmented_keys(project),
    )
    lines = [json.dumps({**row, "split": "train"}, sort_keys=True) for row in train]
    lines += [json.dumps({**row, "split": "eval"}, sort_keys=True) for row in held_out]
    payload = ("\n".join(lines) + "\n").encode() if lines else b""
    sha = hashlib.sha256(payload).hexdigest()
    relative = Path("snapshots") / project.slug / f"{kind}-{sha}.jsonl"
    path = Path(settings.MEDIA_ROOT) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(payload)
    filters = {**keep.as_dict(), "eval_fraction": config.eval_fraction, "seed": config.seed}
    if kind == DatasetSnapshot.Kind.KTO:
        filters["rating_threshold"] = config.rating_threshold
    snapshot = DatasetSnapshot.objects.create(
        project=project,
        kind=kind,
        path=str(relative),
        sha256=sha,
        rows=len(rows),
        train_rows=len(train),
        eval_rows=len(held_out),
        filters=filters,
    )
    return snapshot, train, held_out


def snapshot_file(snapshot):
    """Absolute path of a snapshot's JSONL file."""
    return Path(settings.MEDIA_ROOT) / snapshot.path


def load_snapshot(snapshot):
    """(train rows, held-out rows) read back from a snapshot's file, checked against its hash.

    A resumed run trains on exactly the rows its first try saw, whatever arrived since.
    """
    path = snapshot_file(snapshot)
    try:
        payload = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{snapshot}'s file {snapshot.path} is missing") from None
    if hashlib.sha256(payload).hexdigest() != snapshot.sha256:
        raise ValueError(f"{snapshot}'s file {snapshot.path} does not match its sha256")
    train, held_out = [], []
    for line in payload.decode().splitlines():
        row = json.loads(line)
        (train if row.pop("split") == "train" else held_out).append(row)
    return train, held_out
