"""python -m rlhf.ml: one subcommand per training method, its settings generated from the config."""

import json
from pathlib import Path

import pytest

from rlhf.ml.__main__ import build_parser, main
from rlhf.ml.config import (
    APP_ONLY_FIELDS,
    ONLINE_METHODS,
    PRESETS,
    RUN_CONFIGS,
    TRAINER_MODULES,
    SFTRunConfig,
    option_fields,
    parse_bool,
)
from rlhf.ml.data import write_jsonl
from tests.ml.test_kto import kto_rows
from tests.ml.test_online import prompt_rows
from tests.ml.test_sft import sft_rows


def logged_steps(out: str, key: str) -> list[int]:
    rows = [json.loads(line) for line in out.splitlines()]
    return [row["step"] for row in rows if key in row]


def subcommand(name):
    parser = build_parser()
    return next(
        action.choices[name] for action in parser._subparsers._group_actions
        if name in getattr(action, "choices", {})
    )


def test_every_method_of_the_app_has_a_trainer_module_and_a_subcommand():
    from rlhf.models import TrainingRun

    assert set(TRAINER_MODULES) == set(RUN_CONFIGS) == set(TrainingRun.Method.values)
    assert set(ONLINE_METHODS) <= set(RUN_CONFIGS)
    for method, config_class in RUN_CONFIGS.items():
        options = {a.dest for a in subcommand(method)._actions}
        fields = set(option_fields([config_class]))
        # Every setting a run can have is an option, but the ones only the app's snapshot uses.
        assert fields - APP_ONLY_FIELDS <= options
        assert not (fields & APP_ONLY_FIELDS - {"reward_model"}) & options
        # Online RL takes its reward model by path (--reward-model), not as a registry id.
        assert ("reward_model" in options) is (method in ONLINE_METHODS)


def test_it_parses_booleans_and_refuses_anything_else():
    assert [parse_bool(v) for v in ("1", "True", "yes", "on")] == [True] * 4
    assert [parse_bool(v) for v in ("0", "FALSE", "no", "off")] == [False] * 4
    with pytest.raises(ValueError, match="expected true or false, got 'maybe'"):
        parse_bool("maybe")


def test_a_preset_gives_the_defaults_and_flags_override_it(tmp_path, capsys):
    data = tmp_path / "rows.jsonl"
    write_jsonl(data, [])
    # The preset's learning rate (5e-4) is valid; the flag given after it wins and is refused.
    status = main(["sft", "--data", str(data), "--model", "m", "--out", "o",
                   "--preset", "demo", "--lr", "2"])
    assert status == 2
    assert "learning_rate must be in (0, 1], got 2.0" in capsys.readouterr().err
    assert PRESETS["sft"]["demo"]["values"]["learning_rate"] == 5e-4
    with pytest.raises(SystemExit):
        main(["sft", "--data", str(data), "--model", "m", "--out", "o", "--preset", "nope"])
    with pytest.raises(SystemExit):  # argparse refuses a boolean it cannot read
        main(["sft", "--data", str(data), "--model", "m", "--out", "o", "--use-lora", "maybe"])


def test_it_fine_tunes_with_sft_resuming_from_an_earlier_try(ml_base_model, tmp_path, capsys):
    from rlhf.ml.common import checkpoint_step
    from rlhf.ml.sft import train

    data = tmp_path / "sft.jsonl"
    write_jsonl(data, sft_rows())
    checkpoints = tmp_path / "checkpoints"
    # An earlier try got one step in and left its checkpoint.
    train(SFTRunConfig(max_steps=1, per_device_train_batch_size=2, checkpoint_steps=1,
                       eval_fraction=0.0),
          sft_rows(), [], model_path=ml_base_model[0], output_dir=tmp_path / "first",
          checkpoint_dir=checkpoints)
    assert checkpoint_step(checkpoints) == 1

    out = tmp_path / "policy"
    status = main(["sft", "--data", str(data), "--model", ml_base_model[0], "--out", str(out),
                   "--max-steps", "3", "--batch-size", "2", "--checkpoint-steps", "1",
                   "--eval-fraction", "0.2", "--completion-only-loss", "false",
                   "--checkpoint-dir", str(checkpoints)])
    assert status == 0
    captured = capsys.readouterr()
    assert logged_steps(captured.out, "loss") == [2, 3]  # step 1 was not trained again
    assert "eval_loss" in captured.out
    assert (out / "config.json").is_file()
    # Spent once the model is saved: a rerun starts afresh.
    assert checkpoint_step(checkpoints) is None and not list(checkpoints.glob("checkpoint-*"))


def test_it_trains_kto_from_the_command_line(ml_base_model, tmp_path, capsys):
    data = tmp_path / "kto.jsonl"
    write_jsonl(data, kto_rows())
    out = tmp_path / "policy"
    status = main(["kto", "--data", str(data), "--model", ml_base_model[0], "--out", str(out),
                   "--max-steps", "2", "--batch-size", "4", "--desirable-weight", "1.5"])
    assert status == 0
    assert logged_steps(capsys.readouterr().out, "kl") == [1, 2]
    assert (out / "config.json").is_file()


@pytest.mark.parametrize("method", ONLINE_METHODS)
def test_it_runs_online_rl_against_a_reward_model_from_the_command_line(
    method, ml_base_model, tmp_path, capsys
):
    from tests.ml.conftest import preference_rows

    prefs, prompts = tmp_path / "prefs.jsonl", tmp_path / "prompts.jsonl"
    write_jsonl(prefs, preference_rows())
    write_jsonl(prompts, prompt_rows())
    rm = tmp_path / "rm"
    assert main(["reward", "--data", str(prefs), "--model", ml_base_model[0], "--out", str(rm),
                 "--max-steps", "2", "--batch-size", "4"]) == 0
    capsys.readouterr()

    out = tmp_path / "policy"
    status = main([method, "--data", str(prompts), "--model", ml_base_model[0],
                   "--out", str(out), "--reward-model", str(rm), "--preset", "demo",
                   "--max-steps", "2", "--batch-size", "4", "--num-generations", "2",
                   "--max-completion-length", "8"])
    assert status == 0
    assert logged_steps(capsys.readouterr().out, "reward_std") == [1, 2]
    assert Path(out, "config.json").is_file()


def test_it_reports_rows_of_the_wrong_shape_without_a_traceback(tmp_path, capsys):
    # A preference file given to KTO by mistake.
    data = tmp_path / "prefs.jsonl"
    write_jsonl(data, [{"prompt": [{"role": "user", "content": "hi"}], "chosen": "x"}] * 4)
    status = main(["kto", "--data", str(data), "--model", "m", "--out", str(tmp_path / "o")])
    assert status == 2
    assert "error: train row 0: keys reserved by TRL: chosen" in capsys.readouterr().err
