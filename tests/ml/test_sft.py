from pathlib import Path

import pytest

from rlhf.ml.config import SFTRunConfig
from rlhf.ml.data import split_by_prompt
from rlhf.ml.sft import _sft_config, train
from tests.ml.conftest import QUESTIONS


def sft_rows():
    """Conversational prompt-completion rows with the extra keys the Django side adds."""
    rows = []
    for index, (question, answer) in enumerate(QUESTIONS * 2):
        prompt = [{"role": "user", "content": question if index < 6 else f"Hello. {question}"}]
        if index % 3 == 0:
            prompt = [{"role": "system", "content": "Be brief."}, *prompt]
        rows.append(
            {
                "id": index,
                "prompt_id": f"p-{index}",
                "source": "correction" if index % 2 else "gold",
                "prompt": prompt,
                "completion": [{"role": "assistant", "content": f"Thanks for asking. {answer}"}],
            }
        )
    return rows


def state_dict(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def assert_changed(output_dir, base):
    import torch

    trained, original = state_dict(output_dir), state_dict(base)
    assert trained.keys() == original.keys()
    assert any(not torch.equal(trained[k], original[k]) for k in trained)


@pytest.fixture(scope="module")
def trained(ml_base_model, tmp_path_factory):
    """A policy fine-tuned for a few steps, with what the run reported."""
    train_rows, eval_rows = split_by_prompt(sft_rows(), 0.2, seed=0)
    snapshot = [dict(row) for row in train_rows]
    metrics, progress = [], []
    config = SFTRunConfig(max_steps=4, per_device_train_batch_size=2, learning_rate=1e-3)
    result = train(
        config,
        train_rows,
        eval_rows,
        model_path=ml_base_model[0],
        output_dir=tmp_path_factory.mktemp("sft") / "policy",
        on_metrics=lambda step, values: metrics.append((step, values)),
        on_progress=lambda step, total: progress.append((step, total)),
    )
    assert train_rows == snapshot  # rows are passed through untouched
    return result, metrics, progress


def test_it_fine_tunes_on_rows_with_extra_keys_and_reports_metrics(trained, ml_base_model):
    result, metrics, progress = trained
    assert not result.stopped and result.steps == 4
    step_logs = {step: values for step, values in metrics if "loss" in values}
    assert sorted(step_logs) == [1, 2, 3, 4]
    for values in step_logs.values():
        assert {"loss", "mean_token_accuracy", "num_tokens"} <= values.keys()
    assert progress[0] == (0, 4) and progress[-1] == (4, 4)
    assert {"eval_loss", "eval_mean_token_accuracy"} <= set(result.eval_metrics)
    assert any("eval_loss" in values for _, values in metrics)
    assert "train_loss" in result.train_metrics

    assert_changed(result.output_dir, ml_base_model[0])
    assert (Path(result.output_dir) / "tokenizer.json").is_file()


def test_it_maps_completion_only_loss_and_max_length(tmp_path):
    args = _sft_config(SFTRunConfig(max_length=64), str(tmp_path), evaluate=False)
    assert args.completion_only_loss is True and args.max_length == 64
    args = _sft_config(SFTRunConfig(completion_only_loss=False), str(tmp_path), evaluate=False)
    assert args.completion_only_loss is False


def test_it_trains_lora_and_saves_a_merged_model(ml_base_model, tmp_path):
    from transformers import AutoModelForCausalLM

    result = train(
        SFTRunConfig(max_steps=3, per_device_train_batch_size=4, learning_rate=1e-2,
                     use_lora=True, lora_r=4, lora_alpha=8),
        sft_rows(),
        [],
        model_path=ml_base_model[0],
        output_dir=tmp_path / "lora",
    )
    assert not result.stopped and result.steps == 3
    files = {path.name for path in Path(result.output_dir).iterdir()}
    assert "config.json" in files and not {f for f in files if f.startswith("adapter_")}
    AutoModelForCausalLM.from_pretrained(result.output_dir)
    assert_changed(result.output_dir, ml_base_model[0])


def test_it_stops_early_when_held_out_loss_gets_worse(ml_base_model, tmp_path):
    train_rows, eval_rows = split_by_prompt(sft_rows(), 0.2, seed=0)
    metrics = []
    # A learning rate this high wrecks the model within a few steps, so held-out loss rises.
    config = SFTRunConfig(max_steps=20, per_device_train_batch_size=4, learning_rate=0.5,
                          eval_steps=1, early_stopping_patience=1)
    result = train(
        config,
        train_rows,
        eval_rows,
        model_path=ml_base_model[0],
        output_dir=tmp_path / "out",
        on_metrics=lambda step, values: metrics.append((step, values)),
    )
    *history, final = [values["eval_loss"] for _, values in metrics if "eval_loss" in values]
    assert not result.stopped and result.steps == len(history) < 20
    assert history[-1] > min(history[:-1])  # the evaluation that ended the run got worse
    # The best checkpoint is restored before saving: the final evaluation matches it.
    assert final == result.eval_metrics["eval_loss"] == pytest.approx(min(history), rel=1e-4)
    assert (tmp_path / "out" / "config.json").is_file()


def test_it_stops_within_one_step_when_asked_and_saves_nothing(ml_base_model, tmp_path):
    seen = []
    result = train(
        SFTRunConfig(max_steps=10, per_device_train_batch_size=2),
        sft_rows(),
        sft_rows()[:2],
        model_path=ml_base_model[0],
        output_dir=tmp_path / "out",
        should_stop=lambda: bool(seen) and seen[-1] >= 2,
        on_progress=lambda step, total: seen.append(step),
    )
    assert result.stopped and result.steps == 2 and result.eval_metrics == {}
    assert not (tmp_path / "out").exists()


def test_it_returns_at_once_when_cancelled_before_starting(tmp_path):
    result = train(SFTRunConfig(), sft_rows(), [], model_path="unused",
                   output_dir=tmp_path / "out", should_stop=lambda: True)
    assert result.stopped and result.steps == 0
    assert not (tmp_path / "out").exists()


def test_it_rejects_rows_trl_would_misread(tmp_path):
    row = sft_rows()[0]
    cases = [
        ({**row, "input_ids": [1, 2]}, "train row 0: keys reserved by TRL: input_ids"),
        ({**row, "prompt": [{"role": "assistant", "content": "x"}]}, "must end with a user turn"),
        ({**row, "completion": "plain text"}, "'completion' must be a non-empty list"),
        ({**row, "completion": []}, "'completion' must be a non-empty list"),
        ({**row, "prompt": [{"role": "user"}]}, "'prompt' must be a non-empty list"),
        ({**row, "completion": [{"role": "user", "content": "x"}]}, "assistant messages only"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            train(SFTRunConfig(), [bad], [], model_path="unused", output_dir=tmp_path / "o")
    with pytest.raises(ValueError, match="eval row 1: prompt must end with a user turn"):
        train(SFTRunConfig(), [row], [row, {**row, "prompt": row["completion"]}],
              model_path="unused", output_dir=tmp_path / "o")
    with pytest.raises(ValueError, match="at least one training example"):
        train(SFTRunConfig(), [], [row], model_path="unused", output_dir=tmp_path / "o")


def test_it_imports_sft_and_kto_without_django_or_heavy_libraries():
    import subprocess
    import sys

    code = "import sys, rlhf.ml.sft, rlhf.ml.kto; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert result.returncode == 0, result.stderr
    loaded = {name.split(".")[0] for name in result.stdout.split()}
    assert not loaded & {"django", "torch", "transformers", "trl", "datasets"}
