"""Gold items: import, mixing rate, accuracy, flagging and pausing, and what managers see."""

import itertools
import json
import random
import uuid

import pytest
from django.urls import reverse

from annotate import queue
from annotate.importing import ImportRejected, create_item, import_file
from annotate.models import AnnotatorStanding, Assignment, Candidate, Item, gold_score
from annotate.services import (
    preference_rows,
    skip_assignment,
    submit_judgement,
    undo_judgement,
)
from tests import factories

pytestmark = pytest.mark.django_db


_gold_ids = itertools.count()


class Always:
    """A random source that always rolls `value` (0 = always gold, 0.99 = never)."""

    def __init__(self, value):
        self.value = value

    def random(self):
        return self.value


def add_gold(project, n, n_candidates=2):
    """Add n gold items whose answer is the candidates in creation order."""
    items = []
    for i in range(n):
        p = factories.prompt(project, f"Gold question {i}?", f"gold-{next(_gold_ids)}")
        cands = [Candidate.objects.create(prompt=p, text=f"Gold answer {j} of {i}.")
                 for j in range(n_candidates)]
        items.append(create_item(project, p, cands, gold_ranking=[[c.pk] for c in cands]))
    return items


def best_first(assignment):
    """The gold answer (ids ascending = creation order), whatever the shown order."""
    return ";".join(map(str, sorted(assignment.shown_order)))


def worst_first(assignment):
    return ";".join(map(str, sorted(assignment.shown_order, reverse=True)))


def judge(user, assignment, ranking):
    return submit_judgement(user, assignment.pk, ranking(assignment), uuid.uuid4())[0]


# --- import ---------------------------------------------------------------------------------

def rows_file(*rows):
    return "\n".join(json.dumps(r) for r in rows).encode()


def test_it_imports_gold_answers_as_gold_items_with_no_slots():
    project = factories.project(overlap=3)
    result = import_file(project, "g.jsonl", rows_file(
        {"prompt": "Refund?", "candidates": ["No.", "Yes, within 30 days.", "Maybe."],
         "gold": [1, [0, 2]]},
        {"prompt": "Where is it?", "candidates": ["Here.", "There."]},
    ))
    assert (result.items, result.gold) == (2, 1)
    gold = Item.objects.get(project=project, is_gold=True)
    texts = dict(Candidate.objects.values_list("id", "text"))
    assert [[texts[c] for c in g] for g in gold.gold_ranking] == [
        ["Yes, within 30 days."], ["No.", "Maybe."]
    ]
    assert gold.open_slots == 0
    assert Item.objects.get(project=project, is_gold=False).open_slots == 3


@pytest.mark.parametrize(("gold", "message"), [
    ([0], "every candidate index 0..1"),
    ([0, 0], "every candidate index"),
    ([[0, 1]], "must prefer one"),
    ("0,1", "list of candidate indexes"),
    ([0, 5], "every candidate index"),
    ([True, 0], "0-based integers"),
])
def test_it_rejects_malformed_gold_answers_with_the_line(gold, message):
    project = factories.project()
    data = rows_file({"prompt": "ok", "candidates": ["a", "b"]},
                     {"prompt": "bad", "candidates": ["a", "b"], "gold": gold})
    with pytest.raises(ImportRejected) as exc:
        import_file(project, "g.jsonl", data)
    assert exc.value.errors[0].startswith("line 2:") and message in exc.value.errors[0]
    assert not Item.objects.filter(project=project).exists()


# --- scoring ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("gold", "given", "score"), [
    ([[1], [2]], [[1], [2]], 1.0),
    ([[1], [2]], [[2], [1]], 0.0),
    ([[1], [2]], [[1, 2]], 0.0),
    ([[1], [2], [3]], [[1], [3], [2]], 2 / 3),
    ([[1], [2, 3]], [[1], [2, 3]], 1.0),
    ([[1], [2, 3]], [[1], [2], [3]], 1.0),
    ([[1], [2, 3]], [[2], [1], [3]], 0.5),
])
def test_gold_score_is_the_share_of_pairs_matched(gold, given, score):
    assert gold_score(gold, given) == pytest.approx(score)


# --- distribution ----------------------------------------------------------------------------

def test_gold_is_mixed_in_at_the_configured_rate():
    project = factories.project_with_items(n_prompts=400, n_candidates=2, overlap=1,
                                           gold_rate=0.2)
    add_gold(project, 150)
    user = factories.user("mixer", "Annotator")
    rng = random.Random(1234)
    gold = 0
    claims = 300
    for _ in range(claims):
        a = queue.claim_next(project, user, rng=rng)
        gold += a.item.is_gold
        judge(user, a, best_first)
    # Binomial(300, 0.2): sd 6.9, so ±21 is three standard deviations.
    assert abs(gold - 0.2 * claims) <= 21, gold
    assert Item.objects.filter(project=project, is_gold=True, open_slots__gt=0).count() == 0


def test_gold_items_go_to_everyone_once_and_never_fill_up():
    project = factories.project_with_items(n_prompts=5, overlap=1, gold_rate=0.5)
    gold_items = add_gold(project, 2)
    seen = {}
    for name in ("g1", "g2", "g3"):
        user = factories.user(name, "Annotator")
        seen[name] = []
        for _ in range(3):
            a = queue.claim_next(project, user, rng=Always(0.0))
            seen[name].append(a.item_id)
            judge(user, a, best_first)
    gold_ids = {g.pk for g in gold_items}
    for name, items in seen.items():
        # Two gold items each, never the same twice, then regular work.
        assert set(items[:2]) == gold_ids and items[2] not in gold_ids, (name, items)
    assert Assignment.objects.filter(item__in=gold_items).count() == 6


def test_no_gold_when_the_rate_is_zero():
    project = factories.project_with_items(n_prompts=5, overlap=1, gold_rate=0.0)
    add_gold(project, 3)
    user = factories.user("nogold", "Annotator")
    for _ in range(5):
        a = queue.claim_next(project, user, rng=Always(0.0))
        assert not a.item.is_gold
        judge(user, a, best_first)


def test_skipping_or_losing_a_gold_item_gives_no_slot_back(settings):
    project = factories.project_with_items(n_prompts=2, overlap=1, gold_rate=0.5,
                                           lease_seconds=30)
    gold, other = add_gold(project, 2)
    user = factories.user("skipper", "Annotator")
    a = queue.claim_next(project, user, rng=Always(0.0))
    skip_assignment(user, a.pk, "unsure")
    b = queue.claim_next(project, user, rng=Always(0.0))
    Assignment.objects.filter(pk=b.pk).update(leased_until=b.leased_until.replace(year=2000))
    assert queue.reclaim_expired(project) == 1
    assert Item.objects.filter(pk__in=[gold.pk, other.pk], open_slots__gt=0).count() == 0


def test_the_work_page_does_not_tell_gold_from_other_items(client):
    project = factories.project_with_items(n_prompts=1, overlap=1, gold_rate=0.5,
                                           name="Support")
    gold, = add_gold(project, 1)
    user = factories.user("blind", "Annotator")
    a = queue.claim_next(project, user, rng=Always(0.0))
    assert a.item_id == gold.pk
    client.force_login(user)
    html = client.get(reverse("annotate-work", args=[project.slug])).content.decode()
    assert f'data-item="{gold.pk}"' in html
    assert "gold" not in html.replace("Gold question", "").replace("Gold answer", "").lower()


# --- accuracy, flags, pauses -----------------------------------------------------------------

def strict_project(**fields):
    fields = {"gold_rate": 0.5, "gold_min_judged": 3, "gold_min_accuracy": 0.7,
              "gold_pause": True, "overlap": 1, **fields}
    project = factories.project_with_items(n_prompts=6, n_candidates=2, **fields)
    add_gold(project, 6)
    return project


def test_accuracy_is_recorded_per_annotator():
    project = strict_project()
    good, sloppy = factories.user("good", "Annotator"), factories.user("sloppy", "Annotator")
    for user, answers in ((good, [best_first] * 3), (sloppy, [best_first, worst_first,
                                                             worst_first])):
        for answer in answers:
            judge(user, queue.claim_next(project, user, rng=Always(0.0)), answer)
    assert AnnotatorStanding.objects.get(annotator=good).gold_accuracy == 1.0
    assert AnnotatorStanding.objects.get(annotator=sloppy).gold_accuracy == pytest.approx(1 / 3)


def test_an_annotator_below_the_bar_is_flagged_and_paused_until_resumed(client):
    project = strict_project()
    user = factories.user("wrong", "Annotator")
    for i in range(3):
        a = queue.claim_next(project, user, rng=Always(0.0))
        judge(user, a, worst_first)
        standing = AnnotatorStanding.objects.get(project=project, annotator=user)
        # Not judged on fewer than gold_min_judged items.
        assert standing.paused == (i == 2) and (standing.flagged_at is not None) == (i == 2)
    assert queue.claim_next(project, user, rng=Always(0.99)) is None
    client.force_login(user)
    page = client.get(reverse("annotate-work", args=[project.slug])).content.decode()
    assert 'data-testid="paused"' in page and 'data-testid="queue-empty"' not in page

    manager = factories.user("boss", "Manager")
    client.force_login(manager)
    quality = client.get(reverse("annotate-quality", args=[project.slug])).content.decode()
    row = quality.split('data-annotator="wrong"')[1].split("</tr>")[0]
    assert "paused" in row and "0%" in row and "Resume" in row
    response = client.post(reverse("annotate-resume", args=[project.slug, user.pk]))
    assert response.status_code == 302
    standing = AnnotatorStanding.objects.get(project=project, annotator=user)
    assert not standing.paused and standing.gold_judged == 0 and standing.resumed_at
    assert queue.claim_next(project, user, rng=Always(0.99)) is not None


def test_without_pausing_a_flagged_annotator_keeps_working():
    project = strict_project(gold_pause=False)
    user = factories.user("flagged", "Annotator")
    for _ in range(3):
        judge(user, queue.claim_next(project, user, rng=Always(0.0)), worst_first)
    standing = AnnotatorStanding.objects.get(project=project, annotator=user)
    assert standing.flagged_at is not None and not standing.paused
    assert queue.claim_next(project, user, rng=Always(0.99)) is not None


def test_a_flag_lifts_when_accuracy_recovers():
    project = strict_project(gold_pause=False)
    add_gold(project, 1)
    user = factories.user("learner", "Annotator")
    for answer in (worst_first, worst_first, best_first):
        judge(user, queue.claim_next(project, user, rng=Always(0.0)), answer)
    assert AnnotatorStanding.objects.get(annotator=user).flagged_at is not None
    for _ in range(3):
        judge(user, queue.claim_next(project, user, rng=Always(0.0)), best_first)
    standing = AnnotatorStanding.objects.get(annotator=user)
    assert standing.gold_accuracy == pytest.approx(4 / 6)
    assert standing.flagged_at is not None  # 0.67 is still under 0.7
    judge(user, queue.claim_next(project, user, rng=Always(0.0)), best_first)
    standing = AnnotatorStanding.objects.get(annotator=user)
    assert standing.gold_accuracy == pytest.approx(5 / 7) and standing.flagged_at is None


def test_undoing_a_gold_judgement_takes_its_score_back():
    project = strict_project()
    user = factories.user("undoer", "Annotator")
    judgement = judge(user, queue.claim_next(project, user, rng=Always(0.0)), worst_first)
    assert judgement.gold_score == 0.0
    undo_judgement(user, judgement.pk)
    standing = AnnotatorStanding.objects.get(annotator=user)
    assert (standing.gold_judged, standing.gold_score_sum) == (0, 0.0)


def test_only_managers_resume_annotators(client):
    project = strict_project()
    user = factories.user("stuck", "Annotator")
    AnnotatorStanding.objects.create(project=project, annotator=user, paused=True)
    for role in ("Annotator", "Engineer", "Reviewer"):
        client.force_login(factories.user(f"r-{role}", role))
        assert client.post(reverse("annotate-resume", args=[project.slug, user.pk])).status_code \
            == 403
    assert AnnotatorStanding.objects.get(annotator=user).paused


# --- export and progress ---------------------------------------------------------------------

def test_gold_exports_its_answer_once_not_the_judgements_on_it():
    project = strict_project(gold_pause=False)
    for name in ("e1", "e2"):
        user = factories.user(name, "Annotator")
        judge(user, queue.claim_next(project, user, rng=Always(0.0)), worst_first)
    rows = list(preference_rows(project))
    assert {r["source"] for r in rows} == {"gold"}
    assert len(rows) == 6  # one pair per gold item of two candidates
    assert all(r["chosen"][0]["content"].startswith("Gold answer 0") for r in rows)


def test_gold_items_are_not_counted_as_queue_work(client):
    project = strict_project()
    client.force_login(factories.user("eng", "Engineer"))
    page = client.get(reverse("annotate-project", args=[project.slug])).content.decode()
    assert "<strong>6</strong><span>items</span>" in page
