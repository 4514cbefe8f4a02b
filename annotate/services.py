"""Writes that touch several models: submitting judgements, deriving preference pairs."""

import uuid
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .agreement import pairwise_percent_agreement
from .models import FLAGS, Assignment, Candidate, Item, Judgement


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


@dataclass
class Answer:
    """What the annotator submitted for one item, before validation against the item."""

    ranking: object = ""
    pairwise_choice: str = ""
    pairwise_strength: int | None = None
    ratings: dict = field(default_factory=dict)
    correction_of: int | None = None
    correction: str = ""
    flags: list = field(default_factory=list)
    comment: str = ""


def _validate(project, assignment, answer):
    """Return the model fields for a judgement, or raise SubmitError saying what is missing."""
    shown = assignment.shown_order
    kinds = project.kinds_for(len(shown))
    # A correction is optional: the kind is recorded only when one is made.
    fields = {"kinds": [k for k in kinds if k != "correction"], "ranking": [], "ratings": {}}
    if "ranking" in kinds:
        fields["ranking"] = parse_ranking(answer.ranking, shown)
    if "pairwise" in kinds:
        choice = answer.pairwise_choice
        if choice not in Judgement.Choice.values:
            raise SubmitError("Choose A, B, tie or both bad.")
        a, b = shown
        fields["pairwise_choice"] = choice
        fields["ranking"] = {"a": [[a], [b]], "b": [[b], [a]]}.get(choice, [[a, b]])
        if choice in ("a", "b"):
            if answer.pairwise_strength not in (None, 1, 2):
                raise SubmitError("Strength must be slightly (1) or much (2) better.")
            fields["pairwise_strength"] = answer.pairwise_strength or 1
    if "rating" in kinds:
        scale = project.rating_scale
        ratings = {}
        for cid in shown:
            given = answer.ratings.get(str(cid), {})
            missing = [d for d in project.rating_dimensions if d not in given]
            if missing:
                raise SubmitError(f"Rate every response on {', '.join(missing)}.")
            scores = {d: int(given[d]) for d in project.rating_dimensions}
            if any(not 1 <= v <= scale for v in scores.values()):
                raise SubmitError(f"Ratings go from 1 to {scale}.")
            ratings[str(cid)] = scores
        fields["ratings"] = ratings
    unknown = set(answer.flags) - FLAGS.keys()
    if unknown:
        raise SubmitError(f"Unknown flag(s): {', '.join(sorted(unknown))}.")
    fields["flags"] = sorted(set(answer.flags))
    fields["comment"] = answer.comment[:5000]
    return fields


def _save_correction(assignment, answer):
    if "correction" not in assignment.item.project.judgement_kinds or not answer.correction_of:
        return None
    if answer.correction_of not in assignment.shown_order:
        raise SubmitError("The corrected response is not part of this item.")
    original = Candidate.objects.get(pk=answer.correction_of)
    text = answer.correction.strip()
    if not text or text == original.text.strip():
        return None
    return Candidate.objects.create(
        prompt_id=original.prompt_id, text=text, origin=Candidate.Origin.CORRECTION,
        parent=original,
    )


def submit_judgement(user, assignment_id, answer, client_uuid, duration_ms=None):
    """Store one judgement; a replay with the same client UUID returns the first one."""
    if not isinstance(answer, Answer):
        answer = Answer(ranking=answer)
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
                .select_related("item__project")
                .filter(pk=assignment_id, annotator=user)
                .first()
            )
            if assignment is None:
                raise SubmitError("This item is not assigned to you.")
            if assignment.status == Assignment.Status.SUBMITTED:
                return assignment.judgements.get(retracted_at__isnull=True), False
            if assignment.status in (Assignment.Status.EXPIRED, Assignment.Status.SKIPPED):
                raise LeaseLost(
                    "Your reservation of this item expired and it went back to the queue, "
                    "so this judgement was not saved. Here is your next item."
                )
            fields = _validate(assignment.item.project, assignment, answer)
            correction = _save_correction(assignment, answer)
            if correction is not None:
                fields["kinds"] = [*fields["kinds"], Judgement.Kind.CORRECTION]
            judgement = Judgement.objects.create(
                assignment=assignment,
                item_id=assignment.item_id,
                annotator=user,
                correction=correction,
                shown_order=assignment.shown_order,
                duration_ms=duration_ms,
                client_uuid=client_uuid,
                **fields,
            )
            assignment.status = Assignment.Status.SUBMITTED
            assignment.save(update_fields=["status"])
            Item.objects.filter(pk=assignment.item_id).update(
                judgement_count=F("judgement_count") + 1
            )
            update_disagreement(assignment.item_id)
            return judgement, True
    except IntegrityError:
        # A concurrent replay of the same submission won the race; it is stored once.
        existing = Judgement.objects.filter(client_uuid=client_uuid, annotator=user).first()
        if existing is None:
            raise
        return existing, False


def update_disagreement(item_id):
    """Recompute how much the item's live judgements disagree (for disagreement-first)."""
    rankings = list(
        Judgement.objects.filter(item_id=item_id, retracted_at__isnull=True)
        .values_list("ranking", flat=True)
    )
    agreement, comparisons = pairwise_percent_agreement([rankings])
    disagreement = 0.0 if agreement is None else 1.0 - agreement
    Item.objects.filter(pk=item_id).update(disagreement=disagreement)
    return disagreement


def undo_judgement(user, judgement_id, now=None):
    """Retract the user's judgement within the undo window and give the item back to them."""
    now = now or timezone.now()
    with transaction.atomic():
        judgement = (
            Judgement.objects.select_for_update()
            .select_related("assignment", "item__project")
            .filter(pk=judgement_id, annotator=user, retracted_at__isnull=True)
            .first()
        )
        if judgement is None:
            raise SubmitError("There is nothing to undo.")
        window = judgement.item.project.undo_seconds
        if (now - judgement.created_at).total_seconds() > window:
            raise SubmitError(f"Too late to undo: submissions are final after {window} s.")
        judgement.retracted_at = now
        judgement.save(update_fields=["retracted_at"])
        assignment = judgement.assignment
        assignment.status = Assignment.Status.ACTIVE
        assignment.renew(judgement.item.project.lease_seconds)
        # Older than any newer claim, so the work page shows this item first again.
        assignment.save(update_fields=["status", "leased_until"])
        Item.objects.filter(pk=judgement.item_id).update(
            judgement_count=F("judgement_count") - 1
        )
        update_disagreement(judgement.item_id)
        return assignment


def skip_assignment(user, assignment_id, reason):
    """Give the item back to the pool for others, recording why."""
    reason = (reason or "").strip()
    if not reason:
        raise SubmitError("Say why you skip this item.")
    with transaction.atomic():
        assignment = (
            Assignment.objects.select_for_update()
            .filter(pk=assignment_id, annotator=user, status=Assignment.Status.ACTIVE)
            .first()
        )
        if assignment is None:
            raise SubmitError("This item is no longer assigned to you.")
        assignment.status = Assignment.Status.SKIPPED
        assignment.skip_reason = reason[:300]
        assignment.save(update_fields=["status", "skip_reason"])
        Item.objects.filter(pk=assignment.item_id).update(open_slots=F("open_slots") + 1)
        return assignment


def preference_rows(project):
    """Yield TRL conversational preference rows, one per ordered pair of every judgement."""
    judgements = (
        Judgement.objects.filter(item__project=project, retracted_at__isnull=True)
        .select_related("item__prompt", "correction")
        .order_by("id")
    )
    texts = {}
    for judgement in judgements.iterator(chunk_size=500):
        prompt = judgement.item.prompt
        pairs = list(judgement.preference_pairs())
        missing = {cid for pair in pairs for cid in pair[:2]} - texts.keys()
        if missing:
            texts.update(Candidate.objects.filter(id__in=missing).values_list("id", "text"))
        for chosen, rejected, weight in pairs:
            yield {
                "prompt": prompt.conversation,
                "chosen": [{"role": "assistant", "content": texts[chosen]}],
                "rejected": [{"role": "assistant", "content": texts[rejected]}],
                "id": f"j{judgement.pk}-{chosen}-{rejected}",
                "judgement_id": judgement.pk,
                "prompt_id": str(prompt.external_id or prompt.pk),
                "weight": weight,
            }
