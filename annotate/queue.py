"""Hand out items: one short transaction per claim, no counting over judgements."""

import random

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from .models import AnnotatorStanding, Assignment, Item

# ORDER BY per project ordering; each matches a partial index over open items.
ORDER_BY = {
    "sequential": ("id",),
    "random": ("shuffle_key", "id"),
    "breadth_first": ("-open_slots", "id"),
    "disagreement_first": ("-disagreement", "id"),
    "active_learning": ("rm_margin", "id"),
}


def reclaim_expired(project=None, now=None):
    """Expire active assignments whose lease ran out and give their slots back to the pool."""
    now = now or timezone.now()
    qs = Assignment.objects.filter(status=Assignment.Status.ACTIVE, leased_until__lte=now)
    if project is not None:
        qs = qs.filter(item__project=project)
    reclaimed = 0
    with transaction.atomic():
        expired = list(_lock(qs.order_by("id")).values_list("id", "item_id")[:500])
        for assignment_id, item_id in expired:
            changed = Assignment.objects.filter(
                pk=assignment_id, status=Assignment.Status.ACTIVE
            ).update(status=Assignment.Status.EXPIRED)
            if changed:
                # Gold items are shown to everyone and never fill up: no slot to give back.
                Item.objects.filter(pk=item_id, is_gold=False).update(
                    open_slots=F("open_slots") + 1
                )
                reclaimed += 1
    return reclaimed


def _lock(qs):
    if connection.features.has_select_for_update_skip_locked:
        return qs.select_for_update(skip_locked=True, of=("self",))
    return qs


def current_assignment(project, user, now=None, exclude=None):
    """Return the user's oldest unexpired active assignment in this project, if any."""
    now = now or timezone.now()
    held = Assignment.objects.filter(
        item__project=project,
        annotator=user,
        status=Assignment.Status.ACTIVE,
        leased_until__gt=now,
    )
    if exclude:
        held = held.exclude(pk__in=exclude)
    return held.order_by("created_at", "id").first()


def is_paused(project, user):
    """Return whether low gold accuracy has paused this annotator in the project."""
    if not project.gold_pause:
        return False
    return AnnotatorStanding.objects.filter(project=project, annotator=user, paused=True).exists()


def claim_next(project, user, now=None, exclude=None, rng=random):
    """Return an active assignment for the user (resuming one they hold), or None if done.

    `exclude` lists assignments on screen or being sent: prefetching asks for the one after.
    A paused annotator gets nothing new. With the project's gold rate a claim hands out a
    gold item the user has not seen yet, the same way as any other item.
    """
    now = now or timezone.now()
    # One query for what the user holds: the oldest one not excluded is resumed, and all of
    # them count against max_pending.
    active = list(
        Assignment.objects.filter(
            item__project=project, annotator=user, status=Assignment.Status.ACTIVE,
            leased_until__gt=now,
        ).order_by("created_at", "id")
    )
    excluded = set(exclude or ())
    for held in active:
        if held.pk not in excluded:
            return held
    if len(active) >= project.max_pending or is_paused(project, user):
        return None
    assignment = None
    if project.gold_rate and rng.random() < project.gold_rate:
        assignment = _claim_gold(project, user, now, rng)
    if assignment is None:
        assignment = _claim(project, user, now)
    # The beat task gives expired leases back every minute; here only when the queue looks
    # empty, so a claim is not one more transaction.
    if assignment is None and reclaim_expired(project, now):
        assignment = _claim(project, user, now)
    return assignment


def _assign(project, item, user, now):
    shown = list(item.candidates.values_list("id", flat=True))
    random.shuffle(shown)
    assignment = Assignment(item=item, annotator=user, shown_order=shown, leased_until=now)
    assignment.renew(project.lease_seconds)
    assignment.save()
    return assignment


def _claim(project, user, now):
    order = ORDER_BY.get(project.ordering, ("id",))
    for _ in range(5):
        try:
            with transaction.atomic():
                # A range, not "= project": with an equality PostgreSQL drops project_id from
                # the ORDER BY, and then may walk the primary key past every done item and
                # other projects' items instead of the partial index of open items
                # (bench/README.md).
                candidates = (
                    Item.objects.filter(project__gte=project.pk, project__lte=project.pk,
                                        open_slots__gt=0)
                    .exclude(assignments__annotator=user)
                    .order_by("project_id", *order)
                )
                item = _lock(candidates).first()
                if item is None:
                    return None
                taken = Item.objects.filter(pk=item.pk, open_slots__gt=0).update(
                    open_slots=F("open_slots") - 1
                )
                if not taken:
                    continue
                return _assign(project, item, user, now)
        except IntegrityError:
            # Another request of the same user claimed this item first: try the next one.
            continue
    return None


def _claim_gold(project, user, now, rng):
    """Hand out a random gold item the user has not judged; gold items never fill up."""
    unseen = Item.objects.filter(project=project, is_gold=True).exclude(
        assignments__annotator=user
    )
    start = rng.random()
    item = (
        unseen.filter(shuffle_key__gte=start).order_by("shuffle_key").first()
        or unseen.order_by("shuffle_key").first()
    )
    if item is None:
        return None
    try:
        with transaction.atomic():
            return _assign(project, item, user, now)
    except IntegrityError:
        return None
