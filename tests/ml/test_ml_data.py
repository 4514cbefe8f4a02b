import math

import pytest

from rlhf.ml.callbacks import numeric_metrics
from rlhf.ml.data import prompt_key, read_jsonl, split_by_prompt, write_jsonl


def rows_for(n_prompts, per_prompt=3):
    rows = []
    for p in range(n_prompts):
        for r in range(per_prompt):
            rows.append(
                {
                    "id": p * 10 + r,
                    "prompt": [{"role": "user", "content": f"question {p}"}],
                    "chosen": [{"role": "assistant", "content": f"good {r}"}],
                    "rejected": [{"role": "assistant", "content": f"bad {r}"}],
                }
            )
    return rows


def test_it_keys_prompts_by_content_not_key_order():
    a = [{"role": "user", "content": "hi"}]
    b = [{"content": "hi", "role": "user"}]
    assert prompt_key(a) == prompt_key(b)
    assert prompt_key(a) != prompt_key([{"role": "user", "content": "hi!"}])
    assert len(prompt_key(a)) == 64


def test_it_never_puts_a_prompt_in_both_splits_and_is_deterministic():
    rows = rows_for(20)
    train, evaluation = split_by_prompt(rows, 0.2, seed=3)
    train_keys = {prompt_key(r["prompt"]) for r in train}
    eval_keys = {prompt_key(r["prompt"]) for r in evaluation}
    assert train_keys.isdisjoint(eval_keys)
    assert len(eval_keys) == 4 and len(train) + len(evaluation) == len(rows)
    assert split_by_prompt(rows, 0.2, seed=3) == (train, evaluation)
    # The side a prompt lands on does not depend on row order.
    _, shuffled_eval = split_by_prompt(list(reversed(rows)), 0.2, seed=3)
    assert {prompt_key(r["prompt"]) for r in shuffled_eval} == eval_keys
    _, other_eval = split_by_prompt(rows, 0.2, seed=4)
    assert {prompt_key(r["prompt"]) for r in other_eval} != eval_keys


def test_it_gives_tiny_datasets_a_non_empty_eval_split():
    train, evaluation = split_by_prompt(rows_for(2), 0.1, seed=0)
    assert len(evaluation) == 3 and len(train) == 3
    train, evaluation = split_by_prompt(rows_for(1), 0.1, seed=0)
    assert evaluation == [] and len(train) == 3
    train, evaluation = split_by_prompt(rows_for(5), 0.0, seed=0)
    assert evaluation == []


def test_it_round_trips_jsonl_and_reports_the_bad_line(tmp_path):
    path = tmp_path / "sub" / "rows.jsonl"
    rows = [{"a": 1, "text": "héllo"}, {"b": [1, 2]}]
    write_jsonl(path, rows)
    assert read_jsonl(path) == rows
    path.write_text('{"a": 1}\n\n{"b": \n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"rows\.jsonl:3: invalid JSON"):
        read_jsonl(path)
    path.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r":1: expected a JSON object"):
        read_jsonl(path)


def test_it_keeps_only_finite_numeric_metrics():
    logs = {
        "loss": 0.5,
        "step": 3,
        "eval_rewards/margins": 1.25,
        "note": "text",
        "flag": True,
        "bad": math.nan,
    }
    assert numeric_metrics(logs) == {"loss": 0.5, "step": 3.0, "eval_rewards/margins": 1.25}
