"""Writes that touch several models: submitting judgements, deriving preference pairs."""

import uuid
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .agreement import pairwise_percent_agreement
from .models import (
    FLAGS,
    Adjudication,
    AnnotatorStanding,
    Assignment,
    Candidate,
    Item,
    Judgement,
    ReviewStatus,
    gold_score,
    ranking_pairs,
)


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
            item = assignment.item
            if item.is_gold:
                fields["gold_score"] = gold_score(item.gold_ranking, fields["ranking"])
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
            if item.is_gold:
                record_gold(item.project, user, judgement.gold_score)
            else:
                update_disagreement(assignment.item_id)
                update_review_status(item.project, assignment.item_id)
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


def record_gold(project, user, score, sign=1):
    """Add (or with sign=-1 take back) one gold result; flag and pause below the bar."""
    standing, _ = AnnotatorStanding.objects.get_or_create(project=project, annotator=user)
    AnnotatorStanding.objects.filter(pk=standing.pk).update(
        gold_judged=F("gold_judged") + sign, gold_score_sum=F("gold_score_sum") + sign * score,
        updated_at=timezone.now(),
    )
    standing.refresh_from_db()
    standing.project = project
    below = standing.below_threshold()
    if below and standing.flagged_at is None:
        standing.flagged_at = timezone.now()
        standing.paused = project.gold_pause
    elif not below and standing.flagged_at is not None and not standing.paused:
        standing.flagged_at = None
    standing.save(update_fields=["flagged_at", "paused"])
    return standing


def resume_annotator(project, annotator):
    """Let a paused annotator work again; their gold record starts afresh from now."""
    now = timezone.now()
    return AnnotatorStanding.objects.filter(project=project, annotator=annotator).update(
        paused=False, flagged_at=None, gold_judged=0, gold_score_sum=0.0, resumed_at=now,
        updated_at=now,
    )


def update_review_status(project, item_id):
    """Send a fully judged item whose annotators disagree enough to review (or take it back)."""
    threshold = project.review_threshold
    item = Item.objects.get(pk=item_id)
    if item.review_status == ReviewStatus.RESOLVED:
        return item.review_status
    wanted = (
        threshold is not None
        and item.judgement_count >= max(project.overlap, 2)
        and item.disagreement >= threshold
    )
    status = ReviewStatus.PENDING if wanted else ReviewStatus.NONE
    if status != item.review_status:
        Item.objects.filter(pk=item_id).update(review_status=status)
    return status


def adjudicate(reviewer, item, ranking, comment="", make_gold=False):
    """Record the reviewer's answer for an item; optionally make the item a gold item."""
    shown = list(item.candidates.values_list("id", flat=True))
    ranking = parse_ranking(ranking, shown)
    now = timezone.now()
    with transaction.atomic():
        adjudication, created = Adjudication.objects.select_for_update().get_or_create(
            item=item,
            defaults={"reviewer": reviewer, "ranking": ranking, "comment": comment,
                      "made_gold": make_gold, "created_at": now, "updated_at": now},
        )
        if not created:
            adjudication.reviewer = reviewer
            adjudication.ranking = ranking
            adjudication.comment = comment
            adjudication.made_gold = make_gold or adjudication.made_gold
            adjudication.updated_at = now
            adjudication.save()
        update = {"review_status": ReviewStatus.RESOLVED}
        if make_gold:
            update.update(is_gold=True, gold_ranking=ranking, open_slots=0)
        Item.objects.filter(pk=item.pk).update(**update)
    return adjudication


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
        if judgement.gold_score is not None:
            record_gold(judgement.item.project, user, judgement.gold_score, sign=-1)
        else:
            update_disagreement(judgement.item_id)
            update_review_status(judgement.item.project, judgement.item_id)
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
        Item.objects.filter(pk=assignment.item_id, is_gold=False).update(
            open_slots=F("open_slots") + 1
        )
        return assignment


def preference_rows(project, annotator_weights=False):
    """Yield TRL conversational preference rows, adjudicated answers first.

    An adjudicated item exports the reviewer's answer (source "review") instead of its
    judgements; a gold item exports its gold answer once (source "gold") instead of the
    judgements on it; every other live judgement exports each ordered pair it implies
    (source "judgement", with the raw judgement id); an agent's correction of an ingested
    production reply exports "correction ≻ reply" (source "production"). With
    `annotator_weights` each judgement row also carries "annotator_weight", the judging
    annotator's reliability (gold accuracy, else agreement with the others, clipped to
    [0.1, 1]; see annotate.consensus.annotator_reliability); reviewer, gold and production
    rows weigh 1.
    """
    texts = {}
    reliability = {}
    if annotator_weights:
        from .consensus import annotator_reliability

        reliability = {uid: r["weight"] for uid, r in annotator_reliability(project).items()}

    def text_of(ids):
        missing = set(ids) - texts.keys()
        if missing:
            texts.update(Candidate.objects.filter(id__in=missing).values_list("id", "text"))
        return texts

    def row(prompt, chosen, rejected, row_id, source, weight=1.0, **extra):
        return {
            "prompt": prompt.conversation,
            "chosen": [{"role": "assistant", "content": texts[chosen]}],
            "rejected": [{"role": "assistant", "content": texts[rejected]}],
            "id": row_id,
            "prompt_id": str(prompt.external_id or prompt.pk),
            "weight": weight,
            "source": source,
            **extra,
        }

    adjudications = (
        Adjudication.objects.filter(item__project=project)
        .select_related("item__prompt").order_by("id")
    )
    for adjudication in adjudications.iterator(chunk_size=500):
        pairs = list(adjudication.preference_pairs())
        text_of(cid for pair in pairs for cid in pair)
        for chosen, rejected in pairs:
            yield row(adjudication.item.prompt, chosen, rejected,
                      f"r{adjudication.pk}-{chosen}-{rejected}", "review",
                      judgement_id=None, adjudication_id=adjudication.pk)
    gold_items = (
        Item.objects.filter(project=project, is_gold=True, adjudication__isnull=True)
        .select_related("prompt").order_by("id")
    )
    for item in gold_items.iterator(chunk_size=500):
        pairs = list(ranking_pairs(item.gold_ranking))
        text_of(cid for pair in pairs for cid in pair)
        for chosen, rejected in pairs:
            yield row(item.prompt, chosen, rejected, f"g{item.pk}-{chosen}-{rejected}", "gold",
                      judgement_id=None)
    judgements = (
        Judgement.objects.filter(item__project=project, retracted_at__isnull=True,
                                 item__is_gold=False, item__adjudication__isnull=True)
        .select_related("item__prompt", "correction")
        .order_by("id")
    )
    for judgement in judgements.iterator(chunk_size=500):
        pairs = list(judgement.preference_pairs())
        text_of(cid for pair in pairs for cid in pair[:2])
        for chosen, rejected, weight in pairs:
            extra = {"judgement_id": judgement.pk}
            if annotator_weights:
                extra["annotator_weight"] = reliability.get(judgement.annotator_id, 1.0)
            yield row(judgement.item.prompt, chosen, rejected,
                      f"j{judgement.pk}-{chosen}-{rejected}", "judgement", weight, **extra)
    # A live agent's correction of a production reply: "edited ≻ original", as from a judgement.
    corrections = (
        Candidate.objects.filter(prompt__project=project, origin=Candidate.Origin.CORRECTION,
                                 metadata__production=True, parent__isnull=False)
        .select_related("prompt", "parent").order_by("id")
    )
    for correction in corrections.iterator(chunk_size=500):
        chosen, rejected = correction.pk, correction.parent_id
        texts[chosen], texts[rejected] = correction.text, correction.parent.text
        yield row(correction.prompt, chosen, rejected, f"p{chosen}-{rejected}", "production",
                  judgement_id=None)
