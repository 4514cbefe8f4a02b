"""Each ordering strategy hands out the item it promises."""

import uuid

import pytest

from annotate import queue
from annotate.models import Item
from annotate.services import submit_judgement
from tests import factories

pytestmark = pytest.mark.django_db


def judge(project, user, item, ranking):
    """Claim exactly `item` for `user` by holding the others, then submit `ranking`."""
    a = queue.claim_next(project, user)
    while a.item_id != item.pk:
        a = queue.claim_next(project, user, exclude=[a.pk])
    submit_judgement(user, a.pk, ranking(a), uuid.uuid4())


def test_sequential_gives_items_in_import_order():
    project = factories.project_with_items(n_prompts=4, ordering="sequential")
    user = factories.user("seq", "Annotator")
    first = queue.claim_next(project, user)
    assert first.item_id == Item.objects.filter(project=project).order_by("id").first().pk


def test_random_follows_each_items_shuffle_key():
    project = factories.project_with_items(n_prompts=6, ordering="random")
    keys = [0.9, 0.1, 0.5, 0.3, 0.7, 0.2]
    for item, key in zip(Item.objects.filter(project=project).order_by("id"), keys, strict=True):
        Item.objects.filter(pk=item.pk).update(shuffle_key=key)
    order = []
    for i in range(6):
        a = queue.claim_next(project, factories.user(f"r{i}", "Annotator"))
        order.append(Item.objects.get(pk=a.item_id).shuffle_key)
    assert order == sorted(keys)


def test_new_items_get_distinct_shuffle_keys():
    project = factories.project_with_items(n_prompts=20)
    keys = list(Item.objects.filter(project=project).values_list("shuffle_key", flat=True))
    assert len(set(keys)) == 20 and all(0 <= k < 1 for k in keys)


def test_breadth_first_prefers_items_with_fewest_assignments():
    project = factories.project_with_items(n_prompts=3, overlap=3, ordering="breadth_first")
    first_user = factories.user("b1", "Annotator")
    first = queue.claim_next(project, first_user)
    second = queue.claim_next(project, factories.user("b2", "Annotator"))
    third = queue.claim_next(project, factories.user("b3", "Annotator"))
    # Every item gets a first annotator before any gets a second.
    assert len({first.item_id, second.item_id, third.item_id}) == 3


def test_disagreement_first_serves_contested_items_first():
    project = factories.project_with_items(n_prompts=3, overlap=3,
                                           ordering="disagreement_first")
    agreed, contested, untouched = Item.objects.filter(project=project).order_by("id")
    forward = lambda a: ";".join(map(str, sorted(a.shown_order)))  # noqa: E731
    backward = lambda a: ";".join(map(str, sorted(a.shown_order, reverse=True)))  # noqa: E731
    u1, u2 = factories.user("d1", "Annotator"), factories.user("d2", "Annotator")
    judge(project, u1, agreed, forward)
    judge(project, u2, agreed, forward)
    judge(project, u1, contested, forward)
    judge(project, u2, contested, backward)
    for user in (u1, u2):  # release the untouched item they held while picking
        for a in user.assignments.filter(status="active"):
            a.status = "expired"
            a.save()
            Item.objects.filter(pk=a.item_id).update(open_slots=3)
    contested.refresh_from_db()
    agreed.refresh_from_db()
    assert contested.disagreement == 1.0 and agreed.disagreement == 0.0
    newcomer = factories.user("d3", "Annotator")
    assert queue.claim_next(project, newcomer).item_id == contested.pk
