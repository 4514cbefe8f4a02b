"""Bradley–Terry, bootstrap intervals, per-item consensus and annotator weights (pure numpy).

The fit is checked against hand-worked examples and against the choix package (opt_pairwise
with the same ridge penalty; ilsr_pairwise and Hunter's MM for the plain maximum likelihood).
"""

import math
import subprocess
import sys

import choix
import numpy as np
import pytest

from annotate import aggregation
from annotate.aggregation import (
    annotator_weights,
    bootstrap_bt,
    bradley_terry,
    bt_consensus,
    majority_consensus,
    order_by_score,
    ranking_to_pairs,
    to_elo,
)


def simulate(strengths, m, seed):
    """Return (m, 2) (winner, loser) pairs drawn from the Bradley–Terry model."""
    rng = np.random.default_rng(seed)
    n = len(strengths)
    i = rng.integers(0, n, m)
    j = (i + rng.integers(1, n, m)) % n
    p_i = 1 / (1 + np.exp(-(strengths[i] - strengths[j])))
    i_wins = rng.random(m) < p_i
    return np.where(i_wins[:, None], np.c_[i, j], np.c_[j, i])


def as_list(pairs):
    return [tuple(int(v) for v in p) for p in pairs]


def centred(x):
    x = np.asarray(x, dtype=float)
    return x - x.mean()


# --- no Django ---------------------------------------------------------------------------------

def test_importing_it_does_not_import_django():
    code = "import sys, annotate.aggregation; sys.exit('django' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr or "annotate.aggregation imported django"


# --- worked examples by hand -----------------------------------------------------------------

def test_two_players_three_wins_to_one_differ_by_log_three():
    theta = bradley_terry([(0, 1)] * 3 + [(1, 0)], alpha=0)
    assert theta == pytest.approx([math.log(3) / 2, -math.log(3) / 2], abs=1e-10)


def test_three_players_with_consistent_records_get_exactly_those_odds():
    # A beats B 2:1, B beats C 2:1, A beats C 4:1: strengths 4 : 2 : 1 fit every pair exactly
    # (4/6 = 2/3, 2/3, 4/5), so they are the maximum-likelihood estimate.
    a, b, c = 0, 1, 2
    pairs = [(a, b)] * 2 + [(b, a)] + [(b, c)] * 2 + [(c, b)] + [(a, c)] * 4 + [(c, a)]
    theta = bradley_terry(pairs, alpha=0)
    assert theta == pytest.approx(centred(np.log([4, 2, 1])), abs=1e-10)
    assert theta.sum() == pytest.approx(0, abs=1e-12)


def test_a_chain_fits_each_link_on_its_own_record_with_ties_as_half_wins():
    # A-B: A wins 1, tie 1 -> 1.5 : 0.5, so A/B = 3. B-C: B wins 2, C wins 1 -> B/C = 2.
    pairs = [(0, 1), (0, 1), (1, 2), (1, 2), (2, 1)]
    tie = [False, True, False, False, False]
    theta = bradley_terry(pairs, is_tie=tie, alpha=0)
    assert theta == pytest.approx(centred([math.log(6), math.log(2), 0]), abs=1e-10)


def test_a_single_pair_satisfies_the_penalised_optimum():
    # theta = (t, -t) minimises log(1 + exp(-2t)) + 2 alpha t^2, so its derivative is 0:
    # 1 / (1 + exp(2t)) = 2 alpha t.
    alpha = 0.1
    t = bradley_terry([(0, 1)], alpha=alpha)[0]
    assert t > 0
    assert 1 / (1 + math.exp(2 * t)) == pytest.approx(2 * alpha * t, abs=1e-12)
    assert bradley_terry([(0, 1)], alpha=alpha)[1] == pytest.approx(-t, abs=1e-12)


# --- against choix -----------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [1e-6, 1e-3, 0.1, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_it_agrees_with_choix_opt_pairwise_with_the_same_ridge(alpha, seed):
    strengths = np.random.default_rng(100 + seed).normal(size=8)
    pairs = simulate(strengths, 300, seed)
    ours = bradley_terry(pairs, 8, alpha=alpha)
    reference = choix.opt_pairwise(8, as_list(pairs), alpha=alpha, tol=1e-12, max_iter=1000)
    assert np.max(np.abs(ours - reference)) < 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_without_a_ridge_it_is_the_maximum_likelihood_of_ilsr_and_hunters_mm(seed):
    strengths = np.random.default_rng(200 + seed).normal(size=6)
    pairs = as_list(simulate(strengths, 400, seed))
    ours = bradley_terry(pairs, 6, alpha=0)
    ilsr = choix.ilsr_pairwise(6, pairs, alpha=0, tol=1e-12, max_iter=1000)
    mm = choix.mm_pairwise(6, pairs, alpha=0, tol=1e-12, max_iter=100_000)
    assert np.max(np.abs(ours - ilsr)) < 1e-8
    assert np.max(np.abs(ours - mm)) < 1e-8


def test_ties_match_choix_on_doubled_data():
    # Half a win each way: doubling every count turns a tie into one win each way, and the
    # objective doubles, so the same optimum has twice the ridge.
    strengths = np.array([0.5, 0.0, -0.7, 1.2, -1.0])
    pairs = simulate(strengths, 200, 7)
    tie = np.random.default_rng(8).random(len(pairs)) < 0.3
    alpha = 1e-3
    ours = bradley_terry(pairs, 5, is_tie=tie, alpha=alpha)
    doubled = [p for p, t in zip(as_list(pairs), tie, strict=True) if not t] * 2
    doubled += [p for p, t in zip(as_list(pairs), tie, strict=True) if t]
    doubled += [(q, p) for (p, q), t in zip(as_list(pairs), tie, strict=True) if t]
    reference = choix.opt_pairwise(5, doubled, alpha=2 * alpha, tol=1e-12, max_iter=1000)
    assert np.max(np.abs(ours - reference)) < 1e-6


def test_ties_pull_two_strengths_together_and_ignore_drops_them():
    pairs = [(0, 1)] * 3 + [(1, 0)]
    strict = bradley_terry(pairs, alpha=0)
    with_ties = bradley_terry(pairs + [(0, 1)] * 4, is_tie=[False] * 4 + [True] * 4, alpha=0)
    ignored = bradley_terry(pairs + [(0, 1)] * 4, is_tie=[False] * 4 + [True] * 4,
                            ties="ignore", alpha=0)
    assert 0 < with_ties[0] < strict[0]
    # 3 + 2 : 1 + 2 -> log(5/3)
    assert with_ties[0] - with_ties[1] == pytest.approx(math.log(5 / 3), abs=1e-10)
    assert ignored == pytest.approx(strict, abs=1e-12)


def test_integer_weights_count_as_repeated_pairs():
    pairs = simulate(np.array([1.0, 0.0, -1.0, 0.3]), 60, 3)
    weights = np.random.default_rng(4).integers(1, 4, len(pairs))
    repeated = np.repeat(pairs, weights, axis=0)
    assert bradley_terry(pairs, 4, weights) == pytest.approx(bradley_terry(repeated, 4),
                                                             abs=1e-9)


def test_it_recovers_known_strengths_from_simulated_data():
    truth = centred([1.5, 0.8, 0.0, -0.4, -1.9])
    theta = bradley_terry(simulate(truth, 20_000, 11), 5)
    assert np.max(np.abs(theta - truth)) < 0.08
    assert list(np.argsort(-theta)) == [0, 1, 2, 3, 4]


def test_the_sparse_solver_for_many_items_gives_the_dense_answer(monkeypatch):
    strengths = np.random.default_rng(5).normal(size=40)
    pairs = simulate(strengths, 2000, 6)
    dense = bradley_terry(pairs, 40)
    monkeypatch.setattr(aggregation, "_DENSE_ITEMS", 10)
    assert bradley_terry(pairs, 40) == pytest.approx(dense, abs=1e-9)


# --- edge cases ----------------------------------------------------------------------------------

@pytest.mark.parametrize("pairs", [[], np.empty((0, 2), dtype=int)])
def test_no_pairs_is_a_clear_error(pairs):
    with pytest.raises(ValueError, match="no pairs"):
        bradley_terry(pairs)


def test_disconnected_and_undefeated_items_stay_finite():
    theta = bradley_terry([(0, 1), (2, 3), (2, 3)], n=5)
    assert np.all(np.isfinite(theta))
    assert theta.sum() == pytest.approx(0, abs=1e-9)
    assert theta[0] > 0 > theta[1] and theta[2] > theta[0] and theta[3] < theta[1]
    # Item 4 played nobody: the prior keeps it at the mean.
    assert theta[4] == pytest.approx(0, abs=1e-9)


def test_without_a_ridge_an_undefeated_item_is_an_error_not_infinity():
    with pytest.raises(ValueError, match="strongly connected"):
        bradley_terry([(0, 1), (0, 2), (1, 2), (2, 1)], alpha=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pairs": [(0, 0)]}, "itself"),
        ({"pairs": [(0, -1)]}, ">= 0"),
        ({"pairs": [(0, 3)], "n": 3}, "out of range"),
        ({"pairs": [(0, 1, 2)]}, "shape"),
        ({"pairs": [(0.5, 1)]}, "integer"),
        ({"pairs": [(0, 1)], "weights": [-1]}, "weights"),
        ({"pairs": [(0, 1)], "weights": [1, 2]}, "one entry per pair"),
        ({"pairs": [(0, 1)], "ties": "davidson"}, "ties"),
        ({"pairs": [(0, 1)], "alpha": -1}, "alpha"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bradley_terry(**kwargs)


# --- bootstrap -----------------------------------------------------------------------------------

def test_bootstrap_intervals_contain_the_truth_in_a_simulated_case():
    truth = centred([1.0, 0.4, 0.0, -1.4])
    result = bootstrap_bt(simulate(truth, 3000, 21), 4, rounds=500, seed=1)
    assert np.all(result["lower"] <= truth) and np.all(truth <= result["upper"])
    assert np.all(result["lower"] < result["estimate"])
    assert np.all(result["estimate"] < result["upper"])
    assert result["samples"].shape == (500, 4)


def test_bootstrap_95_percent_intervals_cover_the_truth_about_95_percent_of_the_time():
    truth = centred([0.9, 0.2, -0.3, -0.8])
    hits = total = 0
    for seed in range(50):
        result = bootstrap_bt(simulate(truth, 600, 1000 + seed), 4, rounds=200, seed=seed)
        hits += int(np.sum((result["lower"] <= truth) & (truth <= result["upper"])))
        total += 4
    assert 0.88 <= hits / total <= 0.995


def test_bootstrap_is_reproducible_with_the_seed():
    pairs = simulate(np.array([0.5, 0.0, -0.5]), 300, 2)
    first = bootstrap_bt(pairs, 3, rounds=100, seed=7)
    again = bootstrap_bt(pairs, 3, rounds=100, seed=7)
    other = bootstrap_bt(pairs, 3, rounds=100, seed=8)
    assert np.array_equal(first["samples"], again["samples"])
    assert np.array_equal(first["lower"], again["lower"])
    assert not np.array_equal(first["samples"], other["samples"])
    assert first["estimate"] == pytest.approx(bradley_terry(pairs, 3), abs=1e-9)


def test_resampling_groups_keeps_their_pairs_together():
    # Every judgement gives ten copies of one pair: resampling pairs would treat them as ten
    # independent comparisons and give intervals about sqrt(10) times too narrow.
    base = simulate(np.array([0.6, 0.0, -0.6]), 60, 9)
    pairs = np.repeat(base, 10, axis=0)
    groups = np.repeat(np.arange(len(base)), 10)
    by_pair = bootstrap_bt(pairs, 3, rounds=300, seed=0)
    by_group = bootstrap_bt(pairs, 3, rounds=300, seed=0, groups=groups)
    narrow = by_pair["upper"] - by_pair["lower"]
    wide = by_group["upper"] - by_group["lower"]
    assert np.all(wide > 2 * narrow)
    # The point estimate does not depend on how intervals are drawn.
    assert by_group["estimate"] == pytest.approx(by_pair["estimate"], abs=1e-12)


def test_judgements_alike_are_drawn_together_with_the_same_distribution_as_one_by_one():
    # 90 judgements of only 4 distinct patterns: bootstrap_bt draws patterns by multiplicity;
    # drawing the 90 judgements one by one (here, plainly) must give the same spread.
    patterns = [[(0, 1), (0, 2), (1, 2)], [(1, 0), (0, 2), (1, 2)], [(2, 0), (2, 1), (0, 1)],
                [(0, 1)]]
    chosen = np.random.default_rng(3).choice(4, size=90, p=[0.4, 0.3, 0.2, 0.1])
    pairs = [pair for k in chosen for pair in patterns[k]]
    groups = [g for g, k in enumerate(chosen) for _ in patterns[k]]
    fast = bootstrap_bt(pairs, 3, rounds=1500, seed=0, groups=groups)
    rng = np.random.default_rng(1)
    plain = []
    for _ in range(1500):
        counts = np.bincount(rng.integers(0, 90, 90), minlength=90)
        plain.append(bradley_terry(pairs, 3, counts[groups]))
    plain = np.array(plain)
    assert fast["std"] == pytest.approx(plain.std(axis=0, ddof=1), rel=0.1)
    assert fast["lower"] == pytest.approx(np.quantile(plain, 0.025, axis=0), abs=0.08)
    assert fast["upper"] == pytest.approx(np.quantile(plain, 0.975, axis=0), abs=0.08)


def test_signatures_ignore_the_order_of_a_units_pairs_but_not_their_weights():
    unit = np.array([0, 0, 1, 1, 2, 2, 3])
    key = np.array([5, 7, 7, 5, 5, 7, 5])
    weight = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0])
    count, signature_of_row, rep = aggregation._signatures(unit, key, weight, 4)
    assert sorted(count) == [1, 1, 2]
    assert signature_of_row[0] == signature_of_row[2] != signature_of_row[4]
    assert signature_of_row[4] != signature_of_row[6]
    # One representative unit per signature keeps its rows.
    assert rep.sum() == 2 + 2 + 1


def test_bootstrap_rejects_a_level_outside_zero_one_and_no_ridge():
    with pytest.raises(ValueError, match="level"):
        bootstrap_bt([(0, 1), (1, 0)], 2, level=1.5)
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_bt([(0, 1), (1, 0)], 2, alpha=0)
    with pytest.raises(ValueError, match="no pairs"):
        bootstrap_bt([], 2)
    with pytest.raises(ValueError, match="no pairs left"):
        bootstrap_bt([(0, 1)], 2, is_tie=[True], ties="ignore")


def test_elo_scale_gives_400_points_for_ten_times_the_odds():
    assert to_elo([math.log(10), 0.0]) == pytest.approx([1400.0, 1000.0])


# --- per-item consensus --------------------------------------------------------------------------

def test_ranking_to_pairs_gives_ordered_pairs_and_ties():
    assert list(ranking_to_pairs([[1, 2], [3]])) == [(1, 2, True), (1, 3, False), (2, 3, False)]


def test_majority_reports_the_most_often_first_and_ties_for_first():
    votes = majority_consensus([[[1], [2], [3]], [[1], [3], [2]], [[2], [1], [3]]])
    assert votes["top"] == [1] and not votes["tied"]
    assert votes["votes"] == {1: 2, 2: 1, 3: 0}
    assert votes["share"] == pytest.approx(2 / 3)
    tied = majority_consensus([[[1], [2]], [[2], [1]], [[1, 2]]])
    assert tied["top"] == [1, 2] and tied["tied"]


def test_majority_weights_votes():
    votes = majority_consensus([[[1], [2]], [[1], [2]], [[2], [1]]], weights=[1, 1, 3])
    assert votes["top"] == [2] and votes["share"] == pytest.approx(3 / 5)


def test_consensus_needs_a_ranking():
    with pytest.raises(ValueError, match="no rankings"):
        majority_consensus([])
    with pytest.raises(ValueError, match="no rankings"):
        bt_consensus([[], []])


def test_bt_consensus_orders_by_the_pairs_all_rankings_imply():
    # 1 beats 2 in two of three rankings and everyone puts 3 last.
    result = bt_consensus([[[1], [2], [3]], [[1], [2], [3]], [[2], [1], [3]]])
    assert result["ranking"] == [[1], [2], [3]]
    assert result["pairs"] == 9 and result["rankings"] == 3
    assert result["scores"][1] > result["scores"][2] > result["scores"][3]


def test_bt_consensus_ties_what_the_annotators_balance_out():
    result = bt_consensus([[[1], [2], [3]], [[2], [1], [3]], [[1, 2], [3]]])
    assert result["ranking"] == [[1, 2], [3]]


def test_bt_consensus_follows_the_heavier_annotator():
    rankings = [[[1], [2]], [[1], [2]], [[2], [1]]]
    assert bt_consensus(rankings)["ranking"] == [[1], [2]]
    assert bt_consensus(rankings, weights=[0.2, 0.2, 1.0])["ranking"] == [[2], [1]]


def test_bt_consensus_of_one_candidate_is_that_candidate():
    assert bt_consensus([[[7]]])["ranking"] == [[7]]


def test_order_by_score_groups_equal_scores():
    assert order_by_score({"a": 1.0, "b": 1.0 + 1e-9, "c": -2.0}) == [["b", "a"], ["c"]]


# --- annotator weights ---------------------------------------------------------------------------

def test_annotator_weights_prefer_gold_accuracy_then_agreement_then_one():
    weights = annotator_weights(
        {"ann": 0.8, "bob": None, "cy": float("nan"), "dee": 0.02},
        {"ann": 0.3, "bob": 0.6, "cy": None, "eve": 1.7},
    )
    assert weights == {"ann": 0.8, "bob": 0.6, "cy": 1.0, "dee": 0.1, "eve": 1.0}


def test_annotator_weights_take_sequences_and_a_floor():
    weights = annotator_weights([0.9, None, 0.0], [None, 0.5, None], floor=0.25)
    assert weights == pytest.approx([0.9, 0.5, 0.25])
    with pytest.raises(ValueError, match="floor"):
        annotator_weights({}, {}, floor=0)
