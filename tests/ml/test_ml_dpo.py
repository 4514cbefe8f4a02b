import json
from pathlib import Path

import pytest

from rlhf.ml.__main__ import main
from rlhf.ml.config import DPORunConfig
from rlhf.ml.data import split_by_prompt, write_jsonl
from rlhf.ml.dpo import train


def state_dict(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def test_it_trains_dpo_on_rows_with_extra_keys_and_reports_metrics(
    ml_base_model, tmp_path, preference_pairs
):
    import torch

    base = ml_base_model[0]
    train_rows, eval_rows = split_by_prompt(preference_pairs, 0.2, seed=0)
    assert eval_rows and all("judgement_id" in row for row in train_rows)
    snapshot = [dict(row) for row in train_rows]
    metrics, progress = [], []
    config = DPORunConfig(max_steps=4, per_device_train_batch_size=2, learning_rate=1e-3)

    result = train(
        config,
        train_rows,
        eval_rows,
        model_path=base,
        output_dir=tmp_path / "out",
        on_metrics=lambda step, values: metrics.append((step, values)),
        on_progress=lambda step, total: progress.append((step, total)),
    )

    assert train_rows == snapshot  # rows are passed through untouched
    assert not result.stopped and result.steps == 4
    step_logs = {step: values for step, values in metrics if "rewards/margins" in values}
    assert sorted(step_logs) == [1, 2, 3, 4]
    for values in step_logs.values():
        assert {"loss", "rewards/accuracies", "rewards/chosen"} <= values.keys()
    assert step_logs[4]["rewards/margins"] > 0
    assert progress[0] == (0, 4) and progress[-1] == (4, 4)
    assert {"eval_loss", "eval_rewards/accuracies", "eval_rewards/margins"} <= set(
        result.eval_metrics
    )
    assert any("eval_loss" in values for _, values in metrics)
    assert "train_loss" in result.train_metrics

    trained, original = state_dict(result.output_dir), state_dict(base)
    assert trained.keys() == original.keys()
    assert any(not torch.equal(trained[k], original[k]) for k in trained)
    assert (Path(result.output_dir) / "tokenizer.json").is_file()


def test_it_stops_within_one_step_when_asked_and_saves_nothing(
    ml_base_model, tmp_path, preference_pairs
):
    seen = []

    def should_stop():
        return bool(seen) and seen[-1] >= 2

    result = train(
        DPORunConfig(max_steps=10, per_device_train_batch_size=2),
        preference_pairs,
        [],
        model_path=ml_base_model[0],
        output_dir=tmp_path / "out",
        should_stop=should_stop,
        on_progress=lambda step, total: seen.append(step),
    )
    assert result.stopped and result.steps == 2
    assert result.eval_metrics == {}
    assert not (tmp_path / "out").exists()


def test_it_returns_at_once_when_cancelled_before_starting(
    ml_base_model, tmp_path, preference_pairs
):
    result = train(
        DPORunConfig(max_steps=10),
        preference_pairs,
        [],
        model_path=ml_base_model[0],
        output_dir=tmp_path / "out",
        should_stop=lambda: True,
    )
    assert result.stopped and result.steps == 0
    assert not (tmp_path / "out").exists()


def test_it_runs_dpo_from_the_command_line(ml_base_model, tmp_path, preference_pairs, capsys):
    data = tmp_path / "prefs.jsonl"
    write_jsonl(data, preference_pairs)
    out = tmp_path / "policy"
    status = main(
        ["dpo", "--data", str(data), "--model", ml_base_model[0], "--out", str(out)]
        + ["--max-steps", "2", "--batch-size", "2", "--eval-fraction", "0.2", "--beta", "0.2"]
    )
    assert status == 0
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["step"] for row in logged if "rewards/margins" in row] == [1, 2]
    assert any("eval_rewards/accuracies" in row for row in logged)
    assert (out / "config.json").is_file()


def test_it_reports_bad_cli_settings_without_a_traceback(tmp_path, capsys):
    data = tmp_path / "prefs.jsonl"
    write_jsonl(data, [])
    status = main(["dpo", "--data", str(data), "--model", "m", "--out", "o", "--beta", "-1"])
    assert status == 2
    assert "beta must be > 0" in capsys.readouterr().err


def test_it_rejects_rows_trl_would_misread(tmp_path, preference_pairs):
    row = preference_pairs[0]
    cases = [
        ({**row, "ref_chosen_logps": -1.0}, "keys reserved by TRL: ref_chosen_logps"),
        ({**row, "prompt": [{"role": "assistant", "content": "x"}]}, "must end with a user turn"),
        ({**row, "chosen": "plain text"}, "'chosen' must be a non-empty message list"),
        ({**row, "rejected": [{"role": "user", "content": "x"}]}, "assistant messages only"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            train(DPORunConfig(), [bad], [], model_path="unused", output_dir=tmp_path / "o")
    with pytest.raises(ValueError, match="at least one training preference pair"):
        train(DPORunConfig(), [], [row], model_path="unused", output_dir=tmp_path / "o")


def test_a_run_stopped_after_a_checkpoint_resumes_there_and_ends_where_an_unbroken_run_does(
    ml_base_model, tmp_path, preference_pairs
):
    import torch

    from rlhf.ml.common import checkpoint_step

    config = DPORunConfig(max_steps=6, per_device_train_batch_size=2, learning_rate=1e-3,
                          checkpoint_steps=2)
    checkpoints = tmp_path / "checkpoints"
    steps = []
    # The first try dies after step 3 (a worker killed then would stop at the same place).
    first = train(
        config, preference_pairs, [], model_path=ml_base_model[0],
        output_dir=tmp_path / "first", checkpoint_dir=checkpoints,
        should_stop=lambda: bool(steps) and steps[-1] >= 3,
        on_progress=lambda step, total: steps.append(step),
    )
    assert first.stopped and first.steps == 3
    assert checkpoint_step(checkpoints) == 2
    assert checkpoint_step(tmp_path / "nowhere") is None

    logged = []
    resumed = train(
        config, preference_pairs, [], model_path=ml_base_model[0],
        output_dir=tmp_path / "resumed", checkpoint_dir=checkpoints,
        on_metrics=lambda step, values: logged.append(step),
    )
    assert not resumed.stopped and resumed.steps == 6
    assert sorted({step for step in logged if step <= 6}) == [3, 4, 5, 6]  # not 1 and 2 again

    unbroken = train(config, preference_pairs, [], model_path=ml_base_model[0],
                     output_dir=tmp_path / "unbroken")
    a, b = state_dict(resumed.output_dir), state_dict(unbroken.output_dir)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert any(not torch.equal(a[k], state_dict(ml_base_model[0])[k]) for k in a)


def test_it_saves_no_optimizer_state_without_checkpoint_steps():
    from rlhf.ml.common import training_args

    args = training_args(DPORunConfig(checkpoint_steps=0), "/tmp/x", evaluate=False)
    assert args["save_strategy"] == "no"
    args = training_args(DPORunConfig(checkpoint_steps=7), "/tmp/x", evaluate=False)
    assert (args["save_strategy"], args["save_steps"], args["save_total_limit"],
            args["save_only_model"]) == ("steps", 7, 1, False)
    early = DPORunConfig(checkpoint_steps=7, eval_steps=3, early_stopping_patience=2)
    args = training_args(early, "/tmp/x", evaluate=True)
    assert args["save_steps"] == 3 and args["load_best_model_at_end"]
    assert not args["save_only_model"]
