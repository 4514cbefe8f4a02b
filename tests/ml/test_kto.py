from pathlib import Path

import pytest

from rlhf.ml.config import KTORunConfig
from rlhf.ml.data import split_by_prompt
from rlhf.ml.kto import _kto_config, train
from tests.ml.conftest import QUESTIONS, UNHELPFUL


def kto_rows():
    """Unpaired good and bad answers, grouped by label, with the extra keys Django adds."""
    rows = []
    for label in (True, False):
        for index, (question, answer) in enumerate(QUESTIONS):
            text = answer if label else UNHELPFUL
            rows.append(
                {
                    "id": len(rows),
                    "prompt_id": f"p-{index}",
                    "source": "rating",
                    "prompt": [{"role": "user", "content": question}],
                    "completion": [{"role": "assistant", "content": text}],
                    "label": label,
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
    """A policy trained with KTO for a few steps, with what the run reported."""
    train_rows, eval_rows = split_by_prompt(kto_rows(), 0.2, seed=0)
    snapshot = [dict(row) for row in train_rows]
    metrics, progress = [], []
    config = KTORunConfig(max_steps=4, per_device_train_batch_size=4, learning_rate=1e-3)
    result = train(
        config,
        train_rows,
        eval_rows,
        model_path=ml_base_model[0],
        output_dir=tmp_path_factory.mktemp("kto") / "policy",
        on_metrics=lambda step, values: metrics.append((step, values)),
        on_progress=lambda step, total: progress.append((step, total)),
    )
    assert train_rows == snapshot  # the caller's rows are left as they were
    return result, metrics, progress


def test_it_trains_kto_on_rows_with_extra_keys_and_reports_metrics(trained, ml_base_model):
    result, metrics, progress = trained
    assert not result.stopped and result.steps == 4
    step_logs = {step: values for step, values in metrics if "kl" in values}
    assert sorted(step_logs) == [1, 2, 3, 4]
    for values in step_logs.values():
        assert {"loss", "kl", "learning_rate"} <= values.keys()
        assert {"rewards/chosen", "rewards/rejected"} & values.keys()
    # Reward margins need good and bad answers in one batch; the last of an epoch may lack one.
    assert [step for step, values in step_logs.items() if "rewards/margins" in values] == [1, 2, 4]
    assert progress[0] == (0, 4) and progress[-1] == (4, 4)
    assert {"eval_loss", "eval_kl", "eval_rewards/chosen", "eval_rewards/rejected"} <= set(
        result.eval_metrics
    )
    assert result.eval_metrics["eval_rewards/margins"] > 0
    assert any("eval_loss" in values for _, values in metrics)
    assert "train_loss" in result.train_metrics

    assert_changed(result.output_dir, ml_base_model[0])
    assert (Path(result.output_dir) / "tokenizer.json").is_file()


def test_it_maps_the_kto_settings(tmp_path):
    config = KTORunConfig(beta=0.3, desirable_weight=1.5, undesirable_weight=0.5, max_length=64)
    args = _kto_config(config, str(tmp_path), evaluate=False)
    assert (args.beta, args.desirable_weight, args.undesirable_weight) == (0.3, 1.5, 0.5)
    assert args.max_length == 64 and args.loss_type == "kto"


def test_it_trains_lora_and_saves_a_merged_model(ml_base_model, tmp_path):
    from transformers import AutoModelForCausalLM

    result = train(
        KTORunConfig(max_steps=3, per_device_train_batch_size=4, learning_rate=1e-2,
                     use_lora=True, lora_r=4, lora_alpha=8),
        kto_rows(),
        [],
        model_path=ml_base_model[0],
        output_dir=tmp_path / "lora",
    )
    assert not result.stopped and result.steps == 3
    files = {path.name for path in Path(result.output_dir).iterdir()}
    assert "config.json" in files and not {f for f in files if f.startswith("adapter_")}
    AutoModelForCausalLM.from_pretrained(result.output_dir)
    assert_changed(result.output_dir, ml_base_model[0])


def test_it_stops_early_when_held_out_loss_stops_improving(ml_base_model, tmp_path):
    train_rows, eval_rows = split_by_prompt(kto_rows(), 0.2, seed=0)
    metrics = []
    # A learning rate this high saturates the KTO loss (every sigmoid at 0 or 1) after a step,
    # so held-out loss stops improving.
    config = KTORunConfig(max_steps=20, per_device_train_batch_size=4, learning_rate=0.5,
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
    assert history[-1] >= min(history[:-1])  # the evaluation that ended the run was no better
    # The best checkpoint is restored before saving: the final evaluation matches it.
    assert final == result.eval_metrics["eval_loss"] == pytest.approx(min(history), rel=1e-4)
    assert (tmp_path / "out" / "config.json").is_file()


def test_it_stops_within_one_step_when_asked_and_saves_nothing(ml_base_model, tmp_path):
    seen = []
    result = train(
        KTORunConfig(max_steps=10, per_device_train_batch_size=2),
        kto_rows(),
        kto_rows()[:2],
        model_path=ml_base_model[0],
        output_dir=tmp_path / "out",
        should_stop=lambda: bool(seen) and seen[-1] >= 2,
        on_progress=lambda step, total: seen.append(step),
    )
    assert result.stopped and result.steps == 2 and result.eval_metrics == {}
    assert not (tmp_path / "out").exists()


def test_it_returns_at_once_when_cancelled_before_starting(tmp_path):
    result = train(KTORunConfig(), kto_rows(), [], model_path="unused",
                   output_dir=tmp_path / "out", should_stop=lambda: True)
    assert result.stopped and result.steps == 0
    assert not (tmp_path / "out").exists()


def test_it_refuses_one_sided_data_and_rows_trl_would_misread(tmp_path):
    rows = kto_rows()
    row = rows[0]
    good, bad = rows[:6], rows[6:]

    def refuses(train_rows, message, eval_rows=(), **changes):
        with pytest.raises(ValueError, match=message):
            train(KTORunConfig(**changes), train_rows, list(eval_rows), model_path="unused",
                  output_dir=tmp_path / "o")

    refuses(good, "needs both good and bad answers to train on; got 6 good and 0 bad")
    refuses(bad, "got 0 good and 6 bad")
    refuses([], "got 0 good and 0 bad")
    refuses(rows, "KTO needs a batch size of at least 2, got 1",
            per_device_train_batch_size=1)
    refuses([{**row, "label": 1}, *bad], "train row 0: 'label' must be true .* got 1")
    refuses([*good, {**row, "label": None}], "train row 6: 'label' must be true")
    refuses(rows, "eval row 0: keys reserved by TRL: chosen, rejected",
            eval_rows=[{**row, "chosen": [], "rejected": []}])
    refuses([{**row, "prompt": row["completion"]}, *bad], "must end with a user turn")
    refuses([{**row, "completion": "text"}, *bad], "'completion' must be a non-empty list")
    assert not (tmp_path / "o").exists()
