"""Every judgement type through the service layer: what is stored and what it derives."""

import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotate import queue
from annotate.models import Assignment, Candidate, Item, Judgement
from annotate.services import (
    Answer,
    LeaseLost,
    SubmitError,
    preference_rows,
    skip_assignment,
    submit_judgement,
    undo_judgement,
)
from tests import factories

pytestmark = pytest.mark.django_db


def claim(kinds, n_candidates=2, **fields):
    project = factories.project_with_items(n_prompts=3, n_candidates=n_candidates,
                                           judgement_kinds=kinds, **fields)
    user = factories.user(f"u{uuid.uuid4().hex[:6]}", "Annotator")
    return project, user, queue.claim_next(project, user)


def test_it_stores_a_pairwise_choice_with_strength_as_ranking_and_weight():
    project, user, a = claim(["pairwise"])
    first, second = a.shown_order
    judgement, created = submit_judgement(user, a.pk, Answer(pairwise_choice="b",
                                                             pairwise_strength=2), uuid.uuid4())
    assert created and judgement.kinds == ["pairwise"]
    assert judgement.ranking == [[second], [first]] and judgement.pairwise_strength == 2
    assert list(judgement.preference_pairs()) == [(second, first, 2.0)]
    assert next(preference_rows(project))["weight"] == 2.0


@pytest.mark.parametrize("choice", ["tie", "both_bad"])
def test_ties_and_both_bad_yield_no_pairs(choice):
    _, user, a = claim(["pairwise"])
    judgement, _ = submit_judgement(user, a.pk, Answer(pairwise_choice=choice), uuid.uuid4())
    assert judgement.ranking == [sorted(a.shown_order, key=a.shown_order.index)]
    assert list(judgement.preference_pairs()) == []


def test_pairwise_needs_a_choice():
    _, user, a = claim(["pairwise"])
    with pytest.raises(SubmitError, match="Choose A, B"):
        submit_judgement(user, a.pk, Answer(), uuid.uuid4())


def test_items_of_more_than_two_candidates_fall_back_to_ranking():
    project, user, a = claim(["pairwise"], n_candidates=3)
    assert project.kinds_for(3) == ["ranking"]
    judgement, _ = submit_judgement(user, a.pk, Answer(ranking=";".join(map(str, a.shown_order))),
                                    uuid.uuid4())
    assert judgement.kinds == ["ranking"] and len(judgement.ranking) == 3


def test_it_stores_ratings_per_candidate_and_dimension():
    project, user, a = claim(["rating"], rating_dimensions=["helpfulness", "honesty"],
                             rating_scale=7)
    ratings = {str(cid): {"helpfulness": 7, "honesty": 1} for cid in a.shown_order}
    judgement, _ = submit_judgement(user, a.pk, Answer(ratings=ratings), uuid.uuid4())
    assert judgement.ratings == ratings and judgement.ranking == []


@pytest.mark.parametrize(
    ("ratings", "message"),
    [({}, "Rate every response on helpfulness"), ("out-of-range", "Ratings go from 1 to 5")],
)
def test_it_refuses_incomplete_or_out_of_range_ratings(ratings, message):
    _, user, a = claim(["rating"], rating_dimensions=["helpfulness"])
    if ratings == "out-of-range":
        ratings = {str(cid): {"helpfulness": 6} for cid in a.shown_order}
    with pytest.raises(SubmitError, match=message):
        submit_judgement(user, a.pk, Answer(ratings=ratings), uuid.uuid4())
    assert not Judgement.objects.exists()


def test_a_correction_becomes_a_child_candidate_and_an_edited_over_original_pair():
    project, user, a = claim(["ranking", "correction"])
    original = Candidate.objects.get(pk=a.shown_order[0])
    answer = Answer(ranking=";".join(map(str, a.shown_order)), correction_of=original.pk,
                    correction="  A much better, fixed answer.  ")
    judgement, _ = submit_judgement(user, a.pk, answer, uuid.uuid4())
    fixed = judgement.correction
    assert fixed.origin == "correction" and fixed.parent == original
    assert fixed.text == "A much better, fixed answer." and fixed.prompt_id == original.prompt_id
    assert judgement.kinds == ["ranking", "correction"]
    rows = list(preference_rows(project))
    assert any(r["chosen"][0]["content"] == fixed.text
               and r["rejected"][0]["content"] == original.text for r in rows)


def test_an_unchanged_correction_is_not_stored():
    _, user, a = claim(["ranking", "correction"])
    original = Candidate.objects.get(pk=a.shown_order[0])
    answer = Answer(ranking=";".join(map(str, a.shown_order)), correction_of=original.pk,
                    correction=original.text)
    judgement, _ = submit_judgement(user, a.pk, answer, uuid.uuid4())
    assert judgement.correction is None
    assert not Candidate.objects.filter(origin="correction").exists()


def test_a_correction_of_a_candidate_not_shown_is_refused():
    _, user, a = claim(["ranking", "correction"])
    other = Candidate.objects.exclude(pk__in=a.shown_order).first()
    answer = Answer(ranking=";".join(map(str, a.shown_order)), correction_of=other.pk,
                    correction="sneaky")
    with pytest.raises(SubmitError, match="not part of this item"):
        submit_judgement(user, a.pk, answer, uuid.uuid4())


def test_flags_and_comment_are_stored_and_unknown_flags_refused():
    _, user, a = claim(["ranking"])
    ranking = ";".join(map(str, a.shown_order))
    with pytest.raises(SubmitError, match="Unknown flag"):
        submit_judgement(user, a.pk, Answer(ranking=ranking, flags=["evil"]), uuid.uuid4())
    judgement, _ = submit_judgement(
        user, a.pk, Answer(ranking=ranking, flags=["pii", "unsafe", "pii"], comment="has a card"),
        uuid.uuid4(),
    )
    assert judgement.flags == ["pii", "unsafe"] and judgement.comment == "has a card"


def test_a_second_submit_of_the_same_assignment_returns_the_first():
    _, user, a = claim(["ranking"])
    ranking = ";".join(map(str, a.shown_order))
    first, created = submit_judgement(user, a.pk, Answer(ranking=ranking), uuid.uuid4())
    again, created_again = submit_judgement(user, a.pk, Answer(ranking=ranking), uuid.uuid4())
    assert created and not created_again and again == first
    assert Judgement.objects.count() == 1


def test_submit_after_the_lease_was_reclaimed_is_refused_with_a_reason():
    project, user, a = claim(["ranking"])
    Assignment.objects.filter(pk=a.pk).update(leased_until=timezone.now() - timedelta(seconds=1))
    queue.reclaim_expired(project)
    with pytest.raises(LeaseLost, match="expired"):
        submit_judgement(user, a.pk, Answer(ranking=";".join(map(str, a.shown_order))),
                         uuid.uuid4())
    assert not Judgement.objects.exists()


def test_undo_within_the_window_retracts_and_reopens_the_item():
    project, user, a = claim(["ranking"])
    judgement, _ = submit_judgement(user, a.pk, Answer(ranking=";".join(map(str, a.shown_order))),
                                    uuid.uuid4())
    nxt = queue.claim_next(project, user)
    reopened = undo_judgement(user, judgement.pk)
    judgement.refresh_from_db()
    assert judgement.retracted_at is not None and reopened.status == "active"
    assert Item.objects.get(pk=a.item_id).judgement_count == 0
    assert queue.claim_next(project, user).pk == a.pk != nxt.pk
    assert list(preference_rows(project)) == []
    again, created = submit_judgement(user, a.pk, Answer(ranking=";".join(
        map(str, reversed(a.shown_order)))), uuid.uuid4())
    assert created and again.pk != judgement.pk
    assert Judgement.objects.filter(assignment=a, retracted_at__isnull=True).count() == 1


def test_undo_after_the_window_is_refused():
    _, user, a = claim(["ranking"], undo_seconds=10)
    judgement, _ = submit_judgement(user, a.pk, Answer(ranking=";".join(map(str, a.shown_order))),
                                    uuid.uuid4())
    with pytest.raises(SubmitError, match="Too late to undo"):
        undo_judgement(user, judgement.pk, now=judgement.created_at + timedelta(seconds=11))
    judgement.refresh_from_db()
    assert judgement.retracted_at is None


def test_undo_of_someone_elses_judgement_is_refused():
    _, user, a = claim(["ranking"])
    judgement, _ = submit_judgement(user, a.pk, Answer(ranking=";".join(map(str, a.shown_order))),
                                    uuid.uuid4())
    with pytest.raises(SubmitError, match="nothing to undo"):
        undo_judgement(factories.user("mallory", "Annotator"), judgement.pk)


def test_skip_needs_a_reason_and_returns_the_item_to_others():
    project, user, a = claim(["ranking"], overlap=1)
    with pytest.raises(SubmitError, match="why"):
        skip_assignment(user, a.pk, "  ")
    skip_assignment(user, a.pk, "Broken or unreadable item")
    a.refresh_from_db()
    assert a.status == "skipped" and a.skip_reason == "Broken or unreadable item"
    assert Item.objects.get(pk=a.item_id).open_slots == 1
    assert queue.claim_next(project, user).item_id != a.item_id
    other = factories.user("bob", "Annotator")
    assert queue.claim_next(project, other).item_id == a.item_id


def test_the_skip_view_uses_the_chosen_reason(client):
    project, user, a = claim(["ranking"])
    client.force_login(user)
    response = client.post(reverse("annotate-skip", args=[project.slug]),
                           {"assignment": a.pk, "reason": "other", "reason_text": "Not English"},
                           HTTP_HX_REQUEST="true")
    assert "went back to the pool" in response.content.decode()
    a.refresh_from_db()
    assert a.skip_reason == "Not English"


def test_the_submit_view_reads_every_field(client):
    project, user, a = claim(["pairwise", "rating", "correction"],
                             rating_dimensions=["helpfulness"])
    first, second = a.shown_order
    client.force_login(user)
    response = client.post(reverse("annotate-submit", args=[project.slug]), {
        "assignment": a.pk, "client_uuid": str(uuid.uuid4()), "choice": "a", "strength": "1",
        f"rating-{first}-helpfulness": "5", f"rating-{second}-helpfulness": "2",
        "correction_of": str(second), "correction": "Better text", "flags": ["off_topic"],
        "comment": "ok", "duration_ms": "1234",
    }, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    j = Judgement.objects.get()
    assert (j.pairwise_choice, j.pairwise_strength) == ("a", 1)
    assert j.ratings == {str(first): {"helpfulness": 5}, str(second): {"helpfulness": 2}}
    assert j.correction.text == "Better text" and j.correction.parent_id == second
    assert j.flags == ["off_topic"] and j.duration_ms == 1234
    assert "Undo" in response.content.decode()


def test_the_project_form_configures_judgement_types(client, engineer):
    client.force_login(engineer)
    response = client.post(reverse("annotate-project-new"), {
        "name": "Tutor", "slug": "tutor", "judgement_kinds": ["pairwise", "rating"],
        "rating_dimensions": "Helpfulness, factual accuracy", "rating_scale": 7,
        "overlap": 2, "lease_seconds": 600, "undo_seconds": 15, "max_pending": 2,
        "ordering": "sequential",
    })
    assert response.status_code == 302
    from annotate.models import Project

    p = Project.objects.get(slug="tutor")
    assert p.judgement_kinds == ["pairwise", "rating"]
    assert p.rating_dimensions == ["helpfulness", "factual_accuracy"] and p.rating_scale == 7
