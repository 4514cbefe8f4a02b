import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlhf.ml.config import GRPORunConfig, OnlineRunConfig, RLOORunConfig
from rlhf.ml.online import train

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {"grpo": GRPORunConfig, "rloo": RLOORunConfig}
# Small enough for a few seconds a run on CPU: 2 prompts x 2 samples of 8 tokens a step.
TINY = {
    "per_device_train_batch_size": 4,
    "num_generations": 2,
    "max_completion_length": 8,
    "learning_rate": 1e-3,
    "beta": 0.1,
}


def prompt_rows():
    """Prompt-only rows with the extra keys the Django side adds."""
    from tests.ml.conftest import preference_rows

    return [
        {"id": row["id"], "prompt_id": row["prompt_id"], "source": "demo", "prompt": row["prompt"]}
        for row in preference_rows()
    ]


def state_dict(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def changed(trained, original):
    import torch

    assert trained.keys() == original.keys()
    return any(not torch.equal(trained[k], original[k]) for k in trained)


@pytest.fixture(scope="module")
def reward_model(ml_base_model, tmp_path_factory):
    """Path of a reward model trained for a few steps on the synthetic preferences."""
    from rlhf.ml.config import RewardRunConfig
    from rlhf.ml.reward import train as train_reward
    from tests.ml.conftest import preference_rows

    result = train_reward(
        RewardRunConfig(max_steps=4, per_device_train_batch_size=4, learning_rate=3e-3),
        preference_rows(),
        [],
        model_path=ml_base_model[0],
        output_dir=tmp_path_factory.mktemp("online") / "rm",
    )
    return result.output_dir


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_it_trains_the_policy_against_the_reward_model_and_reports_metrics(
    algorithm, ml_base_model, reward_model, tmp_path
):
    from transformers import AutoModelForCausalLM

    rows = prompt_rows()
    train_rows, eval_rows = rows[:10], rows[10:]
    snapshot = [dict(row) for row in train_rows]
    metrics, progress = [], []

    result = train(
        CONFIGS[algorithm](max_steps=2, **TINY),
        train_rows,
        eval_rows,
        model_path=ml_base_model[0],
        output_dir=tmp_path / "out",
        reward_model_path=reward_model,
        algorithm=algorithm,
        on_metrics=lambda step, values: metrics.append((step, values)),
        on_progress=lambda step, total: progress.append((step, total)),
    )

    assert train_rows == snapshot  # rows are passed through untouched
    assert not result.stopped and result.steps == 2
    assert (result.train_prompts, result.skipped_prompts) == (10, 0)
    step_logs = {step: values for step, values in metrics if "reward" in values}
    assert sorted(step_logs) == [1, 2]
    for values in step_logs.values():
        assert {"reward", "reward_std", "kl", "loss", "rewards/reward_model/mean"} <= values.keys()
        assert values["reward_std"] >= 0
    # The first step samples from the reference itself; after one update the policy has moved.
    assert step_logs[1]["kl"] == pytest.approx(0.0, abs=1e-6) and step_logs[2]["kl"] > 0
    assert progress[0] == (0, 2) and progress[-1] == (2, 2)
    assert "train_loss" in result.train_metrics
    # The held-out prompts were sampled and scored too.
    assert {"eval_reward", "eval_reward_std"} <= result.eval_metrics.keys()
    assert any("eval_reward" in values for _, values in metrics)

    assert changed(state_dict(result.output_dir), state_dict(ml_base_model[0]))
    assert (Path(result.output_dir) / "tokenizer.json").is_file()
    assert AutoModelForCausalLM.from_pretrained(result.output_dir).config.model_type


def test_it_stops_within_one_step_when_asked_and_saves_nothing(
    ml_base_model, reward_model, tmp_path
):
    seen = []
    result = train(
        GRPORunConfig(max_steps=10, **TINY),
        prompt_rows(),
        [],
        model_path=ml_base_model[0],
        output_dir=tmp_path / "out",
        reward_model_path=reward_model,
        should_stop=lambda: bool(seen) and seen[-1] >= 1,
        on_progress=lambda step, total: seen.append(step),
    )
    assert result.stopped and result.steps == 1 and result.eval_metrics == {}
    assert not (tmp_path / "out").exists()

    cancelled = train(
        GRPORunConfig(max_steps=10, **TINY),
        prompt_rows(),
        [],
        model_path="unused",
        output_dir=tmp_path / "out",
        reward_model_path="unused",
        should_stop=lambda: True,
    )
    assert cancelled.stopped and cancelled.steps == 0
    assert not (tmp_path / "out").exists()


def test_it_trains_lora_adapters_and_saves_them_merged(ml_base_model, reward_model, tmp_path):
    result = train(
        RLOORunConfig(max_steps=2, use_lora=True, **{**TINY, "learning_rate": 1e-2}),
        prompt_rows(),
        [],
        model_path=ml_base_model[0],
        output_dir=tmp_path / "out",
        reward_model_path=reward_model,
        algorithm="rloo",
    )
    assert not result.stopped and result.steps == 2
    out = Path(result.output_dir)
    assert (out / "config.json").is_file()
    assert not list(out.glob("adapter_*"))
    assert changed(state_dict(out), state_dict(ml_base_model[0]))


def test_it_leaves_out_prompts_too_long_to_sample(ml_base_model, tmp_path):
    rows = prompt_rows()
    long_row = {**rows[0], "prompt": [{"role": "user", "content": "word " * 300}]}
    with pytest.raises(ValueError, match="All 1 training prompts are longer than"):
        train(
            GRPORunConfig(**TINY),
            [long_row],
            [],
            model_path=ml_base_model[0],
            output_dir=tmp_path / "out",
            reward_model_path="unused",
        )


def test_it_refuses_rows_trl_would_misread_and_unknown_algorithms(tmp_path):
    row = prompt_rows()[0]
    cases = [
        ({**row, "images": []}, "train row 0: keys reserved by TRL: images"),
        ({**row, "prompt": "plain text"}, "train row 0: 'prompt' must be a non-empty message list"),
        ({**row, "prompt": []}, "'prompt' must be a non-empty message list"),
        (
            {**row, "prompt": [*row["prompt"], {"role": "assistant", "content": "x"}]},
            "train row 0: prompt must end with a user turn",
        ),
    ]
    kwargs = {"model_path": "unused", "output_dir": tmp_path / "o", "reward_model_path": "unused"}
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            train(OnlineRunConfig(), [bad], [], **kwargs)
    with pytest.raises(ValueError, match="eval row 1: prompt must end with a user turn"):
        train(
            OnlineRunConfig(),
            [row],
            [row, {**row, "prompt": [{"role": "system", "content": "x"}]}],
            **kwargs,
        )
    with pytest.raises(ValueError, match="at least one training prompt"):
        train(OnlineRunConfig(), [], [row], **kwargs)
    with pytest.raises(ValueError, match="algorithm must be one of grpo, rloo; got 'ppo'"):
        train(OnlineRunConfig(), [row], [], algorithm="ppo", **kwargs)
    with pytest.raises(ValueError, match="must be a multiple of num_generations"):
        train(OnlineRunConfig(per_device_train_batch_size=3), [row], [], **kwargs)


def test_it_imports_without_django_or_heavy_libraries():
    code = (
        "import json, sys\n"
        "import rlhf.ml.online\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert loaded & {"django", "torch", "transformers", "trl", "datasets"} == set()
