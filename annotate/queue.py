"""Hand out items: one short transaction per claim, no counting over judgements."""

import random

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from .models import Assignment, Item

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
                Item.objects.filter(pk=item_id).update(open_slots=F("open_slots") + 1)
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


def claim_next(project, user, now=None, exclude=None):
    """Return an active assignment for the user (resuming one they hold), or None if done.

    `exclude` lists assignments on screen or being sent: prefetching asks for the one after.
    """
    now = now or timezone.now()
    held = current_assignment(project, user, now, exclude=exclude)
    if held is not None:
        return held
    pending = Assignment.objects.filter(
        item__project=project, annotator=user, status=Assignment.Status.ACTIVE,
        leased_until__gt=now,
    ).count()
    if pending >= project.max_pending:
        return None
    reclaim_expired(project, now)
    for _ in range(5):
        try:
            with transaction.atomic():
                candidates = (
                    Item.objects.filter(project=project, open_slots__gt=0)
                    .exclude(assignments__annotator=user)
                    .order_by(*ORDER_BY.get(project.ordering, ("id",)))
                )
                item = _lock(candidates).first()
                if item is None:
                    return None
                taken = Item.objects.filter(pk=item.pk, open_slots__gt=0).update(
                    open_slots=F("open_slots") - 1
                )
                if not taken:
                    continue
                order = list(item.candidates.values_list("id", flat=True))
                random.shuffle(order)
                assignment = Assignment(
                    item=item, annotator=user, shown_order=order, leased_until=now
                )
                assignment.renew(project.lease_seconds)
                assignment.save()
                return assignment
        except IntegrityError:
            # Another request of the same user claimed this item first: try the next one.
            continue
    return None
