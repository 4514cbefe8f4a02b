"""Agreement metrics: published worked examples, agreement with libraries, edge cases."""

import subprocess
import sys
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from scipy.stats import binomtest, friedmanchisquare, kendalltau
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from annotate.agreement import (
    cohen_kappa,
    fleiss_kappa,
    kendall_w,
    kendall_w_overall,
    krippendorff_alpha,
    leave_one_out_agreement,
    length_bias,
    mean_pairwise_kendall_tau,
    pairwise_percent_agreement,
    position_bias,
    rank_matrix,
)

ROOT = Path(__file__).resolve().parents[2]
LEVELS = ["nominal", "ordinal", "interval", "ratio"]
nan = np.nan

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C:
# 4 observers x 12 units, missing values.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
]

# Fleiss (1971) style table as worked on Wikipedia ("Fleiss' kappa", worked example):
# 10 subjects, 14 raters, 5 categories.
FLEISS_WIKIPEDIA = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def random_reliability(rng, coders, units, values, missing=0.2):
    """Coders x units ratings drawn from `values`, about `missing` of them NaN."""
    data = rng.choice(np.asarray(values, dtype=float), size=(coders, units))
    data[rng.random(data.shape) < missing] = nan
    return data


# --------------------------------------------------------------------------------------
# Krippendorff's alpha
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "expected"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_it_reproduces_krippendorffs_2011_worked_example(level, expected):
    assert round(krippendorff_alpha(KRIPPENDORFF_2011, level), 3) == expected


def test_it_reproduces_the_worked_example_with_string_labels():
    words = {1: "very low", 2: "low", 3: "mid", 4: "high", 5: "very high"}
    data = [[None if v != v else words[v] for v in row] for row in KRIPPENDORFF_2011]
    assert round(krippendorff_alpha(data, "nominal"), 3) == 0.743


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("seed", range(5))
def test_it_matches_the_krippendorff_package_on_random_integer_data(level, seed):
    rng = np.random.default_rng(seed)
    data = random_reliability(rng, coders=int(rng.integers(2, 7)), units=300,
                              values=range(1, 8), missing=0.3)
    ours = krippendorff_alpha(data, level)
    theirs = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert ours == pytest.approx(theirs, abs=1e-9)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("seed", range(3))
def test_it_matches_the_krippendorff_package_on_continuous_values(level, seed):
    rng = np.random.default_rng(100 + seed)
    truth = rng.gamma(2.0, 10.0, size=60)
    data = truth + rng.normal(0, 4.0, size=(4, 60))
    data = np.abs(data)
    data[rng.random(data.shape) < 0.25] = nan
    ours = krippendorff_alpha(data, level)
    theirs = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert ours == pytest.approx(theirs, abs=1e-9)


@pytest.mark.parametrize("level", LEVELS)
def test_it_matches_the_package_with_many_coders_each_rating_a_few_units(level):
    # More coders than the dense path handles: units are packed before pairing.
    rng = np.random.default_rng(7)
    coders, units = 25, 80
    data = np.full((coders, units), nan)
    for u in range(units):
        who = rng.choice(coders, size=int(rng.integers(1, 6)), replace=False)
        data[who, u] = rng.integers(0, 5) + rng.integers(-1, 2, size=who.size)
    data = np.abs(data)
    ours = krippendorff_alpha(data, level)
    theirs = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_it_matches_the_package_on_random_string_labels():
    rng = np.random.default_rng(3)
    data = rng.choice(np.array(["good", "bad", "unsure", "spam"]), size=(3, 200)).astype(object)
    data[rng.random(data.shape) < 0.2] = nan
    theirs = krippendorff.alpha(reliability_data=data.astype(str), level_of_measurement="nominal")
    assert krippendorff_alpha(data, "nominal") == pytest.approx(theirs, abs=1e-9)
    # A numpy string array holds NaN as the string "nan": treated as missing, like the package.
    assert krippendorff_alpha(data.astype(str), "nominal") == pytest.approx(theirs, abs=1e-9)


def test_it_handles_a_hundred_thousand_distinct_interval_values():
    rng = np.random.default_rng(11)
    truth = rng.normal(50, 10, size=100_000)
    data = truth + rng.normal(0, 5, size=(3, 100_000))
    data[rng.random(data.shape) < 0.05] = nan
    # The definition written out: pairs within units, and all pairs of pairable values.
    present = ~np.isnan(data)
    keep = present.sum(axis=0) >= 2
    d, p = data[:, keep], present[:, keep]
    m_u = p.sum(axis=0)
    observed = 0.0
    for i in range(3):
        for j in range(3):
            if i != j:
                both = p[i] & p[j]
                observed += np.sum((d[i, both] - d[j, both]) ** 2 / (m_u[both] - 1))
    values = d[p]
    n = values.size
    expected = 2 * n * np.sum((values - values.mean()) ** 2) / (n * (n - 1))
    reference = 1 - (observed / n) / expected
    assert krippendorff_alpha(data, "interval") == pytest.approx(reference, abs=1e-9)


@pytest.mark.parametrize("level", LEVELS)
def test_it_ignores_units_with_a_single_rating(level):
    base = np.array(KRIPPENDORFF_2011)
    extra = np.full((4, 3), nan)
    extra[0, 0], extra[2, 1], extra[3, 2] = 9, 1, 4
    padded = np.hstack([base, extra])
    assert krippendorff_alpha(padded, level) == pytest.approx(krippendorff_alpha(base, level))


@pytest.mark.parametrize("level", LEVELS)
def test_it_is_one_when_all_coders_agree_on_every_unit(level):
    data = [[1, 2, 3, nan, 5], [1, 2, 3, 4, 5], [nan, 2, 3, 4, 5]]
    assert krippendorff_alpha(data, level) == 1.0


@pytest.mark.parametrize("level", LEVELS)
def test_it_defines_a_single_category_as_perfect_agreement(level):
    data = [[2, 2, nan, 2], [2, 2, 2, 2]]
    assert krippendorff_alpha(data, level) == 1.0
    with pytest.raises(ValueError, match="same single value"):
        krippendorff_alpha(data, level, no_variation="raise")
    # The package refuses this case; we document and return 1.0 by default.
    with pytest.raises(ValueError):
        krippendorff.alpha(reliability_data=data, level_of_measurement=level)


def test_it_uses_only_pairable_values_to_decide_there_is_no_variation():
    # Unit 2 has a lone 7: not pairable, so every pairable value is 2.
    assert krippendorff_alpha([[2, 2, 7], [2, 2, nan]], "interval") == 1.0


@pytest.mark.parametrize(
    "data",
    [
        [[1, 2, 3, 4]],  # one coder
        [[1, nan, nan], [nan, 2, nan], [nan, nan, 3]],  # nobody rates a unit twice
        [[nan, nan], [nan, nan]],  # all missing
        [[None, None], [None, None]],
    ],
)
def test_it_refuses_data_without_pairable_units(data):
    with pytest.raises(ValueError, match="no pairable units"):
        krippendorff_alpha(data)


@pytest.mark.parametrize("data", [[], [[]], np.empty((0, 5)), np.empty((3, 0))])
def test_it_refuses_empty_data(data):
    with pytest.raises(ValueError, match="empty|2-D"):
        krippendorff_alpha(data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data": [1, 2, 3]}, "2-D"),
        ({"data": [[1, 2], [1, 2]], "level": "cardinal"}, "level must be"),
        ({"data": [["a", "b"], ["a", "c"]], "level": "ordinal"}, "numeric"),
        ({"data": [[1, -2], [1, 2]], "level": "ratio"}, "non-negative"),
        ({"data": [[1, np.inf], [1, 2]]}, "infinite"),
        ({"data": np.array([[1, "a"], [2, "a"]], dtype=object)}, "mixes label types"),
        ({"data": [[1, 2], [1, 2]], "no_variation": "zero"}, "no_variation"),
    ],
)
def test_it_says_what_is_wrong_with_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        krippendorff_alpha(**kwargs)


def test_it_accepts_integer_and_boolean_arrays():
    ints = np.array([[1, 2, 3, 1], [1, 2, 2, 1]])
    assert krippendorff_alpha(ints) == pytest.approx(krippendorff_alpha(ints.astype(float)))
    bools = np.array([[True, False, True], [True, False, False]])
    assert krippendorff_alpha(bools) == pytest.approx(
        krippendorff.alpha(reliability_data=bools.astype(float), level_of_measurement="nominal")
    )


def test_it_matches_the_package_on_labels_spread_over_a_wide_integer_range():
    # Too wide for the bincount shortcut: falls back to sorting.
    rng = np.random.default_rng(5)
    data = random_reliability(rng, coders=3, units=100, values=[0, 10**7, 3 * 10**9, 17])
    theirs = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert krippendorff_alpha(data) == pytest.approx(theirs, abs=1e-9)


# --------------------------------------------------------------------------------------
# Fleiss' kappa
# --------------------------------------------------------------------------------------


def test_it_reproduces_the_fleiss_worked_example():
    assert round(fleiss_kappa(FLEISS_WIKIPEDIA), 3) == 0.210


@pytest.mark.parametrize("seed", range(5))
def test_it_matches_statsmodels_fleiss_kappa(seed):
    rng = np.random.default_rng(seed)
    raters, categories = int(rng.integers(2, 9)), int(rng.integers(2, 6))
    probs = rng.dirichlet(np.ones(categories), size=120)
    table = np.array([rng.multinomial(raters, p) for p in probs])
    expected = sm_fleiss_kappa(table, method="fleiss")
    assert fleiss_kappa(table) == pytest.approx(expected, abs=1e-9)


def test_it_defines_fleiss_kappa_for_a_single_category():
    assert fleiss_kappa([[3, 0], [3, 0]]) == 1.0
    with pytest.raises(ValueError, match="same single value"):
        fleiss_kappa([[3, 0], [3, 0]], no_variation="raise")


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ([[2, 1], [1, 1]], "same number of ratings: unit 0 has 3, unit 1 has 2"),
        ([[1, 0], [0, 1]], "at least two ratings"),
        ([], "2-D|empty"),
        (np.empty((0, 3)), "empty"),
        ([[1.5, 0.5], [2, 0]], "whole numbers"),
        ([[3, -1], [2, 0]], "whole numbers"),
        ([1, 2, 3], "2-D"),
    ],
)
def test_it_says_what_is_wrong_with_a_fleiss_table(counts, message):
    with pytest.raises(ValueError, match=message):
        fleiss_kappa(counts)


# --------------------------------------------------------------------------------------
# Cohen's kappa
# --------------------------------------------------------------------------------------


def test_it_reproduces_the_50_proposals_example():
    # Wikipedia, "Cohen's kappa": A and B both say yes 20 times, both no 15 times,
    # A yes / B no 5 times, A no / B yes 10 times: p_o = 0.7, p_e = 0.5, kappa = 0.4.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(5))
def test_it_matches_scikit_learn_cohen_kappa(weights, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 6, size=200)
    b = np.clip(a + rng.integers(-2, 3, size=200), 1, 6)
    expected = cohen_kappa_score(a, b, weights=weights)
    assert cohen_kappa(a, b, weights) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_it_orders_string_labels_like_scikit_learn(weights):
    a = ["b", "a", "c", "c", "a", "b", "d", "a"]
    b = ["b", "b", "c", "d", "a", "a", "d", "c"]
    assert cohen_kappa(a, b, weights) == pytest.approx(
        cohen_kappa_score(a, b, weights=weights), abs=1e-9
    )


def test_it_defines_cohen_kappa_when_both_raters_use_one_label():
    assert cohen_kappa(["x", "x", "x"], ["x", "x", "x"]) == 1.0
    with pytest.raises(ValueError, match="same single value"):
        cohen_kappa(["x"], ["x"], no_variation="raise")
    # Opposite constant raters: no agreement beyond chance.
    assert cohen_kappa(["x", "x"], ["y", "y"]) == 0.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1, 2, 3], [1, 2]), "equally long: 3 != 2"),
        (([1, 2], [1, 2], "cubic"), "weights must be"),
        (([], []), "at least one unit"),
        (([1.0, nan], [1.0, 2.0]), "missing"),
        (([1, None], [1, 2]), "missing"),
        (([[1, 2]], [[1, 2]]), "1-D"),
    ],
)
def test_it_says_what_is_wrong_with_cohen_input(args, message):
    with pytest.raises(ValueError, match=message):
        cohen_kappa(*args)


# --------------------------------------------------------------------------------------
# Rankings
# --------------------------------------------------------------------------------------


def test_it_reproduces_a_kendall_w_example_without_ties():
    # ProofWiki, "Kendall's Coefficient of Concordance/Examples/Arbitrary Example 1":
    # 4 judges rank 3 competitors; W = 1/16.
    judges = [[1, 3, 2], [1, 2, 3], [2, 3, 1], [3, 1, 2]]
    assert kendall_w(judges) == pytest.approx(1 / 16)


def test_it_reproduces_a_kendall_w_example_with_ties():
    # NAG Library routine G08DAF example: 3 comparisons of 10 objects with tied scores,
    # W = 0.828 with the tie correction.
    scores = [
        [1.0, 4.5, 2.0, 4.5, 3.0, 7.5, 6.0, 9.0, 7.5, 10.0],
        [2.5, 1.0, 2.5, 4.5, 4.5, 8.0, 9.0, 6.5, 10.0, 6.5],
        [2.0, 1.0, 4.5, 4.5, 4.5, 4.5, 8.0, 8.0, 8.0, 10.0],
    ]
    assert round(kendall_w(scores), 3) == 0.828


@pytest.mark.parametrize("seed", range(5))
def test_it_matches_the_tie_corrected_friedman_statistic(seed):
    # W = chi2_F / (m (n - 1)), with scipy's Friedman chi-square corrected for ties.
    rng = np.random.default_rng(seed)
    raters, objects = int(rng.integers(2, 8)), int(rng.integers(3, 9))
    scores = rng.integers(0, 4, size=(raters, objects))
    chi2 = friedmanchisquare(*scores.T).statistic
    assert kendall_w(scores) == pytest.approx(chi2 / (raters * (objects - 1)), abs=1e-9)


def test_it_gives_w_one_for_identical_rankings_and_refuses_undefined_ones():
    assert kendall_w([[1, 2, 3], [1, 2, 3], [1, 2, 3]]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="tied every object"):
        kendall_w([[1, 1, 1], [2, 2, 2]])
    with pytest.raises(ValueError, match="two raters"):
        kendall_w([[1, 2, 3]])
    with pytest.raises(ValueError, match="two ranked objects"):
        kendall_w([[1], [1]])
    with pytest.raises(ValueError, match="finite"):
        kendall_w([[1, nan], [1, 2]])


def test_it_averages_or_pools_kendall_w_over_items():
    a = [[1, 2, 3], [1, 2, 3]]  # W = 1, 12 S = 96, D = 96
    b = [[1, 2], [2, 1]]  # W = 0, D = 4 * 6 = 24
    c = [[1, 2, 3]]  # one rater: skipped
    d = [[1, 1], [1, 1]]  # all tied: skipped
    mean = kendall_w_overall([a, b, c, d])
    assert mean == {"w": pytest.approx(0.5), "items": 2, "skipped": 2}
    weighted = kendall_w_overall([a, b], weights=[3, 1])
    assert weighted["w"] == pytest.approx(0.75)
    pooled = kendall_w_overall([a, b], method="pooled")
    assert pooled["w"] == pytest.approx(96 / (96 + 24))
    assert kendall_w_overall([c])["w"] is None
    with pytest.raises(ValueError, match="one number per item"):
        kendall_w_overall([a, b], weights=[1])
    with pytest.raises(ValueError, match="method"):
        kendall_w_overall([a], method="median")


def test_it_averages_kendall_tau_b_over_rater_pairs():
    ranks = [[1, 2, 3, 4], [1, 2, 4, 3], [4, 3, 2, 1], [1, 1, 2, 3]]
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    expected = np.mean([kendalltau(ranks[i], ranks[j]).statistic for i, j in pairs])
    assert mean_pairwise_kendall_tau(ranks) == pytest.approx(expected, abs=1e-12)
    # A rater who tied everything has no tau with anyone and is left out.
    assert mean_pairwise_kendall_tau([[1, 2, 3], [1, 2, 3], [2, 2, 2]]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="tied every object"):
        mean_pairwise_kendall_tau([[1, 2, 3], [2, 2, 2]])


def test_it_builds_rank_matrices_from_tie_group_rankings():
    ranks, objects = rank_matrix([[["a"], ["b", "c"]], [["c"], ["a"], ["b"], ["z"]]])
    assert objects == ["a", "b", "c"]
    assert ranks.tolist() == [[1.0, 2.5, 2.5], [2.0, 3.0, 1.0]]


def test_it_keeps_pairwise_percent_agreement_as_it_was():
    rankings = [[["a"], ["b"]], [["a"], ["b"]], [["b"], ["a"]]]
    assert pairwise_percent_agreement([rankings]) == (pytest.approx(1 / 3), 3)
    assert pairwise_percent_agreement([[rankings[0]]]) == (None, 0)


# --------------------------------------------------------------------------------------
# Per-annotator agreement with the leave-one-out consensus
# --------------------------------------------------------------------------------------


def test_it_scores_each_annotator_against_the_others_majority():
    items = [
        {"ann": "A", "bob": "A", "cy": "B"},  # ann, bob: the others tie; cy misses
        {"ann": "A", "bob": "A", "cy": "A"},  # everyone agrees
        {"ann": "B", "bob": "A", "cy": "A", "dee": "A"},  # ann misses; the rest hit
        {"ann": "C"},  # alone
        {"ann": "A", "bob": None},  # bob gave no label: ann is alone
    ]
    result = leave_one_out_agreement(items)
    ann = result["annotators"]["ann"]
    assert ann == {"agreement": 0.5, "agree": 1, "items": 2, "ties": 1, "alone": 2}
    assert result["annotators"]["cy"] == {
        "agreement": pytest.approx(2 / 3), "agree": 2, "items": 3, "ties": 0, "alone": 0,
    }
    assert result["annotators"]["dee"]["agreement"] == 1.0
    assert result["pool"] == {"agreement": 0.75, "agree": 6, "items": 8, "ties": 2, "alone": 2}
    assert leave_one_out_agreement([{"x": 1}])["annotators"]["x"]["agreement"] is None


def test_it_compares_rankings_ignoring_order_within_tie_groups():
    items = [
        {
            "ann": [["a"], ["b", "c"]],
            "bob": [["a"], ["c", "b"]],
            "cy": [["b"], ["a", "c"]],
        }
    ]
    result = leave_one_out_agreement(items)["annotators"]
    assert result["cy"]["agreement"] == 0.0
    assert result["ann"]["ties"] == 1  # the others are bob and cy, who differ
    top_only = leave_one_out_agreement(
        [{"ann": [["a"], ["b"]], "bob": [["a"], ["c"], ["b"]], "cy": [["a"], ["b"]]}],
        key=lambda ranking: frozenset(ranking[0]),
    )
    assert top_only["pool"] == {"agreement": 1.0, "agree": 3, "items": 3, "ties": 0, "alone": 0}


# --------------------------------------------------------------------------------------
# Position and length bias
# --------------------------------------------------------------------------------------


def pair(annotator, item, shown, chosen, lengths=None):
    record = {"annotator": annotator, "item": item, "shown": shown, "chosen": chosen}
    if lengths is not None:
        record["lengths"] = lengths
    return record


def test_it_measures_how_often_the_first_shown_candidate_wins():
    records = [
        # item 1: x is the better answer; ann always picks whatever is shown first.
        pair("ann", 1, ["y", "x"], "y"),
        pair("bob", 1, ["x", "y"], "x"),
        pair("cy", 1, ["y", "x"], "x"),
        # item 2: z is better.
        pair("ann", 2, ["z", "w"], "z"),
        pair("bob", 2, ["w", "z"], "z"),
        pair("cy", 2, ["w", "z"], "z"),
        pair("cy", 3, ["p", "q"], None),  # a tie: skipped
    ]
    result = position_bias(records)
    ann = result["annotators"]["ann"]
    assert (ann["n"], ann["hits"], ann["rate"], ann["chance"]) == (2, 2, 1.0, 0.5)
    assert ann["p_value"] == pytest.approx(binomtest(2, 2, 0.5).pvalue)
    # The others' consensus for ann: x on item 1 (shown second to ann), z on item 2 (first).
    assert (ann["consensus_n"], ann["consensus_rate"]) == (2, 0.5)
    cy = result["annotators"]["cy"]
    assert (cy["n"], cy["hits"], cy["skipped"]) == (2, 0, 1)
    # cy's others on item 1 are ann (y) and bob (x): a tie, so no consensus there.
    assert (cy["consensus_n"], cy["consensus_rate"]) == (1, 0.0)
    pool = result["pool"]
    assert (pool["n"], pool["hits"], pool["skipped"]) == (6, 3, 1)
    assert pool["p_value"] == pytest.approx(1.0)


def test_it_uses_one_in_k_as_chance_for_k_candidates():
    records = [pair("ann", i, ["a", "b", "c"], "a") for i in range(9)]
    ann = position_bias(records)["annotators"]["ann"]
    assert ann["chance"] == pytest.approx(1 / 3)
    assert ann["p_value"] == pytest.approx(binomtest(9, 9, 1 / 3).pvalue)
    assert ann["consensus_rate"] is None and ann["consensus_n"] == 0


def test_it_measures_how_often_the_longer_candidate_wins():
    records = [
        pair("ann", 1, ["s", "l"], "l", {"s": 10, "l": 300}),
        pair("ann", 2, ["s2", "l2"], "l2", [20, 200]),
        pair("ann", 3, ["e1", "e2"], "e1", [50, 50]),  # equal lengths: not counted
        pair("bob", 1, ["l", "s"], "s", {"s": 10, "l": 300}),
        pair("cy", 1, ["l", "s"], "s", {"s": 10, "l": 300}),
    ]
    result = length_bias(records)
    ann = result["annotators"]["ann"]
    assert (ann["n"], ann["hits"], ann["rate"], ann["length_undefined"]) == (2, 2, 1.0, 1)
    assert (ann["consensus_n"], ann["consensus_rate"]) == (1, 0.0)
    assert result["pool"]["hits"] == 2 and result["pool"]["n"] == 4


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (pair("a", 1, ["x", "y"], "z", [1, 2]), "not among the shown"),
        (pair("a", 1, ["x"], "x", [1]), "needs two or more"),
        (pair("a", 1, ["x", "x"], "x", [1, 1]), "twice"),
        (pair("a", 1, ["x", "y"], "x", [1]), "1 lengths for 2"),
        (pair("a", 1, ["x", "y"], "x", {"x": 1}), "no length for candidate 'y'"),
        (pair("a", 1, ["x", "y"], "x"), "no 'lengths'"),
        ({"annotator": "a", "shown": ["x", "y"], "chosen": "x"}, "no 'item'"),
    ],
)
def test_it_says_what_is_wrong_with_a_bias_record(record, message):
    with pytest.raises(ValueError, match=message):
        length_bias([record])


def test_it_reports_no_rates_without_judgements():
    result = position_bias([])
    assert result["annotators"] == {}
    assert result["pool"]["rate"] is None and result["pool"]["p_value"] is None


# --------------------------------------------------------------------------------------
# Module hygiene
# --------------------------------------------------------------------------------------


def test_it_imports_without_django():
    code = (
        "import sys, annotate.agreement as a; "
        "a.krippendorff_alpha([[1, 2], [1, 2]]); a.kendall_w([[1, 2], [2, 1]]); "
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')); "
        "sys.exit(f'django imported: {bad[:5]}' if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
