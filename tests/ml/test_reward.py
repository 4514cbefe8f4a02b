from pathlib import Path

import pytest

from rlhf.ml.config import RewardRunConfig
from rlhf.ml.data import split_by_prompt
from rlhf.ml.reward import encode, load_reward_model, score, train


def state_dict(path):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(path).state_dict()


@pytest.fixture(scope="module")
def trained(ml_base_model, tmp_path_factory):
    """A reward model trained for a few steps, with what the run reported."""
    from tests.ml.conftest import preference_rows

    train_rows, eval_rows = split_by_prompt(preference_rows(), 0.2, seed=0)
    metrics, progress = [], []
    config = RewardRunConfig(max_steps=6, per_device_train_batch_size=4, learning_rate=3e-3)
    result = train(
        config,
        train_rows,
        eval_rows,
        model_path=ml_base_model[0],
        output_dir=tmp_path_factory.mktemp("reward") / "rm",
        on_metrics=lambda step, values: metrics.append((step, values)),
        on_progress=lambda step, total: progress.append((step, total)),
    )
    return result, metrics, progress, eval_rows


def test_it_trains_a_reward_model_and_reports_metrics(trained, ml_base_model):
    import torch

    result, metrics, progress, eval_rows = trained
    assert not result.stopped and result.steps == 6
    assert result.train_pairs == 10 and result.skipped_pairs == 0
    step_logs = {step: values for step, values in metrics if "accuracy" in values}
    assert sorted(step_logs) == [1, 2, 3, 4, 5, 6]
    for values in step_logs.values():
        assert {"loss", "margin", "mean_reward"} <= values.keys()
    assert progress[0] == (0, 6) and progress[-1] == (6, 6)
    assert "train_loss" in result.train_metrics
    assert {"eval_loss", "eval_accuracy", "eval_pairwise_accuracy", "eval_mean_margin"} <= set(
        result.eval_metrics
    )
    assert 0.0 <= result.eval_metrics["eval_pairwise_accuracy"] <= 1.0
    assert result.eval_metrics["eval_pairs"] == len(eval_rows) == 2
    # The held-out accuracy also reached the metrics stream (it is what the run page charts).
    assert any("eval_pairwise_accuracy" in values for _, values in metrics)

    trained_state = state_dict(result.output_dir)
    original = state_dict(ml_base_model[0])  # the policy with a fresh score head
    body = [k for k in trained_state if not k.startswith("score.")]
    assert body and body == [k for k in original if not k.startswith("score.")]
    assert any(not torch.equal(trained_state[k], original[k]) for k in body)
    assert (Path(result.output_dir) / "tokenizer.json").is_file()


def test_it_learns_to_prefer_the_helpful_answer(trained):
    from tests.ml.conftest import UNHELPFUL

    result, _, _, eval_rows = trained
    prompts = [row["prompt"] for row in eval_rows]
    helpful = score(result.output_dir, prompts, [row["chosen"][0]["content"] for row in eval_rows])
    unhelpful = score(result.output_dir, prompts, [UNHELPFUL] * len(prompts))
    margins = [h - u for h, u in zip(helpful, unhelpful, strict=True)]
    accuracy = sum(m > 0 for m in margins) / len(margins)
    assert accuracy == result.eval_metrics["eval_pairwise_accuracy"]
    assert sum(margins) / len(margins) == pytest.approx(result.eval_metrics["eval_mean_margin"])


def test_it_scores_pairs_like_a_direct_forward_pass(trained):
    import torch
    from transformers import AutoModelForSequenceClassification

    result = trained[0]
    model = AutoModelForSequenceClassification.from_pretrained(result.output_dir)
    model.eval()
    _, tokenizer = load_reward_model(result.output_dir)
    assert model.config.num_labels == 1 and model.config.pad_token_id == tokenizer.pad_token_id
    conversations = [
        [{"role": "user", "content": "How do I reset my password?"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Refund?"}],
        [{"role": "user", "content": "My item arrived broken."}],
    ]
    completions = ["Open the sign-in page.", "Yes, within 5 business days.", "Sorry! " * 12]

    scores = score(result.output_dir, conversations, completions, batch_size=2)

    assert len(scores) == 3 and all(isinstance(s, float) for s in scores)
    for conversation, completion, value in zip(conversations, completions, scores, strict=True):
        ids = torch.tensor([encode(tokenizer, conversation, completion)])
        with torch.inference_mode():
            direct = model(input_ids=ids).logits[0, 0].item()
        assert value == pytest.approx(direct, abs=1e-5)
    # A loaded model gives the same numbers as a path.
    assert score(model, conversations, completions, tokenizer=tokenizer) == pytest.approx(
        scores, abs=1e-5
    )
    assert score(result.output_dir, [], []) == []


def test_it_renders_pairs_exactly_as_the_reward_trainer_does(ml_base_model, tmp_path):
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    from tests.ml.conftest import preference_rows

    rows = preference_rows()[:3]
    model, tokenizer = load_reward_model(ml_base_model[0], device="cpu")
    trainer = RewardTrainer(
        model=model,
        args=RewardConfig(output_dir=str(tmp_path), bf16=False, report_to="none",
                          use_cpu=True, activation_checkpointing=False),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    prepared = trainer.train_dataset
    assert prepared["chosen_ids"] == [encode(tokenizer, r["prompt"], r["chosen"]) for r in rows]
    assert prepared["rejected_ids"] == [
        encode(tokenizer, r["prompt"], r["rejected"][0]["content"]) for r in rows
    ]


def test_it_stops_within_one_step_when_asked_and_saves_nothing(ml_base_model, tmp_path):
    from tests.ml.conftest import preference_rows

    seen = []
    result = train(
        RewardRunConfig(max_steps=10, per_device_train_batch_size=2),
        preference_rows(),
        [],
        model_path=ml_base_model[0],
        output_dir=tmp_path / "out",
        should_stop=lambda: bool(seen) and seen[-1] >= 2,
        on_progress=lambda step, total: seen.append(step),
    )
    assert result.stopped and result.steps == 2 and result.eval_metrics == {}
    assert not (tmp_path / "out").exists()


def test_it_refuses_rows_reward_trainer_would_misread_and_too_long_pairs(
    ml_base_model, tmp_path, preference_pairs
):
    row = preference_pairs[0]
    with pytest.raises(ValueError, match="keys reserved by TRL: margin"):
        train(RewardRunConfig(), [{**row, "margin": 1.0}], [], model_path="unused",
              output_dir=tmp_path / "o")
    with pytest.raises(ValueError, match="at least one training preference pair"):
        train(RewardRunConfig(), [], [row], model_path="unused", output_dir=tmp_path / "o")
    with pytest.raises(ValueError, match="longer than max_length=16 tokens"):
        train(RewardRunConfig(max_length=16, max_steps=1), [row], [],
              model_path=ml_base_model[0], output_dir=tmp_path / "o")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"learning_rate": 0.0}, "learning_rate must be in (0, 1]"),
        ({"per_device_train_batch_size": 0}, "per_device_train_batch_size must be at least 1"),
        ({"num_train_epochs": 0.0, "max_steps": -1}, "num_train_epochs must be > 0"),
        ({"eval_fraction": 0.6}, "eval_fraction must be in [0, 0.5]"),
        ({"eval_steps": -1}, "eval_steps must be 0 or more"),
        ({"center_rewards_coefficient": -0.1}, "center_rewards_coefficient must be in [0, 1]"),
        ({"max_length": 8}, "max_length must be at least 16"),
    ],
)
def test_it_rejects_bad_reward_settings_with_a_clear_message(changes, message):
    import re

    with pytest.raises(ValueError, match=re.escape(message)):
        RewardRunConfig(**changes).validate()
    assert RewardRunConfig.from_dict(RewardRunConfig().to_dict()) == RewardRunConfig()


def test_it_trains_a_reward_model_from_the_command_line(ml_base_model, tmp_path, capsys):
    import json

    from rlhf.ml.__main__ import main
    from rlhf.ml.data import write_jsonl
    from tests.ml.conftest import preference_rows

    data = tmp_path / "prefs.jsonl"
    write_jsonl(data, preference_rows())
    out = tmp_path / "rm"
    status = main(
        ["reward", "--data", str(data), "--model", ml_base_model[0], "--out", str(out)]
        + ["--max-steps", "2", "--batch-size", "2", "--eval-fraction", "0.2"]
    )
    assert status == 0
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["step"] for row in logged if "accuracy" in row] == [1, 2]
    assert any("eval_pairwise_accuracy" in row for row in logged)
    assert (out / "config.json").is_file()
