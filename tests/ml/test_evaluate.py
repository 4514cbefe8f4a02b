"""Win-rate arithmetic: outcomes, ties as halves, Wilson intervals."""

import math

import pytest

from rlhf.ml.evaluate import outcome, tally, wilson_interval, win_rate


def test_wilson_interval_matches_the_textbook_example():
    # 81 successes of 263 (Wilson 1927 / Newcombe 1998 example 1): 0.2553 to 0.3662.
    low, high = wilson_interval(81, 263)
    assert math.isclose(low, 0.2553, abs_tol=5e-4) and math.isclose(high, 0.3662, abs_tol=5e-4)


def test_wilson_interval_stays_inside_zero_one():
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_ties_count_half_and_the_interval_brackets_the_rate():
    result = tally([1, 1, 0.5, 0, 1])
    assert result["wins"] == 3 and result["ties"] == 1 and result["losses"] == 1
    assert result["win_rate"] == pytest.approx(3.5 / 5)
    assert result["ci_low"] < result["win_rate"] < result["ci_high"]


def test_scores_within_tolerance_tie():
    assert outcome(1.0, 1.0 + 1e-9) == 0.5
    assert outcome(2.0, 1.0) == 1.0 and outcome(1.0, 2.0) == 0.0


def test_win_rate_under_a_scorer():
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(4)]
    result = win_rate(prompts, ["long answer", "x", "same", "longer one"],
                      ["short", "longer", "same", "a"], lambda prompt, text: len(text))
    assert result["outcomes"] == [1.0, 0.0, 0.5, 1.0]
    assert result["win_rate"] == pytest.approx(2.5 / 4)
    with pytest.raises(ValueError, match="differ in length"):
        win_rate(prompts, ["a"], ["b"], len)
