"""python manage.py train: the same checks as the form, then a QUEUED run."""

import pytest
from django.core.management import CommandError, call_command

from rlhf.models import ModelVersion, TrainingRun


@pytest.fixture
def base(project):
    version = ModelVersion.objects.create(name="base", source="/models/base")
    project.current_model = version
    project.save()
    return version


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr("rlhf.tasks.train.apply_async", lambda args, **kw: calls.append(args))
    return calls


# transactional_db: the command runs in autocommit, as from a shell, so the run is sent
# (on commit) before it returns.
@pytest.mark.django_db(transaction=True)
def test_it_queues_a_run_from_a_preset_with_overrides(project, base, sent, capsys):
    call_command("train", project.slug, "--method", "dpo", "--preset", "robust",
                 "--learning-rate", "0.002", "--use-lora", "true", "--max-steps", "7")
    run = TrainingRun.objects.get()
    assert run.method == "dpo" and run.base_model == base and run.status == "queued"
    assert run.config["loss_type"] == "ipo" and run.config["beta"] == 0.5  # from the preset
    assert run.config["learning_rate"] == 0.002 and run.config["use_lora"] is True
    assert run.config["max_steps"] == 7
    assert sent == [[run.pk]]
    assert f"Queued {run}" in capsys.readouterr().out


def test_it_takes_a_base_by_name(project, base, sent):
    other = ModelVersion.objects.create(name="my-policy", source="/p", project=project)
    call_command("train", project.slug, "--method", "sft", "--base", "my-policy")
    assert TrainingRun.objects.get().base_model == other


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "dpo", "--num-generations", "4"], "dpo runs have no setting(s)"),
        (["--method", "dpo", "--preset", "nope"], "No preset 'nope' for dpo"),
        (["--method", "dpo", "--learning-rate", "0"], "learning_rate must be in (0, 1]"),
        (["--method", "grpo"], "Online RL needs a reward model"),
        (["--method", "dpo", "--base", "missing"], "No policy version 'missing'"),
    ],
)
def test_it_refuses_bad_settings_with_a_message_and_queues_nothing(project, base, sent, args,
                                                                   message):
    with pytest.raises(CommandError) as error:
        call_command("train", project.slug, *args)
    assert message in str(error.value)
    assert not TrainingRun.objects.exists() and sent == []


def test_it_refuses_an_unknown_project(db):
    with pytest.raises(CommandError, match="No project with slug 'nope'"):
        call_command("train", "nope", "--method", "dpo")


def test_it_lists_presets(capsys, db):
    call_command("train", "x", "--method", "kto", "--list-presets")
    out = capsys.readouterr().out
    assert "demo: Tiny demo model" in out and "standard:" in out


@pytest.mark.django_db(transaction=True)
def test_it_says_when_the_broker_is_down(project, base):
    from config.devservices import free_port
    from tests.services import use_broker

    old = use_broker(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(CommandError, match="could not be queued.*task queue is unreachable"):
            call_command("train", project.slug, "--method", "sft")
    finally:
        use_broker(old)
    assert TrainingRun.objects.get().status == "failed"
