"""Preference pairs, item consensus and the model leaderboard from real judgements."""

import json
import uuid

import pytest

from annotate import queue
from annotate.aggregation import annotator_weights
from annotate.consensus import (
    annotator_reliability,
    item_consensus,
    model_leaderboard,
    preference_pairs,
)
from annotate.importing import create_item
from annotate.models import AnnotatorStanding, Candidate, Judgement
from annotate.services import Answer, adjudicate, submit_judgement, undo_judgement
from rlhf.models import ModelVersion
from tests import factories

pytestmark = pytest.mark.django_db


class AlwaysGold:
    """A random source under every gold rate: the next claim hands out a gold item."""

    def random(self):
        return 0.0


def judge(project, user, answer_for):
    """Claim the user's next item and submit answer_for(assignment); return the judgement."""
    assignment = queue.claim_next(project, user)
    assert assignment is not None
    judgement, created = submit_judgement(user, assignment.pk, answer_for(assignment),
                                          uuid.uuid4())
    assert created
    return judgement


def judge_all(project, user, answer_for):
    judgements = []
    while (assignment := queue.claim_next(project, user)) is not None:
        judgements.append(submit_judgement(user, assignment.pk, answer_for(assignment),
                                           uuid.uuid4())[0])
    return judgements


def ranked(*groups):
    return ";".join(",".join(map(str, group)) for group in groups)


def pairs_of(project, **kwargs):
    return list(preference_pairs(project, **kwargs))


# --- preference pairs ------------------------------------------------------------------------

def test_it_turns_a_ranking_with_a_tie_into_ordered_pairs_and_a_tie_row(annotator):
    project = factories.project_with_items(n_prompts=1, n_candidates=3)
    judgement = judge(project, annotator, lambda a: ranked(a.shown_order[:2], a.shown_order[2:]))
    first, second, third = judgement.shown_order
    rows = pairs_of(project)
    assert [(r["chosen"], r["rejected"], r["tie"]) for r in rows] == [
        (first, second, True), (first, third, False), (second, third, False)
    ]
    assert {r["judgement_id"] for r in rows} == {judgement.pk}
    assert {r["kind"] for r in rows} == {"ranking"}
    assert {(r["weight"], r["annotator_weight"]) for r in rows} == {(1.0, 1.0)}
    assert rows[0]["item_id"] == judgement.item_id
    assert rows[0]["annotator_id"] == annotator.pk
    assert rows[0]["prompt_id"] == judgement.item.prompt_id


def test_it_keeps_pairwise_strength_as_the_weight_and_ties_as_tie_rows(annotator):
    project = factories.project_with_items(n_prompts=3, n_candidates=2,
                                           judgement_kinds=["pairwise"])
    much = judge(project, annotator, lambda a: Answer(pairwise_choice="b", pairwise_strength=2))
    slight = judge(project, annotator, lambda a: Answer(pairwise_choice="a"))
    tie = judge(project, annotator, lambda a: Answer(pairwise_choice="both_bad"))
    rows = {r["judgement_id"]: r for r in pairs_of(project)}
    assert len(rows) == 3
    a, b = much.shown_order
    assert (rows[much.pk]["chosen"], rows[much.pk]["rejected"]) == (b, a)
    assert rows[much.pk]["weight"] == 2.0 and rows[much.pk]["kind"] == "pairwise"
    assert rows[much.pk]["choice"] == "b" and not rows[much.pk]["tie"]
    assert rows[slight.pk]["chosen"] == slight.shown_order[0]
    assert rows[slight.pk]["weight"] == 1.0
    assert rows[tie.pk]["tie"] and rows[tie.pk]["choice"] == "both_bad"
    assert {rows[tie.pk]["chosen"], rows[tie.pk]["rejected"]} == set(tie.shown_order)


def test_a_correction_gives_edited_over_original(annotator):
    project = factories.project_with_items(n_prompts=1, n_candidates=2,
                                           judgement_kinds=["ranking", "correction"])

    def answer(a):
        return Answer(ranking=ranked(*[[c] for c in a.shown_order]),
                      correction_of=a.shown_order[1], correction="A better answer.")

    judgement = judge(project, annotator, answer)
    rows = pairs_of(project)
    assert [r["kind"] for r in rows] == ["ranking", "correction"]
    correction = rows[1]
    edited = Candidate.objects.get(pk=judgement.correction_id)
    assert (correction["chosen"], correction["rejected"]) == (edited.pk, judgement.shown_order[1])
    assert edited.parent_id == judgement.shown_order[1]
    assert correction["judgement_id"] == judgement.pk and correction["weight"] == 1.0
    assert not correction["tie"]


def test_retracted_gold_and_adjudicated_items_give_no_pairs(annotator, manager):
    project = factories.project_with_items(n_prompts=3, n_candidates=2)
    in_order = lambda a: ranked(*[[c] for c in a.shown_order])  # noqa: E731
    kept, adjudicated, retracted = (judge(project, annotator, in_order) for _ in range(3))
    adjudicate(manager, adjudicated.item, ranked(*[[c] for c in adjudicated.shown_order]))
    gold_prompt = factories.prompt(project, "Gold question")
    gold_cands = [Candidate.objects.create(prompt=gold_prompt, text=t) for t in ("x", "y")]
    gold_item = create_item(project, gold_prompt, gold_cands,
                            gold_ranking=[[gold_cands[0].pk], [gold_cands[1].pk]])
    project.gold_rate = 0.5
    project.save(update_fields=["gold_rate"])
    assignment = queue.claim_next(project, annotator, rng=AlwaysGold())
    assert assignment.item_id == gold_item.pk
    submit_judgement(annotator, assignment.pk, ranked(*[[c] for c in assignment.shown_order]),
                     uuid.uuid4())
    assert Judgement.objects.filter(item=gold_item).exists()
    undo_judgement(annotator, retracted.pk)
    assert {r["judgement_id"] for r in pairs_of(project)} == {kept.pk}


def test_annotator_weights_come_from_gold_accuracy_then_agreement(annotator):
    project = factories.project_with_items(n_prompts=2, n_candidates=3, overlap=3)
    bob, cy = factories.user("bob", "Annotator"), factories.user("cy", "Annotator")
    best_first = lambda a: ranked(*[[c] for c in sorted(a.shown_order)])  # noqa: E731
    worst_first = lambda a: ranked(*[[c] for c in sorted(a.shown_order, reverse=True)])  # noqa: E731
    for user, answer in ((annotator, best_first), (bob, best_first), (cy, worst_first)):
        judge_all(project, user, answer)
    # alice: enough gold judged (5 of the default bar 5) at accuracy 0.5;
    # bob: only 2 gold judged, so his 0.0 is not held against him yet.
    AnnotatorStanding.objects.create(project=project, annotator=annotator, gold_judged=5,
                                     gold_score_sum=2.5)
    AnnotatorStanding.objects.create(project=project, annotator=bob, gold_judged=2,
                                     gold_score_sum=0.0)
    reliability = annotator_reliability(project)
    assert reliability[annotator.pk]["gold_accuracy"] == 0.5
    assert reliability[bob.pk]["gold_accuracy"] is None
    # alice's and bob's others split one against one: no majority, no agreement figure;
    # cy's others (alice, bob) agree on a top choice that cy never picks.
    assert reliability[annotator.pk]["agreement"] is None
    assert reliability[bob.pk]["agreement"] is None
    assert reliability[cy.pk]["agreement"] == 0.0
    assert {a: r["weight"] for a, r in reliability.items()} == annotator_weights(
        {annotator.pk: 0.5, bob.pk: None, cy.pk: None},
        {annotator.pk: None, bob.pk: None, cy.pk: 0.0},
    ) == {annotator.pk: 0.5, bob.pk: 1.0, cy.pk: 0.1}
    rows = pairs_of(project, weighting="reliability")
    assert len(rows) == 3 * 2 * 3
    by_annotator = {r["annotator_id"]: r["annotator_weight"] for r in rows}
    assert by_annotator == {annotator.pk: 0.5, bob.pk: 1.0, cy.pk: 0.1}
    fixed = pairs_of(project, weighting={cy.pk: 3.0})
    assert {r["annotator_id"]: r["annotator_weight"] for r in fixed} == {
        annotator.pk: 1.0, bob.pk: 1.0, cy.pk: 3.0
    }
    with pytest.raises(ValueError, match="weighting"):
        pairs_of(project, weighting="loudest")


# --- item consensus ----------------------------------------------------------------------------

def test_item_consensus_gives_majority_and_bt_order_and_follows_weights(annotator):
    project = factories.project_with_items(n_prompts=1, n_candidates=3, overlap=3)
    bob, cy = factories.user("bob", "Annotator"), factories.user("cy", "Annotator")
    ids = sorted(project.items.get().candidates.values_list("id", flat=True))
    one, two, three = ids
    judge(project, annotator, lambda a: ranked([one], [two], [three]))
    judge(project, bob, lambda a: ranked([one], [two], [three]))
    judge(project, cy, lambda a: ranked([two], [one], [three]))
    [item] = item_consensus(project)
    assert item["judgements"] == 3 and item["adjudication"] is None
    assert item["majority"]["top"] == [one] and item["majority"]["votes"][two] == 1
    assert item["bt"]["ranking"] == [[one], [two], [three]]
    [weighted] = item_consensus(project, weighting={cy.pk: 5.0})
    assert weighted["majority"]["top"] == [two]
    assert weighted["bt"]["ranking"] == [[two], [one], [three]]
    json.dumps(item_consensus(project))


# --- model leaderboard -------------------------------------------------------------------------

def versus_project(n_items, versions, kinds=("pairwise",), extra_import=0, **fields):
    """A project whose items each hold one candidate per version (plus imported ones)."""
    project = factories.project(judgement_kinds=list(kinds), **fields)
    models = [ModelVersion.objects.create(name=name, source="/x", project=project)
              for name in versions]
    for i in range(n_items):
        prompt = factories.prompt(project, f"Question {i}")
        cands = [Candidate.objects.create(prompt=prompt, text=f"{m.name} says {i}",
                                          origin="model", model_version=m) for m in models]
        cands += [Candidate.objects.create(prompt=prompt, text=f"imported {k} {i}")
                  for k in range(extra_import)]
        create_item(project, prompt, cands)
    return project, models


def test_the_model_that_wins_most_comparisons_ranks_first_with_a_separate_interval():
    project, (old, new) = versus_project(20, ["v1", "v2"], overlap=3)
    version = dict(Candidate.objects.filter(prompt__project=project)
                   .values_list("id", "model_version_id"))
    users = [factories.user(f"ann{k}", "Annotator") for k in range(3)]
    counter = iter(range(1000))

    def prefer_new_mostly(assignment):
        a, b = assignment.shown_order
        new_is_a = version[a] == new.pk
        # Every fifth judgement prefers v1: v2 wins 4 in 5.
        pick_new = next(counter) % 5 != 0
        return Answer(pairwise_choice="a" if new_is_a == pick_new else "b")

    for user in users:
        judge_all(project, user, prefer_new_mostly)
    board = model_leaderboard(project, rounds=300, seed=0)
    assert [row["model"] for row in board] == ["v2", "v1"]
    top, bottom = board
    assert top["rank"] == 1 and top["model_version_id"] == new.pk
    assert (top["wins"], top["losses"], top["ties"]) == (48, 12, 0)
    assert (bottom["wins"], bottom["losses"]) == (12, 48)
    assert top["comparisons"] == bottom["comparisons"] == 60
    assert top["win_rate"] == pytest.approx(0.8)
    # Two players: strengths are +-log(4)/2, and each interval excludes the other's estimate.
    assert top["strength"] == pytest.approx(-bottom["strength"])
    assert top["strength"] - bottom["strength"] == pytest.approx(1.3863, abs=1e-3)
    assert top["ci_low"] < top["strength"] < top["ci_high"]
    assert top["ci_low"] > bottom["strength"] and bottom["ci_high"] < top["strength"]
    assert top["elo"] > bottom["elo"]
    assert model_leaderboard(project, rounds=300, seed=0) == board
    json.dumps(board)


def test_ties_imports_and_same_player_pairs_on_the_leaderboard(annotator):
    project, (model,) = versus_project(2, ["v1"], kinds=("ranking",), extra_import=2)
    version = dict(Candidate.objects.filter(prompt__project=project)
                   .values_list("id", "model_version_id"))

    def model_ties_first_import(assignment):
        mine = [c for c in assignment.shown_order if version[c]]
        imported = sorted(c for c in assignment.shown_order if not version[c])
        return ranked(mine + imported[:1], imported[1:])

    judge_all(project, annotator, model_ties_first_import)
    board = {row["model"]: row for row in model_leaderboard(project, rounds=50)}
    assert set(board) == {"v1", "imported"}
    # Per item: v1 ties one import and beats the other; the import-import pair is skipped.
    assert (board["v1"]["wins"], board["v1"]["losses"], board["v1"]["ties"]) == (2, 0, 2)
    assert (board["imported"]["wins"], board["imported"]["losses"]) == (0, 2)
    assert board["imported"]["ties"] == 2 and board["imported"]["comparisons"] == 4
    assert board["imported"]["origin"] == "import" and board["imported"]["model_version_id"] is None
    assert board["v1"]["win_rate"] == pytest.approx(0.75)
    assert board["v1"]["strength"] > board["imported"]["strength"]


def test_corrections_stay_off_the_leaderboard_unless_asked(annotator):
    project, (model,) = versus_project(1, ["v1"], kinds=("ranking", "correction"),
                                       extra_import=1)

    def answer(a):
        return Answer(ranking=ranked(*[[c] for c in sorted(a.shown_order)]),
                      correction_of=min(a.shown_order), correction="Fixed.")

    judge_all(project, annotator, answer)
    assert {r["model"] for r in model_leaderboard(project, rounds=0)} == {"v1", "imported"}
    with_edits = model_leaderboard(project, rounds=0, include_corrections=True)
    assert {r["model"]: r["wins"] for r in with_edits} == {
        "v1": 1, "imported": 0, "corrections": 1
    }
    assert with_edits[0]["ci_low"] is None


def test_no_comparisons_between_players_gives_an_empty_leaderboard(annotator):
    project = factories.project_with_items(n_prompts=2, n_candidates=3)
    assert model_leaderboard(project) == []
    judge_all(project, annotator, lambda a: ranked(*[[c] for c in a.shown_order]))
    # Every candidate is imported: one player, nothing to rank.
    assert model_leaderboard(project) == []
