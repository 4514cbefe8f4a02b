"""Writes that touch several models: submitting judgements, deriving preference pairs."""

import uuid

from django.db import IntegrityError, transaction
from django.db.models import F

from .models import Assignment, Candidate, Item, Judgement


class SubmitError(Exception):
    """The submission cannot be stored; the message says why, for the annotator."""


class LeaseLost(SubmitError):
    pass


def parse_ranking(value, shown_order):
    """Parse "3,1;2" style rankings (groups best first, ';' between ranks, ',' ties)."""
    if isinstance(value, str):
        groups = [[part.strip() for part in group.split(",") if part.strip()]
                  for group in value.split(";") if group.strip()]
    else:
        groups = value
    try:
        ranking = [[int(cid) for cid in group] for group in groups if group]
    except (TypeError, ValueError):
        raise SubmitError("The ranking is not a list of candidate ids.") from None
    flat = [cid for group in ranking for cid in group]
    if len(flat) != len(set(flat)):
        raise SubmitError("A candidate appears twice in the ranking.")
    if sorted(flat) != sorted(shown_order):
        raise SubmitError("Rank every response shown before submitting.")
    if len(ranking) < 2:
        raise SubmitError("A ranking needs at least two ranks.")
    return ranking


def submit_judgement(user, assignment_id, ranking, client_uuid, duration_ms=None, comment=""):
    """Store one judgement; a replay with the same client UUID returns the first one."""
    try:
        client_uuid = uuid.UUID(str(client_uuid))
    except ValueError:
        raise SubmitError("The submission has no valid client id; reload the page.") from None
    existing = Judgement.objects.filter(client_uuid=client_uuid).first()
    if existing is not None:
        if existing.annotator_id != user.pk:
            raise SubmitError("This submission id belongs to someone else.")
        return existing, False
    try:
        with transaction.atomic():
            assignment = (
                Assignment.objects.select_for_update()
                .filter(pk=assignment_id, annotator=user)
                .first()
            )
            if assignment is None:
                raise SubmitError("This item is not assigned to you.")
            if assignment.status == Assignment.Status.SUBMITTED:
                return assignment.judgement, False
            if assignment.status == Assignment.Status.EXPIRED:
                raise LeaseLost(
                    "Your reservation of this item expired and it went back to the queue, "
                    "so this judgement was not saved. Here is your next item."
                )
            parsed = parse_ranking(ranking, assignment.shown_order)
            judgement = Judgement.objects.create(
                assignment=assignment,
                item_id=assignment.item_id,
                annotator=user,
                kind=Judgement.Kind.RANKING,
                ranking=parsed,
                shown_order=assignment.shown_order,
                comment=comment[:5000],
                duration_ms=duration_ms,
                client_uuid=client_uuid,
            )
            assignment.status = Assignment.Status.SUBMITTED
            assignment.save(update_fields=["status"])
            Item.objects.filter(pk=assignment.item_id).update(
                judgement_count=F("judgement_count") + 1
            )
            return judgement, True
    except IntegrityError:
        # A concurrent replay of the same submission won the race; it is stored once.
        existing = Judgement.objects.filter(client_uuid=client_uuid, annotator=user).first()
        if existing is None:
            raise
        return existing, False


def preference_rows(project):
    """Yield TRL conversational preference rows, one per ordered pair of every judgement."""
    judgements = (
        Judgement.objects.filter(item__project=project)
        .select_related("item__prompt")
        .order_by("id")
    )
    texts = {}
    for judgement in judgements.iterator(chunk_size=500):
        prompt = judgement.item.prompt
        pairs = list(judgement.preference_pairs())
        missing = {cid for pair in pairs for cid in pair} - texts.keys()
        if missing:
            texts.update(Candidate.objects.filter(id__in=missing).values_list("id", "text"))
        for chosen, rejected in pairs:
            yield {
                "prompt": prompt.conversation,
                "chosen": [{"role": "assistant", "content": texts[chosen]}],
                "rejected": [{"role": "assistant", "content": texts[rejected]}],
                "id": f"j{judgement.pk}-{chosen}-{rejected}",
                "judgement_id": judgement.pk,
                "prompt_id": str(prompt.external_id or prompt.pk),
            }
