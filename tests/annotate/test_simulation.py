"""Simulated annotators: oracles, the noise model, and runs through the real claim/submit path."""

import io
import random
from itertools import combinations

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from annotate.agreement import krippendorff_alpha, pair_order, rank_positions
from annotate.importing import create_item
from annotate.models import Assignment, Candidate, Item, Judgement
from annotate.simulation import (
    ORACLES,
    UnknownOracle,
    apology_next_step,
    get_oracle,
    implied_alpha,
    judge_order,
    noise_ceiling,
    noise_levels,
    simulate,
)
from tests import factories

GOOD = "Sorry about order NW-{i}! Please reply with a photo and we will refund you within 2 days."
VAGUE = "Thanks for your message about case {i}. We'll look into it at some point."
RUDE_LONG = "Not our problem, case {i}. " + (
    "You should have read the terms and conditions before ordering anything from our shop. " * 8
)


def support_project(n_prompts=6, texts=(GOOD, VAGUE, RUDE_LONG), **fields):
    """A project whose candidates differ in what the oracles look for."""
    project = factories.project(**fields)
    for i in range(n_prompts):
        prompt = factories.prompt(project, f"My parcel {i} arrived broken.", f"p{i}")
        cands = [Candidate.objects.create(prompt=prompt, text=t.format(i=1000 + i))
                 for t in texts]
        create_item(project, prompt, cands)
    return project


def add_gold(project, n):
    items = []
    for i in range(n):
        prompt = factories.prompt(project, f"Gold question {i}?", f"gold-{i}")
        cands = [Candidate.objects.create(prompt=prompt, text=t.format(i=i))
                 for t in (GOOD, RUDE_LONG)]
        items.append(create_item(project, prompt, cands, gold_ranking=[[c.pk] for c in cands]))
    return items


def oracle_scores(judgement, oracle="apology-next-step"):
    score = ORACLES[oracle].score
    prompt_text = judgement.item.prompt.last_user_message
    return {c.pk: score(prompt_text, c.text) for c in judgement.item.candidates.all()}


def matches_oracle(judgement):
    """Return (pairs ordered like the oracle, pairs) for one judgement."""
    scores = oracle_scores(judgement)
    given = rank_positions(judgement.ranking)
    pairs = list(combinations(sorted(scores), 2))
    agree = sum(pair_order(given, a, b) == -np.sign(scores[a] - scores[b]) for a, b in pairs)
    return agree, len(pairs)


def test_it_scores_an_apology_with_a_next_step_under_80_words_above_rude_and_long():
    good = GOOD.format(i=123456)
    rude = RUDE_LONG.format(i=1)
    assert apology_next_step("", good) > 3 > apology_next_step("", VAGUE.format(i=1))
    assert apology_next_step("", VAGUE.format(i=1)) > apology_next_step("", rude)
    assert apology_next_step("", rude) < 1
    # Each criterion is worth a whole point; the tie-breaker stays under half a point.
    assert 3 < apology_next_step("", "Sorry! You can track it in your account.") < 3.5
    assert 2 < apology_next_step("", "Sorry, we cannot say.") < 2.5
    assert 1 < apology_next_step("", "We cannot say.") < 1.5
    assert 0 < apology_next_step("", "No idea. " * 80) < 0.5
    assert ORACLES["concise"].score("", "Refunded.") > ORACLES["concise"].score("", good)
    assert ORACLES["polite"].score("", good) > ORACLES["polite"].score("", rude)
    assert ORACLES["polite"].score("", "Thanks, please wait.") > ORACLES["polite"].score(
        "", "Thanks, please READ THE EMAIL."
    )
    # Distinct answers of the same length still get distinct scores.
    assert apology_next_step("", "Answer 1.") != apology_next_step("", "Answer 2.")


@pytest.mark.django_db
def test_it_refuses_an_unknown_oracle():
    with pytest.raises(UnknownOracle, match="apology-next-step, concise, polite"):
        get_oracle("psychic")
    project = support_project(1)
    with pytest.raises(UnknownOracle):
        simulate(project, oracle="psychic")
    assert not Judgement.objects.exists()
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("simulate_annotators", project.slug, "--oracle", "psychic")


@pytest.mark.django_db
def test_it_ranks_in_oracle_order_without_noise():
    project = support_project(6, overlap=2)
    result = simulate(project, annotators=3, noise=0.0)
    judgements = list(Judgement.objects.filter(item__project=project))
    assert result.judgements == len(judgements) == 12
    assert result.random_answers == 0
    for judgement in judgements:
        scores = oracle_scores(judgement)
        assert [g[0] for g in judgement.ranking] == sorted(scores, key=scores.get, reverse=True)
        assert all(len(group) == 1 for group in judgement.ranking)
        assert judgement.duration_ms > 0


@pytest.mark.django_db
def test_it_answers_pairwise_and_ratings_in_oracle_order_without_noise():
    project = support_project(4, texts=(RUDE_LONG, GOOD), judgement_kinds=["pairwise", "rating"],
                              overlap=2)
    simulate(project, annotators=2, noise=0.0, seed=3)
    judgements = list(Judgement.objects.filter(item__project=project))
    assert len(judgements) == 8
    for judgement in judgements:
        good, rude = (c.pk for c in judgement.item.candidates.order_by("-id"))
        a, b = judgement.shown_order
        assert judgement.pairwise_choice == ("a" if a == good else "b")
        assert judgement.pairwise_strength == 2  # the scores differ by whole criteria
        assert judgement.ranking == [[good], [rude]]
        dims = project.rating_dimensions
        assert set(judgement.ratings) == {str(good), str(rude)}
        assert all(judgement.ratings[str(good)][d] > judgement.ratings[str(rude)][d]
                   for d in dims)


@pytest.mark.django_db
def test_it_answers_at_random_with_full_noise():
    project = support_project(12, overlap=5)
    result = simulate(project, annotators=5, noise=1.0, seed=11)
    assert result.random_answers == result.judgements == 60
    agree = total = 0
    for judgement in Judgement.objects.filter(item__project=project):
        a, t = matches_oracle(judgement)
        agree += a
        total += t
    # 180 pairs: one standard deviation of the share is 0.037 around 1/2.
    assert total == 180
    assert abs(agree / total - 0.5) < 0.12


def pair_labels(n_items, noise_per_coder, rng, n_candidates=3):
    """Return (labels coders x pair units, oracle labels) from judge_order on random scores.

    A unit is one candidate pair in a random shown order; the label is 1 when the first shown
    candidate came first in the answer, like the app's shuffled display.
    """
    labels = [[] for _ in noise_per_coder]
    truth = []
    for _ in range(n_items):
        scores = {cid: rng.random() for cid in range(n_candidates)}
        pairs = [(a, b) if rng.random() < 0.5 else (b, a)
                 for a, b in combinations(range(n_candidates), 2)]
        truth += [int(scores[a] > scores[b]) for a, b in pairs]
        for row, noise in zip(labels, noise_per_coder, strict=True):
            order, _ = judge_order(scores, noise, rng)
            at = {cid: i for i, cid in enumerate(order)}
            row += [int(at[a] < at[b]) for a, b in pairs]
    return np.array(labels), np.array(truth)


@pytest.mark.parametrize("noise", [0.0, 0.2, 0.6])
def test_it_matches_noise_ceiling_and_implied_alpha_by_monte_carlo(noise):
    rng = random.Random(42)
    labels, truth = pair_labels(1500, [noise] * 4, rng)  # 4 coders x 4500 pair units
    assert abs(truth.mean() - 0.5) < 0.03  # balanced categories
    accuracy = (labels == truth).mean()
    assert abs(accuracy - noise_ceiling(noise)) < 0.015
    alpha = krippendorff_alpha(labels.astype(float), level="nominal")
    assert abs(alpha - implied_alpha(noise)) < 0.03


def test_it_predicts_alpha_for_spread_noise_levels_by_monte_carlo():
    levels = noise_levels(0.3, 4, spread=0.2)
    assert levels == pytest.approx([0.1, 0.2333333, 0.3666667, 0.5])
    assert noise_levels(0.9, 3, spread=0.3) == pytest.approx([0.6, 0.9, 1.0])
    labels, truth = pair_labels(1500, levels, random.Random(7))
    alpha = krippendorff_alpha(labels.astype(float), level="nominal")
    assert abs(alpha - implied_alpha(levels)) < 0.03
    for row, noise in zip(labels, levels, strict=True):
        assert abs((row == truth).mean() - noise_ceiling(noise)) < 0.025
    with pytest.raises(ValueError, match="between 0 and 1"):
        noise_levels(1.5, 3)


@pytest.mark.django_db
def test_it_fills_every_open_slot_through_the_command():
    project = factories.project_with_items(n_prompts=5, n_candidates=3, overlap=3, gold_rate=0.3)
    gold = add_gold(project, 3)
    out = io.StringIO()
    call_command("simulate_annotators", project.slug, "--annotators", "4", "--noise", "0.2",
                 "--seed", "5", stdout=out)
    open_items = Item.objects.filter(project=project, is_gold=False)
    assert all(item.open_slots == 0 for item in open_items)
    assert Judgement.objects.filter(item__is_gold=False, item__project=project).count() == 5 * 3
    assert all(item.judgement_count == 3 for item in open_items)
    # Gold items are handed out by claim_next too, and scored like a human's answer.
    gold_judgements = Judgement.objects.filter(item__in=gold)
    assert gold_judgements.exists()
    assert all(j.gold_score is not None for j in gold_judgements)
    for item in Item.objects.filter(pk__in=[g.pk for g in gold]):
        assert item.judgement_count == gold_judgements.filter(item=item).count()
    # Every claim was submitted through submit_judgement: nothing left active or skipped.
    sim_users = User.objects.filter(username__startswith="sim-")
    assert sorted(sim_users.values_list("username", flat=True)) == [f"sim-{i}" for i in range(1, 5)]
    assert all(u.groups.filter(name="Annotator").exists() for u in sim_users)
    assignments = Assignment.objects.filter(item__project=project)
    assert set(assignments.values_list("status", flat=True)) == {Assignment.Status.SUBMITTED}
    assert assignments.count() == Judgement.objects.filter(item__project=project).count()
    text = out.getvalue()
    assert "stopped: none-left" in text
    assert "sim-1:" in text and "sim-4:" in text
    assert "Noise ceiling (pair accuracy vs the oracle): 0.900" in text
    assert "Implied Krippendorff's alpha (nominal, pairs): 0.640" in text


@pytest.mark.django_db
def test_it_reuses_its_users_and_joins_projects_with_members(annotator):
    project = support_project(2, overlap=1)
    project.annotators.add(annotator)
    simulate(project, annotators=2, max_items=1)
    assert set(project.annotators.values_list("username", flat=True)) == {
        "alice", "sim-1", "sim-2"
    }
    result = simulate(project, annotators=2, seed=1)
    assert User.objects.filter(username__startswith="sim-").count() == 2
    assert result.judgements == 1
    assert Item.objects.filter(project=project, open_slots__gt=0).count() == 0


@pytest.mark.django_db
def test_it_stops_at_max_items():
    project = support_project(6, overlap=2)
    out = io.StringIO()
    call_command("simulate_annotators", project.slug, "--max-items", "3", stdout=out)
    assert Judgement.objects.count() == 3
    assert "stopped: max-items" in out.getvalue()
    assert sum(Item.objects.values_list("open_slots", flat=True)) == 12 - 3


@pytest.mark.django_db
def test_it_reports_annotators_paused_for_low_gold_accuracy():
    project = support_project(4, overlap=2, gold_rate=0.5, gold_pause=True, gold_min_judged=2,
                              gold_min_accuracy=0.99)
    add_gold(project, 8)
    result = simulate(project, annotators=3, noise=1.0, seed=2)
    assert result.paused
    assert set(result.paused) <= {"sim-1", "sim-2", "sim-3"}
    assert result.stopped == "none-left"


@pytest.mark.django_db
def test_it_refuses_a_bad_slug_and_noise_out_of_range():
    with pytest.raises(CommandError, match="No project 'nope'"):
        call_command("simulate_annotators", "nope")
    project = support_project(1)
    for noise in ("-0.1", "1.5"):
        with pytest.raises(CommandError, match="between 0 and 1"):
            call_command("simulate_annotators", project.slug, "--noise", noise)
    assert not Judgement.objects.exists()
