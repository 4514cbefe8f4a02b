"""Dataset snapshots: rows derived from raw judgements, filtered, split by prompt and frozen."""

import hashlib
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotate.importing import create_item
from annotate.models import AnnotatorStanding, Assignment, Candidate
from annotate.services import Answer, adjudicate, submit_judgement
from rlhf.ml.config import DPORunConfig, KTORunConfig, SFTRunConfig
from rlhf.ml.data import prompt_key, read_jsonl
from rlhf.snapshots import build_snapshot, snapshot_file, snapshot_rows
from tests import factories

KINDS = ("preference", "sft", "kto", "prompts")


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    # Users are made per test; the real hasher would be most of these tests' time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people(db):
    return [factories.user(f"judge{i}", "Annotator") for i in range(3)]


def item_with(project, question, answers, split="train", gold=None, external_id=""):
    """An item for a new prompt; returns (item, candidates in the given order)."""
    prompt = factories.prompt(project, question, external_id=external_id, split=split)
    candidates = [Candidate.objects.create(prompt=prompt, text=text) for text in answers]
    gold_ranking = [[candidates[i].pk] for i in gold] if gold else None
    return create_item(project, prompt, candidates, gold_ranking=gold_ranking), candidates


def judge(user, item, ranking=(), **answer):
    """Submit a judgement on the item as the user (ranking: candidates best first)."""
    shown = list(item.candidates.values_list("id", flat=True))
    assignment = Assignment.objects.create(
        item=item, annotator=user, shown_order=shown,
        leased_until=timezone.now() + timedelta(hours=1),
    )
    answer = Answer(ranking=[[c.pk] for c in ranking], **answer)
    judgement, created = submit_judgement(user, assignment.pk, answer, uuid.uuid4())
    assert created
    return judgement


def pairs(rows):
    return {(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows}


def labels(rows):
    return {r["completion"][0]["content"]: r["label"] for r in rows}


def rows_of(project, kind, **config):
    config_class = {"sft": SFTRunConfig, "kto": KTORunConfig}.get(kind, DPORunConfig)
    rows, _ = snapshot_rows(project, kind, config_class(**config))
    return rows


# Preference pairs and their filters.

def test_it_drops_flagged_judgements_when_asked(people):
    project = factories.project("flags")
    item, (a, b) = item_with(project, "Where is my parcel?", ["Tracking link.", "No idea."])
    judge(people[0], item, [a, b])
    judge(people[1], item, [b, a], flags=["unsafe"])

    assert pairs(rows_of(project, "preference")) == {("Tracking link.", "No idea."),
                                                      ("No idea.", "Tracking link.")}
    assert pairs(rows_of(project, "preference", exclude_flagged=True)) == {
        ("Tracking link.", "No idea.")
    }


def test_it_drops_items_annotators_disagree_on_below_the_agreement_bar(people):
    project = factories.project("agreement")
    agreed, (a, b) = item_with(project, "Can I return shoes?", ["Yes, 30 days.", "Maybe."])
    split, (c, d) = item_with(project, "Do you ship abroad?", ["To 40 countries.", "Nope."])
    for user in people[:2]:
        judge(user, agreed, [a, b])
    judge(people[0], split, [c, d])
    judge(people[1], split, [d, c])
    agreed.refresh_from_db()
    split.refresh_from_db()
    assert (agreed.disagreement, split.disagreement) == (0.0, 1.0)

    everything = pairs(rows_of(project, "preference"))
    assert {("Yes, 30 days.", "Maybe."), ("To 40 countries.", "Nope.")} <= everything
    assert pairs(rows_of(project, "preference", min_agreement=0.5)) == {("Yes, 30 days.",
                                                                         "Maybe.")}


def test_only_reviewed_keeps_reviewers_and_gold_answers(people):
    project = factories.project("reviewed")
    plain, (a, b) = item_with(project, "Plain question?", ["Plain good.", "Plain bad."])
    disputed, (c, d) = item_with(project, "Disputed question?", ["Calm answer.", "Rude."])
    item_with(project, "Gold question?", ["Gold good.", "Gold bad."], gold=[0, 1])
    judge(people[0], plain, [a, b])
    judge(people[0], disputed, [d, c])
    judge(people[1], disputed, [c, d])
    adjudicate(factories.user("rev", "Manager"), disputed, [[c.pk], [d.pk]])

    rows = rows_of(project, "preference", only_reviewed=True)
    assert {r["source"] for r in rows} == {"review", "gold"}
    assert pairs(rows) == {("Calm answer.", "Rude."), ("Gold good.", "Gold bad.")}
    # Without the filter the plain judgement counts too; the adjudicated item's judgements
    # never do (the reviewer's answer replaces them).
    assert pairs(rows_of(project, "preference")) == pairs(rows) | {("Plain good.", "Plain bad.")}


def test_it_drops_annotators_below_the_reliability_weight(people):
    project = factories.project("reliability", gold_min_judged=5)
    item, (a, b) = item_with(project, "Is it in stock?", ["Yes, 12 left.", "Check later."])
    judge(people[0], item, [a, b])
    judge(people[1], item, [b, a])
    # Gold records: judge0 got 5 of 5 gold items right, judge1 only 1 of 5.
    AnnotatorStanding.objects.create(project=project, annotator=people[0], gold_judged=5,
                                     gold_score_sum=5.0)
    AnnotatorStanding.objects.create(project=project, annotator=people[1], gold_judged=5,
                                     gold_score_sum=1.0)

    assert len(pairs(rows_of(project, "preference"))) == 2
    rows = rows_of(project, "preference", min_annotator_weight=0.5)
    assert pairs(rows) == {("Yes, 12 left.", "Check later.")}
    kept = rows_of(project, "preference", min_annotator_weight=0.2)
    assert len(pairs(kept)) == 2


def test_duplicate_pairs_are_written_once(people):
    project = factories.project("dupes")
    prompt = factories.prompt(project, "Same question?")
    for _ in range(2):
        # The same answers imported twice, as two items.
        candidates = [Candidate.objects.create(prompt=prompt, text=t) for t in ("Good.", "Bad.")]
        item = create_item(project, prompt, candidates)
        for user in people[:2]:
            judge(user, item, candidates)

    rows = rows_of(project, "preference")
    assert len(rows) == 1 and pairs(rows) == {("Good.", "Bad.")}


# SFT targets.

def test_sft_rows_come_from_corrections_reviews_and_gold_answers(people):
    project = factories.project("sft", judgement_kinds=["ranking", "correction"])
    plain, (a, b) = item_with(project, "How do I reset?", ["Hold the button.", "Dunno."])
    disputed, (c, d) = item_with(project, "Which size?", ["Size M fits 38-40.", "Any."])
    item_with(project, "Gold question?", ["Gold answer.", "Gold bad."], gold=[0, 1])
    judge(people[0], plain, [a, b], correction_of=a.pk, correction="Hold it for 10 s.")
    # The same edit twice is one target; an unchanged "edit" is none.
    judge(people[1], plain, [a, b], correction_of=a.pk, correction="Hold it for 10 s.")
    judge(people[2], plain, [a, b], correction_of=b.pk, correction="Dunno.")
    judge(people[0], disputed, [d, c])
    adjudicate(factories.user("rev", "Manager"), disputed, [[c.pk], [d.pk]])

    rows = rows_of(project, "sft")
    targets = {r["completion"][0]["content"]: r["source"] for r in rows}
    assert targets == {"Hold it for 10 s.": "correction", "Size M fits 38-40.": "review",
                       "Gold answer.": "gold"}
    assert all(r["completion"][0]["role"] == "assistant" for r in rows)
    assert [r["source"] for r in rows_of(project, "sft", only_reviewed=True)] == ["review",
                                                                                  "gold"]


# KTO labels.

def test_kto_labels_ratings_by_the_threshold(people):
    project = factories.project("ratings", judgement_kinds=["rating"],
                                rating_dimensions=["helpfulness"], rating_scale=5)
    item, (great, middling, poor) = item_with(project, "Refund?", ["Great.", "Middling.",
                                                                    "Poor."])
    scores = {great.pk: 5, middling.pk: 3, poor.pk: 1}
    judge(people[0], item, ratings={str(k): {"helpfulness": v} for k, v in scores.items()})

    assert labels(rows_of(project, "kto")) == {"Great.": True, "Middling.": True,
                                               "Poor.": False}
    assert labels(rows_of(project, "kto", rating_threshold=0.6)) == {
        "Great.": True, "Middling.": False, "Poor.": False
    }
    assert {r["source"] for r in rows_of(project, "kto")} == {"rating"}


def test_kto_labels_the_best_of_a_ranking_good_and_the_worst_bad(people):
    project = factories.project("ranked")
    item, (a, b, c) = item_with(project, "Cancel my order", ["Done.", "Soon.", "No."])
    judge(people[0], item, [a, b, c])
    assert labels(rows_of(project, "kto")) == {"Done.": True, "No.": False}


def test_kto_labels_both_of_a_both_bad_pair_bad(people):
    project = factories.project("pairwise", judgement_kinds=["pairwise"])
    bad_pair, _ = item_with(project, "Track it", ["Meh.", "Ugh."])
    good_pair, _ = item_with(project, "Price?", ["$20.", "Expensive."])
    judge(people[0], bad_pair, pairwise_choice="both_bad")
    judge(people[0], good_pair, pairwise_choice="a")

    rows = rows_of(project, "kto")
    assert labels(rows) == {"Meh.": False, "Ugh.": False, "$20.": True, "Expensive.": False}
    assert {r["source"] for r in rows if r["completion"][0]["content"] == "Meh."} == {
        "pairwise"
    }


def test_kto_labels_a_correction_good_and_its_original_bad(people):
    project = factories.project("corrected", judgement_kinds=["rating", "correction"],
                                rating_dimensions=["helpfulness"])
    item, (b, c) = item_with(project, "Closed on Sunday?", ["Yes.", "Dunno."])
    # No ranking here: ratings and the correction are the only signals.
    judge(people[0], item, ratings={str(b.pk): {"helpfulness": 4},
                                      str(c.pk): {"helpfulness": 2}},
          correction_of=c.pk, correction="Yes, closed on Sundays.")

    rows = rows_of(project, "kto")
    assert labels(rows) == {"Yes.": True, "Dunno.": False, "Yes, closed on Sundays.": True}
    edit = next(r for r in rows if r["label"] and r["source"] == "correction")
    assert edit["completion"][0]["content"] == "Yes, closed on Sundays."
    dunno = next(r for r in rows if r["completion"][0]["content"] == "Dunno.")
    assert dunno["votes"] == 2  # rated low and corrected


def test_kto_takes_the_majority_vote_and_drops_ties(people):
    project = factories.project("votes")
    majority, (a, b) = item_with(project, "Warranty?", ["Two years.", "One year."])
    tied, (c, d) = item_with(project, "Gift wrap?", ["Yes, $3.", "No."])
    judge(people[0], majority, [a, b])
    judge(people[1], majority, [a, b])
    judge(people[2], majority, [b, a])
    judge(people[0], tied, [c, d])
    judge(people[1], tied, [d, c])

    rows = rows_of(project, "kto")
    assert labels(rows) == {"Two years.": True, "One year.": False}
    assert {r["votes"] for r in rows} == {3}


# Prompts for online RL.

def test_prompt_rows_are_one_per_distinct_conversation(db):
    project = factories.project("prompts")
    for i, text in enumerate(["Hi?", "Hi?", "Hello?"]):
        factories.prompt(project, text, external_id=f"p{i}")
    factories.prompt(project, [{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "Hi?"}])

    rows = rows_of(project, "prompts")
    assert [r["prompt"][-1]["content"] for r in rows] == ["Hi?", "Hello?", "Hi?"]
    assert [r["prompt_id"] for r in rows[:2]] == ["p0", "p2"]


# Splits, files and hashes, for every kind.

@pytest.fixture
def rich_project(people):
    """Ranked and corrected items (two of six prompts held out) plus a gold item."""
    project = factories.project("rich", judgement_kinds=["ranking", "correction"], overlap=2)
    for i in range(6):
        item, (a, b, c) = item_with(
            project, f"Question {i} about order NW-{i}?",
            [f"Full answer {i}.", f"Short {i}.", f"Wrong {i}."],
            split="eval" if i in (1, 4) else "train", external_id=f"q{i}",
        )
        for user in people[:2]:
            judge(user, item, [a, b, c], correction_of=b.pk,
                  correction=f"Short {i}, edited by {user.username}.")
    item_with(project, "Gold question?", ["Gold good.", "Gold bad."], gold=[0, 1])
    return project


def sides(rows):
    train = {prompt_key(r["prompt"]) for r in rows if r["split"] == "train"}
    held_out = {prompt_key(r["prompt"]) for r in rows if r["split"] == "eval"}
    return train, held_out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("eval_fraction", [0.0, 0.5])
def test_eval_prompts_are_held_out_and_no_prompt_is_on_both_sides(rich_project, kind,
                                                                 eval_fraction):
    config = KTORunConfig(eval_fraction=eval_fraction, seed=3)
    snapshot, train, held_out = build_snapshot(rich_project, kind, config)
    eval_keys = {prompt_key(p.conversation) for p in rich_project.prompts.filter(split="eval")}

    rows = read_jsonl(snapshot_file(snapshot))
    assert len(rows) == snapshot.rows == len(train) + len(held_out)
    assert (snapshot.kind, snapshot.train_rows, snapshot.eval_rows) == (kind, len(train),
                                                                        len(held_out))
    train_keys, held_keys = sides(rows)
    assert train_keys and not train_keys & held_keys
    assert eval_keys <= held_keys
    if eval_fraction == 0:
        assert held_keys == eval_keys
    else:
        assert held_keys > eval_keys
    assert snapshot.filters["eval_fraction"] == eval_fraction and snapshot.filters["seed"] == 3


@pytest.mark.parametrize("kind", KINDS)
def test_the_file_is_named_and_recorded_by_its_sha256(rich_project, kind, people):
    config = KTORunConfig()
    first, _, _ = build_snapshot(rich_project, kind, config)
    path = snapshot_file(first)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == first.sha256
    assert path.name == f"{kind}-{first.sha256}.jsonl"

    again, _, _ = build_snapshot(rich_project, kind, config)
    assert (again.sha256, again.path) == (first.sha256, first.path) and again.pk != first.pk

    item, (a, b) = item_with(rich_project, "A new question?", ["New good.", "New bad."])
    for user in people[:2]:
        judge(user, item, [a, b], correction_of=b.pk, correction="New edited.")
    changed, _, _ = build_snapshot(rich_project, kind, config)
    assert changed.sha256 != first.sha256 and changed.rows > first.rows
    assert hashlib.sha256(snapshot_file(changed).read_bytes()).hexdigest() == changed.sha256


def test_the_filters_are_recorded_with_the_snapshot(rich_project):
    config = KTORunConfig(exclude_flagged=True, min_agreement=0.5, rating_threshold=0.7)
    snapshot, _, _ = build_snapshot(rich_project, "kto", config)
    assert snapshot.filters == {
        "min_agreement": 0.5, "exclude_flagged": True, "only_reviewed": False,
        "min_annotator_weight": 0.0, "eval_fraction": 0.1, "seed": 42, "rating_threshold": 0.7,
    }


def test_engineers_download_the_exact_file_and_annotators_get_403(client, rich_project,
                                                                   engineer, annotator):
    snapshot, _, _ = build_snapshot(rich_project, "preference", DPORunConfig())
    url = reverse("rlhf-snapshot-download", args=[snapshot.pk])

    client.force_login(engineer)
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == snapshot_file(snapshot).read_bytes()
    assert snapshot.sha256 in response["Content-Disposition"]

    client.force_login(annotator)
    assert client.get(url).status_code == 403
