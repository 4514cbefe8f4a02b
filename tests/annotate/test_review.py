"""Disputed items go to review; a reviewer's adjudicated answer exports in their place."""

import uuid

import pytest
from django.urls import reverse

from annotate import queue
from annotate.models import Adjudication, Item, Judgement
from annotate.services import preference_rows, submit_judgement, undo_judgement
from tests import factories

pytestmark = pytest.mark.django_db


def judge_pair(project, forward=(True, True)):
    """Two annotators judge the project's only item; True ranks ids ascending."""
    judgements = []
    for i, fwd in enumerate(forward):
        user = factories.user(f"a{i}-{uuid.uuid4().hex[:6]}", "Annotator")
        a = queue.claim_next(project, user)
        ranking = ";".join(map(str, sorted(a.shown_order, reverse=not fwd)))
        judgements.append(submit_judgement(user, a.pk, ranking, uuid.uuid4())[0])
    return judgements


def one_item_project(**fields):
    fields = {"overlap": 2, "review_threshold": 0.5, **fields}
    return factories.project_with_items(n_prompts=1, n_candidates=2, **fields)


def status(project):
    return Item.objects.get(project=project).review_status


def test_a_fully_judged_item_with_disagreement_goes_to_review():
    project = one_item_project()
    judge_pair(project, (True, False))
    assert status(project) == "pending"


def test_agreement_or_an_unfinished_item_stays_out_of_review():
    agreed = one_item_project()
    judge_pair(agreed, (True, True))
    assert status(agreed) == ""
    unfinished = one_item_project(overlap=3)
    judge_pair(unfinished, (True, False))
    assert status(unfinished) == ""


def test_no_review_when_the_project_turns_it_off():
    project = one_item_project(review_threshold=None)
    judge_pair(project, (True, False))
    assert status(project) == ""


def test_undo_takes_an_item_back_out_of_review():
    project = one_item_project()
    _, second = judge_pair(project, (True, False))
    undo_judgement(second.annotator, second.pk)
    assert status(project) == ""


def test_the_queue_lists_pending_items_for_reviewers_and_managers(client):
    project = one_item_project()
    judge_pair(project, (True, False))
    item = Item.objects.get(project=project)
    for role in ("Reviewer", "Manager"):
        client.force_login(factories.user(f"q-{role}", role))
        page = client.get(reverse("annotate-review", args=[project.slug])).content.decode()
        assert f"Item {item.pk}</a>" in page
        assert 'data-testid="pending-count">1<' in page


def test_the_item_page_shows_every_judgement(client):
    project = one_item_project()
    first, second = judge_pair(project, (True, False))
    client.force_login(factories.user("rev", "Reviewer"))
    item = Item.objects.get(project=project)
    page = client.get(reverse("annotate-review-item", args=[project.slug, item.pk]))
    html = page.content.decode()
    assert first.annotator.username in html and second.annotator.username in html
    assert "<strong>A &gt; B</strong>" in html and "<strong>B &gt; A</strong>" in html
    assert 'name="rank_' in html


def test_a_manager_sees_the_judgements_but_cannot_adjudicate(client):
    project = one_item_project()
    judge_pair(project, (True, False))
    item = Item.objects.get(project=project)
    client.force_login(factories.user("mgr", "Manager"))
    url = reverse("annotate-review-item", args=[project.slug, item.pk])
    assert 'name="rank_' not in client.get(url).content.decode()
    ids = sorted(item.candidates.values_list("id", flat=True))
    assert client.post(url, {f"rank_{ids[0]}": 1, f"rank_{ids[1]}": 2}).status_code == 403
    assert not Adjudication.objects.exists()


def test_a_reviewer_records_the_answer_and_it_exports_first(client):
    project = one_item_project()
    judge_pair(project, (True, False))
    other = factories.project_with_items(n_prompts=1, n_candidates=2, overlap=1)
    item = Item.objects.get(project=project)
    low, high = sorted(item.candidates.values_list("id", flat=True))
    reviewer = factories.user("rev", "Reviewer")
    client.force_login(reviewer)
    url = reverse("annotate-review-item", args=[project.slug, item.pk])
    response = client.post(url, {f"rank_{low}": 2, f"rank_{high}": 1, "comment": "B cites policy"})
    assert response.status_code == 302
    assert response["Location"] == reverse("annotate-review", args=[project.slug])
    item.refresh_from_db()
    assert item.review_status == "resolved"
    adjudication = item.adjudication
    assert (adjudication.reviewer, adjudication.ranking, adjudication.comment) == (
        reviewer, [[high], [low]], "B cites policy"
    )
    rows = list(preference_rows(project))
    assert [r["source"] for r in rows] == ["review"]
    assert rows[0]["adjudication_id"] == adjudication.pk
    assert rows[0]["chosen"][0]["content"] == item.candidates.get(pk=high).text
    # Another project's export is untouched by this adjudication.
    assert all(r["source"] == "judgement" for r in preference_rows(other))


def test_equal_ranks_record_a_tie_and_missing_ranks_are_refused(client):
    project = one_item_project()
    judge_pair(project, (True, False))
    item = Item.objects.get(project=project)
    low, high = sorted(item.candidates.values_list("id", flat=True))
    client.force_login(factories.user("rev", "Reviewer"))
    url = reverse("annotate-review-item", args=[project.slug, item.pk])
    missing = client.post(url, {f"rank_{low}": 1})
    assert missing.status_code == 422 and "Give every response a rank" in missing.content.decode()
    assert not Adjudication.objects.exists()
    tie = client.post(url, {f"rank_{low}": 1, f"rank_{high}": 1})
    # A tie of every response is no answer: the same rule as annotators' rankings.
    assert tie.status_code == 422 and "at least two ranks" in tie.content.decode()
    assert item.judgements.count() == 2


def test_an_adjudicated_answer_can_become_a_gold_item(client):
    project = one_item_project()
    judge_pair(project, (True, False))
    item = Item.objects.get(project=project)
    low, high = sorted(item.candidates.values_list("id", flat=True))
    client.force_login(factories.user("rev", "Reviewer"))
    url = reverse("annotate-review-item", args=[project.slug, item.pk])
    client.post(url, {f"rank_{low}": 1, f"rank_{high}": 2, "make_gold": "on"})
    item.refresh_from_db()
    assert item.is_gold and item.gold_ranking == [[low], [high]] and item.open_slots == 0
    assert item.adjudication.made_gold
    # Exported once, as the review (not again as gold).
    assert [r["source"] for r in preference_rows(project)] == ["review"]


def test_the_next_pending_item_opens_after_saving(client):
    project = factories.project_with_items(n_prompts=2, n_candidates=2, overlap=2,
                                           review_threshold=0.5)
    users = [factories.user(f"n{i}", "Annotator") for i in range(2)]
    for fwd, user in zip((True, False), users, strict=True):
        for _ in range(2):
            a = queue.claim_next(project, user)
            ranking = ";".join(map(str, sorted(a.shown_order, reverse=not fwd)))
            submit_judgement(user, a.pk, ranking, uuid.uuid4())
    first, second = Item.objects.filter(project=project).order_by("id")
    assert first.review_status == second.review_status == "pending"
    client.force_login(factories.user("rev", "Reviewer"))
    ids = sorted(first.candidates.values_list("id", flat=True))
    response = client.post(reverse("annotate-review-item", args=[project.slug, first.pk]),
                           {f"rank_{ids[0]}": 1, f"rank_{ids[1]}": 2})
    assert response["Location"] == reverse("annotate-review-item",
                                           args=[project.slug, second.pk])


def test_an_item_of_another_project_is_not_found(client):
    project = one_item_project()
    other = one_item_project()
    item = Item.objects.get(project=other)
    client.force_login(factories.user("rev", "Reviewer"))
    url = reverse("annotate-review-item", args=[project.slug, item.pk])
    assert client.get(url).status_code == 404


def test_the_export_can_carry_each_annotators_reliability_weight(client):
    project = factories.project_with_items(n_prompts=4, n_candidates=2, overlap=3,
                                           review_threshold=None)
    users = [factories.user(f"w{i}", "Annotator") for i in range(3)]
    for user, fwd in zip(users, (True, True, False), strict=True):
        while (a := queue.claim_next(project, user)) is not None:
            ranking = ";".join(map(str, sorted(a.shown_order, reverse=not fwd)))
            submit_judgement(user, a.pk, ranking, uuid.uuid4())
    rows = list(preference_rows(project, annotator_weights=True))
    weights = {}
    for row in rows:
        name = Judgement.objects.get(pk=row["judgement_id"]).annotator.username
        weights.setdefault(name, set()).add(row["annotator_weight"])
    # w0 and w1 always agree with the others' majority; w2 never does: the floor.
    assert weights == {"w0": {1.0}, "w1": {1.0}, "w2": {0.1}}
    assert "annotator_weight" not in next(iter(preference_rows(project)))
    client.force_login(factories.user("eng", "Engineer"))
    body = b"".join(client.get(
        reverse("annotate-export", args=[project.slug]) + "?annotator_weights=1"
    ).streaming_content)
    assert b'"annotator_weight": 0.1' in body
