"""The annotator's work page: claiming, submitting, idempotency, leases, htmx swaps."""

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotate import queue
from annotate.models import Assignment, Item, Judgement
from annotate.services import SubmitError, submit_judgement
from tests import factories

HTMX = {"HTTP_HX_REQUEST": "true"}


def ranking_of(assignment):
    return ";".join(str(cid) for cid in assignment.shown_order)


def test_it_shows_an_item_with_its_candidates_in_the_shown_order(client, annotator, project):
    client.force_login(annotator)
    response = client.get(reverse("annotate-work", args=[project.slug]))
    assert response.status_code == 200
    assignment = Assignment.objects.get(annotator=annotator)
    html = response.content.decode()
    positions = [html.index(f'data-id="{cid}"') for cid in assignment.shown_order]
    assert positions == sorted(positions)
    assert "<html" in html


def test_it_returns_only_the_fragment_to_htmx(client, annotator, project):
    client.force_login(annotator)
    response = client.get(reverse("annotate-work", args=[project.slug]), **HTMX)
    html = response.content.decode()
    assert 'id="judge-form"' in html
    assert "<html" not in html


def test_it_resumes_the_same_item_on_reload(client, annotator, project):
    client.force_login(annotator)
    url = reverse("annotate-work", args=[project.slug])
    client.get(url)
    client.get(url)
    assert Assignment.objects.filter(annotator=annotator).count() == 1


def test_it_stores_a_submission_and_swaps_in_the_next_item(client, annotator, project):
    client.force_login(annotator)
    client.get(reverse("annotate-work", args=[project.slug]))
    first = Assignment.objects.get(annotator=annotator)
    reversed_order = ";".join(str(c) for c in reversed(first.shown_order))
    response = client.post(
        reverse("annotate-submit", args=[project.slug]),
        {"assignment": first.pk, "ranking": reversed_order, "client_uuid": str(uuid.uuid4()),
         "duration_ms": "4200"},
        **HTMX,
    )
    assert response.status_code == 200
    judgement = Judgement.objects.get()
    assert judgement.ranking == [[c] for c in reversed(first.shown_order)]
    assert judgement.shown_order == first.shown_order
    assert judgement.duration_ms == 4200
    second = Assignment.objects.get(annotator=annotator, status="active")
    assert second.item_id != first.item_id
    assert f'data-item="{second.item_id}"' in response.content.decode()
    assert "<html" not in response.content.decode()


def test_it_redirects_a_plain_form_post(client, annotator, project):
    client.force_login(annotator)
    client.get(reverse("annotate-work", args=[project.slug]))
    a = Assignment.objects.get(annotator=annotator)
    response = client.post(
        reverse("annotate-submit", args=[project.slug]),
        {"assignment": a.pk, "ranking": ranking_of(a), "client_uuid": str(uuid.uuid4())},
    )
    assert response.status_code == 302
    assert Judgement.objects.count() == 1


def test_it_stores_a_replayed_submission_once(client, annotator, project):
    client.force_login(annotator)
    client.get(reverse("annotate-work", args=[project.slug]))
    a = Assignment.objects.get(annotator=annotator)
    data = {"assignment": a.pk, "ranking": ranking_of(a), "client_uuid": str(uuid.uuid4())}
    for _ in range(3):
        assert client.post(reverse("annotate-submit", args=[project.slug]), data,
                           **HTMX).status_code == 200
    assert Judgement.objects.count() == 1
    assert Item.objects.get(pk=a.item_id).judgement_count == 1


def test_it_refuses_an_incomplete_ranking_and_keeps_the_item(client, annotator, project):
    client.force_login(annotator)
    client.get(reverse("annotate-work", args=[project.slug]))
    a = Assignment.objects.get(annotator=annotator)
    response = client.post(
        reverse("annotate-submit", args=[project.slug]),
        {"assignment": a.pk, "ranking": str(a.shown_order[0]), "client_uuid": str(uuid.uuid4())},
        **HTMX,
    )
    # Only the error is swapped in: the form, and whatever was typed in it, stays.
    assert response.content.decode() == "Rank every response shown before submitting."
    assert response["HX-Retarget"] == "#submit-error"
    assert not Judgement.objects.exists()
    Assignment.objects.get(pk=a.pk, status="active")


def test_it_says_so_when_the_lease_was_lost(client, annotator, project):
    client.force_login(annotator)
    client.get(reverse("annotate-work", args=[project.slug]))
    a = Assignment.objects.get(annotator=annotator)
    Assignment.objects.filter(pk=a.pk).update(leased_until=timezone.now() - timedelta(seconds=1))
    assert queue.reclaim_expired(project) == 1
    response = client.post(
        reverse("annotate-submit", args=[project.slug]),
        {"assignment": a.pk, "ranking": ranking_of(a), "client_uuid": str(uuid.uuid4())},
        **HTMX,
    )
    assert "reservation of this item expired" in response.content.decode()
    assert not Judgement.objects.exists()


def test_it_gives_each_item_to_at_most_overlap_annotators(project):
    users = [factories.user(f"a{i}", "Annotator") for i in range(3)]
    claimed = [queue.claim_next(project, u) for u in users]
    # overlap 1: three annotators get three different items.
    assert len({a.item_id for a in claimed}) == 3
    assert all(Item.objects.get(pk=a.item_id).open_slots == 0 for a in claimed)


def test_it_returns_expired_leases_to_the_pool(project):
    one, two = factories.user("o1", "Annotator"), factories.user("o2", "Annotator")
    items = [queue.claim_next(project, one)]
    Assignment.objects.update(leased_until=timezone.now() - timedelta(seconds=5))
    for _ in range(project.items.count()):
        a = queue.claim_next(project, two)
        items.append(a)
        submit_judgement(two, a.pk, ranking_of(a), uuid.uuid4())
    assert items[0].item_id in {a.item_id for a in items[1:]}
    assert Assignment.objects.get(pk=items[0].pk).status == "expired"


def test_it_reports_the_queue_as_done(client, annotator):
    proj = factories.project_with_items(n_prompts=1, n_candidates=2)
    a = queue.claim_next(proj, annotator)
    submit_judgement(annotator, a.pk, ranking_of(a), uuid.uuid4())
    client.force_login(annotator)
    response = client.get(reverse("annotate-work", args=[proj.slug]))
    assert b"Queue complete" in response.content


@pytest.mark.django_db
def test_it_refuses_another_users_assignment(project):
    owner, other = factories.user("own", "Annotator"), factories.user("oth", "Annotator")
    a = queue.claim_next(project, owner)
    with pytest.raises(SubmitError):
        submit_judgement(other, a.pk, ranking_of(a), uuid.uuid4())


def test_it_derives_pairs_from_ties():
    judgement = Judgement(ranking=[[1], [2, 3], [4]])
    pairs = sorted(judgement.preference_pairs())
    assert pairs == [(1, 2, 1.0), (1, 3, 1.0), (1, 4, 1.0), (2, 4, 1.0), (3, 4, 1.0)]


def test_it_prefetches_the_item_after_the_one_on_screen(client, annotator, project):
    client.force_login(annotator)
    client.get(reverse("annotate-work", args=[project.slug]))
    current = Assignment.objects.get(annotator=annotator)
    url = reverse("annotate-prefetch", args=[project.slug])
    response = client.get(f"{url}?current={current.pk}", **HTMX)
    nxt = Assignment.objects.exclude(pk=current.pk).get(annotator=annotator)
    assert f'data-item="{nxt.item_id}"' in response.content.decode()
    # Asking again returns the same reservation; the work page still shows the first item.
    client.get(f"{url}?current={current.pk}", **HTMX)
    assert Assignment.objects.filter(annotator=annotator, status="active").count() == 2
    page = client.get(reverse("annotate-work", args=[project.slug])).content.decode()
    assert f'data-item="{current.item_id}"' in page


def test_it_never_prefetches_an_item_whose_judgement_is_in_flight(client, annotator, project):
    project.max_pending = 3
    project.save()
    client.force_login(annotator)
    first = queue.claim_next(project, annotator)
    second = queue.claim_next(project, annotator, exclude=[first.pk])
    url = reverse("annotate-prefetch", args=[project.slug])
    html = client.get(f"{url}?current={second.pk},{first.pk}", **HTMX).content.decode()
    third = Assignment.objects.exclude(pk__in=[first.pk, second.pk]).get(annotator=annotator)
    assert f'data-item="{third.item_id}"' in html


def test_it_refuses_a_prefetch_without_the_current_item(client, annotator, project):
    client.force_login(annotator)
    url = reverse("annotate-prefetch", args=[project.slug])
    assert client.get(url).status_code == 400
    assert client.get(f"{url}?current=abc").status_code == 400


def test_a_background_submit_gets_only_the_undo_bar(client, annotator, project):
    client.force_login(annotator)
    a = queue.claim_next(project, annotator)
    response = client.post(
        reverse("annotate-submit", args=[project.slug]),
        {"assignment": a.pk, "ranking": ranking_of(a), "client_uuid": str(uuid.uuid4()),
         "only": "undo"},
        **HTMX,
    )
    html = response.content.decode()
    assert 'id="undo-form"' in html and "judge-form" not in html
    assert Judgement.objects.get().assignment_id == a.pk


def test_an_assigned_project_is_only_for_its_annotators(client, annotator, project):
    other = factories.project_with_items(n_prompts=1, slug="open-project")
    member = factories.user("member", "Annotator")
    project.annotators.add(member)
    client.force_login(annotator)
    assert client.get(reverse("annotate-work", args=[project.slug])).status_code == 403
    home = client.get(reverse("home")).content.decode()
    assert other.name in home and project.name not in home
    client.force_login(member)
    assert client.get(reverse("annotate-work", args=[project.slug])).status_code == 200
    assert project.name in client.get(reverse("home")).content.decode()


def test_it_holds_at_most_max_pending_items_per_annotator(client, annotator, project):
    project.max_pending = 1
    project.save()
    first = queue.claim_next(project, annotator)
    assert queue.claim_next(project, annotator, exclude=[first.pk]) is None
    client.force_login(annotator)
    url = reverse("annotate-prefetch", args=[project.slug])
    assert client.get(f"{url}?current={first.pk}", **HTMX).status_code == 204
    assert Assignment.objects.filter(annotator=annotator).count() == 1
