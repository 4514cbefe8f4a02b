"""Ingest production conversations: scrub PII, store once per external id, route to training data.

Each conversation becomes a Conversation row (scrubbed text, PII counts only), a Prompt (source
"production") and a Candidate for the deployed model's reply; an agent's correction becomes a
correction Candidate whose parent is that reply. Thumbs-down or corrected conversations go to
annotation: with a current model, a generation job adds fresh candidates and the runner builds
the item from them plus the production candidates; without one, the item is made at once.

Thumbs feed KTO rows and corrections SFT targets and preference pairs (rlhf.snapshots and
annotate.services.preference_rows read them from the production candidates).

Nothing here logs or echoes the text it is given: error messages name rows by index and
external id only.
"""

import hashlib
from collections import Counter

from django.db import IntegrityError, transaction
from django.db.models import Q

from .importing import ROLES, create_item
from .models import Candidate, Conversation, Prompt
from .pii import scrub_with_counts

THUMBS = ("up", "down")
FIELDS = {"external_id", "messages", "reply", "model_version", "feedback", "customer"}
FEEDBACK_FIELDS = {"thumb", "correction", "comment"}
MAX_EXTERNAL_ID = 200
PROMPT_PREFIX = "conv:"
# Marks a production reply and its agent correction (the runner keeps them in new items).
PRODUCTION = "production"


class InvalidConversation(ValueError):
    """A conversation of the batch is invalid (nothing was stored); `index` says which."""

    def __init__(self, index, external_id, reason):
        self.index, self.reason = index, reason
        super().__init__(f"{_where(index, external_id)}: {reason}. Nothing was stored.")


def prompt_external_id(external_id):
    """The Prompt.external_id for a conversation (fits the 200-character column)."""
    value = PROMPT_PREFIX + external_id
    if len(value) <= MAX_EXTERNAL_ID:
        return value
    digest = hashlib.sha256(external_id.encode()).hexdigest()[:16]
    return f"{PROMPT_PREFIX}{external_id[:MAX_EXTERNAL_ID - len(PROMPT_PREFIX) - 17]}~{digest}"


def _where(index, external_id):
    if isinstance(external_id, str) and 1 <= len(external_id) <= MAX_EXTERNAL_ID:
        return f"conversation {index} (external_id {external_id!r})"
    return f"conversation {index}"


def _optional_text(value, name):
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null")
    return value


def _refuse_unknown(obj, known, prefix):
    unknown = set(obj) - known
    if unknown:
        raise ValueError(f"{prefix}unknown field(s): {', '.join(sorted(map(str, unknown)))}")


def _clean(row):
    """Return the conversation's fields checked and normalised (texts still raw)."""
    if not isinstance(row, dict):
        raise ValueError("must be an object")
    _refuse_unknown(row, FIELDS, "")
    external_id = row.get("external_id")
    if not isinstance(external_id, str) or not external_id.strip():
        raise ValueError("external_id must be a non-empty string")
    if len(external_id) > MAX_EXTERNAL_ID:
        raise ValueError(f"external_id is longer than {MAX_EXTERNAL_ID} characters")
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {role, content}")
    turns = []
    for n, turn in enumerate(messages):
        if not isinstance(turn, dict) or set(turn) - {"role", "content"}:
            raise ValueError(f"message {n} must be an object with role and content only")
        if turn.get("role") not in ROLES:
            raise ValueError(f"message {n}: role must be one of {', '.join(ROLES)}")
        if not isinstance(turn.get("content"), str):
            raise ValueError(f"message {n}: content must be a string")
        turns.append({"role": turn["role"], "content": turn["content"]})
    if turns[-1]["role"] != "user":
        raise ValueError("the last message must have role 'user' (the reply answers it)")
    reply = row.get("reply")
    if not isinstance(reply, str) or not reply.strip():
        raise ValueError("reply must be a non-empty string")
    model_version = row.get("model_version")
    if model_version is not None and not isinstance(model_version, str | int):
        raise ValueError("model_version must be a string or null")
    model_version = "" if model_version is None else str(model_version).strip()
    if len(model_version) > 300:
        raise ValueError("model_version is longer than 300 characters")
    feedback = row.get("feedback") or {}
    if not isinstance(feedback, dict):
        raise ValueError("feedback must be an object or null")
    _refuse_unknown(feedback, FEEDBACK_FIELDS, "feedback has ")
    thumb = feedback.get("thumb")
    if thumb not in (None, *THUMBS):
        raise ValueError("feedback.thumb must be 'up', 'down' or null")
    customer = row.get("customer") or {}
    if not isinstance(customer, dict) or not all(
        isinstance(k, str) and isinstance(v, str | None) for k, v in customer.items()
    ):
        raise ValueError("customer must be an object of strings or null")
    return {
        "external_id": external_id,
        "messages": turns,
        "reply": reply,
        "model_version": model_version,
        "thumb": thumb or "",
        "correction": _optional_text(feedback.get("correction"), "feedback.correction"),
        "comment": _optional_text(feedback.get("comment"), "feedback.comment"),
        "names": [v for v in customer.values() if v],
    }


def validate(conversations):
    """Return the conversations checked; raise InvalidConversation naming the first bad one."""
    if not isinstance(conversations, list | tuple):
        raise ValueError("conversations must be a list")
    cleaned = []
    for index, row in enumerate(conversations):
        try:
            cleaned.append(_clean(row))
        except ValueError as exc:
            external_id = row.get("external_id") if isinstance(row, dict) else None
            raise InvalidConversation(index, external_id, str(exc).rstrip(".")) from None
    return cleaned


def _scrub(row):
    """Replace every text by its scrubbed version; keep only the counts of what was found."""
    counts = Counter()
    names = row.pop("names")

    def clean(text):
        scrubbed, found = scrub_with_counts(text, names=names)
        counts.update(found)
        return scrubbed

    row["messages"] = [{"role": t["role"], "content": clean(t["content"])}
                       for t in row["messages"]]
    row["reply"] = clean(row["reply"])
    row["correction"] = clean(row["correction"]).strip()
    row["comment"] = clean(row["comment"])
    row["pii_counts"] = dict(sorted(counts.items()))
    return row


def _model_versions(project, refs):
    """{reference: ModelVersion} for the references that name (or number) a version of the
    project or a shared one; the newest wins when names repeat."""
    from rlhf.models import ModelVersion

    if not refs:
        return {}
    ids = [int(r) for r in refs if r.isdigit()]
    versions = ModelVersion.objects.filter(
        Q(project=project) | Q(project__isnull=True), Q(name__in=refs) | Q(pk__in=ids)
    ).order_by("created_at", "id")
    found = {}
    for version in versions:  # oldest first: the newest of a repeated name overwrites
        found[version.name] = version
    for version in versions:  # an exact id wins over a name that happens to be digits
        found[str(version.pk)] = version
    return found


def _store(project, row, versions, user):
    """Create one conversation with its prompt and candidates; return (conversation, route).
    `user` is the authenticated sender or None."""
    version = versions.get(row["model_version"])
    conversation = Conversation.objects.create(
        project=project,
        external_id=row["external_id"],
        messages=row["messages"],
        reply=row["reply"],
        model_name=row["model_version"],
        model_version=version,
        feedback=row["thumb"],
        correction=row["correction"],
        comment=row["comment"],
        pii_counts=row["pii_counts"],
        received_by=user,
    )
    prompt, _ = Prompt.objects.get_or_create(
        project=project,
        external_id=prompt_external_id(row["external_id"]),
        defaults={"conversation": row["messages"], "source": PRODUCTION,
                  "split": Prompt.Split.TRAIN,
                  "metadata": {"conversation_id": conversation.pk,
                               "model_name": row["model_version"]}},
    )
    marker = {PRODUCTION: True, "conversation_id": conversation.pk}
    production = Candidate.objects.create(
        prompt=prompt, text=row["reply"], origin=Candidate.Origin.MODEL, model_version=version,
        metadata=marker,
    )
    candidates = [production]
    if row["correction"] and row["correction"] != row["reply"].strip():
        candidates.append(Candidate.objects.create(
            prompt=prompt, text=row["correction"], origin=Candidate.Origin.CORRECTION,
            parent=production, metadata=marker,
        ))
    conversation.prompt = prompt
    to_annotate = row["thumb"] == "down" or len(candidates) > 1
    if to_annotate and project.current_model_id is None:
        conversation.item = create_item(project, prompt, candidates)
    conversation.save(update_fields=["prompt", "item"])
    return conversation, to_annotate


def _timeline(project, new, duplicates, items, job, user):
    """Put the batch on the project's loop timeline: counts only, never text.
    `new` are the rows created now."""
    from rlhf.loop import event

    created = len(new)
    pii = Counter()
    for row in new:
        pii.update(row["pii_counts"])
    thumbs = Counter(row["thumb"] or "none" for row in new)
    found = ", ".join(f"{n} {kind}" for kind, n in sorted(pii.items())) or "none"
    event(project, "ingested",
          f"{created} production conversations ingested ({duplicates} duplicates): "
          f"{items} to annotate" + (f" (generation job {job.pk})" if job else "")
          + f"; PII replaced: {found}",
          user=user, created=created, duplicates=duplicates, items=items, pii=dict(pii),
          feedback=dict(thumbs), generation=job.pk if job else None)


def ingest(project, conversations, user=None):
    """Store production conversations once each, scrubbed, and route them to training data.

    Returns {"created", "duplicates", "items", "ids"} (ids: the external ids created now;
    items: conversations sent to annotation, made now or by the generation job, whose id is
    "generation_job" when one was launched). Raises ValueError naming the row, storing
    nothing, when any conversation is invalid.
    """
    rows = [_scrub(row) for row in validate(conversations)]
    refs = {row["model_version"] for row in rows if row["model_version"]}
    versions = _model_versions(project, refs)
    user = user if user is not None and user.is_authenticated else None
    new, duplicates, items, generate = [], 0, 0, []
    with transaction.atomic():
        stored = set(
            Conversation.objects.filter(
                project=project, external_id__in=[r["external_id"] for r in rows]
            ).values_list("external_id", flat=True)
        )
        for row in rows:
            if row["external_id"] in stored:
                duplicates += 1
                continue
            try:
                # A savepoint: a concurrent post of the same id that committed first makes
                # this insert fail on the unique constraint; it then counts as a duplicate.
                with transaction.atomic():
                    conversation, to_annotate = _store(project, row, versions, user)
            except IntegrityError:
                if not Conversation.objects.filter(
                    project=project, external_id=row["external_id"]
                ).exists():
                    raise
                duplicates += 1
                stored.add(row["external_id"])
                continue
            stored.add(row["external_id"])
            new.append(row)
            if to_annotate:
                items += 1
                if conversation.item_id is None:
                    generate.append(conversation.prompt_id)
        job = None
        if generate:
            from rlhf.ml.config import SampleConfig
            from rlhf.services import launch_generation

            job = launch_generation(project, project.current_model, SampleConfig(), generate,
                                    user=user)
        if new:
            _timeline(project, new, duplicates, items, job, user)
    ids = [row["external_id"] for row in new]
    result = {"created": len(ids), "duplicates": duplicates, "items": items, "ids": ids}
    if job is not None:
        result["generation_job"] = job.pk
    return result
