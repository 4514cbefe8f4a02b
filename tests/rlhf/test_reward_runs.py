"""Reward-model runs: launched from the run form, trained by the runner, registered for scoring."""

import dataclasses
import uuid

import pytest
from django.urls import reverse

from annotate import queue
from annotate.services import submit_judgement
from rlhf import runner
from rlhf.ml.config import RewardRunConfig
from rlhf.models import ModelVersion, RunMetric, TrainingRun

VALID = {
    "method": "reward", "learning_rate": "0.001", "per_device_train_batch_size": "2",
    "gradient_accumulation_steps": "1", "num_train_epochs": "1", "max_steps": "5",
    "max_length": "256", "center_rewards_coefficient": "0", "eval_fraction": "0.2",
    "eval_steps": "0", "seed": "1",
}


@pytest.fixture
def base(db):
    return ModelVersion.objects.create(name="base", source="/models/base")


@pytest.fixture
def judged(project, annotator):
    """Every item ranked in shown order: 6 prompts x 3 ordered pairs."""
    while (a := queue.claim_next(project, annotator)) is not None:
        submit_judgement(annotator, a.pk, ";".join(map(str, a.shown_order)), uuid.uuid4())
    return project


def test_it_trains_a_reward_model_and_makes_it_the_projects(
    judged, tiny_model_dir, settings, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PREFLAB_MODELS_DIR = tmp_path / "models"
    base = ModelVersion.objects.create(name="tiny-base", source=str(tiny_model_dir))
    run = TrainingRun.objects.create(
        project=judged, base_model=base, method=TrainingRun.Method.REWARD,
        config={"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 1e-3,
                "eval_fraction": 0.2},
    )
    sent = []
    monkeypatch.setattr("rlhf.tasks.score_open_items.apply_async",
                        lambda args, **kw: sent.append(args))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        runner.execute_run(run.pk)

    run.refresh_from_db()
    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    assert run.progress_step == 3 and run.progress_total == 3
    assert run.snapshot.rows == 18 and run.snapshot.eval_rows > 0
    version = run.output_model
    assert version.kind == ModelVersion.Kind.REWARD and version.parent == base
    assert version.project == judged and version.name == f"{judged.slug}-reward-run{run.pk}"
    assert 0.0 <= version.metrics["eval_pairwise_accuracy"] <= 1.0
    assert version.metrics["eval_pairs"] == run.snapshot.eval_rows
    assert run.eval_metrics == version.metrics
    names = set(RunMetric.objects.filter(run=run).values_list("name", flat=True))
    assert {"loss", "accuracy", "margin", "eval_pairwise_accuracy"} <= names
    assert set(RunMetric.objects.filter(run=run, name="loss").values_list("step", flat=True)) == {
        1, 2, 3
    }
    judged.refresh_from_db()
    assert judged.reward_model == version
    # Scoring the open items is sent only once the registration has committed.
    assert sent == [] and len(callbacks) == 1
    callbacks[0]()
    assert sent == [[judged.pk, version.pk]]

    from rlhf.ml.reward import score

    values = score(version.source, [[{"role": "user", "content": "Hi"}]] * 2, ["Hello.", "No."])
    assert len(values) == 2


def test_it_cancels_a_reward_run_flagged_before_it_started(judged, base, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    run = TrainingRun.objects.create(project=judged, base_model=base,
                                     method=TrainingRun.Method.REWARD,
                                     config={"max_steps": 3}, cancel_requested=True)
    runner.execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.CANCELLED and run.output_model is None
    judged.refresh_from_db()
    assert judged.reward_model is None


def test_it_fails_a_reward_run_with_a_bad_stored_config(project, base):
    run = TrainingRun.objects.create(project=project, base_model=base,
                                     method=TrainingRun.Method.REWARD,
                                     config={"beta": 0.1})  # a DPO option
    runner.execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "Unknown RewardRunConfig option(s): beta" in run.error


def test_it_shows_the_reward_form_with_one_help_line_per_setting(client, engineer, project,
                                                                 base):
    client.force_login(engineer)
    page = client.get(reverse("rlhf-run-new", args=[project.slug]), {"method": "reward"})
    html = page.content.decode()
    assert page.status_code == 200
    assert "New reward model run" in html and "trl.RewardTrainer" in html
    assert 'name="method" value="reward"' in html
    for name in ("center_rewards_coefficient", "gradient_accumulation_steps", "eval_steps"):
        assert f'name="{name}"' in html
    # Every setting of the config and the base model carry one help line.
    assert html.count('class="helptext"') == len(dataclasses.fields(RewardRunConfig)) + 1
    dpo = client.get(reverse("rlhf-run-new", args=[project.slug])).content.decode()
    assert "New DPO run" in dpo and 'name="beta"' in dpo


def test_it_queues_a_reward_run_and_enqueues_after_commit(client, engineer, project, base,
                                                         django_capture_on_commit_callbacks,
                                                         monkeypatch):
    sent = []
    monkeypatch.setattr("rlhf.tasks.train.apply_async", lambda args, **kw: sent.append(args))
    client.force_login(engineer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("rlhf-run-new", args=[project.slug]),
                               {**VALID, "base_model": base.pk})
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert run.method == "reward" and run.status == "queued" and run.created_by == engineer
    assert run.config["max_steps"] == 5 and run.config["learning_rate"] == 0.001
    assert "beta" not in run.config
    assert sent == [[run.pk]]
    detail = client.get(run.get_absolute_url()).content.decode()
    assert "Reward model run" in detail and 'data-metric="accuracy"' in detail


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("learning_rate", "0", "greater than or equal to 1e-08"),
     ("max_length", "8", "greater than or equal to 16"),
     ("center_rewards_coefficient", "-1", "greater than or equal to 0"),
     ("eval_steps", "-5", "greater than or equal to 0"),
     ("gradient_accumulation_steps", "0", "greater than or equal to 1")],
)
def test_it_refuses_invalid_reward_settings_before_queueing(client, engineer, project, base,
                                                            field, value, message):
    client.force_login(engineer)
    data = {**VALID, "base_model": base.pk, field: value}
    response = client.post(reverse("rlhf-run-new", args=[project.slug]), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not TrainingRun.objects.exists()


def test_it_lets_only_engineers_launch_reward_runs(client, annotator, manager, project):
    for user in (annotator, manager):
        client.force_login(user)
        response = client.get(reverse("rlhf-run-new", args=[project.slug]), {"method": "reward"})
        assert response.status_code == 403
    client.logout()
    response = client.get(reverse("rlhf-run-new", args=[project.slug]), {"method": "reward"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
